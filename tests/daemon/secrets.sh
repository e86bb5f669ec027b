#!/usr/bin/env bash
# tests/daemon/secrets.sh - auth secrets and user passwords never leak:
# not in the milter's debug log (RCPT lookups and a relay that log in with
# the remote's secret; AUTH lookups for a user with PLAIN, LOGIN, CRAM-MD5
# and SCRAM-SHA-256; the saslauthd auth-service), not in what -q and -n/-n -v
# print, not in SMTP replies the milter gives, and not even when a hostile
# remote echoes the credentials back in its error reply. Secrets are looked
# for literally and inside every base64 token (any alignment).
# Also: a world-readable config holding auth.secret is warned about by -n
# and at start (a 0600 one is not), a world-readable secret-file likewise,
# and auth.secret-file works (the remote accepts the secret read from it).
# Must not: print a secret itself (only where it was found).
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/reliability.bash"
harness_init secrets

RELAY_SECRET=RelaySecret-9c1f5e
INLINE_SECRET=InlineSecret-77ab0d
USER_PW=UserPassword-4d2a81
WRONG_PW=WrongPassword-e6b3f0
SECRETS="$RELAY_SECRET,$INLINE_SECRET,$USER_PW,$WRONG_PW"
out=$TEST_DIR/outputs     # everything the milter printed or answered, scanned at the end
mkdir -p "$out"

fake_start relayplain normal --auth "relay_user:$RELAY_SECRET" --mechs PLAIN || exit 1
fake_start relaylogin normal --auth "relay_user:$INLINE_SECRET" --mechs LOGIN || exit 1
for m in PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256; do
    fake_start "user${m%%-*}" normal --auth "alice:$USER_PW" --mechs "$m" || exit 1
done
test_ca "$TEST_DIR" && leaf_cert "$TEST_DIR" right localhost DNS:localhost,IP:127.0.0.1 || exit 1
badremote_start echo auth-echo "$TEST_DIR/right.pem" "$TEST_DIR/right.key" || exit 1

