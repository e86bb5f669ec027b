#!/usr/bin/env bash
# tests/daemon/faults.sh - RCPT validation through the running milter
# against remotes that misbehave: garbage greeting, hang, reset after the
# greeting, 1 MB line without CRLF, slow replies, 4xx on RCPT, STARTTLS not
# offered / refused / with injected plain text, a certificate for the wrong
# name (implicit TLS and STARTTLS), a TLS handshake that stalls
# (implicit and after STARTTLS), a server that speaks only TLS 1.0/1.1, a
# certificate from a private CA without tls.ca-file, a certificate from
# the system-trusted CA when tls.ca-file names another one, and a
# certificate for the wrong name over a unix socket. Each must end in "451 4.4.3" within the
# remote's timeout (3 s here, and always < 30 s), the milter must stay up,
# and no MAIL, RCPT or AUTH may reach a remote whose TLS failed (proved
# from the fakes' command logs). Also: a lookup answered slowly but in
# time, followed by the catch-all probe (which the remote answers only after
# 30 s), must still end within the timeout.
# Times are judged with SLACK_S (1.5 s) of scheduling slack over the 3 s
# limit: a lookup that ignored its limit would take 6 s or more (each step
# timed on its own) or until the client gives up; a probe kept on the RCPT
# path would take 1.8 + 30 s.
# Controls that must work: the private CA's certificate with tls.ca-file,
# TLS over a unix socket with the right tls.server-name; and TLS over a
# unix socket without tls.server-name is a FILE:LINE error of -n.
# Must not: fix anything, or accept a success where a failure is due.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/reliability.bash"
harness_init faults
TIMEOUT_MS=3000
SLACK_S=1.5

# A test CA, and a milter that trusts it (and nothing else) from inside a
# private mount namespace: then a certificate that fails can only fail for
# its name, and a control certificate for the right name must pass.
# A second, private CA is never in the trust store: only tls.ca-file trusts it.
mkdir -p "$TEST_DIR/ca2"
test_ca "$TEST_DIR" && leaf_cert "$TEST_DIR" wrong wrong.example DNS:wrong.example &&
    leaf_cert "$TEST_DIR" right localhost DNS:localhost,IP:127.0.0.1 &&
    test_ca "$TEST_DIR/ca2" && leaf_cert "$TEST_DIR/ca2" private localhost DNS:localhost,IP:127.0.0.1 ||
    { echo "FAIL: openssl"; exit 1; }
if trusting_wrapper "$TEST_DIR/ca.pem" "$TEST_DIR/milter-trusting-ca"; then
    # shellcheck disable=SC2034 # read by milter_start
    NEXTHOP_BIN=$TEST_DIR/milter-trusting-ca
    have_ca=1
else
    skip_part "no mount namespace: the wrong-name certificates also fail as untrusted, the control is not run"
    have_ca=0
