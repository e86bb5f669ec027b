#!/usr/bin/env bash
# tests/e2e/report-mode.sh - rolling out recipient validation (issue 16
# item 2) with a real private Postfix and a real Dovecot as the mail store:
#   (a) session.rcpt.mode = "report": mail to a user Dovecot does not know
#       is mail_accepted (250) and goes Postfix's own route - here its relayhost,
#       a local smtp-sink, where the test finds the message - while the
#       milter logs result=would-reject; a known user is still relayed into
#       Dovecot by the milter
#   (b) mode = report by rule for one domain (other.test): an unknown user
#       there is mail_accepted and logged would-reject, an unknown user of
#       dovecot.test still gets 550 5.1.1 at RCPT
#   (c) Dovecot down, session.rcpt.on-error = "accept": a recipient the
#       milter cannot look up is mail_accepted, logged result=accept-on-error, and
#       delivered by Postfix's own route; with the default (tempfail) the
#       client gets 451 4.4.3 at RCPT and nothing is queued
#   (d) -t prints mode: and on-error: for a recipient, as the rules say
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init report-mode
dir=$TEST_DIR

milter_conf() { # RCPT-SETTINGS (inside session.rcpt)
    cat >"$dir/milter/milter.conf" <<EOF
milter = { log = { level = "info"; }; };
remote = { dovecot = {
  address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
  timeout = "5s"; tls = { implicit = false; allow-invalid-certs = true; };
}; };
list = { local = [ "dovecot.test", "other.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; $1 }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; eq = "dovecot.test"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; timeout = "20s"; };
EOF
}
reload() { # WHAT RCPT-SETTINGS
    milter_conf "$2"
    check "$1: the milter loaded the config" milter_reload
}
logged() { wait_log "$MILTER_LOG" "$1" 10 "$2"; }   # REGEX FROM

rig_install || { bad "cannot install the rig"; exit 1; }
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }
mkdir -p "$dir/milter"
milter_conf 'mode = "report";'
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" ||
    { bad "milter did not start"; exit 1; }
# Postfix's own route for everything: its relayhost, the smtp-sink
postfix_start "$dir/postfix" "smtpd_milters = unix:$dir/milter/milter.sock" \
    "relayhost = [127.0.0.1]:$SINK_PORT" "in_flow_delay = 0" || { bad "postfix did not start"; exit 1; }
PF=$POSTFIX_DIR

# (a) report mode
from=$(log_lines "$MILTER_LOG")
mail_send nobody@dovecot.test report-unknown
check "report: an unknown user's mail is mail_accepted ($(mail_final_reply))" mail_accepted
check "report: the milter logs result=would-reject for it" \
    logged 'rcpt: queue=[^ ]+ rcpt=<nobody@dovecot.test> list=remote/dovecot result=would-reject code=550 .*mode=report' "$from"
check "report: Postfix delivers it by its own route (the smtp-sink)" wait_for 30 mail_arrived_sink report-unknown
check "report: Dovecot got no copy from the milter" \
    bash -c "! grep -q 'relay: .*rcpt=<nobody@dovecot.test>' '$MILTER_LOG'"
mail_send alice@dovecot.test report-known
check "report: a known user's mail is mail_accepted ($(mail_final_reply))" mail_accepted
check "report: and relayed into alice's mailbox by the milter" wait_for 30 mail_arrived_mailbox alice report-known
check "report: not sent to the smtp-sink" eq "$(mail_in_sink report-known)" 0

# (b) report for one domain only
reload "per domain" 'mode = ( { if = "rcpt-domain"; eq = "other.test"; then = "report"; }, { else = "enforce"; } );'
from=$(log_lines "$MILTER_LOG")
mail_send nobody@other.test per-domain-report
check "per domain: an unknown user of other.test is mail_accepted ($(mail_final_reply))" mail_accepted
check "per domain: logged result=would-reject" \
    logged 'rcpt=<nobody@other.test> list=remote/dovecot result=would-reject code=550 ' "$from"
check "per domain: delivered by Postfix's own route" wait_for 30 mail_arrived_sink per-domain-report
mail_send nobody@dovecot.test per-domain-enforce
check "per domain: an unknown user of dovecot.test gets 550 5.1.1 at RCPT ($(mail_rcpt_reply))" \
    grep -qE '^<\*\* +550 5\.1\.1 ' "$dir/swaks.out"
check "per domain: logged result=reject" \
    logged 'rcpt=<nobody@dovecot.test> list=remote/dovecot result=reject code=550 ' "$from"

# (c) Dovecot down: on-error = accept, then the default
reload "on-error accept" 'on-error = "accept";'
dovecot_stop "$dir/dovecot"
from=$(log_lines "$MILTER_LOG")
mail_send bob@dovecot.test on-error-accept
check "on-error accept, Dovecot down: mail_accepted ($(mail_final_reply))" mail_accepted
check "on-error accept: logged result=accept-on-error" \
    logged 'rcpt: queue=[^ ]+ rcpt=<bob@dovecot.test> result=accept-on-error why="lookup failed: ' "$from"
check "on-error accept: delivered by Postfix's own route (no next hop of the milter's)" \
    wait_for 30 mail_arrived_sink on-error-accept
reload "default" ''
from=$(log_lines "$MILTER_LOG")
mail_send bob@dovecot.test on-error-default
check "default, Dovecot down: the client gets 451 4.4.3 at RCPT ($(mail_rcpt_reply))" \
    grep -qE '^<\*\* +451 4\.4\.3 ' "$dir/swaks.out"
check "default: logged result=tempfail" \
    logged 'rcpt: queue=[^ ]+ rcpt=<bob@dovecot.test> result=tempfail code=451 ' "$from"
check "default: nothing queued" eq "$(postfix_queue_count "$PF")" 0
check "default: nothing reached the smtp-sink" eq "$(mail_in_sink on-error-default)" 0

# (d) what -t says
milter_conf 'mode = ( { if = "rcpt-domain"; eq = "other.test"; then = "report"; }, { else = "enforce"; } );
    on-error = ( { if = "rcpt-domain"; eq = "other.test"; then = "accept"; }, { else = "tempfail"; } );'
"$NEXTHOP_BIN" -c "$dir/milter/milter.conf" -t someone@other.test >"$dir/t1.out" 2>&1
check "-t other.test: mode: report" grep -qx 'mode: report' "$dir/t1.out"
check "-t other.test: on-error: accept" grep -qx 'on-error: accept' "$dir/t1.out"
"$NEXTHOP_BIN" -c "$dir/milter/milter.conf" -t someone@dovecot.test >"$dir/t2.out" 2>&1
check "-t dovecot.test: mode: enforce" grep -qx 'mode: enforce' "$dir/t2.out"
check "-t dovecot.test: on-error: tempfail" grep -qx 'on-error: tempfail' "$dir/t2.out"
((fails == 0)) || { echo "--- -t ---"; cat "$dir/t1.out" "$dir/t2.out"; echo "--- milter log ---"; grep -a 'rcpt:\|relay:\|eom:' "$MILTER_LOG" | tail -20; }

finish