printf '%s\n' "$RELAY_SECRET" >"$TEST_DIR/relay.secret"
chmod 600 "$TEST_DIR/relay.secret"
remote() { # ID PORT [auth settings]
    echo "  $1 = { address = \"127.0.0.1\"; port = $2; protocol = \"smtp\"; lookup = true;
         timeout = \"3s\"; tls = { enable = false; }; ${3:-} };"
}
conf() { # AUTH-SERVICE-LINE
    cat <<EOF
milter = { log = { level = "debug"; }; };
remote = {
$(remote relayplain "${FAKE_PORT[relayplain]}" "auth = { username = \"relay_user\"; secret-file = \"$TEST_DIR/relay.secret\"; };")
$(remote relaylogin "${FAKE_PORT[relaylogin]}" "auth = { username = \"relay_user\"; secret = \"$INLINE_SECRET\"; };")
$(remote echo "${FAKE_PORT[echo]}" "auth = { username = \"relay_user\"; secret-file = \"$TEST_DIR/relay.secret\"; };")
$(for m in PLAIN LOGIN CRAM SCRAM; do remote "user$m" "${FAKE_PORT[user$m]}"; done)
};
session = { rcpt = { lookup = { addresses = (
  { if = "rcpt-domain"; eq = "plain.test"; then = "remote/relayplain"; },
  { if = "rcpt-domain"; eq = "login.test"; then = "remote/relaylogin"; },
  { if = "rcpt-domain"; eq = "echo.test"; then = "remote/echo"; },
  { else = false; } ); }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; eq = "plain.test"; then = "relayplain"; },
                                    { if = "rcpt-domain"; eq = "echo.test"; then = "echo"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; on-tempfail = "tempfail"; timeout = "10s"; };
$1
EOF
}
authsvc="auth-service = { socket = \"$TEST_DIR/authsvc.sock\"; lookup = \"remote/userPLAIN\"; };"
conf "$authsvc" >"$TEST_DIR/private.conf"
chmod 600 "$TEST_DIR/private.conf"
if ! "$NEXTHOP_BIN" -c "$TEST_DIR/private.conf" -n >"$out/n-authsvc" 2>&1; then
    bad "the config with the auth-service was rejected ($(head -n 3 "$out/n-authsvc" | tr '\n' ' ')); the rest runs without it"
    authsvc=""
    conf "" >"$TEST_DIR/private.conf"
fi
cp "$TEST_DIR/private.conf" "$TEST_DIR/public.conf"
chmod 644 "$TEST_DIR/public.conf"

# -n, -n -v: no warning for 0600, a clear one for 0644; secrets masked.
"$NEXTHOP_BIN" -c "$TEST_DIR/private.conf" -n >"$out/n-private" 2>&1
check "-n accepts the config with secret-file and secret (exit $?)" grep -q ': ok' "$out/n-private"
check "-n: no world-readable warning for a 0600 config" bash -c "! grep -qi 'readable' '$out/n-private'"
"$NEXTHOP_BIN" -c "$TEST_DIR/private.conf" -n -v >"$out/n-verbose" 2>&1
check "-n -v prints the settings" grep -q 'relay_user' "$out/n-verbose"
"$NEXTHOP_BIN" -c "$TEST_DIR/public.conf" -n >"$out/n-public" 2>&1
check "-n warns about a world-readable config holding auth.secret" grep -qi 'warning.*readable by everyone' "$out/n-public"
# a world-readable secret-file (the config itself is private and holds no inline secret)
sed "s#secret = \"$INLINE_SECRET\";#secret-file = \"$TEST_DIR/open.secret\";#" "$TEST_DIR/private.conf" >"$TEST_DIR/openfile.conf"
chmod 600 "$TEST_DIR/openfile.conf"
printf '%s\n' "$INLINE_SECRET" >"$TEST_DIR/open.secret"
chmod 644 "$TEST_DIR/open.secret"
"$NEXTHOP_BIN" -c "$TEST_DIR/openfile.conf" -n >"$out/n-openfile" 2>&1
check "-n warns about a world-readable auth.secret-file" grep -qi 'warning.*readable' "$out/n-openfile"
# an unreadable secret-file is an error with FILE:LINE
sed "s#$TEST_DIR/relay.secret#$TEST_DIR/missing.secret#" "$TEST_DIR/private.conf" >"$TEST_DIR/missing.conf"
"$NEXTHOP_BIN" -c "$TEST_DIR/missing.conf" -n >"$out/n-missing" 2>&1
check "-n: a missing secret-file is an error with FILE:LINE (exit $?)" \
    grep -q "missing.conf:[0-9]*: .*secret-file.*missing.secret" "$out/n-missing"

# The daemon, started with the world-readable config: warned at start.
milter_start "$TEST_DIR" "$TEST_DIR/public.conf" || exit 1
check "the daemon warns at start about the world-readable config" \
    grep -qi 'warning: .*readable by everyone' "$MILTER_LOG"

"$RIG_PYTHON" - "$here" "$MILTER_SOCK" "$out/replies" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
fails = 0
replies = open(sys.argv[3], "w")
def case(what, ok, detail):
    global fails
    fails += not ok
    print("%s: %s (%s)" % ("PASS" if ok else "FAIL", what, detail))
m = Milter(sys.argv[2])
m.start()
for dom in ("plain", "login"):
    m.mail("<sender@example.net>", qid="S" + dom)
    r = m.rcpt("<ok1@%s.test>" % dom, qid="S" + dom)
    replies.write(r.text + "\n")
    case("RCPT lookup logging in with the %s secret (%s)" % (dom, "secret-file" if dom == "plain" else "inline"),
         r.kind == "continue", repr(r))
    m.abort()
m.mail("<sender@example.net>", qid="SRELAY")
m.rcpt("<ok2@plain.test>", qid="SRELAY")
r, mods = m.message([("Subject", "relay with auth")], b"hello\r\n")
replies.write(r.text + "\n")
case("relay through a remote that needs AUTH", r.kind == "continue" and any(k == "delrcpt" and b"ok2@plain.test" in d for k, d in mods), repr((r, mods)))
m.mail("<sender@example.net>", qid="SECHO")
r = m.rcpt("<ok3@echo.test>", qid="SECHO")
replies.write(r.text + "\n")
case("RCPT against a remote that echoes the credentials: 451", r.text.startswith("451"), repr(r))
m.close()
sys.exit(1 if fails else 0)
EOF
check "lookups and relay with auth worked (client exit $?)" test $? -eq 0

# -q auth lookups for a user, each mechanism, right and wrong password.
for m in PLAIN LOGIN CRAM SCRAM; do
    printf '%s\n' "$USER_PW" | "$NEXTHOP_BIN" -c "$TEST_DIR/private.conf" -q "user$m" auth alice \
        >"$out/q-$m-good" 2>&1
    rc=$?
    check "-q auth with $m, right password: yes (exit $rc)" test $rc -eq 0
    printf '%s\n' "$WRONG_PW" | "$NEXTHOP_BIN" -c "$TEST_DIR/private.conf" -q "user$m" auth alice \
        >"$out/q-$m-bad" 2>&1
    rc=$?
    check "-q auth with $m, wrong password: no (exit $rc)" test $rc -eq 1
done
printf '%s\n' "$USER_PW" | "$NEXTHOP_BIN" -c "$TEST_DIR/private.conf" -v -q echo auth alice >"$out/q-echo" 2>&1
rc=$?
check "-q auth against the echoing remote: no or error (exit $rc)" test $rc -eq 1 -o $rc -eq 75

# The auth-service (saslauthd protocol), when this build has it.
if [[ -n $authsvc ]]; then
    "$RIG_PYTHON" - "$TEST_DIR/authsvc.sock" "$USER_PW" "$WRONG_PW" >"$out/authsvc" 2>&1 <<'EOF'
import socket, struct, sys
def ask(password):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    req = b"".join(struct.pack(">H", len(f)) + f for f in (b"alice", password.encode(), b"smtp", b""))
    s.sendall(req)
    data = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    return data[2:].decode("latin-1")
good, bad = ask(sys.argv[2]), ask(sys.argv[3])
print("right password:", good[:2], "wrong password:", bad[:2])
sys.exit(0 if good.startswith("OK") and bad.startswith("NO") else 1)
EOF
    check "auth-service: OK for the right password, NO for a wrong one ($(cat "$out/authsvc"))" test $? -eq 0
fi
check "the milter is still running" milter_alive
milter_stop || bad "the milter did not end cleanly: $MILTER_STOP_WHY"
cp "$MILTER_LOG" "$out/milter.log"

# Scan everything the milter wrote or answered.
found=$("$RIG_PYTHON" - "$SECRETS" "$out"/* <<'EOF'
import base64, binascii, re, sys
secrets = [s.encode() for s in sys.argv[1].split(",")]
names = ["relay secret (secret-file)", "inline secret", "user password", "wrong user password"]
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    for name, s in zip(names, secrets):
        if s in data:
            print("%s: %s in clear text" % (path.rsplit("/", 1)[1], name))
    for tok in set(re.findall(rb"[A-Za-z0-9+/]{8,}={0,2}", data)):
        for cut in range(4):
            t = tok[cut:].rstrip(b"=")
            try:
                dec = base64.b64decode(t + b"=" * (-len(t) % 4))
            except (binascii.Error, ValueError):
                continue
            for name, s in zip(names, secrets):
                if s in dec:
                    print("%s: %s base64-encoded" % (path.rsplit("/", 1)[1], name))
EOF
)
check "no secret or password in any log, -q/-n output or SMTP reply${found:+: $(sort -u <<<"$found" | tr '\n' ';')}" \
    test -z "$found"
finish
