#!/usr/bin/env bash
# tests/bench/relay.sh - delivery throughput into Dovecot: the milter in relay
# mode vs Postfix's own lmtp transport, same load, same Dovecot, same run.
#   relay  - smtp-source -> Postfix + milter (routing.action = relay): the
#            milter delivers each message to Dovecot LMTP at end of message
#            and discards Postfix's copy
#   lmtp   - smtp-source -> Postfix alone, transport_maps dovecot.test ->
#            lmtp:inet:127.0.0.1:<Dovecot LMTP>
# Each message (smtp-source's default, ~300 bytes) goes to 1alice..5alice@
# dovecot.test, 10 sessions. A run ends when every delivery is in the maildirs
# (counted, so mail Postfix still has queued is not taken as delivered);
# the mailboxes are emptied before each run.
# Both instances run with in_flow_delay = 0; Postfix's default (1s) is
# measured once at the end: a milter that discarded Postfix's copy was
# throttled to about one message per second per smtpd (no inflow token came
# back); one that deletes the delivered recipients is not.
# Rounds alternate; best-of msg/s and the ratio. Target: relay/lmtp >= 1.0.
# Usage: tests/bench/relay.sh [MESSAGES] [ROUNDS]   (defaults 400, 3)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
M=${1:-400}
ROUNDS=${2:-3}
bench_init

dovecot_start "$BENCH_DIR/dovecot" >/dev/null
bench_milter_conf "$BENCH_DIR/milter.conf" relay
milter_start "$BENCH_DIR/m" "$BENCH_DIR/milter.conf" "unix:$BENCH_DIR/m/milter.sock"
lmtp="lmtp:inet:127.0.0.1:$DOVECOT_LMTP_PORT"
common=("transport_maps = inline:{dovecot.test=$lmtp}" "default_process_limit = 200"
        "smtpd_client_connection_count_limit = 0" "smtpd_client_message_rate_limit = 0"
        "smtpd_client_recipient_rate_limit = 0")
postfix_start "$BENCH_DIR/relay" "${common[@]}" "smtpd_milters = $MILTER_SOCK" "in_flow_delay = 0" >/dev/null
relay_port=$POSTFIX_PORT
postfix_start "$BENCH_DIR/lmtp" "${common[@]}" "in_flow_delay = 0" >/dev/null
lmtp_port=$POSTFIX_PORT
postfix_start "$BENCH_DIR/relayd" "${common[@]}" "smtpd_milters = $MILTER_SOCK" >/dev/null
relayd_port=$POSTFIX_PORT

delivered() { # messages in the five maildirs
    { find "$DOVECOT_DIR/mail/dovecot.test" -type f \( -path '*/new/*' -o -path '*/cur/*' \) \
        2>/dev/null || true; } | wc -l
}

run() { # PORT COUNT -> msg/s (prints a warning when deliveries are missing)
    local want t0 t1 n end
    # every run starts with empty mailboxes: Dovecot gets slower as they grow
    rm -rf "$DOVECOT_DIR/mail/dovecot.test"
    want=$(($2 * 5))
    t0=$(date +%s.%N)
    /usr/sbin/smtp-source -c -m "$2" -s 10 -r 5 -t alice@dovecot.test -f s@example.net \
        "127.0.0.1:$1" >"$BENCH_DIR/smtp-source.out" 2>&1 || { echo "smtp-source failed:" >&2; tail -3 "$BENCH_DIR/smtp-source.out" >&2; }
    end=$(($(date +%s) + 120))
    while n=$(delivered); ((n < want && $(date +%s) < end)); do sleep 0.05; done
    t1=$(date +%s.%N)
    ((n == want)) || echo "warning: $((want - n)) deliveries missing after port $1" >&2
    echo "$2 / ($t1 - $t0)" | bc -l
}

run "$relay_port" 20 >/dev/null   # warm-up: validation cache, processes
run "$lmtp_port" 20 >/dev/null
run "$relayd_port" 20 >/dev/null
declare -A best=([relay]=0 [lmtp]=0)
for r in $(seq 1 "$ROUNDS"); do
    order="relay lmtp"
    ((r % 2)) || order="lmtp relay"    # ABBA: neither side always goes first
    for v in $order; do
        port_var=${v}_port
        rate=$(run "${!port_var}" "$M")
        printf 'round %d %-5s %7.1f msg/s\n' "$r" "$v" "$rate"
        best[$v]=$(better_max "$rate" "${best[$v]}")
    done
done
# Postfix defaults: the first messages pass while in-flow tokens last, then
# each smtpd waits in_flow_delay (1 s) per message
half=$(((M + 1) / 2))
first=$(run "$relayd_port" "$half")
steady=$(run "$relayd_port" "$half")
left=$(($(postfix_queue_count "$BENCH_DIR/relay") + $(postfix_queue_count "$BENCH_DIR/relayd")))
printf '\nbest of %d rounds, %d messages x 5 recipients, 10 sessions, into Dovecot LMTP (in_flow_delay = 0):\n' "$ROUNDS" "$M"
printf '  Postfix lmtp transport   %7.1f msg/s\n' "${best[lmtp]}"
printf '  milter relay             %7.1f msg/s   ratio %s (target >= 1.0)\n' "${best[relay]}" \
    "$(ratio "${best[relay]}" "${best[lmtp]}")"
printf '  milter relay, Postfix default in_flow_delay = 1s: first %d messages %.1f msg/s, next %d %.1f msg/s\n' \
    "$half" "$first" "$half" "$steady"
printf '  Postfix copies left behind by the relay instances: %s (want 0)\n' "$left"
