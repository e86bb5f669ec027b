#!/usr/bin/env bash
# tests/lua/run-lua.sh T-NAME.lua - runs one miltertest script against a
# freshly started milter. The config is T-NAME.conf beside the script (with
# @VAR@ replaced from the environment) or a minimal one. If the config
# mentions @DOVECOT_..., a private Dovecot is started first (tests/lib/rig.sh).
# The script finds the socket in MILTER_SOCK and the work dir in TEST_DIR.
set -euo pipefail
script=$(readlink -f "$1")
here=$(dirname "$script")
. "$here/../lib/rig.sh"
. "$here/../lib/milter.sh"
# Scripts may restart Dovecot from their own shells: stop it by its directory.
trap 'rc=$?; milter_stop || rc=1; if [[ -d $TEST_DIR/dovecot ]]; then dovecot_stop "$TEST_DIR/dovecot"; fi; rig_cleanup; exit $rc' EXIT

export TEST_DIR=$(mktemp -d /tmp/nexthop-lua.XXXXXX)
export RIG_SH=$here/../lib/rig.sh
chmod 755 "$TEST_DIR"
conf_in=${script%.lua}.conf
if [[ -f $conf_in ]] && grep -q '@DOVECOT_' "$conf_in"; then
    dovecot_start "$TEST_DIR/dovecot" >/dev/null
fi
if [[ -f $conf_in ]]; then
    subst "$conf_in" > "$TEST_DIR/milter.conf"
else
    echo 'milter = { log = { level = "debug"; }; };' > "$TEST_DIR/milter.conf"
fi
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf"
rc=0
stdbuf -oL miltertest -s "$script" || rc=$?
if (( rc != 0 )); then
    echo "--- milter log ---"; tail -50 "$MILTER_LOG"
fi
milter_stop || rc=1
exit $rc
