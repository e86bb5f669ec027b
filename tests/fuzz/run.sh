#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer targets (clang, ASan + UBSan) in
# build-fuzz and runs each for FUZZ_SECONDS (default 20) from its seed
# corpus in tests/fuzz/corpus/<target>. Installs clang and the libFuzzer
# runtime (libclang-rt-14-dev on Debian 12) when missing.
#   tests/fuzz/run.sh                      every target (CI: tests/daemon/fuzz.sh)
#   FUZZ_SECONDS=600 tests/fuzz/run.sh addr    one target, longer
#   build-fuzz/fuzz_addr -artifact_prefix=/tmp/ FILE   replay one input (a reproducer)
# A crash, leak, timeout or oracle failure stops that target; its input is
# kept as build-fuzz/artifacts/<target>-crash-* (the path is printed) and
# the run fails. New coverage goes to build-fuzz/corpus/<target>, never
# into the source tree. FUZZ_BUILD_DIR (default build-fuzz) moves it.
# Must not: write into tests/fuzz/corpus, or share the gcc build directory.
set -uo pipefail
src=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
secs=${FUZZ_SECONDS:-20}
declare -A MAX_LEN=([addr]=600 [config]=4096 [client]=4096 [wire]=9000)
targets=("$@")
((${#targets[@]})) || targets=(addr config client wire)

have_fuzzer() {
    command -v clang >/dev/null &&
        echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null
}
if ! have_fuzzer; then
    . "$src/tests/lib/rig.sh"
    # shellcheck disable=SC2034 # read by rig_install
    RIG_PACKAGES=(clang libclang-rt-14-dev)
    rig_install || { echo "fuzz: cannot install clang"; exit 1; }
    have_fuzzer || { echo "fuzz: clang cannot link -fsanitize=fuzzer"; exit 1; }
fi

mkdir -p "$build"
exec {lock}>"$build/.run.lock"
flock -w 600 "$lock" || { echo "fuzz: $build is busy"; exit 1; }
t0=$SECONDS
CC=clang cmake -S "$src" -B "$build" -DNEXTHOP_FUZZ=ON -DNEXTHOP_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2 --target fuzz_all >"$build/build.log" 2>&1 ||
    { tail -40 "$build/build.log"; exit 1; }
echo "fuzz: built in $((SECONDS - t0)) s"

# the targets' temporary files (a config, a unix socket) go here, removed at the end
TMPDIR=$(mktemp -d /tmp/nexthop-fuzz.XXXXXX) && export TMPDIR || exit 1
trap 'rm -rf "$TMPDIR"' EXIT
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
# tests/fuzz/lsan.supp: leaks inside third-party libraries (libconfig's lexer
# on an unterminated string), each explained there
export LSAN_OPTIONS="suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
fails=0
mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
    bin=$build/fuzz_$t seeds=$src/tests/fuzz/corpus/$t work=$build/corpus/$t
    [[ -x $bin && -d $seeds ]] || { echo "fuzz: FAIL: no target $t"; fails=$((fails + 1)); continue; }
    mkdir -p "$work"
    before=$(ls "$build/artifacts" | wc -l)
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="${MAX_LEN[$t]:-4096}" \
        -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
        "$work" "$seeds" >"$build/$t.log" 2>&1
    rc=$?
    stats=$(grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/$t.log" |
        sed 's/stat:://' | tr '\n' ' ')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$build/$t.log" | tail -1)
    if ((rc == 0)); then
        echo "fuzz: PASS: $t for ${secs} s ($cov, $stats)"
    else
        fails=$((fails + 1))
        new=$(ls -t "$build/artifacts" | head -$(($(ls "$build/artifacts" | wc -l) - before)))
        echo "fuzz: FAIL: $t (exit $rc); reproducer(s): ${new:+$(sed "s#^#$build/artifacts/#" <<<"$new" | tr '\n' ' ')}"
        grep -m1 -E 'ERROR: |fuzz_[a-z]+: |runtime error' "$build/$t.log" | cut -c1-300
        grep -A12 -m1 -E 'ERROR: |^fuzz_[a-z]+: |runtime error' "$build/$t.log" | grep -E '^ +#[0-9]' | head -6
    fi
done
echo "fuzz: $fails target(s) failed"
exit $((fails > 0))
