#!/usr/bin/env bash
# tests/daemon/redis-backoff.sh - cache.redis pointing at a hung Redis
# (it accepts connections and never answers): lookups keep answering from
# the remote, and the log says "unavailable" once, never "is back", however
# many lookups come: a connection that succeeds does not end the pause,
# only a command that does. (tests/e2e/redis.sh covers a real Redis going
# away and coming back.)
# Must not: need a real Redis, or wait with fixed sleeps for a log line.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init redis-backoff
dir=$TEST_DIR

# libhiredis-dev is one of the packages tests/run.sh installs
"$NEXTHOP_BIN" -V | grep -q '^hiredis ' ||
    missing libhiredis-dev "milter-nexthop was built without hiredis: install libhiredis-dev and re-run cmake"

fake() { # NAME SCENARIO: tests/lib/fakeserver.py as helper NAME -> its port in $port
    bg_start "$1" "$RIG_PYTHON" "$here/../lib/fakeserver.py" --log "$dir/$1.log" "$2" >"$dir/$1.out" 2>&1
    port=
    wait_for 10 grep -q '^PORT ' "$dir/$1.out" && port=$(sed -n 's/^PORT //p' "$dir/$1.out")
    [[ -n $port ]] || { bad "the fake server $1 did not start: $(cat "$dir/$1.out")"; exit 1; }
}
fake redis hang
redis_port=$port
fake store normal
store_port=$port
cat > "$dir/milter.conf" <<CONF
milter = { log = { level = "info"; }; };
remote = { store = { address = "127.0.0.1"; port = $store_port; protocol = "lmtp"; lookup = true;
                     timeout = "5s"; tls = { enable = false; }; }; };
list = { local = [ "fake.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/store"; }; }; };
cache = { redis = "127.0.0.1:$redis_port"; };
CONF
milter_start "$dir/m" "$dir/milter.conf" || { bad "the milter did not start"; exit 1; }

# new recipients for 4.5 s, each a local cache miss that would ask Redis (unless
# paused): paused, a few hundred get answered; asking the hung Redis each time
# (its 100 ms timeout) fewer than 45, so fewer than 100 fails
"$RIG_PYTHON" - "$here" "$MILTER_SOCK" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
m = Milter(sys.argv[2], timeout=10)
m.start()
m.mail("<s@example.net>")
n, bad, end = 0, 0, time.time() + 4.5
while time.time() < end:
    n += 1
    r = m.rcpt("<ok%d@fake.test>" % n)
    bad += r.kind != "continue"
    time.sleep(0.01)   # pacing only: a few hundred lookups are plenty
m.close()
print("%d lookups with Redis hung, %d not answered yes" % (n, bad))
sys.exit(1 if bad or n < 100 else 0)
EOF
check "every lookup answered from the remote while Redis hangs" test $? = 0
down=$(grep -c 'cache.redis: .* unavailable' "$MILTER_LOG")
back=$(grep -c 'cache.redis: .* is back' "$MILTER_LOG")
check "Redis hung for 4.5 s: 'unavailable' logged once (got $down)" test "$down" = 1
check "... and never 'is back' (got $back)" test "$back" = 0
check "the milter exits cleanly" milter_stop
finish
