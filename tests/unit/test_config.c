/*
 * test_config.c - the config loader: every error class names FILE:LINE and
 * the key; defaults apply; the example config loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "lists.h"
#include "log.h"
#include "rules.h"
#include "schema.h"
#include "sockspec.h"

static char path[256];

static const char *write_conf(const char *text)
{
    snprintf(path, sizeof path, "/tmp/nexthop-test-%d.conf", (int)getpid());
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    chmod(path, 0600);
    return path;
}

/* Loads text; expects failure with an error containing "PATH:LINE: " and want. */
static void expect_error(const char *text, int line, const char *want)
{
    char err[8192], prefix[300];
    struct nh_config *cfg = config_load(write_conf(text), err, sizeof err);
    if (cfg)
        fail_msg("config loaded, expected error '%s'", want);
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    if (!strstr(err, prefix) || !strstr(err, want))
        fail_msg("error was:\n%s\nwanted '%s' and '%s'", err, prefix, want);
    unlink(path);
}

static struct nh_config *expect_ok(const char *text)
{
    char err[8192];
    struct nh_config *cfg = config_load(write_conf(text), err, sizeof err);
    if (!cfg)
        fail_msg("config failed:\n%s", err);
    unlink(path);
    return cfg;
}

static void test_minimal_and_defaults(void **state)
{
    struct nh_config *cfg = expect_ok("milter = { socket = \"inet:8895@127.0.0.1\"; };\n");
    assert_string_equal(cfg->socket, "inet:8895@127.0.0.1");
    assert_int_equal(cfg->socket_mode, 0660);
    assert_string_equal(cfg->policy.routing_header, "X-Nexthop");
    assert_int_equal(cfg->policy.routing_timeout_ms, 120000);
    assert_int_equal(cfg->policy.on_tempfail, ON_TEMPFAIL_TEMPFAIL);
    assert_null(cfg->policy.rcpt_lookup_addresses);
    assert_int_equal(cfg->n_remotes, 0);
    config_unref(cfg);
}

static void test_remote_defaults(void **state)
{
    struct nh_config *cfg = expect_ok("remote = { lmtp = { address = \"127.0.0.1\"; protocol = \"lmtp\"; }; };\n");
    const struct remote_def *r = config_remote(cfg, "lmtp");
    assert_non_null(r);
    assert_int_equal(r->ep.protocol, PROTO_LMTP);
    assert_int_equal(r->ep.port, 24);
    assert_int_equal(r->concurrency, 10);
    assert_int_equal(r->ep.timeout_ms, 60000);
    assert_false(r->lookup);
    assert_int_equal(r->cache_entries, 1024);
    assert_int_equal(r->ttl_positive_ms, 86400000);
    assert_int_equal(r->ttl_negative_ms, 3600000);
    assert_int_equal(r->ttl_auth_ms, 300000);
    assert_true(r->ep.tls_enable);
    assert_true(r->ep.tls_implicit);
    assert_false(r->ep.tls_allow_invalid);
    assert_int_equal(r->limits_errors, 3);
    assert_int_equal(r->limits_requests, 50);
    config_unref(cfg);
}

static void test_unknown_key(void **state)
{
    expect_error("milter = {\n  socket = \"inet:1@127.0.0.1\";\n  sockett = \"x\";\n};\n", 3,
                 "unknown key 'sockett'");
    expect_error("remote = { a = { address = \"x\";\n tls = { implict = true; }; }; };\n", 2,
                 "unknown key 'implict'");
}

static void test_wrong_type(void **state)
{
    expect_error("remote = {\n a = {\n address = \"h\";\n concurrency = \"ten\"; }; };\n", 4,
                 "concurrency: must be an integer");
    expect_error("remote = { a = { address = \"h\";\n lookup = \"yes\"; }; };\n", 2,
                 "lookup: must be true or false");
}

