#!/usr/bin/env bash
# tests/daemon/listeners.sh - the daemon's listening sockets as a local
# user or an attacker meets them: the milter, socketmap and auth-service
# unix sockets get milter.socket-mode and milter.group without anything
# following a symbolic link swapped in after bind (the race is won on
# purpose by an LD_PRELOAD shim); a socket in use is not taken over, a file
# that is not a socket is not removed, a stale socket is; the socket files
# are removed at exit. auth-service and socketmap close a request that
# trickles in past 10 s, and no single peer uid gets more than its share of
# their connections. stats.listen serves past FD_SETSIZE descriptors.
# libmilter's read()/accept() hooks stay libmilter's: the executable
# exports none, and a TCP milter connection works.
# Must not: wait with fixed sleeps where a log line or an exit can be awaited.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init listeners
dir=$TEST_DIR

# start_fg NAME CONF SOCKET [ARGS...]: a foreground milter -> $pid, log $dir/NAME.log.
# By hand, not milter_start (which opens a unix socket to 0666): the modes are
# under test. Tracked, so the harness judges how it ends (exit 0, no sanitizer report).
start_fg() {
    local name=$1 conf=$2 sock=$3 rc
    shift 3
    milter_start_fg "$dir/$name.log" "$conf" "$sock" "$@"
    rc=$? pid=$MILTER_FG_PID
    ((rc == 0)) || { bad "$name did not start: $(cat "$dir/$name.log")"; return 1; }
}
# stop_fg NAME: SIGTERM to $pid; it must exit 0 and leave no sanitizer report
stop_fg() { check "$1: SIGTERM, the milter exits cleanly" milter_stop "$pid"; }
answers() { # SPEC: a milter negotiates on it
    "$RIG_PYTHON" - "$here" "$1" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
m = Milter(sys.argv[2], timeout=5)
m.negotiate()
m.close()
EOF
}
services_conf() { # MODE GROUP SOCKETMAP-SOCKET AUTH-SOCKET
    cat <<CONF
milter = { socket-mode = "$1"; group = "$2"; log = { level = "info"; }; };
remote = { store = { address = "127.0.0.1"; port = 1; protocol = "imap"; lookup = true; timeout = "2s";
                     tls = { enable = false; }; }; };
socketmap = { listen = "unix:$3"; };
auth-service = { socket = "$4"; lookup = "remote/store"; };
CONF
}

# --- mode and group of the three unix sockets, and their removal at exit ----
mkdir -m 0755 "$dir/run"
services_conf 0640 nogroup "$dir/run/map.sock" "$dir/run/auth.sock" > "$dir/perm.conf"
start_fg perm "$dir/perm.conf" "unix:$dir/run/milter.sock"
for s in milter map auth; do
    check "$s socket: mode 0640, group nogroup" eq "$(stat -c '%a %G' "$dir/run/$s.sock" 2>&1)" "640 nogroup"
done
stop_fg "three unix sockets"
for s in milter map auth; do
    check "$s socket removed at exit" test ! -e "$dir/run/$s.sock"
done

