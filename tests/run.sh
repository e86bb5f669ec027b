#!/usr/bin/env bash
# tests/run.sh - the one test command: installs what is missing (apt),
# builds, and runs every test with ctest (unit, milter protocol, daemon,
# end-to-end against real Postfix and Dovecot).
#   tests/run.sh                 everything
#   tests/run.sh -L unit         only one label (any ctest arguments; skips the sanitizer pass)
# BUILD_DIR (default build) chooses the build directory.
# A test that skips shows as skipped (exit 77, tests/lib/harness.sh), but
# here every dependency the tests need is installed first, so a test that
# finds one missing fails instead (NEXTHOP_REQUIRE_DEPS=1): a broken
# install cannot pass for a skip. Skips for other reasons (no mount
# namespace, ...) stay skips.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
. tests/lib/rig.sh
rig_install
export NEXTHOP_REQUIRE_DEPS=1
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-}
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2 "$@"
# With no arguments (CI), the whole suite runs once more built with ASan + UBSan.
(( $# > 0 )) || SANITIZE_E2E=1 bash tests/sanitize.sh
