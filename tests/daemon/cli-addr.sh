#!/usr/bin/env bash
# tests/daemon/cli-addr.sh - what the command line does with recipients
# the milter refuses or treats apart (issue 14):
#   -t '<test>'        refused like the milter refuses it (501 5.1.3), exit 64
#   -t '<Postmaster>'  validation: none, next-hop: false (left to the MTA),
#                      even when a catch-all next-hop rule would match
#   -t with a quoted-pair escaping a non-ASCII character or a bidi override: refused
#   -q REMOTE rcpt test: refused without contacting the remote (exit 1)
# Must not: contact any remote (the ones configured listen nowhere).
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
harness_init cli-addr
dir=$TEST_DIR

cat > "$dir/t.conf" <<'CONF'
remote = { store = { address = "127.0.0.1"; port = 1; protocol = "lmtp"; lookup = true; tls = { enable = false; }; }; };
list = { local = [ "example.org" ]; };
session = { rcpt = { lookup = { addresses = "remote/store"; }; }; };
queue = { outbound = { next-hop = ( { if = "rcpt-domain"; in-list = "list/local"; then = "store"; },
                                    { else = "store"; } ); }; };
routing = { action = "relay"; };
CONF
run() { "$NEXTHOP_BIN" -c "$dir/t.conf" "$@" >"$dir/out" 2>"$dir/err"; echo $?; }

check "-t '<test>': exit 64" eq "$(run -t '<test>')" 64
check "-t '<test>': says the milter answers 501 5.1.3, and why" \
    grep -q 'not an address (the milter answers 501 5.1.3): recipient without a domain' "$dir/err"
check "-t '<test>': prints no decision" test ! -s "$dir/out"

for pm in '<Postmaster>' '<postmaster>' '<POSTMASTER>'; do
    check "-t '$pm': exit 0" eq "$(run -t "$pm")" 0
    check "-t '$pm': not validated, left to the MTA" \
        diff -u <(printf 'validation: none\nnext-hop: false\naction: header\nmode: enforce\non-error: tempfail\n') "$dir/out"
done
check "-t '<alice@example.org>' (control): validated and routed" eq "$(run -t '<alice@example.org>')" 0
check "-t '<alice@example.org>' (control): the output" \
    diff -u <(printf 'validation: remote/store\nnext-hop: store\naction: relay\nmode: enforce\non-error: tempfail\n') "$dir/out"

check "-t with a quoted-pair escaping a non-ASCII character: exit 64" eq "$(run -t '"test\©"@example.org')" 64
check "-t with a bidi override: exit 64" eq "$(run -t $'<ali\u202ece@example.org>')" 64
check "-t with a bidi override: the reason names the code point" grep -q 'U+202E' "$dir/err"

check "-q store rcpt test: refused, the remote never asked (exit 1)" eq "$(run -q store rcpt test)" 1
check "-q store rcpt test: says why" grep -q 'recipient without a domain' "$dir/err"

finish
