#!/usr/bin/env bash
# tests/daemon/cli.sh - the pinned command line: -n, -t, -q exit codes, -V,
# and clear errors for a busy port or an unwritable socket directory.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init cli
dir=$TEST_DIR
expect_rc() { # WANT WHAT CMD...
    local want=$1 what=$2; shift 2
    "$@" >"$dir/out" 2>"$dir/err"; local rc=$?
    if [[ $rc == "$want" ]]; then ok "$what (exit $rc)"; else bad "$what: exit $rc, wanted $want"; cat "$dir/out" "$dir/err"; fi
}

# -n accepts the shipped example and names FILE:LINE for errors
expect_rc 0 "-n accepts conf/milter-nexthop.conf" "$NEXTHOP_BIN" -c "$NEXTHOP_SRC/conf/milter-nexthop.conf" -n
printf 'milter = {\n  socket = "inet:1@127.0.0.1";\n  colour = "blue";\n};\n' > "$dir/bad.conf"
expect_rc 1 "-n refuses an unknown key" "$NEXTHOP_BIN" -c "$dir/bad.conf" -n
grep -q "^$dir/bad.conf:3: unknown key 'colour'" "$dir/err" && ok "-n error names file and line" || { bad "-n error text"; cat "$dir/err"; }
expect_rc 1 "-n on a missing file" "$NEXTHOP_BIN" -c "$dir/none.conf" -n

# secret in a world-readable file: warning from -n
printf 'remote = { a = { address = "127.0.0.1"; auth = { username = "u"; secret = "hunter2"; }; }; };\n' > "$dir/secret.conf"
chmod 0644 "$dir/secret.conf"
expect_rc 0 "-n with a world-readable secret" "$NEXTHOP_BIN" -c "$dir/secret.conf" -n -v
grep -q "readable by everyone" "$dir/err" && ok "world-readable secret warned" || bad "no warning for a world-readable secret"
# attack-admin 10: "chmod o-r" on the root-owned config locks out the daemon's own user; say what works
check "... saying what keeps the daemon able to read it" \
    grep -q "chgrp milter-nexthop $dir/secret.conf; chmod 0640 $dir/secret.conf" "$dir/err"
check "... and not the advice that breaks the start" bash -c "! grep -q 'chmod o-r it' '$dir/err'"
grep -q hunter2 "$dir/out" "$dir/err" && bad "-n printed the secret" || ok "-n never prints the secret"

# -t: what the rules decide
cat > "$dir/t.conf" <<'CONF'
remote = { store = { address = "127.0.0.1"; port = 1; protocol = "lmtp"; lookup = true; tls = { enable = false; }; };
           out = { address = "127.0.0.1"; port = 2; protocol = "smtp"; tls = { enable = false; }; }; };
list = { local = [ "example.org" ]; vip = [ "boss@example.org" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/store"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "store"; },
                                    { if = "remote-ip"; eq = "192.0.2.0/24"; then = "out"; },
                                    { else = false; } ); }; };
routing = { action = ( { if = "rcpt"; in-list = "list/vip"; then = "quarantine"; }, { else = "relay"; } ); };
CONF
"$NEXTHOP_BIN" -c "$dir/t.conf" -t '<alice@Example.org>' > "$dir/out" 2>&1
diff -u <(printf 'validation: remote/store\nnext-hop: store\naction: relay\nmode: enforce\non-error: tempfail\n') "$dir/out" && ok "-t local recipient" || bad "-t local recipient"
"$NEXTHOP_BIN" -c "$dir/t.conf" -t 'boss@example.org' > "$dir/out" 2>&1
grep -qx 'action: quarantine' "$dir/out" && ok "-t vip is quarantined" || bad "-t vip: $(cat "$dir/out")"
"$NEXTHOP_BIN" -c "$dir/t.conf" -t 'x@other.example' -x remote-ip=192.0.2.7 > "$dir/out" 2>&1
diff -u <(printf 'validation: none\nnext-hop: out\naction: relay\nmode: enforce\non-error: tempfail\n') "$dir/out" && ok "-t -x remote-ip CIDR" || bad "-t -x remote-ip"
"$NEXTHOP_BIN" -c "$dir/t.conf" -t 'x@other.example' -x remote-ip=198.51.100.1 > "$dir/out" 2>&1
grep -qx 'next-hop: false' "$dir/out" && ok "-t external recipient left to the MTA" || bad "-t external: $(cat "$dir/out")"
expect_rc 64 "-t with an unknown -x variable" "$NEXTHOP_BIN" -c "$dir/t.conf" -t a@example.org -x colour=blue

# -q exit codes that need no remote
expect_rc 78 "-q on an unknown remote" "$NEXTHOP_BIN" -c "$dir/t.conf" -q nowhere rcpt a@example.org
expect_rc 78 "-q on a remote without lookup = true" "$NEXTHOP_BIN" -c "$dir/t.conf" -q out rcpt a@example.org
expect_rc 78 "-q with a broken config" "$NEXTHOP_BIN" -c "$dir/bad.conf" -q store rcpt a@example.org
expect_rc 75 "-q against a closed port" "$NEXTHOP_BIN" -c "$dir/t.conf" -q store rcpt a@example.org

