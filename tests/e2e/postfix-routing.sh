#!/usr/bin/env bash
# tests/e2e/postfix-routing.sh - the whole product through a real Postfix
# with a real Dovecot LMTP next hop:
#   unknown recipient -> 550 5.1.1 at RCPT (swaks sees it)
#   relay: a local recipient's message lands in Dovecot, once, and leaves the Postfix queue
#   an external recipient goes through Postfix untouched
#   a mixed message splits: local one relayed by the milter, external one by Postfix
#   header mode: Postfix delivers, the message carries X-Nexthop: dovecot
#   quarantine: the message sits in Postfix's hold queue
#   Dovecot down during relay: the message is held, not lost; released later it is delivered
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/e2e.sh"
harness_init e2e
dir=$TEST_DIR

e2e_start "$dir" "$here/postfix.conf.in" || { bad "rig did not start"; exit 1; }
PF=$POSTFIX_DIR
held_is() { [[ $(postfix_held_count "$PF") -eq $1 ]]; }

# unknown recipient: 550 at RCPT, seen by the SMTP client
send_mail s@example.net nobody@dovecot.test "unknown"
check "unknown recipient gets 550 5.1.1 at RCPT" grep -q "<\*\* *550 5.1.1" "$E2E_DIR/swaks.out"
grep -q "RCPT TO" "$E2E_DIR/swaks.out" || cat "$E2E_DIR/swaks.out"

# relay: delivered by the milter, once; Postfix copy discarded
send_mail s@example.net alice@dovecot.test "relay-1"; rc=$?
check "relay: accepted (swaks exit $rc)" eq "$rc" 0
check "relay: in alice's mailbox" eq "$(mailbox_grep alice@dovecot.test 'Subject: relay-1')" 1
check "relay: our Received: line is there" eq "$(mailbox_grep alice@dovecot.test 'by .* (milter-nexthop) with ESMTP')" 1
postfix_wait_empty "$PF" 20
check "relay: Postfix queue empty" eq "$(postfix_queue_count "$PF")" 0
# (a Postfix delivery would have ended before its queue file went away)
check "relay: delivered once (not again by Postfix)" eq "$(mailbox_grep alice@dovecot.test 'Subject: relay-1')" 1
check "relay: nothing went to the Internet" eq "$(sink_count)" 0

# external recipient: untouched, Postfix delivers it
send_mail s@example.net someone@external.example "external-1"
postfix_wait_empty "$PF" 20
check "external: delivered by Postfix" eq "$(sink_grep 'Subject: external-1')" 1
check "external: no routing header" eq "$(sink_grep 'X-Nexthop')" 0

# mixed: split between the milter (local) and Postfix (external)
send_mail s@example.net bob@dovecot.test,other@external.example "mixed-1"
postfix_wait_empty "$PF" 20
check "mixed: bob got it from the milter" eq "$(mailbox_grep bob@dovecot.test 'Subject: mixed-1')" 1
check "mixed: external copy delivered by Postfix" eq "$(sink_grep 'Subject: mixed-1')" 1
f=$(grep -l 'Subject: mixed-1' "$E2E_DIR"/sink/[0-9]* 2>/dev/null | head -1)
check "mixed: the external copy is only for the external recipient" \
    bash -c "grep -q 'other@external.example' '$f' && ! grep -qi 'bob@dovecot.test>*$' <(grep -i '^X-Rcpt-Args' '$f')"

# header mode: Postfix delivers through its own lmtp transport, with the header
send_mail header@example.net alice@dovecot.test "header-1"
postfix_wait_empty "$PF" 20
check "header: delivered by Postfix to Dovecot" eq "$(mailbox_grep alice@dovecot.test 'Subject: header-1')" 1
check "header: X-Nexthop: dovecot added" eq "$(mailbox_grep alice@dovecot.test '^X-Nexthop: dovecot')" 1

# a forged routing header from the client is removed (from the message
# that arrived: a lost message must not pass for a clean one)
send_mail header@example.net bob@dovecot.test "forged-1" --add-header "X-Nexthop: evil"
postfix_wait_empty "$PF" 20
forged_removed() { # SUBJECT: one copy of it reached bob, and without the forged header
    local f
    f=$(grep -l -- "Subject: $1\$" "$E2E_DIR"/dovecot/mail/dovecot.test/bob/{new,cur}/* 2>/dev/null)
    [[ -n $f && $(wc -l <<<"$f") -eq 1 ]] && ! grep -q 'X-Nexthop: evil' "$f"
}
check "forged X-Nexthop removed (in the one copy that arrived)" forged_removed forged-1

# relay: a forged routing header from the client is not relayed either
send_mail s@example.net bob@dovecot.test "forged-relay" --add-header "X-Nexthop: evil"
check "relay: forged X-Nexthop not in the relayed copy" eq "$(mailbox_grep bob@dovecot.test 'X-Nexthop: evil')" 0
check "relay: the message itself arrived" eq "$(mailbox_grep bob@dovecot.test 'Subject: forged-relay')" 1

# quarantine: held in Postfix
send_mail hold@example.net alice@dovecot.test "hold-1"
wait_for 20 held_is 1
check "quarantine: message in the hold queue" eq "$(postfix_held_count "$PF")" 1
check "quarantine: not delivered" eq "$(mailbox_grep alice@dovecot.test 'Subject: hold-1')" 0

# Dovecot down during relay: held (on-tempfail = quarantine), never lost
dovecot_stop "$E2E_DIR/dovecot"
send_mail s@example.net alice@dovecot.test "outage-1"; rc=$?
check "outage: the client's message was accepted (swaks exit $rc)" eq "$rc" 0
wait_for 20 held_is 2
check "outage: message held, not lost" eq "$(postfix_held_count "$PF")" 2
grep -q "relay to dovecot failed for <alice@dovecot.test>" "$E2E_DIR/milter/milter.log" \
    && ok "outage: reason logged with host and reply" || bad "outage: reason not logged"
dovecot_restart "$E2E_DIR/dovecot" >/dev/null
postsuper -c "$PF" -H ALL >/dev/null 2>&1
postfix_flush "$PF"
postfix_wait_empty "$PF" 30
check "outage: released later, delivered" eq "$(mailbox_grep alice@dovecot.test 'Subject: outage-1')" 1

finish
