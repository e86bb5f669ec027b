#!/usr/bin/env bash
# tests/daemon/reload.sh - SIGUSR1 reload: a good config is swapped in, a
# message in flight keeps the config it started with, a broken config is
# logged with FILE:LINE and the old one keeps running.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/rig.sh"
. "$here/../lib/milter.sh"
export TEST_DIR=$(mktemp -d /tmp/nexthop-reload.XXXXXX)
chmod 755 "$TEST_DIR"
trap 'milter_stop; rig_cleanup; rm -rf "$TEST_DIR"' EXIT

conf() { # HEADER-NAME [extra line]
    cat <<CONF
milter = { log = { level = "debug"; }; };
remote = { store = { address = "127.0.0.1"; port = 1; protocol = "lmtp"; tls = { enable = false; }; }; };
queue = { outbound = { next-hop = "store"; }; };
routing = { action = "header"; header = "$1"; };
${2:-}
CONF
}
conf X-Old > "$TEST_DIR/milter.conf"
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || exit 1
export CONF_FILE=$TEST_DIR/milter.conf
stdbuf -oL miltertest -s "$here/reload.lua"; rc=$?
if (( rc != 0 )); then echo "--- milter log ---"; tail -40 "$MILTER_LOG"; fi
grep -q "reload failed, keeping the running config: $TEST_DIR/milter.conf:5: unknown key 'bogus'" "$MILTER_LOG" \
    && echo "PASS: broken reload logged with FILE:LINE" || { echo "FAIL: broken reload not logged"; rc=1; }
kill -0 "$MILTER_PID" && echo "PASS: milter still running" || { echo "FAIL: milter died"; rc=1; }
exit $rc
