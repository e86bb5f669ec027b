#!/usr/bin/env bash
# tests/daemon/reload-cache.sh - a reload keeps what the remotes learned.
# With a real Dovecot LMTP as the store: recipients are looked up and
# cached, Dovecot is stopped, and the config is reloaded (SIGUSR1) with an
# unrelated change. The known recipient is still accepted, the unknown one
# still refused, from the cache; only a never-seen one gets 451. A reload
# that changes the remote (its timeout) starts it afresh: the known
# recipient is now a 451 too. With Dovecot back, a reload asks the store
# nothing for recipients it already knows.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init reload-cache

dovecot_start "$TEST_DIR/dovecot" >/dev/null || exit 1
conf() { # HEADER TIMEOUT
    cat <<CONF
milter = { log = { level = "info"; }; };
remote = { store = { address = "127.0.0.1"; port = $DOVECOT_LMTP_PORT; protocol = "lmtp";
                     lookup = true; catch-all = false; timeout = "$2"; tls = { enable = false; }; }; };
session = { rcpt = { lookup = { addresses = "remote/store"; }; }; };
routing = { header = "$1"; };
CONF
}
conf X-One 2s > "$TEST_DIR/milter.conf"
milter_start "$TEST_DIR/m" "$TEST_DIR/milter.conf" || exit 1

# rcpt ADDRESS...: one milter session, prints the reply code of each RCPT (250 = continue)
rcpt() {
    PYTHONPATH=$here python3 - "$MILTER_SOCK" "$@" <<'PY'
import sys
from milterclient import Milter
m = Milter(sys.argv[1])
m.start()
m.mail("<sender@example.net>", qid="RC1")
for a in sys.argv[2:]:
    r = m.rcpt("<%s>" % a, qid="RC1")
    print(r.code if r.code else {"continue": "250"}.get(r.kind, r.kind))
m.abort()
m.close()
PY
}
reloads_ok() { grep -c 'reload: .* loaded' "$MILTER_LOG"; }
reload_and_wait() { # N: wait until the Nth successful reload is logged
    milter_reload
    wait_for 10 test "$(reloads_ok)" -ge "$1"
}
lookups_of() { grep -c "lookup: .*rcpt=<$1> .*source=remote" "$MILTER_LOG"; }

check "known and unknown recipients answered by Dovecot" \
    eq "$(rcpt alice@dovecot.test nobody@dovecot.test | tr '\n' ' ')" "250 550 "

conf X-Two 2s > "$TEST_DIR/milter.conf"
reload_and_wait 1 || bad "first reload not logged"
check "a reload with Dovecot up asks it nothing it already knows" \
    eq "$(rcpt alice@dovecot.test nobody@dovecot.test | tr '\n' ' ')$(lookups_of alice@dovecot.test)" "250 550 1"

dovecot_stop "$TEST_DIR/dovecot"
conf X-Three 2s > "$TEST_DIR/milter.conf"
reload_and_wait 2 || bad "second reload not logged"
check "reload during an outage: known accepted, unknown refused, never-seen 451" \
    eq "$(rcpt alice@dovecot.test nobody@dovecot.test bob@dovecot.test | tr '\n' ' ')" "250 550 451 "

conf X-Three 3s > "$TEST_DIR/milter.conf"
reload_and_wait 3 || bad "third reload not logged"
check "a changed remote starts afresh: known recipient now 451" \
    eq "$(rcpt alice@dovecot.test | tr '\n' ' ')" "451 "
check "the log says why the cache went" grep -q 'remote=store settings changed' "$MILTER_LOG"

milter_alive && ok "milter still running" || bad "milter died"
(( fails == 0 )) || { echo "--- milter log ---"; tail -30 "$MILTER_LOG"; }
finish
