# shellcheck shell=bash
# tests/lib/rig.sh - test rig for milter-nexthop: private Postfix, Dovecot
# and smtp-sink instances on 127.0.0.1, started and stopped by PID.
#
# Source it from a bash test script (safe under set -u / set -e):
#
#   . "$(dirname "$0")/lib/rig.sh"
#   trap rig_cleanup EXIT
#   rig_install
#   dovecot_start "$tmp/dovecot"       # exports DOVECOT_* variables
#   postfix_start "$tmp/postfix" "smtpd_milters = inet:127.0.0.1:$p"
#
# Functions: rig_install rig_free_port rig_wait_port rig_cert
#   dovecot_start dovecot_stop dovecot_restart mailbox_count
#   postfix_start postfix_stop postfix_reload postfix_queue_count
#   postfix_held_count postfix_flush postfix_wait_empty
#   smtp_sink_start smtp_sink_stop smtp_sink_count rig_cleanup
# Exported: DOVECOT_DIR DOVECOT_CERT DOVECOT_LMTP_PORT DOVECOT_LMTPS_PORT
#   DOVECOT_IMAP_PORT DOVECOT_IMAPS_PORT (last dovecot_start/restart),
#   POSTFIX_DIR POSTFIX_PORT (last postfix_start). Every instance directory
#   also gets an env file to source when several instances run:
#   DIR/rig-dovecot.env, DIR/rig-postfix.env, DIR/rig-sink.env.
#
# Notes:
# - Call the start functions in the test's own shell, not in $(...) or a
#   subshell: the exports and rig_cleanup's list of started things would be
#   lost there. Directory paths must not contain spaces.
# - A private Postfix has no route by default (default_transport = error,
#   so smtpd rejects such recipients at RCPT time): give routes with
#   transport_maps, or relayhost (then default_transport becomes smtp), or
#   default_transport. It never looks anything up in DNS.
# - Daemons here are reparented to a PID 1 that does not reap: stopped
#   daemons stay as zombies. _rig_alive treats a zombie as gone.
#
# Nothing here uses pkill/killall: processes are stopped by PID only, and
# rig_cleanup only touches what this shell started.

if [[ -n ${_RIG_SH_LOADED:-} ]]; then
    return 0
fi
_RIG_SH_LOADED=1

# Things started by this shell, in start order: "dovecot|DIR",
# "postfix|DIR", "sink|DIR".
declare -ga _RIG_STARTED=()

RIG_PYTHON=${RIG_PYTHON:-}
if [[ -z $RIG_PYTHON ]]; then
    if [[ -x /usr/bin/python3 ]]; then RIG_PYTHON=/usr/bin/python3; else RIG_PYTHON=python3; fi
fi
# Port range for rig_free_port: below the kernel's ephemeral range
# (32768-60999) so outgoing connections never steal a reserved port.
RIG_PORT_MIN=${RIG_PORT_MIN:-20000}
RIG_PORT_MAX=${RIG_PORT_MAX:-32000}
RIG_PORT_RESERVE_DIR=${RIG_PORT_RESERVE_DIR:-/tmp/.rig-ports}
RIG_LOCK_DIR=${RIG_LOCK_DIR:-/run/lock}

RIG_PACKAGES=(postfix libmilter-dev libgnutls28-dev libconfig-dev miltertest
    swaks libnet-ssleay-perl dovecot-core dovecot-lmtpd dovecot-imapd
    gnutls-bin redis-server cmake pkg-config libcmocka-dev libsqlite3-dev
    openssl ca-certificates bc libmicrohttpd-dev libhiredis-dev libsasl2-modules
    systemd groff-base libpq-dev postgresql clang libclang-rt-14-dev
    dpkg-dev file iproute2 libgsasl-dev)

# Dovecot test users (all with password "secret").
RIG_DOVECOT_USERS=(alice@dovecot.test bob@dovecot.test
    1alice@dovecot.test 2alice@dovecot.test 3alice@dovecot.test
    4alice@dovecot.test 5alice@dovecot.test)

