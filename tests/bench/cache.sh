#!/bin/sh
# cache.sh - builds (if needed) and runs bench_cache: cache hits per second
# with 1 and 2 threads, ns per hit, bytes per entry beyond the key.
# Build dir: $BUILD, default <source>/build. Only reads and builds; changes nothing else.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$SRC" -B "$BUILD" >/dev/null
fi
cmake --build "$BUILD" -j2 --target bench_cache >/dev/null

BIN=$(find "$BUILD" -type f -name bench_cache -perm -u+x | head -n 1)
if [ -z "$BIN" ]; then
    echo "cache.sh: bench_cache not found under $BUILD" >&2
    exit 1
fi
exec "$BIN"
