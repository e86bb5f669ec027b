#!/usr/bin/env bash
# tests/daemon/catchall.sh - a domain whose host accepts any local part is
# learned as a catch-all after one probe, and its recipients are no longer
# probed one by one; a normal domain keeps being validated.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init catchall
port=$(rig_free_port)
bg_start fake python3 "$here/../lib/fakeserver.py" --port "$port" --log "$TEST_DIR/fake.log" normal >/dev/null 2>&1
rig_wait_port "$port" 10 || { bad "fake server did not start"; exit 1; }
export FAKE_LOG=$TEST_DIR/fake.log
cat > "$TEST_DIR/milter.conf" <<CONF
milter = { log = { level = "debug"; }; };
remote = { fake = { address = "127.0.0.1"; port = $port; protocol = "smtp"; lookup = true;
                    timeout = "3s"; tls = { enable = false; }; }; };
session = { rcpt = { lookup = { addresses = "remote/fake"; }; }; };
CONF
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1
stdbuf -oL miltertest -s "$here/catchall.lua"; rc=$?
check "the miltertest script passed (exit $rc)" test "$rc" -eq 0
probes=$(grep -c 'RCPT TO:<[^>]*@catchall\.test>' "$TEST_DIR/fake.log")
if [[ $probes == 2 ]]; then
    ok "catch-all domain: 2 RCPTs reached the remote (first address + random probe) for 4 recipients"
else
    bad "catch-all domain: $probes RCPTs reached the remote"; grep RCPT "$TEST_DIR/fake.log"
fi
grep -q 'RCPT TO:<nexthop-probe-[0-9a-f]*@normal\.test>' "$TEST_DIR/fake.log" \
    && ok "a normal domain was probed once with a random local part" || bad "no probe for normal.test"
grep -q 'catchall.test accepts any local part' "$MILTER_LOG" && ok "catch-all logged" || bad "not logged"
(( fails == 0 )) || tail -30 "$MILTER_LOG"
finish
