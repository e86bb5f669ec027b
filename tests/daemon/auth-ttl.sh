#!/usr/bin/env bash
# tests/daemon/auth-ttl.sh - AUTH answers have a cache of their own.
# The auth-service checks passwords against a real Dovecot over IMAP; the
# test changes alice's password in Dovecot's passwd-file:
#   - a cached OK lasts remote.<id>.cache.ttl.auth (6 s here), and is never
#     served stale: once it has run out, with Dovecot down, no OK at all;
#   - a refused password is never cached: right after the store starts
#     accepting it, it is accepted;
#   - ttl.auth = 0: every check asks the store.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init auth-ttl

dovecot_start "$TEST_DIR/dovecot" >/dev/null || exit 1
passwd=$TEST_DIR/dovecot/passwd
conf() { # TTL
    cat <<CONF
milter = { log = { level = "info"; }; };
remote = { imap = { address = "127.0.0.1"; port = $DOVECOT_IMAP_PORT; protocol = "imap"; lookup = true;
                    timeout = "2s"; tls = { enable = false; }; cache = { ttl = { auth = "$1"; }; }; }; };
auth-service = { socket = "$TEST_DIR/mux"; lookup = "remote/imap"; };
CONF
}
conf 6s > "$TEST_DIR/milter.conf"
milter_start "$TEST_DIR/m" "$TEST_DIR/milter.conf" || exit 1
wait_for 10 test -S "$TEST_DIR/mux" || bad "auth-service socket missing"

# auth USER PASSWORD: prints OK, NO or NONE (the service closed without an answer)
auth() {
    python3 - "$TEST_DIR/mux" "$1" "$2" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sys.argv[1])
s.sendall(b"".join(struct.pack(">H", len(f)) + f
                   for f in (sys.argv[2].encode(), sys.argv[3].encode(), b"smtp", b"")))
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data[2:4].decode() if len(data) >= 4 else "NONE")
PY
}
set_password() { # USER PASSWORD
    sed -i "s|^$1:{PLAIN}[^:]*:|$1:{PLAIN}$2:|" "$passwd"
    touch -d '+2 seconds' "$passwd"   # a new mtime even within the same second: Dovecot re-reads it
    # Dovecot looks at the file at most once a second: wait until its own
    # auth process takes the new password (doveadm asks the same process)
    wait_for 10 doveadm -c "${passwd%/passwd}/dovecot.conf" auth test "$1" "$2" >/dev/null 2>&1 ||
        bad "Dovecot never took the new password of $1"
}
remote_checks() { grep -c "lookup: .*user=<$1> remote=imap kind=auth result=$2 source=remote" "$MILTER_LOG"; }

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
sleep_until_ms() { local d=$(( $1 - $(now_ms) )); (( d > 0 )) && sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"; return 0; }
ttl_ms=6000

doveadm -c "$TEST_DIR/dovecot/dovecot.conf" auth test alice@dovecot.test secret >/dev/null 2>&1
check "right password accepted" eq "$(auth alice@dovecot.test secret)" OK
check "wrong password refused" eq "$(auth alice@dovecot.test hunter2)" NO

set_password alice@dovecot.test hunter2
answer=$(auth alice@dovecot.test hunter2)
t1=$(now_ms)   # the OK was cached before its answer arrived: it runs out before t1 + ttl
check "a refused password is not cached: accepted once the store accepts it" eq "$answer" OK
dovecot_stop "$TEST_DIR/dovecot"
if (( $(now_ms) - t1 < ttl_ms - 1000 )); then
    check "store down, within ttl.auth: the cached OK" eq "$(auth alice@dovecot.test hunter2)" OK
else
    skip_part "stopping Dovecot took longer than ttl.auth; the within-ttl check is not meaningful"
fi
sleep_until_ms $((t1 + ttl_ms + 500))
check "store down, ttl.auth run out: no answer (temporary failure), never a stale OK" \
    eq "$(auth alice@dovecot.test hunter2)" NONE
check "store down: the old password gets no OK either" eq "$(auth alice@dovecot.test secret)" NONE

dovecot_start "$TEST_DIR/dovecot2" >/dev/null || exit 1
passwd=$TEST_DIR/dovecot2/passwd
conf 0 > "$TEST_DIR/milter.conf"
sed -i "s/port = [0-9]*;/port = $DOVECOT_IMAP_PORT;/" "$TEST_DIR/milter.conf"
milter_reload
wait_for 10 grep -q 'reload: .* loaded' "$MILTER_LOG" || bad "reload not logged"
doveadm -c "$TEST_DIR/dovecot2/dovecot.conf" auth test alice@dovecot.test secret >/dev/null 2>&1
before=$(remote_checks bob@dovecot.test yes)
auth bob@dovecot.test secret >/dev/null; auth bob@dovecot.test secret >/dev/null
check "ttl.auth = 0: every check asks the store" eq "$(( $(remote_checks bob@dovecot.test yes) - before ))" 2

grep -Eq 'hunter2|secret' "$MILTER_LOG" && bad "a password reached the log" || ok "no password in the log"
(( fails == 0 )) || { echo "--- milter log ---"; tail -30 "$MILTER_LOG"; }
finish
