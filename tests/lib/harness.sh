# shellcheck shell=bash
# tests/lib/harness.sh - the frame of every daemon and e2e test script
# (sourced first; it sources check.sh, rig.sh, milter.sh and mail.sh): a temporary
# directory, one EXIT trap that stops everything the script started and
# judges how each milter ended, waits with an upper bound, and one way to
# say "skip".
#
#   here=$(dirname "$(readlink -f "$0")")
#   . "$here/../lib/harness.sh"
#   harness_init NAME          -> TEST_DIR=/tmp/nexthop-NAME.XXXXXX (0755), the EXIT trap
#   milter_start DIR CONF [SOCK]   (milter.sh) returns once the log says "started:"
#   ok / bad / check / eq / wait_for   (check.sh) PASS/FAIL lines, failures in $fails
#   wait_log FILE REGEX [SECONDS] [FROM]   a line after line FROM (default 0) matches
#                                  REGEX (grep -E) within SECONDS (default 30)
#   log_lines FILE             -> the number of lines FILE has now (a FROM for wait_log)
#   bg_start NAME CMD...       -> a helper in the background, BG_PID[NAME]; stopped at exit
#   bg_stop NAME               -> SIGTERM (SIGKILL after 10 s) and reap; its status not judged
#   at_exit CMD...             -> run CMD at exit (last added first), once the milters stopped
#   skip WHY                   -> SKIP line, the test ends now as skipped (exit 77)
#   skip_part WHY              -> SKIP line, the test goes on and ends as skipped unless it fails
#   missing DEP WHY            -> a dependency tests/run.sh installs is not there: a failure
#                                 under tests/run.sh (NEXTHOP_REQUIRE_DEPS=1), else `skip`
#   need CMD PACKAGE           -> CMD is there, or PACKAGE is installed (apt), or `missing`
#   finish [TEXT]              -> stops the milters (how they ended is checked), prints
#                                 "N failure(s) TEXT", exits 1 on a failure, 77 on a skip, else 0
# Exit status of a test: 0 passed, 1 failed, 77 skipped (tests/CMakeLists.txt
# sets SKIP_RETURN_CODE 77); only `skip` and `skip_part` give 77, a 77 from
# anything else is a failure, and a failure always wins over a skip.
# At exit, whatever the path: every milter still running is stopped and
# judged (exit status 0, no sanitizer report), then the at_exit commands run,
# and helpers, Sendmail (when sendmail.sh is loaded) and the rig are stopped; TEST_DIR is removed
# when the test passed or skipped, kept (and named) when it failed or KEEP=1.
# Sanitizers (tests/sanitize.sh sets log_path): each test writes its reports
# to its own log_path prefix, and any report a process of the test left is
# a failure of that test.
# Must not: stop a process it did not start, turn a failure into a pass or a
# skip, or wait without an upper bound.

if [[ -n ${_HARNESS_SH_LOADED:-} ]]; then
    return 0
fi
_HARNESS_SH_LOADED=1
_HARNESS_LIB=$(dirname "${BASH_SOURCE[0]}")
. "$_HARNESS_LIB/check.sh"
. "$_HARNESS_LIB/rig.sh"
. "$_HARNESS_LIB/milter.sh"
. "$_HARNESS_LIB/mail.sh"
# the tests import tests/daemon/milterclient.py: no __pycache__ in the source tree
export PYTHONDONTWRITEBYTECODE=1

declare -gA BG_PID=()
declare -ga _AT_EXIT=()
_HARNESS_SKIPPED=0
_HARNESS_REPORTS=()

