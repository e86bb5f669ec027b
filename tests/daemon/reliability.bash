# shellcheck shell=bash
# tests/daemon/reliability.bash - helpers shared by the reliability tests
# (hostile.sh, faults.sh, secrets.sh, leak-reload.sh, tests/e2e/load.sh,
# tests/e2e/kill9.sh): scripted fake remotes, and a test CA. Sourced after
# tests/lib/harness.sh (which stops the fakes at exit, by PID); not a test
# itself (ctest runs tests/daemon/*.sh only). Must not: stop anything it did
# not start, or talk to anything but 127.0.0.1.
#
#   fake_start NAME SCENARIO [fakeserver args]  -> FAKE_PORT[NAME], log in $TEST_DIR/fake-NAME.log
#   badremote_start NAME SCENARIO CERT KEY [ARGS] -> the same, with tests/daemon/badremote.py
#   fakes_stop                                  -> stops every fake started here
#   test_ca DIR; leaf_cert DIR NAME CN SAN      -> a test CA and certificates it signed
#   trusting_wrapper CA OUT                     -> OUT runs the milter trusting only CA

_REL_HERE=$(dirname "${BASH_SOURCE[0]}")
declare -gA FAKE_PORT=()

# _fake_said_port OUT: the fake printed "PORT n" (-> _FAKE_SAID).
_fake_said_port() {
    _FAKE_SAID=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$1" 2>/dev/null)
    [[ -n $_FAKE_SAID ]]
}

# _fake_wait NAME OUT: wait (10 s at most) for "PORT n" on the fake's stdout.
_fake_wait() {
    local name=$1 out=$2
    if wait_for 10 _fake_said_port "$out"; then
        FAKE_PORT[$name]=$_FAKE_SAID
        return 0
    fi
    echo "fake $name did not start: $(cat "$out")" >&2
    return 1
}

fake_start() {
    local name=$1 scenario=$2
    shift 2
    : >"$TEST_DIR/fake-$name.log"
    bg_start "fake-$name" "$RIG_PYTHON" "$_REL_HERE/../lib/fakeserver.py" --log "$TEST_DIR/fake-$name.log" \
        --data "$TEST_DIR/fake-$name.data" --status "$TEST_DIR/fake-$name.status" "$@" "$scenario" \
        >"$TEST_DIR/fake-$name.out" 2>&1
    _fake_wait "$name" "$TEST_DIR/fake-$name.out"
}

badremote_start() {
    local name=$1 scenario=$2 cert=$3 key=$4
    shift 4
    : >"$TEST_DIR/fake-$name.log"
    bg_start "fake-$name" "$RIG_PYTHON" "$_REL_HERE/badremote.py" --cert "$cert" --key "$key" \
        --log "$TEST_DIR/fake-$name.log" "$@" "$scenario" >"$TEST_DIR/fake-$name.out" 2>&1
    _fake_wait "$name" "$TEST_DIR/fake-$name.out"
}

fakes_stop() {
    local n
    for n in "${!FAKE_PORT[@]}"; do bg_stop "fake-$n"; done
}

# test_ca DIR: DIR/ca.pem + DIR/ca.key, a CA for leaf_cert.
test_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=milter-nexthop test CA" \
        -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
        -keyout "$1/ca.key" -out "$1/ca.pem" >/dev/null 2>&1
}

# leaf_cert DIR NAME CN SAN: DIR/NAME.pem + DIR/NAME.key signed by DIR/ca.pem.
leaf_cert() {
    local dir=$1 name=$2 cn=$3 san=$4
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$dir/$name.key" \
        -out "$dir/$name.csr" >/dev/null 2>&1 &&
        printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" \
            >"$dir/$name.ext" &&
        openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.pem" >/dev/null 2>&1
}

# trusting_wrapper CA_PEM OUT: writes OUT, a stand-in for NEXTHOP_BIN that
# runs the milter in a private mount namespace where CA_PEM replaces the
# system trust store (/etc/ssl/certs/ca-certificates.crt, which GnuTLS
# reads). The machine's own trust store is never touched. Fails (so the
# caller can skip) when mount namespaces are not available (not root).
trusting_wrapper() {
    local ca=$1 out=$2 bundle=/etc/ssl/certs/ca-certificates.crt
    [[ -f $bundle ]] || return 1
    unshare --mount -- sh -c "mount --bind '$ca' '$bundle'" 2>/dev/null || return 1
    cat >"$out" <<EOF
#!/bin/sh
# Runs the milter trusting only $ca (private mount namespace).
exec unshare --mount -- sh -c 'mount --bind "\$0" $bundle && exec "\$@"' '$ca' '$NEXTHOP_BIN' "\$@"
EOF
    chmod 755 "$out"
}