fi
# name  kind  scenario  cert  tls-settings
plain='tls = { enable = false; };'
auth='auth = { username = "relay_user"; secret = "Fault-Secret-4711"; };'
ca1="ca-file = \"$TEST_DIR/ca.pem\";" ca2="ca-file = \"$TEST_DIR/ca2/ca.pem\";"
# kind: fake (fakeserver.py), tls (badremote.py on TCP), utls (badremote.py on a unix socket)
scenarios=(
    "garbage    fake garbage           -     $plain"
    "hang       fake hang              -     $plain"
    "reset      fake reset             -     $plain"
    "bigline    fake bigline           -     $plain"
    "slow       fake slow              -     $plain"
    "tempfail   fake tempfail-rcpt     -     $plain"
    "nostarttls fake nostarttls        -     tls = { implicit = false; }; $auth"
    "refused    tls  starttls-refused  right tls = { implicit = false; }; $auth"
    "inject     tls  starttls-inject   right tls = { implicit = false; }; $auth"
    "wrongname  tls  tls               wrong tls = { implicit = true; allow-invalid-certs = false; }; $auth"
    "wrongstls  tls  starttls          wrong tls = { implicit = false; allow-invalid-certs = false; }; $auth"
    "wrongdns   tls  tls               wrong tls = { implicit = true; server-name = \"mail.fault.test\"; }; $auth"
    "rightname  tls  tls               right tls = { implicit = true; allow-invalid-certs = false; }; $auth"
    "stall      tls  tls-stall         right tls = { implicit = true; }; $auth"
    "stallstls  tls  starttls-stall    right tls = { implicit = false; }; $auth"
    "oldtls     tls  tls-old           right tls = { implicit = true; }; $auth"
    "privca     tls  tls         ca2/private tls = { implicit = true; $ca2 }; $auth"
    "privnoca   tls  tls         ca2/private tls = { implicit = true; }; $auth"
    "cainstead  tls  tls               right tls = { implicit = true; $ca2 }; $auth"
    "unixright  utls tls               right tls = { server-name = \"localhost\"; $ca1 }; $auth"
    "unixwrong  utls tls               right tls = { server-name = \"mail.fault.test\"; $ca1 }; $auth"
    "slowyes    tls  slow-rcpt         right $plain"
    "good       fake normal            -     $plain"
)
remotes="" rule=""
for s in "${scenarios[@]}"; do
    read -r name kind scenario cert tls <<<"$s"
    case $name in
    slow) args=(--delay 2) ;;       # greeting 2 s + LHLO 2 s > 3 s
    slowyes) args=(--delay 1.8 --probe-delay 30) ;;  # RCPT answered at 1.8 s (in time), the probe at 30 s
    *) args=() ;;
    esac
    case $kind in
    fake) fake_start "$name" "$scenario" "${args[@]}" || exit 1 ;;
    tls) badremote_start "$name" "$scenario" "$TEST_DIR/$cert.pem" "$TEST_DIR/$cert.key" "${args[@]}" || exit 1 ;;
    utls) badremote_start "$name" "$scenario" "$TEST_DIR/$cert.pem" "$TEST_DIR/$cert.key" \
              --unix "$TEST_DIR/u-$name.sock" "${args[@]}" || exit 1 ;;
    esac
    where="address = \"127.0.0.1\"; port = ${FAKE_PORT[$name]};"
    [[ $kind != utls ]] || where="address = \"unix:$TEST_DIR/u-$name.sock\";"
    remotes+="  $name = { $where protocol = \"lmtp\";
    lookup = true; timeout = \"${TIMEOUT_MS}ms\"; $tls };
"
    rule+="{ if = \"rcpt-domain\"; eq = \"$name.test\"; then = \"remote/$name\"; }, "
done
cat >"$TEST_DIR/milter.conf" <<EOF
milter = { log = { level = "debug"; }; };
remote = {
$remotes};
session = { rcpt = { lookup = { addresses = ( $rule{ else = false; } ); }; }; };
EOF
chmod 600 "$TEST_DIR/milter.conf"
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1

"$RIG_PYTHON" - "$here" "$MILTER_SOCK" "$TIMEOUT_MS" "$have_ca" "$SLACK_S" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
sock, timeout, slack = sys.argv[2], int(sys.argv[3]) / 1000.0, float(sys.argv[5])
fails = 0
def ask(m, name, local="ok1"):
    m.mail("<sender@example.net>", qid=name.upper())
    t = time.monotonic()
    r = m.rcpt("<%s@%s.test>" % (local, name), qid=name.upper())
    return r, time.monotonic() - t
def case(what, ok, detail):
    global fails
    fails += not ok
    print("%s: %s (%s)" % ("PASS" if ok else "FAIL", what, detail))
m = Milter(sock, timeout=60)
m.start()
faults = ["garbage", "hang", "reset", "bigline", "slow", "tempfail", "nostarttls", "refused",
          "inject", "wrongname", "wrongstls", "wrongdns", "stall", "stallstls", "oldtls",
          "privnoca", "cainstead", "unixwrong"]
for name in faults:
    r, secs = ask(m, name)
    case("%s: 451 4.4.3 within the %.0f s timeout" % (name, timeout),
         r.text.startswith("451 4.4.3") and secs <= timeout + slack and secs < 30,
         "%r after %.2f s" % (r, secs))
    m.abort()
# errors are not cached: the same recipient asks the remote again
r, secs = ask(m, "tempfail")
case("tempfail: asked again, still 451 (the error was not cached)", r.text.startswith("451 4.4.3"), repr(r))
m.abort()
# a slow but timely answer, then the catch-all probe: the RCPT as a whole
# must still end within the timeout (Postfix waits 30 s for the milter)
r, secs = ask(m, "slowyes")
case("slowyes: a slow answer in time is used", r.kind == "continue", repr(r))
case("slowyes: the whole RCPT (lookup + catch-all probe) ends within the %.0f s timeout" % timeout,
     secs <= timeout + slack, "%.2f s" % secs)
