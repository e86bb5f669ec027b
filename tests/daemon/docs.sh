#!/usr/bin/env bash
# tests/daemon/docs.sh - the manual pages: they render without a single
# groff warning, milter-nexthop(8) documents every option the program
# accepts, and `cmake --install` (with DESTDIR) lays out the binary, the
# man pages, the example config and the systemd unit where they belong.
# (That conf(5) and README cover every schema key is tests/unit/test_schema_docs.c.)
# And the code says what it is: every .c/.h under common/ and milter/ opens
# with a header comment that names the file ("/*", " * name.c - what it is
# for") and holds a "Must not:" line (its boundary), and README's "How the
# code is laid out" names every layer folder of common/.
# Must not: install anything outside a temporary DESTDIR.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
src=${NEXTHOP_SRC:-$here/../..}
build=${NEXTHOP_BUILD:-$src/build}
bin=${NEXTHOP_BIN:-$build/milter/milter-nexthop}
. "$here/../lib/harness.sh"
harness_init docs
dir=$TEST_DIR

# every source file opens with its header: the file's name, and what it must not do
bare=()
nfiles=0
while IFS= read -r -d '' f; do
    nfiles=$((nfiles + 1))
    awk -v name="$(basename "$f")" '
        NR == 1 { if ($0 != "/*") exit 1; next }
        NR == 2 { if (index($0, " * " name " - ") != 1) exit 1; next }
        /^ \*\/$/ { closed = 1; exit }
        /^ \*[ ]+Must not: / { must = 1 }
        END { exit !(closed && must) }' "$f" || bare+=("${f#"$src"/}")
done < <(find "$src/common" "$src/milter" -name '*.[ch]' -print0 | sort -z)
if [[ $nfiles -lt 50 ]]; then
    bad "found only $nfiles source files under $src/common and $src/milter"
elif [[ ${#bare[@]} -eq 0 ]]; then
    ok "all $nfiles files under common/ and milter/ open with a header naming the file and a \"Must not:\" line"
else
    bad "${#bare[@]} file(s) lack a header comment \"/* <name> - ...\" with a \"Must not:\" line: ${bare[*]}"
fi
# README's picture of the layers names every layer folder there is
sed -n '/^## How the code is laid out/,/^## /p' "$src/README.md" > "$dir/layout.md"
if [[ ! -s $dir/layout.md ]]; then
    bad "README.md has no section \"How the code is laid out\""
else
    unnamed=()
    for d in "$src"/common/*/; do
        d=$(basename "$d")
        grep -q "common/$d/" "$dir/layout.md" || unnamed+=("common/$d/")
    done
    [[ ${#unnamed[@]} -eq 0 ]] && ok "README's \"How the code is laid out\" names every layer folder of common/" \
        || bad "README's \"How the code is laid out\" does not name: ${unnamed[*]}"
fi

need groff groff-base

pages=("$src/contrib/milter-nexthop.8" "$src/contrib/milter-nexthop.conf.5")
for page in "${pages[@]}"; do
    name=$(basename "$page")
    if [[ ! -f $page ]]; then bad "$name is missing"; continue; fi
    # -ww: every warning; -z: no output, only diagnostics on stderr
    if groff -man -ww -z "$page" 2>"$dir/warn" && [[ ! -s $dir/warn ]]; then
        ok "$name renders without warnings"
    else
        bad "$name: groff warnings:"; cat "$dir/warn"
    fi
    # and it renders to text with the sections a reader looks for
    groff -man -Tutf8 "$page" 2>/dev/null | col -b > "$dir/$name.txt"
    for section in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
        grep -q "^$section\$" "$dir/$name.txt" || bad "$name has no $section section"
    done
done

# every option in the program's usage is an entry under OPTIONS
page8=$dir/milter-nexthop.8.txt
"$bin" -h > "$dir/usage" 2>&1
mapfile -t opts < <(grep -oE -- '[[ ]-[A-Za-z]([] ]|$)' "$dir/usage" | grep -oE -- '-[A-Za-z]' | sort -u)
sed -n '/^OPTIONS$/,/^EXIT STATUS$/p' "$page8" > "$dir/options.txt"
[[ ${#opts[@]} -ge 10 ]] || bad "could not read the options from -h: $(cat "$dir/usage")"
missing=()
for o in "${opts[@]}" -h; do
    grep -Eq -- "^ {7}$o( |\$)" "$dir/options.txt" || missing+=("$o")
done
[[ ${#missing[@]} -eq 0 ]] && ok "milter-nexthop(8) documents all ${#opts[@]} options of -h (${opts[*]})" \
    || bad "milter-nexthop(8) OPTIONS lack: ${missing[*]}"
for s in "EXIT STATUS" SIGNALS FILES; do
    grep -q "^$s\$" "$page8" && ok "milter-nexthop(8) has $s" || bad "milter-nexthop(8) has no $s section"
done
grep -q 'SIGUSR1' "$page8" && grep -q '75' "$page8" && grep -q '78' "$page8" \
    && ok "milter-nexthop(8) names SIGUSR1 and the -q exit codes" || bad "SIGUSR1 or -q exit codes missing"

# cmake --install lays everything out under DESTDIR
if [[ -f $build/CMakeCache.txt ]]; then
    if DESTDIR=$dir/root cmake --install "$build" --prefix /usr >"$dir/install.log" 2>&1; then
        for f in usr/sbin/milter-nexthop usr/share/man/man8/milter-nexthop.8 \
                 usr/share/man/man5/milter-nexthop.conf.5 \
                 usr/share/doc/milter-nexthop/examples/milter-nexthop.conf \
                 usr/lib/systemd/system/milter-nexthop.service; do
            [[ -s $dir/root/$f ]] && ok "installed /$f" || { bad "cmake --install did not install /$f"; }
        done
        cmp -s "$dir/root/usr/share/man/man5/milter-nexthop.conf.5" "$src/contrib/milter-nexthop.conf.5" \
            && ok "installed conf(5) is the source page" || bad "installed conf(5) differs"
        "$dir/root/usr/sbin/milter-nexthop" -c "$dir/root/usr/share/doc/milter-nexthop/examples/milter-nexthop.conf" -n >/dev/null \
            && ok "installed binary accepts the installed example config" || bad "installed example config rejected"
    else
        bad "cmake --install failed"; cat "$dir/install.log"
    fi
else
    skip_part "no build directory at $build for the install check"
fi

finish
