#!/usr/bin/env bash
# contrib/demo.sh - see milter-nexthop work for real, on this machine only:
# installs what is missing (apt), builds, starts a private Dovecot, Postfix
# and the milter on 127.0.0.1, sends real mail through Postfix, shows what
# happened to each message, and stops everything it started.
set -euo pipefail
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$top"
. tests/lib/rig.sh
echo "== installing what is missing (apt) and building"
rig_install
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
export NEXTHOP_BIN=$top/build/milter/milter-nexthop
. tests/lib/milter.sh
. tests/lib/e2e.sh
dir=$(mktemp -d /tmp/nexthop-demo.XXXXXX)
# everything it started is stopped at exit; the directory (logs, mailboxes, queue) is
# removed too unless KEEP=1 (then its path is printed)
trap 'milter_stop; rig_cleanup; if [[ ${KEEP:-0} == 1 ]]; then echo "   files kept in $dir"; else rm -rf "$dir"; fi' EXIT

echo "== starting Dovecot (LMTP+IMAP), Postfix and milter-nexthop on 127.0.0.1 in $dir"
e2e_start "$dir" contrib/demo.conf.in
PF=$POSTFIX_DIR
echo "   Postfix smtpd 127.0.0.1:$POSTFIX_PORT -> milter unix:$dir/milter/milter.sock"
echo "   Dovecot LMTP 127.0.0.1:$DOVECOT_LMTP_PORT (users alice, bob @dovecot.test)"
echo "   the rest of the Internet: smtp-sink on 127.0.0.1:$SINK_PORT"
echo "   config:"; sed 's/^/     | /' "$dir/milter/milter.conf"

where() { # SUBJECT -> where the message is now
    local s=$1 out=()
    for u in alice bob; do
        local n
        n=$(mailbox_grep "$u@dovecot.test" "Subject: $s")
        (( n > 0 )) && out+=("Dovecot mailbox of $u$( (( $(mailbox_grep "$u@dovecot.test" '^X-Nexthop: dovecot') > 0 )) && [[ $u == bob ]] && echo ' (X-Nexthop: dovecot, delivered by Postfix)')")
    done
    (( $(sink_grep "Subject: $s") > 0 )) && out+=("the Internet (smtp-sink), delivered by Postfix")
    for id in $(postqueue -c "$PF" -j 2>/dev/null | grep '"queue_name": *"hold"' | sed 's/.*"queue_id": *"\([^"]*\)".*/\1/'); do
        postcat -c "$PF" -q "$id" 2>/dev/null | grep -q "Subject: $s" && out+=("Postfix hold queue ($id)")
    done
    (( ${#out[@]} )) && printf '%s; ' "${out[@]}" | sed 's/; $//' || echo "nowhere (refused)"
}

try() { # FROM TO SUBJECT WHAT
    local rc=0
    send_mail "$1" "$2" "$3" || rc=$?
    local reply
    reply=$(grep -E '^<(-|\*\*) +[245][0-9][0-9] ' "$E2E_DIR/swaks.out" | grep -vE '^<. +221 ' | tail -1 | sed -E 's/^<(-|\*\*) +//')
    sleep 1
    postfix_wait_empty "$PF" 10 >/dev/null 2>&1 || true
    printf '\n-- %s\n   MAIL FROM:<%s> RCPT TO:<%s>\n   SMTP answer: %s\n   now in: %s\n' "$4" "$1" "$2" "$reply" "$(where "$3")"
}

set +e   # from here on, show every outcome, including failures
echo; echo "== sending mail"
try friend@example.net alice@dovecot.test demo-relay "a local user: validated, relayed by the milter to Dovecot"
try friend@example.net nobody@dovecot.test demo-unknown "an unknown local user: rejected at RCPT"
try friend@example.net someone@external.example demo-external "an external recipient: left to Postfix"
try friend@example.net alice@dovecot.test,someone@external.example demo-mixed "one local, one external: split"
try friend@example.net bob@dovecot.test demo-header "bob: header mode, Postfix delivers"
try spam@suspicious.example alice@dovecot.test demo-quarantine "a sender the rules distrust: quarantined"
dovecot_stop "$dir/dovecot"
try friend@example.net alice@dovecot.test demo-outage "Dovecot down during the relay: held, not lost"

echo; echo "== what the milter logged"
grep -E 'lookup:|rcpt:|relay:|eom:' "$dir/milter/milter.log" | sed 's/^[^ ]* milter-nexthop\[[0-9]*\]: /   /'
echo; echo "== Postfix queue"; postqueue -c "$PF" -p | sed 's/^/   /'
echo; echo "== stopping everything this demo started"
