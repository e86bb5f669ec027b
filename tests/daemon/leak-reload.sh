#!/usr/bin/env bash
# tests/daemon/leak-reload.sh - 1,000 SIGUSR1 reloads leak nothing: 900 of
# a config with a remote (pool + cache, lookups in between so connections
# are open when a config is retired; every third reload changes the remote,
# so its runtime is retired too, the others carry it over), a file list, an SQLite list, regex and
# CIDR rules; 100 of a broken config (the error path). Every reload is
# counted in the log (one at a time: signals sent faster would merge), the
# milter answers lookups throughout and after, and:
#   ASan build (tests/sanitize.sh): LeakSanitizer at exit reports nothing;
#   valgrind (LEAK_VALGRIND=1): --leak-check=full finds nothing definitely lost;
#   always: RSS after reload 1,000 is within 8 MB of RSS after reload 200
#   (memory a retired config keeps reachable would grow it by far more).
# Must not: signal any process but the milter it started.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/reliability.bash"
harness_init leak
RELOADS=${LEAK_RELOADS:-1000}

mode=plain
if ldd "$NEXTHOP_BIN" 2>/dev/null | grep -q libasan; then
    mode=asan
    # Leaks are reported at exit into the milter's log (any log_path from
    # tests/sanitize.sh is dropped); a small quarantine keeps RSS meaningful.
    opts=$(tr ':' '\n' <<<"${ASAN_OPTIONS:-}" | grep -v '^log_path=' | paste -sd: -)
    export ASAN_OPTIONS="${opts:+$opts:}detect_leaks=1:exitcode=23:quarantine_size_mb=4"
elif [[ ${LEAK_VALGRIND:-0} == 1 ]] && command -v valgrind >/dev/null; then
    mode=valgrind
    real=$NEXTHOP_BIN
    NEXTHOP_BIN=$TEST_DIR/milter-under-valgrind
    printf '#!/bin/sh\nexec valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=42 %s "$@"\n' \
        "$real" >"$NEXTHOP_BIN"
    chmod 755 "$NEXTHOP_BIN"
fi
echo "leak check mode: $mode ($RELOADS reloads)"

fake_start fake normal || exit 1
printf 'listed.example\nother.example\n' >"$TEST_DIR/domains.txt"
"$RIG_PYTHON" - "$TEST_DIR/routing.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE domains (name TEXT)")
db.execute("INSERT INTO domains VALUES ('fake.test')")
db.commit()
EOF
good() { # HEADER [REMOTE-TIMEOUT]
    cat <<EOF
milter = { log = { level = "info"; }; };
remote = { fake = { address = "127.0.0.1"; port = ${FAKE_PORT[fake]}; protocol = "lmtp"; lookup = true;
  timeout = "${2:-3s}"; concurrency = 2; tls = { enable = false; };
  cache = { entries = 50; ttl = { positive = "1h"; negative = "1m"; }; }; }; };
list = { files = "file://$TEST_DIR/domains.txt"; inline = [ "a.example", "b.example" ]; };
database = { sql = { type = "sqlite"; path = "$TEST_DIR/routing.db";
  lookup = { domains = "SELECT 1 FROM domains WHERE name = ? LIMIT 1"; }; }; };
session = { rcpt = { lookup = { domains = "sql/domains"; addresses = "remote/fake"; }; }; };
queue = { outbound = { next-hop = (
  { if = "rcpt"; matches = "^(archive|backup)-[0-9]+@"; then = false; },
  { all-of = ( { if = "remote-ip"; eq = "192.0.2.0/24"; }, { if = "rcpt-domain"; in-list = "list/files"; } ); then = "fake"; },
  { if = "rcpt-domain"; in-list = "sql/domains"; then = "fake"; },
  { else = false; } ); }; };
routing = { action = "header"; header = "$1"; };
EOF
}
good X-Gen-0 >"$TEST_DIR/milter.conf"
good X-Gen-good >"$TEST_DIR/good.conf"
good X-Gen-good 4s >"$TEST_DIR/good2.conf"   # a changed remote: its runtime is retired
{ good X-Gen-bad; echo 'bogus-key = 1;'; } >"$TEST_DIR/bad.conf"
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1
# under valgrind MILTER_PID is the valgrind process, which is the milter
t0=${EPOCHREALTIME/[.,]/}
"$RIG_PYTHON" - "$here" "$MILTER_SOCK" "$MILTER_PID" "$MILTER_LOG" "$TEST_DIR" "$RELOADS" <<'EOF'
import os, shutil, signal, sys, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
sock, pid, logpath, d, reloads = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
log = open(logpath, "rb")
log.seek(0, 2)
fails = 0
def rss_kb():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def wait_reload(timeout=30):
    """The next reload line in the log: 'ok' or 'failed'."""
    end = time.time() + timeout
    buf = b""
    while time.time() < end:
        chunk = log.readline()
        if not chunk:
            time.sleep(0.002)
            continue
        if b"info: reload: " in chunk and b" loaded in " in chunk:
            return "ok"
        if b"reload failed, keeping the running config" in chunk:
            return "failed"
    return None
