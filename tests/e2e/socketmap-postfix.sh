#!/usr/bin/env bash
# tests/e2e/socketmap-postfix.sh - Postfix routes natively through the
# milter's rules: a real private Postfix configured with
# contrib/postfix-main.cf (milter + transport_maps = socketmap:...:nexthop),
# the milter only validating (routing.action = header), a real Dovecot:
#   unknown recipient -> 550 5.1.1 at RCPT (the milter)
#   dovecot.test -> Postfix's own lmtp client delivers to Dovecot, because
#     the socketmap answered lmtp:inet:127.0.0.1:PORT
#   other domains -> NOTFOUND, Postfix's usual route (relayhost = smtp-sink)
#   a next hop on a unix socket -> lmtp:unix:/path (an LMTP smtp-sink)
#   a list lookup that fails -> TEMP: Postfix answers 451 at RCPT, nothing
#     is accepted, bounced or sent elsewhere; once the list works again the
#     retry is delivered
# Postfix asks socketmap tables with the full recipient address only (no
# domain or parent-domain lookups, as for regexp tables; "*" once per
# trivial-rewrite process): checked too.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init smap-pf
dir=$TEST_DIR
send_mail() { # FROM TO SUBJECT
    swaks --server 127.0.0.1 --port "$POSTFIX_PORT" --from "$1" --to "$2" \
        --h-Subject "$3" --body "body of $3" --timeout 30 >"$dir/swaks.out" 2>&1
}
mailbox_file() { # USER SUBJECT: prints the message file, fails when there is none
    local f
    f=$(grep -ls -- "Subject: $2\$" "$dir/dovecot/mail/${1#*@}/${1%@*}"/{new,cur}/* | head -n 1)
    [[ -n $f ]] && printf '%s\n' "$f"
}
sink_grep() { grep -l -- "$1" "$dir"/sink/[0-9]* 2>/dev/null | wc -l; }
sql() { "$RIG_PYTHON" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' "$dir/routing.db" "$1"; }
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
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }
SMAP_PORT=$(rig_free_port)
unix_sink_start || { bad "smtp-sink on a unix socket did not start"; exit 1; }
sql "CREATE TABLE flaky (name TEXT); INSERT INTO flaky VALUES ('bob@dovecot.test');"

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
                     lookup = { flaky = "SELECT 1 FROM flaky WHERE name = ?"; }; }; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
# bob's next hop comes from an SQL list (made to fail below); only bob's
# lookups touch it
queue = { outbound = { next-hop = (
  { if = "rcpt-domain"; eq = "unix.test"; then = "sock"; },
  { all-of = ( { if = "rcpt"; eq = "bob@dovecot.test"; }, { if = "rcpt"; in-list = "sql/flaky"; } );
    then = "dovecot"; },
  { if = "rcpt"; eq = "bob@dovecot.test"; then = false; },
  { if = "rcpt-domain"; in-list = "list/local"; then = "dovecot"; },
  { else = false; } ); }; };
routing = { action = "header"; };
socketmap = { listen = "inet:127.0.0.1:$SMAP_PORT"; };
EOF
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" ||
    { bad "milter did not start"; exit 1; }
rig_wait_port "$SMAP_PORT" 5 || { bad "socketmap not listening"; cat "$MILTER_LOG"; exit 1; }

# contrib/postfix-main.cf as it is: its settings, with the test's socket
# paths and port, and its optional section 2 (transport_maps) enabled.
mapfile -t snippet < <(mail_postfix_settings "unix:$dir/milter/milter.sock" "$SMAP_PORT")
check "the snippet sets the milter and the socketmap transport" \
    eq "$(printf '%s\n' "${snippet[@]}" | grep -c '^smtpd_milters = \|^transport_maps = socketmap:inet:')" 2
postfix_start "$dir/postfix" "${snippet[@]}" "relayhost = [127.0.0.1]:$SINK_PORT" ||
    { bad "postfix did not start"; exit 1; }
PF=$POSTFIX_DIR
echo "rig up in $((SECONDS - started)) s (postfix $POSTFIX_PORT, socketmap $SMAP_PORT, dovecot lmtp $DOVECOT_LMTP_PORT)"

# the milter still validates
send_mail s@example.net nobody@dovecot.test "unknown"
check "unknown recipient gets 550 5.1.1 at RCPT" grep -q "<\*\* *550 5.1.1" "$dir/swaks.out"

# dovecot.test: Postfix delivers it itself, over LMTP, where the socketmap said
send_mail s@example.net alice@dovecot.test "native-1"; rc=$?
check "native: accepted (swaks exit $rc)" eq "$rc" 0
wait_for 15 mailbox_file alice@dovecot.test native-1 >/dev/null
f=$(mailbox_file alice@dovecot.test native-1)
check "native: in alice's mailbox" test -n "$f"
check "native: delivered by Postfix's lmtp client, not by the milter" \
    bash -c "grep -A3 '^Received: from pf$POSTFIX_PORT.rig.test ' '${f:-/dev/null}' | grep -q ' with LMTP' &&
             ! grep -q '(milter-nexthop)' '${f:-/dev/null}'"
check "native: the milter only added its header" grep -q '^X-Nexthop: dovecot' "${f:-/dev/null}"
check "native: Postfix logged relay=127.0.0.1[127.0.0.1]:$DOVECOT_LMTP_PORT" \
    grep -q "to=<alice@dovecot.test>, relay=127.0.0.1\[127.0.0.1\]:$DOVECOT_LMTP_PORT,.* status=sent" "$PF/maillog"
check "native: the socketmap was asked and answered the transport" \
    grep -q "socketmap: request=\"nexthop alice@dovecot.test\" reply=\"OK lmtp:inet:127.0.0.1:$DOVECOT_LMTP_PORT\"" "$MILTER_LOG"
postfix_wait_empty "$PF" 10
check "native: Postfix queue empty" eq "$(postfix_queue_count "$PF")" 0
check "native: nothing went to the Internet" eq "$(sink_grep 'Subject: native-1')" 0

# other domains: NOTFOUND, Postfix's usual route
send_mail s@example.net someone@external.example "external-1"
postfix_wait_empty "$PF" 15
check "external: delivered by the usual route (relayhost)" eq "$(sink_grep 'Subject: external-1')" 1
check "external: the socketmap said NOTFOUND" \
    grep -q 'socketmap: request="nexthop someone@external.example" reply="NOTFOUND "' "$MILTER_LOG"
check "Postfix asked full addresses (and \"*\" at start) only, no domains" \
    eq "$(grep -c 'socketmap: request="nexthop [^@"*]*"' "$MILTER_LOG") $(grep -c 'socketmap: request="nexthop \*"' "$MILTER_LOG" | sed 's/^[1-9][0-9]*$/some/')" "0 some"

# a next hop on a unix socket: lmtp:unix:/path
send_mail s@example.net x@unix.test "unix-1"
wait_for 15 bash -c "[[ \$(grep -ls 'Subject: unix-1' '$dir'/usink/[0-9]* | wc -l) -ge 1 ]]"
check "unix: the socketmap answered lmtp:unix:PATH" \
    grep -q "socketmap: request=\"nexthop x@unix.test\" reply=\"OK lmtp:unix:$dir/usink.sock\"" "$MILTER_LOG"
check "unix: Postfix delivered to the LMTP server on that socket" eq "$(usink_grep 'Subject: unix-1')" 1
postfix_wait_empty "$PF" 10
check "unix: nothing went to the Internet" eq "$(sink_grep 'Subject: unix-1')" 0

# a list lookup fails: TEMP. Postfix resolves each recipient at RCPT, so
# the client is told to retry (451 4.3.0); nothing is accepted or lost.
sql "DROP TABLE flaky;"
send_mail s@example.net bob@dovecot.test "flaky-1"; rc=$?
check "temp: the socketmap answered TEMP naming the list" \
    grep -q 'socketmap: request="nexthop bob@dovecot.test" reply="TEMP sql/flaky: no such table: flaky"' "$MILTER_LOG"
check "temp: Postfix answers 451 4.3.0 at RCPT (the client retries)" \
    grep -q '<\*\* *451 4.3.0 <bob@dovecot.test>: Temporary lookup failure' "$dir/swaks.out"
check "temp: nothing queued, sent elsewhere or delivered" \
    eq "$(postfix_queue_count "$PF") $(sink_grep 'flaky-1') $(mailbox_file bob@dovecot.test flaky-1 | wc -l)" "0 0 0"
grep -q "RCPT TO" "$dir/swaks.out" || cat "$dir/swaks.out"

# the list works again: the retry goes through, routed by the socketmap.
# (An smtpd process remembers a resolution, failed ones included, for its
# lifetime: `postfix reload` starts fresh ones, as an admin would.)
sql "CREATE TABLE flaky (name TEXT); INSERT INTO flaky VALUES ('bob@dovecot.test');"
postfix_reload "$PF" || bad "postfix reload"
send_mail s@example.net bob@dovecot.test "flaky-2"; rc=$?
check "retry: accepted (swaks exit $rc)" eq "$rc" 0
wait_for 15 mailbox_file bob@dovecot.test flaky-2 >/dev/null
check "retry: delivered by Postfix to Dovecot" \
    grep -q "to=<bob@dovecot.test>, relay=127.0.0.1\[127.0.0.1\]:$DOVECOT_LMTP_PORT,.* status=sent" "$PF/maillog"

if ((fails > 0)); then
    echo "--- milter log (tail) ---"; tail -n 20 "$MILTER_LOG"
    echo "--- postfix log (tail) ---"; tail -n 20 "$PF/maillog"
fi
finish "in $((SECONDS - started)) s"
