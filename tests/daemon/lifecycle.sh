#!/usr/bin/env bash
# tests/daemon/lifecycle.sh - the daemon's start and end as an administrator
# sees them: the pid file (no symlink followed, locked against a second
# instance, removed at exit); without -f, every start failure reaches the
# terminal with its exit status (69 socket, 73 pid file, 77 user) and exit 0
# means the socket already answers; milter.group applies to the process
# without milter.user; milter.log.syslog = false logs to stderr; SIGHUP
# reloads; SIGTERM stops an idle daemon at once, and lets a message in
# flight finish (new connections refused, new messages 451) before exiting;
# a second SIGTERM stops at once.
# Must not: wait with fixed sleeps where a log line or an exit can be awaited.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init lifecycle
dir=$TEST_DIR

now_ms() { echo $(( ${EPOCHREALTIME/[.,]/} / 1000 )); }
# gone_within MS PID: true if PID has exited within MS milliseconds (a zombie is gone)
gone_within() {
    local end=$(( $(now_ms) + $1 ))
    while _rig_alive "$2"; do
        (( $(now_ms) >= end )) && return 1
        sleep 0.02
    done
}
# start_fg NAME CONF SOCKET [ARGS...]: a foreground milter -> $pid, log $dir/NAME.log.
# By hand, not milter_start: its options (-P) and the socket's group are under
# test. Tracked, so the harness judges how it ends (exit 0, no sanitizer report).
start_fg() {
    local name=$1 conf=$2 sock=$3 rc
    shift 3
    milter_start_fg "$dir/$name.log" "$conf" "unix:$sock" "$@"
    rc=$? pid=$MILTER_FG_PID
    ((rc == 0)) || { bad "$name did not start: $(cat "$dir/$name.log")"; return 1; }
}
# detached PIDFILE -> dpid: the daemon that went to the background. Not our
# child, so its exit status cannot be had: the checks below see it go, the
# harness still fails the test on any sanitizer report it leaves, and at exit
# it is killed if it still runs (a check failed before it stopped).
detached() {
    dpid=$(cat "$1" 2>/dev/null)
    [[ $dpid =~ ^[0-9]+$ ]] || { dpid=; return 0; }
    at_exit kill_if_ours "$dpid"
}
kill_if_ours() { # PID: still running, and still milter-nexthop
    _rig_alive "$1" && grep -qa milter-nexthop "/proc/$1/cmdline" 2>/dev/null && kill -KILL "$1"
    return 0
}
# answers SOCKET: a milter on SOCKET negotiates
answers() {
    "$RIG_PYTHON" - "$here" "$1" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
m = Milter("unix:" + sys.argv[2], timeout=5)
m.negotiate()
m.close()
EOF
}

echo 'milter = { log = { level = "info"; }; };' > "$dir/min.conf"

# --- pid file ---------------------------------------------------------------
echo "victim: must stay as it is" > "$dir/victim"
ln -s "$dir/victim" "$dir/link.pid"
timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "unix:$dir/s0.sock" -P "$dir/link.pid" >"$dir/out" 2>&1
rc=$?
check "pid file that is a symlink: refused with exit 73 (got $rc)" test "$rc" = 73
check "... the message says why" grep -q "cannot open pid file $dir/link.pid: it is a symbolic link" "$dir/out"
check "... the file it points to is untouched" grep -qx "victim: must stay as it is" "$dir/victim"

start_fg first "$dir/min.conf" "$dir/s1.sock" -P "$dir/m.pid"
first=$pid
check "pid file holds the pid" eq "$(cat "$dir/m.pid" 2>/dev/null)" "$first"
timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "unix:$dir/s2.sock" -P "$dir/m.pid" >"$dir/out" 2>&1
rc=$?
check "second instance with the same pid file: refused with exit 73 (got $rc)" test "$rc" = 73
check "... the message names the running pid" \
    grep -q "pid file $dir/m.pid is locked by a running milter-nexthop (pid $first)" "$dir/out"
check "... the first one still answers" answers "$dir/s1.sock"
check "... and its pid file still names it" eq "$(cat "$dir/m.pid" 2>/dev/null)" "$first"
check "SIGTERM: exit 0" milter_stop "$first"
check "... pid file removed" test ! -e "$dir/m.pid"
check "... socket removed" test ! -e "$dir/s1.sock"

