#!/usr/bin/env bash
# tests/e2e/redis.sh - cache.redis with a real redis-server and two milter
# processes sharing it, validating RCPTs against a real Dovecot (LMTP):
#   A looks up alice (yes) and nobody (no): both land in Redis with the
#     remote's positive and negative TTLs (PTTL)
#   Dovecot goes down; B answers alice and nobody from Redis (source=redis)
#     and a recipient Redis does not know gets 451
#   Redis goes down; A still answers at once from Dovecot (source=remote),
#     warns once, and uses Redis again once it is back
#   Redis hangs; a lookup waits for it no more than its 100 ms limit
# RCPTs go through each running milter with miltertest.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init redis
dir=$TEST_DIR
rig_install >/dev/null || { bad "rig_install"; exit 1; }
need redis-server redis-server
need redis-cli redis-tools

REDIS_PORT=$(rig_free_port)
redis_start() {
    mkdir -p "$dir/redis"
    bg_start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$dir/redis" --logfile "$dir/redis/redis.log"
    rig_wait_port "$REDIS_PORT" 10 || { bad "redis-server did not start"; exit 1; }
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
redis_start
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }

PREFIX="t$$:"
cat > "$dir/milter.conf" <<CONF
milter = { log = { level = "info"; }; };
cache = { redis = "127.0.0.1:$REDIS_PORT"; prefix = "$PREFIX"; };
remote = { dovecot = {
  address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
  timeout = "2s"; catch-all = false;
  cache = { ttl = { positive = "1h"; negative = "10m"; }; };
  tls = { implicit = false; allow-invalid-certs = true; };
}; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
CONF

cat > "$dir/rcpt.lua" <<'LUA'
-- one RCPT through the milter at MILTER_SOCK; prints "RCPT <addr> -> <reply>"
local ok, err = pcall(function()
  local conn = mt.connect(os.getenv("MILTER_SOCK"), 40, 0.25)
  assert(conn, "cannot connect")
  mt.set_timeout(30)
  assert(mt.conninfo(conn, "client.example.net", "192.0.2.7") == nil)
  assert(mt.getreply(conn) == SMFIR_CONTINUE, "connect")
  assert(mt.helo(conn, "client.example.net") == nil)
  assert(mt.getreply(conn) == SMFIR_CONTINUE, "helo")
  mt.macro(conn, SMFIC_MAIL, "i", "QR1")
  assert(mt.mailfrom(conn, "<s@example.net>") == nil)
  assert(mt.getreply(conn) == SMFIR_CONTINUE, "mail")
  mt.macro(conn, SMFIC_RCPT, "i", "QR1")
  assert(mt.rcptto(conn, "<" .. os.getenv("RCPT") .. ">") == nil)
  local r = mt.getreply(conn)
  mt.echo("RCPT " .. os.getenv("RCPT") .. " -> " .. (r == SMFIR_CONTINUE and "continue" or
          r == SMFIR_REPLYCODE and "replycode" or tostring(r)))
  mt.disconnect(conn)
end)
if not ok then mt.echo("ERROR: " .. tostring(err)); os.exit(1) end
LUA

rcpt() { # SOCK LOG ADDR -> prints the milter's verdict: continue | reject | tempfail
    local sock=$1 log=$2 addr=$3 out
    out=$(MILTER_SOCK=$sock RCPT=$addr stdbuf -oL miltertest -s "$dir/rcpt.lua" 2>&1)
    if grep -q -- "-> continue" <<<"$out"; then echo continue
    elif grep -q "rcpt=<$addr>.*result=reject code=550" "$log"; then echo reject
    elif grep -q "rcpt=<$addr>.*result=tempfail code=451" "$log"; then echo tempfail
    else echo "?($out)"; fi
}
expect_rcpt() { # WHAT SOCK LOG ADDR WANT SOURCE
    local got; got=$(rcpt "$2" "$3" "$4")
    [[ $got == "$5" ]] && ok "$1: $got" || bad "$1: got $got, wanted $5"
    if [[ -n ${6:-} ]]; then
        local line; line=$(grep "lookup: .*rcpt=<$4> remote=dovecot" "$3" | tail -1)
        [[ $line == *" source=$6 "* ]] && ok "$1: source=$6 ($(grep -o 'ms=[0-9]*' <<<"$line"))" \
            || bad "$1: lookup line is '$line', wanted source=$6"
    fi
}
lookup_ms() { grep "lookup: .*rcpt=<$2> remote=dovecot" "$1" | tail -1 | grep -o 'ms=[0-9]*' | cut -d= -f2; }

milter_start "$dir/a" "$dir/milter.conf" || exit 1
A_SOCK=$MILTER_SOCK A_LOG=$MILTER_LOG
milter_start "$dir/b" "$dir/milter.conf" || exit 1
B_SOCK=$MILTER_SOCK B_LOG=$MILTER_LOG

# A fills Redis
expect_rcpt "A: alice" "$A_SOCK" "$A_LOG" alice@dovecot.test continue remote
expect_rcpt "A: nobody" "$A_SOCK" "$A_LOG" nobody@dovecot.test reject remote
expect_rcpt "A: alice again, from its local cache first" "$A_SOCK" "$A_LOG" alice@dovecot.test continue cache
key_yes="${PREFIX}dovecot:r:alice@dovecot.test" key_no="${PREFIX}dovecot:r:nobody@dovecot.test"
[[ $(rcli GET "$key_yes") == 1 ]] && ok "Redis holds $key_yes = 1" || bad "Redis: $key_yes = '$(rcli GET "$key_yes")'"
[[ $(rcli GET "$key_no") == 0 ]] && ok "Redis holds $key_no = 0" || bad "Redis: $key_no = '$(rcli GET "$key_no")'"
pttl=$(rcli PTTL "$key_yes")
(( pttl > 3590000 && pttl <= 3600000 )) && ok "yes expires with the positive TTL (PTTL $pttl)" || bad "PTTL of yes: $pttl"
pttl=$(rcli PTTL "$key_no")
(( pttl > 590000 && pttl <= 600000 )) && ok "no expires with the negative TTL (PTTL $pttl)" || bad "PTTL of no: $pttl"
[[ -z $(rcli --scan --pattern "${PREFIX}*" | grep -v "^${PREFIX}dovecot:r:") ]] \
    && ok "only rcpt answers under the prefix" || bad "unexpected keys: $(rcli --scan --pattern "${PREFIX}*")"

# the remote goes away: B answers from Redis
dovecot_stop "$dir/dovecot"
expect_rcpt "B, Dovecot down: alice from Redis" "$B_SOCK" "$B_LOG" alice@dovecot.test continue redis
expect_rcpt "B, Dovecot down: nobody from Redis" "$B_SOCK" "$B_LOG" nobody@dovecot.test reject redis
expect_rcpt "B, Dovecot down: bob (not in Redis) gets 451" "$B_SOCK" "$B_LOG" bob@dovecot.test tempfail remote
[[ -z $(rcli --scan --pattern "${PREFIX}*bob*") ]] && ok "the error for bob is not stored" || bad "an error was stored in Redis"

# Redis goes away: mail keeps flowing from the remote, without waiting
dovecot_restart "$dir/dovecot" >/dev/null || { bad "dovecot restart"; exit 1; }
bg_stop redis
expect_rcpt "A, Redis down: bob from Dovecot" "$A_SOCK" "$A_LOG" bob@dovecot.test continue remote
expect_rcpt "A, Redis down: 1alice from Dovecot" "$A_SOCK" "$A_LOG" 1alice@dovecot.test continue remote
# after a failure the milter leaves Redis alone for a pause that doubles
# from 1 s: at most 2 s after the last of these two lookups
pause_over=$(( $(_rig_now_ms) + 2000 ))
for u in bob 1alice; do
    ms=$(lookup_ms "$A_LOG" "$u@dovecot.test")
    (( ms < 1000 )) && ok "Redis down: $u answered in ${ms} ms" || bad "Redis down: $u took ${ms} ms"
done
n=$(grep -c 'cache.redis: .* unavailable' "$A_LOG")
[[ $n == 1 ]] && ok "Redis down warned once" || bad "Redis down warned $n times"

# Redis back (same port, empty): used again once the pause is over (a
# timer: there is no event to wait for)
redis_start
left=$(( pause_over - $(_rig_now_ms) ))
(( left <= 0 )) || sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))"
expect_rcpt "A, Redis back: 2alice" "$A_SOCK" "$A_LOG" 2alice@dovecot.test continue remote
[[ $(rcli GET "${PREFIX}dovecot:r:2alice@dovecot.test") == 1 ]] && ok "Redis back: 2alice stored" \
    || bad "Redis back: 2alice not stored"
grep -q 'cache.redis: .* is back' "$A_LOG" && ok "recovery logged" || bad "no recovery line"

# Redis hangs (stopped, connection open): a lookup waits ~100 ms for it, not more
kill -STOP "${BG_PID[redis]}"
expect_rcpt "A, Redis hung: 3alice from Dovecot" "$A_SOCK" "$A_LOG" 3alice@dovecot.test continue remote
ms=$(lookup_ms "$A_LOG" 3alice@dovecot.test)
(( ms >= 90 && ms < 1000 )) && ok "Redis hung: 3alice answered in ${ms} ms (the 100 ms Redis limit)" \
    || bad "Redis hung: 3alice took ${ms} ms"
kill -CONT "${BG_PID[redis]}"

if (( fails > 0 )); then echo "--- A ---"; tail -20 "$A_LOG"; echo "--- B ---"; tail -20 "$B_LOG"; fi
finish
