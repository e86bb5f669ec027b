#!/usr/bin/env bash
# tests/bench/alternatives.sh - the cold-path load through Postfix, with the
# milter validating recipients vs Postfix's own address verification
# (reject_unverified_recipient: the verify service probes Dovecot LMTP
# through the queue and smtpd polls for the result, answering 450 while the
# probe is in progress). Same Dovecot, same run, three Postfix instances:
#   milter  - smtpd_milters = the milter (cold lookups against Dovecot)
#   verify  - reject_unverified_recipient, Postfix defaults
#             (address_verify_poll_count 3, address_verify_poll_delay 3s)
#   verify1 - the same with address_verify_poll_delay = 1s (its minimum)
# Load: bench_rcpt_load speaking SMTP, 10 sessions, distinct unknown
# recipients, 5 per transaction; a 450 is retried after RETRY seconds (a real
# MTA waits minutes) until the answer is definitive (2xx/5xx). For each
# address: the time from its first RCPT to a definitive answer, and whether
# the first attempt got one. unverified_recipient_reject_code = 550 so that
# an unknown user gets a definitive answer at all (Postfix's default is 450).
# Both kinds of instance lift smtpd's error limits (every RCPT here is an
# error to smtpd), so error sleeps and disconnects do not skew either side.
# Rounds alternate; at the end the best run of each (quickest median answer).
# Usage: tests/bench/alternatives.sh [RCPTS_PER_SESSION] [ROUNDS] [RETRY]   (defaults 10, 2, 1)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
N=${1:-10}
ROUNDS=${2:-2}
RETRY=${3:-1}
S=10
bench_init

dovecot_start "$BENCH_DIR/dovecot" >/dev/null
bench_milter_conf "$BENCH_DIR/milter.conf" header
milter_start "$BENCH_DIR/m" "$BENCH_DIR/milter.conf" "unix:$BENCH_DIR/m/milter.sock"
common=("transport_maps = inline:{dovecot.test=lmtp:inet:127.0.0.1:$DOVECOT_LMTP_PORT}"
        "default_process_limit = 200" "smtpd_client_connection_count_limit = 0"
        "smtpd_client_message_rate_limit = 0" "smtpd_client_recipient_rate_limit = 0"
        "smtpd_soft_error_limit = 100000" "smtpd_hard_error_limit = 100000"
        "smtpd_error_sleep_time = 0" "smtpd_junk_command_limit = 100000")
verify=("smtpd_recipient_restrictions = reject_unverified_recipient"
        "unverified_recipient_reject_code = 550")
postfix_start "$BENCH_DIR/milter" "${common[@]}" "smtpd_milters = $MILTER_SOCK" >/dev/null
milter_port=$POSTFIX_PORT
postfix_start "$BENCH_DIR/verify" "${common[@]}" "${verify[@]}" >/dev/null
verify_port=$POSTFIX_PORT
postfix_start "$BENCH_DIR/verify1" "${common[@]}" "${verify[@]}" "address_verify_poll_delay = 1s" >/dev/null
verify1_port=$POSTFIX_PORT
run_id=$$

kinds=(milter verify verify1)
declare -A label=([milter]="Postfix + milter" [verify]="reject_unverified_recipient"
    [verify1]="  same, poll delay 1s")
load() { # KIND ROUND [N] -> one result line
    local port_var=$1_port
    "$LOAD" -P smtp -a "127.0.0.1:${!port_var}" -c $S -n "${3:-$N}" -r 5 -s s@example.net \
        -R "$RETRY" -A 30 -f "$1$run_id-r$2-%d@dovecot.test"
}
for k in "${kinds[@]}"; do load "$k" 0 1 >/dev/null; done   # warm-up: processes, verify db

declare -A first ans50 ans99 rate
for k in "${kinds[@]}"; do first[$k]=0 ans50[$k]=999999 ans99[$k]=0 rate[$k]=0; done
for r in $(seq 1 "$ROUNDS"); do
    for k in "${kinds[@]}"; do
        line=$(load "$k" "$r")
        addrs=$(field "$line" addresses)
        per_s=$(echo "scale=1; $addrs / $(field "$line" secs)" | bc -l)
        printf 'round %d %-8s first attempt definitive %5.1f%%  answer median %8.1f ms  p99 %8.1f ms  %6.1f addresses/s  (450s: %s)\n' \
            "$r" "$k" "$(echo "100 * $(field "$line" first_definitive)" | bc -l)" \
            "$(field "$line" answer_p50_ms)" "$(field "$line" answer_p99_ms)" "$per_s" "$(field "$line" temp)"
        # the best run is the one with the quickest median answer; its figures go with it
        if [[ $(better_min "$(field "$line" answer_p50_ms)" "${ans50[$k]}") != "${ans50[$k]}" ]]; then
            first[$k]=$(field "$line" first_definitive) ans50[$k]=$(field "$line" answer_p50_ms)
            ans99[$k]=$(field "$line" answer_p99_ms) rate[$k]=$per_s
        fi
    done
done
printf '\nbest run of %d, %d sessions x %d distinct unknown recipients, 450 retried after %ss:\n' \
    "$ROUNDS" $S "$N" "$RETRY"
printf '  %-30s %22s %18s %12s %12s\n' "" "first attempt definitive" "answer median" "answer p99" "addresses/s"
for k in "${kinds[@]}"; do
    printf '  %-30s %21.1f%% %15.1f ms %9.1f ms %12.1f\n' "${label[$k]}" \
        "$(echo "100 * ${first[$k]}" | bc -l)" "${ans50[$k]}" "${ans99[$k]}" "${rate[$k]}"
done
printf '  time to a definitive answer, verify/milter: median %sx, p99 %sx\n' \
    "$(ratio "${ans50[verify]}" "${ans50[milter]}")" "$(ratio "${ans99[verify]}" "${ans99[milter]}")"