m.abort()
r, secs = ask(m, "rightname")
case("rightname: TLS with a valid certificate for the right name works (control)",
     r.kind == "continue" or not int(sys.argv[4]), "%r after %.2f s" % (r, secs))
m.abort()
for name, what in (("privca", "a certificate from a private CA is accepted with tls.ca-file"),
                   ("unixright", "TLS over a unix socket with the right tls.server-name works")):
    r, secs = ask(m, name)
    case("%s: %s" % (name, what), r.kind == "continue", "%r after %.2f s" % (r, secs))
    m.abort()
r, secs = ask(m, "good")
case("good: a healthy remote still answers", r.kind == "continue", "%r after %.2f s" % (r, secs))
m.close()
sys.exit(1 if fails else 0)
EOF
check "every fault ended in 451 4.4.3 in time (client exit $?)" test $? -eq 0
check "the milter is still running" milter_alive

for name in nostarttls refused inject wrongname wrongstls wrongdns stall stallstls oldtls privnoca \
    cainstead unixwrong; do
    bad=$(grep -aiE '^(MAIL|RCPT|AUTH|DATA|VRFY)' "$TEST_DIR/fake-$name.log" | head -3)
    check "$name: no MAIL/RCPT/AUTH reached the remote (no plain-text fallback)${bad:+: $bad}" test -z "$bad"
done
check "nostarttls: the milter did talk to it (LHLO), then gave up" grep -q '^LHLO' "$TEST_DIR/fake-nostarttls.log"
if ((have_ca)); then
    for name in WRONGNAME WRONGSTLS WRONGDNS; do
        check "${name,,}: the certificate (from a trusted CA) was refused for its name" \
            grep -q "rcpt: queue=$name .*TLS certificate of .* rejected: .*does not match" "$MILTER_LOG"
    done
    check "rightname: the remote saw the lookup over TLS" grep -q '^RCPT TO:<ok1@rightname.test>' "$TEST_DIR/fake-rightname.log"
fi
check "oldtls: refused for its TLS version (1.2 or later required)" \
    grep -q "rcpt: queue=OLDTLS .*TLS 1.2 or later is required" "$MILTER_LOG"
check "privnoca: the private CA's certificate was refused without tls.ca-file" \
    grep -q "rcpt: queue=PRIVNOCA .*TLS certificate of .* rejected" "$MILTER_LOG"
check "cainstead: with tls.ca-file, the trust store's CA is no longer trusted" \
    grep -q "rcpt: queue=CAINSTEAD .*TLS certificate of .* rejected: .*trusting only the CAs of .*ca2/ca.pem" "$MILTER_LOG"
check "unixwrong: over a unix socket, the certificate was refused for its name" \
    grep -q "rcpt: queue=UNIXWRONG .*TLS certificate of .* rejected: .*does not match" "$MILTER_LOG"
for name in privca unixright; do
    check "$name: the remote saw the lookup over TLS" grep -q "^RCPT TO:<ok1@$name.test>" "$TEST_DIR/fake-$name.log"
done
# TLS over a unix socket without a name to check is a config error, with FILE:LINE
cat >"$TEST_DIR/nosni.conf" <<EOF
remote = {
  nosni = { address = "unix:$TEST_DIR/u-unixright.sock"; protocol = "lmtp";
    tls = { implicit = true; }; };
};
EOF
out=$("$NEXTHOP_BIN" -c "$TEST_DIR/nosni.conf" -n 2>&1)
rc=$?
check "nosni: -n refuses TLS over a unix socket without tls.server-name (exit $rc)" test "$rc" -eq 1
check "nosni: the error names FILE:LINE and the key" \
    grep -q "^$TEST_DIR/nosni.conf:3: remote.nosni: TLS over a unix socket needs tls.server-name" <<<"$out"
check "slowyes: the catch-all probe went out (the slowness to keep off the RCPT path)" \
    wait_log "$TEST_DIR/fake-slowyes.log" '^RCPT TO:<nexthop-probe-[0-9a-f]*@slowyes.test>' 10
check "tempfail: the remote was asked twice" \
    test "$(grep -c '^RCPT TO:<ok1@tempfail.test>' "$TEST_DIR/fake-tempfail.log")" -eq 2
check "the auth secret never reached the milter log" bash -c "! grep -q 'Fault-Secret-4711' '$MILTER_LOG'"
if ((fails > 0)); then
    echo "--- milter log (lookups) ---"; grep -a 'lookup:\|rcpt:' "$MILTER_LOG" | cut -c1-400 | tail -30
fi
finish
