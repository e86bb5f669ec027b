/*
 * test_smtp_client.c - the protocol clients apart from the pool:
 *   smtp_reply.c   multi-line replies, code changes, the line bound,
 *                  summaries (redacted during AUTH), EHLO capabilities;
 *   dotstuff.c     CRLF for every line end (lone CR, lone LF), dot-stuffing,
 *                  state carried across chunk boundaries;
 *   sasl_client.c  scripted exchanges: PLAIN, LOGIN, CRAM-MD5 (RFC 2195's
 *                  example), SCRAM-SHA-256 against a server written here,
 *                  with a good, a wrong and a missing server signature;
 *   request.c      argument checks and our own 451 replies;
 *   smtp_session.c, smtp_lookup.c, smtp_relay.c
 *                  the phases of one session from greeting to QUIT,
 *                  against tests/lib/fakeserver.py.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dotstuff.h"
#include "fake_remote.h"
#include "log.h"
#include "request.h"
#include "sasl_client.h"
#include "smtp_client.h"
#include "smtp_reply.h"
#include "spool.h"
#include "util.h"

/* ------------------------------------------------------------ replies */

static enum smtp_reply_status add(struct smtp_reply *rep, const char *line)
{
    return smtp_reply_add(rep, line, strlen(line));
}

static void test_reply_multiline(void **state)
{
    (void)state;
    struct smtp_reply rep = { 0 };
    char out[256];
    smtp_reply_start(&rep, false);
    assert_int_equal(add(&rep, "250-mx.example.org hello"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "250-PIPELINING"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "250-AUTH=PLAIN LOGIN"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "250-AUTH CRAM-MD5 scram-sha-256 GSSAPI"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "250-SMTPUTF8"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "250 8BITMIME"), SMTP_REPLY_DONE);
    assert_int_equal(rep.code, 250);
    assert_int_equal(rep.nlines, 6);
    smtp_reply_line_text(&rep, 1, out, sizeof out);
    assert_string_equal(out, "PIPELINING");
    smtp_reply_summary(&rep, out, sizeof out);
    assert_string_equal(out, "250 mx.example.org hello PIPELINING AUTH=PLAIN LOGIN AUTH CRAM-MD5 "
                             "scram-sha-256 GSSAPI SMTPUTF8 8BITMIME");
    struct smtp_caps caps;
    smtp_caps_parse(&rep, &caps);
    assert_true(caps.pipelining && caps.smtputf8 && caps.eightbitmime);
    assert_false(caps.starttls || caps.size);
    assert_int_equal(caps.mechs, SASL_MECH_PLAIN | SASL_MECH_LOGIN | SASL_MECH_CRAM_MD5
                                     | SASL_MECH_SCRAM_SHA256);
    /* a bare code is a complete reply too; the buffer is reused */
    smtp_reply_start(&rep, false);
    assert_int_equal(add(&rep, "354"), SMTP_REPLY_DONE);
    assert_int_equal(rep.code, 354);
    smtp_reply_free(&rep);
}

static void test_reply_garbage_and_bounds(void **state)
{
    (void)state;
    struct smtp_reply rep = { 0 };
    char line[32];
    static const char *const bad[] = { "25", "abc ok", "250x", "199 too low", "600 too high", "" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        smtp_reply_start(&rep, false);
        assert_int_equal(add(&rep, bad[i]), SMTP_REPLY_GARBAGE);
    }
    smtp_reply_start(&rep, false);   /* the code may not change inside a reply */
    assert_int_equal(add(&rep, "250-first"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "550 second"), SMTP_REPLY_GARBAGE);
    smtp_reply_start(&rep, false);
    for (int i = 0; i < SMTP_REPLY_LINES - 1; i++) {
        snprintf(line, sizeof line, "250-line %d", i);
        assert_int_equal(add(&rep, line), SMTP_REPLY_MORE);
    }
    assert_int_equal(add(&rep, "250 the last allowed"), SMTP_REPLY_DONE);
    smtp_reply_start(&rep, false);
    for (int i = 0; i < SMTP_REPLY_LINES; i++)
        assert_int_equal(add(&rep, "250-more"), SMTP_REPLY_MORE);
    assert_int_equal(add(&rep, "250-one too many"), SMTP_REPLY_TOO_LONG);
    smtp_reply_free(&rep);
}

static void test_reply_redacted(void **state)
{
    (void)state;
    struct smtp_reply rep = { 0 };
    char out[256];
    smtp_reply_start(&rep, true);
    assert_int_equal(add(&rep, "535 5.7.8 bad password hunter2 for alice"), SMTP_REPLY_DONE);
    smtp_reply_summary(&rep, out, sizeof out);
    assert_string_equal(out, "535 5.7.8 (text not shown)");
    smtp_reply_free(&rep);
}

