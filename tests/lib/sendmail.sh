# shellcheck shell=bash
# tests/lib/sendmail.sh - a private Sendmail for the end-to-end tests:
# fetched with apt-get download (cached), unpacked with dpkg -x, never
# installed (it cannot live beside Postfix), run from its own directory.
#
# Source it after rig.sh:
#
#   . "$here/../lib/rig.sh"; . "$here/../lib/sendmail.sh"
#   trap 'sendmail_cleanup; rig_cleanup' EXIT
#   sendmail_install
#   sendmail_start "$dir/sm" "include(\`$NEXTHOP_SRC/contrib/sendmail.mc')" ...
#
# Functions: sendmail_install sendmail_start sendmail_stop sendmail_run
#   sendmail_queue_count sendmail_quarantined_count sendmail_qf
#   sendmail_run_queue sendmail_wait_queue sendmail_cleanup
#
# No DNS traffic may ever leave the machine, and an unprepared Sendmail
# sleeps 60 s looking up its own name. So every Sendmail process (the
# daemon and each `sendmail -bp`/`-q`) runs inside `unshare --mount --uts`
# with its own host name and bind-mounted /etc/hosts (naming that host),
# /etc/nsswitch.conf (`hosts: files`) and /etc/resolv.conf (nameserver
# 127.0.0.1); the .cf adds its own service switch (`hosts files`), no
# resolver search, no canonification. Processes are stopped by PID only.

if [[ -n ${_SENDMAIL_SH_LOADED:-} ]]; then
    return 0
fi
_SENDMAIL_SH_LOADED=1

SENDMAIL_CACHE=${SENDMAIL_CACHE:-/var/cache/nexthop-sendmail}
SENDMAIL_PACKAGES=(sendmail-bin sendmail-cf sendmail-base)
declare -ga _SENDMAIL_STARTED=()

_sm_log() { printf 'sendmail.sh: %s\n' "$*" >&2; }

