#!/usr/bin/env bash
# tests/daemon/dns.sh - remotes named by host name, resolved through a
# resolver that misbehaves: one that never answers and one that answers
# after the remote's timeout must cost the recipient "451 4.4.3" within
# that timeout (3 s here; never getaddrinfo's own retries), with a log line
# that says it was DNS; a name that does not exist likewise. A late answer
# is kept once it arrives; a name that resolves works end to end, and a
# second connection within the keep time does not ask the resolver again
# (queries counted at the fake resolver).
# The whole test runs in private network and mount namespaces: a loopback
# interface only (no query can leave the machine), and our own resolv.conf
# ("nameserver 127.0.0.1", the fake) and nsswitch.conf ("files dns").
# Must not: touch the machine's resolver configuration, or run outside
# those namespaces.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
if [[ ${NEXTHOP_DNS_NS:-} != 1 ]]; then
    unshare --net --mount -- true 2>/dev/null ||
        skip "private network and mount namespaces are not available (not root)"
    exec unshare --net --mount -- env NEXTHOP_DNS_NS=1 bash "$0" "$@"
fi
. "$here/reliability.bash"
harness_init dns
TIMEOUT_MS=3000

ip link set lo up || { echo "FAIL: cannot bring up the namespace's loopback"; exit 1; }
printf 'nameserver 127.0.0.1\n' >"$TEST_DIR/resolv.conf"
printf 'hosts: files dns\n' >"$TEST_DIR/nsswitch.conf"
mount --bind "$TEST_DIR/resolv.conf" /etc/resolv.conf &&
    mount --bind "$TEST_DIR/nsswitch.conf" /etc/nsswitch.conf ||
    { echo "FAIL: cannot mount a private resolv.conf/nsswitch.conf"; exit 1; }

# Two mail stores, each only reachable through a name.
fake_start slowstore normal || exit 1
fake_start goodstore normal || exit 1
bg_start dns "$RIG_PYTHON" "$here/fakedns.py" --log "$TEST_DIR/dns.log" \
    --answer mail.good.test=127.0.0.1 --slow mail.slow.test=127.0.0.1@4 \
    --silent mail.silent.test >"$TEST_DIR/dns.out" 2>&1
wait_log "$TEST_DIR/dns.out" READY 5 || { echo "FAIL: fakedns did not start: $(cat "$TEST_DIR/dns.out")"; exit 1; }

# limits.requests = 1: every lookup opens a new connection, so each one
# needs the address again; catch-all = false: no probes besides our RCPTs.
remote() { # ID HOST PORT
    echo "  $1 = { address = \"$2\"; port = $3; protocol = \"lmtp\"; lookup = true;
    timeout = \"${TIMEOUT_MS}ms\"; tls = { enable = false; }; catch-all = false;
    limits = { requests = 1; }; };"
}
cat >"$TEST_DIR/milter.conf" <<EOF
milter = { log = { level = "debug"; }; };
remote = {
$(remote silent mail.silent.test "${FAKE_PORT[goodstore]}")
$(remote slow mail.slow.test "${FAKE_PORT[slowstore]}")
$(remote nx mail.nx.test "${FAKE_PORT[goodstore]}")
$(remote good mail.good.test "${FAKE_PORT[goodstore]}")
};
session = { rcpt = { lookup = { addresses = (
  { if = "rcpt-domain"; eq = "silent.test"; then = "remote/silent"; },
  { if = "rcpt-domain"; eq = "slow.test"; then = "remote/slow"; },
  { if = "rcpt-domain"; eq = "nx.test"; then = "remote/nx"; },
  { if = "rcpt-domain"; eq = "good.test"; then = "remote/good"; },
  { else = false; } ); }; }; };
EOF
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1

"$RIG_PYTHON" - "$here" "$MILTER_SOCK" "$TIMEOUT_MS" "$TEST_DIR/dns.log" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
sock, timeout, dnslog = sys.argv[2], int(sys.argv[3]) / 1000.0, sys.argv[4]
fails = 0
def case(what, ok, detail):
    global fails
    fails += not ok
    print("%s: %s (%s)" % ("PASS" if ok else "FAIL", what, detail))
