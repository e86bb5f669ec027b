# shellcheck shell=bash
# tests/lib/milter.sh - start and stop the milter under test (sourced by
# tests/lib/harness.sh and contrib/demo.sh, after rig.sh). Needs NEXTHOP_BIN
# (set by ctest).
#   milter_start DIR CONF [SOCKET]  -> MILTER_PID, MILTER_SOCK, MILTER_LOG (DIR/milter.log);
#                                      returns once the log says "started:" (a config that
#                                      logs warnings only: once the milter answers a
#                                      negotiation), 1 if it exited or was not ready in 30 s
#   milter_stop [PID]               -> SIGTERM, waits (60 s at most, then SIGKILL); returns 1
#                                      unless it exited 0 and left no sanitizer report; the
#                                      reason in MILTER_STOP_WHY, any report printed (default:
#                                      the last one started)
#   milter_track PID LOG            -> a milter started by hand (its own command line), judged
#                                      by milter_stop like the others
#   milter_stop_all                 -> milter_stop for every milter still running; 1 if any failed
#   milter_kill PID [SIGNAL]        -> signal (default KILL) and reap, how it ended not judged
#   milter_reload                   -> SIGUSR1, waits for its reload line: 0 loaded,
#                                      1 refused (the old config stays) or no line in 30 s
#   milter_alive                    -> the last milter started still runs (not a zombie)
#   subst FILE > OUT                -> replaces @VAR@ with $VAR from the environment
# Sanitizer reports: a report in the milter's log (ASan/UBSan/LSan print to
# stderr), or in a log_path file of ASAN_OPTIONS/UBSAN_OPTIONS named for its
# PID (tests/sanitize.sh), fails milter_stop.
# Must not: signal a process it did not start, or wait without a bound.

: "${NEXTHOP_BIN:=${NEXTHOP_BUILD:-build}/milter/milter-nexthop}"
declare -ga _MILTERS=()          # PIDs started here and not stopped yet
declare -gA _MILTER_LOG_OF=()    # PID -> its log

subst() {
    perl -pe 's/@([A-Z_][A-Z0-9_]*)@/exists $ENV{$1} ? $ENV{$1} : die "unset variable $1 in template\n"/ge' "$1"
}

_milter_lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

# _milter_logged LOG FROM PID REGEX: a line of PID after line FROM matches REGEX.
_milter_logged() {
    tail -n +"$(($2 + 1))" "$1" 2>/dev/null | grep -Eq -- "milter-nexthop\[$3\]: $4"
}

# _milter_negotiates SOCKET: the milter answers an option negotiation (it
# serves); for configs whose log level hides the "started:" line.
_milter_negotiates() {
    "${RIG_PYTHON:-python3}" - "$1" 2>/dev/null <<'EOF'
import socket, struct, sys
spec = sys.argv[1]
if spec.startswith("unix:"):
    s, addr = socket.socket(socket.AF_UNIX), spec[5:]
else:
    port, _, host = spec[5:].partition("@")
    s, addr = socket.socket(), (host or "127.0.0.1", int(port))
s.settimeout(2)
s.connect(addr)
body = b"O" + struct.pack(">III", 6, 0x1FF, 0)
s.sendall(struct.pack(">I", len(body)) + body)
got = b""
while len(got) < 5:
    chunk = s.recv(64)
    if not chunk:
        sys.exit(1)
    got += chunk
sys.exit(0 if got[4:5] == b"O" else 1)
EOF
}

_milter_untrack() {
    local p keep=()
    for p in "${_MILTERS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    _MILTERS=("${keep[@]}")
    [[ ${MILTER_PID:-} != "$1" ]] || MILTER_PID=
}

milter_start() {
    local dir=$1 conf=$2 sock=${3:-unix:$1/milter.sock} log from pid quiet=0 end
    mkdir -p "$dir"
    chmod 0755 "$dir"
    log=$dir/milter.log
    from=$(_milter_lines "$log")
    grep -Eq 'level *= *"(warning|error)"' "$conf" 2>/dev/null && quiet=1
    "$NEXTHOP_BIN" -c "$conf" -f -p "$sock" >>"$log" 2>&1 &
    pid=$!
    _MILTERS+=("$pid")
    _MILTER_LOG_OF[$pid]=$log
    MILTER_PID=$pid MILTER_SOCK=$sock MILTER_LOG=$log
    export MILTER_PID MILTER_SOCK MILTER_LOG
    end=$((SECONDS + ${MILTER_START_SECONDS:-30}))
    while :; do
        if ((quiet)); then
            _milter_negotiates "$sock" && break
        else
            _milter_logged "$log" "$from" "$pid" 'info: started: ' && break
        fi
        if ! _rig_alive "$pid"; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            _milter_untrack "$pid"
            echo "milter exited at start (status $rc):" >&2
            tail -n +"$((from + 1))" "$log" | tail -n 20 >&2
            return 1
        fi
        if ((SECONDS >= end)); then
            echo "milter (pid $pid) not ready after ${MILTER_START_SECONDS:-30} s:" >&2
            tail -n +"$((from + 1))" "$log" | tail -n 20 >&2
            return 1
        fi
        sleep 0.05
    done
    [[ $sock != unix:* ]] || chmod 0666 "${sock#unix:}"
}

