#!/usr/bin/env bash
# tests/e2e/control.sh - the control socket and `milter-nexthop -C` (issue
# 16 item 1) with a real private Postfix and a real Dovecot:
#   (a) a user created in Dovecot after a refusal is still refused (the
#       negative cache: ttl.negative 1h); `-C show` says why (no, time left,
#       from remote); `-C flush ADDRESS` removes it, and the next message to
#       that user arrives in the new mailbox
#   (b) flush @DOMAIN, flush all, flush all REMOTE print what they removed;
#       an unknown remote, a bad address and an unknown command exit 1
#   (c) `-C reload` answers ok, or the FILE:LINE errors (exit 1) while the
#       running config stays; `-C stats` prints the counters of /metrics
#   (d) the socket has milter.socket-mode; every command is logged with
#       the peer's uid; no daemon, or no control.socket: exit 75
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init control
dir=$TEST_DIR
conf=$dir/milter/milter.conf
ctl() { "$NEXTHOP_BIN" -c "$conf" -C "$@" >"$dir/ctl.out" 2>"$dir/ctl.err"; }   # exit status kept
out() { cat "$dir/ctl.out"; }

rcpt_refused_550() { grep -qE '^<\*\* +550 5\.1\.1 ' "$dir/swaks.out"; }
write_conf() { # EXTRA (top-level settings)
    cat >"$conf" <<EOF
milter = { log = { level = "info"; }; socket-mode = "0660"; };
control = { socket = "$dir/milter/control.sock"; };
remote = {
  dovecot = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
              timeout = "5s"; tls = { enable = false; }; catch-all = false;
              cache = { ttl = { positive = "1d"; negative = "1h"; }; }; };
  other = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
            timeout = "5s"; tls = { enable = false; }; catch-all = false; };
};
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; eq = "dovecot.test"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; timeout = "20s"; };
$1
EOF
}

rig_install || { bad "cannot install the rig"; exit 1; }
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
mkdir -p "$dir/milter"
write_conf ""
milter_start "$dir/milter" "$conf" "unix:$dir/milter/milter.sock" || { bad "milter did not start"; exit 1; }
# Postfix's own route (never used: the milter relays every mail_accepted message)
SINK_PORT=$(rig_free_port)
smtp_sink_start "$dir/sink" "$SINK_PORT" || { bad "smtp-sink did not start"; exit 1; }
postfix_start "$dir/postfix" "smtpd_milters = unix:$dir/milter/milter.sock" \
    "relayhost = [127.0.0.1]:$SINK_PORT" "in_flow_delay = 0" ||
    { bad "postfix did not start"; exit 1; }
check "the control socket exists with milter.socket-mode 0660" \
    eq "$(stat -c '%F %a' "$dir/milter/control.sock")" "socket 660"

# (a) a new mailbox after a refusal
mail_send newbie@dovecot.test before-flush-1
check "an unknown user is refused with 550 5.1.1" rcpt_refused_550
ctl show newbie@dovecot.test
check "show: exit 0 ($?)" test $? -eq 0
check "show: the negative entry, its time left and where it came from ($(out | head -1))" \
    grep -qE '^dovecot: <newbie@dovecot.test> no, (3[0-9]{3}|2[0-9]{3}) s left, from remote$' "$dir/ctl.out"
printf 'newbie@dovecot.test:{PLAIN}secret:%s:%s::%s/mail/dovecot.test/newbie::\n' \
    "$(id -u vmail)" "$(id -g vmail)" "$dir/dovecot" >>"$dir/dovecot/passwd"
touch -d '+2 seconds' "$dir/dovecot/passwd"
wait_for 10 doveadm -c "$dir/dovecot/dovecot.conf" user newbie@dovecot.test >/dev/null 2>&1 ||
    bad "Dovecot does not know the new user"
mail_send newbie@dovecot.test before-flush-2
check "the user now exists in Dovecot, but the negative cache still refuses it (550)" rcpt_refused_550
ctl flush NewBie@DOVECOT.test
rc=$?
check "flush ADDRESS: exit 0 ($rc)" test $rc -eq 0
check "flush ADDRESS: says one entry was removed ($(out | tr '\n' '|'))" \
    grep -qx 'dovecot: 1 removed (1 local, 0 in Redis)' "$dir/ctl.out"
ctl show newbie@dovecot.test
check "show after flush: not cached" grep -qx 'dovecot: <newbie@dovecot.test> not cached' "$dir/ctl.out"
mail_send newbie@dovecot.test after-flush
check "after flush: the message to the new user is mail_accepted" mail_accepted
check "after flush: it arrives in the new mailbox" wait_for 30 mail_arrived_mailbox newbie after-flush
ctl show newbie@dovecot.test
check "show: now a positive entry from remote" \
    grep -qE '^dovecot: <newbie@dovecot.test> yes, [0-9]+ s left, from remote$' "$dir/ctl.out"

