# shellcheck shell=bash
# tests/bench/bench-lib.sh - shared set-up for the benchmark scripts
# (sourced, never run): installs what is missing, builds into $BUILD (default
# build/) when the milter or the load client is absent, starts Dovecot and the
# milter on loopback, and small helpers for best-of figures.
#   bench_init [PACKAGE...]       -> TOP, BUILD, NEXTHOP_BIN, LOAD, BENCH_DIR; trap on EXIT
#   bench_milter_conf FILE ACTION [REMOTE SETTINGS]   header|relay; validates dovecot.test
#   bench_bg PIDVAR CMD...        start CMD in the background, stopped at exit
#   field LINE KEY                a key=value figure from a bench_rcpt_load line
#   better_max/better_min A B     the better of two numbers; ratio A B; median_of N...
#   rss_kb PID                    VmRSS of PID in kB
# Must not: stop anything it did not start, or reach beyond 127.0.0.1.

TOP=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "$TOP" || exit 1
# shellcheck source=../lib/rig.sh
. tests/lib/rig.sh
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
declare -ga BENCH_PIDS=()

_bench_build() {
    local load=$BUILD/tests/bench_rcpt_load
    [[ -x $BUILD/milter/milter-nexthop && -x $load ]] && return 0
    echo "building into $BUILD ..." >&2
    [[ -f $BUILD/CMakeCache.txt ]] || cmake -S . -B "$BUILD" >/dev/null || return 1
    cmake --build "$BUILD" -j2 --target milter-nexthop bench_rcpt_load >/dev/null
}

_bench_packages() { # PACKAGE...: apt-get install the ones missing
    local p missing=()
    for p in "$@"; do
        dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "${missing[@]}" >/dev/null
}

bench_cleanup() {
    local pid
    local -
    set +e +u   # a trap handler runs under errexit too: never stop half-way
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    milter_stop >/dev/null 2>&1
    rig_cleanup
    [[ -n ${BENCH_KEEP:-} ]] || rm -rf "$BENCH_DIR"
}

bench_init() {
    rig_install || exit 1
    _bench_packages bc "$@" || exit 1
    _bench_build || { echo "build into $BUILD failed" >&2; exit 1; }
    export NEXTHOP_BIN=$BUILD/milter/milter-nexthop
    LOAD=$BUILD/tests/bench_rcpt_load
    . tests/lib/milter.sh
    BENCH_DIR=$(mktemp -d /tmp/nexthop-bench.XXXXXX)
    chmod 755 "$BENCH_DIR"
    trap bench_cleanup EXIT
}

# bench_bg PIDVAR CMD...: start CMD in the background; stopped at exit.
bench_bg() {
    local var=$1
    shift
    "$@" &
    BENCH_PIDS+=($!)
    printf -v "$var" '%s' "$!"
}

# bench_milter_conf FILE ACTION [REMOTE SETTINGS]: validate every recipient of
# dovecot.test against the Dovecot of this run; next hop dovecot.
bench_milter_conf() {
    cat >"$1" <<CONF
milter = { log = { level = "warning"; }; };
remote = { dovecot = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp";
                       lookup = true; tls = { enable = false; }; ${3:-} }; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "$2"; on-tempfail = "tempfail"; };
CONF
}

field() { # LINE KEY
    local kv
    for kv in $1; do
        [[ $kv == "$2="* ]] && { printf '%s\n' "${kv#*=}"; return 0; }
    done
    printf '0\n'
}

better_max() { (($(echo "$1 > $2" | bc -l))) && echo "$1" || echo "$2"; }
better_min() { (($(echo "$1 < $2" | bc -l))) && echo "$1" || echo "$2"; }
ratio() { echo "scale=3; $1 / $2" | bc -l | sed 's/^\./0./'; }

median_of() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : v[NR / 2]}'; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