milter_track() {
    _MILTERS+=("$1")
    _MILTER_LOG_OF[$1]=$2
}

# milter_wait_started PID LOG: the milter PID logged that it serves (10 s at most).
milter_wait_started() { wait_log "$2" "milter-nexthop\[$1\]: info: started: socket " 10; }

# milter_start_fg LOG CONF SOCKET [ARGS...] -> MILTER_FG_PID: a foreground milter
# started exactly as given (unlike milter_start, nothing is done to its socket:
# for tests of the socket's mode and of options), tracked so the harness judges
# how it ends; returns once it logs that it serves.
milter_start_fg() {
    local log=$1 conf=$2 sock=$3
    shift 3
    "$NEXTHOP_BIN" -c "$conf" -f -p "$sock" "$@" >"$log" 2>&1 &
    MILTER_FG_PID=$!
    milter_track "$MILTER_FG_PID" "$log"
    milter_wait_started "$MILTER_FG_PID" "$log"
}

milter_alive() { [[ -n ${MILTER_PID:-} ]] && _rig_alive "$MILTER_PID"; }

milter_reload() {
    local pid=${MILTER_PID:-} log=${MILTER_LOG:-} from end
    [[ -n $pid ]] || return 1
    from=$(_milter_lines "$log")
    kill -USR1 "$pid" || return 1
    end=$((SECONDS + 30))
    while ((SECONDS < end)); do
        _milter_logged "$log" "$from" "$pid" 'info: reload: .* loaded in ' && return 0
        _milter_logged "$log" "$from" "$pid" 'error: reload failed' && return 1
        _rig_alive "$pid" || return 1
        sleep 0.05
    done
    echo "milter (pid $pid): no reload line 30 s after SIGUSR1" >&2
    return 1
}

# _milter_reports PID LOG: print the sanitizer reports the milter left.
_milter_reports() {
    local pid=$1 log=$2 var path f
    grep -a -m 5 -E '^(==[0-9]+==)?ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: ' "$log" 2>/dev/null
    for var in "${ASAN_OPTIONS:-}" "${UBSAN_OPTIONS:-}"; do
        path=$(tr ':' '\n' <<<"$var" | sed -n 's/^log_path=//p' | tail -n 1)
        [[ -n $path ]] || continue
        f=$path.$pid
        [[ -s $f ]] || continue
        echo "== $f"
        head -n 40 "$f"
        mv -f "$f" "$f.seen"   # reported here: tests/lib/harness.sh does not count it again
    done
}

milter_stop() {
    local pid=${1:-${MILTER_PID:-}} log rc=0 end why="" reports
    MILTER_STOP_WHY=
    [[ -n $pid && -n ${_MILTER_LOG_OF[$pid]:-} ]] || return 0
    log=${_MILTER_LOG_OF[$pid]}
    _milter_untrack "$pid"
    kill -TERM "$pid" 2>/dev/null
    end=$((SECONDS + ${MILTER_STOP_SECONDS:-60}))
    while _rig_alive "$pid"; do
        if ((SECONDS >= end)); then
            why="did not stop within ${MILTER_STOP_SECONDS:-60} s of SIGTERM (killed); "
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || rc=$?
    unset "_MILTER_LOG_OF[$pid]"
    if ((rc > 128)); then
        why+="killed by signal $((rc - 128)) at shutdown"
    elif ((rc != 0)); then
        why+="exited with status $rc at shutdown"
    fi
    reports=$(_milter_reports "$pid" "$log")
    [[ -z $reports ]] || why+="${why:+; }left a sanitizer report"
    [[ -z $why ]] && return 0
    MILTER_STOP_WHY="(pid $pid, log $log) ${why%; }"
    echo "milter $MILTER_STOP_WHY"
    [[ -z $reports ]] || printf '%s\n' "$reports" | sed 's/^/  | /'
    return 1
}

milter_stop_all() {
    local pid rc=0
    for pid in "${_MILTERS[@]}"; do
        milter_stop "$pid" || rc=1
    done
    return "$rc"
}

milter_kill() {
    local pid=$1
    kill "-${2:-KILL}" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    _milter_untrack "$pid"
    unset "_MILTER_LOG_OF[$pid]"
}
