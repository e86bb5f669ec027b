# shellcheck shell=bash
# tests/lib/check.sh - PASS/FAIL bookkeeping for the shell tests (sourced;
# tests/lib/harness.sh sources it for every daemon and e2e script).
#   ok WHAT / bad WHAT          print a result line; bad counts a failure in $fails
#   check WHAT CMD...           ok or bad by CMD's exit status
#   eq GOT WANTED               true when equal, else says what it got
#   wait_for SECONDS CMD...     retries CMD every 0.1 s until it succeeds or time runs out
# Must not: sleep for a fixed time where a condition can be polled.
fails=${fails:-0}
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
eq() { [[ $1 == "$2" ]] || { echo "  got '$1', wanted '$2'" >&2; return 1; }; }
wait_for() { # SECONDS CMD...
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS >= end)) && return 1
        sleep 0.1
    done
}
