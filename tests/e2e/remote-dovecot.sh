#!/usr/bin/env bash
# tests/e2e/remote-dovecot.sh - remote lookups through the real product
# (`milter-nexthop -c FILE -q REMOTE rcpt|vrfy|expn|auth ...`) against a
# real Dovecot (LMTP, LMTPS, IMAP, IMAPS; self-signed certificate, also
# trusted through tls.ca-file) and a private Postfix smtpd (VRFY/EXPN,
# SMTP AUTH through Dovecot SASL).
#
# Asserts exit codes a user sees (0 yes, 1 no, 75 error, 78 bad config)
# and, where the servers log it, that the exchange really used TLS.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
: "${NEXTHOP_BIN:=${NEXTHOP_BUILD:-$here/../../build}/milter/milter-nexthop}"
. "$here/../lib/harness.sh"
harness_init remote
dir=$TEST_DIR

rig_install >/dev/null || { bad "rig_install"; exit 1; }
[[ -x $NEXTHOP_BIN ]] || { bad "no binary at $NEXTHOP_BIN"; exit 1; }
dovecot_start "$dir/dovecot" >/dev/null || { bad "dovecot did not start"; exit 1; }

# remote_conf NAME PROTO PORT TLS-BLOCK [EXTRA]: one remote "r" in $dir/NAME.conf
remote_conf() {
    cat >"$dir/$1.conf" <<EOF
remote = { r = {
  address = "127.0.0.1"; port = $3; protocol = "$2"; lookup = true;
  timeout = "5s"; catch-all = false;
  tls = { $4 };
  ${5:-}
}; };
EOF
    chmod 0600 "$dir/$1.conf"
}

