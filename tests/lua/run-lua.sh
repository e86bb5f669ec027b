#!/usr/bin/env bash
# tests/lua/run-lua.sh T-NAME.lua - runs one miltertest script against a
# freshly started milter (tests/lib/harness.sh: temp dir, the milter's exit
# status judged at the end). The config is T-NAME.conf beside the script
# (with @VAR@ replaced from the environment) or a minimal one. If the config
# mentions @DOVECOT_..., a private Dovecot is started first (tests/lib/rig.sh).
# The script finds the socket in MILTER_SOCK, the milter's log in MILTER_LOG
# and the work dir in TEST_DIR.
set -uo pipefail
script=$(readlink -f "$1")
here=$(dirname "$script")
name=$(basename "$script" .lua)
. "$here/../lib/harness.sh"
harness_init "lua-$name"
export RIG_SH=$here/../lib/rig.sh
need miltertest miltertest
# Scripts may restart Dovecot from their own shells: stop it by its directory.
stop_dovecot() { [[ ! -d $TEST_DIR/dovecot ]] || dovecot_stop "$TEST_DIR/dovecot"; }
at_exit stop_dovecot

conf_in=${script%.lua}.conf
if [[ -f $conf_in ]] && grep -q '@DOVECOT_' "$conf_in"; then
    need dovecot dovecot-core
    dovecot_start "$TEST_DIR/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }
fi
if [[ -f $conf_in ]]; then
    subst "$conf_in" > "$TEST_DIR/milter.conf" || exit 1
else
    echo 'milter = { log = { level = "debug"; }; };' > "$TEST_DIR/milter.conf"
fi
milter_start "$TEST_DIR" "$TEST_DIR/milter.conf" || { bad "the milter did not start"; exit 1; }
rc=0
stdbuf -oL miltertest -s "$script" || rc=$?
check "$name.lua passed (miltertest exit $rc)" test "$rc" -eq 0
if (( rc != 0 )); then
    echo "--- milter log ---"; tail -50 "$MILTER_LOG"
fi
finish