# -V names the linked libraries
"$NEXTHOP_BIN" -V > "$dir/out"
grep -q '^milter-nexthop ' "$dir/out" && grep -q '^libmilter ' "$dir/out" && grep -q '^gnutls ' "$dir/out" \
    && grep -q '^libconfig ' "$dir/out" && ok "-V" || bad "-V: $(cat "$dir/out")"

# a busy port is an error, not a silent exit
port=$(rig_free_port)
bg_start holder python3 -c "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',$port));s.listen();time.sleep(300)"
rig_wait_port "$port" 10
echo 'milter = { log = { level = "info"; }; };' > "$dir/min.conf"
timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "inet:$port@127.0.0.1" > "$dir/out" 2>&1; rc=$?
bg_stop holder
[[ $rc != 0 && $rc != 124 ]] && grep -q "cannot listen on inet:$port@127.0.0.1" "$dir/out" \
    && ok "busy port: exit $rc with a clear message" || { bad "busy port: exit $rc"; cat "$dir/out"; }

# an unwritable socket directory is an error
timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "unix:/nonexistent/dir/m.sock" > "$dir/out" 2>&1; rc=$?
[[ $rc != 0 ]] && grep -q "cannot create socket /nonexistent/dir/m.sock" "$dir/out" \
    && ok "missing socket directory: exit $rc with a clear message" || { bad "socket dir: exit $rc"; cat "$dir/out"; }

# the pidfile is written, and the process stops on SIGTERM
"$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "unix:$dir/p.sock" -P "$dir/m.pid" > "$dir/run.log" 2>&1 &
pid=$!
milter_track "$pid" "$dir/run.log"
wait_log "$dir/run.log" "milter-nexthop\\[$pid\\]: info: started: " || bad "no 'started' line: $(cat "$dir/run.log")"
[[ -f $dir/m.pid && $(cat "$dir/m.pid") == "$pid" ]] && ok "pidfile holds the pid" || bad "pidfile"
perm=$(stat -c %a "$dir/p.sock")
[[ $perm == 660 ]] && ok "socket mode 0660" || bad "socket mode $perm"
milter_stop "$pid" && [[ ! -e $dir/m.pid ]] && ok "SIGTERM: clean exit, pidfile removed" || bad "SIGTERM: ${MILTER_STOP_WHY:-the pid file was left behind}"

# privileges dropped after the socket exists (-u); the socket keeps its group for the MTA
mkdir -p "$dir/run"; chmod 0755 "$dir/run"
printf 'milter = { group = "nogroup"; socket-mode = "0660"; };\n' > "$dir/priv.conf"
chmod 0644 "$dir/priv.conf"
"$NEXTHOP_BIN" -c "$dir/priv.conf" -f -u nobody -p "unix:$dir/run/u.sock" > "$dir/priv.log" 2>&1 &
pid=$!
milter_track "$pid" "$dir/priv.log"
# "started" is logged once the privileges are dropped
wait_log "$dir/priv.log" "milter-nexthop\\[$pid\\]: info: started: " || bad "no 'started' line: $(cat "$dir/priv.log")"
uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status 2>/dev/null)
[[ $uid == "$(id -u nobody)" ]] && ok "-u nobody: runs as nobody" || { bad "-u: uid is '$uid'"; cat "$dir/priv.log"; }
[[ $(stat -c %G "$dir/run/u.sock") == nogroup ]] && ok "socket group from milter.group" || bad "socket group $(stat -c %G "$dir/run/u.sock")"
milter_stop "$pid" || bad "-u nobody: $MILTER_STOP_WHY"

# without -f: detaches, logs to syslog, the pid file names the daemon
# (not our child: its exit status cannot be read, only that it went away)
"$NEXTHOP_BIN" -c "$dir/min.conf" -p "unix:$dir/d.sock" -P "$dir/d.pid"; rc=$?
wait_for 10 test -s "$dir/d.pid"
dpid=$(cat "$dir/d.pid" 2>/dev/null)
stop_daemon() { # PID: if it is still our detached daemon
    grep -qaF "$dir/d.sock" "/proc/$1/cmdline" 2>/dev/null && kill -KILL "$1"
}
[[ -n $dpid ]] && at_exit stop_daemon "$dpid"
[[ $rc == 0 && -n $dpid ]] && kill -0 "$dpid" 2>/dev/null && ok "daemon mode: detached, pid file written" || bad "daemon mode (exit $rc)"
[[ -n $dpid ]] && kill -TERM "$dpid"
gone() { ! _rig_alive "$1"; }
wait_for 30 gone "$dpid" && ok "daemon stopped on SIGTERM" || bad "daemon did not stop on SIGTERM"

finish
