#!/usr/bin/env bash
# tests/e2e/outage.sh - a mail-store outage in relay mode needs nobody:
# a real private Postfix (contrib/postfix-main.cf with its socketmap
# transport enabled) and a real Dovecot as the next hop, which is stopped
# and started again while mail comes in.
#   (a) the recommended setup, routing.on-tempfail = "accept" with the
#       socketmap as Postfix's transport_maps: Dovecot down, the client gets
#       250, the message waits in Postfix's deferred queue (not held);
#       Dovecot back, Postfix's own retry delivers it, exactly once
#   (b) the default (no on-tempfail in the config, i.e. "tempfail"):
#       Dovecot down, the client gets "451 4.4.2 Next hop temporarily
#       unavailable, try again later" (the address and the error only in
#       the milter's log) and nothing is queued or
#       held; Dovecot back, the client's retry of the same message is
#       delivered, exactly once
# Nothing between "Dovecot back" and the delivery is done by the test:
# Postfix's retry timers are only shortened (seconds instead of minutes).
# The recipient was looked up once before the outage, so RCPT validation
# answers from the cache while Dovecot is down.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init outage
dir=$TEST_DIR

MSGID="<outage-default.$$@example.net>"
send() { # SUBJECT [swaks args]: swaks output in $dir/swaks.out
    local subject=$1
    shift
    swaks --server 127.0.0.1 --port "$POSTFIX_PORT" --from s@example.net --to alice@dovecot.test \
        --h-Subject "$subject" --body "body of $subject" --timeout 60 "$@" >"$dir/swaks.out" 2>&1
}
# the server's last reply before QUIT (the DATA reply, or the first refusal)
final_reply() { grep -E '^<(-|\*\*) +[245][0-9][0-9] ' "$dir/swaks.out" | grep -vE '^<. +221 ' | tail -1 | sed -E 's/^<(-|\*\*) +//'; }
accepted() { [[ $(final_reply) == "250 "* ]]; }   # the message, not just a command
ms_since() { echo $(( (${EPOCHREALTIME/[.,]/} - ${1/[.,]/}) / 1000 )); }   # EPOCHREALTIME
in_mailbox() { # SUBJECT -> number of alice's messages with that subject
    grep -ls -- "^Subject: $1\$" "$dir/dovecot/mail/dovecot.test/alice"/{new,cur}/* 2>/dev/null | wc -l
}
arrived() { [[ $(in_mailbox "$1") -ge 1 ]]; }
queues() { # the Postfix queue each message is in, one line per message
    postqueue -c "$PF" -j 2>/dev/null | "$RIG_PYTHON" -c \
        'import json,sys; [print(json.loads(l)["queue_name"]) for l in sys.stdin if l.strip()]'
}
deferred_one() { [[ $(queues) == deferred ]]; }
milter_conf() { # extra routing settings
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
routing = { action = "relay"; timeout = "20s"; $1 };
socketmap = { listen = "inet:127.0.0.1:$SMAP_PORT"; };
EOF
}
reloads() { grep -c 'reload: .* loaded' "$MILTER_LOG"; }
reloaded_since() { [[ $(reloads) -gt $1 ]]; }   # COUNT

rig_install || { bad "cannot install the rig"; exit 1; }
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }
SMAP_PORT=$(rig_free_port)
mkdir -p "$dir/milter"
milter_conf 'on-tempfail = "accept";'
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$dir/milter/milter.sock" ||
    { bad "milter did not start"; exit 1; }
rig_wait_port "$SMAP_PORT" 5 || { bad "socketmap not listening"; cat "$MILTER_LOG"; exit 1; }

# contrib/postfix-main.cf as README tells an admin to use it, its socketmap
# section enabled; only the socket paths, the port and the retry timers
# (minutes by default) differ.
mapfile -t snippet < <(mail_postfix_settings "unix:$dir/milter/milter.sock" "$SMAP_PORT")
postfix_start "$dir/postfix" "${snippet[@]}" "relayhost = [127.0.0.1]:$SINK_PORT" \
    "queue_run_delay = 2s" "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" ||
    { bad "postfix did not start"; exit 1; }
PF=$POSTFIX_DIR
check "Postfix routes through the socketmap" \
    eq "$(postconf -c "$PF" -h transport_maps)" "socketmap:inet:127.0.0.1:$SMAP_PORT:nexthop"

# before the outage: relayed by the milter; alice is now in the lookup cache
send before-outage
check "before the outage: accepted ($(final_reply))" accepted
check "before the outage: relayed into alice's mailbox" wait_for 20 arrived before-outage

# (a) on-tempfail = accept + socketmap transport: Postfix waits and retries
dovecot_stop "$dir/dovecot"
send outage-accept
check "accept, Dovecot down: the client gets 250 ($(final_reply))" accepted
check "accept: the milter's relay to Dovecot failed" \
    grep -qE 'relay: .*rcpt=<alice@dovecot.test> remote=dovecot result=deferred' "$MILTER_LOG"
check "accept: the milter left the message to Postfix" \
    grep -qE 'eom: .* delivered=0 outcome=continue ' "$MILTER_LOG"
check "accept: the message waits in Postfix's deferred queue" wait_for 30 deferred_one
check "accept: nothing is held" eq "$(postfix_held_count "$PF")" 0
check "accept: Postfix tried the same next hop (Dovecot's LMTP port) and deferred" \
    wait_for 10 grep -qE "to=<alice@dovecot.test>, relay=none, .*status=deferred \(connect to 127.0.0.1\[127.0.0.1\]:$DOVECOT_LMTP_PORT: " \
    "$PF/maillog"
check "accept: not in the mailbox yet" eq "$(in_mailbox outage-accept)" 0
back=$EPOCHREALTIME
dovecot_restart "$dir/dovecot" >/dev/null || { bad "dovecot did not start again"; exit 1; }
# from here on the test only watches
check "accept, Dovecot back: Postfix's retry delivers it, nobody acting" wait_for 120 arrived outage-accept
echo "  arrived $(ms_since "$back") ms after Dovecot was started again"
check "accept: the Postfix queue empties" postfix_wait_empty "$PF" 30
check "accept: delivered exactly once" eq "$(in_mailbox outage-accept)" 1
check "accept: delivered by Postfix's lmtp client to Dovecot" \
    wait_for 10 grep -qE "to=<alice@dovecot.test>, relay=127.0.0.1\[127.0.0.1\]:$DOVECOT_LMTP_PORT,.* status=sent" "$PF/maillog"

# (b) the default: the client is told to retry, nothing waits in Postfix
before=$(reloads)
milter_conf ''
milter_reload
check "default: the config without on-tempfail is loaded" wait_for 10 reloaded_since "$before"
dovecot_stop "$dir/dovecot"
send outage-default --header "Message-Id: $MSGID"
check "default, Dovecot down: the client gets 451 4.4.2 and a generic text ($(final_reply))" \
    eq "$(final_reply)" "451 4.4.2 Next hop temporarily unavailable, try again later"
check "default: the next hop's address and our error are in the milter's log only" \
    grep -qE "relay: .*rcpt=<alice@dovecot.test> remote=dovecot result=deferred .*reply=\"451 4\.4\.2 next hop dovecot: connect to 127\.0\.0\.1:$DOVECOT_LMTP_PORT: " "$MILTER_LOG"
check "default: the milter answered tempfail at end of message" \
    grep -qE 'eom: .* delivered=0 outcome=tempfail ' "$MILTER_LOG"
check "default: nothing queued" eq "$(postfix_queue_count "$PF")" 0
check "default: nothing held" eq "$(postfix_held_count "$PF")" 0
back=$EPOCHREALTIME
dovecot_restart "$dir/dovecot" >/dev/null || { bad "dovecot did not start again"; exit 1; }
# the client retries the same message (every 2 s; a real client waits minutes)
tries=0
while :; do
    send outage-default --header "Message-Id: $MSGID"
    tries=$((tries + 1))
    accepted && break
    (($(ms_since "$back") >= 90000)) && break
    sleep 2
done
echo "  $tries attempt(s), the last $(ms_since "$back") ms after Dovecot was started again: $(final_reply)"
check "default, Dovecot back: the client's retry is accepted" accepted
check "default: the Postfix queue is empty" postfix_wait_empty "$PF" 30
check "default: delivered exactly once" eq "$(in_mailbox outage-default)" 1
check "default: the delivered copy is the client's message" \
    bash -c "grep -ls -- '^Subject: outage-default\$' '$dir/dovecot/mail/dovecot.test/alice'/{new,cur}/* |
             xargs grep -qiF 'Message-Id: $MSGID'"
check "nothing went to the Internet" eq "$(find "$dir/sink" -maxdepth 1 -type f -name '[0-9]*' | wc -l)" 0

finish