_rig_log() { printf 'rig: %s\n' "$*" >&2; }

# _rig_now_ms: milliseconds since the epoch (bash 5 EPOCHREALTIME).
_rig_now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s\n' $((t / 1000))
}

# _rig_abs DIR: absolute path without creating anything.
_rig_abs() { realpath -m -- "$1"; }

# _rig_make_traversable DIR: daemons drop privileges (dovecot, vmail,
# postfix, nobody) and must be able to traverse every ancestor of DIR.
# `mktemp -d` makes 0700 directories: add o+x (traverse only, no listing)
# to such ancestors when they are temporary directories; warn otherwise.
_rig_make_traversable() {
    local d
    d=$(_rig_abs "$1") || return 1
    d=$(dirname -- "$d")
    while [[ $d != / ]]; do
        if [[ -d $d ]] && ! [[ $(stat -c %A -- "$d") =~ ^d........[xt]$ ]]; then
            case $d/ in
            /tmp/?* | /var/tmp/?* | /dev/shm/?* | "${TMPDIR:-/nonexistent}"/?*)
                chmod o+x -- "$d" || return 1 ;;
            *) _rig_log "warning: $d is not traversable by other users; daemons may fail" ;;
            esac
        fi
        d=$(dirname -- "$d")
    done
    return 0
}

# _rig_track KIND DIR: remember a started thing (once).
_rig_track() {
    local e
    for e in "${_RIG_STARTED[@]}"; do
        [[ $e == "$1|$2" ]] && return 0
    done
    _RIG_STARTED+=("$1|$2")
}

_rig_untrack() {
    local e new=()
    for e in "${_RIG_STARTED[@]}"; do
        [[ $e == "$1|$2" ]] || new+=("$e")
    done
    _RIG_STARTED=("${new[@]}")
}