def lookup(i):
    m = Milter(sock, timeout=20)
    m.start()
    m.mail("<s@example.net>")
    r = m.rcpt("<ok-%d@fake.test>" % i)   # a new address each time: no cache hit
    m.close()
    return r.kind
counts = {"ok": 0, "failed": 0, None: 0}
rss = {}
for i in range(1, reloads + 1):
    src = "bad.conf" if i % 10 == 0 else "good2.conf" if i % 3 == 0 else "good.conf"
    shutil.copy(os.path.join(d, src), os.path.join(d, "milter.conf.new"))
    os.rename(os.path.join(d, "milter.conf.new"), os.path.join(d, "milter.conf"))
    os.kill(pid, signal.SIGUSR1)
    got = wait_reload()
    counts[got] += 1
    if got != ("failed" if src == "bad.conf" else "ok"):
        fails += 1
        print("FAIL: reload %d (%s): logged %s" % (i, src, got))
        if got is None:
            break
    if i % 50 == 0:
        k = lookup(i)
        if k != "continue":
            fails += 1
            print("FAIL: lookup after reload %d: %s" % (i, k))
    if i in (200, reloads):
        rss[i] = rss_kb()
print("reloads: %d logged as loaded, %d as failed (broken config kept out), %d missing"
      % (counts["ok"], counts["failed"], counts[None]))
ok = counts["ok"] == reloads - reloads // 10 and counts["failed"] == reloads // 10
print("%s: %d reloads counted in the log" % ("PASS" if ok else "FAIL", reloads))
fails += not ok
k = lookup(0)
print("%s: the milter still answers after %d reloads (%s)" % ("PASS" if k == "continue" else "FAIL", reloads, k))
fails += k != "continue"
if 200 in rss and reloads in rss:
    grow = rss[reloads] - rss[200]
    print("%s: RSS %d kB after reload 200, %d kB after reload %d (growth %d kB, limit 8192)"
          % ("PASS" if grow < 8192 else "FAIL", rss[200], rss[reloads], reloads, grow))
    fails += grow >= 8192
sys.exit(1 if fails else 0)
EOF
check "1,000 reloads counted, lookups answered, RSS flat (driver exit $?)" test $? -eq 0
echo "reloads took $(( (${EPOCHREALTIME/[.,]/} - t0) / 1000000 )) s"
check "the milter is still running" milter_alive
milter_stop
rc=$?
why=${MILTER_STOP_WHY:+: $MILTER_STOP_WHY}
case $mode in
asan)
    check "LeakSanitizer found no leak at exit (exit status ok)$why" test $rc -eq 0
    bad=$(grep -a -m3 'LeakSanitizer\|AddressSanitizer\|runtime error' "$MILTER_LOG")
    check "no sanitizer report in the milter's output${bad:+: $bad}" test -z "$bad"
    ;;
valgrind)
    check "valgrind found nothing definitely lost$why" test $rc -eq 0
    bad=$(grep -a -m5 'definitely lost\|Invalid \(read\|write\)' "$MILTER_LOG")
    check "no valgrind error in the milter's output${bad:+: $bad}" test -z "$bad"
    ;;
*)
    check "the milter stopped cleanly$why" test $rc -eq 0
    echo "NOTE: leak detection proper runs in the ASan build (tests/sanitize.sh) or with LEAK_VALGRIND=1"
    ;;
esac
finish
