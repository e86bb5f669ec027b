#!/usr/bin/env bash
# tests/e2e/postfix-outcomes.sh - what the SMTP client and the Postfix queue
# see for each relay outcome, with a scripted LMTP next hop (fakeserver.py)
# giving per-recipient answers a real Dovecot will not give on demand:
#   every recipient refused for good (552)  -> the client gets that 552, nothing queued
#   one delivered, one refused (552)        -> held (on-tempfail = quarantine), not lost
#   one delivered, one deferred (452)       -> held, the delivered one removed from the copy
#   on-tempfail = tempfail, DATA 451        -> the client gets 451 4.4.2, nothing queued
#   on-tempfail = accept, DATA 451          -> accepted, Postfix delivers it by its own route
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init outcomes
dir=$TEST_DIR

fake_start() { # SCENARIO
    bg_stop fake
    bg_start fake python3 "$here/../lib/fakeserver.py" --port "$fake_port" --log "$dir/fake.log" \
        --data "$dir/fake.data" "$1" >/dev/null 2>&1
    rig_wait_port "$fake_port" 10
}
held_is() { [[ $(postfix_held_count "$PF") -eq $1 ]]; }
milter_conf() { # ON-TEMPFAIL
    cat > "$dir/milter.conf" <<CONF
milter = { log = { level = "debug"; }; };
remote = { fake = { address = "127.0.0.1"; port = $fake_port; protocol = "lmtp";
                    timeout = "5s"; tls = { enable = false; }; }; };
list = { local = [ "fake.test" ]; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "fake"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; on-tempfail = "$1"; timeout = "20s"; };
CONF
}
send() { # TO SUBJECT
    swaks --server 127.0.0.1 --port "$POSTFIX_PORT" --from s@example.net --to "$1" \
        --h-Subject "$2" --body "body of $2" --timeout 30 > "$dir/swaks.out" 2>&1
}
final_reply() { grep -E '^<(-|\*\*) +[245][0-9][0-9] ' "$dir/swaks.out" | grep -vE '^<. +221 ' | tail -1 | sed -E 's/^<(-|\*\*) +//'; }

fake_port=$(rig_free_port)
sink_port=$(rig_free_port)
smtp_sink_start "$dir/sink" "$sink_port" || exit 1
fake_start normal
milter_conf quarantine
milter_start "$dir/m" "$dir/milter.conf" "unix:$dir/m/milter.sock" || exit 1
postfix_start "$dir/pf" "smtpd_milters = unix:$dir/m/milter.sock" "relayhost = [127.0.0.1]:$sink_port" \
    "in_flow_delay = 0" || exit 1
PF=$POSTFIX_DIR

send okperm1@fake.test all-refused
check "all refused: the client gets the next hop's 552 ($(final_reply))" grep -qE '^<\*\* +552 5\.2\.2' "$dir/swaks.out"
check "all refused: nothing in the Postfix queue" eq "$(postfix_queue_count "$PF")" 0

send ok1@fake.test,okperm2@fake.test partly-refused
wait_for 20 held_is 1
check "one refused: accepted from the client ($(final_reply))" grep -qE '^<- +250 ' "$dir/swaks.out"
check "one refused: the copy is held, not lost" eq "$(postfix_held_count "$PF")" 1
id=$(postqueue -c "$PF" -j | python3 -c 'import json,sys; print([j for j in map(json.loads,sys.stdin) if j["queue_name"]=="hold"][0]["queue_id"])')
rcpts=$(postcat -c "$PF" -q "$id" 2>/dev/null | grep -E '^(recipient|done_recipient):' | tr '\n' ' ')
check "one refused: the held copy still names the refused recipient" grep -q 'recipient: okperm2@fake.test' <<<"$rcpts"
absent() { ! grep -qE "$1" <<<"$2"; }
check "one refused: the delivered recipient is gone from the held copy ($rcpts)" \
    absent '(^| )recipient: ok1@fake.test' "$rcpts"
grep -q 'relay to fake failed for <okperm2@fake.test>: 552 5.2.2' "$dir/m/milter.log" \
    && ok "one refused: the hold reason names host and reply (in the log: Postfix drops it)" || bad "hold reason not logged"
postsuper -c "$PF" -d ALL >/dev/null 2>&1

send ok2@fake.test,oktemp1@fake.test partly-deferred
wait_for 20 held_is 1
check "one deferred: held" eq "$(postfix_held_count "$PF")" 1
check "one deferred: the delivered recipient got it once" eq "$(grep -c 'Subject: partly-deferred' "$dir/fake.data")" 1
postsuper -c "$PF" -d ALL >/dev/null 2>&1

# on-tempfail = tempfail: the client is told to retry
fake_start tempfail-data
milter_conf tempfail
check "tempfail: the milter reloaded the config" milter_reload
send ok3@fake.test tempfail-mode
check "tempfail: the client gets 451 4.4.2 with the next hop's own text ($(final_reply))" \
    grep -qE '^<\*\* +451 4\.4\.2 fake: data tempfail \(100% busy\)' "$dir/swaks.out"
check "tempfail: nothing queued (the client keeps the message)" eq "$(postfix_queue_count "$PF")" 0

# on-tempfail = accept: Postfix keeps the message and delivers it by its own route
milter_conf accept
check "accept: the milter reloaded the config" milter_reload
send ok4@fake.test accept-mode
check "accept: accepted from the client ($(final_reply))" grep -qE '^<- +250 ' "$dir/swaks.out"
postfix_wait_empty "$PF" 20
check "accept: Postfix delivered it by its own route" eq "$(grep -l 'Subject: accept-mode' "$dir"/sink/[0-9]* 2>/dev/null | wc -l)" 1

finish
