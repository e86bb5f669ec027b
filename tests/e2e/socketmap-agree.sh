#!/usr/bin/env bash
# tests/e2e/socketmap-agree.sh - the socketmap listener of the running
# daemon (here on a unix socket) against `milter-nexthop -t`, which
# evaluates the rules the way the relay path does (route_plan):
#   for each of several recipients, -t's next hop and the socketmap answer
#   agree (false <-> NOTFOUND, remote <-> its transport / mailer)
#   the protocol: many pipelined requests on one connection, a request
#   trickling in byte by byte, unknown map and malformed request -> PERM,
#   a frame over the size bound refused at once, garbage and half requests
#   do not hurt the daemon (and a request trickling in is cut off)
#   a SIGUSR1 reload changes the answer on a connection that stays open
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init smap-agree
dir=$TEST_DIR
started=$SECONDS
SMAP=$dir/smap.sock
frame() { printf '%d:%s,' "${#1}" "$1"; }

# smq REQUEST...: one connection, one netstring request per argument, one
# reply per line (payloads only); "CLOSED" if the server hung up.
smq() {
    "$RIG_PYTHON" - "$SMAP" "$@" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sys.argv[1])
buf = b""
def frame():
    global buf
    while True:
        if b":" in buf:
            n, rest = buf.split(b":", 1)
            n = int(n)
            if len(rest) >= n + 1:
                assert rest[n:n + 1] == b",", "bad terminator"
                buf = rest[n + 1:]
                return rest[:n].decode()
        d = s.recv(4096)
        if not d:
            return "CLOSED"
        buf += d
for req in sys.argv[2:]:
    b = req.encode()
    s.sendall(b"%d:%s," % (len(b), b))
    print(frame())
EOF
}

conf() { # the rules; $1 = next hop of example.org (changed for the reload)
    cat <<EOF
milter = { log = { level = "debug"; }; };
remote = {
  store = { address = "127.0.0.1"; port = 2424; protocol = "lmtp"; tls = { enable = false; }; };
  sock = { address = "unix:$dir/lmtp.sock"; protocol = "lmtp"; tls = { enable = false; }; };
  mx = { address = "127.0.0.1"; port = 2525; protocol = "smtp"; tls = { enable = false; }; };
  v6 = { address = "::1"; port = 24; protocol = "lmtp"; tls = { enable = false; }; };
};
list = { local = [ "example.net" ]; vip = [ "boss@example.com" ]; };
queue = { outbound = { next-hop = (
  { if = "rcpt"; in-list = "list/vip"; then = "sock"; },
  { if = "rcpt"; matches = "^postmaster@"; then = false; },
  { if = "rcpt-domain"; eq = "example.org"; then = "$1"; },
  { if = "rcpt-domain"; in-list = "list/local"; then = "store"; },
  { if = "rcpt-domain"; ends-with = ".mx.test"; then = "mx"; },
  { if = "rcpt-domain"; eq = "six.test"; then = "v6"; },
  { else = false; } ); }; };
routing = { action = "header"; };
socketmap = { listen = "unix:$SMAP"; };
EOF
}
declare -A transport=(
    [store]="lmtp:inet:127.0.0.1:2424" [sock]="lmtp:unix:$dir/lmtp.sock"
    [mx]="smtp:[127.0.0.1]:2525" [v6]="lmtp:inet:[::1]:24")
declare -A mailer=(
    [store]="nexthop_store:[127.0.0.1]" [sock]="nexthop_sock:localhost"
    [mx]="nexthop_mx:[127.0.0.1]" [v6]="nexthop_v6:[IPv6:::1]")

conf store >"$dir/milter.conf"
milter_start "$dir" "$dir/milter.conf" "unix:$dir/milter.sock" || { bad "milter did not start"; exit 1; }
# (the milter logs "started" once its services listen)
check "socketmap listens on its unix socket" test -S "$SMAP"

# -t and the socketmap agree, recipient by recipient
rcpts=(alice@example.org Bob@Example.NET user+tag@example.net boss@example.com
    Boss@EXAMPLE.com postmaster@example.org postmaster@example.net x@a.mx.test
    y@six.test z@nowhere.test)
reqs=()
for r in "${rcpts[@]}"; do reqs+=("nexthop $r" "mailertable $r"); done
mapfile -t replies < <(smq "${reqs[@]}")
hops=""
for i in "${!rcpts[@]}"; do
    r=${rcpts[i]}
    hop=$("$NEXTHOP_BIN" -c "$dir/milter.conf" -t "$r" | sed -n 's/^next-hop: //p')
    hops+="$hop "
    if [[ $hop == false ]]; then
        want_pf="NOTFOUND " want_sm="NOTFOUND "
    else
        want_pf="OK ${transport[$hop]:-?}" want_sm="OK ${mailer[$hop]:-?}"
    fi
    check "$r: -t says $hop, the socketmap agrees (Postfix: ${replies[2 * i]:-})" eq "${replies[2 * i]:-}" "$want_pf"
    check "$r: ... and as a mailertable value (${replies[2 * i + 1]:-})" eq "${replies[2 * i + 1]:-}" "$want_sm"
done
# the rules really pick different hops (the comparison is not vacuous)
check "the recipients cover every kind of answer" \
    eq "$(tr ' ' '\n' <<<"$hops" | sort -u | tr '\n' ' ')" " false mx sock store v6 "

