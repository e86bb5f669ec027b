#!/usr/bin/env bash
# tests/e2e/kill9.sh - nothing is lost when the milter dies: a real Postfix
# + Dovecot + the milter in relay mode (e2e_start); 4 SMTP clients send 200
# messages (one connection each, Message-ID <kill9-N@nexthop.test>); when
# half are accepted the milter gets SIGKILL and is restarted. Clients retry
# what got a 4xx, as real clients do. Then every message is counted:
#   accepted by Postfix -> must be in Dovecot (relayed) or still in Postfix's
#                          queue (deferred or held): none may be lost;
#   duplicates          -> counted and explained: a message the milter
#                          relayed just before the kill was answered 451 by
#                          Postfix (milter_default_action = tempfail), so the
#                          client retried it; at most one per client in flight.
# Must not: stop anything it did not start, or count a message twice.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/e2e.sh"
harness_init kill9
dir=$TEST_DIR
N=${KILL9_MESSAGES:-200}
CLIENTS=4

cat >"$dir/kill9.conf.in" <<'EOF'
# kill9.sh: validate and relay dovecot.test to the real Dovecot.
milter = { log = { level = "info"; }; };
remote = { dovecot = {
  address = "127.0.0.1"; port = @DOVECOT_LMTP_PORT@; protocol = "lmtp"; lookup = true;
  timeout = "5s"; concurrency = 4; tls = { implicit = false; allow-invalid-certs = true; };
}; };
list = { local = [ "dovecot.test" ]; };
session = { rcpt = { lookup = { domains = "list/local"; addresses = "remote/dovecot"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "dovecot"; },
                                    { else = false; } ); }; };
routing = { action = "relay"; on-tempfail = "quarantine"; timeout = "20s"; };
EOF
e2e_start "$dir" "$dir/kill9.conf.in" || { bad "rig did not start"; exit 1; }
PF=$POSTFIX_DIR
sock=$dir/milter/milter.sock

# The clients: each message on its own connection; a 4xx is retried after a
# second (for up to 90 s), a 5xx is final. One line per attempt in sent.log.
bg_start clients "$RIG_PYTHON" - "$POSTFIX_PORT" "$N" "$CLIENTS" "$dir/sent.log" >"$dir/clients.out" 2>&1 <<'EOF'
import smtplib, sys, threading, time
port, n, clients, logpath = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
def log(*f):
    with lock, open(logpath, "a") as fp:
        fp.write(" ".join(str(x) for x in f) + "\n")
def send(i):
    msg = ("From: <s@example.net>\r\nTo: <alice@dovecot.test>\r\nSubject: kill9-%d\r\n"
           "Message-ID: <kill9-%d@nexthop.test>\r\n\r\nmessage %d\r\n" % (i, i, i))
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
            s.sendmail("s@example.net", ["alice@dovecot.test"], msg)
        return 250, ""
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error
    except (OSError, smtplib.SMTPException) as e:
        return 421, str(e)
    return code, text.decode("latin-1", "replace") if isinstance(text, bytes) else text
def client(k):
    for i in range(k, n, clients):
        end = time.time() + 90
        while True:
            code, text = send(i)
            log("attempt", i, code, text.replace("\n", " ")[:120])
            if code < 400 or code >= 500 or time.time() > end:
                log("final", i, code)
                break
            time.sleep(1)
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
EOF
clients_pid=${BG_PID[clients]}
accepted() { # messages the clients got a final 250 for: always one number
    local n
    n=$(grep -c '^final [0-9]* 250$' "$dir/sent.log" 2>/dev/null)
    echo "${n:-0}"
}
half_in() { (($(accepted) >= N / 2)) || ! _rig_alive "$clients_pid"; }
# in the queue, not yet delivered, deferred or held
in_flight() { find "$PF/q/maildrop" "$PF/q/incoming" "$PF/q/active" -type f 2>/dev/null | grep -q .; }
settled() { ! in_flight; }
no_deferred() { ! find "$PF/q/deferred" -type f 2>/dev/null | grep -q .; }

# Kill the milter when half the messages are in.
wait_for 120 half_in
(($(accepted) >= N / 2)) ||
    bad "the clients did not get half the messages in: $(tail -3 "$dir/sent.log" 2>/dev/null)"
old=$MILTER_PID
sent_at_kill=$(log_lines "$dir/sent.log")
milter_kill "$old" KILL
accepted_at_kill=$(accepted)
echo "killed the milter (pid $old) with SIGKILL after $accepted_at_kill accepted messages"
# restart once a client was told to retry (the kill hit mail in flight)
wait_log "$dir/sent.log" '^attempt [0-9]+ 4[0-9][0-9] ' 60 "$sent_at_kill" ||
    echo "no client got a 4xx within 60 s of the kill"
