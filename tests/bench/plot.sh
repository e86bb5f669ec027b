#!/usr/bin/env bash
# tests/bench/plot.sh - RCPT throughput and latency against concurrency (1, 2,
# 5, 10, 20 sessions) for the milter's cached path (1alice..5alice, warm
# cache) and cold path (distinct unknown recipients probed at Dovecot LMTP),
# with the bare LMTP RCPT round trip as reference; all driven by
# bench_rcpt_load; per point the fastest of ROUNDS alternating runs, with its
# latencies. Prints the
# table and draws doc/bench-concurrency.png (tests/bench/plot.gp).
# Usage: tests/bench/plot.sh [RCPTS_PER_POINT] [ROUNDS] [OUTPUT.png]
#        (defaults 6000, 2, doc/bench-concurrency.png)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
TOTAL=${1:-6000}
ROUNDS=${2:-2}
OUT=${3:-doc/bench-concurrency.png}
bench_init gnuplot-nox

dovecot_start "$BENCH_DIR/dovecot" >/dev/null
bench_milter_conf "$BENCH_DIR/milter.conf" header
milter_start "$BENCH_DIR/m" "$BENCH_DIR/milter.conf" "unix:$BENCH_DIR/m/milter.sock"
run_id=$$

load() { # KIND SESSIONS ROUND -> one result line
    local n=$((TOTAL / $2)) f="$1$run_id-c$2-r$3-%d@dovecot.test"
    case $1 in
    cached) "$LOAD" -P milter -a "$MILTER_SOCK" -c "$2" -n "$n" -r 5 -k 5 -s s@example.net \
                -f '%dalice@dovecot.test' ;;
    cold) "$LOAD" -P milter -a "$MILTER_SOCK" -c "$2" -n "$n" -r 5 -s s@example.net -f "$f" ;;
    bare) "$LOAD" -P lmtp -a "127.0.0.1:$DOVECOT_LMTP_PORT" -c "$2" -n "$n" -r 50 -f "$f" ;;
    esac
}
for k in cached cold bare; do load $k 10 0 >/dev/null; done   # warm-up

data=$BENCH_DIR/concurrency.dat
printf '# sessions  cached: RCPT/s p50_ms p99_ms  cold: RCPT/s p50_ms p99_ms  bare: RCPT/s p50_ms p99_ms\n' >"$data"
printf '%8s | %28s | %28s | %28s\n' sessions "milter cached: RCPT/s p50 p99" "milter cold: RCPT/s p50 p99" \
    "bare LMTP: RCPT/s p50 p99"
for c in 1 2 5 10 20; do
    declare -A rate=() p50=() p99=()
    for k in cached cold bare; do rate[$k]=0 p50[$k]=0 p99[$k]=0; done
    for r in $(seq 1 "$ROUNDS"); do
        for k in cached cold bare; do
            line=$(load $k $c "$r")
            # the best run is the fastest one; its latencies go with it
            if [[ $(better_max "$(field "$line" per_sec)" "${rate[$k]}") != "${rate[$k]}" ]]; then
                rate[$k]=$(field "$line" per_sec) p50[$k]=$(field "$line" p50_ms) p99[$k]=$(field "$line" p99_ms)
            fi
        done
    done
    row=$c
    for k in cached cold bare; do row+=" ${rate[$k]} ${p50[$k]} ${p99[$k]}"; done
    echo "$row" >>"$data"
    printf '%8d |' $c
    for k in cached cold bare; do
        printf ' %9.0f %7.3f ms %7.3f ms |' "${rate[$k]}" "${p50[$k]}" "${p99[$k]}"
    done
    echo
done
mkdir -p "$(dirname "$OUT")"
gnuplot -e "datafile='$data'; outfile='$OUT'; subtitle='$(date +%F), $(nproc) CPUs, fastest of $ROUNDS runs per point, Dovecot on loopback'" \
    tests/bench/plot.gp
echo "plot written to $OUT"