# --- without -f: the outcome of the start reaches the terminal ---------------
port=$(rig_free_port)
bg_start holder "$RIG_PYTHON" -c "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',$port));s.listen();time.sleep(120)"
rig_wait_port "$port" 5 || bad "the port holder is not listening on $port"
printf 'milter = { log = { level = "info"; }; };\nsocketmap = { listen = "inet:127.0.0.1:%s"; };\n' "$port" > "$dir/busy.conf"
timeout 20 "$NEXTHOP_BIN" -c "$dir/busy.conf" -p "unix:$dir/d1.sock" >"$dir/out" 2>&1
rc=$?
bg_stop holder
check "detached, socketmap port busy: exit 69 (got $rc)" test "$rc" = 69
check "... with the reason on the terminal" grep -q "socketmap.listen: cannot listen on inet:127.0.0.1:$port" "$dir/out"
check "... and no socket left behind" test ! -e "$dir/d1.sock"

timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -p "unix:$dir/d2.sock" -P "$dir/no/such/dir/m.pid" >"$dir/out" 2>&1
rc=$?
check "detached, pid file directory missing: exit 73 (got $rc)" test "$rc" = 73
check "... with the reason on the terminal" grep -q "cannot open pid file $dir/no/such/dir/m.pid" "$dir/out"

timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -p "unix:$dir/d3.sock" -u no-such-user-here >"$dir/out" 2>&1
rc=$?
check "detached, unknown user: exit 77 (got $rc)" test "$rc" = 77
check "... with the reason on the terminal" grep -q "no such user: no-such-user-here" "$dir/out"

timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -p "unix:$dir/d4.sock" -P "$dir/d4.pid" >"$dir/out" 2>&1
rc=$?
detached "$dir/d4.pid"
check "detached, good start: exit 0 (got $rc) and nothing on the terminal" test "$rc" = 0 -a ! -s "$dir/out"
check "... the socket answers as soon as the start returned" answers "$dir/d4.sock"
check "... the pid file names the daemon" kill -0 "${dpid:-none}"
[[ -n $dpid ]] && kill -TERM "$dpid"
check "... and SIGTERM stops it" gone_within 10000 "${dpid:-0}"

# milter.log.syslog = false: a detached daemon logs to the stderr it was given
printf 'milter = { log = { level = "info"; syslog = false; }; };\n' > "$dir/stderr.conf"
timeout 20 "$NEXTHOP_BIN" -c "$dir/stderr.conf" -p "unix:$dir/d5.sock" -P "$dir/d5.pid" 2>"$dir/d5.err"
rc=$?
detached "$dir/d5.pid"
check "log.syslog = false, detached: started (exit $rc)" test "$rc" = 0
check "... its log lines go to stderr" wait_log "$dir/d5.err" "info: started: socket unix:$dir/d5.sock" 5
[[ -n $dpid ]] && kill -TERM "$dpid"
check "... including the stop" wait_log "$dir/d5.err" "info: stopped" 10
check "... and SIGTERM stops it" gone_within 10000 "${dpid:-0}"

