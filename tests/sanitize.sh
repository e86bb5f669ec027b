#!/usr/bin/env bash
# tests/sanitize.sh - the test suite again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer (-DNEXTHOP_SANITIZE=ON, gcc) in build-asan.
# LeakSanitizer is on, so every process (unit tests, the daemon under the
# daemon and milter tests, the CLI modes) must also exit without leaks;
# tests/daemon/leak-reload.sh runs its 1,000 reloads against this build.
# Every sanitizer report of every process goes to one directory, one file
# prefix per test (tests/lib/harness.sh): a report fails the test whose
# process left it (the milter's at its exit included), and any report
# fails the run. As in tests/run.sh, a missing dependency is a failure.
#   tests/sanitize.sh                 unit, milter and daemon tests
#   SANITIZE_E2E=1 tests/sanitize.sh  the end-to-end tests too (~3 more minutes; CI does this)
#   tests/sanitize.sh -R hostile      any further ctest arguments
# ASAN_BUILD_DIR (default build-asan) chooses the build directory.
# Must not: share a build directory with the normal build, or run the
# fuzzers (they have their own clang build, tests/fuzz/run.sh).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
. tests/lib/rig.sh
rig_install
export NEXTHOP_REQUIRE_DEPS=1
build=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$build" -DNEXTHOP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2

reports=$(mktemp -d /tmp/nexthop-sanitize.XXXXXX)
chmod 1777 "$reports"   # the daemon may run as another user (-u)
export ASAN_OPTIONS="detect_leaks=1:exitcode=23:detect_stack_use_after_return=1:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
labels=(-LE e2e)
[[ ${SANITIZE_E2E:-0} == 1 ]] && labels=()

rc=0
start=$SECONDS
# Not here: the fuzzers (their own clang build) and e2e/load, whose criterion
# is flat RSS - ASan's quarantine keeps freed memory, so RSS grows by design
# under it (LeakSanitizer still checks every process at exit).
ctest --test-dir "$build" --output-on-failure -j2 "${labels[@]}" -E '^(daemon/fuzz|e2e/load)$' "$@" || rc=$?
echo "sanitize: ctest took $((SECONDS - start)) s"
shopt -s nullglob
found=("$reports"/*)
if ((${#found[@]} > 0)); then
    echo "sanitize: FAIL: ${#found[@]} sanitizer report(s):"
    for f in "${found[@]}"; do
        echo "=== $f"
        head -60 "$f"
    done
    rc=1
else
    echo "sanitize: no sanitizer report from any process"
    rm -rf "$reports"
fi
exit "$rc"
