#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016  # helpers run via check/wait_for/trap; eval'd checks
# tests/e2e/rig-selftest.sh - prove that tests/lib/rig.sh works for real:
# Dovecot (LMTP, LMTPS, IMAP, IMAPS), a private Postfix relaying over LMTP
# to Dovecot and over SMTP to smtp-sink, queue helpers, restart, cleanup.
# Prints PASS/FAIL lines; exits non-zero on any failure.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/harness.sh
. "$here/../lib/harness.sh"
harness_init rig-selftest
work=$TEST_DIR
t0=$EPOCHREALTIME

mbox_is() { [[ $(mailbox_count "$1" "$2") -eq $3 ]]; }
queue_is() { [[ $(postfix_queue_count "$1") -eq $2 ]]; }
deferred_is() { [[ $(find "$1/q/deferred" -type f | wc -l) -eq $2 ]]; }
sink_has() { [[ $(smtp_sink_count "$1") -ge $2 ]]; }
banner_has() { # PORT TEXT: the SMTP greeting contains TEXT
    local line=""
    exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
    read -r -t 5 line <&"$fd" || true
    printf 'QUIT\r\n' >&"$fd"
    exec {fd}>&-
    [[ $line == *"$2"* ]]
}
# listening sockets of PIDs are all on 127.0.0.1
only_loopback() {
    local pid bad
    for pid in "$@"; do
        bad=$(ss -ltnpH 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | grep -v '^127\.0\.0\.1:' || true)
        [[ -z $bad ]] || {
            echo "# pid $pid listens on $bad"
            return 1
        }
    done
}

# Dovecot protocol checks in one python run; prints PASS/FAIL lines.
dovecot_protocol_checks() {
    "$RIG_PYTHON" - <<'EOF'
import imaplib, os, smtplib, socket, ssl, sys
env = os.environ
lmtp, lmtps = int(env["DOVECOT_LMTP_PORT"]), int(env["DOVECOT_LMTPS_PORT"])
imap, imaps = int(env["DOVECOT_IMAP_PORT"]), int(env["DOVECOT_IMAPS_PORT"])
ctx = ssl.create_default_context(cafile=env["DOVECOT_CERT"])  # verifies CN/SAN localhost
fails = 0
def res(ok, name, detail=""):
    global fails
    print(("PASS: " if ok else "FAIL: ") + name + (f" ({detail})" if detail and not ok else ""))
    fails += 0 if ok else 1
def attempt(name, fn):
    try:
        fn()
    except Exception as e:
        res(False, name, repr(e))

def lmtp_rcpt():
    s = smtplib.LMTP("127.0.0.1", lmtp, timeout=10)
    s.ehlo("rig.test")
    res(s.has_extn("starttls"), "LMTP advertises STARTTLS")
    s.mail("<>")
    c, m = s.rcpt("alice@dovecot.test")
    res(c == 250, "LMTP RCPT alice@dovecot.test -> 250", f"{c} {m!r}")
    c, m = s.rcpt("nobody@dovecot.test")
    res(c == 550, "LMTP RCPT nobody@dovecot.test -> 550", f"{c} {m!r}")
    s.rset()
    c, m = s.starttls(context=ctx)
    res(c == 220, "LMTP STARTTLS (cert verified for localhost)", f"{c} {m!r}")
    s.ehlo("rig.test")
    s.mail("<>")
    c, m = s.rcpt("1alice@dovecot.test")
    res(c == 250, "LMTP over STARTTLS RCPT 1alice@dovecot.test -> 250", f"{c} {m!r}")
    s.quit()
attempt("LMTP session", lmtp_rcpt)

def lmtps_greeting():
    with socket.create_connection(("127.0.0.1", lmtps), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            f = t.makefile("rwb")
            g = f.readline()
            res(g.startswith(b"220 "), "LMTPS implicit TLS greeting 220", repr(g))
            f.write(b"LHLO rig.test\r\n"); f.flush()
            while True:
                l = f.readline()
                if l[3:4] != b"-":
                    break
            res(l.startswith(b"250 "), "LMTPS LHLO -> 250", repr(l))
            f.write(b"QUIT\r\n"); f.flush()
attempt("LMTPS session", lmtps_greeting)

def imaps_login():
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=10)
    typ, _ = m.login("alice@dovecot.test", "secret")
    res(typ == "OK", "IMAPS login alice/secret")
    typ, data = m.select("INBOX")
    res(typ == "OK", "IMAPS select INBOX", repr(data))
    m.logout()
attempt("IMAPS session", imaps_login)

def imap_starttls_login():
    m = imaplib.IMAP4("127.0.0.1", imap, timeout=10)
    res("STARTTLS" in m.capabilities, "IMAP advertises STARTTLS")
    m.starttls(ssl_context=ctx)
    typ, _ = m.login("bob@dovecot.test", "secret")
    res(typ == "OK", "IMAP STARTTLS login bob/secret")
    m.logout()
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=10)
    try:
        m.login("alice@dovecot.test", "wrong")
        res(False, "IMAPS wrong password rejected")
    except imaplib.IMAP4.error:
        res(True, "IMAPS wrong password rejected")
    m.logout()
attempt("IMAP STARTTLS session", imap_starttls_login)
sys.exit(1 if fails else 0)
EOF
}

send() { # PORT TO -> swaks exit status
    swaks --server "127.0.0.1:$1" --helo rig.test --from tester@example.test \
        --to "$2" --header "Subject: rig selftest" --body "hello $2" \
        --timeout 20 >>"$work/swaks.log" 2>&1
}

# ------------------------------------------------------------------ run

check "rig_install (packages, vmail, /etc/postfix/main.cf)" rig_install

