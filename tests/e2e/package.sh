#!/usr/bin/env bash
# tests/e2e/package.sh - the Debian package, on this machine: `cpack -G DEB`
# (with the project's CPack config, output in a temp dir) makes
# milter-nexthop_<version>_<arch>.deb with the right contents, control fields,
# conffile and computed library dependencies; `dpkg -i` installs it and
# creates the system user and group; the installed binary answers -V and -n
# on the installed config and starts as the unit would run it; `systemd-analyze
# verify` accepts the installed unit; an upgrade keeps a locally changed
# conffile; remove keeps the config and the user, purge leaves nothing
# (files, unit state, user, group).
# Must not: run when the package, its user, group or files are already on the
# machine (it would take them away), or leave anything behind, even when a
# check or a maintainer script fails (the EXIT trap purges and cleans up).
# Label e2e: runs alone, since it installs a system package.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
src=${NEXTHOP_SRC:-$here/../..}
build=${NEXTHOP_BUILD:-$src/build}
. "$here/../lib/harness.sh"
harness_init package
dir=$TEST_DIR

pkg=milter-nexthop
unit=/usr/lib/systemd/system/$pkg.service
# everything of the package outside dpkg's own file list
extras=(/etc/$pkg.conf /etc/systemd/system/$pkg.service
    /etc/systemd/system/multi-user.target.wants/$pkg.service
    /var/lib/systemd/deb-systemd-helper-enabled/$pkg.service
    /var/lib/systemd/deb-systemd-helper-enabled/$pkg.service.dsh-also
    /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/$pkg.service
    /var/lib/systemd/deb-systemd-helper-masked/$pkg.service
    /var/lib/$pkg /run/$pkg)

rig_install || { bad "rig_install (dpkg-dev, file) failed"; exit 1; }
[[ -f $build/CPackConfig.cmake ]] || { bad "no $build/CPackConfig.cmake (configure the build first)"; exit 1; }

# One run of this test at a time on the machine (other worktrees run it too).
mkdir -p "$RIG_LOCK_DIR"
exec {lockfd}>>"$RIG_LOCK_DIR/milter-nexthop-package-test.lock"
flock -w 900 "$lockfd" || { bad "another package test holds the lock"; exit 1; }

present=()
[[ $(dpkg-query -W -f '${db:Status-Status}' $pkg 2>/dev/null) =~ ^(|not-installed)$ ]] ||
    present+=("package $pkg (dpkg -P $pkg)")
getent passwd $pkg >/dev/null && present+=("user $pkg")
getent group $pkg >/dev/null && present+=("group $pkg")
for f in "${extras[@]}" /usr/sbin/$pkg $unit; do
    [[ -e $f || -L $f ]] && present+=("$f")
