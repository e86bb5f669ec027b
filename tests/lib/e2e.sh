# shellcheck shell=bash
# tests/lib/e2e.sh - one private mail system for end-to-end tests and the demo:
#   Dovecot (LMTP + IMAP) for the domain dovecot.test,
#   smtp-sink standing in for the rest of the Internet,
#   the milter under test with a config made from a template,
#   Postfix on 127.0.0.1 with smtpd_milters pointing at the milter and its
#   own routes: dovecot.test -> Dovecot LMTP, everything else -> smtp-sink.
# Source after rig.sh and milter.sh.
#   e2e_start DIR TEMPLATE [postfix key=value...]
#   send_mail FROM TO[,TO...] SUBJECT   -> swaks output in $E2E_DIR/swaks.out, its exit code
#   sink_count / sink_grep PATTERN      -> messages Postfix passed on to the Internet

e2e_start() {
    local dir=$1 tmpl=$2
    shift 2
    E2E_DIR=$dir
    mkdir -p "$dir"
    chmod 0755 "$dir"
    dovecot_start "$dir/dovecot" >/dev/null || return 1
    SINK_PORT=$(rig_free_port)
    smtp_sink_start "$dir/sink" "$SINK_PORT" || return 1
    export DOVECOT_LMTP_PORT DOVECOT_IMAP_PORT DOVECOT_IMAPS_PORT DOVECOT_LMTPS_PORT SINK_PORT
    mkdir -p "$dir/milter"
    subst "$tmpl" > "$dir/milter/milter.conf" || return 1
    milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" || return 1
    postfix_start "$dir/postfix" \
        "smtpd_milters = unix:$dir/milter/milter.sock" \
        "transport_maps = inline:{dovecot.test=lmtp:inet:127.0.0.1:$DOVECOT_LMTP_PORT}" \
        "relayhost = [127.0.0.1]:$SINK_PORT" "$@" || return 1
    export E2E_DIR
}

send_mail() { # FROM TO SUBJECT [swaks args]
    local from=$1 to=$2 subject=$3
    shift 3
    swaks --server 127.0.0.1 --port "$POSTFIX_PORT" --from "$from" --to "$to" \
        --h-Subject "$subject" --body "body of $subject" --timeout 60 "$@" \
        > "$E2E_DIR/swaks.out" 2>&1
}

sink_count() { find "$E2E_DIR/sink" -maxdepth 1 -type f -name '[0-9]*' | wc -l; }
sink_grep() { grep -l -- "$1" "$E2E_DIR"/sink/[0-9]* 2>/dev/null | wc -l; }
mailbox_grep() { # USER PATTERN -> number of messages of USER holding PATTERN
    local user=${1%@*} dom=${1#*@}
    grep -l -- "$2" "$E2E_DIR/dovecot/mail/$dom/$user"/{new,cur}/* 2>/dev/null | wc -l
}
