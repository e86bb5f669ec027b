#!/usr/bin/env bash
# tests/daemon/reload.sh - SIGUSR1 reload: a good config is swapped in, a
# message in flight keeps the config it started with, a broken config is
# logged with FILE:LINE and the old one keeps running.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init reload

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
check "the miltertest script passed (exit $rc)" test "$rc" -eq 0
if (( rc != 0 )); then echo "--- milter log ---"; tail -40 "$MILTER_LOG"; fi
grep -q "reload failed, keeping the running config: $TEST_DIR/milter.conf:5: unknown key 'bogus'" "$MILTER_LOG" \
    && ok "broken reload logged with FILE:LINE" || bad "broken reload not logged"
milter_alive && ok "milter still running" || bad "milter died"
finish
