#!/usr/bin/env bash
# tests/e2e/relay-bcc.sh - relay mode keeps the recipients Postfix adds
# itself after the milter saw RCPT, with a real private Postfix and Dovecot:
# always_bcc, recipient_bcc_maps and sender_bcc_maps copies (archiving,
# compliance) go Postfix's own route - here its relayhost, a local
# smtp-sink - while the milter relays the envelope recipient into Dovecot,
# once. The milter deletes the recipients it delivered from Postfix's copy
# and never discards the copy (a discard dropped every bcc copy with it);
# with no recipient left, Postfix removes the copy itself: nothing stays
# queued, nothing bounces.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init relay-bcc
dir=$TEST_DIR

queue_empty() { [[ $(postfix_queue_count "$PF") -eq 0 ]]; }
# the sink got SUBJECT for RCPT (smtp-sink -d records each RCPT TO as X-Rcpt-Args)
sink_got() { grep -ls -- "^Subject: $1\$" "$dir/sink"/[0-9]* 2>/dev/null | xargs -r grep -l "^X-Rcpt-Args: <$2>" | grep -q .; }

rig_install || { bad "cannot install the rig"; exit 1; }
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }
mkdir -p "$dir/milter"
cat >"$dir/milter/milter.conf" <<EOF
milter = { log = { level = "info"; }; };
remote = { dovecot = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
                       timeout = "5s"; tls = { enable = false; }; }; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; eq = "dovecot.test"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; timeout = "20s"; };
EOF
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" ||
    { bad "milter did not start"; exit 1; }
postfix_start "$dir/postfix" "smtpd_milters = unix:$dir/milter/milter.sock" \
    "relayhost = [127.0.0.1]:$SINK_PORT" "in_flow_delay = 0" \
    "always_bcc = archive@archive.example" \
    "recipient_bcc_maps = inline:{ {bob@dovecot.test=compliance@archive.example} }" \
    "sender_bcc_maps = inline:{ {boss@example.net=sent@archive.example} }" ||
    { bad "postfix did not start"; exit 1; }
PF=$POSTFIX_DIR

mail_send alice@dovecot.test always-bcc
check "always_bcc: the message is accepted" mail_accepted
check "always_bcc: alice's copy is relayed into Dovecot" wait_for 30 mail_arrived_mailbox alice always-bcc
check "always_bcc: the archive copy goes Postfix's own route" \
    wait_for 30 sink_got always-bcc archive@archive.example
check "always_bcc: alice got one copy" eq "$(mail_in_mailbox alice always-bcc)" 1

mail_send bob@dovecot.test recipient-bcc
check "recipient_bcc_maps: bob's copy is relayed into Dovecot" wait_for 30 mail_arrived_mailbox bob recipient-bcc
check "recipient_bcc_maps: the compliance copy goes Postfix's route" \
    wait_for 30 sink_got recipient-bcc compliance@archive.example

mail_send alice@dovecot.test sender-bcc --from boss@example.net
check "sender_bcc_maps: alice's copy is relayed into Dovecot" wait_for 30 mail_arrived_mailbox alice sender-bcc
check "sender_bcc_maps: the sent-mail copy goes Postfix's route" \
    wait_for 30 sink_got sender-bcc sent@archive.example
check "Postfix's queue empties (nothing held, deferred or bounced)" wait_for 30 queue_empty
check "the milter logs each relay as delivered, outcome continue" \
    test "$(grep -c 'eom: queue=[^ ]* rcpts=1 delivered=1 outcome=continue' "$MILTER_LOG")" -eq 3
check "no bounce reached anyone" bash -c "! grep -qls '^From: MAILER-DAEMON' '$dir/sink'/[0-9]* 2>/dev/null"
finish