/* ------------------------------------------------------------ dot-stuffing */

/* The wire form of in, fed in chunks of `chunk` bytes. */
static char *wire(const char *in, size_t chunk)
{
    size_t n = strlen(in), o = 0;
    char *out = xmalloc(DOTSTUFF_MAX(n) + DOTSTUFF_MAX(1) * n + 8);
    struct dotstuff st;
    dotstuff_start(&st);
    for (size_t i = 0; i < n; i += chunk)
        o += dotstuff_chunk(&st, in + i, n - i < chunk ? n - i : chunk, out + o);
    o += dotstuff_end(&st, out + o);
    out[o] = '\0';
    return out;
}

static void check_wire(const char *in, const char *want)
{
    for (size_t chunk = 1; chunk <= strlen(in) + 1; chunk++) {
        char *got = wire(in, chunk);
        if (strcmp(got, want) != 0)
            print_message("chunk %zu: got \"%s\"\n", chunk, got);
        assert_string_equal(got, want);
        free(got);
    }
}

static void test_dotstuff(void **state)
{
    (void)state;
    check_wire("", ".\r\n");
    check_wire("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
    check_wire("a\nb", "a\r\nb\r\n.\r\n");                       /* lone LF, no final line end */
    check_wire("a\rb\r", "a\r\nb\r\n.\r\n");                     /* lone CR */
    check_wire(".a\r\n..b\n.\n", "..a\r\n...b\r\n..\r\n.\r\n");  /* leading dots doubled */
    check_wire("x\r.\rMAIL FROM:<e@x>\r\n", "x\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n");
    check_wire("x\n.\r\nRSET\r\n", "x\r\n..\r\nRSET\r\n.\r\n");
    check_wire("x\r\r\n.", "x\r\n\r\n..\r\n.\r\n");             /* CR CR LF: two line ends */
    check_wire("x\n\r.", "x\r\n\r\n..\r\n.\r\n");                /* LF CR: two line ends */
}

/* ------------------------------------------------------------ SASL */

static char *b64(const void *data, size_t len)
{
    gnutls_datum_t in = { (unsigned char *)data, (unsigned)len }, out = { NULL, 0 };
    assert_true(gnutls_base64_encode2(&in, &out) >= 0);
    char *s = xstrndup((char *)out.data, out.size);
    gnutls_free(out.data);
    return s;
}

static char *unb64(const char *text, size_t *len)
{
    gnutls_datum_t in = { (unsigned char *)text, (unsigned)strlen(text) }, out = { NULL, 0 };
    assert_true(gnutls_base64_decode2(&in, &out) >= 0);
    char *s = xstrndup((char *)out.data, out.size);
    *len = out.size;
    gnutls_free(out.data);
    return s;
}

static void test_sasl_pick(void **state)
{
    (void)state;
    assert_int_equal(sasl_mechs_parse("plain LOGIN GSSAPI"), SASL_MECH_PLAIN | SASL_MECH_LOGIN);
    assert_int_equal(sasl_mech_pick(SASL_MECH_LOGIN | SASL_MECH_PLAIN), SASL_MECH_PLAIN);
    assert_int_equal(sasl_mech_pick(SASL_MECH_PLAIN | SASL_MECH_CRAM_MD5), SASL_MECH_CRAM_MD5);
    assert_int_equal(sasl_mech_pick(0xf), SASL_MECH_SCRAM_SHA256);
    assert_int_equal(sasl_mech_pick(0), 0);
    assert_true(sasl_mech_client_first(SASL_MECH_PLAIN));
    assert_false(sasl_mech_client_first(SASL_MECH_CRAM_MD5));
}

static void test_sasl_plain_login_cram(void **state)
{
    (void)state;
    char err[ERRLEN], *out;
    struct sasl_client *c = sasl_client_start(SASL_MECH_PLAIN, "alice@example.org", "secret",
                                              err, sizeof err);
    assert_non_null(c);
    assert_int_equal(sasl_client_step(c, NULL, &out, err, sizeof err), SASL_STEP_DONE);
    assert_string_equal(out, "AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==");
    sasl_free_secret(out);
    assert_true(sasl_client_done(c));
    /* a challenge after the end is the server's error, not ours to answer */
    assert_int_equal(sasl_client_step(c, "", &out, err, sizeof err), -1);
    sasl_client_free(c);

    c = sasl_client_start(SASL_MECH_LOGIN, "alice", "secret", err, sizeof err);
    assert_int_equal(sasl_client_step(c, "VXNlcm5hbWU6", &out, err, sizeof err), SASL_STEP_MORE);
    assert_string_equal(out, "YWxpY2U=");
    sasl_free_secret(out);
    assert_false(sasl_client_done(c));
    assert_int_equal(sasl_client_step(c, "UGFzc3dvcmQ6", &out, err, sizeof err), SASL_STEP_DONE);
    assert_string_equal(out, "c2VjcmV0");
    sasl_free_secret(out);
    sasl_client_free(c);

    /* RFC 2195, section 2 */
    const char *chal = "<1896.697170952@postoffice.reston.mci.net>";
    char *chal64 = b64(chal, strlen(chal));
    c = sasl_client_start(SASL_MECH_CRAM_MD5, "tim", "tanstaaftanstaaf", err, sizeof err);
    assert_int_equal(sasl_client_step(c, chal64, &out, err, sizeof err), SASL_STEP_DONE);
    size_t len;
    char *resp = unb64(out, &len);
    assert_string_equal(resp, "tim b913a602c7eda7a495b4e6e7334d3890");
    free(resp);
    sasl_free_secret(out);
    free(chal64);
    /* not base64 at all */
    sasl_client_free(c);
    c = sasl_client_start(SASL_MECH_CRAM_MD5, "tim", "x", err, sizeof err);
    assert_int_equal(sasl_client_step(c, "!!not base64!!", &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "not base64"));
    sasl_client_free(c);
}

/* A SCRAM-SHA-256 server (RFC 5802/7677) that knows the password "pencil". */
enum signature { SIG_GOOD, SIG_WRONG, SIG_MISSING };

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, klen, msg, strlen(msg), out), 0);
}