# domains alone: rcpt-domain is set, rcpt is not (so rcpt rules do not match)
check "a bare domain: example.net -> store" eq "$(smq 'nexthop example.net')" "OK ${transport[store]}"
check "a bare domain: example.com (only a vip address) -> NOTFOUND" eq "$(smq 'mailertable example.com')" "NOTFOUND "
check "keys that are no domain: .example.net, * -> NOTFOUND" \
    eq "$(smq 'mailertable .example.net' 'nexthop *' | tr '\n' '|')" "NOTFOUND |NOTFOUND |"

# protocol: errors are PERM, a connection survives an unknown map
check "unknown map -> PERM, and the connection still answers" \
    eq "$(smq 'transport alice@example.org' 'nexthop alice@example.org' | tr '\n' '|')" \
    "PERM unknown map 'transport' (this server answers nexthop and mailertable)|OK ${transport[store]}|"
check "malformed request -> PERM" eq "$(smq 'nexthop')" "PERM malformed request: expected \"<map> <key>\""

# many requests in one write, answered in order
out=$("$RIG_PYTHON" - "$SMAP" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
reqs = [b"nexthop u%d@%s" % (i, b"example.net" if i % 2 else b"nowhere.test") for i in range(200)]
s.sendall(b"".join(b"%d:%s," % (len(r), r) for r in reqs))
want = b"".join(b"%d:%s," % (len(p), p) for p in
                [b"OK lmtp:inet:127.0.0.1:2424" if i % 2 else b"NOTFOUND " for i in range(200)])
got = b""
while len(got) < len(want):
    d = s.recv(65536)
    if not d: break
    got += d
print("same" if got == want else "differ: %r" % got[:200])
EOF
)
check "200 pipelined requests on one connection, answered in order" eq "$out" same

# a request trickling in, byte by byte
out=$("$RIG_PYTHON" - "$SMAP" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
for c in b"25:nexthop alice@example.org,":
    s.send(bytes([c])); time.sleep(0.01)
print(s.recv(1000).decode())
EOF
)
check "a request sent byte by byte" eq "$out" "$(frame "OK lmtp:inet:127.0.0.1:2424")"

# over the bound: refused before the payload is sent, then closed
out=$("$RIG_PYTHON" - "$SMAP" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(b"20000:")
r = s.recv(1000); r2 = s.recv(1000)
print(r.decode(), "closed" if r2 == b"" else "open")
EOF
)
check "a frame over 10000 bytes: PERM at once, connection closed" \
    eq "$out" "$(frame "PERM netstring longer than 10000 bytes") closed"

# garbage: PERM and closed; random bytes on many connections; the daemon lives
out=$("$RIG_PYTHON" - "$SMAP" <<'EOF'
import random, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
first = s.recv(1000)
rnd = random.Random(7)
for i in range(300):
    c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); c.settimeout(10)
    try:
        c.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64))))
    except OSError:
        pass
    c.close()
print(first.decode())
EOF
)
check "garbage -> PERM not a netstring" eq "$out" "$(frame "PERM not a netstring: expected a length")"
check "after garbage the listener still answers" eq "$(smq 'nexthop alice@example.org')" "OK ${transport[store]}"

# a request that trickles in too slowly is closed 10 s after its first
# byte, though bytes keep coming; an idle connection meanwhile stays usable
out=$("$RIG_PYTHON" - "$SMAP" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(2)
idle = socket.socket(socket.AF_UNIX); idle.connect(sys.argv[1]); idle.settimeout(20)
t = time.time(); s.sendall(b"25:nexthop ali")
closed = None
for c in b"ce@example.org,":
    try:
        if s.recv(100) == b"":
            closed = time.time() - t; break
    except socket.timeout:
        pass
    try:
        s.sendall(bytes([c]))
    except OSError:
        closed = time.time() - t; break
idle.sendall(b"25:nexthop alice@example.org,")
# 10 s, with up to 2 s of slack for a busy machine
print(("closed 10 s after its first byte" if 9.5 <= closed <= 12 else "closed after %.1fs" % closed)
      if closed else "never closed", idle.recv(100).decode())
EOF
)
check "a request trickling in is closed 10 s after its first byte; an idle connection still answers" \
    eq "$out" "closed 10 s after its first byte $(frame "OK lmtp:inet:127.0.0.1:2424")"

# reload: the answer changes on a connection that stays open
out=$("$RIG_PYTHON" - "$SMAP" "$dir/milter.conf" "$MILTER_PID" <<'EOF'
import os, signal, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
def ask():
    r = b"nexthop alice@example.org"; s.sendall(b"%d:%s," % (len(r), r))
    d = s.recv(1000); return d.split(b":", 1)[1][:-1].decode()
before = ask()
conf = open(sys.argv[2]).read().replace('eq = "example.org"; then = "store"', 'eq = "example.org"; then = "mx"')
open(sys.argv[2] + ".new", "w").write(conf); os.rename(sys.argv[2] + ".new", sys.argv[2])
os.kill(int(sys.argv[3]), signal.SIGUSR1)
after = before
for _ in range(300):   # 30 s at most
    time.sleep(0.1); after = ask()
    if after != before: break
print(before + "|" + after)
EOF
)
check "SIGUSR1: the same connection gets the new answer" \
    eq "$out" "OK ${transport[store]}|OK ${transport[mx]}"
check "... and -t reads the same file" \
    eq "$("$NEXTHOP_BIN" -c "$dir/milter.conf" -t alice@example.org | sed -n 's/^next-hop: //p')" mx

check "the daemon is alive" milter_alive
((fails > 0)) && { echo "--- milter log (tail) ---"; tail -n 30 "$MILTER_LOG"; }
milter_stop && ok "the daemon stopped cleanly" || bad "the daemon did not stop cleanly: $MILTER_STOP_WHY"
finish "in $((SECONDS - started)) s"
