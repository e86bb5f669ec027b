#!/usr/bin/env bash
# tests/e2e/load.sh - hundreds of concurrent milter sessions for a minute:
# 300 sessions (tests/daemon/milterclient.py, offering Postfix's no-reply
# steps) send messages with RCPTs that miss the cache (random addresses
# validated against a fake LMTP remote with concurrency = 4 and a 200-entry
# cache, so the LRU churns) and relay a share of them to that remote.
# Sampled every 2 s from /proc/PID: VmRSS, open fds, threads.
# Criteria (stated, and printed with the numbers):
#   - no session ever loses its milter connection or waits > 30 s for an answer;
#   - a fresh prober session gets an answer every second, within 5 s;
#   - temporary failures (451, the pool's wait ran out) stay under 2% of RCPTs;
#   - the remote never sees more than 4 concurrent connections;
#   - after warm-up (15 s): RSS stays within warm-up + 10 MB and open fds
#     within warm-up + 32; the last third's mean RSS is within 4 MB of the
#     first third's (no trend);
#   - after the clients leave: fds back to the idle level + 4 (pool).
# LOAD_SECONDS (default 60) and LOAD_SESSIONS (default 300) scale it.
# Must not: signal anything but the milter and fake it started.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../daemon/reliability.bash"
harness_init load
SECS=${LOAD_SECONDS:-60}
SESSIONS=${LOAD_SESSIONS:-300}
CONCURRENCY=4

fake_start fake normal || exit 1
cat >"$TEST_DIR/milter.conf" <<EOF
milter = { log = { level = "warning"; }; };
remote = { fake = { address = "127.0.0.1"; port = ${FAKE_PORT[fake]}; protocol = "lmtp"; lookup = true;
  timeout = "10s"; concurrency = $CONCURRENCY; tls = { enable = false; };
  cache = { entries = 200; ttl = { positive = "30s"; negative = "30s"; }; }; }; };
list = { local = [ "fake.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/fake"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "fake"; },
                                    { else = false; } ); }; };
routing = { action = ( { if = "sender"; eq = "relay@example.net"; then = "relay"; },
                       { else = "header"; } ); on-tempfail = "tempfail"; timeout = "20s"; };
EOF
# (this config logs warnings only: milter_start waits until the milter
# answers a negotiation, so it is serving and its fds are all open)
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1
idle_fds=$(ls /proc/"$MILTER_PID"/fd | wc -l)
echo "idle: $idle_fds open fds"

"$RIG_PYTHON" - "$here/../daemon" "$MILTER_SOCK" "$MILTER_PID" "$SECS" "$SESSIONS" \
    "$TEST_DIR/fake-fake.status" "$CONCURRENCY" "$idle_fds" <<'EOF'
import os, random, sys, threading, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter, MilterError
sock, pid, secs, sessions = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
status_file, concurrency, idle_fds = sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
stop = threading.Event()
lock = threading.Lock()
stats = {"sessions": 0, "messages": 0, "rcpt": 0, "rcpt_451": 0, "rcpt_550": 0, "errors": 0,
         "slowest": 0.0, "probes": 0, "probe_fail": 0, "probe_slowest": 0.0}
first_errors = []

def count(key, n=1):
    with lock:
        stats[key] += n

def timed(fn, *a, **kw):
    t = time.monotonic()
    r = fn(*a, **kw)
    dt = time.monotonic() - t
    with lock:
        stats["slowest"] = max(stats["slowest"], dt)
    return r

def client(k):
    rnd = random.Random(k)
    time.sleep(rnd.uniform(0, 5))   # ramp up over 5 s
    while not stop.is_set():
        try:
            m = Milter(sock, timeout=30, no_reply=True)
            m.start(ip="192.0.2.%d" % (k % 250 + 1))
            count("sessions")
            for _ in range(rnd.randint(5, 15)):
                if stop.is_set():
                    break
                relay = rnd.random() < 0.1
                m.mail("<relay@example.net>" if relay else "<s@example.net>", qid="L%d" % k)
                accepted = 0
                for _ in range(rnd.randint(1, 3)):
                    ok = rnd.random() < 0.7
                    addr = "<%s%d@fake.test>" % ("ok" if ok else "nobody", rnd.randint(0, 20000))
                    r = timed(m.rcpt, addr, qid="L%d" % k)
                    count("rcpt")
                    if r.code == "451":
                        count("rcpt_451")
                    elif r.code == "550":
                        count("rcpt_550")
                    accepted += r.kind == "continue"
                    time.sleep(rnd.uniform(0.2, 0.8))
                if accepted:
                    r, mods = timed(m.message, [("From", "<s@example.net>"), ("Subject", "load %d" % k)],
                                    b"load test body\r\n" * 20)
                    count("messages")
                else:
                    m.abort()
                time.sleep(rnd.uniform(0.2, 0.8))
            m.close()
        except (MilterError, OSError) as e:
            count("errors")
            with lock:
                if len(first_errors) < 5:
                    first_errors.append("%s: %s" % (type(e).__name__, e))
            time.sleep(0.5)

