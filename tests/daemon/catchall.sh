#!/usr/bin/env bash
# tests/daemon/catchall.sh - a domain whose host accepts any local part is
# learned as a catch-all after one probe, and its recipients are no longer
# probed one by one; a normal domain keeps being validated.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/rig.sh"
. "$here/../lib/milter.sh"
export TEST_DIR=$(mktemp -d /tmp/nexthop-catchall.XXXXXX)
chmod 755 "$TEST_DIR"
fake_pid=
trap 'milter_stop; [[ -n $fake_pid ]] && kill $fake_pid; rig_cleanup' EXIT
port=$(rig_free_port)
python3 "$here/../lib/fakeserver.py" --port "$port" --log "$TEST_DIR/fake.log" normal >/dev/null 2>&1 &
fake_pid=$!
rig_wait_port "$port" 10 || { echo "FAIL: fake server"; exit 1; }
cat > "$TEST_DIR/milter.conf" <<CONF
milter = { log = { level = "debug"; }; };
remote = { fake = { address = "127.0.0.1"; port = $port; protocol = "smtp"; lookup = true;
                    timeout = "3s"; tls = { enable = false; }; }; };
session = { rcpt = { lookup = { addresses = "remote/fake"; }; }; };
CONF
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1
stdbuf -oL miltertest -s "$here/catchall.lua"; rc=$?
probes=$(grep -c 'RCPT TO:<[^>]*@catchall\.test>' "$TEST_DIR/fake.log")
if [[ $probes == 2 ]]; then
    echo "PASS: catch-all domain: 2 RCPTs reached the remote (first address + random probe) for 4 recipients"
else
    echo "FAIL: catch-all domain: $probes RCPTs reached the remote"; grep RCPT "$TEST_DIR/fake.log"; rc=1
fi
grep -q 'RCPT TO:<nexthop-probe-[0-9a-f]*@normal\.test>' "$TEST_DIR/fake.log" \
    && echo "PASS: a normal domain was probed once with a random local part" || { echo "FAIL: no probe for normal.test"; rc=1; }
grep -q 'catchall.test accepts any local part' "$MILTER_LOG" && echo "PASS: catch-all logged" || { echo "FAIL: not logged"; rc=1; }
(( rc == 0 )) || tail -30 "$MILTER_LOG"
exit $rc
