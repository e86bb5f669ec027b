#!/usr/bin/env bash
# tests/e2e/sendmail-routing.sh - the scenarios of postfix-routing.sh with a
# real Sendmail (registered through contrib/sendmail.mc, INPUT_MAIL_FILTER)
# in front of a real Dovecot:
#   unknown recipient -> 550 5.1.1 at RCPT; a valid one is accepted
#   relay: the message lands in Dovecot once and leaves Sendmail's queue
#   an external recipient goes through Sendmail untouched
#   a mixed message splits: local one relayed by the milter (and removed
#     from Sendmail's copy), external one delivered by Sendmail
#   header mode: Sendmail delivers (mailertable -> LMTP mailer from the
#     snippet) and the message carries X-Nexthop: dovecot; a forged
#     X-Nexthop from the client is removed
#   Sendmail's macros reach the rules (listener, local-ip)
#   quarantine: the message sits in Sendmail's queue as an hf file whose
#     reason (q line, mailq -qQ) names the recipient and next hop
#   Dovecot down during relay: quarantined with the host and reply as the
#     reason; released later (sendmail -qQ -qI<id> -Q) it is delivered
#   the milter down: F=T, the client gets a 4xx, nothing is accepted
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/sendmail.sh"
harness_init sm-e2e
dir=$TEST_DIR

