#!/usr/bin/env bash
# tests/bench/cold-lookups.sh - the milter's cold RCPT path: distinct
# recipients the cache has never seen, validated against a real Dovecot LMTP,
# 10 concurrent milter sessions (bench_rcpt_load speaking the milter protocol
# the way Postfix does: MAIL, then 5 RCPTs per transaction, each timed).
# Baseline in the same run: the bare LMTP RCPT round trip, 10 kept-open
# connections straight to the same Dovecot (LHLO once, then RCPT after RCPT,
# RSET and MAIL pipelined every 50). The recipients do not exist: an unknown
# user costs Dovecot the same full RCPT (user lookup, 550) and keeps mailboxes
# out of it. Also measured: both with 1 session (nothing saturated), and a
# diagnostic milter whose LMTP connections are never replaced.
# Rounds alternate bare / milter; at the end the best (fastest) run of each
# with its latencies, the ratios, the ratio of adjacent runs per round, and
# CPU per RCPT (from /proc/PID/stat) of the milter and of Dovecot (its master
# with every child, the reaped ones included), averaged over the rounds.
# Targets (issue 17): milter median RCPT latency within 1.25x of the bare
# round trip with one session, within 1.5x with 10 sessions.
# Usage: tests/bench/cold-lookups.sh [RCPTS_PER_SESSION] [ROUNDS]   (defaults 1000, 5)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
N=${1:-1000}
ROUNDS=${2:-5}
S=10
bench_init

dovecot_start "$BENCH_DIR/dovecot" >/dev/null
bench_milter_conf "$BENCH_DIR/milter.conf" header
milter_start "$BENCH_DIR/m" "$BENCH_DIR/milter.conf" "unix:$BENCH_DIR/m/milter.sock"
main_sock=$MILTER_SOCK main_pid=$MILTER_PID
# diagnostic: the same milter, but connections to Dovecot are not replaced
# every 50 lookups (limits.requests), to show what that costs
bench_milter_conf "$BENCH_DIR/milter-keep.conf" header "limits = { requests = 1000000; };"
milter_start "$BENCH_DIR/k" "$BENCH_DIR/milter-keep.conf" "unix:$BENCH_DIR/k/milter.sock"
keep_sock=$MILTER_SOCK
BENCH_PIDS+=("$MILTER_PID")
MILTER_SOCK=$main_sock MILTER_PID=$main_pid
run_id=$$

kinds=(bare milter keep bare1 milter1)
dovecot_master=$(cat "$BENCH_DIR/dovecot/base/master.pid")
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
dovecot_ticks() { # the master, its reaped children and the live ones
    local t p
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$dovecot_master/stat")
    for p in $(ps -o pid= --ppid "$dovecot_master"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
declare -A cpu_m cpu_d   # ticks summed over the rounds
declare -A label=([bare]="bare LMTP RCPT round trip" [milter]="milter, cold lookups"
    [keep]="milter, limits.requests=1e6 (diag.)" [bare1]="bare LMTP, 1 session"
    [milter1]="milter, 1 session")
load() { # KIND ROUND -> one result line
    local f="$1$run_id-r$2-%d@dovecot.test"
    case $1 in
    bare) "$LOAD" -P lmtp -a "127.0.0.1:$DOVECOT_LMTP_PORT" -c $S -n "$N" -r 50 -f "$f" ;;
    bare1) "$LOAD" -P lmtp -a "127.0.0.1:$DOVECOT_LMTP_PORT" -c 1 -n "$N" -r 50 -f "$f" ;;
    milter) "$LOAD" -P milter -a "$main_sock" -c $S -n "$N" -r 5 -s s@example.net -f "$f" ;;
    milter1) "$LOAD" -P milter -a "$main_sock" -c 1 -n "$N" -r 5 -s s@example.net -f "$f" ;;
    keep) "$LOAD" -P milter -a "$keep_sock" -c $S -n "$N" -r 5 -s s@example.net -f "$f" ;;
    esac
}
# warm-up: Dovecot's auth and lmtp processes, the milters' threads
for k in "${kinds[@]}"; do load "$k" 0 >/dev/null; done