def ask(m, rcpt, qid):
    m.mail("<sender@example.net>", qid=qid)
    t = time.monotonic()
    r = m.rcpt("<%s>" % rcpt, qid=qid)
    m.abort()
    return r, time.monotonic() - t
def dns_log():
    with open(dnslog) as f:
        return f.read().splitlines()

m = Milter(sock, timeout=60)
m.start()
for name, qid in (("silent", "SILENT"), ("slow", "SLOW"), ("nx", "NX")):
    r, secs = ask(m, "ok1@%s.test" % name, qid)
    case("%s: 451 4.4.3 within the %.0f s timeout" % (name, timeout),
         r.text.startswith("451 4.4.3") and secs <= timeout + 0.5, "%r after %.2f s" % (r, secs))

# the slow resolver's answer arrives after the RCPT gave up: it is kept, and
# the next RCPT (once the host's short down-marking is over) connects with it
end = time.monotonic() + 10
while "ANSWER mail.slow.test A" not in dns_log() and time.monotonic() < end:
    time.sleep(0.1)
asked = sum(l.startswith("QUERY mail.slow.test ") for l in dns_log())
end = time.monotonic() + 5
while True:
    r, secs = ask(m, "ok2@slow.test", "SLOWLATER")
    if r.kind == "continue" or time.monotonic() > end:
        break
    time.sleep(0.2)
case("slow: the late answer is used by a later RCPT", r.kind == "continue", repr(r))
case("slow: and the resolver was not asked again",
     sum(l.startswith("QUERY mail.slow.test ") for l in dns_log()) == asked, "%d queries before" % asked)

r, secs = ask(m, "ok1@good.test", "GOOD1")
case("good: a remote named by a resolvable host works end to end", r.kind == "continue",
     "%r after %.2f s" % (r, secs))
asked = sum(l.startswith("QUERY mail.good.test ") for l in dns_log())
r, secs = ask(m, "ok2@good.test", "GOOD2")
case("good: a second connection works too", r.kind == "continue", repr(r))
case("good: within the keep time, the resolver was not asked again (%d queries)" % asked,
     asked > 0 and sum(l.startswith("QUERY mail.good.test ") for l in dns_log()) == asked, "")
m.close()
sys.exit(1 if fails else 0)
EOF
check "every case as expected (client exit $?)" test $? -eq 0
check "the milter is still running" milter_alive

for name in SILENT SLOW; do
    host=mail.${name,,}.test
    check "${name,,}: the log line says it was DNS" \
        grep -q "rcpt: queue=$name .*result=tempfail code=451 .*DNS lookup of $host: no answer after" "$MILTER_LOG"
done
check "nx: the log line says the name does not exist" \
    grep -q "rcpt: queue=NX .*code=451 .*DNS lookup of mail.nx.test: Name or service not known" "$MILTER_LOG"
check "good: two connections reached the store named mail.good.test" \
    test "$(grep -c '^LHLO' "$TEST_DIR/fake-goodstore.log")" -eq 2
check "good: both recipients were looked up there" \
    grep -q '^RCPT TO:<ok2@good.test>' "$TEST_DIR/fake-goodstore.log"
check "slow: the store named mail.slow.test was reached with the late answer" \
    grep -q '^RCPT TO:<ok2@slow.test>' "$TEST_DIR/fake-slowstore.log"
check "silent: the resolver never answering did not reach any store" \
    bash -c "! grep -q '^RCPT TO:<ok1@silent.test>' '$TEST_DIR/fake-goodstore.log'"
if ((fails > 0)); then
    echo "--- milter log ---"; grep -a 'lookup:\|rcpt:\|remote' "$MILTER_LOG" | cut -c1-300 | tail -30
    echo "--- resolver log ---"; cat "$TEST_DIR/dns.log"
fi
finish
