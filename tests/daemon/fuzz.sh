#!/usr/bin/env bash
# tests/daemon/fuzz.sh - the short CI run of the fuzz targets (each for
# FUZZ_SECONDS, default 20) through tests/fuzz/run.sh; a ctest because
# tests/daemon/*.sh are registered automatically. Must not: build in the
# ctest build directory (the fuzzers need clang; they use build-fuzz).
exec bash "$(dirname "$(readlink -f "$0")")/../fuzz/run.sh" "$@"