static void test_bad_duration(void **state)
{
    expect_error("remote = { a = { address = \"h\";\n\n timeout = \"5 minutes\"; }; };\n", 3,
                 "bad duration '5 minutes'");
    expect_error("routing = { timeout = \"1x\"; };\n", 1, "routing.timeout: bad duration");
}

static void test_unknown_protocol(void **state)
{
    expect_error("remote = { a = { address = \"h\";\n protocol = \"pop3\"; }; };\n", 2,
                 "remote.a.protocol: must be smtp, lmtp or imap, not 'pop3'");
}

static void test_rule_names_undefined(void **state)
{
    expect_error("queue = { outbound = {\n next-hop = ( { if = \"rcpt-domain\"; eq = \"x\"; then = \"nowhere\"; },\n"
                 " { else = false; } ); }; };\n", 2, "nowhere");
    expect_error("session = { rcpt = { lookup = {\n addresses = \"list/missing\"; }; }; };\n", 2,
                 "list/missing");
}

static void test_lookup_without_lookup_true(void **state)
{
    expect_error("remote = { lmtp = { address = \"127.0.0.1\"; protocol = \"lmtp\"; }; };\n"
                 "session = { rcpt = { lookup = {\n addresses = \"remote/lmtp\"; }; }; };\n", 3,
                 "lookup = false");
    expect_error("remote = { imap = { address = \"127.0.0.1\"; protocol = \"imap\"; }; };\n"
                 "auth-service = { socket = \"/tmp/x\";\n lookup = \"remote/imap\"; };\n", 3,
                 "lookup = false");
}

static void test_secret_file_unreadable(void **state)
{
    expect_error("remote = { a = { address = \"h\"; auth = { username = \"u\";\n"
                 " secret-file = \"/nonexistent/secret\"; }; }; };\n", 2,
                 "cannot read /nonexistent/secret");
}

static void test_secret_file_read_and_world_readable(void **state)
{
    char sf[256], err[8192];
    snprintf(sf, sizeof sf, "/tmp/nexthop-secret-%d", (int)getpid());
    FILE *fp = fopen(sf, "w");
    fputs("s3cret\n", fp);
    fclose(fp);
    chmod(sf, 0600);
    char text[1024];
    snprintf(text, sizeof text,
             "remote = { a = { address = \"h\"; auth = { username = \"u\"; secret-file = \"%s\"; }; }; };\n", sf);
    struct nh_config *cfg = expect_ok(text);
    assert_string_equal(config_remote(cfg, "a")->ep.auth_secret, "s3cret");
    assert_false(cfg->world_readable_secret);
    config_unref(cfg);
    chmod(sf, 0644);   /* a secret-file anyone can read is flagged too */
    cfg = expect_ok(text);
    assert_true(cfg->world_readable_secret);
    assert_string_equal(cfg->exposed_secret_file, sf);
    config_unref(cfg);
    unlink(sf);

    write_conf("remote = { a = { address = \"h\"; auth = { username = \"u\"; secret = \"x\"; }; }; };\n");
    chmod(path, 0644);
    cfg = config_load(path, err, sizeof err);
    assert_non_null(cfg);
    assert_true(cfg->world_readable_secret);
    config_unref(cfg);
    unlink(path);
}