send_mail() { # FROM TO SUBJECT [swaks args]
    local from=$1 to=$2 subject=$3
    shift 3
    swaks --server 127.0.0.1 --port "$SENDMAIL_PORT" --from "$from" --to "$to" \
        --h-Subject "$subject" --body "body of $subject" --timeout 60 "$@" >"$dir/swaks.out" 2>&1
}
sink_grep() { grep -l -- "$1" "$dir"/sink/[0-9]* 2>/dev/null | wc -l; }
sink_count() { find "$dir/sink" -maxdepth 1 -type f -name '[0-9]*' | wc -l; }
mailbox_grep() { # USER PATTERN -> messages of USER holding PATTERN
    local user=${1%@*} dom=${1#*@}
    grep -l -- "$2" "$dir/dovecot/mail/$dom/$user"/{new,cur}/* 2>/dev/null | wc -l
}
queue_empty() { [[ $(sendmail_queue_count "$SM") -eq 0 ]]; }
started=$SECONDS

rig_install || { bad "cannot install the rig"; exit 1; }
sendmail_install || missing sendmail "cannot fetch and unpack Sendmail (tests/lib/sendmail.sh)"
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }

# The milter config of the Postfix scenarios: validate and relay
# dovecot.test to Dovecot; the sender picks the action.
mkdir -p "$dir/milter"
cat >"$dir/milter/milter.conf" <<EOF
milter = { log = { level = "debug"; }; };
remote = { dovecot = {
  address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
  timeout = "5s";
  tls = { implicit = false; allow-invalid-certs = true; };
}; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = {
  action = ( { if = "sender"; eq = "header@example.net"; then = "header"; },
             { all-of = ( { if = "sender"; eq = "macros@example.net"; }, { if = "listener"; eq = "MTA"; },
                          { if = "local-ip"; eq = "127.0.0.1"; } ); then = "header"; },
             { if = "sender"; eq = "macros@example.net"; then = "quarantine"; },
             { if = "sender"; eq = "hold@example.net"; then = "quarantine"; },
             { else = "relay"; } );
  on-tempfail = "quarantine";
  timeout = "20s";
};
EOF
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" ||
    { bad "milter did not start"; exit 1; }

# Sendmail's own routes: dovecot.test -> Dovecot LMTP through the snippet's
# NEXTHOP_MAILER, everything else -> smtp-sink (the Internet).
printf 'dovecot.test\tnexthop_dovecot:[127.0.0.1]\n' >"$dir/mailertable"
sendmail_start "$dir/sm" \
    "define(\`NEXTHOP_SOCKET', \`local:$dir/milter/milter.sock')dnl" \
    "include(\`$NEXTHOP_SRC/contrib/sendmail.mc')dnl" \
    "NEXTHOP_MAILER(\`dovecot', \`lmtp', \`$DOVECOT_LMTP_PORT')dnl" \
    "FEATURE(\`mailertable', \`text -o -k0 -v1 $dir/mailertable')dnl" \
    "define(\`SMART_HOST', \`esmtp:[127.0.0.1]')dnl" \
    "define(\`ESMTP_MAILER_ARGS', \`TCP \$h $SINK_PORT')dnl" ||
    { bad "sendmail did not start"; exit 1; }
SM=$SENDMAIL_DIR
echo "rig up in $((SECONDS - started)) s (sendmail on $SENDMAIL_PORT, dovecot lmtp $DOVECOT_LMTP_PORT)"

# unknown recipient: 550 at RCPT; valid one accepted
send_mail s@example.net nobody@dovecot.test "unknown"
check "unknown recipient gets 550 5.1.1 at RCPT" grep -q "<\*\* *550 5.1.1" "$dir/swaks.out"
grep -q "RCPT TO" "$dir/swaks.out" || cat "$dir/swaks.out"
send_mail s@example.net nobody@dovecot.test,alice@dovecot.test "valid-1" --quit-after RCPT
check "valid recipient accepted at RCPT" grep -q "<-  *250 2.1.5 <alice@dovecot.test>" "$dir/swaks.out"

# relay: delivered by the milter, once; Sendmail's copy discarded
send_mail s@example.net alice@dovecot.test "relay-1"; rc=$?
check "relay: accepted (swaks exit $rc)" eq "$rc" 0
check "relay: in alice's mailbox" eq "$(mailbox_grep alice@dovecot.test 'Subject: relay-1')" 1
check "relay: our Received: line is there" eq "$(mailbox_grep alice@dovecot.test 'by .* (milter-nexthop) with ESMTP')" 1
wait_for 10 queue_empty
check "relay: Sendmail queue empty" eq "$(sendmail_queue_count "$SM")" 0
# (a Sendmail delivery would have ended before its queue file went away)
check "relay: delivered once (not again by Sendmail)" eq "$(mailbox_grep alice@dovecot.test 'Subject: relay-1')" 1
check "relay: nothing went to the Internet" eq "$(sink_count)" 0

# external recipient: untouched, Sendmail delivers it
send_mail s@example.net someone@external.example "external-1"
wait_for 15 bash -c "grep -qs 'Subject: external-1' '$dir'/sink/[0-9]*"
check "external: delivered by Sendmail" eq "$(sink_grep 'Subject: external-1')" 1
check "external: no routing header" eq "$(sink_grep 'X-Nexthop')" 0

# mixed: split between the milter (local) and Sendmail (external)
send_mail s@example.net bob@dovecot.test,other@external.example "mixed-1"
wait_for 15 bash -c "grep -qs 'Subject: mixed-1' '$dir'/sink/[0-9]*"
check "mixed: bob got it from the milter" eq "$(mailbox_grep bob@dovecot.test 'Subject: mixed-1')" 1
check "mixed: external copy delivered by Sendmail" eq "$(sink_grep 'Subject: mixed-1')" 1
f=$(grep -l 'Subject: mixed-1' "$dir"/sink/[0-9]* 2>/dev/null | head -1)
check "mixed: Sendmail's copy is only for the external recipient (bob removed)" \
    bash -c "grep -q '^X-Rcpt-Args: <other@external.example>' '$f' && ! grep -q '^X-Rcpt-Args: <bob@dovecot.test>' '$f'"
wait_for 10 queue_empty
check "mixed: Sendmail queue empty" eq "$(sendmail_queue_count "$SM")" 0

# header mode: Sendmail delivers through its LMTP mailer, with the header
send_mail header@example.net alice@dovecot.test "header-1"
wait_for 15 bash -c "[[ \$(grep -ls 'Subject: header-1' '$dir'/dovecot/mail/dovecot.test/alice/{new,cur}/* | wc -l) -ge 1 ]]"
check "header: delivered by Sendmail to Dovecot" eq "$(mailbox_grep alice@dovecot.test 'Subject: header-1')" 1
check "header: X-Nexthop: dovecot added" eq "$(mailbox_grep alice@dovecot.test '^X-Nexthop: dovecot')" 1
f=$(grep -l 'Subject: header-1' "$dir"/dovecot/mail/dovecot.test/alice/{new,cur}/* 2>/dev/null | head -1)
check "header: Dovecot got it from Sendmail over LMTP, not from the milter" \
    bash -c "grep -A3 '^Received: from $SENDMAIL_HOST ' '${f:-/nonexistent}' | grep -q ' with LMTP' &&
             ! grep -q '(milter-nexthop)' '${f:-/nonexistent}'"

# a forged routing header from the client is removed
send_mail header@example.net bob@dovecot.test "forged-1" --add-header "X-Nexthop: evil"
wait_for 15 bash -c "grep -qs 'Subject: forged-1' '$dir'/dovecot/mail/dovecot.test/bob/{new,cur}/*"
check "forged: delivered" eq "$(mailbox_grep bob@dovecot.test 'Subject: forged-1')" 1
check "forged X-Nexthop removed" eq "$(mailbox_grep bob@dovecot.test 'X-Nexthop: evil')" 0

# Sendmail's macros reach the rules: listener ({daemon_name} = MTA) and
# local-ip ({daemon_addr}, added by the snippet: no {if_addr} on loopback)
# pick header mode; were they missing, the message would be quarantined
send_mail macros@example.net bob@dovecot.test "macros-1"
wait_for 15 bash -c "grep -qs 'Subject: macros-1' '$dir'/dovecot/mail/dovecot.test/bob/{new,cur}/*"
check "macros: listener and local-ip seen by the rules" eq "$(mailbox_grep bob@dovecot.test 'Subject: macros-1')" 1
check "macros: nothing quarantined" eq "$(sendmail_quarantined_count "$SM")" 0

# quarantine: held in Sendmail's queue (hf file) with the reason
send_mail hold@example.net alice@dovecot.test "hold-1"; rc=$?
check "quarantine: accepted (swaks exit $rc)" eq "$rc" 0
wait_for 5 bash -c "[[ \$(find '$SM/queue' -name 'hf*' | wc -l) -eq 1 ]]"
check "quarantine: one quarantined message (hf file)" eq "$(sendmail_quarantined_count "$SM")" 1
hf=$(find "$SM/queue" -name 'hf*' | head -1)
check "quarantine: its q line holds the reason" \
    grep -q '^qrouting.action = quarantine for <alice@dovecot.test> (next hop dovecot)' "$hf"
sendmail_run "$SM" -bp -qQ >"$dir/mailq-qQ.out" 2>&1
check "quarantine: mailq -qQ lists it with the reason" \
    grep -q 'QUARANTINE: routing.action = quarantine for <alice@dovecot.test>' "$dir/mailq-qQ.out"
sendmail_run_queue "$SM"
check "quarantine: a queue run does not deliver it" eq "$(mailbox_grep alice@dovecot.test 'Subject: hold-1')" 0

# Dovecot down during relay: quarantined (on-tempfail), never lost
dovecot_stop "$dir/dovecot"
send_mail s@example.net alice@dovecot.test "outage-1"; rc=$?
check "outage: the client's message was accepted (swaks exit $rc)" eq "$rc" 0
wait_for 10 bash -c "[[ \$(find '$SM/queue' -name 'hf*' | wc -l) -eq 2 ]]"
check "outage: message quarantined, not lost" eq "$(sendmail_quarantined_count "$SM")" 2
hf=$(grep -l '^H.*Subject: outage-1' "$SM"/queue/hf* 2>/dev/null | head -1)
check "outage: the reason names the next hop" grep -q '^q.*dovecot' "${hf:-/nonexistent}"
grep '^q' "${hf:-/dev/null}" | head -1 | sed 's/^/  reason: /'
dovecot_restart "$dir/dovecot" >/dev/null
# release only the outage message, then run the queue
qid=${hf##*/hf}
sendmail_run "$SM" -qQ -qI"$qid" -Q >>"$dir/release.out" 2>&1
sendmail_run_queue "$SM"
wait_for 15 bash -c "grep -qs 'Subject: outage-1' '$dir'/dovecot/mail/dovecot.test/alice/{new,cur}/*"
check "outage: released later, delivered" eq "$(mailbox_grep alice@dovecot.test 'Subject: outage-1')" 1
check "outage: the other quarantined message stays" eq "$(sendmail_quarantined_count "$SM")" 1

# the milter is down: F=T, the client is told to retry, nothing is accepted
milter_stop || bad "the milter did not end cleanly: $MILTER_STOP_WHY"
before=$(sendmail_queue_count "$SM")
send_mail s@example.net alice@dovecot.test "down-1"; rc=$?
check "milter down: the client gets a 4xx (swaks exit $rc)" grep -q '<\*\* *4[0-9][0-9] ' "$dir/swaks.out"
grep -m1 '<\*\*' "$dir/swaks.out" | sed 's/^/  /'
check "milter down: nothing accepted" eq "$(sendmail_queue_count "$SM") $(mailbox_grep alice@dovecot.test 'Subject: down-1')" "$before 0"

if ((fails > 0)); then
    echo "--- milter log (tail) ---"; tail -n 30 "$dir/milter/milter.log"
    echo "--- sendmail traffic (tail) ---"; tail -n 30 "$SM/traffic.log"
fi
finish "in $((SECONDS - started)) s"
