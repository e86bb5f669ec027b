/*
 * test_nexthop_map.c - unit tests of common/policy/nexthop_map.c: the Postfix
 * transport and Sendmail mailertable spelling of every kind of next hop,
 * request parsing (maps, malformed requests, over-long keys), keys that are
 * addresses, domains or neither, and whole answers against a config loaded
 * from a file: OK for each MTA, NOTFOUND for next hop false and for
 * wildcard keys, PERM, and TEMP when a list lookup fails after load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "config.h"
#include "nexthop_map.h"
#include "util.h"

static struct remote_def remote(const char *id, const char *address, int port, enum remote_proto p)
{
    struct remote_def r = { .id = (char *)id,
                            .ep = { .name = id, .address = (char *)address, .port = port, .protocol = p } };
    return r;
}

static void test_postfix_transport(void **state)
{
    (void)state;
    static const struct { const char *address; int port; enum remote_proto proto; const char *want; } ok[] = {
        { "127.0.0.1", 24, PROTO_LMTP, "lmtp:inet:127.0.0.1:24" },
        { "mail.example.net", 2424, PROTO_LMTP, "lmtp:inet:mail.example.net:2424" },
        { "::1", 24, PROTO_LMTP, "lmtp:inet:[::1]:24" },
        { "unix:/run/dovecot/lmtp", 0, PROTO_LMTP, "lmtp:unix:/run/dovecot/lmtp" },
        { "192.0.2.25", 25, PROTO_SMTP, "smtp:[192.0.2.25]:25" },
        { "mx.example.net", 2525, PROTO_SMTP, "smtp:[mx.example.net]:2525" },
        { "2001:db8::25", 25, PROTO_SMTP, "smtp:[2001:db8::25]:25" },
    };
    char out[256], err[ERRLEN];
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        struct remote_def r = remote("hop", ok[i].address, ok[i].port, ok[i].proto);
        assert_int_equal(nexthop_postfix_transport(&r, out, sizeof out, err, sizeof err), 0);
        assert_string_equal(out, ok[i].want);
    }
    struct remote_def imap = remote("box", "127.0.0.1", 143, PROTO_IMAP);
    assert_int_equal(nexthop_postfix_transport(&imap, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "box speaks imap"));
    struct remote_def smtp_unix = remote("sock", "unix:/run/x", 0, PROTO_SMTP);
    assert_int_equal(nexthop_postfix_transport(&smtp_unix, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "unix socket"));
    struct remote_def lmtp = remote("hop", "127.0.0.1", 24, PROTO_LMTP);
    assert_int_equal(nexthop_postfix_transport(&lmtp, out, 10, err, sizeof err), -1);
}

static void test_sendmail_mailertable(void **state)
{
    (void)state;
    char out[256], err[ERRLEN];
    struct remote_def a = remote("lmtp", "127.0.0.1", 24, PROTO_LMTP);
    assert_int_equal(nexthop_sendmail_mailertable(&a, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "nexthop_lmtp:[127.0.0.1]");
    struct remote_def b = remote("relay-2", "mx.example.net", 2525, PROTO_SMTP);
    assert_int_equal(nexthop_sendmail_mailertable(&b, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "nexthop_relay-2:[mx.example.net]");
    struct remote_def c = remote("v6", "2001:db8::24", 24, PROTO_LMTP);
    assert_int_equal(nexthop_sendmail_mailertable(&c, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "nexthop_v6:[IPv6:2001:db8::24]");
    struct remote_def d = remote("store", "unix:/run/dovecot/lmtp", 0, PROTO_LMTP);
    assert_int_equal(nexthop_sendmail_mailertable(&d, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "nexthop_store:localhost");
    struct remote_def e = remote("box", "127.0.0.1", 143, PROTO_IMAP);
    assert_int_equal(nexthop_sendmail_mailertable(&e, out, sizeof out, err, sizeof err), -1);

    /* a mailer name is one Sendmail token */
    nexthop_sendmail_mailer_name("odd.id*x", out, sizeof out);
    assert_string_equal(out, "nexthop_odd_id_x");
    nexthop_sendmail_mailer_name("a.b.c", out, 12);
    assert_string_equal(out, "nexthop_a_b");
}