# (b) domains, everything, one remote, and mistakes
mail_send alice@dovecot.test fill-1 && mail_send bob@dovecot.test fill-2
ctl flush @dovecot.test dovecot
check "flush @DOMAIN REMOTE: exit 0, three entries (newbie, alice, bob)" \
    grep -qx 'dovecot: 3 removed (3 local, 0 in Redis)' "$dir/ctl.out"
check "flush @DOMAIN REMOTE: the other remote is not touched" bash -c "! grep -q '^other:' '$dir/ctl.out'"
mail_send alice@dovecot.test fill-3
ctl flush all
check "flush all: every remote, with a total" \
    bash -c "grep -qx 'dovecot: 1 removed (1 local, 0 in Redis)' '$dir/ctl.out' && grep -qx 'other: 0 removed (0 local, 0 in Redis)' '$dir/ctl.out' && grep -qx '1 removed in all' '$dir/ctl.out'"
ctl flush all nosuch
rc=$?
check "flush all with an unknown remote: exit 1 ($rc) and says so" \
    bash -c "test $rc -eq 1 && grep -qx 'no remote named nosuch' '$dir/ctl.out'"
ctl flush 'bad address@dovecot.test'
check "flush of a bad address: exit 1 ($?)" grep -q '^not an address' "$dir/ctl.out"
ctl show Postmaster
check "show <Postmaster>: never cached, exit 1" grep -q 'never looked up or cached' "$dir/ctl.out"
ctl frobnicate
rc=$?
check "an unknown command: exit 1 ($rc) with the list of commands" \
    bash -c "test $rc -eq 1 && grep -q '^flush ADDRESS' '$dir/ctl.out'"

# (control.mode follows milter.socket-mode when it is not set)
# (c) reload (ok, FILE:LINE errors, a file that cannot be parsed, a setting only a restart applies) and stats
ctl reload
rc=$?
check "reload: exit 0 ($rc), answers ok" bash -c "test $rc -eq 0 && grep -qx ok '$dir/ctl.out'"
cp "$conf" "$dir/good.conf"
write_conf 'frobnicate = 1;'
ctl reload
rc=$?
check "reload of a broken config: exit 1 ($rc)" test $rc -eq 1
check "reload of a broken config: the answer names FILE:LINE ($(out | head -1))" \
    grep -q "^$conf:[0-9]*: " "$dir/ctl.out"
printf 'remote = {};\n' >>"$conf"   # a second remote block: libconfig cannot parse the file
ctl reload
rc=$?
check "reload of a file that cannot be parsed: exit 78 ($rc), and says the daemon was not asked" \
    bash -c "test $rc -eq 78 && grep -q 'cannot be parsed, so the daemon was not asked' '$dir/ctl.err'"
sed 's/socket-mode = "0660"/socket-mode = "0640"/' "$dir/good.conf" >"$conf"
ctl reload
rc=$?
check "reload of a changed socket-mode: exit 0 ($rc), and says only a restart applies it ($(out))" \
    bash -c "test $rc -eq 0 && grep -qx 'ok, but only a restart applies the change of milter.socket-mode, control.mode' '$dir/ctl.out'"
check "... and logs it as a warning" grep -q 'warning: reload: milter.socket-mode, control.mode changed, which only a restart applies' "$MILTER_LOG"
cp "$dir/good.conf" "$conf"
mail_send alice@dovecot.test after-failed-reload
check "after a failed reload the running config still relays" wait_for 30 mail_arrived_mailbox alice after-failed-reload
ctl stats
rc=$?
check "stats: exit 0 ($rc), plain counter lines without comments" \
    bash -c "test $rc -eq 0 && grep -qE '^nexthop_reloads_total\\{result=\"failed\"\\} 1$' '$dir/ctl.out' && ! grep -q '^#' '$dir/ctl.out'"

# (d) the log, and an unreachable daemon
check "every command is logged with the peer's uid and the outcome" \
    test "$(grep -c "control: uid=$(id -u) command=\"" "$MILTER_LOG")" -ge 12
check "a failed command is logged as failed" \
    grep -q 'control: uid=[0-9]* command="flush all nosuch" result=failed' "$MILTER_LOG"
sed '/^control = /d' "$conf" >"$dir/nocontrol.conf"
"$NEXTHOP_BIN" -c "$dir/nocontrol.conf" -C stats >/dev/null 2>"$dir/ctl.err"
rc=$?
check "no control.socket in the config: exit 75 ($rc), and says so" \
    bash -c "test $rc -eq 75 && grep -q 'no control.socket' '$dir/ctl.err'"
milter_stop || bad "the milter did not stop cleanly"
ctl stats
rc=$?
check "daemon stopped: exit 75 ($rc), 'cannot reach the daemon'" \
    bash -c "test $rc -eq 75 && grep -q 'cannot reach the daemon' '$dir/ctl.err'"
finish