/* tls.ca-file is read at load: missing, unreadable or without a certificate is FILE:LINE. */
static void test_tls_ca_file(void **state)
{
    expect_error("remote = { a = { address = \"h\";\n tls = { ca-file = \"/nonexistent/ca.pem\"; }; }; };\n",
                 2, "remote.a.tls.ca-file: CA file /nonexistent/ca.pem: No such file or directory");
    char junk[256], text[1024];
    snprintf(junk, sizeof junk, "/tmp/nexthop-ca-%d.pem", (int)getpid());
    FILE *fp = fopen(junk, "w");
    assert_non_null(fp);
    fputs("this is not a certificate\n", fp);
    fclose(fp);
    snprintf(text, sizeof text, "remote = { a = { address = \"h\";\n\n tls = { ca-file = \"%s\"; }; }; };\n", junk);
    expect_error(text, 3, "holds no PEM certificate");
    unlink(junk);

    snprintf(text, sizeof text, "remote = { a = { address = \"h\"; tls = { ca-file = \"%s/test-ca.pem\"; }; }; };\n",
             TEST_DATA_DIR);
    struct nh_config *cfg = expect_ok(text);
    const struct remote_def *r = config_remote(cfg, "a");
    assert_non_null(r->ep.tls_ca_pem);   /* read now: privileges may be dropped later */
    assert_non_null(strstr(r->ep.tls_ca_pem, "BEGIN CERTIFICATE"));
    config_unref(cfg);
}

/* A unix socket has no host name: TLS over it needs tls.server-name. */
static void test_tls_unix_needs_server_name(void **state)
{
    expect_error("remote = { a = { address = \"unix:/run/lmtp\"; protocol = \"lmtp\";\n"
                 " tls = { implicit = true; }; }; };\n", 2, "remote.a: TLS over a unix socket needs tls.server-name");
    expect_error("remote = {\n a = { address = \"unix:/run/lmtp\"; protocol = \"lmtp\"; }; };\n", 2,
                 "needs tls.server-name");
    config_unref(expect_ok("remote = { a = { address = \"unix:/run/lmtp\"; protocol = \"lmtp\";"
                           " tls = { server-name = \"mail.example.org\"; }; }; };\n"));
    config_unref(expect_ok("remote = { a = { address = \"unix:/run/lmtp\"; protocol = \"lmtp\";"
                           " tls = { enable = false; }; }; };\n"));
    config_unref(expect_ok("remote = { a = { address = \"unix:/run/lmtp\"; protocol = \"lmtp\";"
                           " tls = { allow-invalid-certs = true; }; }; };\n"));
}

static void test_syntax_error(void **state)
{
    expect_error("milter = {\n socket = ;\n};\n", 2, "syntax error");
}

static void test_all_errors_reported(void **state)
{
    char err[8192];
    struct nh_config *cfg = config_load(write_conf("milter = { bogus = 1; };\nrouting = { other = 2; };\n"),
                                        err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, ":1: unknown key 'bogus'"));
    assert_non_null(strstr(err, ":2: unknown key 'other'"));
    unlink(path);
}

static void test_bad_values(void **state)
{
    expect_error("routing = {\n on-tempfail = \"retry\"; };\n", 2, "on-tempfail");
    expect_error("routing = {\n action = \"bounce\"; };\n", 2, "bounce");
    expect_error("milter = {\n socket-mode = \"0999\"; };\n", 2, "octal mode");
    expect_error("remote = { a = { address = \"h\";\n port = 70000; }; };\n", 2, "not a TCP port");
    expect_error("milter = { log = {\n level = \"loud\"; }; };\n", 2, "milter.log.level: must be error, warning, info or debug, not 'loud'");
    expect_error("list = {\n l = \"http://x\"; };\n", 2, "file:///path");
}

