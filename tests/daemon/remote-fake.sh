#!/usr/bin/env bash
# tests/daemon/remote-fake.sh - `milter-nexthop -q` against servers that
# misbehave in ways a real one cannot be made to (tests/lib/fakeserver.py):
#   - SCRAM-SHA-256 servers that do not know the password: one answers 235
#     without its signature (v=), one sends a wrong signature. The AUTH must
#     fail (RFC 5802), never say yes to a wrong password.
#   - SMTPUTF8 (RFC 6531): a UTF-8 recipient is probed with
#     "MAIL FROM:<> SMTPUTF8" when offered; when not offered it is not
#     asked at all and the answer is 553 5.6.7, not a "user unknown".
# Asserts exit codes (0 yes, 1 no, 75 error), stderr, and what the server got.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init remote-fake
dir=$TEST_DIR

# start_fake ARGS...: fakeserver.py (helper "fake") on a free port, its commands in $dir/log.
start_fake() {
    bg_stop fake
    : >"$dir/log"
    bg_start fake "$RIG_PYTHON" "$here/../lib/fakeserver.py" --log "$dir/log" "$@" >"$dir/port" 2>"$dir/fake.err"
    wait_for 10 grep -q '^PORT ' "$dir/port" || { bad "fakeserver did not start: $(cat "$dir/fake.err")"; exit 1; }
    port=$(awk '/^PORT /{print $2}' "$dir/port")
    cat >"$dir/r.conf" <<CONF
remote = { r = { address = "127.0.0.1"; port = $port; protocol = "smtp"; lookup = true;
                 timeout = "3s"; catch-all = false; tls = { enable = false; }; }; };
CONF
}

# q WANT DESC KIND ARG [PASSWORD]
q() {
    local want=$1 desc=$2 kind=$3 arg=$4 rc
    if [[ $# -ge 5 ]]; then
        printf '%s\n' "$5" | timeout 30 "$NEXTHOP_BIN" -c "$dir/r.conf" -q r "$kind" "$arg" >"$dir/out" 2>"$dir/err"
    else
        timeout 30 "$NEXTHOP_BIN" -c "$dir/r.conf" -q r "$kind" "$arg" </dev/null >"$dir/out" 2>"$dir/err"
    fi
    rc=$?
    if [[ $rc -eq $want ]]; then ok "$desc (exit $rc)"; else bad "$desc: exit $rc, want $want: $(tr '\n' ' ' <"$dir/err")"; fi
}
err_has() { if grep -qE -- "$1" "$dir/err"; then ok "$2"; else bad "$2: stderr was: $(cat "$dir/err")"; fi; }
log_has() { if grep -qF -- "$1" "$dir/log"; then ok "$2"; else bad "$2: the server got: $(tr '\n' '|' <"$dir/log")"; fi; }
log_lacks() { if grep -qF -- "$1" "$dir/log"; then bad "$2: the server got: $(tr '\n' '|' <"$dir/log")"; else ok "$2"; fi; }

# ------------------------------------------------------------ SCRAM-SHA-256
start_fake --auth alice@example.org:secret --mechs SCRAM-SHA-256 normal
q 0 "scram, honest server: right password" auth alice@example.org secret
q 1 "scram, honest server: wrong password" auth alice@example.org wrong

start_fake --auth alice@example.org:secret --mechs SCRAM-SHA-256 --scram-final missing normal
q 75 "scram, 235 without a server signature: wrong password is not a yes" auth alice@example.org wrong
err_has "before proving it knows the password" "scram, 235 without v=: the error says why"
q 75 "scram, 235 without a server signature: even the right password is not trusted" auth alice@example.org secret

start_fake --auth alice@example.org:secret --mechs SCRAM-SHA-256 --scram-final wrong normal
q 75 "scram, wrong server signature: wrong password is not a yes" auth alice@example.org wrong
err_has "failed to prove it knows the password" "scram, wrong v=: the error says why"
log_has "*" "scram, wrong v=: the exchange was cancelled (*)"
if grep -q secret "$dir/err" "$dir/out"; then bad "a password reached the output"; else ok "no password in the output"; fi

# ------------------------------------------------------------ SMTPUTF8
utf8_ok='okjösé@exämple.org'
start_fake --smtputf8 normal
q 0 "smtputf8 offered: a UTF-8 recipient is probed" rcpt "$utf8_ok"
log_has "MAIL FROM:<> SMTPUTF8" "smtputf8 offered: the probe's MAIL FROM carries SMTPUTF8"
log_has "RCPT TO:<$utf8_ok>" "smtputf8 offered: the RCPT went out"
q 0 "smtputf8 offered: an ASCII recipient still works" rcpt ok@example.org

start_fake normal
q 1 "smtputf8 not offered: a UTF-8 recipient is not a yes" rcpt "$utf8_ok"
err_has "553 5\.6\.7 non-ASCII address not supported by the mail store" \
    "smtputf8 not offered: 553 5.6.7, not 550 5.1.1"
log_lacks "RCPT TO:<$utf8_ok>" "smtputf8 not offered: the recipient was never sent"
q 1 "smtputf8 not offered: vrfy of a UTF-8 address" vrfy "$utf8_ok"
err_has "553 5\.6\.7" "smtputf8 not offered: vrfy says 553 5.6.7"
q 0 "smtputf8 not offered: ASCII recipients still work" rcpt ok@example.org

finish