# --- a symbolic link swapped in right after bind() is never followed --------
cc=${CC:-cc}
cat > "$dir/swap.c" <<'EOF'
/* After a successful bind() of a unix socket under $SWAP_DIR, put a symbolic
 * link to $SWAP_VICTIM in its place: the attacker who owns the directory
 * wins the race between bind() and chmod()/chown(). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    int (*real)(int, const struct sockaddr *, socklen_t) =
        (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    int rc = real(fd, sa, len);
    const char *d = getenv("SWAP_DIR"), *victim = getenv("SWAP_VICTIM");
    const char *p = ((const struct sockaddr_un *)sa)->sun_path;
    if (rc == 0 && sa->sa_family == AF_UNIX && d && victim && strncmp(p, d, strlen(d)) == 0) {
        char moved[sizeof ((struct sockaddr_un *)0)->sun_path + 8];
        snprintf(moved, sizeof moved, "%s.moved", p);
        if (rename(p, moved) == 0 && symlink(victim, p) == 0)
            fprintf(stderr, "swap.so: %s is now a link to %s\n", p, victim);
    }
    return rc;
}
EOF
if "$cc" -shared -fPIC -o "$dir/swap.so" "$dir/swap.c" -ldl 2>"$dir/cc.err"; then
    for s in milter map auth; do
        mkdir -m 0755 "$dir/race-$s"
        victim=$dir/victim-$s
        echo secret > "$victim"
        chmod 0600 "$victim"
        services_conf 0666 nogroup "$dir/race-$s/map.sock" "$dir/race-$s/auth.sock" > "$dir/race.conf"
        # it finds the socket gone and refuses to start; timeout: a bound, not a wait
        # (under AddressSanitizer the shim comes before its runtime: allowed for this run)
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        SWAP_DIR=$dir/race-$s/$s LD_PRELOAD=$dir/swap.so SWAP_VICTIM=$victim \
            timeout 20 "$NEXTHOP_BIN" -c "$dir/race.conf" -f -p "unix:$dir/race-$s/milter.sock" \
            >"$dir/race-$s.log" 2>&1
        rc=$?
        check "$s socket swapped for a link after bind: the milter refuses to start, exit 69 (got $rc)" \
            test "$rc" = 69
        grep -q "swap.so: $dir/race-$s/$s.sock is now a link" "$dir/race-$s.log" \
            || bad "the swap for the $s socket did not happen: $(cat "$dir/race-$s.log")"
        check "$s socket swapped for a link after bind: the link's target keeps mode 0600 and group root" \
            eq "$(stat -c '%a %G' "$victim")" "600 root"
    done
else
    bad "cannot build the LD_PRELOAD shim with $cc: $(cat "$dir/cc.err")"
fi

# --- what is already at the socket path --------------------------------------
echo 'milter = { log = { level = "info"; }; };' > "$dir/min.conf"
start_fg first "$dir/min.conf" "unix:$dir/s.sock"
first=$pid
inode=$(stat -c %i "$dir/s.sock")
timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "unix:$dir/s.sock" >"$dir/out" 2>&1
rc=$?
check "a second milter on a socket in use: refused with exit 69 (got $rc)" test "$rc" = 69
check "... saying so" grep -q "milter.socket: $dir/s.sock is in use by another process" "$dir/out"
check "... the socket file is still the first one's" eq "$(stat -c %i "$dir/s.sock" 2>&1)" "$inode"
check "... and the first one still answers there" answers "unix:$dir/s.sock"
# killed on purpose (how it ends is not judged): its socket file stays behind, stale
milter_kill "$first" KILL
start_fg stale "$dir/min.conf" "unix:$dir/s.sock"
check "a stale socket (its milter was killed) is replaced" answers "unix:$dir/s.sock"
stop_fg "stale socket replaced"
echo "not a socket" > "$dir/file"
timeout 20 "$NEXTHOP_BIN" -c "$dir/min.conf" -f -p "unix:$dir/file" >"$dir/out" 2>&1
rc=$?
check "a regular file at the socket path: refused with exit 69 (got $rc)" test "$rc" = 69
check "... and left alone" grep -qx "not a socket" "$dir/file"

# --- slow clients and greedy peers (auth-service, socketmap) ------------------
services_conf 0660 nogroup "$dir/run/map.sock" "$dir/run/auth.sock" > "$dir/svc.conf"
start_fg svc "$dir/svc.conf" "unix:$dir/run/milter.sock"
"$RIG_PYTHON" - "$dir/run/auth.sock" "$dir/run/map.sock" <<'EOF'
import os, socket, sys, threading, time
auth, smap = sys.argv[1], sys.argv[2]
fails = 0
def case(ok, what):
    global fails
    fails += not ok
    print("%s: %s" % ("PASS" if ok else "FAIL", what), flush=True)

def trickle(path, data, out):
    """Sends one byte a second; the seconds until the server closed (None: still open at 14 s)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(1.0)
    t0 = time.time()
    for b in data:
        try:
            s.send(bytes([b]))
            if s.recv(100) == b"":
                out.append(time.time() - t0); return
        except socket.timeout:
            pass
        except OSError:
            out.append(time.time() - t0); return
        if time.time() - t0 > 14:
            break
    out.append(None)

# 14 bytes of a request that would be well formed, one per second
ta, tm = [], []
a = threading.Thread(target=trickle, args=(auth, b"\x00\x05alice\x00\x06secret\x00\x04smtp", ta))
m = threading.Thread(target=trickle, args=(smap, b"19:nexthop a@b.example,", tm))
a.start(); m.start(); a.join(); m.join()
for name, got in (("auth-service", ta[0]), ("socketmap", tm[0])):
    case(got is not None and got < 12.5,
         "%s closes a request trickling one byte a second after %s s (10 s deadline)"
         % (name, "%.1f" % got if got is not None else "more than 14"))

def as_nobody(path, n):
    """n connections from uid nobody in a child; returns how many were closed at once, then
    keeps them open until told (the pipe closes)."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r); os.close(w2)
        os.setgid(65534); os.setuid(65534)
        conns, closed = [], 0
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            conns.append(s)
        for s in conns[-1:]:
            s.settimeout(2.0)
            try:
                closed += s.recv(10) == b""
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        os.write(w, b"%d\n" % closed)
        os.read(r2, 1)
        os._exit(0)
    os.close(w); os.close(r2)
    closed = int(os.read(r, 10).split()[0])
    return closed, w2, pid

def served_as_root_auth():
    s = socket.socket(socket.AF_UNIX); s.connect(auth); s.settimeout(5)
    s.sendall(b"\x00\x00\x00\x00\x00\x00\x00\x00")   # four empty fields: a bad request
    return s.recv(100)

def served_as_root_map():
    s = socket.socket(socket.AF_UNIX); s.connect(smap); s.settimeout(5)
    s.sendall(b"19:nexthop a@b.example,")
    return s.recv(100)

for name, path, limit, served in (("auth-service", auth, 96, served_as_root_auth),
                                  ("socketmap", smap, 64, served_as_root_map)):
    closed, hold, child = as_nobody(path, limit)
    case(closed == 0, "%s: %d connections from one uid are accepted" % (name, limit))
    os.close(hold); os.waitpid(child, 0)
    closed, hold, child = as_nobody(path, limit + 1)
    case(closed == 1, "%s: connection %d from the same uid is closed at once" % (name, limit + 1))
    try:
        got = served()
    except OSError as e:
        got = repr(e)
    case(bool(got) and not isinstance(got, str), "%s: ... while another uid is still served (%r)" % (name, got))
    os.close(hold); os.waitpid(child, 0)
sys.exit(1 if fails else 0)
EOF
check "slow clients and greedy peers: every step as expected" test $? = 0
check "the refusals are logged" \
    wait_log "$dir/svc.log" "refusing connections from uid 65534: too many connections from that uid" 5
stop_fg "auth-service and socketmap"

# --- stats.listen with descriptors past FD_SETSIZE (1024) ----------------------
port=$(rig_free_port)
printf 'milter = { log = { level = "info"; }; };\nstats = { listen = "127.0.0.1:%s"; };\n' "$port" > "$dir/stats.conf"
(
    ulimit -n 4096
    for fd in $(seq 3 1100); do eval "exec $fd</dev/null"; done   # the daemon's own descriptors come after
    exec "$NEXTHOP_BIN" -c "$dir/stats.conf" -f -p "unix:$dir/st.sock"
) >"$dir/stats.log" 2>&1 &
pid=$!
milter_track "$pid" "$dir/stats.log"
milter_wait_started "$pid" "$dir/stats.log" || bad "with 1,100 descriptors open the milter did not start: $(cat "$dir/stats.log")"
"$RIG_PYTHON" - "$port" >"$dir/metrics" 2>&1 <<'EOF'
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())
EOF
check "stats.listen answers with its socket past descriptor 1024" grep -q '^nexthop_build_info{' "$dir/metrics"
stop_fg "1,100 descriptors"

# --- libmilter's read()/accept() hooks are libmilter's only -------------------
# an empty or failed listing is not a pass: nm must have read the dynamic
# symbol table (it names libc's symbols), and none of it defines read or accept
nm -D "$NEXTHOP_BIN" >"$dir/dynsym" 2>&1 && grep -q '@GLIBC_' "$dir/dynsym" ||
    bad "nm -D $NEXTHOP_BIN listed no dynamic symbol table: $(head -3 "$dir/dynsym")"
check "the executable exports no read() or accept() of its own (GnuTLS, libpq, hiredis use libc's)" \
    eq "$(awk '$1 != "U" { n = $NF; sub(/@.*/, "", n); if (n == "read" || n == "accept") print n }' "$dir/dynsym")" ""
port=$(rig_free_port)
start_fg inet "$dir/min.conf" "inet:$port@127.0.0.1"
"$RIG_PYTHON" - "$here" "$port" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
m = Milter("inet:%s@127.0.0.1" % sys.argv[2], timeout=5)
m.start()
m.mail("<s@example.net>")
assert m.rcpt("<a@example.org>").kind == "continue"
r, _ = m.message([("Subject", "x")], b"body\r\n")
assert r.kind == "continue", r
m.close()
EOF
check "a message over a TCP milter connection" test $? = 0
stop_fg "TCP milter connection"
finish
