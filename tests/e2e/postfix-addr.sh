#!/usr/bin/env bash
# tests/e2e/postfix-addr.sh - recipient-address hardening and the routing
# header through a real Postfix with a real Dovecot LMTP behind the milter
# (issue 14, items 1, 7 and 14):
#   RCPT TO:<test> (no domain)   -> 501 5.1.3 to the client, Dovecot never asked,
#                                   with and without session.rcpt.lookup.domains
#   RCPT TO:<Postmaster>         -> accepted without a lookup, delivered by Postfix
#   forged X-Nexthop (any case,
#   "X-Nexthop :" too)           -> gone from the delivered copy when no recipient has
#                                   a next hop, and from the held copy on quarantine
#   our Received: line           -> "from <HELO> ([client IP])", "unknown" for a HELO
#                                   that is no host name
# Must not: pass on the milter's log alone where the client or the mailbox can be asked.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/e2e.sh"
harness_init addr
dir=$TEST_DIR

e2e_start "$dir" "$here/postfix.conf.in" "in_flow_delay = 0" || { bad "rig did not start"; exit 1; }
PF=$POSTFIX_DIR
# Dovecot checks every LMTP RCPT in its userdb; auth_verbose logs each unknown user it was asked for.
DLOG=$E2E_DIR/dovecot/dovecot.log
echo 'auth_verbose = yes' >> "$E2E_DIR/dovecot/dovecot.conf"
dovecot_restart "$E2E_DIR/dovecot" >/dev/null || { bad "Dovecot did not restart"; exit 1; }

final_reply() { grep -E '^<(-|\*\*) +[245][0-9][0-9] ' "$E2E_DIR/swaks.out" | grep -vE '^<. +221 ' | tail -1 | sed -E 's/^<(-|\*\*) +//'; }
lookups_of() { grep -c "lookup: queue=.* rcpt=<$1> " "$MILTER_LOG"; }
dovecot_unknown() { grep -c "(${1}[,)].*unknown user" "$DLOG"; }   # USER -> times Dovecot was asked for it
held() { [[ $(postfix_held_count "$PF") -ge 1 ]]; }
in_mailbox() { [[ $(mailbox_grep "$1" "$2") -ge 1 ]]; }
reloaded_since() { [[ $(grep -c 'info: reload: .* loaded in' "$MILTER_LOG") -gt $1 ]]; }
held_headers() { # -> header lines of every held message
    local id
    for id in $(postqueue -c "$PF" -j | python3 -c 'import json,sys; [print(j["queue_id"]) for j in map(json.loads,sys.stdin) if j["queue_name"]=="hold"]'); do
        postcat -c "$PF" -h -q "$id" 2>/dev/null
    done
}

# --- a recipient without a domain (validated domains configured) ---
send_mail s@example.net test "no-domain-1"
check "<test>: the client gets 501 5.1.3 ($(final_reply))" grep -qE '^<\*\* +501 5\.1\.3 ' "$E2E_DIR/swaks.out"
check "<test>: no lookup" eq "$(lookups_of test)" 0

# --- <Postmaster>: accepted without a lookup, Postfix delivers it (here: to the sink) ---
send_mail s@example.net Postmaster "postmaster-1"; rc=$?
check "<Postmaster>: accepted (swaks exit $rc, $(final_reply))" eq "$rc" 0
send_mail s@example.net POSTMASTER "postmaster-2"; rc=$?
check "<POSTMASTER>: accepted (swaks exit $rc, $(final_reply))" eq "$rc" 0
postfix_wait_empty "$PF" 20
check "<Postmaster>: both delivered by Postfix, not by the milter" eq "$(sink_grep 'Subject: postmaster-')" 2
check "<Postmaster>: no lookup" eq "$(grep -ci 'lookup: queue=.* rcpt=<postmaster>' "$MILTER_LOG")" 0