/* Runs one exchange; returns the client's last step result (or 1 when it
 * was left waiting, as after a "235" without a signature). */
static int scram_exchange(const char *client_pass, enum signature sig, char *err)
{
    char *out, sfirst[256], *final64;
    size_t len;
    struct sasl_client *c = sasl_client_start(SASL_MECH_SCRAM_SHA256, "user", client_pass, err,
                                              ERRLEN);
    assert_non_null(c);
    assert_int_equal(sasl_client_step(c, NULL, &out, err, ERRLEN), SASL_STEP_MORE);
    char *cfirst = unb64(out, &len);
    sasl_free_secret(out);
    assert_memory_equal(cfirst, "n,,n=user,r=", 12);
    const char *salt = "QSXCR+Q6sek8bf92";   /* RFC 7677's salt, base64 */
    snprintf(sfirst, sizeof sfirst, "r=%s%s,s=%s,i=4096", cfirst + 12, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
             salt);
    char *sfirst64 = b64(sfirst, strlen(sfirst));
    assert_int_equal(sasl_client_step(c, sfirst64, &out, err, ERRLEN), SASL_STEP_MORE);
    free(sfirst64);
    char *cfinal = unb64(out, &len);
    sasl_free_secret(out);
    /* check the proof as a server would, with the real password */
    char *without_proof = xstrndup(cfinal, (size_t)(strstr(cfinal, ",p=") - cfinal));
    size_t am_len = strlen(cfirst) + strlen(sfirst) + strlen(without_proof) + 3;
    char *auth_msg = xmalloc(am_len);
    snprintf(auth_msg, am_len, "%s,%s,%s", cfirst + 3, sfirst, without_proof);
    size_t salt_len;
    char *salt_raw = unb64(salt, &salt_len);
    unsigned char salted[32], ckey[32], stored[32], csig[32], proof[32], skey[32], ssig[32];
    gnutls_datum_t k = { (unsigned char *)"pencil", 6 }, s = { (unsigned char *)salt_raw, (unsigned)salt_len };
    assert_int_equal(gnutls_pbkdf2(GNUTLS_MAC_SHA256, &k, &s, 4096, salted, sizeof salted), 0);
    hmac(salted, 32, "Client Key", ckey);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, ckey, 32, stored), 0);
    hmac(stored, 32, auth_msg, csig);
    for (int i = 0; i < 32; i++)
        proof[i] = ckey[i] ^ csig[i];
    char *proof64 = b64(proof, 32);
    bool proof_ok = strcmp(strstr(cfinal, ",p=") + 3, proof64) == 0;
    assert_int_equal(proof_ok, strcmp(client_pass, "pencil") == 0);
    hmac(salted, 32, "Server Key", skey);
    hmac(skey, 32, auth_msg, ssig);
    if (sig == SIG_WRONG)
        ssig[0] ^= 1;
    char v[80], *ssig64 = b64(ssig, 32);
    snprintf(v, sizeof v, "v=%s", ssig64);
    int rc = 1;
    if (sig != SIG_MISSING) {
        final64 = b64(v, strlen(v));
        rc = sasl_client_step(c, final64, &out, err, ERRLEN);
        if (rc >= 0) {
            assert_string_equal(out, "");
            sasl_free_secret(out);
        }
        free(final64);
    }
    assert_int_equal(sasl_client_done(c), rc == SASL_STEP_DONE);
    sasl_client_free(c);
    free(ssig64);
    free(proof64);
    free(salt_raw);
    free(auth_msg);
    free(without_proof);
    free(cfinal);
    free(cfirst);
    return rc;
}