# --- identity: milter.group without milter.user ------------------------------
printf 'milter = { group = "nogroup"; log = { level = "info"; }; };\n' > "$dir/group.conf"
start_fg group "$dir/group.conf" "$dir/g.sock"
gid=$(awk '/^Gid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
check "milter.group without milter.user: the process runs with that group (gid $gid)" \
    eq "$gid" "$(getent group nogroup | cut -d: -f3)"
check "... and the socket has it" eq "$(stat -c %G "$dir/g.sock")" nogroup

# --- signals -----------------------------------------------------------------
# SIGTERM right after the start: libmilter alone took up to 5 s (its listener's poll)
t0=$(now_ms)
kill -TERM "$pid"
gone_within 2000 "$pid"; rc=$?
check "SIGTERM on an idle daemon: gone in $(( $(now_ms) - t0 )) ms (within 2 s)" test "$rc" = 0
check "... with exit 0" milter_stop "$pid"

conf() { # HEADER
    cat <<CONF
milter = { log = { level = "debug"; }; };
remote = { store = { address = "127.0.0.1"; port = 1; protocol = "lmtp"; tls = { enable = false; }; }; };
queue = { outbound = { next-hop = "store"; }; };
routing = { action = "header"; header = "$1"; timeout = "5s"; };
CONF
}
conf X-Before > "$dir/sig.conf"
start_fg hup "$dir/sig.conf" "$dir/h.sock"
conf X-After > "$dir/sig.conf"
kill -HUP "$pid"
check "SIGHUP reloads the config" wait_log "$dir/hup.log" "reload: $dir/sig.conf loaded" 5
check "... and the daemon keeps running" kill -0 "$pid"
check "... and SIGTERM then stops it with exit 0" milter_stop "$pid"

# Graceful stop: a message open across SIGTERM ends normally; meanwhile new
# connections are refused and a new message on an open connection gets 451.
conf X-Nexthop > "$dir/sig.conf"
start_fg drain "$dir/sig.conf" "$dir/t.sock"
"$RIG_PYTHON" - "$here" "$dir/t.sock" "$pid" "$dir/drain.log" <<'EOF'
import os, signal, socket, sys, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter, MilterError
sock, pid, log = sys.argv[2], int(sys.argv[3]), sys.argv[4]
fails = 0
def case(ok, what):
    global fails
    fails += not ok
    print("%s: %s" % ("PASS" if ok else "FAIL", what))
def wait_log(text, secs=10):
    end = time.time() + secs
    while time.time() < end:
        with open(log) as f:
            if text in f.read():
                return True
        time.sleep(0.05)
    return False
inflight = Milter("unix:" + sock, timeout=20)
inflight.start()
inflight.mail("<s@example.net>", qid="INFLIGHT")
r = inflight.rcpt("<alice@example.org>", qid="INFLIGHT")
case(r.kind == "continue", "RCPT before the stop: %s" % r)
idle = Milter("unix:" + sock, timeout=20)
idle.start()
os.kill(pid, signal.SIGTERM)
case(wait_log("stopping: new milter connections are refused; 1 message(s) in flight"),
     "SIGTERM with a message in flight: the stop is logged")
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.close()
    case(False, "a new connection during the stop is refused")
except OSError as e:
    case(True, "a new connection during the stop is refused (%s)" % e.strerror)
try:
    idle.mail("<s2@example.net>", qid="LATE")
    r = idle.rcpt("<bob@example.org>", qid="LATE")
    case(r.code == "451", "a message begun during the stop gets a temporary failure at RCPT: %s" % r)
    idle.close()
except (MilterError, OSError) as e:
    case(False, "a message begun during the stop: %s" % e)
try:
    r = inflight.rcpt("<carol@example.org>", qid="INFLIGHT")
    case(r.kind == "continue", "the message in flight takes another RCPT: %s" % r)
    r, mods = inflight.message([("Subject", "in flight"), ("X-Nexthop", "forged")], b"body\r\n")
    case(r.kind in ("continue", "accept") and ("addheader", b"X-Nexthop\0store\0") in mods,
         "the message in flight ends normally, with its routing header: %s %s" % (r, mods))
    inflight.close()
except (MilterError, OSError) as e:
    case(False, "the message in flight was cut: %s" % e)
sys.exit(1 if fails else 0)
EOF
rc=$?
check "graceful stop: every step as expected" test "$rc" = 0
check "... the daemon exits once the message ended" gone_within 3000 "$pid"
check "... with exit 0" milter_stop "$pid"
check "... having logged that nothing was left in flight" grep -q "stopping: no message in flight" "$dir/drain.log"

# A second SIGTERM does not wait for the message in flight.
start_fg twice "$dir/sig.conf" "$dir/w.sock"
"$RIG_PYTHON" - "$here" "$dir/w.sock" "$pid" "$dir/twice.log" <<'EOF'
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
sock, pid, log = sys.argv[2], int(sys.argv[3]), sys.argv[4]
m = Milter("unix:" + sock, timeout=20)
m.start()
m.mail("<s@example.net>")
m.rcpt("<alice@example.org>")
os.kill(pid, signal.SIGTERM)
end = time.time() + 10
while "stopping: new milter" not in open(log).read() and time.time() < end:
    time.sleep(0.05)
try:
    os.kill(pid, signal.SIGTERM)
except ProcessLookupError:
    pass
end = time.time() + 5
while time.time() < end:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.05)
EOF
check "a second SIGTERM stops at once, message still open" gone_within 2000 "$pid"
check "... with exit 0" milter_stop "$pid"
check "... and says a message was cut" grep -q "stopping with 1 message(s) still in flight" "$dir/twice.log"
finish