done
if [[ ${#present[@]} -gt 0 ]]; then
    bad "this machine already has: ${present[*]}; the test would remove them, so it does not run"
    exit 1
fi

cleanup() { # at exit, once the harness stopped the daemon: nothing of the package stays
    if [[ ! $(dpkg-query -W -f '${db:Status-Status}' $pkg 2>/dev/null) =~ ^(|not-installed)$ ]]; then
        echo "cleanup: purging $pkg"
        dpkg_run -P $pkg || {
            # a broken maintainer script must not leave the package behind
            echo "cleanup: purge failed; purging without the maintainer scripts"
            rm -f /var/lib/dpkg/info/$pkg.prerm /var/lib/dpkg/info/$pkg.postrm
            dpkg_run -P $pkg
        }
    fi
    getent passwd $pkg >/dev/null && { echo "cleanup: userdel $pkg"; userdel $pkg; }
    getent group $pkg >/dev/null && { echo "cleanup: groupdel $pkg"; groupdel $pkg; }
    rm -rf -- "${extras[@]}" /etc/$pkg.conf.dpkg-*
}
at_exit cleanup
trap 'exit 129' HUP   # so that the EXIT trap runs then too (INT and TERM: the harness)

# dpkg_run ARGS...: dpkg, waiting while apt or another dpkg holds its lock.
dpkg_run() {
    local end=$((SECONDS + 600)) rc
    while :; do
        dpkg "$@" </dev/null >"$dir/dpkg.out" 2>&1
        rc=$?
        cat "$dir/dpkg.out" >>"$dir/dpkg.log"
        if ((rc != 0)) && grep -Eq 'frontend lock|database is locked' "$dir/dpkg.out" && ((SECONDS < end)); then
            sleep 1
            continue
        fi
        ((rc == 0)) || cat "$dir/dpkg.out"
        return $rc
    done
}
status() { dpkg-query -W -f '${db:Status-Status}' $pkg 2>/dev/null; }
gone() { [[ ! -e $1 && ! -L $1 ]]; }

# ---------------------------------------------------------------- build
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
arch=$(dpkg --print-architecture)
deb=$dir/new/${pkg}_${version}_${arch}.deb
old=$dir/old/${pkg}_${version}~old_${arch}.deb
if cpack -G DEB -B "$dir/new" --config "$build/CPackConfig.cmake" >"$dir/cpack.log" 2>&1 &&
    cpack -G DEB -B "$dir/old" --config "$build/CPackConfig.cmake" \
        -D "CPACK_PACKAGE_VERSION=$version~old" >>"$dir/cpack.log" 2>&1; then
    ok "cpack -G DEB built $(basename "$deb") and an older $(basename "$old")"
else
    bad "cpack failed:"; cat "$dir/cpack.log"
fi
if [[ ! -f $deb || ! -f $old ]]; then
    bad "no package file: $(ls "$dir"/new "$dir"/old 2>&1 | tr '\n' ' ')"
    finish
fi

# ---------------------------------------------------------------- contents
dpkg-deb -c "$deb" | awk '{print $1, $NF}' >"$dir/contents"
for f in -rwxr-xr-x:./usr/sbin/$pkg -rw-r--r--:./etc/$pkg.conf \
    -rw-r--r--:./usr/lib/systemd/system/$pkg.service \
    -rw-r--r--:./usr/share/man/man8/$pkg.8 -rw-r--r--:./usr/share/man/man5/$pkg.conf.5 \
    -rw-r--r--:./usr/share/doc/$pkg/examples/$pkg.conf; do
    check "package holds ${f#*:} (${f%%:*})" grep -qx -- "${f%%:*} ${f#*:}" "$dir/contents"
done
n=$(grep -vc '^d' "$dir/contents")
check "package holds nothing else (6 files, has $n)" eq "$n" 6
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/sbin/$pkg >"$dir/bin" 2>/dev/null
check "packaged binary is stripped" bash -c "file '$dir/bin' | grep -q ', stripped'"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/$pkg.service >"$dir/unit"
check "packaged unit runs /usr/sbin/$pkg -f -c /etc/$pkg.conf (build configured with prefix $(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt"))" \
    grep -qx "ExecStart=/usr/sbin/$pkg -f -c /etc/$pkg.conf" "$dir/unit"
check "packaged /etc/$pkg.conf is contrib/debian/$pkg.conf" \
    bash -c "dpkg-deb --fsys-tarfile '$deb' | tar -xO ./etc/$pkg.conf | cmp -s - '$src/contrib/debian/$pkg.conf'"

field() { dpkg-deb -f "$1" "$2"; }
check "Package: $pkg" eq "$(field "$deb" Package)" $pkg
check "Version: $version" eq "$(field "$deb" Version)" "$version"
check "Architecture: $arch" eq "$(field "$deb" Architecture)" "$arch"
check "Section: mail" eq "$(field "$deb" Section)" mail
check "Maintainer: $(field "$deb" Maintainer)" test -n "$(field "$deb" Maintainer)"
check "Description: $(field "$deb" Description | head -1)" test "$(field "$deb" Description | wc -l)" -ge 3
depends=$(field "$deb" Depends)
# computed by dpkg-shlibdeps from the binary (versions from the shlibs files)
for d in libc6 libgnutls30 libconfig9 libsqlite3-0 libgsasl18; do
    check "Depends names $d (dpkg-shlibdeps)" grep -Eq "(^|, )${d//./\\.}( |,|$)" <<<"$depends"
done
# libmilter is linked from its static archive (its read/accept calls renamed, milter/quickack.c)
check "Depends does not name libmilter (linked statically)" bash -c '! grep -q libmilter <<<"$1"' _ "$depends"
check "Depends names passwd (useradd in postinst)" grep -Eq '(^|, )passwd(,|$)' <<<"$depends"
dpkg-deb -e "$deb" "$dir/control"
check "conffiles lists /etc/$pkg.conf" eq "$(cat "$dir/control/conffiles")" "/etc/$pkg.conf"
for s in postinst prerm postrm; do
    check "maintainer script $s is executable" test -x "$dir/control/$s"
done

# ------------------------------------------ cmake --install, prefix /usr/local
root=$dir/root
if DESTDIR=$root cmake --install "$build" --prefix /usr/local >"$dir/install.log" 2>&1; then
    check "cmake --install --prefix /usr/local: unit runs /usr/local/sbin/$pkg with /usr/local/etc/$pkg.conf" \
        grep -qx "ExecStart=/usr/local/sbin/$pkg -f -c /usr/local/etc/$pkg.conf" \
        "$root/usr/local/lib/systemd/system/$pkg.service"
    check "cmake --install: the unit's every command names the installed binary" \
        bash -c "! grep -E '^Exec' '$root/usr/local/lib/systemd/system/$pkg.service' | grep -v -e '/usr/local/sbin/$pkg ' -e '^ExecReload=/bin/kill '"
    check "cmake --install: /usr/local/etc/$pkg.conf is the minimal config" \
        cmp -s "$root/usr/local/etc/$pkg.conf" "$src/contrib/debian/$pkg.conf"
    echo '# changed here' >>"$root/usr/local/etc/$pkg.conf"
    cp "$root/usr/local/etc/$pkg.conf" "$dir/changed-local.conf"
    DESTDIR=$root cmake --install "$build" --prefix /usr/local >"$dir/install.log" 2>&1
    check "cmake --install again keeps a changed config" cmp -s "$root/usr/local/etc/$pkg.conf" "$dir/changed-local.conf"
else
    bad "DESTDIR=... cmake --install --prefix /usr/local failed:"; cat "$dir/install.log"
fi

# ---------------------------------------------------------------- install
if dpkg_run -i "$old"; then ok "dpkg -i $(basename "$old")"; else bad "dpkg -i failed"; fi
check "dpkg status: installed" eq "$(status)" installed
for f in /usr/sbin/$pkg /etc/$pkg.conf $unit /usr/share/man/man8/$pkg.8 \
    /usr/share/man/man5/$pkg.conf.5 /usr/share/doc/$pkg/examples/$pkg.conf; do
    check "installed $f" test -s "$f"
done
check "dpkg registered /etc/$pkg.conf as a conffile" \
    bash -c "dpkg-query -W -f '\${Conffiles}' $pkg | grep -q '^ /etc/$pkg.conf '"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd $pkg)
