#!/usr/bin/env bash
# tests/daemon/control-limits.sh - who may use the control socket, and for
# how long (attack-hostile 3, 4; attack-admin 5):
#   (a) control.group and control.mode give the control socket its own
#       group and mode
#   (b) stalled clients of one uid (here: nobody, in the socket's group)
#       cannot lock out the admin's -C: -C stats answers at once; a client
#       that sends no command is closed after 2 s ("no command in time")
#   (c) Postfix's spelling inet:127.0.0.1:PORT listens on 127.0.0.1:PORT,
#       not on port 127 of every interface; inet:PORT without an address
#       is refused by -n with FILE:LINE and by -p with exit 64
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init control-limits
dir=$TEST_DIR
chmod 0755 "$dir"
id nobody >/dev/null 2>&1 && getent group nogroup >/dev/null || skip "no user nobody or group nogroup"

# --- (a) the control socket's own group and mode ---------------------------
mkdir -m 0755 "$dir/m"
cat > "$dir/milter.conf" <<CONF
milter = { socket-mode = "0660"; log = { level = "info"; }; };
control = { socket = "$dir/m/control.sock"; group = "nogroup"; mode = "0660"; };
CONF
milter_start "$dir/m" "$dir/milter.conf" || { bad "milter did not start"; finish; exit 1; }
check "control socket: mode 0660, group nogroup (control.*)" \
    test "$(stat -c '%a %G' "$dir/m/control.sock" 2>&1)" = "660 nogroup"

# --- (b) stalled clients of one uid -----------------------------------------
mkdir -m 0777 "$dir/o"   # nobody writes its findings here
# 8 connections as nobody (the control socket serves 8 at once), each sending half a command;
# then each one's seconds until the daemon closed it, the longest last
bg_start stallers setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 - "$dir/m/control.sock" \
    "$dir/o/stalled" <<'PY'
import socket, sys, time
socks = []
for i in range(8):
    s = socket.socket(socket.AF_UNIX)
    try:   # beyond the per-uid limit the daemon closes the connection at once
        s.connect(sys.argv[1])
        s.send(b"sta")
    except OSError:
        pass
    s.settimeout(20)
    socks.append((s, time.monotonic()))
open(sys.argv[2] + ".connected", "w").close()
longest = 0.0
for s, t in socks:
    try:
        while s.recv(512):
            pass
    except OSError:
        pass
    longest = max(longest, time.monotonic() - t)
with open(sys.argv[2], "w") as f:
    f.write("%.1f\n" % longest)
PY
check "stalled clients connected" wait_for 10 test -e "$dir/o/stalled.connected"
start_ms=$(date +%s%3N)
timeout 30 "$NEXTHOP_BIN" -c "$dir/milter.conf" -C stats >"$dir/ctl.out" 2>&1
rc=$?
took=$(( $(date +%s%3N) - start_ms ))
check "-C stats answers while nobody holds stalled connections (exit $rc)" test "$rc" = 0
check "... at once: ${took} ms (limit 1500)" test "$took" -lt 1500
check "stalled clients all closed" wait_for 25 test -s "$dir/o/stalled"
check "... the last after $(cat "$dir/o/stalled" 2>/dev/null) s (limit 3 s: no command in 2 s)" \
    python3 -c "import sys; sys.exit(0 if float(open('$dir/o/stalled').read()) < 3 else 1)"
check "... logged as no command in time" grep -q 'control: uid=65534 result=error why="no command in time"' "$MILTER_LOG"
milter_stop || bad "milter did not stop cleanly"

# --- (c) the milter socket's spelling ---------------------------------------
port=$(rig_free_port)
printf 'milter = { socket = "inet:127.0.0.1:%s"; log = { level = "info"; }; };\n' "$port" > "$dir/pf.conf"
bg_start pf "$NEXTHOP_BIN" -f -c "$dir/pf.conf" 2>"$dir/pf.log"
check "inet:127.0.0.1:$port starts" wait_log "$dir/pf.log" 'started: socket' 10
check "... listening on 127.0.0.1:$port" bash -c "ss -Hltn 'sport = :$port' | grep -q '127.0.0.1:$port'"
check "... and nothing on port 127" bash -c "! ss -Hltnp 'sport = :127' | grep -q milter-nexthop"
bg_stop pf
printf 'milter = {\n  socket = "inet:%s"; };\n' "$port" > "$dir/any.conf"
"$NEXTHOP_BIN" -c "$dir/any.conf" -n >"$dir/n.out" 2>&1
check "-n refuses inet:PORT without an address (exit $?)" \
    grep -q "^$dir/any.conf:2: milter.socket: 'inet:$port' names no address" "$dir/n.out"
timeout 10 "$NEXTHOP_BIN" -f -c "$dir/milter.conf" -p "inet:$port" >"$dir/p.out" 2>&1
rc=$?
check "-p inet:PORT exits 64 (got $rc)" test "$rc" = 64
check "... saying to name the address" grep -q "write inet:$port@127.0.0.1" "$dir/p.out"
finish