# --- forged routing headers: no recipient has a next hop ---
send_mail s@example.net someone@external.example "forged-nohop" \
    --add-header "X-Nexthop: evil" --add-header "x-nexthop: evil-lower" --add-header "X-NEXTHOP: evil-upper" \
    --add-header "X-Nexthop : evil-spaced"
postfix_wait_empty "$PF" 20
f=$(grep -l 'Subject: forged-nohop' "$E2E_DIR"/sink/[0-9]* 2>/dev/null | head -1)
check "no next hop: delivered by Postfix" test -n "$f"
check "no next hop: every forged X-Nexthop is gone from the delivered copy" \
    eq "$(grep -ci '^x-nexthop' "${f:-/dev/null}")" 0

# --- forged routing headers: quarantine ---
send_mail hold@example.net alice@dovecot.test "forged-hold" \
    --add-header "X-Nexthop: evil" --add-header "x-nexthop: evil-lower"
wait_for 10 held
check "quarantine: held" eq "$(postfix_held_count "$PF")" 1
hh=$(held_headers)
check "quarantine: the held copy is this message" grep -q '^Subject: forged-hold' <<<"$hh"
check "quarantine: every forged X-Nexthop is gone from the held copy" eq "$(grep -ci '^x-nexthop' <<<"$hh")" 0
postsuper -c "$PF" -d ALL >/dev/null 2>&1

# --- our Received: line on a relayed message ---
send_mail s@example.net alice@dovecot.test "received-good" --ehlo mx.example
send_mail s@example.net bob@dovecot.test "received-bad" --ehlo 'evil(x).example'
wait_for 10 in_mailbox bob@dovecot.test 'Subject: received-bad'
check "Received: a host-name HELO and the client IP in brackets" \
    eq "$(mailbox_grep alice@dovecot.test '^Received: from mx\.example (\[127\.0\.0\.1\])$')" 1
check "Received: a HELO that is no host name is written as unknown" \
    eq "$(mailbox_grep bob@dovecot.test '^Received: from unknown (\[127\.0\.0\.1\])$')" 1
check "Received: the bad HELO is not in our line" eq "$(mailbox_grep bob@dovecot.test 'from evil(x)')" 0

# --- without session.rcpt.lookup.domains every recipient goes to Dovecot: <test> still must not ---
sed -i 's/lookup = { domains = "list\/local"; addresses/lookup = { addresses/' "$E2E_DIR/milter/milter.conf"
grep -q 'lookup = { addresses = "remote/dovecot"' "$E2E_DIR/milter/milter.conf" || bad "could not rewrite the milter config"
n=$(grep -c 'info: reload: .* loaded in' "$MILTER_LOG")
milter_reload
wait_for 10 reloaded_since "$n" || bad "the milter did not reload"
send_mail s@example.net nobody@dovecot.test "control-unknown"
check "control: an unknown recipient is asked of Dovecot (550 5.1.1, $(final_reply))" \
    grep -qE '^<\*\* +550 5\.1\.1 ' "$E2E_DIR/swaks.out"
check "control: Dovecot logged that it was asked for nobody@dovecot.test" test "$(dovecot_unknown nobody@dovecot.test)" -ge 1
send_mail s@example.net test "no-domain-2"
check "<test>, every domain validated: 501 5.1.3 ($(final_reply))" grep -qE '^<\*\* +501 5\.1\.3 ' "$E2E_DIR/swaks.out"
check "<test>, every domain validated: no lookup" eq "$(lookups_of test)" 0
check "<test>, every domain validated: Dovecot was never asked" eq "$(dovecot_unknown test)" 0
send_mail s@example.net Postmaster "postmaster-3"; rc=$?
check "<Postmaster>, every domain validated: accepted (swaks exit $rc, $(final_reply))" eq "$rc" 0
check "<Postmaster>, every domain validated: no lookup, Dovecot never asked" \
    eq "$(grep -ci 'lookup: queue=.* rcpt=<postmaster>' "$MILTER_LOG")$(dovecot_unknown '[Pp]ostmaster')" 00

finish