/* attack-admin 5: Postfix's spelling must not become port 127 on every interface */
static void test_milter_socket_spelling(void **state)
{
    const char *good[][2] = {
        { "unix:/run/m.sock", NULL }, { "local:/run/m.sock", NULL }, { "/run/m.sock", NULL },
        { "inet:8895@127.0.0.1", NULL }, { "inet6:8895@::1", NULL }, { "inet:8895@0.0.0.0", NULL },
        { "inet:127.0.0.1:8895", "inet:8895@127.0.0.1" }, { "[::1]:8895", "inet6:8895@::1" },
        { "inet:localhost:8895", "inet:8895@localhost" },
    };
    char conf[300], conn[512], e[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(conf, sizeof conf, "milter = { socket = \"%s\"; };\n", good[i][0]);
        config_unref(expect_ok(conf));
        if (good[i][1]) {
            assert_int_equal(sockspec_milter(good[i][0], conn, sizeof conn, e, sizeof e), 0);
            assert_string_equal(conn, good[i][1]);
        }
    }
    expect_error("milter = {\n socket = \"inet:8895\"; };\n", 2,
                 "milter.socket: 'inet:8895' names no address, so libmilter would listen on every "
                 "interface: write inet:8895@127.0.0.1 (or inet:8895@0.0.0.0");
    expect_error("milter = {\n socket = \"inet:127.0.0.1:\"; };\n", 2, "milter.socket: 'inet:127.0.0.1:'");
    /* the other TCP listeners too (recheck: socketmap.listen = "inet:8896" listened on 0.0.0.0) */
    expect_error("socketmap = {\n listen = \"inet:8896\"; };\n", 2,
                 "socketmap.listen: 'inet:8896' names no address, so it would listen on every interface");
    expect_error("stats = {\n listen = \"9188\"; };\n", 2, "stats.listen: '9188' names no address");
    expect_error("socketmap = {\n listen = \"127.0.0.1:map\"; };\n", 2, "port 'map' is not a number");
    config_unref(expect_ok("socketmap = { listen = \"inet:127.0.0.1:8896\"; };\n"
                           "stats = { listen = \"[::1]:9188\"; };\n"));
    expect_error("milter = {\n socket = \"inet:http@127.0.0.1\"; };\n", 2, "port 'http' is not a number");
    expect_error("milter = {\n socket = \"inet:::1:8895\"; };\n", 2, "milter.socket: 'inet:::1:8895' is neither");
    expect_error("milter = {\n socket = \"inet6:8895@127.0.0.1\"; };\n", 2, "inet6 needs an IPv6 address");
    expect_error("milter = {\n socket = \"inet:8895@127.0.0.1:25\"; };\n", 2, "is not an address or host name");
}

/* attack-admin 6: an unquoted 770 is decimal (mode 01402, world-usable) */
static void test_socket_mode_integer(void **state)
{
    expect_error("milter = {\n socket-mode = 770; };\n", 2,
                 "socket-mode: must be an octal string such as \"0660\"");
    expect_error("control = { socket = \"/run/c.sock\";\n mode = 660; };\n", 2, "mode: must be an octal string");
    expect_error("milter = {\n socket-mode = \"01770\"; };\n", 2, "octal");
}

/* attack-admin 7: an unknown user or group is a load-time error, so -n and a reload catch it */
static void test_user_group_exist(void **state)
{
    expect_error("milter = {\n user = \"no-such-user-here\"; };\n", 2,
                 "milter.user: no user 'no-such-user-here' on this machine");
    expect_error("milter = {\n group = \"no-such-group-here\"; };\n", 2,
                 "milter.group: no group 'no-such-group-here' on this machine");
    expect_error("control = { socket = \"/run/c.sock\";\n group = \"no-such-group-here\"; };\n", 2,
                 "control.group: no group 'no-such-group-here' on this machine");
    config_unref(expect_ok("milter = { user = \"root\"; group = \"root\"; };\n"));
}

/* attack-hostile 3: the control socket's own group and mode; by default the milter socket's */
static void test_control_group_mode(void **state)
{
    struct nh_config *cfg = expect_ok("milter = { group = \"root\"; socket-mode = \"0660\"; };\n"
                                      "control = { socket = \"/run/c.sock\"; };\n");
    assert_string_equal(cfg->control_group, "root");
    assert_int_equal(cfg->control_mode, 0660);
    config_unref(cfg);
    cfg = expect_ok("milter = { group = \"root\"; };\n"
                    "control = { socket = \"/run/c.sock\"; group = \"nogroup\"; mode = \"0600\"; };\n");
    assert_string_equal(cfg->control_group, "nogroup");
    assert_int_equal(cfg->control_mode, 0600);
    config_unref(cfg);
}

