#!/usr/bin/env bash
# tests/daemon/pgsql.sh - SQL lists on a real PostgreSQL server, through the
# product: `-t` routes by `in-list = "pg/domains"`, `-n` names FILE:LINE for
# a bad query and for an unreachable server (a load error, as for sqlite),
# a lookup that hits the 2 s statement_timeout is an error (validation
# 451, rule false), and the running milter answers RCPT from PostgreSQL,
# gives 451 4.4.3 while the server is down and recovers when it is back.
#
# Runs a private server: initdb into a temp directory (as the postgres user
# when root), pg_ctl start on 127.0.0.1 at a free port; stopped with pg_ctl
# (or by the PID in postmaster.pid) on exit. Installs postgresql if missing;
# the milter must have been built with libpq (libpq-dev).
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init pgsql
dir=$TEST_DIR
pgdata=$dir/pg

as_pg=()
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(pg_bin)
if [[ -z $bin || ! -x $bin/initdb ]]; then
    _rig_with_lock install _rig_apt_install postgresql >/dev/null 2>&1
    bin=$(pg_bin)
fi
[[ -n $bin && -x $bin/initdb ]] || missing postgresql "no PostgreSQL server (initdb)"

pg_start() {
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdata" -l "$dir/pgrun/pg.log" -w -t 20 \
        -o "-k $dir/pgrun -c listen_addresses=127.0.0.1 -p $port -c fsync=off" start >/dev/null
}
pg_stop() {
    [[ -f $pgdata/postmaster.pid ]] || return 0
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdata" -m fast -w -t 20 stop >/dev/null && return 0
    local pid
    pid=$(head -n 1 "$pgdata/postmaster.pid" 2>/dev/null) && [[ -n $pid ]] && kill "$pid"
}
psql_run() { "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 -c "$1"; }
at_exit pg_stop

port=$(rig_free_port)
mkdir -p "$pgdata" "$dir/pgrun"
if [[ $(id -u) == 0 ]]; then
    as_pg=(runuser -u postgres --)
    chown postgres: "$pgdata" "$dir/pgrun"
fi
t0=$SECONDS
"${as_pg[@]}" "$bin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || { bad "initdb"; cat "$dir/initdb.log"; exit 1; }
pg_start || { bad "postgres did not start"; cat "$dir/pgrun/pg.log"; exit 1; }
psql_run "CREATE TABLE domains (name TEXT PRIMARY KEY);
          INSERT INTO domains VALUES ('example.org'), ('slow.example');
          CREATE TABLE users (addr TEXT PRIMARY KEY);
          INSERT INTO users VALUES ('alice@example.org');" || { bad "schema"; exit 1; }
echo "postgres $("$bin/postgres" -V | awk '{print $3}') on 127.0.0.1:$port after $((SECONDS - t0)) s"

conninfo="host=127.0.0.1 port=$port user=postgres dbname=postgres"
# the domains query sleeps 3 s for slow.example: past the 2 s statement_timeout
domains_query="SELECT 1 FROM domains WHERE name = ? AND (SELECT count(*) FROM pg_sleep(CASE WHEN name = 'slow.example' THEN 3 ELSE 0 END)) = 1"
write_conf() { # FILE USERS_QUERY
    cat >"$1" <<EOF
milter = { log = { level = "info"; }; };
remote = { store = { address = "127.0.0.1"; port = 1; protocol = "lmtp"; tls = { enable = false; }; }; };
database = {
  pg = {
    type = "postgresql";
    conninfo = "$conninfo";
    lookup = {
      domains = "$domains_query";
      users = "$2";
    };
  };
};
session = { rcpt = { lookup = { domains = "pg/domains"; addresses = "pg/users"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "pg/domains"; then = "store"; },
                                    { else = false; } ); }; };
EOF
}
conf=$dir/pg.conf
write_conf "$conf" "SELECT 1 FROM users WHERE addr = ?"
write_conf "$dir/bad.conf" "SELECT 1 FROM nowhere WHERE addr = ?"
users_line=$(grep -n 'users = ' "$conf" | cut -d: -f1)

"$NEXTHOP_BIN" -c "$conf" -n >"$dir/out" 2>&1
if grep -q 'not built in' "$dir/out"; then
    missing libpq-dev "milter-nexthop was built without libpq: install libpq-dev and re-run cmake"
fi