declare -A rate p50 p99 r50
for k in "${kinds[@]}"; do rate[$k]=0 p50[$k]=0 p99[$k]=0 cpu_m[$k]=0 cpu_d[$k]=0; done
pair10=() pair1=()
for r in $(seq 1 "$ROUNDS"); do
    for k in "${kinds[@]}"; do
        d0=$(dovecot_ticks) m0=$(ticks "$main_pid")
        line=$(load "$k" "$r")
        cpu_d[$k]=$((cpu_d[$k] + $(dovecot_ticks) - d0))
        [[ $k == milter* ]] && cpu_m[$k]=$((cpu_m[$k] + $(ticks "$main_pid") - m0))
        printf 'round %d %-8s %8.0f RCPT/s  median %6.3f ms  p99 %6.3f ms  (550: %s, other: %s)\n' "$r" \
            "$k" "$(field "$line" per_sec)" "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" \
            "$(field "$line" no)" "$(( $(field "$line" yes) + $(field "$line" temp) ))"
        r50[$k]=$(field "$line" p50_ms)
        # the best run is the fastest one; its latency figures go with it
        if [[ $(better_max "$(field "$line" per_sec)" "${rate[$k]}") != "${rate[$k]}" ]]; then
            rate[$k]=$(field "$line" per_sec) p50[$k]=${r50[$k]} p99[$k]=$(field "$line" p99_ms)
        fi
    done
    pair10+=("$(ratio "${r50[milter]}" "${r50[bare]}")")
    pair1+=("$(ratio "${r50[milter1]}" "${r50[bare1]}")")
done
printf '\nbest run (fastest) of %d, distinct unknown recipients, %d per session (%d sessions unless said):\n' \
    "$ROUNDS" "$N" $S
for k in "${kinds[@]}"; do
    printf '  %-36s %7.0f lookups/s  median %6.3f ms  p99 %6.3f ms\n' "${label[$k]}" "${rate[$k]}" \
        "${p50[$k]}" "${p99[$k]}"
done
printf '  ratios milter/bare, 10 sessions: throughput %s, median %s (target <= 1.5), p99 %s\n' \
    "$(ratio "${rate[milter]}" "${rate[bare]}")" "$(ratio "${p50[milter]}" "${p50[bare]}")" \
    "$(ratio "${p99[milter]}" "${p99[bare]}")"
printf '  ratios milter/bare, 1 session:   throughput %s, median %s (target <= 1.25), p99 %s\n' \
    "$(ratio "${rate[milter1]}" "${rate[bare1]}")" "$(ratio "${p50[milter1]}" "${p50[bare1]}")" \
    "$(ratio "${p99[milter1]}" "${p99[bare1]}")"
printf '  median ratio milter/bare within each round (adjacent runs): 10 sessions %s -> median %s; 1 session %s -> median %s\n' \
    "${pair10[*]}" "$(median_of "${pair10[@]}")" "${pair1[*]}" "$(median_of "${pair1[@]}")"
per_rcpt_us() { # TICKS SESSIONS
    echo "$(($1 * 1000000 / hz / (ROUNDS * N * $2)))"
}
printf '  CPU per RCPT, mean of the rounds: 10 sessions: milter %s us + Dovecot %s us (bare: Dovecot %s us); 1 session: milter %s us + Dovecot %s us (bare: Dovecot %s us)\n' \
    "$(per_rcpt_us "${cpu_m[milter]}" $S)" "$(per_rcpt_us "${cpu_d[milter]}" $S)" \
    "$(per_rcpt_us "${cpu_d[bare]}" $S)" "$(per_rcpt_us "${cpu_m[milter1]}" 1)" \
    "$(per_rcpt_us "${cpu_d[milter1]}" 1)" "$(per_rcpt_us "${cpu_d[bare1]}" 1)"
