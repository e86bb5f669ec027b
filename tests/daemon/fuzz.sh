#!/usr/bin/env bash
# tests/daemon/fuzz.sh - the short CI run of the fuzz targets (each for
# FUZZ_SECONDS, default 20) through tests/fuzz/run.sh; a ctest because
# tests/daemon/*.sh are registered automatically. It fails when any target
# crashes, leaks, times out or trips its oracle (run.sh names the
# reproducer). clang and its libFuzzer runtime are packages tests/run.sh
# installs: without them this is `missing`, not a pass.
# Must not: build in the ctest build directory (the fuzzers need clang; they
# use build-fuzz).
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init fuzz

# clang_links_fuzzers: clang builds a libFuzzer program (run.sh builds nothing without it)
clang_links_fuzzers() {
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer -o "$TEST_DIR/probe" - 2>"$TEST_DIR/probe.err"
}
need clang clang
if ! clang_links_fuzzers; then
    _rig_with_lock install _rig_apt_install libclang-rt-14-dev >/dev/null 2>&1
    clang_links_fuzzers ||
        missing libclang-rt-14-dev "clang cannot link -fsanitize=fuzzer: $(head -3 "$TEST_DIR/probe.err")"
fi

bash "$here/../fuzz/run.sh" "$@"
rc=$?
check "every fuzz target ran ${FUZZ_SECONDS:-20} s without a crash, leak, timeout or oracle failure (run.sh exit $rc)" \
    test "$rc" = 0
finish