_sm_fetch_locked() {
    local root=$SENDMAIL_CACHE/root p f have
    if ! command -v m4 >/dev/null || ! command -v unshare >/dev/null; then
        _rig_apt_install m4 util-linux || return 1
    fi
    [[ -x $root/usr/libexec/sendmail/sendmail && -f $root/usr/share/sendmail/cf/m4/cf.m4 ]] &&
        return 0
    mkdir -p "$SENDMAIL_CACHE" || return 1
    for p in "${SENDMAIL_PACKAGES[@]}"; do
        have=0
        for f in "$SENDMAIL_CACHE/${p}"_*.deb; do
            [[ -s $f ]] && have=1
        done
        [[ $have -eq 1 ]] && continue
        # apt's sandbox user must be able to write where it downloads
        local tmp
        tmp=$(mktemp -d /tmp/nexthop-sm-fetch.XXXXXX) || return 1
        chmod 0777 "$tmp"
        if ! (cd "$tmp" && apt-get download "$p" >/dev/null 2>&1); then
            apt-get -o DPkg::Lock::Timeout=600 update >/dev/null 2>&1
            (cd "$tmp" && apt-get download "$p" >/dev/null 2>&1) || {
                _sm_log "apt-get download $p failed"
                rm -rf "$tmp"
                return 1
            }
        fi
        mv "$tmp"/*.deb "$SENDMAIL_CACHE/" && rm -rf "$tmp"
    done
    rm -rf "$root.new" && mkdir -p "$root.new" || return 1
    for f in "$SENDMAIL_CACHE"/*.deb; do
        dpkg -x "$f" "$root.new" || return 1
    done
    rm -rf "$root" && mv "$root.new" "$root"
}

# _sm_libs_locked: the shared libraries sendmail-bin depends on (not the
# package itself, which would conflict with Postfix).
_sm_libs_locked() {
    local deb="" f missing=() p
    for f in "$SENDMAIL_CACHE"/sendmail-bin_*.deb; do
        [[ -s $f ]] && deb=$f
    done
    [[ -n $deb ]] || return 1
    for p in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/[[:space:]]//g' |
        grep '^lib'); do
        dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        _sm_log "installing libraries Sendmail needs: ${missing[*]}"
        _rig_apt_install "${missing[@]}" || return 1
    fi
    if ldd "$SENDMAIL_CACHE/root/usr/libexec/sendmail/sendmail" | grep -q 'not found'; then
        _sm_log "sendmail still misses libraries: $(ldd "$SENDMAIL_CACHE/root/usr/libexec/sendmail/sendmail" | grep 'not found' | tr '\n' ' ')"
        return 1
    fi
}

# sendmail_install: m4 and an unpacked Sendmail in $SENDMAIL_CACHE/root
# (downloaded once, reused); exports SENDMAIL_BIN and SENDMAIL_CF_DIR.
sendmail_install() {
    _rig_with_lock sendmail _sm_fetch_locked || return 1
    _rig_with_lock install _sm_libs_locked || return 1
    export SENDMAIL_BIN=$SENDMAIL_CACHE/root/usr/libexec/sendmail/sendmail
    export SENDMAIL_CF_DIR=$SENDMAIL_CACHE/root/usr/share/sendmail/cf
}

# _sm_files DIR HOST: the files bind-mounted over /etc in the namespace.
_sm_files() {
    local dir=$1 host=$2
    printf '127.0.0.1\t%s %s localhost\n' "$host" "${host%%.*}" >"$dir/etc/hosts"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$dir/etc/nsswitch.conf"
    printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n' >"$dir/etc/resolv.conf"
    printf 'hosts\tfiles\naliases\tfiles\n' >"$dir/service.switch"
    : >"$dir/aliases"
    printf 'postmaster: root\n' >"$dir/aliases"
    chmod 0644 "$dir"/etc/* "$dir/service.switch" "$dir/aliases"
}

# _sm_exec DIR ARGS...: replace the calling (sub)shell by the private
# Sendmail binary with DIR's .cf, inside a namespace of its own.
_sm_exec() {
    local dir=$1
    shift
    # shellcheck disable=SC1091
    . "$dir/rig-sendmail.env"
    exec unshare --mount --uts /bin/sh -c '
        d=$1; h=$2; shift 2
        mount --bind "$d/etc/hosts" /etc/hosts &&
        mount --bind "$d/etc/nsswitch.conf" /etc/nsswitch.conf &&
        mount --bind "$d/etc/resolv.conf" /etc/resolv.conf &&
        hostname "$h" || exit 71
        exec "$@"' sh "$dir" "$SENDMAIL_HOST" "$SENDMAIL_BIN" -C "$dir/sendmail.cf" "$@"
}

# sendmail_run DIR ARGS...: run the private Sendmail with DIR's .cf in a
# namespace prepared like the daemon's (for -bp, -q, -bt ...).
sendmail_run() {
    (_sm_exec "$@")
}

# _sm_mc DIR PORT HOST LINES...: the test's .mc: a private, DNS-free,
# loopback-only MTA; LINES go before the MAILER() lines.
_sm_mc() {
    local dir=$1 port=$2 host=$3 line
    shift 3
    {
        cat <<EOF
divert(-1)
dnl Written by milter-nexthop tests/lib/sendmail.sh
divert(0)dnl
include(\`$SENDMAIL_CF_DIR/m4/cf.m4')dnl
VERSIONID(\`milter-nexthop test rig')dnl
OSTYPE(\`linux')dnl
define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl
define(\`QUEUE_DIR', \`$dir/queue')dnl
define(\`confPID_FILE', \`$dir/sendmail.pid')dnl
define(\`STATUS_FILE', \`$dir/statistics')dnl
define(\`ALIAS_FILE', \`$dir/aliases')dnl
define(\`confSERVICE_SWITCH_FILE', \`$dir/service.switch')dnl
define(\`confHOSTS_FILE', \`$dir/etc/hosts')dnl
define(\`confBIND_OPTS', \`-DNSRCH -DEFNAMES')dnl
define(\`confDOMAIN_NAME', \`$host')dnl
define(\`confCW_FILE', \`-o $dir/local-host-names')dnl
define(\`confLOG_LEVEL', \`14')dnl
define(\`confDELIVERY_MODE', \`background')dnl
define(\`confMIN_QUEUE_AGE', \`0')dnl
define(\`confQUEUE_LA', \`100')dnl
define(\`confREFUSE_LA', \`100')dnl
define(\`confDEF_USER_ID', \`nobody')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`accept_unqualified_senders')dnl
FEATURE(\`promiscuous_relay')dnl
DAEMON_OPTIONS(\`Port=$port, Addr=127.0.0.1, Name=MTA')dnl
EOF
        for line in "$@"; do
            printf '%s\n' "$line"
        done
        printf 'MAILER(`local'\'')dnl\nMAILER(`smtp'\'')dnl\n'
    } >"$dir/sendmail.mc"
}

# sendmail_start DIR [MC-LINE...]: a private Sendmail daemon under DIR,
# listening on 127.0.0.1:SENDMAIL_PORT (exported with SENDMAIL_DIR,
# SENDMAIL_PID, SENDMAIL_HOST). MC-LINEs (m4) are added before MAILER():
# the milter, a SMART_HOST, a mailertable ... The daemon runs queues every
# 30 s; sendmail_run_queue runs one at once.
sendmail_start() {
    local dir port host pid i
    dir=$(_rig_abs "$1") || return 1
    shift
    [[ -n ${SENDMAIL_BIN:-} ]] || sendmail_install || return 1
    if [[ -f $dir/rig-sendmail.env ]]; then
        # shellcheck disable=SC1091
        . "$dir/rig-sendmail.env"
        if _rig_alive "${SENDMAIL_PID:-}"; then
            _sm_log "sendmail_start: a Sendmail already runs in $dir"
            return 1
        fi
    fi
    mkdir -p "$dir/queue" "$dir/etc" || return 1
    _rig_make_traversable "$dir" || return 1
    chmod 0755 "$dir" && chmod 0700 "$dir/queue"
    port=$(rig_free_port) || return 1
    host=sm$port.rig.test
    _sm_files "$dir" "$host"
    : >"$dir/local-host-names"
    _sm_mc "$dir" "$port" "$host" "$@"
    # warnings (promiscuous_relay on a loopback-only daemon) are expected
    if ! m4 -D_CF_DIR_="$SENDMAIL_CF_DIR/" "$dir/sendmail.mc" >"$dir/sendmail.cf" 2>"$dir/m4.log" ||
        grep -qiv 'warning\|relay\|^ *$' "$dir/m4.log"; then
        _sm_log "m4 failed for $dir/sendmail.mc: $(head -n 5 "$dir/m4.log" | tr '\n' ' ')"
        return 1
    fi
    cat >"$dir/rig-sendmail.env" <<EOF
SENDMAIL_DIR=$dir
SENDMAIL_PORT=$port
SENDMAIL_HOST=$host
SENDMAIL_BIN=$SENDMAIL_BIN
EOF
    # the daemon: -bD stays in the foreground, so this PID is Sendmail's
    # (unshare and sh exec into it); -X logs every SMTP/LMTP exchange.
    (exec </dev/null >>"$dir/sendmail.out" 2>&1
        _sm_exec "$dir" -bD -q30s -X "$dir/traffic.log") &
    pid=$!
    printf 'SENDMAIL_PID=%s\n' "$pid" >>"$dir/rig-sendmail.env"
    _SENDMAIL_STARTED+=("$dir")
    export SENDMAIL_DIR=$dir SENDMAIL_PORT=$port SENDMAIL_HOST=$host SENDMAIL_PID=$pid
    rig_wait_port "$port" 20 || {
        _sm_log "sendmail in $dir: port $port not listening: $(tail -n 5 "$dir/sendmail.out" | tr '\n' ' ')"
        return 1
    }
}

# sendmail_stop DIR: SIGTERM to the daemon (by PID), then wait for it and
# for the children it had (SMTP sessions, queue runners).
sendmail_stop() {
    local dir pid kids=() k
    dir=$(_rig_abs "$1") || return 1
    pid=$(sed -n 's/^SENDMAIL_PID=//p' "$dir/rig-sendmail.env" 2>/dev/null)
    if [[ -n $pid ]] && _rig_alive "$pid"; then
        mapfile -t kids < <(_rig_children "$pid")
        for k in "${kids[@]}"; do
            [[ -n $k ]] && mapfile -t -O "${#kids[@]}" kids < <(_rig_children "$k")
        done
        kill -TERM "$pid" 2>/dev/null || true
        _rig_wait_gone 10 "$pid" "${kids[@]}"
        wait "$pid" 2>/dev/null
    fi
    local keep=() e
    for e in "${_SENDMAIL_STARTED[@]}"; do
        [[ $e == "$dir" ]] || keep+=("$e")
    done
    _SENDMAIL_STARTED=("${keep[@]}")
    return 0
}

# sendmail_cleanup: stop every Sendmail this shell started (for traps).
sendmail_cleanup() {
    local rc=$? i
    local -
    set +e +u
    for ((i = ${#_SENDMAIL_STARTED[@]} - 1; i >= 0; i--)); do
        sendmail_stop "${_SENDMAIL_STARTED[i]}"
    done
    return "$rc"
}

# sendmail_queue_count DIR: messages in the queue, quarantined ones included
# (qf and hf control files).
sendmail_queue_count() {
    find "$1/queue" -maxdepth 1 -type f \( -name 'qf*' -o -name 'hf*' \) 2>/dev/null | wc -l
}

# sendmail_quarantined_count DIR: quarantined messages (hf files).
sendmail_quarantined_count() {
    find "$1/queue" -maxdepth 1 -type f -name 'hf*' 2>/dev/null | wc -l
}

# sendmail_qf DIR: the control files (qf and hf), one path per line.
sendmail_qf() {
    find "$1/queue" -maxdepth 1 -type f \( -name 'qf*' -o -name 'hf*' \) 2>/dev/null | sort
}

# sendmail_run_queue DIR: one queue run now (delivers what can be).
sendmail_run_queue() {
    sendmail_run "$1" -q </dev/null >>"$1/sendmail.out" 2>&1
}

# sendmail_wait_queue DIR N SECONDS: wait until the queue holds N messages.
sendmail_wait_queue() {
    local dir=$1 want=$2 secs=${3:-20} end
    end=$(($(_rig_now_ms) + secs * 1000))
    while :; do
        [[ $(sendmail_queue_count "$dir") -eq $want ]] && return 0
        (($(_rig_now_ms) >= end)) && return 1
        sleep 0.1
    done
}
