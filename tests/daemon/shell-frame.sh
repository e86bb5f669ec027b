#!/usr/bin/env bash
# tests/daemon/shell-frame.sh - every daemon and e2e test script stands in
# the shared frame, so none drifts back to a hand-rolled temp dir, trap and
# PASS/FAIL: each tests/daemon/*.sh and tests/e2e/*.sh sources
# tests/lib/harness.sh, calls harness_init, sets no EXIT trap and makes no
# temp dir of its own (the harness's trap stops and judges the milters and
# removes TEST_DIR), and ends with finish. The rule is first shown to catch
# a hand-rolled script, so it cannot pass by matching nothing.
# Must not: run the scripts it reads, or write outside its TEST_DIR.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init shell-frame
tests=$(readlink -f "$here/..")

# frame_faults FILE: what FILE lacks of the frame, one line each (none: it is in it)
frame_faults() {
    local f=$1 last
    grep -qE '^(\.|source) +"?\$here/\.\./lib/harness\.sh"?$' "$f" || echo "does not source tests/lib/harness.sh"
    grep -qE '^harness_init [A-Za-z0-9_-]+$' "$f" || echo "does not call harness_init NAME"
    grep -E '^[[:space:]]*trap ' "$f" | sed 's/[[:space:]]#.*//' | grep -qE '[[:space:]](EXIT|0)([[:space:]]|$)' &&
        echo "sets its own EXIT trap (the harness's is lost)"
    grep -qE 'mktemp +(-[a-z]*d|--directory)' "$f" && echo "makes its own temp dir (TEST_DIR is the harness's)"
    last=$(grep -vE '^[[:space:]]*(#|$)' "$f" | tail -n 1)
    [[ $last == finish || $last == "finish "* ]] || echo "does not end with finish (last line: $last)"
}

# the rule catches a script in the old shape (@...@: so this file does not match itself)
sed 's/@mktemp@/mktemp/; s/@trap@/trap/' >"$TEST_DIR/old-shape.sh" <<'EOF'
#!/usr/bin/env bash
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/check.sh"
dir=$(@mktemp@ -d /tmp/nexthop-old.XXXXXX)
@trap@ 'rm -rf "$dir"' EXIT
check "something" true
echo "old-shape: $fails failure(s)"
exit $(( fails > 0 ))
EOF
check "the rule finds all five faults of a hand-rolled script" \
    eq "$(frame_faults "$TEST_DIR/old-shape.sh" | wc -l)" 5

scripts=("$tests"/daemon/*.sh "$tests"/e2e/*.sh)
if ((${#scripts[@]} < 30)); then
    bad "found only ${#scripts[@]} scripts under $tests/daemon and $tests/e2e"
fi
outside=0
for f in "${scripts[@]}"; do
    faults=$(frame_faults "$f")
    [[ -z $faults ]] && continue
    outside=$((outside + 1))
    bad "${f#"$tests"/}: $(tr '\n' ';' <<<"$faults" | sed 's/;$//; s/;/; /g')"
done
((outside == 0)) && ok "all ${#scripts[@]} daemon and e2e scripts source the harness, call harness_init, and end with finish"
finish
