#!/usr/bin/env bash
# tests/bench/rcpt-cached.sh - cost of the milter on the cached RCPT path.
# smtp-source (M messages, 10 sessions, 5 recipients each) into Postfix ->
# smtp-sink, three Postfix instances measured in the same run, alternating:
#   base  - no milter
#   unix  - milter over a unix socket, validating every recipient from a warm cache (header mode)
#   inet  - the same milter over TCP (inet:PORT@127.0.0.1)
# Prints msg/s per round and the best-of ratios against the baseline.
# Usage: tests/bench/rcpt-cached.sh [MESSAGES] [ROUNDS]   (defaults 2000, 3)
set -euo pipefail
top=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$top"
. tests/lib/rig.sh
M=${1:-2000}
ROUNDS=${2:-3}
BUILD=${BUILD:-build}
rig_install
[[ -x $BUILD/milter/milter-nexthop ]] || { cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j2 >/dev/null; }
export NEXTHOP_BIN=$top/$BUILD/milter/milter-nexthop
. tests/lib/milter.sh
dir=$(mktemp -d /tmp/nexthop-bench.XXXXXX)
chmod 755 "$dir"
sink_pid=
milter2_pid=
trap '[[ -n $sink_pid ]] && kill $sink_pid; [[ -n $milter2_pid ]] && kill $milter2_pid; milter_stop; rig_cleanup' EXIT

dovecot_start "$dir/dovecot" >/dev/null
sink=$(rig_free_port)
/usr/sbin/smtp-sink -u nobody -c 127.0.0.1:$sink 1000 >/dev/null 2>&1 &
sink_pid=$!
rig_wait_port "$sink" 10
cat > "$dir/milter.conf" <<CONF
milter = { log = { level = "warning"; }; };
remote = { dovecot = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
                       tls = { enable = false; }; }; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "header"; };
CONF
milter_start "$dir/m" "$dir/milter.conf" "unix:$dir/m/milter.sock"
iport=$(rig_free_port)
"$NEXTHOP_BIN" -c "$dir/milter.conf" -f -p "inet:$iport@127.0.0.1" >"$dir/m2.log" 2>&1 &
milter2_pid=$!
rig_wait_port "$iport" 10

common=("relayhost = [127.0.0.1]:$sink" "smtpd_client_connection_count_limit = 0"
        "smtpd_client_message_rate_limit = 0" "smtpd_client_recipient_rate_limit = 0"
        "default_process_limit = 200")
postfix_start "$dir/base" "${common[@]}" >/dev/null; base_port=$POSTFIX_PORT
postfix_start "$dir/unix" "${common[@]}" "smtpd_milters = unix:$dir/m/milter.sock" >/dev/null; unix_port=$POSTFIX_PORT
postfix_start "$dir/inet" "${common[@]}" "smtpd_milters = inet:127.0.0.1:$iport" >/dev/null; inet_port=$POSTFIX_PORT

run() { # PORT DIR -> msg/s
    local t0 t1
    postfix_wait_empty "$2" 120 >/dev/null 2>&1 || true
    t0=$(date +%s.%N)
    /usr/sbin/smtp-source -c -m "$M" -s 10 -r 5 -t alice@dovecot.test -f s@example.net 127.0.0.1:$1 >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$M / ($t1 - $t0)" | bc -l
}
# warm the cache (1alice..5alice) and every process
for p in $base_port $unix_port $inet_port; do
    /usr/sbin/smtp-source -m 20 -s 2 -r 5 -t alice@dovecot.test -f s@example.net 127.0.0.1:$p >/dev/null 2>&1
done
declare -A best=([base]=0 [unix]=0 [inet]=0)
for r in $(seq 1 "$ROUNDS"); do
    for v in base unix inet; do
        port_var=${v}_port
        rate=$(run "${!port_var}" "$dir/$v")
        printf 'round %d %-5s %8.1f msg/s\n' "$r" "$v" "$rate"
        (( $(echo "$rate > ${best[$v]}" | bc -l) )) && best[$v]=$rate
    done
done
printf '\nbest of %d rounds, %d messages x 5 recipients, 10 sessions:\n' "$ROUNDS" "$M"
printf '  postfix alone        %8.1f msg/s\n' "${best[base]}"
printf '  milter, unix socket  %8.1f msg/s   ratio %.2f\n' "${best[unix]}" "$(echo "${best[unix]} / ${best[base]}" | bc -l)"
printf '  milter, inet socket  %8.1f msg/s   ratio %.2f\n' "${best[inet]}" "$(echo "${best[inet]} / ${best[base]}" | bc -l)"
grep -c "source=cache" "$dir/m/milter.log" >/dev/null 2>&1 || true
