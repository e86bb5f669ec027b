#!/usr/bin/env bash
# tests/bench/memory.sh - the milter's resident size (VmRSS from
# /proc/PID/status), driven directly by bench_rcpt_load over the milter
# protocol, 10 sessions:
#   1. 100,000 cache entries: distinct recipients validated against a real
#      Dovecot (unknown users: 100,000 negative entries, cache.entries =
#      100000); RSS before and after, and bytes per entry
#   2. 100,000 messages, each to 1alice..5alice@dovecot.test (cached), header
#      and body, relayed at end of message to smtp-sink speaking LMTP (the
#      relay path: spool, pooled client, delete recipients, discard); RSS
#      every 10,000 messages, and the growth from the first sample to the last
#   3. 100,000 more distinct recipients: the full cache evicts as it goes; RSS
#      must not grow with it
# Usage: tests/bench/memory.sh [ENTRIES] [MESSAGES]   (defaults 100000, 100000)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
ENTRIES=${1:-100000}
MESSAGES=${2:-100000}
S=10
bench_init

dovecot_start "$BENCH_DIR/dovecot" >/dev/null
sink_port=$(rig_free_port)
bench_bg sink_pid /usr/sbin/smtp-sink -L -u nobody "127.0.0.1:$sink_port" 100
rig_wait_port "$sink_port" 10
cat >"$BENCH_DIR/milter.conf" <<CONF
milter = { log = { level = "warning"; }; };
remote = {
  dovecot = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
              tls = { enable = false; }; cache = { entries = $ENTRIES; }; };
  sink = { address = "127.0.0.1"; port = $sink_port; protocol = "lmtp"; tls = { enable = false; }; };
};
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "sink"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; on-tempfail = "tempfail"; };
CONF
milter_start "$BENCH_DIR/m" "$BENCH_DIR/milter.conf" "unix:$BENCH_DIR/m/milter.sock"

load() { "$LOAD" -P milter -a "$MILTER_SOCK" -c $S -s s@example.net "$@"; }
check() { # LINE WHAT: the load must have gone through
    [[ $(field "$1" failed_sessions) == 0 && $(field "$1" temp) == 0 ]] ||
        { echo "memory.sh: $2 did not go through: $1" >&2; exit 1; }
}
mb() { echo "scale=1; $1 / 1024" | bc -l | sed 's/^\./0./'; }

# warm-up: threads, pool connections, one message relayed per session
check "$(load -n 5 -r 5 -k 5 -m -f '%dalice@dovecot.test')" warm-up
rss0=$(rss_kb "$MILTER_PID")
per=$(((ENTRIES + S - 1) / S))
t0=$(date +%s)
line=$(load -n "$per" -r 5 -f "fill$$-%d@dovecot.test")
check "$line" fill
rss1=$(rss_kb "$MILTER_PID")
printf 'cache fill: %d distinct unknown recipients in %ds (%s lookups/s), %s answered 550\n' \
    "$((per * S))" "$(($(date +%s) - t0))" "$(field "$line" per_sec)" "$(field "$line" no)"
printf '  RSS after start and warm-up  %7d kB (%s MB)\n' "$rss0" "$(mb "$rss0")"
printf '  RSS with %d entries     %7d kB (%s MB), +%s MB, %d bytes per entry\n' "$((per * S))" \
    "$rss1" "$(mb "$rss1")" "$(mb $((rss1 - rss0)))" "$(((rss1 - rss0) * 1024 / (per * S)))"

step=10000
per_msg=$(((step + S - 1) / S))
printf '\n%d messages, 5 cached recipients each, relayed to smtp-sink (LMTP); RSS every %d:\n' \
    "$MESSAGES" $step
first=0 last=0 sent=0 t0=$(date +%s)
while ((sent < MESSAGES)); do
    line=$(load -n $((per_msg * 5)) -r 5 -k 5 -m -f '%dalice@dovecot.test')
    check "$line" messages
    [[ $(field "$line" discarded) == "$(field "$line" messages)" ]] ||
        { echo "memory.sh: not every message was relayed: $line" >&2; exit 1; }
    sent=$((sent + $(field "$line" messages)))
    last=$(rss_kb "$MILTER_PID")
    ((first > 0)) || first=$last
    printf '  after %6d messages  RSS %7d kB  (%s msg/s)\n' "$sent" "$last" \
        "$(echo "scale=0; $(field "$line" messages) / $(field "$line" secs)" | bc -l)"
done
printf '  growth from the first sample to the last: %+d kB over %d messages (%s s)\n' \
    "$((last - first))" "$((sent - per_msg * S))" "$(($(date +%s) - t0))"

line=$(load -n "$per" -r 5 -f "churn$$-%d@dovecot.test")
check "$line" churn
rss2=$(rss_kb "$MILTER_PID")
printf '\n%d more distinct recipients (the full cache evicts): RSS %d kB, %+d kB against the filled cache\n' \
    "$((per * S))" "$rss2" "$((rss2 - rss1))"