harness_init() {
    TEST_DIR=$(mktemp -d "/tmp/nexthop-$1.XXXXXX") || exit 1
    chmod 0755 "$TEST_DIR"
    export TEST_DIR
    _harness_sanitizer_prefix "$1"
    trap _harness_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# _harness_sanitizer_prefix NAME: log_path=P becomes P-NAME, so the reports
# of this test's processes are told apart (tests/sanitize.sh still finds them).
_harness_sanitizer_prefix() {
    local var val path
    for var in ASAN_OPTIONS UBSAN_OPTIONS; do
        val=${!var:-}
        path=$(tr ':' '\n' <<<"$val" | sed -n 's/^log_path=//p' | tail -n 1)
        [[ -n $path ]] || continue
        export "$var=$val:log_path=$path-$1"
        _HARNESS_REPORTS+=("$path-$1")
    done
}

log_lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
_log_has() { tail -n +"$(($3 + 1))" "$1" 2>/dev/null | grep -Eq -- "$2"; }
wait_log() { # FILE REGEX [SECONDS] [FROM]
    wait_for "${3:-30}" _log_has "$1" "$2" "${4:-0}"
}

bg_start() { # NAME CMD... (stdin is the caller's, e.g. a here-document)
    local name=$1
    shift
    "$@" <&0 &
    BG_PID[$name]=$!
}

bg_stop() { # NAME
    local pid=${BG_PID[$1]:-} end
    [[ -n $pid ]] || return 0
    unset "BG_PID[$1]"
    kill -TERM "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null
    end=$((SECONDS + 10))
    while _rig_alive "$pid" && ((SECONDS < end)); do sleep 0.05; done
    _rig_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

at_exit() { _AT_EXIT+=("$(printf '%q ' "$@")"); }

skip() {
    echo "SKIP: $*"
    _HARNESS_SKIPPED=1
    exit 77
}
skip_part() {
    echo "SKIP: $*"
    _HARNESS_SKIPPED=1
}
missing() { # DEP WHY
    if [[ ${NEXTHOP_REQUIRE_DEPS:-0} == 1 ]]; then
        bad "$1 is missing ($2), and tests/run.sh installs it: this would be a skip that hides a broken install"
        exit 1
    fi
    skip "$1 is missing: $2"
}
need() { # CMD PACKAGE
    command -v "$1" >/dev/null && return 0
    _rig_with_lock install _rig_apt_install "$2" >/dev/null 2>&1
    command -v "$1" >/dev/null || missing "$2" "no $1 (apt-get install $2 failed)"
}

# _harness_stop_milters: every milter still running, stopped and judged.
_harness_stop_milters() {
    local pid
    for pid in "${_MILTERS[@]}"; do
        milter_stop "$pid" || bad "the milter did not end cleanly: $MILTER_STOP_WHY"
    done
}

# _harness_reports: reports any process of this test left (tests/sanitize.sh).
_harness_reports() {
    local p f
    for p in "${_HARNESS_REPORTS[@]}"; do
        for f in "$p".*; do
            [[ -s $f && $f != *.seen ]] || continue
            bad "sanitizer report $f from a process of this test:"
            head -n 40 "$f" | sed 's/^/  | /'
            # counted once: tests/sanitize.sh still lists it at the end
            mv -f "$f" "$f.seen" 2>/dev/null
        done
    done
}

finish() { # [TEXT]
    _harness_stop_milters
    _harness_reports
    echo "$fails failure(s)${1:+ $1}"
    ((fails == 0)) || exit 1
    ((_HARNESS_SKIPPED == 0)) || exit 77
    exit 0
}

_harness_exit() {
    local rc=$? i name
    local -
    set +e +u
    trap - INT TERM
    _harness_stop_milters
    for ((i = ${#_AT_EXIT[@]} - 1; i >= 0; i--)); do
        eval "${_AT_EXIT[i]}"
    done
    for name in "${!BG_PID[@]}"; do bg_stop "$name"; done
    declare -F sendmail_cleanup >/dev/null && sendmail_cleanup
    rig_cleanup
    _harness_reports
    if ((rc == 77 && _HARNESS_SKIPPED == 0)); then
        echo "FAIL: exit status 77 without a skip"
        rc=1
    fi
    if ((fails > 0)); then
        ((rc == 0 || rc == 77)) && echo "$fails failure(s)"
        rc=1
    elif ((rc == 0 && _HARNESS_SKIPPED)); then
        rc=77
    fi
    if [[ -n ${TEST_DIR:-} && -d $TEST_DIR ]]; then
        if ((rc == 0 || rc == 77)) && [[ -z ${KEEP:-} ]]; then
            rm -rf -- "$TEST_DIR"
        else
            echo "(files kept in $TEST_DIR)"
        fi
    fi
    exit "$rc"
}
