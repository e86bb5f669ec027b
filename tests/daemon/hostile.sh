#!/usr/bin/env bash
# tests/daemon/hostile.sh - hostile input through the milter protocol
# (miltertest, hostile.lua): CR/LF in RCPT and MAIL arguments, 10,000-byte
# addresses, NUL and control bytes, <>, unbalanced brackets, quoted local
# parts, UTF-8 (valid and invalid), a HELO name and a message with 10,000
# header fields and SMTP smuggling attempts, relayed to a fake LMTP remote.
# Each case must get a defined reply, the milter must stay up, and the fake
# remote's command log must hold only well-formed commands with nothing
# injected. Must not: fix anything, or pass without having seen the remote's
# log.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/reliability.bash"
harness_init hostile

fake_start fake normal || exit 1
cat >"$TEST_DIR/milter.conf" <<EOF
milter = { log = { level = "debug"; }; };
remote = { fake = {
  address = "127.0.0.1"; port = ${FAKE_PORT[fake]}; protocol = "lmtp"; lookup = true;
  timeout = "5s"; concurrency = 4; tls = { enable = false; };
  cache = { entries = 100; ttl = { positive = "1h"; negative = "1h"; }; };
}; };
list = { local = [ "fake.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/fake"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "fake"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; on-tempfail = "tempfail"; timeout = "20s"; };
EOF
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1

t0=${EPOCHREALTIME/[.,]/}
stdbuf -oL miltertest -s "$here/hostile.lua"
rc=$?
echo "miltertest took $(( (${EPOCHREALTIME/[.,]/} - t0) / 1000 )) ms"
check "every hostile-input case got its defined reply (miltertest exit $rc)" test "$rc" -eq 0
check "the milter is still running" milter_alive

# Arguments miltertest cannot send, with the exact SMTP reply checked.
"$RIG_PYTHON" - "$here" "$MILTER_SOCK" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from milterclient import Milter, MilterError
A = "a" * 10000
fails = 0
def case(what, got, want):
    global fails
    ok = got == want
    fails += not ok
    print("%s: %s -> %s%s" % ("PASS" if ok else "FAIL", what, got, "" if ok else " (wanted %s)" % want))
m = Milter(sys.argv[2])
m.start()
for qid, arg in (("L01", "<" + A + "@fake.test>"), ("L02", "<ok@" + A + ".fake.test>"),
                 ("L03", "<@relay.example,@x:" + A + "@fake.test>"),
                 ("L04", "<" + "ok@fake.test," * 5000 + "ok@fake.test>"),
                 ("L05", "<ok5@fake.test>" + "\r\nRCPT TO:<inject-long@fake.test>" * 300)):
    r = m.mail("<sender@example.net>", qid=qid)
    case(qid + " MAIL before", r.kind, "continue")
    r = m.rcpt(arg, qid=qid)
    case("%s RCPT of %d bytes" % (qid, len(arg)), r.text[:9], "501 5.1.3")
    m.abort()
# a bad sender is refused at MAIL, or (MAIL unanswered) at the RCPT after it
r = m.mail("<" + A + "@example.net>")
if r.kind == "continue":
    r = m.rcpt("<ok-after-bad-sender@fake.test>")
case("MAIL FROM of 10,010 bytes", r.text[:9], "501 5.1.7")
m.abort()
r = m.mail("<sender@example.net>")
r = m.rcpt("<ok-after-long@fake.test>", qid="L06")
case("a normal RCPT on the same connection afterwards", r.kind, "continue")
m.close()
# Beyond libmilter's packet limit: the milter may refuse or drop this one
# connection, but must answer the next.
m = Milter(sys.argv[2])
m.start()
m.mail("<sender@example.net>")
try:
    r = m.rcpt("<" + "b" * 200000 + "@fake.test>")
    case("RCPT of 200,000 bytes", r.text[:9], "501 5.1.3")
except (MilterError, OSError) as e:
    print("PASS: RCPT of 200,000 bytes: connection dropped (%s)" % e)
m = Milter(sys.argv[2])
m.start()
m.mail("<sender@example.net>")
case("a new connection after the 200,000-byte RCPT", m.rcpt("<ok-after-huge@fake.test>").kind, "continue")
m.close()
sys.exit(1 if fails else 0)
EOF
check "over-long arguments got 501 (milterclient exit $?)" test $? -eq 0
check "the milter is still running after over-long arguments" milter_alive

cmds=$TEST_DIR/fake-fake.log
data=$TEST_DIR/fake-fake.data
check "the fake remote saw lookups and the relay" grep -q '^RCPT TO:<ok-relay@fake.test>$' "$cmds"
# Every line the remote received as a command is one of ours, well formed.
allowed='^((LHLO|EHLO) [A-Za-z0-9.-]+|MAIL FROM:<[^<>]*>( [A-Z0-9]+(=[^ ]*)?)*|RCPT TO:<[^<>]*("[^"]*"[^<>]*)?>|RSET|NOOP|QUIT|DATA)$'
bad=$(LC_ALL=C grep -naEv "$allowed" "$cmds" | head -5)
check "every command on the remote is well formed${bad:+ (bad: $bad)}" test -z "$bad"
bad=$(grep -naiE 'inject|smuggle|evil' "$cmds" | head -5)
check "no injected or smuggled command reached the remote${bad:+ (found: $bad)}" test -z "$bad"
bad=$(LC_ALL=C grep -naP '[\x00-\x08\x0a-\x1f\x7f]' "$cmds" | head -3)
check "no control byte reached the remote in a command" test -z "$bad"
check "only valid UTF-8 reached the remote" iconv -f UTF-8 -t UTF-8 "$cmds" -o /dev/null
check "the quoted local part was sent as given" grep -qxF 'RCPT TO:<"john doe"@fake.test>' "$cmds"
# The relayed message: all 10,000 fields arrived as data; smuggled lines stayed data.
check "the relayed copy holds the 9,899 filler fields" \
    test "$(grep -ac '^X-Filler-[0-9]*: value' "$data")" -eq 9899
check "the smuggling attempts arrived as (dot-stuffed) message data" \
    grep -aq '^MAIL FROM:<smuggle-crlf@evil.example>' "$data"
check "the HELO injection is no host name: Received: from unknown, the client IP in brackets" \
    bash -c "grep -aq '^Received: from unknown (\[192\.0\.2\.7\])' '$data' && ! grep -aq 'inject-helo' '$data'"
# The milter's log: no control bytes, no 10,000-byte echo of the input.
bad=$(LC_ALL=C grep -naP '[\x00-\x08\x0b-\x1f\x7f]' "$MILTER_LOG" | head -3)
check "the milter log holds no control bytes" test -z "$bad"
check "the milter log never echoes a 10,000-byte address" \
    test "$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$MILTER_LOG")" -lt 3000
if ((fails > 0)); then
    echo "--- fake remote commands (last 20) ---"; tail -20 "$cmds"
    echo "--- milter log (last 30) ---"; tail -30 "$MILTER_LOG" | cut -c1-300
fi
finish
