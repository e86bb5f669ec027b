#!/usr/bin/env bash
# tests/e2e/authsvc.sh - auth-service end to end: a real Postfix smtpd does
# SMTP AUTH through Cyrus SASL (pwcheck_method: saslauthd) whose
# saslauthd_path is the milter's auth-service socket; the milter checks the
# password against a real Dovecot over IMAPS.
#   alice / secret       -> 235, and she may then relay through Postfix
#   alice / wrong        -> 535
#   bob with LOGIN       -> 235
#   right password again -> 235 from the (hashed) cache, even with Dovecot gone
#   another password while Dovecot is down -> 454 (temporary), never accepted
# and no password ever shows up in a log, and /metrics counts the answers.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/harness.sh"
. "$here/../lib/e2e.sh"
harness_init auth
dir=$TEST_DIR
rig_install >/dev/null || { bad "rig_install"; exit 1; }
have_plain() { ls /usr/lib/*/sasl2/libplain.so* >/dev/null 2>&1; }
if ! have_plain; then
    _rig_with_lock install _rig_apt_install libsasl2-modules >/dev/null 2>&1
    have_plain || missing libsasl2-modules "no Cyrus SASL PLAIN module"
fi
postconf -a | grep -qx cyrus || { bad "this Postfix has no Cyrus SASL support"; exit 1; }

# The socket lives in a directory Postfix (user postfix) can reach; the
# socket itself gets milter.socket-mode 0660 and group postfix.
# Cyrus reads smtpd.conf from cyrus_sasl_config_path; Debian's Postfix
# reads it from $config_directory/sasl whatever that says: use that place.
sasl=$dir/postfix/sasl
mkdir -p "$dir/run" "$sasl"
chgrp postfix "$dir/run" && chmod 0750 "$dir/run"
chmod 0755 "$dir"
export AUTH_MUX=$dir/run/mux STATS_PORT
STATS_PORT=$(rig_free_port)
cat > "$sasl/smtpd.conf" <<EOF
pwcheck_method: saslauthd
saslauthd_path: $AUTH_MUX
mech_list: PLAIN LOGIN
EOF
chmod 0644 "$sasl/smtpd.conf"
cat > "$dir/milter.conf.in" <<'CONF'
milter = { group = "postfix"; log = { level = "info"; }; };
stats = { listen = "127.0.0.1:@STATS_PORT@"; };
remote = { imap = {
  address = "127.0.0.1"; port = @DOVECOT_IMAPS_PORT@; protocol = "imap"; lookup = true;
  timeout = "3s"; tls = { implicit = true; allow-invalid-certs = true; };
}; };
auth-service = { socket = "@AUTH_MUX@"; lookup = "remote/imap"; };
CONF
e2e_start "$dir" "$dir/milter.conf.in" \
    "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = cyrus" "smtpd_sasl_path = smtpd" \
    "cyrus_sasl_config_path = $sasl" "smtpd_sasl_security_options = noanonymous" \
    "smtpd_relay_restrictions = permit_sasl_authenticated, reject" "mynetworks = 127.0.0.2/32" \
    || { bad "rig did not start"; exit 1; }
[[ $(stat -c '%a %G' "$AUTH_MUX") == "660 postfix" ]] && ok "auth-service socket is 0660, group postfix" \
    || bad "auth-service socket: $(stat -c '%a %U:%G' "$AUTH_MUX" 2>&1)"

auth() { # MECH USER PASSWORD -> swaks output in $dir/auth.out; echoes the AUTH reply code
    swaks --server 127.0.0.1 --port "$POSTFIX_PORT" --auth "$1" --auth-user "$2" --auth-password "$3" \
        --quit-after AUTH --timeout 30 > "$dir/auth.out" 2>&1
    grep -E '^<[-~*]+ +[0-9]{3}' "$dir/auth.out" | grep -vE ' (221|250)[ -]' | tail -1 | grep -oE '[0-9]{3}' | head -1
}
expect_auth() { # WHAT WANT MECH USER PASSWORD
    local what=$1 want=$2 got; shift 2
    got=$(auth "$@")
    [[ $got == "$want" ]] && ok "$what: $got" || { bad "$what: got '$got', wanted $want"; tail -8 "$dir/auth.out"; }
}

expect_auth "alice/secret AUTH PLAIN" 235 PLAIN alice@dovecot.test secret
expect_auth "alice/wrong AUTH PLAIN" 535 PLAIN alice@dovecot.test 'Wr0ng-Passw0rd-77'
expect_auth "bob/secret AUTH LOGIN" 235 LOGIN bob@dovecot.test secret
expect_auth "nobody/secret" 535 PLAIN nobody@dovecot.test secret

# a malformed request (a field longer than saslauthd allows) gets "NO" and
# the service goes on answering
bad_reply=$(python3 - "$AUTH_MUX" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(b"\x04\x01" + b"x" * 1025)
print(s.recv(100)[2:].decode(errors="replace"))
PY
)
[[ $bad_reply == "NO bad request" ]] && ok "oversized request: '$bad_reply'" || bad "oversized request got '$bad_reply'"
expect_auth "still serving after a bad request" 235 PLAIN alice@dovecot.test secret

# authenticated, alice may relay to the outside world (smtp-sink)
send_mail alice@dovecot.test someone@example.com "auth-relay" --auth PLAIN \
    --auth-user alice@dovecot.test --auth-password secret; rc=$?
[[ $rc == 0 ]] && ok "authenticated relay accepted" || { bad "authenticated relay: swaks exit $rc"; tail -5 "$E2E_DIR/swaks.out"; }
send_mail x@example.net someone@example.com "anon-relay"
grep -q '<\*\* *554 5.7.1' "$E2E_DIR/swaks.out" && ok "unauthenticated relay refused" || bad "unauthenticated relay not refused"

# Dovecot gone: the right password still works from the hashed cache, a
# different one is refused (never accepted on an error)
dovecot_stop "$E2E_DIR/dovecot"
expect_auth "Dovecot down: alice/secret from the cache" 235 PLAIN alice@dovecot.test secret
expect_auth "Dovecot down: a password not in the cache is a temporary failure" 454 PLAIN alice@dovecot.test 'An0ther-Passw0rd-88'
grep -q 'user=<alice@dovecot.test> remote=imap kind=auth result=error' "$MILTER_LOG" \
    && ok "lookup error logged" || bad "no lookup error in the milter log"

scrape=$(exec 3<>"/dev/tcp/127.0.0.1/$STATS_PORT" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3)
for want in 'result="ok"} 5' 'result="no"} 2' 'result="error"} 1' 'result="bad-request"} 1'; do
    grep -q "^nexthop_auth_service_requests_total{$want\$" <<<"$(tr -d '\r' <<<"$scrape")" \
        && ok "metrics: auth_service_requests_total{$want}" || bad "metrics lack auth_service_requests_total{$want}"
done

for pw in Wr0ng-Passw0rd-77 An0ther-Passw0rd-88; do
    if grep -rqs -- "$pw" "$MILTER_LOG" "$E2E_DIR/postfix/maillog" "$E2E_DIR/dovecot/dovecot.log"; then
        bad "password $pw appears in a log"
    else
        ok "password $pw appears in no log"
    fi
done
grep -q 'secret' "$MILTER_LOG" && bad "the word secret appears in the milter log" || ok "'secret' is in no milter log line"

if (( fails > 0 )); then echo "--- milter log ---"; tail -30 "$MILTER_LOG"; echo "--- maillog ---"; tail -20 "$E2E_DIR/postfix/maillog"; fi
finish
