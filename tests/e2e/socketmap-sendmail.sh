#!/usr/bin/env bash
# tests/e2e/socketmap-sendmail.sh - Sendmail routes natively through the
# milter's rules: a real private Sendmail whose mailertable is the milter's
# socket map (contrib/sendmail.mc with NEXTHOP_SOCKETMAP, and the LMTP
# mailer NEXTHOP_MAILER defines), the milter only validating
# (routing.action = header), a real Dovecot:
#   unknown recipient -> 550 5.1.1 at RCPT (the milter)
#   dovecot.test -> the socket map answers nexthop_dovecot:[127.0.0.1] and
#     Sendmail's LMTP mailer delivers to Dovecot
#   other domains -> NOTFOUND for the domain, ".domain" and ".", Sendmail's
#     usual route (SMART_HOST = smtp-sink)
#   a next hop on a unix socket -> nexthop_sock:localhost, a mailer with
#     A=FILE /path (an LMTP smtp-sink)
#   a list lookup that fails -> TEMP: Sendmail keeps the mail in its queue
#     (nothing bounced or sent elsewhere); once the list works, a queue run
#     delivers it
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/sendmail.sh"
harness_init smap-sm
dir=$TEST_DIR
send_mail() { # FROM TO SUBJECT
    swaks --server 127.0.0.1 --port "$SENDMAIL_PORT" --from "$1" --to "$2" \
        --h-Subject "$3" --body "body of $3" --timeout 30 >"$dir/swaks.out" 2>&1
}
mailbox_file() { # USER SUBJECT: prints the message file, fails when there is none
    local f
    f=$(grep -ls -- "Subject: $2\$" "$dir/dovecot/mail/${1#*@}/${1%@*}"/{new,cur}/* | head -n 1)
    [[ -n $f ]] && printf '%s\n' "$f"
}
sink_grep() { grep -l -- "$1" "$dir"/sink/[0-9]* 2>/dev/null | wc -l; }
sink_has() { [[ $(sink_grep "$1") -ge 1 ]]; }
sql() { "$RIG_PYTHON" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' "$dir/routing.db" "$1"; }
asked() { grep -c "socketmap: request=\"$1\" reply=\"$2\"" "$MILTER_LOG"; }
# an LMTP server on a unix socket (smtp-sink -L), for the unix: next hop
unix_sink_start() {
    mkdir -p "$dir/usink" && chown nobody "$dir/usink" || return 1
    bg_start usink /usr/sbin/smtp-sink -u nobody -L -d "$dir/usink/%H%M%S." "unix:$dir/usink.sock" 10 \
        </dev/null >>"$dir/usink.log" 2>&1
    wait_for 10 test -S "$dir/usink.sock" && chmod 0666 "$dir/usink.sock"
}
usink_grep() { grep -l -- "$1" "$dir"/usink/[0-9]* 2>/dev/null | wc -l; }
started=$SECONDS

rig_install || { bad "cannot install the rig"; exit 1; }
sendmail_install || missing sendmail "cannot fetch and unpack Sendmail (tests/lib/sendmail.sh)"
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }
SMAP_PORT=$(rig_free_port)
unix_sink_start || { bad "smtp-sink on a unix socket did not start"; exit 1; }
sql "CREATE TABLE domains (name TEXT); INSERT INTO domains VALUES ('dovecot.test');"

# dovecot.test's next hop comes from an SQL list (made to fail below);
# other domains never touch it.
mkdir -p "$dir/milter"
cat >"$dir/milter/milter.conf" <<EOF
milter = { log = { level = "debug"; }; };
remote = { dovecot = {
  address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
  timeout = "5s";
  tls = { implicit = false; allow-invalid-certs = true; };
};
  sock = { address = "unix:$dir/usink.sock"; protocol = "lmtp"; tls = { enable = false; }; };
};
list = { local = [ "dovecot.test" ]; };
database = { sql = { type = "sqlite"; path = "$dir/routing.db";
                     lookup = { domains = "SELECT 1 FROM domains WHERE name = ?"; }; }; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = (
  { if = "rcpt-domain"; eq = "unix.test"; then = "sock"; },
  { if = "rcpt-domain"; ne = "dovecot.test"; then = false; },
  { if = "rcpt-domain"; in-list = "sql/domains"; then = "dovecot"; },
  { else = false; } ); }; };
routing = { action = "header"; };
socketmap = { listen = "inet:127.0.0.1:$SMAP_PORT"; };
EOF
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" ||
    { bad "milter did not start"; exit 1; }
rig_wait_port "$SMAP_PORT" 5 || { bad "socketmap not listening"; cat "$MILTER_LOG"; exit 1; }

sendmail_start "$dir/sm" \
    "define(\`NEXTHOP_SOCKET', \`local:$dir/milter/milter.sock')dnl" \
    "define(\`NEXTHOP_SOCKETMAP', \`inet:$SMAP_PORT@127.0.0.1')dnl" \
    "include(\`$NEXTHOP_SRC/contrib/sendmail.mc')dnl" \
    "NEXTHOP_MAILER(\`dovecot', \`lmtp', \`$DOVECOT_LMTP_PORT')dnl" \
    "NEXTHOP_MAILER(\`sock', \`lmtp', \`$dir/usink.sock')dnl" \
    "define(\`SMART_HOST', \`esmtp:[127.0.0.1]')dnl" \
    "define(\`ESMTP_MAILER_ARGS', \`TCP \$h $SINK_PORT')dnl" ||
    { bad "sendmail did not start"; exit 1; }
SM=$SENDMAIL_DIR
check "the .cf's mailertable is the socket map" \
    grep -q "^Kmailertable socket inet:$SMAP_PORT@127.0.0.1\$" "$SM/sendmail.cf"
echo "rig up in $((SECONDS - started)) s (sendmail $SENDMAIL_PORT, socketmap $SMAP_PORT, dovecot lmtp $DOVECOT_LMTP_PORT)"

# the milter still validates
send_mail s@example.net nobody@dovecot.test "unknown"
check "unknown recipient gets 550 5.1.1 at RCPT" grep -q "<\*\* *550 5.1.1" "$dir/swaks.out"

# dovecot.test: Sendmail delivers it itself through the mailer the map named
send_mail s@example.net alice@dovecot.test "native-1"; rc=$?
check "native: accepted (swaks exit $rc)" eq "$rc" 0
wait_for 15 mailbox_file alice@dovecot.test native-1 >/dev/null
f=$(mailbox_file alice@dovecot.test native-1)
check "native: in alice's mailbox" test -n "$f"
check "native: delivered by Sendmail over LMTP, not by the milter" \
    bash -c "grep -A3 '^Received: from $SENDMAIL_HOST ' '${f:-/dev/null}' | grep -q ' with LMTP' &&
             ! grep -q '(milter-nexthop)' '${f:-/dev/null}'"
check "native: the milter only added its header" grep -q '^X-Nexthop: dovecot' "${f:-/dev/null}"
check "native: the map answered the mailer and host" \
    test "$(asked 'mailertable dovecot.test' 'OK nexthop_dovecot:\[127.0.0.1\]')" -ge 1
wait_for 10 bash -c "[[ \$(find '$SM/queue' -name 'qf*' | wc -l) -eq 0 ]]"
check "native: Sendmail queue empty" eq "$(sendmail_queue_count "$SM")" 0
check "native: nothing went to the Internet" eq "$(sink_grep 'Subject: native-1')" 0

# other domains: NOTFOUND for every key Sendmail tries, its usual route
send_mail s@example.net someone@external.example "external-1"
wait_for 15 sink_has 'Subject: external-1'
check "external: delivered by the usual route (SMART_HOST)" eq "$(sink_grep 'Subject: external-1')" 1
check "external: NOTFOUND for external.example, .example and ." \
    bash -c "[[ $(asked 'mailertable external.example' 'NOTFOUND ') -ge 1 &&
                $(asked 'mailertable .example' 'NOTFOUND ') -ge 1 &&
                $(asked 'mailertable .' 'NOTFOUND ') -ge 1 ]]"
check "Sendmail asked domains only" eq "$(grep -c 'socketmap: request="mailertable [^"]*@' "$MILTER_LOG")" 0

# a next hop on a unix socket: the mailer nexthop_sock has A=FILE /path
send_mail s@example.net x@unix.test "unix-1"
wait_for 15 bash -c "[[ \$(grep -ls 'Subject: unix-1' '$dir'/usink/[0-9]* | wc -l) -ge 1 ]]"
check "unix: the map answered nexthop_sock:localhost" \
    test "$(asked 'mailertable unix.test' 'OK nexthop_sock:localhost')" -ge 1
check "unix: Sendmail delivered to the LMTP server on that socket" eq "$(usink_grep 'Subject: unix-1')" 1
check "unix: nothing went to the Internet" eq "$(sink_grep 'Subject: unix-1')" 0

# a list lookup fails: TEMP; Sendmail keeps the mail, it is not lost
sql "DROP TABLE domains;"
send_mail s@example.net bob@dovecot.test "flaky-1"; rc=$?
echo "  flaky: swaks exit $rc; $(grep -m1 -E '<(\*\*)? *[245][0-9][0-9] .*(Queued|accepted|failure|flaky)' "$dir/swaks.out")"
check "temp: the map answered TEMP naming the list" \
    test "$(asked 'mailertable dovecot.test' 'TEMP sql/domains: no such table: domains')" -ge 1
# Sendmail's delivery attempt, deferred: its status lands in the qf file
deferred() { local qf; qf=$(sendmail_qf "$SM" | head -n 1); [[ -n $qf ]] && grep -qs '^M.*deferred' "$qf"; }
wait_for 30 deferred || echo "  no deferral recorded in the qf file within 30 s"
check "temp: accepted and kept in Sendmail's queue" eq "$rc $(sendmail_queue_count "$SM")" "0 1"
check "temp: nothing bounced, sent elsewhere or delivered" \
    eq "$(sink_grep 'flaky-1') $(sink_grep 'MAILER-DAEMON') $(mailbox_file bob@dovecot.test flaky-1 | wc -l)" "0 0 0"
qf=$(sendmail_qf "$SM" | head -1)
[[ -n $qf ]] && grep '^M' "$qf" | sed 's/^/  qf status: /'

# the list works again: the next queue run delivers it
sql "CREATE TABLE domains (name TEXT); INSERT INTO domains VALUES ('dovecot.test');"
sendmail_run_queue "$SM"
wait_for 15 mailbox_file bob@dovecot.test flaky-1 >/dev/null
check "temp: delivered by the next queue run" test -n "$(mailbox_file bob@dovecot.test flaky-1)"
wait_for 10 bash -c "[[ \$(find '$SM/queue' -name 'qf*' | wc -l) -eq 0 ]]"
check "temp: Sendmail queue empty" eq "$(sendmail_queue_count "$SM")" 0

if ((fails > 0)); then
    echo "--- milter log (tail) ---"; tail -n 20 "$MILTER_LOG"
    echo "--- sendmail traffic (tail) ---"; tail -n 20 "$SM/traffic.log"
fi
finish "in $((SECONDS - started)) s"