check "system user $pkg (uid ${uid:-none} < 1000, home ${home:-}, shell ${shell:-})" \
    test -n "${uid:-}" -a "${uid:-1000}" -lt 1000 -a "${home:-}" = /nonexistent -a "${shell:-}" = /usr/sbin/nologin
check "its primary group is the system group $pkg" eq "$(getent group "${gid:-x}" | cut -d: -f1)" $pkg
check "unit enabled (multi-user.target.wants)" test -L /etc/systemd/system/multi-user.target.wants/$pkg.service

"/usr/sbin/$pkg" -V >"$dir/V" 2>&1
check "installed -V: $(head -1 "$dir/V")" eq "$(head -1 "$dir/V")" "$pkg $version"
check "installed -V names the linked libmilter and gnutls" \
    bash -c "grep -q '^libmilter ' '$dir/V' && grep -q '^gnutls ' '$dir/V'"
out=$("/usr/sbin/$pkg" -c /etc/$pkg.conf -n 2>&1)
check "installed -n accepts the installed config ($out)" eq "$out" "/etc/$pkg.conf: ok"
out=$(setpriv --reuid=$pkg --regid=$pkg --init-groups -- /usr/sbin/$pkg -c /etc/$pkg.conf -n 2>&1)
check "user $pkg can read the config (ExecStartPre)" eq "$out" "/etc/$pkg.conf: ok"