p=$(rig_free_port)
check "rig_free_port gives a port number" eq "$([[ $p =~ ^[0-9]+$ ]] && echo y)" y
check "rig_wait_port times out on a closed port" eval '! rig_wait_port "$p" 1'

if ! dovecot_start "$work/dovecot"; then
    bad "dovecot_start"
    exit 1
fi
ok "dovecot_start (lmtp $DOVECOT_LMTP_PORT lmtps $DOVECOT_LMTPS_PORT imap $DOVECOT_IMAP_PORT imaps $DOVECOT_IMAPS_PORT)"
check "rig_cert: cert has CN=localhost and SAN IP 127.0.0.1" \
    eval 'openssl x509 -in "$DOVECOT_CERT" -noout -text | grep -q "IP Address:127.0.0.1"'
dc_ports="$DOVECOT_LMTP_PORT $DOVECOT_LMTPS_PORT $DOVECOT_IMAP_PORT $DOVECOT_IMAPS_PORT"

dovecot_protocol_checks || fails=$((fails + 1))
check "mailbox_count is 0 before delivery" mbox_is "$work/dovecot" alice@dovecot.test 0

sink_port=$(rig_free_port)
dead_port=$(rig_free_port)
check "smtp_sink_start" smtp_sink_start "$work/sink" "$sink_port"

if ! postfix_start "$work/postfix" \
    "transport_maps = inline:{dovecot.test=lmtp:inet:127.0.0.1:$DOVECOT_LMTP_PORT, sink.test=smtp:[127.0.0.1]:$sink_port, dead.test=smtp:[127.0.0.1]:$dead_port}"; then
    bad "postfix_start"
    exit 1
fi
ok "postfix_start (port $POSTFIX_PORT)"
pf=$POSTFIX_DIR

check "swaks alice@dovecot.test via Postfix accepted" send "$POSTFIX_PORT" alice@dovecot.test
check "message lands in alice's maildir (mailbox_count 1)" wait_for 15 mbox_is "$work/dovecot" alice@dovecot.test 1
check "Postfix queue empty after LMTP delivery" wait_for 5 queue_is "$pf" 0
check "postfix_wait_empty" postfix_wait_empty "$pf" 5

check "swaks x@sink.test via Postfix accepted" send "$POSTFIX_PORT" x@sink.test
check "smtp-sink got the relayed message" wait_for 15 sink_has "$work/sink" 1
check "smtp-sink file has X-Rcpt-Args / the body" \
    eval 'grep -q "hello x@sink.test" "$(find "$work/sink" -maxdepth 1 -type f -name "[0-9]*.*" | head -n1)"'

check "swaks y@dead.test (closed next hop) accepted" send "$POSTFIX_PORT" y@dead.test
check "message to dead next hop is deferred (queue count 1)" wait_for 15 deferred_is "$pf" 1
check "postfix_queue_count 1" queue_is "$pf" 1
check "postfix_flush" postfix_flush "$pf"
check "postsuper -c DIR -h ALL works" eval 'postsuper -c "$pf" -h ALL >/dev/null 2>&1'
check "postfix_held_count 1" eval '[[ $(postfix_held_count "$pf") -eq 1 ]]'
check "postqueue -c DIR -p shows the held message" eval 'postqueue -c "$pf" -p | grep -q "^[0-9A-F]*!"'
check "postsuper -c DIR -d ALL empties the queue" eval 'postsuper -c "$pf" -d ALL >/dev/null 2>&1 && [[ $(postfix_queue_count "$pf") -eq 0 ]]'
check "postfix_reload applies a setting" postfix_reload "$pf" "smtpd_banner = \$myhostname ESMTP rig-reloaded"
check "reloaded smtpd answers with the new banner" wait_for 5 banner_has "$POSTFIX_PORT" rig-reloaded
check "no DNS lookups configured" eval '[[ $(postconf -c "$pf" -h smtp_dns_support_level) == disabled ]]'

old_lmtp=$DOVECOT_LMTP_PORT
check "dovecot_restart" dovecot_restart "$work/dovecot"
check "dovecot_restart keeps the ports" eq "$DOVECOT_LMTP_PORT $DOVECOT_LMTPS_PORT $DOVECOT_IMAP_PORT $DOVECOT_IMAPS_PORT" "$dc_ports"
check "swaks bob@dovecot.test after Dovecot restart" send "$POSTFIX_PORT" bob@dovecot.test
check "bob's maildir has 1 message" wait_for 15 mbox_is "$work/dovecot" bob@dovecot.test 1
check "alice still has 1 message" mbox_is "$work/dovecot" alice@dovecot.test 1
[[ $old_lmtp == "$DOVECOT_LMTP_PORT" ]] || bad "LMTP port changed"

# Everything this shell started, by PID.
pids=()
dc_pid=$(cat "$work/dovecot/base/master.pid")
pf_pid=$(tr -d ' ' <"$pf/q/pid/master.pid")
sink_pid=$(cat "$work/sink/smtp-sink.pid")
pids+=("$dc_pid" "$pf_pid" "$sink_pid")
mapfile -t -O "${#pids[@]}" pids < <(_rig_children "$dc_pid"; _rig_children "$pf_pid")
check "all listeners on 127.0.0.1 only" only_loopback "${pids[@]}"

rig_cleanup
left=()
for pid in "${pids[@]}"; do
    _rig_alive "$pid" && left+=("$pid")
done
check "rig_cleanup: none of the ${#pids[@]} started processes remains" eq "${left[*]}" ""
closed=1
for port in $dc_ports "$POSTFIX_PORT" "$sink_port"; do
    _rig_port_closed "$port" || closed=0
done
check "rig_cleanup: all ports closed" eq "$closed" 1

secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
finish "(rig selftest, ${secs}s)"