static void test_sasl_scram_signature(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    assert_int_equal(scram_exchange("pencil", SIG_GOOD, err), SASL_STEP_DONE);
    assert_int_equal(scram_exchange("pencil", SIG_WRONG, err), -1);
    assert_non_null(strstr(err, "failed to prove"));
    /* no signature at all: the client never completes, so a 235 proves nothing */
    assert_int_equal(scram_exchange("pencil", SIG_MISSING, err), 1);
    /* a server that does not know the password cannot produce the right one */
    assert_int_equal(scram_exchange("wrong", SIG_GOOD, err), -1);
}

/* ------------------------------------------------------------ request.c */

static void test_request_checks(void **state)
{
    (void)state;
    char err[ERRLEN], big[NET_ARG_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(request_check_lookup(PROTO_SMTP, LOOKUP_RCPT, "a@b", NULL, err, sizeof err), 0);
    assert_int_equal(request_check_lookup(PROTO_SMTP, LOOKUP_RCPT, "a@b\r\nRSET", NULL, err,
                                          sizeof err), -1);
    assert_string_equal(err, "address contains CR or LF");
    assert_int_equal(request_check_lookup(PROTO_SMTP, LOOKUP_RCPT, big, NULL, err, sizeof err), -1);
    assert_int_equal(request_check_lookup(PROTO_IMAP, LOOKUP_VRFY, "a@b", NULL, err, sizeof err), -1);
    assert_string_equal(err, "vrfy lookups are not supported by imap");
    assert_int_equal(request_check_lookup(PROTO_IMAP, LOOKUP_AUTH, "u", NULL, err, sizeof err), -1);
    assert_string_equal(err, "password missing");
    /* a password may hold any byte but CR and LF, and is never quoted */
    assert_int_equal(request_check_lookup(PROTO_IMAP, LOOKUP_AUTH, "u", "p\tw", err, sizeof err), 0);
    assert_int_equal(request_check_lookup(PROTO_IMAP, LOOKUP_AUTH, "u", "hunter2\n", err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));

    struct relay_rcpt rc[2] = { { .addr = "a@b" }, { .addr = "c\x01@d" } };
    assert_int_equal(request_check_relay(PROTO_SMTP, "s@x", rc, 1, err, sizeof err), 0);
    assert_int_equal(request_check_relay(PROTO_SMTP, "s@x", rc, 2, err, sizeof err), -1);
    assert_string_equal(err, "recipient contains a control character");
    assert_int_equal(request_check_relay(PROTO_IMAP, "s@x", rc, 1, err, sizeof err), -1);

    rc[0].code = 250;
    rc[1].code = 0;
    request_fail_pending(rc, 2, "hop", "timeout");
    assert_int_equal(rc[0].code, 250);
    assert_int_equal(rc[1].code, 451);
    assert_string_equal(rc[1].reply, "451 4.4.2 next hop hop: timeout");
    request_fail_all(rc, 2, "hop", "down");
    assert_string_equal(rc[0].reply, "451 4.4.2 next hop hop: down");
    assert_true(request_needs_smtputf8("j\xc3\xb6@x"));
    assert_false(request_needs_smtputf8("jo@x"));
}

/* ------------------------------------------------------------ phases */

static struct smtp_session *open_session(struct fake *f, const char *scenario,
                                         struct remote_def *r, char *err)
{
    const char *refused;
    fake_start(f, scenario, NULL);
    remote_init(r, f->port, PROTO_LMTP);
    return smtp_open(&r->ep, false, now_ms() + 3000, &refused, err, ERRLEN);
}

static void test_session_phases(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char err[ERRLEN] = "", reply[256];
    struct smtp_session *s = open_session(&f, "normal", &r, err);
    assert_non_null(s);
    assert_int_equal(smtp_phase(s), SP_READY);
    assert_int_equal(smtp_lookup(s, LOOKUP_RCPT, "ok@example.org", NULL, NULL, reply,
                                 sizeof reply, now_ms() + 3000, err, sizeof err), LOOKUP_YES);
    assert_int_equal(smtp_phase(s), SP_MAIL);   /* the probe transaction stays open */
    assert_true(smtp_reusable(s));
    /* a UTF-8 address and no SMTPUTF8 offered: not asked, not a no */
    assert_int_equal(smtp_lookup(s, LOOKUP_RCPT, "okj\xc3\xb6@example.org", NULL, NULL, reply,
                                 sizeof reply, now_ms() + 3000, err, sizeof err),
                     LOOKUP_UTF8_UNSUPPORTED);
    assert_string_equal(reply, REQUEST_UTF8_REPLY);

    struct relay_rcpt rc[2] = { { .addr = "ok1@example.org" }, { .addr = "no@example.org" } };
    struct spool *msg = spool_create(1024);
    assert_int_equal(spool_write(msg, "Subject: x\n\nhi\n", 15, err, sizeof err), 0);
    assert_int_equal(smtp_relay(s, "s@example.net", rc, 2, msg, NULL, NULL, now_ms() + 3000, err,
                                sizeof err), 0);
    assert_int_equal(rc[0].code, 250);
    assert_int_equal(rc[1].code, 550);
    assert_int_equal(smtp_phase(s), SP_READY);   /* RSET, MAIL, RCPT, DATA, body, dot, replies */
    assert_int_equal(smtp_noop(s, now_ms() + 3000, err, sizeof err), 0);
    smtp_close(s);
    spool_destroy(msg);
    assert_int_equal(log_count(&f, "RSET"), 1);
    assert_int_equal(log_count(&f, "QUIT"), 1);
    assert_false(log_has(&f, "okj"));
    fake_stop(&f);

    /* out of step: garbage greeting, 150-line EHLO, a timeout at the end of data */
    assert_null(open_session(&f, "garbage", &r, err));
    assert_non_null(strstr(err, "garbage reply"));
    fake_stop(&f);
    assert_null(open_session(&f, "manylines", &r, err));
    assert_non_null(strstr(err, "longer than 100 lines"));
    fake_stop(&f);
    s = open_session(&f, "hang-data", &r, err);
    assert_non_null(s);
    assert_int_equal(smtp_relay(s, "s@example.net", rc, 1, msg = spool_create(1024), NULL, NULL,
                                now_ms() + 1500, err, sizeof err), -1);
    assert_int_equal(smtp_phase(s), SP_BROKEN);
    assert_false(smtp_reusable(s));
    assert_int_equal(rc[0].code, 451);
    assert_non_null(strstr(rc[0].reply, "451 4.4.2 next hop fake: timeout after end of data"));
    smtp_close(s);   /* no QUIT on a broken session */
    spool_destroy(msg);
    assert_int_equal(log_count(&f, "QUIT"), 0);
    fake_stop(&f);
}

static void test_auth_lookup_phase(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char err[ERRLEN] = "", reply[256];
    const char *refused;
    fake_start(&f, "normal", "--auth", "alice:pw", "--mechs", "PLAIN", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    struct smtp_session *s = smtp_open(&r.ep, false, now_ms() + 3000, &refused, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(smtp_lookup(s, LOOKUP_AUTH, "alice", "pw", NULL, reply, sizeof reply,
                                 now_ms() + 3000, err, sizeof err), LOOKUP_YES);
    assert_int_equal(smtp_phase(s), SP_USER_AUTHED);   /* logged in as the user: never reused */
    assert_false(smtp_reusable(s));
    assert_string_equal(reply, "235 2.7.0 (text not shown)");
    smtp_close(s);
    assert_int_equal(log_count(&f, "QUIT"), 1);
    fake_stop(&f);
    assert_string_equal(smtp_phase_name(SP_DOT), "end of data");
}

int main(void)
{
    const char *dbg = getenv("NEXTHOP_TEST_DEBUG");
    log_init("test_smtp_client", false, dbg && *dbg ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_multiline),
        cmocka_unit_test(test_reply_garbage_and_bounds),
        cmocka_unit_test(test_reply_redacted),
        cmocka_unit_test(test_dotstuff),
        cmocka_unit_test(test_sasl_pick),
        cmocka_unit_test(test_sasl_plain_login_cram),
        cmocka_unit_test(test_sasl_scram_signature),
        cmocka_unit_test(test_request_checks),
        cmocka_unit_test_teardown(test_session_phases, stop_leftovers),
        cmocka_unit_test_teardown(test_auth_lookup_phase, stop_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