static int parse(const char *req, enum nexthop_map_kind *kind, char *key, size_t keylen, char *err)
{
    return nexthop_request_parse(req, strlen(req), kind, key, keylen, err, ERRLEN);
}

static void test_request_parse(void **state)
{
    (void)state;
    enum nexthop_map_kind kind;
    char key[64], err[ERRLEN];
    assert_int_equal(parse("nexthop alice@example.org", &kind, key, sizeof key, err), 0);
    assert_int_equal(kind, NEXTHOP_MAP_POSTFIX);
    assert_string_equal(key, "alice@example.org");
    assert_int_equal(parse("mailertable example.org", &kind, key, sizeof key, err), 0);
    assert_int_equal(kind, NEXTHOP_MAP_SENDMAIL);
    assert_string_equal(key, "example.org");

    static const struct { const char *req; const char *why; } bad[] = {
        { "", "expected" },
        { "nexthop", "expected" },
        { "nexthop ", "expected" },
        { " alice@example.org", "expected" },
        { "transport alice@example.org", "unknown map 'transport'" },
        { "NEXTHOP alice@example.org", "unknown map" },
        { "nexthopx a", "unknown map" },
        { "nexthop a\r\nb", "control characters" },
        { "nexthop a\tb", "control characters" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        int rc = parse(bad[i].req, &kind, key, sizeof key, err);
        if (rc != -1 || !strstr(err, bad[i].why))
            fail_msg("\"%s\": rc %d err \"%s\", wanted \"%s\"", bad[i].req, rc, err, bad[i].why);
    }
    /* a NUL inside the payload is a control character too */
    assert_int_equal(nexthop_request_parse("nexthop a\0b", 11, &kind, key, sizeof key, err, sizeof err), -1);
    /* a key longer than the buffer is no address: 1 (NOTFOUND), not an error */
    char longreq[200];
    snprintf(longreq, sizeof longreq, "nexthop %0100d@example.org", 0);
    assert_int_equal(parse(longreq, &kind, key, sizeof key, err), 1);
}

static void test_key_vars(void **state)
{
    (void)state;
    char addr[ADDR_MAX + 1];
    struct rule_vars v;

    memset(&v, 0, sizeof v);
    assert_int_equal(nexthop_key_vars("Alice@Example.ORG", addr, &v), 0);
    assert_string_equal(v.v[RV_RCPT], "Alice@example.org");
    assert_string_equal(v.v[RV_RCPT_DOMAIN], "example.org");

    memset(&v, 0, sizeof v);
    assert_int_equal(nexthop_key_vars("Example.ORG", addr, &v), 0);
    assert_null(v.v[RV_RCPT]);
    assert_string_equal(v.v[RV_RCPT_DOMAIN], "example.org");

    memset(&v, 0, sizeof v);
    assert_int_equal(nexthop_key_vars("[192.0.2.1]", addr, &v), 0);
    assert_string_equal(v.v[RV_RCPT_DOMAIN], "[192.0.2.1]");

    /* Postfix's parent-domain and wildcard lookups, Sendmail's ".domain" and "." */
    static const char *const none[] = { ".example.org", "*", ".", "alice@", "@example.org",
                                        "a b", "alice@@example.org", "<>" };
    for (size_t i = 0; i < ARRAY_SIZE(none); i++)
        if (nexthop_key_vars(none[i], addr, &v) != -1)
            fail_msg("key \"%s\" was taken for an address or domain", none[i]);
}

/* -- whole answers against a loaded config ------------------------------ */

static char dir[64], conf_path[128], db_path[128];

static void exec_sql(const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s", msg);
    sqlite3_close(db);
}

static struct nh_config *load(void)
{
    static char err[4096];
    snprintf(dir, sizeof dir, "/tmp/test_nexthop_map.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(conf_path, sizeof conf_path, "%s/m.conf", dir);
    snprintf(db_path, sizeof db_path, "%s/routing.db", dir);
    exec_sql("CREATE TABLE d (name TEXT); INSERT INTO d VALUES ('sql.test');");
    FILE *fp = fopen(conf_path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "remote = {\n"
            "  lmtp = { address = \"127.0.0.1\"; port = 24; protocol = \"lmtp\"; tls = { enable = false; }; };\n"
            "  mx = { address = \"127.0.0.1\"; port = 2525; protocol = \"smtp\"; tls = { enable = false; }; };\n"
            "};\n"
            "list = { local = [ \"dovecot.test\" ]; };\n"
            "database = { sql = { type = \"sqlite\"; path = \"%s\";\n"
            "  lookup = { d = \"SELECT 1 FROM d WHERE name = ?\"; }; }; };\n"
            "queue = { outbound = { next-hop = (\n"
            "  { if = \"rcpt\"; eq = \"nobody@dovecot.test\"; then = false; },\n"
            "  { if = \"rcpt-domain\"; in-list = \"list/local\"; then = \"lmtp\"; },\n"
            "  { if = \"rcpt-domain\"; eq = \"smtp.test\"; then = \"mx\"; },\n"
            "  { if = \"rcpt-domain\"; in-list = \"sql/d\"; then = \"lmtp\"; },\n"
            "  { else = false; } ); }; };\n",
            db_path);
    fclose(fp);
    struct nh_config *cfg = config_load(conf_path, err, sizeof err);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

static const char *ask(const struct nh_config *cfg, const char *req)
{
    static char reply[NEXTHOP_MAP_REPLY_MAX];
    nexthop_map_answer(&cfg->policy, NULL, req, strlen(req), reply, sizeof reply);
    return reply;
}

static void test_answers(void **state)
{
    (void)state;
    struct nh_config *cfg = load();
    assert_string_equal(ask(cfg, "nexthop alice@dovecot.test"), "OK lmtp:inet:127.0.0.1:24");
    assert_string_equal(ask(cfg, "nexthop ALICE@DOVECOT.TEST"), "OK lmtp:inet:127.0.0.1:24");
    assert_string_equal(ask(cfg, "nexthop dovecot.test"), "OK lmtp:inet:127.0.0.1:24");
    assert_string_equal(ask(cfg, "nexthop bob@smtp.test"), "OK smtp:[127.0.0.1]:2525");
    assert_string_equal(ask(cfg, "nexthop x@sql.test"), "OK lmtp:inet:127.0.0.1:24");
    assert_string_equal(ask(cfg, "mailertable dovecot.test"), "OK nexthop_lmtp:[127.0.0.1]");
    assert_string_equal(ask(cfg, "mailertable smtp.test"), "OK nexthop_mx:[127.0.0.1]");
    /* next hop false: by address (rule on rcpt), by domain, and keys that are no domain */
    assert_string_equal(ask(cfg, "nexthop nobody@dovecot.test"), "NOTFOUND ");
    assert_string_equal(ask(cfg, "nexthop elsewhere.example"), "NOTFOUND ");
    assert_string_equal(ask(cfg, "nexthop .test"), "NOTFOUND ");
    assert_string_equal(ask(cfg, "nexthop *"), "NOTFOUND ");
    assert_string_equal(ask(cfg, "mailertable ."), "NOTFOUND ");
    /* protocol errors */
    assert_true(strncmp(ask(cfg, "transport alice@dovecot.test"), "PERM unknown map 'transport'", 28) == 0);
    assert_true(strncmp(ask(cfg, "nexthop"), "PERM malformed request", 22) == 0);
    /* a list that fails after load: TEMP naming it, others still answer */
    exec_sql("DROP TABLE d;");
    assert_string_equal(ask(cfg, "nexthop x@other.test"), "TEMP sql/d: no such table: d");
    assert_string_equal(ask(cfg, "nexthop alice@dovecot.test"), "OK lmtp:inet:127.0.0.1:24");
    /* the reply is always bounded and NUL-terminated */
    char tiny[8];
    nexthop_map_answer(&cfg->policy, NULL, "nexthop alice@dovecot.test", 26, tiny, sizeof tiny);
    assert_string_equal(tiny, "OK lmtp");
    config_unref(cfg);
    unlink(conf_path);
    unlink(db_path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postfix_transport),
        cmocka_unit_test(test_sendmail_mailertable),
        cmocka_unit_test(test_request_parse),
        cmocka_unit_test(test_key_vars),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
