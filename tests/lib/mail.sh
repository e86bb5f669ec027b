# shellcheck shell=bash
# tests/lib/mail.sh - sending a message through the rig's Postfix and
# finding where it went (sourced by harness.sh): the e2e scripts' common
# vocabulary.
#
#   mail_send TO SUBJECT [SWAKS ARGS...]  swaks from s@example.net to TO through
#                                  $POSTFIX_PORT; the transcript in $TEST_DIR/swaks.out
#   mail_final_reply               the server's last reply before QUIT ("250 2.0.0 Ok: queued ...")
#   mail_accepted                  true when that reply is 250 (the message, not a command)
#   mail_rcpt_reply                the reply to the first RCPT TO
#   mail_in_sink SUBJECT           copies with that subject in $MAIL_SINK_DIR (smtp-sink -d)
#   mail_in_mailbox USER SUBJECT   copies in USER@dovecot.test's maildir under $MAIL_DOVECOT_DIR
#   mail_arrived_sink SUBJECT / mail_arrived_mailbox USER SUBJECT   at least one (for wait_for)
#   mail_postfix_settings MILTER_SOCK SMAP_PORT   contrib/postfix-main.cf as README
#                                  tells an admin to use it, section 2 (the socketmap
#                                  transport) enabled, one setting per line, for
#                                  postfix_start; only the socket and the port differ
# MAIL_SINK_DIR defaults to $TEST_DIR/sink, MAIL_DOVECOT_DIR to $TEST_DIR/dovecot.
# Must not: start or stop anything, or judge (the scripts check what they expect).

mail_send() { # TO SUBJECT [SWAKS ARGS...]
    local to=$1 subject=$2
    shift 2
    swaks --server 127.0.0.1 --port "$POSTFIX_PORT" --from s@example.net --to "$to" \
        --h-Subject "$subject" --body "body of $subject" --timeout 60 "$@" >"$TEST_DIR/swaks.out" 2>&1
}
mail_final_reply() {
    grep -E '^<(-|\*\*) +[245][0-9][0-9] ' "$TEST_DIR/swaks.out" | grep -vE '^<. +221 ' | tail -1 |
        sed -E 's/^<(-|\*\*) +//'
}
mail_accepted() { [[ $(mail_final_reply) == "250 "* ]]; }
mail_rcpt_reply() { sed -n '/^ *-> RCPT TO:/{n;p;q}' "$TEST_DIR/swaks.out" | sed -E 's/^<(-|\*\*) +//'; }
mail_in_sink() { # SUBJECT
    grep -ls -- "^Subject: $1\$" "${MAIL_SINK_DIR:-$TEST_DIR/sink}"/[0-9]* 2>/dev/null | wc -l
}
mail_in_mailbox() { # USER SUBJECT
    grep -ls -- "^Subject: $2\$" "${MAIL_DOVECOT_DIR:-$TEST_DIR/dovecot}/mail/dovecot.test/$1"/{new,cur}/* \
        2>/dev/null | wc -l
}
mail_arrived_sink() { [[ $(mail_in_sink "$1") -ge 1 ]]; }
mail_arrived_mailbox() { [[ $(mail_in_mailbox "$1" "$2") -ge 1 ]]; }
mail_postfix_settings() { # MILTER_SOCK SMAP_PORT
    sed -e "s,unix:/run/milter-nexthop/milter.sock,$1," \
        -e "s,127.0.0.1:8896,127.0.0.1:$2," -e 's,^#transport_maps,transport_maps,' \
        "$NEXTHOP_SRC/contrib/postfix-main.cf" | grep -v '^[[:space:]]*\(#\|$\)'
}
