#!/usr/bin/env bash
# tests/daemon/systemd.sh - contrib/milter-nexthop.service: `systemd-analyze
# verify` accepts it without a single complaint (its man pages resolve), its
# offline security exposure stays low, it has the settings an administrator
# relies on, and its ExecStart/ExecReload command lines work when run as an
# unprivileged user (systemd is not PID 1 in a container, so the commands
# are run by hand with setpriv, in a directory standing in for /run).
# Must not: install or start the unit on this machine.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
src=${NEXTHOP_SRC:-$here/../..}
bin=$(readlink -f "${NEXTHOP_BIN:-$src/build/milter/milter-nexthop}")
unit=$src/contrib/milter-nexthop.service
. "$here/../lib/harness.sh"
harness_init systemd
dir=$TEST_DIR

need systemd-analyze systemd
systemd-analyze --version >/dev/null 2>&1 || missing systemd "systemd-analyze does not run; unit not verified"
[[ -f $unit ]] || { bad "$unit is missing"; exit 1; }

# The unit names /usr/sbin/milter-nexthop; verify a copy that points at the
# build, with its Documentation= man pages on MANPATH.
mkdir -p "$dir/unit" "$dir/man/man8" "$dir/man/man5"
cp "$src/contrib/milter-nexthop.8" "$dir/man/man8/"
cp "$src/contrib/milter-nexthop.conf.5" "$dir/man/man5/"
sed "s#/usr/sbin/milter-nexthop#$bin#g" "$unit" > "$dir/unit/milter-nexthop.service"
if (cd "$dir/unit" && MANPATH=$dir/man systemd-analyze verify ./milter-nexthop.service) >"$dir/verify" 2>&1 \
    && [[ ! -s $dir/verify ]]; then
    ok "systemd-analyze verify: no errors, no warnings"
else
    bad "systemd-analyze verify complained:"; cat "$dir/verify"
fi
# the check itself can fail: a misspelt key is reported
sed 's/^ProtectSystem=/ProtectSytem=/' "$dir/unit/milter-nexthop.service" > "$dir/unit/broken.service"
(cd "$dir/unit" && MANPATH=$dir/man systemd-analyze verify ./broken.service) 2>&1 | grep -q "Unknown key" \
    && ok "verify notices a misspelt key (the check can fail)" || bad "verify missed a misspelt key"

# exposure 0-10 (threshold is tenths): hardened units score well under 2.0
if systemd-analyze security --offline=yes --threshold=20 "$dir/unit/milter-nexthop.service" >"$dir/security" 2>&1; then
    ok "security exposure: $(grep -o 'Overall exposure level.*' "$dir/security")"
else
    bad "security exposure too high or not measurable:"; tail -5 "$dir/security"
fi

want=(
    '^User=milter-nexthop$' '^RuntimeDirectory=milter-nexthop( |$)' '^ExecStart=[^ ]*milter-nexthop .*-f( |$)'
    '^ExecReload=/bin/kill -USR1 \$MAINPID$' '^NoNewPrivileges=yes$' '^ProtectSystem=strict$'
    '^ProtectHome=yes$' '^PrivateTmp=yes$' '^PrivateDevices=yes$' '^CapabilityBoundingSet=$'
    '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$' '^WantedBy=multi-user.target$'
)
for re in "${want[@]}"; do
    grep -Eq "$re" "$unit" && ok "unit matches /$re/" || bad "unit lacks $re"
done

# Run the unit's own command lines as an unprivileged user, the way
# systemd would (User=, RuntimeDirectory=, UMask=0007).
if ! command -v setpriv >/dev/null; then
    skip_part "setpriv missing; unit command lines not run"
    finish
fi
run=$dir/run/milter-nexthop
mkdir -p "$run" && chown nobody "$run" && chmod 0750 "$run"
chmod 0755 "$dir" "$dir/run"
cat > "$dir/milter-nexthop.conf" <<CONF
milter = { socket = "unix:$run/milter.sock"; log = { level = "info"; }; };
CONF
chmod 0644 "$dir/milter-nexthop.conf"
cmdline() { # KEY: the unit's command lines for KEY, with our paths
    sed -n "s/^$1=//p" "$unit" | sed "s#/usr/sbin/milter-nexthop#$bin#g; s#/etc/milter-nexthop.conf#$dir/milter-nexthop.conf#g"
}
as_unit_user() { (umask 0007; exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"); }
pre=$(cmdline ExecStartPre)
as_unit_user $pre >"$dir/pre.out" 2>&1 && ok "ExecStartPre ($pre) passes" || { bad "ExecStartPre failed"; cat "$dir/pre.out"; }
start=$(cmdline ExecStart)
(umask 0007; exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- $start) >"$dir/milter.log" 2>&1 &
pid=$!
milter_track "$pid" "$dir/milter.log"
wait_log "$dir/milter.log" "milter-nexthop\\[$pid\\]: info: started: "
if [[ -S $run/milter.sock ]] && [[ $(stat -c %U "$run/milter.sock") == nobody ]]; then
    ok "ExecStart as nobody: socket $(stat -c '%A %U' "$run/milter.sock")"
else
    bad "ExecStart did not create the socket as nobody:"; cat "$dir/milter.log"
fi
# ExecReload lines, $MAINPID being the daemon (setpriv execs it, so $! is it)
while read -r line; do
    line=${line//\$MAINPID/$pid}
    $line >>"$dir/reload.out" 2>&1 || bad "ExecReload line failed: $line"
done < <(cmdline ExecReload)
wait_log "$dir/milter.log" 'reload: ' && ok "ExecReload reloads the config" || { bad "no reload logged"; cat "$dir/milter.log"; }
milter_stop "$pid" && ok "SIGTERM (systemctl stop) exits 0" || bad "SIGTERM (systemctl stop): $MILTER_STOP_WHY"

finish