def prober():
    """A fresh session every second must be answered within 5 s."""
    while not stop.is_set():
        t = time.monotonic()
        try:
            m = Milter(sock, timeout=5)
            m.start()
            m.mail("<probe@example.net>")
            r = m.rcpt("<ok-probe@fake.test>")
            m.close()
            good = r.kind == "continue"
        except (MilterError, OSError):
            good = False
        dt = time.monotonic() - t
        with lock:
            stats["probes"] += 1
            stats["probe_fail"] += not good or dt > 5
            stats["probe_slowest"] = max(stats["probe_slowest"], dt)
        time.sleep(max(0, 1 - dt))

def sample():
    st = {}
    for line in open("/proc/%d/status" % pid):
        k, _, v = line.partition(":")
        st[k] = v.split()
    return int(st["VmRSS"][0]), len(os.listdir("/proc/%d/fd" % pid)), int(st["Threads"][0])

def remote_max():
    try:
        return int(dict(kv.split("=") for kv in open(status_file).read().split())["max"])
    except (OSError, ValueError, KeyError):
        return -1

threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(sessions)]
threads.append(threading.Thread(target=prober, daemon=True))
start = time.monotonic()
for t in threads:
    t.start()
samples = []
while time.monotonic() - start < secs:
    time.sleep(2)
    rss, fds, thr = sample()
    samples.append((time.monotonic() - start, rss, fds, thr))
    print("t=%3.0fs rss=%6d kB fds=%4d threads=%4d rcpt=%6d 451=%d errors=%d remote-max=%d"
          % (samples[-1][0], rss, fds, thr, stats["rcpt"], stats["rcpt_451"], stats["errors"], remote_max()),
          flush=True)
stop.set()
for t in threads:
    t.join(35)
# sessions closed: wait (30 s at most) until the milter has closed theirs;
# the pool keeps at most `concurrency` idle connections
settle_end = time.monotonic() + 30
while True:
    end_rss, end_fds, end_thr = sample()
    if end_fds <= idle_fds + concurrency or time.monotonic() > settle_end:
        break
    time.sleep(0.2)

fails = 0
def crit(ok, what):
    global fails
    fails += not ok
    print("%s: %s" % ("PASS" if ok else "FAIL", what))
s = stats
print("sessions=%d messages=%d rcpt=%d (550: %d, 451: %d) errors=%d slowest answer %.2f s; "
      "probes=%d failed=%d slowest %.2f s" % (s["sessions"], s["messages"], s["rcpt"], s["rcpt_550"],
      s["rcpt_451"], s["errors"], s["slowest"], s["probes"], s["probe_fail"], s["probe_slowest"]))
crit(s["errors"] == 0 and s["slowest"] < 30,
     "no session lost its connection or waited 30 s (errors %d, slowest %.2f s)%s"
     % (s["errors"], s["slowest"], (": " + "; ".join(first_errors)) if first_errors else ""))
crit(s["probes"] >= secs // 2 and s["probe_fail"] == 0,
     "the milter answered a fresh session every second (%d probes, %d failed)" % (s["probes"], s["probe_fail"]))
crit(s["rcpt"] > 0 and s["rcpt_451"] <= 0.02 * s["rcpt"],
     "temporary failures under 2%% of RCPTs (%d of %d)" % (s["rcpt_451"], s["rcpt"]))
crit(0 < remote_max() <= concurrency,
     "the remote saw at most %d concurrent connections (max %d)" % (concurrency, remote_max()))
warm = [x for x in samples if x[0] >= 15]
if len(warm) >= 6:
    w_rss, w_fds = warm[0][1], warm[0][2]
    max_rss, max_fds = max(x[1] for x in warm), max(x[2] for x in warm)
    third = len(warm) // 3
    first = sum(x[1] for x in warm[:third]) / third
    last = sum(x[1] for x in warm[-third:]) / third
    crit(max_rss <= w_rss + 10240, "RSS flat: %d kB at 15 s, max %d kB (limit +10 MB)" % (w_rss, max_rss))
    crit(last - first <= 4096, "RSS without a trend: first third %.0f kB, last third %.0f kB (limit +4 MB)"
         % (first, last))
    crit(max_fds <= w_fds + 32, "open fds flat: %d at 15 s, max %d (limit +32)" % (w_fds, max_fds))
else:
    crit(False, "too few samples after warm-up (LOAD_SECONDS >= 30 needed)")
crit(end_fds <= idle_fds + concurrency,
     "after the clients left: %d open fds (idle %d + at most %d pooled)" % (end_fds, idle_fds, concurrency))
print("after the clients left: rss=%d kB threads=%d" % (end_rss, end_thr))
sys.exit(1 if fails else 0)
EOF
check "load: every criterion held (driver exit $?)" test $? -eq 0
check "the milter is still running" milter_alive
errors=$(grep -a -m3 'error' "$MILTER_LOG")
[[ -z $errors ]] || echo "NOTE: milter errors logged: $errors"
finish
