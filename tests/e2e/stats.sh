#!/usr/bin/env bash
# tests/e2e/stats.sh - stats.listen through real mail: Postfix hands RCPTs
# to the running milter, which looks them up in a real Dovecot over LMTP and
# relays there. /metrics is scraped before and after and must show exactly
# what happened: lookups by result and source, cache misses, hits and
# entries, pool connections, relayed recipients, latency histograms, and
# the host marked down once Dovecot is stopped.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/e2e.sh"
harness_init stats
dir=$TEST_DIR
rig_install >/dev/null || { bad "rig_install"; exit 1; }

STATS_PORT=$(rig_free_port)
export STATS_PORT
cat > "$dir/milter.conf.in" <<'CONF'
milter = { log = { level = "info"; }; };
stats = { listen = "127.0.0.1:@STATS_PORT@"; };
remote = { dovecot = {
  address = "127.0.0.1"; port = @DOVECOT_LMTP_PORT@; protocol = "lmtp"; lookup = true;
  timeout = "3s"; catch-all = false;
  tls = { implicit = false; allow-invalid-certs = true; };
}; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; on-tempfail = "tempfail"; timeout = "20s"; };
CONF
e2e_start "$dir" "$dir/milter.conf.in" || { bad "rig did not start"; exit 1; }

scrape() { # -> $dir/scrape (body), $dir/headers
    local out
    out=$(exec 3<>"/dev/tcp/127.0.0.1/$STATS_PORT" && printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && cat <&3) \
        || { echo "scrape failed" >&2; return 1; }
    printf '%s\n' "$out" | tr -d '\r' | sed '/^$/q' > "$dir/headers"
    printf '%s\n' "$out" | tr -d '\r' | sed '1,/^$/d' > "$dir/scrape"
}
val() { # SERIES -> its value in the last scrape, or "absent"
    awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print "absent" }' "$dir/scrape"
}
expect() { # SERIES WANT [WHAT]
    local got; got=$(val "$1")
    [[ $got == "$2" ]] && ok "${3:-$1} = $2" || bad "${3:-$1}: got $got, wanted $2"
}
at_least() { # SERIES MIN
    local got; got=$(val "$1")
    [[ $got != absent ]] && awk -v g="$got" -v m="$2" 'BEGIN { exit !(g >= m) }' \
        && ok "$1 = $got (>= $2)" || bad "$1: got $got, wanted >= $2"
}
R='remote="dovecot"'

scrape || exit 1
grep -q '^HTTP/1.[01] 200' "$dir/headers" && grep -qi '^Content-Type: text/plain; version=0.0.4' "$dir/headers" \
    && ok "GET /metrics: 200, Prometheus text 0.0.4" || { bad "GET /metrics headers"; cat "$dir/headers"; }
expect "nexthop_lookups_total{$R,kind=\"rcpt\",result=\"yes\"}" 0 "before: rcpt yes"
expect "nexthop_pool_connects_total{$R}" 0 "before: no connection yet"
expect "nexthop_remote_down{$R}" 0 "before: dovecot up"

# one existing and one unknown recipient, through Postfix
send_mail s@example.net alice@dovecot.test "stats-1"; rc=$?
[[ $rc == 0 ]] && ok "mail to alice accepted" || { bad "mail to alice: swaks exit $rc"; tail -20 "$E2E_DIR/swaks.out"; }
send_mail s@example.net nobody@dovecot.test "stats-2"
grep -q "<\*\* *550 5.1.1" "$E2E_DIR/swaks.out" && ok "unknown recipient: 550" || bad "unknown recipient not rejected"
scrape || exit 1
expect "nexthop_lookups_total{$R,kind=\"rcpt\",result=\"yes\"}" 1 "after 2 mails: rcpt yes"
expect "nexthop_lookups_total{$R,kind=\"rcpt\",result=\"no\"}" 1 "after 2 mails: rcpt no"
expect "nexthop_lookups_total{$R,kind=\"rcpt\",result=\"error\"}" 0 "after 2 mails: rcpt error"
expect "nexthop_lookup_sources_total{$R,source=\"remote\"}" 2 "answers from the remote"
expect "nexthop_lookup_duration_seconds_count{$R}" 2 "lookup latency observations"
expect "nexthop_lookup_duration_seconds_bucket{$R,le=\"+Inf\"}" 2 "lookup latency +Inf bucket"
expect "nexthop_cache_misses_total{$R}" 2 "cache misses"
expect "nexthop_cache_entries{$R,answer=\"yes\"}" 1 "cached yes"
expect "nexthop_cache_entries{$R,answer=\"no\"}" 1 "cached no"
at_least "nexthop_pool_connects_total{$R}" 1
at_least "nexthop_pool_operations_total{$R}" 3
open=$(val "nexthop_pool_connections_open{$R}") idle=$(val "nexthop_pool_connections_idle{$R}")
[[ $open != absent && $open == "$idle" ]] && ok "between mails every open connection is idle ($open open, $idle idle)" \
    || bad "pool gauges: open=$open idle=$idle"
expect "nexthop_relay_recipients_total{$R,result=\"delivered\"}" 1 "relayed to Dovecot"
expect "nexthop_relay_duration_seconds_count{$R}" 1 "relay latency observations"
[[ $(mailbox_count "$E2E_DIR/dovecot" alice@dovecot.test) == 1 ]] && ok "alice has the message" || bad "alice's mailbox"

# the same recipient again: answered from the cache
send_mail s@example.net alice@dovecot.test "stats-3"
scrape || exit 1
expect "nexthop_lookups_total{$R,kind=\"rcpt\",result=\"yes\"}" 2 "third mail: rcpt yes"
expect "nexthop_lookup_sources_total{$R,source=\"cache\"}" 1 "answer from the cache"
expect "nexthop_cache_hits_total{$R,answer=\"yes\"}" 1 "cache hit"
expect "nexthop_relay_recipients_total{$R,result=\"delivered\"}" 2 "second relay"

# Dovecot down: the lookup fails, the host is marked down
dovecot_stop "$E2E_DIR/dovecot"
send_mail s@example.net bob@dovecot.test "stats-4"
grep -q "<\*\* *451" "$E2E_DIR/swaks.out" && ok "Dovecot down: 451 at RCPT" || bad "Dovecot down: no 451"
scrape || exit 1
expect "nexthop_lookups_total{$R,kind=\"rcpt\",result=\"error\"}" 1 "lookup error counted"
expect "nexthop_remote_down{$R}" 1 "host marked down"
grep -q 'password\|secret' "$dir/scrape" && bad "scrape mentions a secret" || ok "no secrets in the scrape"

if (( fails > 0 )); then echo "--- milter log ---"; tail -30 "$MILTER_LOG"; fi
finish
