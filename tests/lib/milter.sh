# tests/lib/milter.sh - start and stop the milter under test (sourced by
# test scripts, beside rig.sh). Needs NEXTHOP_BIN (set by ctest).
#   milter_start DIR CONF [SOCKET]  -> MILTER_PID, MILTER_SOCK, MILTER_LOG
#   milter_stop                     -> SIGTERM, waits, fails if it crashed
#   milter_reload                   -> SIGUSR1
#   subst FILE > OUT                -> replaces @VAR@ with $VAR from the environment

: "${NEXTHOP_BIN:=${NEXTHOP_BUILD:-build}/milter/milter-nexthop}"

subst() {
    perl -pe 's/@([A-Z_][A-Z0-9_]*)@/exists $ENV{$1} ? $ENV{$1} : die "unset variable $1 in template\n"/ge' "$1"
}

milter_start() {
    local dir=$1 conf=$2 sock=${3:-unix:$1/milter.sock}
    mkdir -p "$dir"
    chmod 0755 "$dir"
    MILTER_LOG=$dir/milter.log
    MILTER_SOCK=$sock
    "$NEXTHOP_BIN" -c "$conf" -f -p "$sock" >>"$MILTER_LOG" 2>&1 &
    MILTER_PID=$!
    local path=${sock#unix:} i
    for i in $(seq 1 100); do
        if [[ $sock == unix:* ]]; then
            [[ -S $path ]] && break
        else
            local port=${sock#inet:}; port=${port%@*}
            (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
        fi
        if ! kill -0 "$MILTER_PID" 2>/dev/null; then
            echo "milter exited at start:" >&2; cat "$MILTER_LOG" >&2; return 1
        fi
        sleep 0.1
    done
    [[ $sock != unix:* ]] || chmod 0666 "$path"
    export MILTER_PID MILTER_SOCK MILTER_LOG
}

milter_reload() { kill -USR1 "$MILTER_PID"; }

milter_stop() {
    [[ -n ${MILTER_PID:-} ]] || return 0
    kill -TERM "$MILTER_PID" 2>/dev/null
    local rc=0
    wait "$MILTER_PID" || rc=$?
    MILTER_PID=
    if (( rc != 0 )); then
        echo "milter exited with $rc" >&2
        return 1
    fi
}