# Start the daemon as the unit does (its ExecStart, as its user, in the
# runtime directory systemd would create) with the installed config.
install -d -o $pkg -g $pkg -m 0750 /run/$pkg
start=$(sed -n 's/^ExecStart=//p' $unit)
(umask 0007; exec setpriv --reuid=$pkg --regid=$pkg --init-groups -- $start) >"$dir/daemon.log" 2>&1 &
daemon=$!
milter_track "$daemon" "$dir/daemon.log"
wait_log "$dir/daemon.log" "milter-nexthop\\[$daemon\\]: info: started: "
check "ExecStart with the installed config listens on /run/$pkg/milter.sock" test -S /run/$pkg/milter.sock
sock=$(stat -c '%a %U %G' /run/$pkg/milter.sock 2>/dev/null)
check "socket mode and owner: ${sock:-none}" eq "$sock" "660 $pkg $pkg"
milter_stop "$daemon" && ok "daemon stops on SIGTERM with status 0" || bad "daemon on SIGTERM: $MILTER_STOP_WHY"
rm -rf /run/$pkg

if systemd-analyze verify $unit >"$dir/verify" 2>&1 && [[ ! -s $dir/verify ]]; then
    ok "systemd-analyze verify $unit: no complaint"
else
    bad "systemd-analyze verify:"; cat "$dir/verify"
fi
# the check can fail: a unit whose binary is missing is reported
sed "s#/usr/sbin/$pkg #/usr/sbin/$pkg-missing #" $unit >"$dir/broken.service"
systemd-analyze verify "$dir/broken.service" >"$dir/verify-broken" 2>&1
grep -q "/usr/sbin/$pkg-missing is not executable" "$dir/verify-broken" &&
    ok "verify reports a unit whose ExecStart binary is missing (the check can fail)" ||
    bad "verify missed a missing binary"

# ---------------------------------------------------------------- upgrade
printf '# changed here\n' >>/etc/$pkg.conf
sed -i 's#^  socket = .*#  socket = "inet:8895@127.0.0.1";#' /etc/$pkg.conf
cp /etc/$pkg.conf "$dir/changed.conf"
if dpkg_run -i "$deb"; then ok "dpkg -i $(basename "$deb") upgrades without a prompt"; else bad "upgrade failed"; fi
check "dpkg status after the upgrade: installed $version" eq "$(dpkg-query -W -f '${db:Status-Status} ${Version}' $pkg)" "installed $version"
check "upgrade keeps the locally changed /etc/$pkg.conf" cmp -s /etc/$pkg.conf "$dir/changed.conf"
check "no .dpkg-new/.dpkg-dist/.dpkg-old beside it" bash -c "! ls /etc/$pkg.conf.dpkg-* 2>/dev/null | grep -q ."
check "upgrade keeps the user (same uid)" eq "$(id -u $pkg 2>/dev/null)" "${uid:-}"
check "upgrade keeps the unit enabled" test -L /etc/systemd/system/multi-user.target.wants/$pkg.service
out=$("/usr/sbin/$pkg" -c /etc/$pkg.conf -n 2>&1)
check "-n accepts the changed config after the upgrade" eq "$out" "/etc/$pkg.conf: ok"

# ---------------------------------------------------------------- remove, purge
dpkg-query -L $pkg | grep $pkg >"$dir/files"
if dpkg_run -r $pkg; then ok "dpkg -r $pkg"; else bad "dpkg -r failed"; fi
check "after remove: status config-files" eq "$(status)" config-files
check "after remove: binary gone" gone /usr/sbin/$pkg
check "after remove: config kept" cmp -s /etc/$pkg.conf "$dir/changed.conf"
check "after remove: user and group kept" bash -c "getent passwd $pkg >/dev/null && getent group $pkg >/dev/null"
if dpkg_run -P $pkg; then ok "dpkg -P $pkg"; else bad "dpkg -P failed"; fi
check "after purge: dpkg does not know $pkg" eq "$(status)" ""
check "after purge: user $pkg gone" bash -c "! getent passwd $pkg"
check "after purge: group $pkg gone" bash -c "! getent group $pkg"
left=()
while read -r f; do gone "$f" || left+=("$f"); done < <(cat "$dir/files"; printf '%s\n' "${extras[@]}")
for f in /var/lib/dpkg/info/$pkg.*; do gone "$f" || left+=("$f"); done
check "after purge: none of the $(($(wc -l <"$dir/files") + ${#extras[@]})) paths is left${left:+ (left: ${left[*]})}" \
    eq "${#left[@]}" 0

finish