# _rig_alive PID: true if the process exists and is not a zombie.
_rig_alive() {
    local pid=$1 st
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# _rig_children PID: direct child PIDs of PID.
_rig_children() {
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true
}

# _rig_wait_gone SECONDS PID...: SIGTERM was already sent by the caller;
# wait until all PIDs are gone, then SIGKILL the stragglers (by PID).
_rig_wait_gone() {
    local secs=$1 pid left end
    shift
    end=$(($(_rig_now_ms) + secs * 1000))
    while :; do
        left=()
        for pid in "$@"; do
            _rig_alive "$pid" && left+=("$pid")
        done
        [[ ${#left[@]} -eq 0 ]] && return 0
        if (($(_rig_now_ms) >= end)); then
            _rig_log "killing leftover PIDs ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.2
            return 0
        fi
        sleep 0.05
    done
}

# ---------------------------------------------------------------- install

_rig_with_lock() { # NAME CMD... : run CMD under an exclusive flock
    local name=$1 fd rc=0
    shift
    mkdir -p "$RIG_LOCK_DIR" 2>/dev/null || true
    exec {fd}>>"$RIG_LOCK_DIR/rig-$name.lock"
    flock -w 900 "$fd" || true
    "$@" || rc=$?
    exec {fd}>&-
    return "$rc"
}

_rig_missing_packages() {
    local p n
    n=$(dpkg -s "${RIG_PACKAGES[@]}" 2>/dev/null | grep -c '^Status: install ok installed' || true)
    if [[ $n -eq ${#RIG_PACKAGES[@]} ]]; then
        return 0
    fi
    for p in "${RIG_PACKAGES[@]}"; do
        dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || printf '%s\n' "$p"
    done
}

_rig_apt_install() {
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y --no-install-recommends)
    local have_lists=0 f
    for f in /var/lib/apt/lists/*_Packages*; do
        [[ -e $f ]] && have_lists=1 && break
    done
    if [[ $have_lists -eq 0 ]]; then
        apt-get -o DPkg::Lock::Timeout=600 update || return 1
    fi
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@"; then
        _rig_log "apt-get install failed; running apt-get update and retrying"
        apt-get -o DPkg::Lock::Timeout=600 update || return 1
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" || return 1
    fi
}

_rig_install_locked() {
    local missing
    mapfile -t missing < <(_rig_missing_packages)
    if [[ ${#missing[@]} -gt 0 ]]; then
        _rig_log "installing: ${missing[*]}"
        # Keep package scripts from starting system daemons, and keep the
        # postfix package from writing a system configuration.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
        _rig_apt_install "${missing[@]}" || return 1
    fi
    _rig_ensure_vmail || return 1
    _rig_ensure_postfix_default_conf || return 1
}

# rig_install: install missing packages (apt), vmail user, /etc/postfix/main.cf.
rig_install() {
    _rig_with_lock install _rig_install_locked
}

_rig_ensure_vmail() {
    getent passwd vmail >/dev/null 2>&1 && return 0
    useradd -r -U -M -d /nonexistent -s /usr/sbin/nologin vmail 2>/dev/null ||
        getent passwd vmail >/dev/null 2>&1
}

# The default /etc/postfix/main.cf must exist: postqueue/postsuper -c DIR
# read it to find alternate_config_directories. The "No configuration"
# install leaves none; the system Postfix is never started by the rig.
_rig_ensure_postfix_default_conf() {
    [[ -d /etc/postfix ]] || return 0
    [[ -s /etc/postfix/main.cf ]] && return 0
    cat >/etc/postfix/main.cf <<'EOF'
# Minimal default main.cf written by milter-nexthop tests/lib/rig.sh.
# The system Postfix is not used by the tests; private instances list
# their config directories in alternate_config_directories below.
compatibility_level = 3.6
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
smtp_dns_support_level = disabled
alternate_config_directories =
EOF
}

# _rig_postfix_allow_dir DIR: list DIR in alternate_config_directories of the
# default main.cf (exact names are required: Postfix compares with strcmp,
# no patterns). Entries whose main.cf no longer exists are pruned.
_rig_postfix_allow_dir_locked() {
    local dir=$1 cur d keep=() found=0 old=()
    _rig_ensure_postfix_default_conf
    cur=$(postconf -c /etc/postfix -h alternate_config_directories 2>/dev/null || true)
    read -r -a old <<<"${cur//,/ }"
    for d in "${old[@]}"; do
        [[ -z $d ]] && continue
        if [[ $d == "$dir" ]]; then
            found=1
            keep+=("$d")
        elif [[ $d != /* || -f $d/main.cf ]]; then
            keep+=("$d")
        fi
    done
    [[ $found -eq 1 ]] || keep+=("$dir")
    # unchanged (already listed, nothing pruned): leave the file alone
    [[ "${keep[*]}" == "${old[*]}" ]] && return 0
    postconf -c /etc/postfix -e "alternate_config_directories = ${keep[*]}" || return 1
    # see _postfix_backdate: every Postfix command reading a main.cf younger
    # than ~2 s sleeps until it is older (postfix-script reads this one).
    touch -d '-10 seconds' /etc/postfix/main.cf
}
_rig_postfix_allow_dir() {
    _rig_with_lock postfix-default-conf _rig_postfix_allow_dir_locked "$1"
}

# ---------------------------------------------------------------- ports

# rig_free_port: print a free TCP port on 127.0.0.1. Ports are picked at
# random and reserved for a few minutes (files in $RIG_PORT_RESERVE_DIR), so
# repeated calls - also from parallel test runs - do not hand out the same
# port before it is bound.
rig_free_port() {
    "$RIG_PYTHON" - "$RIG_PORT_MIN" "$RIG_PORT_MAX" "$RIG_PORT_RESERVE_DIR" <<'EOF'
import os, random, socket, sys, time
lo, hi, rdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(rdir, mode=0o1777, exist_ok=True)
now = time.time()
for name in os.listdir(rdir):  # forget old reservations
    try:
        if now - os.stat(os.path.join(rdir, name)).st_mtime > 600:
            os.unlink(os.path.join(rdir, name))
    except OSError:
        pass
for _ in range(1000):
    p = random.randint(lo, hi)
    path = os.path.join(rdir, str(p))
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - os.stat(path).st_mtime < 300:
                continue
            os.utime(path)  # stale reservation: take it over
        except OSError:
            continue
        fd = None
    if fd is not None:
        os.close(fd)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit(1)
EOF
}

# rig_wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts (default 10 s).
rig_wait_port() {
    local port=$1 secs=${2:-10} end
    end=$(($(_rig_now_ms) + secs * 1000))
    while :; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        (($(_rig_now_ms) >= end)) && return 1
        sleep 0.05
    done
}

# _rig_port_closed PORT: true if nothing accepts on 127.0.0.1:PORT.
_rig_port_closed() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- TLS

# rig_cert DIR: self-signed DIR/cert.pem + DIR/key.pem for localhost, 2 days.
rig_cert() {
    local dir=$1
    mkdir -p "$dir" || return 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || {
        _rig_log "rig_cert: openssl failed for $dir"
        return 1
    }
    # Test-only key: readable by unprivileged daemons (milter, smtp-sink).
    chmod 0644 "$dir/key.pem" "$dir/cert.pem"
}

# ---------------------------------------------------------------- Dovecot

_dovecot_conf() { # DIR
    local dir=$1 uid gid p
    uid=$(id -u vmail) && gid=$(id -g vmail) || return 1
    # shellcheck disable=SC1091
    . "$dir/rig-dovecot.env"
    : >"$dir/passwd"
    for p in "${RIG_DOVECOT_USERS[@]}"; do
        printf '%s:{PLAIN}secret:%s:%s::%s/mail/%s/%s::\n' \
            "$p" "$uid" "$gid" "$dir" "${p#*@}" "${p%@*}" >>"$dir/passwd"
    done
    chmod 0644 "$dir/passwd"
    cat >"$dir/dovecot.conf" <<EOF
# Written by milter-nexthop tests/lib/rig.sh
instance_name = rig-$DOVECOT_LMTP_PORT
base_dir = $dir/base
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
debug_log_path = $dir/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
verbose_proctitle = yes
shutdown_clients = yes

ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0

first_valid_uid = $uid
first_valid_gid = $gid
mail_uid = $uid
mail_gid = $gid
mail_location = maildir:$dir/mail/%d/%n
namespace inbox {
  inbox = yes
  separator = /
}

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}

service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $DOVECOT_LMTP_PORT
  }
  inet_listener lmtps {
    address = 127.0.0.1
    port = $DOVECOT_LMTPS_PORT
    ssl = yes
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DOVECOT_IMAPS_PORT
    ssl = yes
  }
}
EOF
}

# _dovecot_launch DIR: start dovecot with the existing DIR/dovecot.conf.
_dovecot_launch() {
    local dir=$1 pid="" i tries port ok
    # shellcheck disable=SC1091
    . "$dir/rig-dovecot.env"
    for tries in 1 2 3 4 5; do
        rm -f "$dir/base/master.pid"
        if dovecot -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.start.log" 2>&1; then
            for i in $(seq 1 100); do
                pid=$(cat "$dir/base/master.pid" 2>/dev/null || true)
                [[ -n $pid ]] && break
                sleep 0.05
            done
            if [[ -n $pid ]]; then
                _rig_track dovecot "$dir"
                break
            fi
        fi
        # A port of the previous run may still be held for a moment.
        _rig_log "dovecot start in $dir failed (try $tries): $(tail -n 2 "$dir/dovecot.start.log" "$dir/dovecot.log" 2>/dev/null | tr '\n' ' ')"
        sleep 0.5
    done
    [[ -n $pid ]] || return 1
    ok=1
    for port in "$DOVECOT_LMTP_PORT" "$DOVECOT_LMTPS_PORT" "$DOVECOT_IMAP_PORT" "$DOVECOT_IMAPS_PORT"; do
        rig_wait_port "$port" 15 || {
            ok=0
            _rig_log "dovecot in $dir: port $port not listening"
        }
    done
    [[ $ok -eq 1 ]] || return 1
    # Warm up auth: the first auth after start is slow.
    for i in 1 2 3 4 5; do
        if doveadm -c "$dir/dovecot.conf" auth test alice@dovecot.test secret >/dev/null 2>&1; then
            _dovecot_export "$dir"
            return 0
        fi
        sleep 0.3
    done
    _rig_log "dovecot in $dir: auth warm-up failed"
    return 1
}

_dovecot_export() {
    # shellcheck disable=SC1091
    . "$1/rig-dovecot.env"
    export DOVECOT_DIR DOVECOT_CERT DOVECOT_LMTP_PORT DOVECOT_LMTPS_PORT \
        DOVECOT_IMAP_PORT DOVECOT_IMAPS_PORT
}

# dovecot_start DIR: standalone Dovecot under DIR (LMTP, LMTPS, IMAP, IMAPS).
dovecot_start() {
    local dir
    dir=$(_rig_abs "$1") || return 1
    if [[ -f $dir/base/master.pid ]] && _rig_alive "$(cat "$dir/base/master.pid" 2>/dev/null)"; then
        _rig_log "dovecot_start: a Dovecot already runs in $dir"
        return 1
    fi
    _rig_ensure_vmail || return 1
    mkdir -p "$dir/mail" "$dir/state" || return 1
    _rig_make_traversable "$dir" || return 1
    chmod 0755 "$dir" "$dir/state"
    chown vmail:vmail "$dir/mail"
    chmod 0700 "$dir/mail"
    [[ -s $dir/cert.pem && -s $dir/key.pem ]] || rig_cert "$dir" || return 1
    local lmtp lmtps imap imaps
    lmtp=$(rig_free_port) && lmtps=$(rig_free_port) &&
        imap=$(rig_free_port) && imaps=$(rig_free_port) || return 1
    cat >"$dir/rig-dovecot.env" <<EOF
DOVECOT_DIR=$dir
DOVECOT_CERT=$dir/cert.pem
DOVECOT_LMTP_PORT=$lmtp
DOVECOT_LMTPS_PORT=$lmtps
DOVECOT_IMAP_PORT=$imap
DOVECOT_IMAPS_PORT=$imaps
EOF
    _dovecot_conf "$dir" || return 1
    _dovecot_launch "$dir"
}

# dovecot_stop DIR: stop the Dovecot master (by PID) and wait for it and
# its children to be gone.
dovecot_stop() {
    local dir pid kids
    dir=$(_rig_abs "$1") || return 1
    pid=$(cat "$dir/base/master.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && _rig_alive "$pid"; then
        mapfile -t kids < <(_rig_children "$pid")
        kill -TERM "$pid" 2>/dev/null || true
        _rig_wait_gone 10 "$pid" "${kids[@]}"
    fi
    rm -f "$dir/base/master.pid"
    _rig_untrack dovecot "$dir"
    return 0
}

# dovecot_restart DIR: stop and start again on the same ports.
dovecot_restart() {
    local dir
    dir=$(_rig_abs "$1") || return 1
    dovecot_stop "$dir"
    _dovecot_launch "$dir"
}

# mailbox_count DIR USER@DOMAIN: messages in the user's INBOX (new + cur).
mailbox_count() {
    local dir user dom n=0 sub f
    dir=$(_rig_abs "$1") || return 1
    user=${2%@*}
    dom=${2#*@}
    for sub in new cur; do
        for f in "$dir/mail/$dom/$user/$sub"/*; do
            [[ -f $f ]] && n=$((n + 1))
        done
    done
    printf '%s\n' "$n"
}

# ---------------------------------------------------------------- Postfix

_postfix_master_cf() { # DIR PORT
    cat >"$1/master.cf" <<EOF
# Written by milter-nexthop tests/lib/rig.sh (all services chroot n)
127.0.0.1:$2 inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

_postfix_main_cf() { # DIR PORT
    local dir=$1 port=$2
    cat >"$dir/main.cf" <<EOF
# Written by milter-nexthop tests/lib/rig.sh
compatibility_level = 3.6
config_directory = $dir
queue_directory = $dir/q
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
# unique per instance, so chained instances do not see a mail loop
myhostname = pf$port.rig.test
mydomain = rig.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:5.1.1 rig: no local delivery
# No route unless the test gives one (transport_maps or relayhost):
# never look anything up in DNS.
default_transport = error:5.4.4 rig: no route configured
relay_transport = error:5.4.4 rig: no route configured
relay_domains =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtputf8_enable = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
biff = no
append_dot_mydomain = no
delay_warning_time = 0
milter_protocol = 6
milter_default_action = tempfail
EOF
}

# _postfix_mkqueue DIR: create DIR/q and DIR/data as post-install would
# (see /etc/postfix/postfix-files) and mark the queue for a quick start:
# `postfix start` then skips its integrity checks, which take ~1.5 s here
# (post-install create-missing, plus dozens of "not owned by root" warnings
# because the queue lives inside the config directory). Set
# RIG_POSTFIX_FULL_CHECK=1 to get the full checks.
_postfix_mkqueue() {
    local q=$1/q d
    install -d -o root -g root -m 0755 "$q" "$q/pid" || return 1
    install -d -o postfix -g root -m 0700 "$1/data" || return 1
    for d in active bounce corrupt defer deferred flush hold incoming private saved trace; do
        install -d -o postfix -g root -m 0700 "$q/$d" || return 1
    done
    install -d -o postfix -g postdrop -m 0730 "$q/maildrop" || return 1
    install -d -o postfix -g postdrop -m 0710 "$q/public" || return 1
    # postlogd appends to it; postsuper (which runs as postfix) writes it
    # directly while the instance is stopped.
    [[ -e $1/maillog ]] || install -o postfix -g postfix -m 0644 /dev/null "$1/maillog"
    if [[ ${RIG_POSTFIX_FULL_CHECK:-0} == 1 ]]; then
        rm -f "$q/quick-start"
    else
        : >"$q/quick-start"
    fi
}

# postfix_start DIR [key=value ...]: private Postfix under DIR; smtpd on a
# free port exported as POSTFIX_PORT, POSTFIX_DIR=DIR. Extra settings are
# applied with postconf -e (added, or replacing the rig's default).
postfix_start() {
    local dir port kv key have_dt=0 have_rh=0 pid i
    dir=$(_rig_abs "$1") || return 1
    shift
    if [[ -f $dir/q/pid/master.pid ]] &&
        _rig_alive "$(tr -d ' ' 2>/dev/null <"$dir/q/pid/master.pid")"; then
        _rig_log "postfix_start: a Postfix already runs in $dir"
        return 1
    fi
    mkdir -p "$dir" || return 1
    _rig_make_traversable "$dir" || return 1
    chmod 0755 "$dir"
    _postfix_mkqueue "$dir" || return 1
    port=$(rig_free_port) || return 1
    _postfix_main_cf "$dir" "$port"
    _postfix_master_cf "$dir" "$port"
    for kv in "$@"; do
        key=${kv%%=*}
        key=${key//[[:space:]]/}
        [[ $key == default_transport ]] && have_dt=1
        [[ $key == relayhost ]] && have_rh=1
        postconf -c "$dir" -e "$kv" || {
            _rig_log "postfix_start: bad setting: $kv"
            return 1
        }
    done
    # relayhost only applies to the smtp default transport.
    if [[ $have_rh -eq 1 && $have_dt -eq 0 ]]; then
        postconf -c "$dir" -e 'default_transport = smtp'
    fi
    _postfix_backdate "$dir"
    _rig_postfix_allow_dir "$dir" || return 1
    cat >"$dir/rig-postfix.env" <<EOF
POSTFIX_DIR=$dir
POSTFIX_PORT=$port
EOF
    if ! postfix -c "$dir" start </dev/null >>"$dir/postfix.start.log" 2>&1; then
        _rig_log "postfix -c $dir start failed: $(tail -n 5 "$dir/postfix.start.log" | tr '\n' ' ')"
        return 1
    fi
    for i in $(seq 1 100); do
        pid=$(tr -d ' ' 2>/dev/null <"$dir/q/pid/master.pid" || true)
        [[ -n $pid ]] && break
        sleep 0.05
    done
    _rig_track postfix "$dir"
    rig_wait_port "$port" 20 || {
        _rig_log "postfix in $dir: port $port not listening"
        return 1
    }
    export POSTFIX_DIR=$dir POSTFIX_PORT=$port
}

# Postfix reads main.cf with dict_load_file(), which sleeps in 300 ms steps
# until the file's mtime is ~2 s old (guard against half-written files):
# every `postfix start` right after writing main.cf costs ~2 s. Backdate it.
_postfix_backdate() {
    touch -d '-10 seconds' "$1/main.cf" "$1/master.cf" 2>/dev/null || true
}

# postfix_reload DIR [key=value ...]: change settings (postconf -e) and
# `postfix -c DIR reload`; returns once every process of the old
# generation (smtpd, trivial-rewrite ..., which may cache old answers) has
# exited (30 s at most), so the next connection meets the new settings.
postfix_reload() {
    local dir kv pid kids=() k end
    dir=$(_rig_abs "$1") || return 1
    shift
    for kv in "$@"; do
        postconf -c "$dir" -e "$kv" || {
            _rig_log "postfix_reload: bad setting: $kv"
            return 1
        }
    done
    _postfix_backdate "$dir"
    pid=$(tr -d ' ' 2>/dev/null <"$dir/q/pid/master.pid" || true)
    [[ -n $pid ]] && mapfile -t kids < <(_rig_children "$pid")
    postfix -c "$dir" reload </dev/null >>"$dir/postfix.start.log" 2>&1 || return 1
    end=$(($(_rig_now_ms) + 30000))
    for k in "${kids[@]}"; do
        while [[ -n $k ]] && _rig_alive "$k"; do
            if (($(_rig_now_ms) >= end)); then
                _rig_log "postfix_reload: process $k of the old generation still runs after 30 s"
                return 1
            fi
            sleep 0.05
        done
    done
}

# postfix_stop DIR: postfix -c DIR stop, then wait for master (and its
# children) to vanish.
postfix_stop() {
    local dir pid kids
    dir=$(_rig_abs "$1") || return 1
    pid=$(tr -d ' ' 2>/dev/null <"$dir/q/pid/master.pid" || true)
    if [[ -n $pid ]] && _rig_alive "$pid"; then
        mapfile -t kids < <(_rig_children "$pid")
        postfix -c "$dir" stop </dev/null >>"$dir/postfix.start.log" 2>&1 ||
            kill -TERM "$pid" 2>/dev/null || true
        _rig_wait_gone 15 "$pid" "${kids[@]}"
    fi
    _rig_untrack postfix "$dir"
    return 0
}

# postfix_queue_count DIR: messages in the queue (all queues, held included).
# Counted from the queue files, so it also works while Postfix is stopped.
postfix_queue_count() {
    local dir q n=0 f
    dir=$(_rig_abs "$1") || return 1
    for q in maildrop incoming active deferred hold corrupt; do
        [[ -d $dir/q/$q ]] || continue
        while IFS= read -r f; do
            [[ -n $f ]] && n=$((n + 1))
        done < <(find "$dir/q/$q" -type f 2>/dev/null)
    done
    printf '%s\n' "$n"
}

# postfix_held_count DIR: messages on hold.
postfix_held_count() {
    local dir n
    dir=$(_rig_abs "$1") || return 1
    n=$(find "$dir/q/hold" -type f 2>/dev/null | wc -l)
    printf '%s\n' "$((n + 0))"
}

# postfix_flush DIR: retry deferred mail now.
postfix_flush() {
    local dir
    dir=$(_rig_abs "$1") || return 1
    postqueue -c "$dir" -f >/dev/null 2>&1 ||
        postkick -c "$dir" public qmgr IDFA 2>/dev/null
}

# postfix_wait_empty DIR SECONDS: wait until the queue is empty.
postfix_wait_empty() {
    local dir=$1 secs=${2:-30} end
    end=$(($(_rig_now_ms) + secs * 1000))
    while :; do
        [[ $(postfix_queue_count "$dir") -eq 0 ]] && return 0
        (($(_rig_now_ms) >= end)) && return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------- smtp-sink

# smtp_sink_start DIR PORT [extra smtp-sink args, e.g. -L for LMTP]:
# one file per transaction in DIR (DIR/%H%M%S.<random>).
smtp_sink_start() {
    local dir port pid
    dir=$(_rig_abs "$1") || return 1
    port=$2
    shift 2
    mkdir -p "$dir" || return 1
    _rig_make_traversable "$dir" || return 1
    chown nobody "$dir"
    chmod 0755 "$dir"
    /usr/sbin/smtp-sink -u nobody -d "$dir/%H%M%S." "$@" "127.0.0.1:$port" 100 \
        </dev/null >>"$dir/smtp-sink.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/smtp-sink.pid"
    printf 'SMTP_SINK_DIR=%s\nSMTP_SINK_PORT=%s\nSMTP_SINK_PID=%s\n' "$dir" "$port" "$pid" >"$dir/rig-sink.env"
    _rig_track sink "$dir"
    rig_wait_port "$port" 10 || {
        _rig_log "smtp-sink on $port did not start: $(tail -n 3 "$dir/smtp-sink.log" | tr '\n' ' ')"
        return 1
    }
}

# smtp_sink_count DIR: transactions smtp-sink has written to DIR.
smtp_sink_count() {
    local dir n
    dir=$(_rig_abs "$1") || return 1
    n=$(find "$dir" -maxdepth 1 -type f -name '[0-9]*.*' 2>/dev/null | wc -l)
    printf '%s\n' "$((n + 0))"
}

# smtp_sink_stop DIR
smtp_sink_stop() {
    local dir pid
    dir=$(_rig_abs "$1") || return 1
    pid=$(cat "$dir/smtp-sink.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && _rig_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        _rig_wait_gone 5 "$pid"
    fi
    # reap it if it is our child
    [[ -n $pid ]] && { wait "$pid" 2>/dev/null || true; }
    rm -f "$dir/smtp-sink.pid"
    _rig_untrack sink "$dir"
    return 0
}

# ---------------------------------------------------------------- cleanup

# rig_cleanup: stop everything this shell started, newest first. For
# `trap rig_cleanup EXIT`; never changes the exit status.
rig_cleanup() {
    local rc=$? i e kind dir
    local -
    set +e +u
    for ((i = ${#_RIG_STARTED[@]} - 1; i >= 0; i--)); do
        e=${_RIG_STARTED[i]}
        kind=${e%%|*}
        dir=${e#*|}
        case $kind in
        dovecot) dovecot_stop "$dir" ;;
        postfix) postfix_stop "$dir" ;;
        sink) smtp_sink_stop "$dir" ;;
        esac
    done
    _RIG_STARTED=()
    return "$rc"
}