static void test_example_config_loads(void **state)
{
    char err[8192], example[512];
    snprintf(example, sizeof example, "%s/../../../conf/milter-nexthop.conf", TEST_DATA_DIR);
    struct nh_config *cfg = config_load(example, err, sizeof err);
    if (!cfg)
        fail_msg("example config: %s", err);
    assert_non_null(policy_list(&cfg->policy, "list/local-domains"));
    assert_non_null(policy_list(&cfg->policy, "remote/lmtp"));
    config_unref(cfg);
}

static void test_refcount(void **state)
{
    struct nh_config *cfg = expect_ok("milter = { socket = \"inet:1@127.0.0.1\"; };\n");
    config_ref(cfg);
    config_unref(cfg);
    assert_string_equal(cfg->socket, "inet:1@127.0.0.1");
    config_unref(cfg);
}

/* -n -v prints every key of the schema with its value in force, and no secret. */
static void test_dump_covers_schema(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    char db[64], text_in[1024];
    snprintf(db, sizeof db, "/tmp/nexthop-dump-%d.db", (int)getpid());
    FILE *fp = fopen(db, "w");   /* an empty file is an empty SQLite database */
    fclose(fp);
    /* conninfo means nothing to sqlite, but it is a secret wherever it appears */
    snprintf(text_in, sizeof text_in,
             "remote = { r1 = { address = \"127.0.0.1\"; auth = { username = \"u\"; secret = \"Very-Secret-1\"; }; }; };\n"
             "database = { db1 = { type = \"sqlite\"; path = \"%s\"; conninfo = \"password=Very-Secret-2\";\n"
             "  lookup = { q = \"SELECT 1 WHERE ? = 'a'\"; }; }; };\n", db);
    struct nh_config *cfg = expect_ok(text_in);
    unlink(db);
    FILE *out = open_memstream(&text, &len);
    config_dump(cfg, out);
    fclose(out);
    for (size_t i = 0; i < config_schema_len; i++) {
        const struct key_def *k = &config_schema[i];
        char want[300];
        const char *star = strchr(k->path, '*');
        if (k->type == K_GROUP || k->type == K_LISTVAL || strstr(k->path, "secret-file"))
            continue;
        const char *id = strncmp(k->path, "remote.", 7) == 0 ? "r1" : "db1";
        if (star)
            snprintf(want, sizeof want, "\n%.*s%s%s = ", (int)(star - k->path), k->path, id, star + 1);
        else
            snprintf(want, sizeof want, "\n%s = ", k->path);
        if (strcmp(k->path, "database.*.lookup.*") == 0)
            snprintf(want, sizeof want, "\ndatabase.db1.lookup.q = ");
        if (!strstr(text, want) && strncmp(text, want + 1, strlen(want + 1)) != 0)
            fail_msg("-n -v does not print %s:\n%s", want + 1, text);
    }
    assert_null(strstr(text, "Very-Secret"));
    assert_non_null(strstr(text, "remote.r1.auth.secret = (set, not shown)"));
    assert_non_null(strstr(text, "routing.on-tempfail = "));
    free(text);
    config_unref(cfg);
}

int main(void)
{
    log_init("test", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_remote_defaults),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_unknown_protocol),
        cmocka_unit_test(test_rule_names_undefined),
        cmocka_unit_test(test_lookup_without_lookup_true),
        cmocka_unit_test(test_secret_file_unreadable),
        cmocka_unit_test(test_secret_file_read_and_world_readable),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_milter_socket_spelling),
        cmocka_unit_test(test_socket_mode_integer),
        cmocka_unit_test(test_user_group_exist),
        cmocka_unit_test(test_control_group_mode),
        cmocka_unit_test(test_example_config_loads),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_tls_ca_file),
        cmocka_unit_test(test_tls_unix_needs_server_name),
        cmocka_unit_test(test_dump_covers_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