# -n and -t against the running server
"$NEXTHOP_BIN" -c "$conf" -n >"$dir/out" 2>&1 && ok "-n accepts the postgresql config" || { bad "-n"; cat "$dir/out"; }
"$NEXTHOP_BIN" -c "$conf" -t '<alice@Example.org>' >"$dir/out" 2>"$dir/err"
diff -u <(printf 'validation: pg/users\nnext-hop: store\naction: header\nmode: enforce\non-error: tempfail\n') "$dir/out" \
    && ok "-t: a domain in the table routes to store" || { bad "-t in the list"; cat "$dir/err"; }
"$NEXTHOP_BIN" -c "$conf" -t 'bob@other.example' >"$dir/out" 2>"$dir/err"
diff -u <(printf 'validation: none\nnext-hop: false\naction: header\nmode: enforce\non-error: tempfail\n') "$dir/out" \
    && ok "-t: a domain not in the table is left to the MTA" || { bad "-t not in the list"; cat "$dir/err"; }
[[ -s $dir/err ]] && bad "-t printed errors: $(cat "$dir/err")"

start=$SECONDS
"$NEXTHOP_BIN" -c "$conf" -t 'bob@slow.example' >"$dir/out" 2>"$dir/err"
took=$((SECONDS - start))
grep -qx 'validation: error (.*pg/domains: canceling statement due to statement timeout)' "$dir/out" \
    && ok "-t: a lookup past the statement timeout fails validation (451)" || bad "-t slow validation: $(cat "$dir/out")"
grep -qx 'next-hop: false' "$dir/out" && grep -q 'lookup failed.*pg/domains: canceling statement due to statement timeout' "$dir/err" \
    && ok "-t: the failed in-list condition is false and reported" || bad "-t slow rule: $(cat "$dir/out" "$dir/err")"
(( took <= 6 )) && ok "-t: two timed-out lookups took ${took} s (2 s each)" || bad "-t slow took ${took} s"

# a bad query is a load error naming FILE:LINE
"$NEXTHOP_BIN" -c "$dir/bad.conf" -n >"$dir/out" 2>&1; rc=$?
if [[ $rc == 1 ]] && grep -q "^$dir/bad.conf:$users_line: database.pg.lookup.users: bad query: relation \"nowhere\" does not exist" "$dir/out"; then
    ok "-n: a bad query is reported at $dir/bad.conf:$users_line"
else
    bad "-n bad query: exit $rc: $(cat "$dir/out")"
fi

# the daemon: RCPT answered from PostgreSQL, 451 while it is down, back after
milter_start "$dir/milter" "$conf" || exit 1
rcpt() { # ADDRESS -> prints "kind text"
    "$RIG_PYTHON" - "$here" "$MILTER_SOCK" "$1" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from milterclient import Milter
m = Milter(sys.argv[2], timeout=20)
m.start()
m.mail("<sender@example.net>", qid="PGQ1")
print(m.rcpt("<%s>" % sys.argv[3], qid="PGQ1"))
m.close()
EOF
}
expect_rcpt() { # WHAT ADDRESS REGEX
    local got
    got=$(rcpt "$2")
    [[ $got =~ $3 ]] && ok "$1 ($got)" || bad "$1: got '$got'"
}
expect_rcpt "RCPT of a user in the table is accepted" alice@example.org '^continue$'
expect_rcpt "RCPT of a user not in the table gets 550 5.1.1" nobody@example.org '^reply 550 5\.1\.1'

pg_stop && ok "postgres stopped" || bad "pg_ctl stop"
start=$SECONDS
expect_rcpt "RCPT while postgres is down gets 451 4.4.3" alice@example.org '^reply 451 4\.4\.3'
(( SECONDS - start <= 3 )) && ok "the 451 came at once" || bad "451 took $((SECONDS - start)) s"
grep -q 'why="domain lookup failed: pg/domains: cannot connect: .*Connection refused' "$MILTER_LOG" \
    && ok "the log names the list and the server's error" || { bad "no error in the log"; tail -n 5 "$MILTER_LOG"; }
"$NEXTHOP_BIN" -c "$conf" -n >"$dir/out" 2>&1; rc=$?
[[ $rc == 1 ]] && grep -q "^$conf:[0-9]*: database.pg.lookup.domains: cannot connect: .*Connection refused" "$dir/out" \
    && ok "-n: an unreachable server is a load error with FILE:LINE" || bad "-n with postgres down: exit $rc: $(cat "$dir/out")"

pg_start && ok "postgres restarted" || bad "pg_ctl start"
expect_rcpt "RCPT after the restart is accepted again" alice@example.org '^continue$'
expect_rcpt "and unknown users get 550 again" nobody@example.org '^reply 550 5\.1\.1'
milter_alive && ok "the milter kept running" || bad "the milter died"
finish "in $((SECONDS - t0)) s"