rm -f "$sock"      # the dead milter's socket (libmilter would not bind over it)
milter_start "$dir/milter" "$dir/milter/milter.conf" "unix:$sock" || bad "the milter did not restart"
echo "restarted the milter (pid $MILTER_PID)"

wait "$clients_pid"
unset 'BG_PID[clients]'
wait_for 60 settled || echo "Postfix still has mail in flight after 60 s"
postfix_flush "$PF"
wait_for 10 no_deferred
wait_for 60 settled || echo "Postfix still has mail in flight after 60 s"

# Count: Message-IDs in Dovecot, in the Postfix queue, and what the clients saw.
mailbox=$E2E_DIR/dovecot/mail/dovecot.test/alice
grep -aho '^Message-ID: <kill9-[0-9]*@nexthop.test>' "$mailbox"/{new,cur}/* 2>/dev/null |
    sed 's/.*<kill9-\([0-9]*\)@.*/\1/' | sort -n >"$dir/delivered.ids"
: >"$dir/queued.ids"
while IFS= read -r f; do
    postcat -c "$PF" "$f" 2>/dev/null | sed -n 's/^Message-ID: <kill9-\([0-9]*\)@.*/\1/p'
done < <(find "$PF/q/incoming" "$PF/q/active" "$PF/q/deferred" "$PF/q/hold" -type f 2>/dev/null) |
    sort -n >"$dir/queued.ids"
sed -n 's/^final \([0-9]*\) 250$/\1/p' "$dir/sent.log" | sort -n >"$dir/accepted.ids"
"$RIG_PYTHON" - "$dir" "$N" "$CLIENTS" <<'EOF' >"$dir/count.out"
import collections, sys
d, n, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ids = lambda name: [int(x) for x in open("%s/%s.ids" % (d, name)).read().split()]
delivered, queued, accepted = collections.Counter(ids("delivered")), collections.Counter(ids("queued")), set(ids("accepted"))
attempts = collections.defaultdict(list)
for line in open(d + "/sent.log"):
    f = line.split()
    if f[0] == "attempt":
        attempts[int(f[1])].append(int(f[2]))
lost = [i for i in sorted(accepted) if delivered[i] + queued[i] == 0]
never = [i for i in range(n) if i not in accepted]
dups = {i: delivered[i] + queued[i] for i in range(n) if delivered[i] + queued[i] > 1}
tempfailed = sum(1 for i in range(n) if any(400 <= c < 500 for c in attempts[i]))
print("sent=%d accepted=%d delivered=%d (unique %d) queued=%d lost=%d never_accepted=%d duplicates=%d tempfailed_once=%d"
      % (n, len(accepted), sum(delivered.values()), len(delivered), sum(queued.values()), len(lost),
         len(never), len(dups), tempfailed))
for i in lost:
    print("LOST kill9-%d: accepted by Postfix, in neither Dovecot nor the queue" % i)
for i in never:
    print("NEVER kill9-%d: attempts %s" % (i, attempts[i]))
for i, k in sorted(dups.items()):
    print("DUPLICATE kill9-%d: %d copies (delivered %d, queued %d); client saw %s"
          % (i, k, delivered[i], queued[i], attempts[i]))
EOF
cat "$dir/count.out"
line=$(head -1 "$dir/count.out")
val() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$line"; }
check "the kill hit while mail flowed: some clients got a 4xx and retried ($(val tempfailed_once))" \
    test "$(val tempfailed_once)" -ge 1
check "every message was eventually accepted by Postfix ($(val accepted)/$N)" test "$(val accepted)" -eq "$N"
check "none lost: every accepted message is in Dovecot or in the Postfix queue" test "$(val lost)" -eq 0
check "duplicates ($(val duplicates)) at most one per client in flight at the kill ($CLIENTS)" \
    test "$(val duplicates)" -le "$CLIENTS"
check "the restarted milter relays: messages after the restart reached Dovecot" \
    test "$(awk -v k="$accepted_at_kill" '$1 > k + 8' "$dir/delivered.ids" | wc -l)" -ge 1
if ((fails > 0)); then
    echo "--- Postfix log (milter lines) ---"; grep -a milter "$PF/maillog" | tail -10
    echo "--- clients ---"; tail -5 "$dir/clients.out"
fi
finish
