#!/usr/bin/env bash
# tests/e2e/smtputf8.sh - UTF-8 recipients (RFC 6531) through a real
# Postfix and the milter, against mail stores that do and do not offer
# SMTPUTF8:
#   store  = a private Postfix smtpd with smtputf8_enable = yes (it refuses
#            a UTF-8 RCPT unless MAIL carried SMTPUTF8): a UTF-8 user that
#            exists is accepted, one that does not gets 550 5.1.1;
#   legacy = tests/lib/fakeserver.py, no SMTPUTF8: a UTF-8 recipient gets
#            553 5.6.7 (not a false "550 User unknown"), and it is never
#            cached as a no.
# Also records whether Dovecot's LMTP offers SMTPUTF8 (it decides which
# answer a Dovecot-backed domain gets) and checks -q agrees with it.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init smtputf8
dir=$TEST_DIR

rig_install >/dev/null || { bad "cannot install the rig"; exit 1; }

cat >"$dir/lhlo.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
f.readline()
s.sendall(b"LHLO rig.test\r\n")
while True:
    l = f.readline().decode()
    print(l.strip())
    if l[3:4] != "-":
        break
s.sendall(b"QUIT\r\n")
PY
cat >"$dir/rcpt.py" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
s.command_encoding = "utf-8"
s.ehlo("client.rig.test")
code, msg = s.mail("sender@example.net", ["SMTPUTF8"])
if code != 250:
    print(code, msg.decode(errors="replace"))
    sys.exit(0)
code, msg = s.rcpt(sys.argv[2])
print(code, msg.decode(errors="replace"))
s.quit()
PY
# rcpt_reply RCPT: the front Postfix's reply to RCPT TO, in an SMTPUTF8 transaction
rcpt_reply() { "$RIG_PYTHON" "$dir/rcpt.py" "$POSTFIX_PORT" "$1"; }

# ------------------------------------------------------------ Dovecot LMTP
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
lhlo=$("$RIG_PYTHON" "$dir/lhlo.py" "$DOVECOT_LMTP_PORT")
cat >"$dir/dovecot.conf" <<CONF
remote = { r = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp"; lookup = true;
                 catch-all = false; tls = { enable = false; }; }; };
CONF
"$NEXTHOP_BIN" -c "$dir/dovecot.conf" -q r rcpt 'nöbody@dovecot.test' </dev/null >/dev/null 2>"$dir/err"
rc=$?
if grep -qi '^250.SMTPUTF8' <<<"$lhlo"; then
    echo "NOTE: Dovecot LMTP offers SMTPUTF8"
    check "dovecot (SMTPUTF8 offered): a UTF-8 stranger is a plain no (exit $rc)" eq "$rc" 1
    check "dovecot: the answer is Dovecot's own, not 553 5.6.7" bash -c "! grep -q '5\.6\.7' '$dir/err'"
else
    echo "NOTE: Dovecot LMTP does not offer SMTPUTF8 (LHLO: $(tr '\n' ' ' <<<"$lhlo"))"
    check "dovecot (no SMTPUTF8): -q says no with 553 5.6.7 (exit $rc)" eq "$rc" 1
    check "dovecot (no SMTPUTF8): the reason is 553 5.6.7" \
        grep -q '553 5\.6\.7 non-ASCII address not supported' "$dir/err"
fi

# ------------------------------------------------------------ the stores
postfix_start "$dir/store" \
    "smtputf8_enable = yes" \
    "virtual_mailbox_domains = utf8.test" \
    "virtual_mailbox_maps = inline:{jösé@utf8.test=j/, ascii@utf8.test=a/}" \
    "virtual_transport = discard:" \
    "debug_peer_list = 127.0.0.1" >/dev/null || { bad "store postfix did not start"; exit 1; }
STORE_PORT=$POSTFIX_PORT
STORE_DIR=$POSTFIX_DIR

bg_start legacy "$RIG_PYTHON" "$here/../lib/fakeserver.py" --log "$dir/legacy.log" normal >"$dir/legacy.port" 2>"$dir/legacy.err"
wait_for 10 grep -q '^PORT ' "$dir/legacy.port" || { bad "fakeserver did not start: $(cat "$dir/legacy.err")"; exit 1; }
LEGACY_PORT=$(awk '/^PORT /{print $2}' "$dir/legacy.port")

cat >"$dir/milter.conf" <<CONF
milter = { log = { level = "info"; }; };
remote = {
  store = { address = "127.0.0.1"; port = $STORE_PORT; protocol = "smtp"; lookup = true;
            catch-all = false; timeout = "5s"; tls = { enable = false; }; };
  legacy = { address = "127.0.0.1"; port = $LEGACY_PORT; protocol = "smtp"; lookup = true;
             catch-all = false; timeout = "5s"; tls = { enable = false; }; };
};
session = { rcpt = { lookup = { addresses = (
  { if = "rcpt-domain"; eq = "utf8.test"; then = "remote/store"; },
  { else = "remote/legacy"; } ); }; }; };
CONF
milter_start "$dir/milter" "$dir/milter.conf" "unix:$dir/milter/milter.sock" || { bad "milter did not start"; exit 1; }
postfix_start "$dir/front" \
    "smtputf8_enable = yes" \
    "default_transport = discard:" "relay_transport = discard:" \
    "smtpd_milters = unix:$dir/milter/milter.sock" >/dev/null || { bad "front postfix did not start"; exit 1; }

r=$(rcpt_reply 'jösé@utf8.test')
check "store with SMTPUTF8: an existing UTF-8 user is accepted ($r)" grep -q '^250' <<<"$r"
r=$(rcpt_reply 'nöbody@utf8.test')
check "store with SMTPUTF8: an unknown UTF-8 user gets 550 5.1.1 ($r)" grep -q '^550 5\.1\.1' <<<"$r"
r=$(rcpt_reply 'ascii@utf8.test')
check "store with SMTPUTF8: ASCII users still work ($r)" grep -q '^250' <<<"$r"
# debug_peer_list makes the store log every command it got
check "the store got the probe's MAIL FROM with SMTPUTF8" \
    wait_for 5 grep -q '< .*: MAIL FROM:<> SMTPUTF8' "$STORE_DIR/maillog"

r=$(rcpt_reply 'jösé@legacy.test')
check "store without SMTPUTF8: 553 5.6.7, not 550 ($r)" grep -q '^553 5\.6\.7' <<<"$r"
r=$(rcpt_reply 'jösé@legacy.test')
check "store without SMTPUTF8: again 553 5.6.7, never cached as a no ($r)" grep -q '^553 5\.6\.7' <<<"$r"
check "the milter asked twice (result=utf8-unsupported source=remote, not the cache)" \
    eq "$(grep -c 'rcpt=<jösé@legacy.test> remote=legacy kind=rcpt result=utf8-unsupported source=remote' "$MILTER_LOG")" 2
# it was asked (its EHLO is logged), and never for the UTF-8 recipient
check "the legacy store was probed but never got the UTF-8 RCPT" \
    bash -c "grep -q '^EHLO ' '$dir/legacy.log' && ! grep -q 'jösé' '$dir/legacy.log'"
r=$(rcpt_reply 'ok@legacy.test')
check "store without SMTPUTF8: ASCII users still work ($r)" grep -q '^250' <<<"$r"

check "the milter exits cleanly" milter_stop
finish