# q WANT-RC DESC CONF KIND ARG [PASSWORD]: runs one -q lookup, checks the exit code.
q() {
    local want=$1 desc=$2 conf=$3 kind=$4 arg=$5 rc t0
    t0=$(_rig_now_ms)
    if [[ $# -ge 6 ]]; then
        printf '%s\n' "$6" | timeout 60 "$NEXTHOP_BIN" -c "$dir/$conf.conf" -q r "$kind" "$arg" \
            >"$dir/out" 2>"$dir/err"
        rc=$?
    else
        timeout 60 "$NEXTHOP_BIN" -c "$dir/$conf.conf" -q r "$kind" "$arg" </dev/null \
            >"$dir/out" 2>"$dir/err"
        rc=$?
    fi
    if [[ $rc -eq $want ]]; then
        ok "$desc: exit $rc in $(($(_rig_now_ms) - t0)) ms $(head -c 200 "$dir/err" | tr '\n' ' ')"
    else
        bad "$desc: exit $rc, want $want: $(tr '\n' ' ' <"$dir/err")"
    fi
}

# err_has PATTERN DESC: the last command's stderr matches PATTERN (grep -E).
err_has() {
    if grep -qiE -- "$1" "$dir/err"; then ok "$2"; else bad "$2: stderr was: $(cat "$dir/err")"; fi
}

dovecot_log_count() { grep -cE -- "$1" "$DOVECOT_DIR/dovecot.log" 2>/dev/null || true; }
dovecot_knows() { # USER PASSWORD: Dovecot's passdb accepts them (it re-reads passwd-file on change)
    doveadm -c "$DOVECOT_DIR/dovecot.conf" auth test "$1" "$2" >/dev/null 2>&1
}
# ehlo_auth: the AUTH mechanisms Postfix's smtpd offers now (one line, sorted)
ehlo_auth() {
    "$RIG_PYTHON" - "$POSTFIX_PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
s.ehlo("probe.test")
print(" ".join(sorted(s.esmtp_features.get("auth", "").upper().split())))
s.quit()
EOF
}
auth_offered() { [[ $(ehlo_auth 2>/dev/null) == "$1" ]]; }

# ------------------------------------------------------------ LMTP rcpt
remote_conf lmtp-plain lmtp "$DOVECOT_LMTP_PORT" 'enable = false;'
remote_conf lmtp-starttls lmtp "$DOVECOT_LMTP_PORT" 'implicit = false; allow-invalid-certs = true;'
remote_conf lmtp-implicit lmtp "$DOVECOT_LMTPS_PORT" 'implicit = true; allow-invalid-certs = true;'
remote_conf lmtp-starttls-strict lmtp "$DOVECOT_LMTP_PORT" 'implicit = false;'
remote_conf lmtp-implicit-strict lmtp "$DOVECOT_LMTPS_PORT" 'implicit = true;'
remote_conf lmtp-plain-to-tls lmtp "$DOVECOT_LMTPS_PORT" 'enable = false;'

for mode in plain starttls implicit; do
    q 0 "lmtp $mode: rcpt alice" "lmtp-$mode" rcpt alice@dovecot.test
    q 1 "lmtp $mode: rcpt nobody" "lmtp-$mode" rcpt nobody@dovecot.test
    err_has "550 5\.1\.1" "lmtp $mode: the no carries Dovecot's 550 5.1.1"
done
q 0 "lmtp starttls: rcpt bob (angle brackets, upper-case domain)" lmtp-starttls rcpt '<bob@DOVECOT.TEST>'

# Dovecot's own LMTP unix socket, plain text (tls.enable = false)
cat >"$dir/lmtp-unix.conf" <<EOF
remote = { r = { address = "unix:$DOVECOT_DIR/base/lmtp"; protocol = "lmtp"; lookup = true;
                 catch-all = false; tls = { enable = false; }; }; };
EOF
q 0 "lmtp over a unix socket: rcpt alice" lmtp-unix rcpt alice@dovecot.test
q 1 "lmtp over a unix socket: rcpt nobody" lmtp-unix rcpt nobody@dovecot.test

q 75 "lmtp starttls: self-signed certificate refused" lmtp-starttls-strict rcpt alice@dovecot.test
err_has "certificate" "lmtp starttls: the error names the certificate"
q 75 "lmtps implicit: self-signed certificate refused" lmtp-implicit-strict rcpt alice@dovecot.test
err_has "certificate" "lmtps implicit: the error names the certificate"
if grep -q "does not match" "$dir/err"; then
    bad "lmtps implicit: 127.0.0.1 should match the certificate's IP SAN"
else
    ok "lmtps implicit: 127.0.0.1 matched the certificate's IP SAN (only the issuer is unknown)"
fi
# host name checks: the certificate names DNS:localhost and IP:127.0.0.1
remote_conf lmtps-wrong-name lmtp "$DOVECOT_LMTPS_PORT" 'server-name = "wrong.example";'
remote_conf lmtps-localhost lmtp "$DOVECOT_LMTPS_PORT" 'server-name = "localhost";'
q 75 "lmtps: tls.server-name not in the certificate" lmtps-wrong-name rcpt alice@dovecot.test
err_has "does not match" "lmtps: the error says the name does not match"
q 75 "lmtps: tls.server-name = localhost, self-signed" lmtps-localhost rcpt alice@dovecot.test
if grep -q "does not match" "$dir/err"; then
    bad "lmtps: localhost should match the certificate's DNS SAN"
else
    ok "lmtps: localhost matched the certificate's DNS SAN"
fi
# tls.ca-file: Dovecot's self-signed certificate as the only trusted CA
# (a private CA), instead of allow-invalid-certs; the name is still checked
remote_conf lmtps-cafile lmtp "$DOVECOT_LMTPS_PORT" "implicit = true; ca-file = \"$DOVECOT_CERT\";"
remote_conf lmtps-cafile-wrong lmtp "$DOVECOT_LMTPS_PORT" \
    "implicit = true; ca-file = \"$DOVECOT_CERT\"; server-name = \"wrong.example\";"
remote_conf imaps-cafile imap "$DOVECOT_IMAPS_PORT" "implicit = true; ca-file = \"$DOVECOT_CERT\";"
q 0 "lmtps: Dovecot's certificate trusted through tls.ca-file" lmtps-cafile rcpt alice@dovecot.test
q 1 "lmtps with tls.ca-file: rcpt nobody" lmtps-cafile rcpt nobody@dovecot.test
q 75 "lmtps with tls.ca-file, wrong server-name: refused" lmtps-cafile-wrong rcpt alice@dovecot.test
err_has "does not match" "lmtps with tls.ca-file: the error says the name does not match"
q 0 "imaps: Dovecot's certificate trusted through tls.ca-file" imaps-cafile auth alice@dovecot.test secret
q 75 "plain text to the LMTPS port: error, not a hang" lmtp-plain-to-tls rcpt alice@dovecot.test

# Dovecot's VRFY is no answer either way (252, or 501 for an address that
# is not an SMTP atom): an error, never a yes.
q 75 "lmtp: Dovecot's VRFY is an error" lmtp-starttls vrfy alice@dovecot.test
err_has "answered VRFY with: (252|501)" "lmtp vrfy: the error shows Dovecot's reply"

# a closed port: error at once
closed=$(rig_free_port)
remote_conf closed lmtp "$closed" 'enable = false;'
q 75 "closed port: error" closed rcpt alice@dovecot.test

# ------------------------------------------------------------ IMAP auth
remote_conf imap-starttls imap "$DOVECOT_IMAP_PORT" 'implicit = false; allow-invalid-certs = true;'
remote_conf imap-implicit imap "$DOVECOT_IMAPS_PORT" 'implicit = true; allow-invalid-certs = true;'
remote_conf imap-plain imap "$DOVECOT_IMAP_PORT" 'enable = false;'
remote_conf imap-strict imap "$DOVECOT_IMAPS_PORT" 'implicit = true;'

tls_login_re='imap-login: Info: Login: user=<alice@dovecot\.test>.*, TLS, '
tls_logins_before=$(dovecot_log_count "$tls_login_re")
for mode in starttls implicit plain; do
    q 0 "imap $mode: auth alice/secret" "imap-$mode" auth alice@dovecot.test secret
    q 1 "imap $mode: auth alice/wrong" "imap-$mode" auth alice@dovecot.test wrong
done
q 1 "imap starttls: auth of an unknown user" imap-starttls auth nobody@dovecot.test secret
# users whose passwords need quoting (IMAP quoted string) or a literal (8-bit)
ids=$(grep '^alice@dovecot.test:' "$DOVECOT_DIR/passwd" | cut -d: -f3,4)
printf '%s:{PLAIN}%s:%s::%s::\n' quote@dovecot.test 'se"cr\et x' "$ids" "$DOVECOT_DIR/mail/q" \
    utf8@dovecot.test 'pässwörd' "$ids" "$DOVECOT_DIR/mail/u" >>"$DOVECOT_DIR/passwd"
wait_for 15 dovecot_knows utf8@dovecot.test 'pässwörd'   # passwd-file is re-read when its mtime changes
q 0 'imap starttls: password with a quote, a backslash and a space' imap-starttls auth quote@dovecot.test 'se"cr\et x'
q 1 'imap starttls: the same password, one byte off' imap-starttls auth quote@dovecot.test 'se"cr\et y'
q 0 'imap starttls: 8-bit password' imap-starttls auth utf8@dovecot.test 'pässwörd'
q 75 "imap: self-signed certificate refused" imap-strict auth alice@dovecot.test secret
err_has "certificate" "imap: the error names the certificate"
q 75 "imap: rcpt is not an IMAP lookup" imap-starttls rcpt alice@dovecot.test
err_has "not supported by imap" "imap rcpt: says not supported by imap"
# Dovecot writes its log asynchronously
tls_logins_seen() { (($(dovecot_log_count "$tls_login_re") - tls_logins_before >= 2)); }
wait_for 10 tls_logins_seen
tls_logins=$(($(dovecot_log_count "$tls_login_re") - tls_logins_before))
if [[ $tls_logins -eq 2 ]]; then
    ok "dovecot logged exactly 2 TLS logins of alice (STARTTLS and implicit; plain was not TLS)"
else
    bad "dovecot logged $tls_logins TLS logins of alice, want 2"
fi
if grep -qE 'method=PLAIN' "$DOVECOT_DIR/dovecot.log"; then
    ok "imap logins used AUTHENTICATE PLAIN"
else
    bad "no method=PLAIN login in the dovecot log"
fi

# The IMAP LOGIN command (quoted strings, literals) is only used when
# AUTH=PLAIN is not offered; Dovecot always offers it (it implements LOGIN
# through PLAIN), so tests/unit/test_pool.c covers LOGIN with fakeserver.py.

# ------------------------------------------------------------ Postfix: VRFY/EXPN, SMTP AUTH
# Dovecot SASL for Postfix, with every mechanism our client knows.
cat >>"$DOVECOT_DIR/dovecot.conf" <<EOF
auth_mechanisms = plain login cram-md5 scram-sha-256
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
EOF
dovecot_restart "$DOVECOT_DIR" >/dev/null || bad "dovecot did not restart with a SASL socket"
postfix_start "$dir/postfix" \
    "disable_vrfy_command = no" \
    "virtual_mailbox_domains = dovecot.test" \
    "virtual_mailbox_maps = inline:{alice@dovecot.test=alice/, bob@dovecot.test=bob/}" \
    "virtual_transport = discard:" \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_cert_file = $DOVECOT_DIR/cert.pem" \
    "smtpd_tls_key_file = $DOVECOT_DIR/key.pem" \
    "smtpd_sasl_auth_enable = yes" \
    "smtpd_sasl_type = dovecot" \
    "smtpd_sasl_path = $DOVECOT_DIR/base/auth-postfix" \
    >/dev/null || { bad "postfix did not start"; exit 1; }

remote_conf smtp smtp "$POSTFIX_PORT" 'implicit = false; allow-invalid-certs = true;'
remote_conf smtp-plain smtp "$POSTFIX_PORT" 'enable = false;'

# Postfix answers VRFY for a known user with 252 (it never promises
# delivery): per the lookup table that is an error, not a yes.
q 75 "postfix vrfy alice: 252 is an error" smtp vrfy alice@dovecot.test
err_has "252 2\.0\.0" "postfix vrfy alice: the error shows Postfix's 252 2.0.0"
q 1 "postfix vrfy nobody: 550 is no" smtp vrfy nobody@dovecot.test
err_has "550 5\.1\.1" "postfix vrfy nobody: the no carries 550 5.1.1"
q 75 "postfix expn: not implemented (500) is an error" smtp expn alice@dovecot.test
err_has "answered EXPN with: 500" "postfix expn: the error shows Postfix's 500"
q 0 "postfix rcpt alice: 250" smtp rcpt alice@dovecot.test
q 1 "postfix rcpt nobody: 550" smtp rcpt nobody@dovecot.test

# SMTP AUTH: every mechanism, one at a time (Postfix filters what it offers).
for mech in scram-sha-256 cram-md5 plain login; do
    postfix_reload "$dir/postfix" "smtpd_sasl_mechanism_filter = $mech" || bad "postfix reload ($mech)"
    wait_for 30 auth_offered "${mech^^}" || bad "smtpd offers '$(ehlo_auth)' after the reload, wanted ${mech^^}"
    q 0 "smtp AUTH $mech over STARTTLS: alice/secret" smtp auth alice@dovecot.test secret
    q 1 "smtp AUTH $mech over STARTTLS: alice/wrong" smtp auth alice@dovecot.test wrong
done
# Postfix logs only the failures of AUTH: each wrong password above must
# have used the one mechanism offered at that time.
for m in SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN; do
    if wait_log "$dir/postfix/maillog" "SASL $m authentication failed: .*sasl_username=alice@dovecot.test" 10; then
        ok "postfix saw alice's wrong password over $m"
    else
        bad "postfix logged no $m attempt of alice"
    fi
done
postconf -c "$dir/postfix" -X smtpd_sasl_mechanism_filter
postfix_reload "$dir/postfix" || bad "postfix reload (no filter)"
wait_for 30 auth_offered "CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256" || bad "smtpd offers '$(ehlo_auth)' after the reload"
q 0 "smtp AUTH, plain text with tls.enable = false (loopback)" smtp-plain auth alice@dovecot.test secret

# ------------------------------------------------------------ bad config
printf 'remote = { r = { address = "127.0.0.1"; port = "x"; }; };\n' >"$dir/broken.conf"
q 78 "bad config: exit 78" broken rcpt alice@dovecot.test

finish
