/*
 * test_rules.c - unit tests of common/policy/rules.c, table-driven: every
 * comparator and its not- form on every kind of variable, nesting, first
 * match wins, value kinds, CIDR v4/v6/mapped, numeric priority, regexes
 * compiled once at load, every load error with its FILE:LINE: key, and
 * in-list on inline, file and sqlite lists including a lookup that fails
 * after load.
 *
 * The config is built by hand (remotes and lists), rules are read with
 * libconfig from strings; the sqlite database lives in a temporary
 * directory created by the test.
 */
#include <dlfcn.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libconfig.h>
#include <sqlite3.h>

#include "config.h"
#include "lists.h"
#include "rules.h"
#include "util.h"

#define RULE_PATH "queue.outbound.next-hop"

/* Counts regcomp calls made by rules.c, to show regexes compile at load only. */
static atomic_int regcomp_calls;

int regcomp(regex_t *restrict preg, const char *restrict pattern, int cflags)
{
    static int (*real_regcomp)(regex_t *restrict, const char *restrict, int);
    if (!real_regcomp)
        *(void **)&real_regcomp = dlsym(RTLD_NEXT, "regcomp");
    regcomp_calls++;
    return real_regcomp(preg, pattern, cflags);
}

struct fixture {
    char dir[64];
    char db_path[128];
    struct database_cfg db;
    struct nh_config cfg;
};

static struct fixture *fx;

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s", msg);
    sqlite3_close(db);
}

static struct list *must_sql_list(const char *name, const struct database_cfg *db, const char *query)
{
    char err[ERRLEN] = "";
    struct list *l = list_new_sql(name, db, query, err, sizeof err);
    if (!l)
        fail_msg("%s: %s", name, err);
    return l;
}

static int setup(void **state)
{
    static const char *const local[] = { "example.org", "Example.NET", "Alice@Example.org" };
    char err[ERRLEN] = "";
    fx = xcalloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_rules.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->db_path, sizeof fx->db_path, "%s/routing.db", fx->dir);
    exec_sql(fx->db_path, "CREATE TABLE domains (name TEXT PRIMARY KEY);"
                          "INSERT INTO domains VALUES ('sql.example'), ('example.org');");
    fx->db = (struct database_cfg){ .id = (char *)"sql", .type = (char *)"sqlite", .path = fx->db_path };

    struct nh_config *cfg = &fx->cfg;
    cfg->remotes = xcalloc(3, sizeof *cfg->remotes);
    cfg->remotes[0] = (struct remote_def){ .id = (char *)"lmtp", .lookup = true };
    cfg->remotes[1] = (struct remote_def){ .id = (char *)"smtp", .lookup = false };
    cfg->remotes[2] = (struct remote_def){ .id = (char *)"mx2", .lookup = false };
    cfg->n_remotes = 3;
    cfg->policy.lists = xcalloc(4, sizeof *cfg->policy.lists);
    cfg->policy.lists[0] = list_new_inline("list/local", local, ARRAY_SIZE(local));
    cfg->policy.lists[1] = list_new_file("list/domains", "file://" TEST_DATA_DIR "/list-domains.txt", err,
                                  sizeof err);
    if (!cfg->policy.lists[1])
        fail_msg("%s", err);
    cfg->policy.lists[2] = must_sql_list("sql/domains", &fx->db, "SELECT 1 FROM domains WHERE name = ?");
    cfg->policy.lists[3] = list_new_remote("remote/lmtp", &cfg->remotes[0]);
    cfg->policy.n_lists = 4;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < fx->cfg.policy.n_lists; i++)
        list_free(fx->cfg.policy.lists[i]);
    free(fx->cfg.policy.lists);
    free(fx->cfg.remotes);
    unlink(fx->db_path);
    char path[160];
    snprintf(path, sizeof path, "%s/flaky.db", fx->dir);
    unlink(path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static const struct remote_def *names_remote(const void *ctx, const char *id)
{
    return config_remote(ctx, id);
}

static struct list *names_list(const void *ctx, const char *name)
{
    return policy_list(&((const struct nh_config *)ctx)->policy, name);
}

/* How rules find the remotes and lists of cfg, as the config loader answers. */
static const struct rule_names *names_of(const struct nh_config *cfg)
{
    static struct rule_names names;
    names = (struct rule_names){ cfg, names_remote, names_list };
    return &names;
}

/* Parses "queue = { outbound = { next-hop = BODY; }; };" (BODY starts on line 1). */
static struct rule *parse_with(struct nh_config *cfg, const char *body, enum rule_kind kind,
                               char *err, size_t errlen)
{
    config_t lc;
    size_t len = strlen(body) + 100;
    char *text = xmalloc(len);
    snprintf(text, len, "queue = { outbound = { next-hop = %s; }; };\n", body);
    config_init(&lc);
    if (!config_read_string(&lc, text))
        fail_msg("libconfig refused the test text at line %d: %s\n%s", config_error_line(&lc),
                 config_error_text(&lc), text);
    err[0] = '\0';
    struct rule *r = rule_parse(config_lookup(&lc, RULE_PATH), kind, names_of(cfg), err, errlen);
    config_destroy(&lc);   /* the rule must not keep pointers into it */
    free(text);
    return r;
}

static struct rule *must_parse(const char *body, enum rule_kind kind)
{
    char err[ERRLEN];
    struct rule *r = parse_with(&fx->cfg, body, kind, err, sizeof err);
    if (!r)
        fail_msg("rule refused: %s\n%s", err, body);
    return r;
}

/* Evaluates and returns the value text; asserts that no lookup failed. */
static const char *eval_str(const struct rule *r, const struct rule_vars *vars,
                            struct rule_result *res)
{
    char err[ERRLEN] = "";
    if (rule_eval(r, vars, NULL, res, err, sizeof err) != 0)
        fail_msg("rule_eval failed: %s", err);
    return res->str;
}

/* ---- every comparator on every kind of variable ---- */

#define VARS(...) { .v = { __VA_ARGS__ } }

struct compare_case {
    const char *cond;            /* the condition, inside { ... then = "lmtp"; } */
    struct rule_vars vars;
    bool match;
};

static const struct compare_case compare_cases[] = {
    /* rcpt: case-insensitive */
    { "if = \"rcpt\"; eq = \"Alice@Example.ORG\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; eq = \"bob@example.org\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; eq = \"alice@example.org\";", VARS([RV_RCPT] = "alice@example.org.x"), false },
    { "if = \"rcpt\"; ne = \"Alice@Example.ORG\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; ne = \"bob@example.org\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; not-eq = \"bob@example.org\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; not-eq = \"ALICE@example.org\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; starts-with = \"ALICE@\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; starts-with = \"bob@\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; starts-with = \"alice@example.org+\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; not-starts-with = \"ALICE@\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; not-starts-with = \"bob@\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; ends-with = \"@EXAMPLE.ORG\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; ends-with = \"@example.net\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; ends-with = \"xalice@example.org\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; not-ends-with = \"@example.net\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; not-ends-with = \"@Example.Org\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; matches = \"^alice@[a-z]+[.]ORG$\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; matches = \"bob|ice\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; matches = \"^bob\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; not-matches = \"^bob\";", VARS([RV_RCPT] = "alice@example.org"), true },
    { "if = \"rcpt\"; not-matches = \"^ALICE\";", VARS([RV_RCPT] = "alice@example.org"), false },
    { "if = \"rcpt\"; in-list = \"list/local\";", VARS([RV_RCPT] = "ALICE@example.ORG"), true },
    { "if = \"rcpt\"; in-list = \"list/local\";", VARS([RV_RCPT] = "bob@example.org"), false },
    { "if = \"rcpt\"; not-in-list = \"list/local\";", VARS([RV_RCPT] = "bob@example.org"), true },
    { "if = \"rcpt\"; not-in-list = \"list/local\";", VARS([RV_RCPT] = "alice@example.org"), false },
    /* rcpt-domain: inline, file and sqlite lists */
    { "if = \"rcpt-domain\"; eq = \"EXAMPLE.org\";", VARS([RV_RCPT_DOMAIN] = "example.org"), true },
    { "if = \"rcpt-domain\"; ne = \"example.org\";", VARS([RV_RCPT_DOMAIN] = "example.com"), true },
    { "if = \"rcpt-domain\"; ends-with = \".ORG\";", VARS([RV_RCPT_DOMAIN] = "example.org"), true },
    { "if = \"rcpt-domain\"; not-ends-with = \".org\";", VARS([RV_RCPT_DOMAIN] = "example.org"), false },
    { "if = \"rcpt-domain\"; starts-with = \"sub.\";", VARS([RV_RCPT_DOMAIN] = "sub.example.org"), true },
    { "if = \"rcpt-domain\"; not-starts-with = \"sub.\";", VARS([RV_RCPT_DOMAIN] = "example.org"), true },
    { "if = \"rcpt-domain\"; matches = \"^(sub[.])?example[.]org$\";", VARS([RV_RCPT_DOMAIN] = "SUB.example.org"), true },
    { "if = \"rcpt-domain\"; not-matches = \"^(sub[.])?example[.]org$\";", VARS([RV_RCPT_DOMAIN] = "example.net"), true },
    { "if = \"rcpt-domain\"; in-list = \"list/local\";", VARS([RV_RCPT_DOMAIN] = "example.net"), true },
    { "if = \"rcpt-domain\"; in-list = \"list/domains\";", VARS([RV_RCPT_DOMAIN] = "tabbed.example"), true },
    { "if = \"rcpt-domain\"; in-list = \"list/domains\";", VARS([RV_RCPT_DOMAIN] = "other.example"), false },
    { "if = \"rcpt-domain\"; not-in-list = \"list/domains\";", VARS([RV_RCPT_DOMAIN] = "other.example"), true },
    { "if = \"rcpt-domain\"; in-list = \"sql/domains\";", VARS([RV_RCPT_DOMAIN] = "sql.example"), true },
    { "if = \"rcpt-domain\"; in-list = \"sql/domains\";", VARS([RV_RCPT_DOMAIN] = "nope.example"), false },
    { "if = \"rcpt-domain\"; not-in-list = \"sql/domains\";", VARS([RV_RCPT_DOMAIN] = "nope.example"), true },
    { "if = \"rcpt-domain\"; not-in-list = \"sql/domains\";", VARS([RV_RCPT_DOMAIN] = "sql.example"), false },
    /* sender, sender-domain; unset (the null sender <>) compares as "" */
    { "if = \"sender\"; eq = \"Bounce@Lists.Example\";", VARS([RV_SENDER] = "bounce@lists.example"), true },
    { "if = \"sender\"; starts-with = \"BOUNCE\";", VARS([RV_SENDER] = "bounce@lists.example"), true },
    { "if = \"sender\"; eq = \"\";", VARS([RV_RCPT] = "a@b.example"), true },
    { "if = \"sender\"; ne = \"\";", VARS([RV_RCPT] = "a@b.example"), false },
    { "if = \"sender\"; matches = \"^$\";", VARS([RV_RCPT] = "a@b.example"), true },
    { "if = \"sender\"; in-list = \"list/local\";", VARS([RV_RCPT] = "a@b.example"), false },
    { "if = \"sender\"; not-in-list = \"list/local\";", VARS([RV_RCPT] = "a@b.example"), true },
    { "if = \"sender\"; starts-with = \"\";", VARS([RV_RCPT] = "a@b.example"), true },
    { "if = \"sender-domain\"; eq = \"LISTS.example\";", VARS([RV_SENDER_DOMAIN] = "lists.example"), true },
    { "if = \"sender-domain\"; not-ends-with = \".EXAMPLE\";", VARS([RV_SENDER_DOMAIN] = "lists.example"), false },
    { "if = \"sender-domain\"; in-list = \"sql/domains\";", VARS([RV_SENDER_DOMAIN] = "sql.example"), true },
    /* helo-domain: case-insensitive */
    { "if = \"helo-domain\"; eq = \"MX.Example.NET\";", VARS([RV_HELO_DOMAIN] = "mx.example.net"), true },
    { "if = \"helo-domain\"; ends-with = \".EXAMPLE.net\";", VARS([RV_HELO_DOMAIN] = "mx.example.net"), true },
    { "if = \"helo-domain\"; matches = \"^MX[.]\";", VARS([RV_HELO_DOMAIN] = "mx.example.net"), true },
    { "if = \"helo-domain\"; not-starts-with = \"MX.\";", VARS([RV_HELO_DOMAIN] = "mx.example.net"), false },
    /* authenticated-as: case-sensitive */
    { "if = \"authenticated-as\"; eq = \"alice\";", VARS([RV_AUTHENTICATED_AS] = "alice"), true },
    { "if = \"authenticated-as\"; eq = \"Alice\";", VARS([RV_AUTHENTICATED_AS] = "alice"), false },
    { "if = \"authenticated-as\"; ne = \"Alice\";", VARS([RV_AUTHENTICATED_AS] = "alice"), true },
    { "if = \"authenticated-as\"; starts-with = \"Al\";", VARS([RV_AUTHENTICATED_AS] = "alice"), false },
    { "if = \"authenticated-as\"; not-starts-with = \"Al\";", VARS([RV_AUTHENTICATED_AS] = "alice"), true },
    { "if = \"authenticated-as\"; ends-with = \"CE\";", VARS([RV_AUTHENTICATED_AS] = "alice"), false },
    { "if = \"authenticated-as\"; ends-with = \"ce\";", VARS([RV_AUTHENTICATED_AS] = "alice"), true },
    { "if = \"authenticated-as\"; matches = \"^ALICE$\";", VARS([RV_AUTHENTICATED_AS] = "alice"), false },
    { "if = \"authenticated-as\"; not-matches = \"^ALICE$\";", VARS([RV_AUTHENTICATED_AS] = "alice"), true },
    { "if = \"authenticated-as\"; matches = \"^al\";", VARS([RV_AUTHENTICATED_AS] = "alice"), true },
    { "if = \"authenticated-as\"; ne = \"\";", VARS([RV_RCPT] = "x@y.example"), false },
    /* listener: case-sensitive; booleans and durations compare as their text */
    { "if = \"listener\"; eq = \"smtpd\";", VARS([RV_LISTENER] = "smtpd"), true },
    { "if = \"listener\"; eq = \"SMTPD\";", VARS([RV_LISTENER] = "smtpd"), false },
    { "if = \"listener\"; ne = \"submission\";", VARS([RV_LISTENER] = "smtpd"), true },
    { "if = \"listener\"; starts-with = \"smtp\";", VARS([RV_LISTENER] = "smtpd"), true },
    { "if = \"listener\"; in-list = \"list/local\";", VARS([RV_LISTENER] = "smtpd"), false },
    { "if = \"listener\"; eq = true;", VARS([RV_LISTENER] = "true"), true },
    { "if = \"listener\"; eq = \"1d\";", VARS([RV_LISTENER] = "1d"), true },
    { "if = \"listener\"; eq = \"1d\";", VARS([RV_LISTENER] = "24h"), false },
    /* priority: numbers compare as numbers for eq/ne */
    { "if = \"priority\"; eq = -4;", VARS([RV_PRIORITY] = "-4"), true },
    { "if = \"priority\"; eq = 4;", VARS([RV_PRIORITY] = "-4"), false },
    { "if = \"priority\"; eq = 4;", VARS([RV_PRIORITY] = "04"), true },
    { "if = \"priority\"; eq = 4L;", VARS([RV_PRIORITY] = "+4"), true },
    { "if = \"priority\"; eq = \"-4\";", VARS([RV_PRIORITY] = "-4"), true },
    { "if = \"priority\"; eq = \"+4\";", VARS([RV_PRIORITY] = "4"), true },
    { "if = \"priority\"; ne = -4;", VARS([RV_PRIORITY] = "-4"), false },
    { "if = \"priority\"; ne = 3;", VARS([RV_PRIORITY] = "-4"), true },
    { "if = \"priority\"; not-eq = 3;", VARS([RV_PRIORITY] = "3"), false },
    { "if = \"priority\"; eq = 0;", VARS([RV_RCPT] = "x@y.example"), false },
    { "if = \"priority\"; ne = 0;", VARS([RV_RCPT] = "x@y.example"), true },
    { "if = \"priority\"; eq = \"high\";", VARS([RV_PRIORITY] = "high"), true },
    { "if = \"priority\"; eq = 1;", VARS([RV_PRIORITY] = "1x"), false },
    { "if = \"priority\"; starts-with = \"-\";", VARS([RV_PRIORITY] = "-4"), true },
    { "if = \"priority\"; matches = \"^-[0-9]+$\";", VARS([RV_PRIORITY] = "-4"), true },
    /* remote-ip: eq/ne compare addresses against a network */
    { "if = \"remote-ip\"; eq = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "192.0.2.77"), true },
    { "if = \"remote-ip\"; eq = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "192.0.3.1"), false },
    { "if = \"remote-ip\"; ne = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "192.0.3.1"), true },
    { "if = \"remote-ip\"; ne = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "192.0.2.77"), false },
    { "if = \"remote-ip\"; not-eq = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "192.0.2.77"), false },
    { "if = \"remote-ip\"; eq = \"192.0.2.7\";", VARS([RV_REMOTE_IP] = "192.0.2.7"), true },
    { "if = \"remote-ip\"; eq = \"192.0.2.7\";", VARS([RV_REMOTE_IP] = "192.0.2.70"), false },
    { "if = \"remote-ip\"; eq = \"2001:db8::/32\";", VARS([RV_REMOTE_IP] = "2001:DB8:0:1::5"), true },
    { "if = \"remote-ip\"; eq = \"2001:db8::/32\";", VARS([RV_REMOTE_IP] = "2001:db9::1"), false },
    { "if = \"remote-ip\"; eq = \"2001:db8::1\";", VARS([RV_REMOTE_IP] = "2001:db8:0:0::1"), true },
    { "if = \"remote-ip\"; eq = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "::ffff:192.0.2.9"), true },
    { "if = \"remote-ip\"; ne = \"192.0.2.0/24\";", VARS([RV_REMOTE_IP] = "::ffff:192.0.2.9"), false },
    { "if = \"remote-ip\"; eq = \"10.0.0.0/8\";", VARS([RV_RCPT] = "x@y.example"), false },
    { "if = \"remote-ip\"; ne = \"10.0.0.0/8\";", VARS([RV_RCPT] = "x@y.example"), true },
    { "if = \"remote-ip\"; eq = \"10.0.0.0/8\";", VARS([RV_REMOTE_IP] = "10.garbage"), false },
    { "if = \"remote-ip\"; starts-with = \"192.0.2.\";", VARS([RV_REMOTE_IP] = "192.0.2.7"), true },
    { "if = \"remote-ip\"; not-starts-with = \"192.0.2.\";", VARS([RV_REMOTE_IP] = "192.0.2.7"), false },
    { "if = \"remote-ip\"; ends-with = \".7\";", VARS([RV_REMOTE_IP] = "192.0.2.7"), true },
    { "if = \"remote-ip\"; matches = \"^192[.]0[.]2[.]\";", VARS([RV_REMOTE_IP] = "192.0.2.7"), true },
    /* local-ip */
    { "if = \"local-ip\"; eq = \"127.0.0.0/8\";", VARS([RV_LOCAL_IP] = "127.0.0.1"), true },
    { "if = \"local-ip\"; eq = \"::1\";", VARS([RV_LOCAL_IP] = "::1"), true },
    { "if = \"local-ip\"; ne = \"::1\";", VARS([RV_LOCAL_IP] = "127.0.0.1"), true },
    { "if = \"local-ip\"; eq = \"fe80::/10\";", VARS([RV_LOCAL_IP] = "fe80::1%eth0"), true },
    /* a variable the condition does not name does not leak in */
    { "if = \"rcpt\"; eq = \"x@y.example\";", VARS([RV_SENDER] = "x@y.example"), false },
};

static void test_compare_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(compare_cases); i++) {
        const struct compare_case *c = &compare_cases[i];
        char body[512];
        struct rule_result res;
        snprintf(body, sizeof body, "( { %s then = \"lmtp\"; }, { else = false; } )", c->cond);
        struct rule *r = must_parse(body, RULE_REMOTE_OR_FALSE);
        eval_str(r, &c->vars, &res);
        if (res.is_false == c->match)
            fail_msg("case %zu: { %s } gave %s, want %s", i, c->cond, res.str,
                     c->match ? "lmtp" : "false");
        assert_string_equal(res.str, c->match ? "lmtp" : "false");
        assert_ptr_equal(res.remote, c->match ? &fx->cfg.remotes[0] : NULL);
        rule_free(r);
    }
}

/* ---- nesting and branch order ---- */

struct flow_case {
    const char *body;
    struct rule_vars vars;
    const char *want;
};

static const char nested[] =
    "(\n"
    "  { none-of = (\n"
    "      { all-of = (\n"
    "          { if = \"rcpt-domain\"; in-list = \"list/local\"; },\n"
    "          { any-of = (\n"
    "              { if = \"remote-ip\"; eq = \"192.0.2.0/24\"; },\n"
    "              { if = \"authenticated-as\"; ne = \"\"; }\n"
    "          ); }\n"
    "      ); }\n"
    "    ); then = \"smtp\"; },\n"
    "  { else = \"lmtp\"; }\n"
    ")";

static const char first_wins[] =
    "( { if = \"rcpt-domain\"; eq = \"example.org\"; then = \"lmtp\"; },\n"
    "  { if = \"rcpt-domain\"; ends-with = \".org\"; then = \"smtp\"; },\n"
    "  { if = \"rcpt-domain\"; ends-with = \"example.org\"; then = \"mx2\"; },\n"
    "  { else = false; } )";

static const char all_of_none[] =
    "( { all-of = ( { if = \"listener\"; eq = \"smtpd\"; },\n"
    "               { none-of = ( { if = \"sender\"; eq = \"\"; },\n"
    "                             { if = \"sender-domain\"; in-list = \"sql/domains\"; } ); } );\n"
    "    then = \"mx2\"; },\n"
    "  { any-of = ( { if = \"priority\"; eq = 1; }, { if = \"priority\"; eq = 2; } ); then = \"smtp\"; },\n"
    "  { else = \"lmtp\"; } )";

static const struct flow_case flow_cases[] = {
    { nested, VARS([RV_RCPT_DOMAIN] = "example.org", [RV_REMOTE_IP] = "192.0.2.5"), "lmtp" },
    { nested, VARS([RV_RCPT_DOMAIN] = "example.org", [RV_REMOTE_IP] = "198.51.100.1",
                   [RV_AUTHENTICATED_AS] = "alice"), "lmtp" },
    { nested, VARS([RV_RCPT_DOMAIN] = "example.org", [RV_REMOTE_IP] = "198.51.100.1"), "smtp" },
    { nested, VARS([RV_RCPT_DOMAIN] = "elsewhere.example", [RV_REMOTE_IP] = "192.0.2.5"), "smtp" },
    { first_wins, VARS([RV_RCPT_DOMAIN] = "example.org"), "lmtp" },
    { first_wins, VARS([RV_RCPT_DOMAIN] = "sub.example.org"), "smtp" },
    { first_wins, VARS([RV_RCPT_DOMAIN] = "other.org"), "smtp" },
    { first_wins, VARS([RV_RCPT_DOMAIN] = "example.com"), "false" },
    { all_of_none, VARS([RV_LISTENER] = "smtpd", [RV_SENDER] = "a@b.example", [RV_SENDER_DOMAIN] = "b.example"), "mx2" },
    { all_of_none, VARS([RV_LISTENER] = "smtpd"), "lmtp" },
    { all_of_none, VARS([RV_LISTENER] = "smtpd", [RV_SENDER] = "a@sql.example",
                        [RV_SENDER_DOMAIN] = "sql.example", [RV_PRIORITY] = "2"), "smtp" },
    { all_of_none, VARS([RV_LISTENER] = "pickup", [RV_SENDER] = "a@b.example", [RV_PRIORITY] = "1"), "smtp" },
    { all_of_none, VARS([RV_LISTENER] = "pickup", [RV_PRIORITY] = "3"), "lmtp" },
    { "\"smtp\"", VARS([RV_RCPT] = "a@b.example"), "smtp" },
    { "false", VARS([RV_RCPT] = "a@b.example"), "false" },
    { "( { else = \"mx2\"; } )", VARS([RV_RCPT] = "a@b.example"), "mx2" },
};

static void test_flow_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(flow_cases); i++) {
        struct rule_result res;
        struct rule *r = must_parse(flow_cases[i].body, RULE_REMOTE_OR_FALSE);
        const char *got = eval_str(r, &flow_cases[i].vars, &res);
        if (strcmp(got, flow_cases[i].want) != 0)
            fail_msg("case %zu: got %s, want %s", i, got, flow_cases[i].want);
        assert_true(res.is_false == (strcmp(flow_cases[i].want, "false") == 0));
        if (!res.is_false)
            assert_string_equal(res.remote->id, flow_cases[i].want);
        assert_false(rule_uses_remote(r));
        rule_free(r);
    }
}

/* ---- value kinds ---- */

static void test_value_kinds(void **state)
{
    (void)state;
    struct rule_vars vars = VARS([RV_RCPT_DOMAIN] = "sql.example");
    struct rule_result res;
    struct rule *r;

    r = must_parse("( { if = \"rcpt-domain\"; in-list = \"sql/domains\"; then = \"sql/domains\"; },\n"
                   "  { else = false; } )", RULE_LIST_OR_FALSE);
    eval_str(r, &vars, &res);
    assert_false(res.is_false);
    assert_ptr_equal(res.list, policy_list(&fx->cfg.policy, "sql/domains"));
    assert_string_equal(res.str, "sql/domains");
    rule_free(r);

    r = must_parse("\"remote/lmtp\"", RULE_LIST_OR_FALSE);
    eval_str(r, &vars, &res);
    assert_ptr_equal(res.list, fx->cfg.policy.lists[3]);
    assert_ptr_equal(list_remote(res.list), &fx->cfg.remotes[0]);
    assert_false(rule_uses_remote(r));   /* naming a list as a value contacts nobody */
    rule_free(r);

    r = must_parse("false", RULE_LIST_OR_FALSE);
    eval_str(r, &vars, &res);
    assert_true(res.is_false);
    assert_null(res.list);
    assert_string_equal(res.str, "false");
    rule_free(r);

    static const char *const actions[] = { "header", "relay", "quarantine" };
    for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
        char body[200];
        snprintf(body, sizeof body, "( { if = \"rcpt-domain\"; eq = \"sql.example\"; then = \"%s\"; },"
                                    " { else = \"header\"; } )", actions[i]);
        r = must_parse(body, RULE_ACTION);
        eval_str(r, &vars, &res);
        assert_int_equal(res.action, (int)i);
        assert_string_equal(res.str, actions[i]);
        rule_free(r);
    }

    r = must_parse("( { if = \"rcpt\"; eq = \"x\"; then = 5; }, { else = \"anything at all\"; } )",
                   RULE_STRING);
    eval_str(r, &vars, &res);
    assert_string_equal(res.str, "anything at all");
    struct rule_vars x = VARS([RV_RCPT] = "x");
    eval_str(r, &x, &res);
    assert_string_equal(res.str, "5");
    rule_free(r);
}

static void test_rule_constant(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    struct rule_result res;
    struct rule *r;

    r = rule_constant(RULE_ACTION, "header", names_of(&fx->cfg), err, sizeof err);
    assert_non_null(r);
    eval_str(r, NULL, &res);
    assert_int_equal(res.action, ACTION_HEADER);
    rule_free(r);

    r = rule_constant(RULE_REMOTE_OR_FALSE, "false", names_of(&fx->cfg), err, sizeof err);
    eval_str(r, NULL, &res);
    assert_true(res.is_false);
    rule_free(r);

    r = rule_constant(RULE_REMOTE_OR_FALSE, NULL, names_of(&fx->cfg), err, sizeof err);
    eval_str(r, NULL, &res);
    assert_true(res.is_false);
    rule_free(r);

    r = rule_constant(RULE_REMOTE_OR_FALSE, "smtp", names_of(&fx->cfg), err, sizeof err);
    eval_str(r, NULL, &res);
    assert_ptr_equal(res.remote, &fx->cfg.remotes[1]);
    rule_free(r);

    assert_null(rule_constant(RULE_REMOTE_OR_FALSE, "nowhere", names_of(&fx->cfg), err, sizeof err));
    assert_string_equal(err, "default value 'nowhere': unknown remote 'nowhere'");
    assert_null(rule_constant(RULE_ACTION, "false", names_of(&fx->cfg), err, sizeof err));
    assert_string_equal(err, "default value 'false': must be header, relay or quarantine, not false");
    assert_null(rule_constant(RULE_LIST_OR_FALSE, "remote/smtp", names_of(&fx->cfg), err, sizeof err));
    assert_string_equal(err, "default value 'remote/smtp': remote smtp is used for lookups but "
                             "has lookup = false");

    /* no rule at all evaluates to false */
    assert_int_equal(rule_eval(NULL, NULL, NULL, &res, err, sizeof err), 0);
    assert_true(res.is_false);
    assert_false(rule_uses_remote(NULL));
    rule_free(NULL);
}

static void test_var_names(void **state)
{
    (void)state;
    static const char *const names[] = { "rcpt", "rcpt-domain", "sender", "sender-domain",
                                         "remote-ip", "local-ip", "helo-domain",
                                         "authenticated-as", "listener", "priority" };
    assert_int_equal(ARRAY_SIZE(names), RV__COUNT);
    for (int i = 0; i < RV__COUNT; i++) {
        assert_int_equal(rule_var_parse(names[i]), i);
        assert_string_equal(rule_var_name((enum rule_var)i), names[i]);
    }
    assert_int_equal(rule_var_parse("recipient"), -1);
    assert_int_equal(rule_var_parse("RCPT"), -1);
    assert_int_equal(rule_var_parse(""), -1);
}

/* ---- load errors: FILE:LINE: key: why ---- */

struct error_case {
    enum rule_kind kind;
    const char *body;
    const char *want;   /* the error starts with this */
};

#define P RULE_PATH

static const struct error_case error_cases[] = {
    /* unknown variable */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = \"lmtp\"; },\n"
      "  { if = \"recipient\"; eq = \"a@b\"; then = \"lmtp\"; },\n  { else = false; }\n)",
      "(string):3: " P "[1].if: unknown variable 'recipient'" },
    /* unknown comparator */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; equals = \"a@b\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].equals: unknown comparator 'equals'" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; not-ne = \"a@b\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].not-ne: unknown comparator 'not-ne'" },
    /* two comparators */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\";\n    ne = \"c@d\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):3: " P "[0].ne: two comparators: 'eq' and 'ne'" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { any-of = ( { if = \"rcpt\"; eq = \"a\"; } );\n    all-of = ( { if = \"rcpt\"; eq = \"b\"; } );"
      " then = \"lmtp\"; },\n  { else = false; } )",
      "(string):3: " P "[0].all-of: two comparators: 'any-of' and 'all-of'" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { any-of = ( { if = \"rcpt\"; eq = \"a\"; } );\n    if = \"rcpt\"; eq = \"b\"; then = \"lmtp\"; },\n"
      "  { else = false; } )",
      "(string):3: " P "[0].eq: two comparators: 'any-of' and 'eq'" },
    /* comparator and if out of step */
    { RULE_REMOTE_OR_FALSE, "(\n  { eq = \"a@b\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].eq: 'eq' needs if = \"<variable>\"" },
    { RULE_REMOTE_OR_FALSE, "(\n  { if = \"rcpt\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].if: missing comparator" },
    { RULE_REMOTE_OR_FALSE, "(\n  { then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0]: a branch needs if, any-of, all-of or none-of (or else)" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { any-of = (\n      { then = \"lmtp\"; } ); then = \"lmtp\"; },\n  { else = false; } )",
      "(string):3: " P "[0].any-of[0].then: 'then' belongs in a branch of the rule, not in a condition" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { any-of = (\n      { if = \"rcpt\"; eq = \"a\"; }, {} ); then = \"lmtp\"; },\n  { else = false; } )",
      "(string):3: " P "[0].any-of[1]: a condition needs if, any-of, all-of or none-of" },
    { RULE_REMOTE_OR_FALSE, "(\n  { if = 5; eq = \"a\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].if: must be a variable name (a string)" },
    /* missing then */
    { RULE_REMOTE_OR_FALSE, "(\n  { if = \"rcpt\"; eq = \"a@b\"; },\n  { else = false; } )",
      "(string):2: " P "[0]: missing then" },
    /* missing else, empty rule */
    { RULE_REMOTE_OR_FALSE, "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = \"lmtp\"; }\n)",
      "(string):2: " P "[0]: missing else: the last branch must be { else = ...; }" },
    { RULE_REMOTE_OR_FALSE, "()", "(string):1: " P ": empty rule: missing else" },
    /* branch after else, else with company */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { else = false; },\n  { if = \"rcpt\"; eq = \"a@b\"; then = \"lmtp\"; }\n)",
      "(string):3: " P "[1]: branch after else (else must be the last branch)" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = \"lmtp\"; },\n  { else = false;\n    then = \"lmtp\"; } )",
      "(string):4: " P "[1].then: 'then' cannot be used in an else branch" },
    /* shape of the rule and its branches */
    { RULE_REMOTE_OR_FALSE, "{ if = \"rcpt\"; eq = \"a\"; then = \"lmtp\"; }",
      "(string):1: " P ": must be a value or a list of branches" },
    { RULE_REMOTE_OR_FALSE, "[ \"lmtp\", \"smtp\" ]", "(string):1: " P ": must be a value or a list" },
    { RULE_REMOTE_OR_FALSE, "(\n  \"lmtp\",\n  { else = false; } )",
      "(string):2: " P "[0]: a branch must be a group" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { any-of = (); then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].any-of: holds no condition" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { any-of = \"rcpt\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].any-of: must be a list of conditions" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { all-of = ( \"rcpt\" ); then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].all-of[0]: a condition must be a group" },
    /* unknown remote */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\";\n    then = \"nowhere\"; },\n  { else = false; } )",
      "(string):3: " P "[0].then: unknown remote 'nowhere'" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = \"lmtp\"; },\n  { else = \"LMTP\"; } )",
      "(string):3: " P "[1].else: unknown remote 'LMTP'" },
    { RULE_REMOTE_OR_FALSE, "\"nowhere\"", "(string):1: " P ": unknown remote 'nowhere'" },
    /* unknown list */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt-domain\";\n    in-list = \"list/nope\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):3: " P "[0].in-list: unknown list 'list/nope'" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; not-in-list = \"remote/ghost\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].not-in-list: unknown list 'remote/ghost'" },
    { RULE_LIST_OR_FALSE, "\"sql/nope\"", "(string):1: " P ": unknown list 'sql/nope'" },
    { RULE_LIST_OR_FALSE, "\"lmtp\"", "(string):1: " P ": unknown list 'lmtp'" },
    /* remote without lookup = true */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; in-list = \"remote/smtp\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].in-list: remote smtp is used for lookups but has lookup = false" },
    { RULE_LIST_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a\"; then = \"remote/lmtp\"; },\n  { else = \"remote/mx2\"; } )",
      "(string):3: " P "[1].else: remote mx2 is used for lookups but has lookup = false" },
    /* wrong value kind */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = true; },\n  { else = false; } )",
      "(string):2: " P "[0].then: must be a remote id or false" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = 5; },\n  { else = false; } )",
      "(string):2: " P "[0].then: must be a remote id or false" },
    { RULE_ACTION, "\"deliver\"", "(string):1: " P ": 'deliver' must be header, relay or quarantine" },
    { RULE_ACTION, "false", "(string):1: " P ": must be header, relay or quarantine, not false" },
    { RULE_ACTION,
      "(\n  { if = \"rcpt\"; eq = \"a@b\"; then = \"relay\"; },\n  { else = \"Header\"; } )",
      "(string):3: " P "[1].else: 'Header' must be header, relay or quarantine" },
    { RULE_LIST_OR_FALSE, "true", "(string):1: " P ": must be a list name or false" },
    { RULE_STRING, "( { if = \"rcpt\"; eq = \"a\"; then = ( 1 ); }, { else = false; } )",
      "(string):1: " P "[0].then: must be a string or false" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; in-list = 5; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].in-list: must be a string" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = [ \"a\" ]; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].eq: must be a string, number or boolean" },
    /* bad CIDR, also deep inside a condition */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"remote-ip\"; eq = \"192.0.2.0/33\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].eq: '192.0.2.0/33': bad prefix length (0-32)" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"local-ip\"; ne = \"mx.example.org\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].ne: 'mx.example.org' is not an IP address or network" },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { all-of = (\n    { if = \"rcpt\"; eq = \"a\"; },\n    { any-of = (\n"
      "      { if = \"remote-ip\"; eq = \"2001:db8::/32\"; },\n"
      "      { if = \"remote-ip\"; not-eq = \"192.168.9.1/24\"; } ); } );\n"
      "    then = \"lmtp\"; },\n  { else = false; } )",
      "(string):6: " P "[0].all-of[1].any-of[1].not-eq: '192.168.9.1/24' has host bits set "
      "(did you mean 192.168.9.0/24?)" },
    /* bad regex */
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"rcpt\"; eq = \"x\"; then = \"lmtp\"; },\n"
      "  { if = \"rcpt\"; not-matches = \"a(b\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):3: " P "[1].not-matches: bad regular expression 'a(b': " },
    { RULE_REMOTE_OR_FALSE,
      "(\n  { if = \"helo-domain\"; matches = \"[z-a]\"; then = \"lmtp\"; },\n  { else = false; } )",
      "(string):2: " P "[0].matches: bad regular expression '[z-a]': " },
};

static void test_error_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
        const struct error_case *c = &error_cases[i];
        char err[ERRLEN];
        struct rule *r = parse_with(&fx->cfg, c->body, c->kind, err, sizeof err);
        if (r)
            fail_msg("case %zu accepted:\n%s", i, c->body);
        if (strncmp(err, c->want, strlen(c->want)) != 0)
            fail_msg("case %zu:\n got: %s\nwant: %s...", i, err, c->want);
    }
}

static void test_error_names_the_file(void **state)
{
    (void)state;
    config_t lc;
    char err[ERRLEN] = "";
    const char *want = TEST_DATA_DIR "/rules-bad.conf:5: " P "[1].matches: "
                                     "bad regular expression '^(unclosed': ";
    config_init(&lc);
    if (!config_read_file(&lc, TEST_DATA_DIR "/rules-bad.conf"))
        fail_msg("%s", config_error_text(&lc));
    assert_null(rule_parse(config_lookup(&lc, P), RULE_REMOTE_OR_FALSE, names_of(&fx->cfg), err, sizeof err));
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got: %s\nwant: %s...", err, want);
    config_destroy(&lc);
}

/* ---- regexes: compiled at load, never at evaluation ---- */

static void test_regex_compiled_once(void **state)
{
    (void)state;
    struct rule_result res;
    int before = regcomp_calls;
    struct rule *r = must_parse(
        "( { if = \"rcpt\"; matches = \"^[a-z]+@example[.]org$\"; then = \"lmtp\"; },\n"
        "  { any-of = ( { if = \"helo-domain\"; not-matches = \"[.]example$\"; } ); then = \"smtp\"; },\n"
        "  { else = false; } )",
        RULE_REMOTE_OR_FALSE);
    assert_int_equal(regcomp_calls - before, 2);
    for (int i = 0; i < 2000; i++) {
        struct rule_vars v = VARS([RV_RCPT] = i % 2 ? "bob@example.org" : "bob1@example.org",
                                  [RV_HELO_DOMAIN] = i % 4 < 2 ? "mx.example" : "mx.example.net");
        const char *want = i % 2 ? "lmtp" : i % 4 < 2 ? "false" : "smtp";
        assert_string_equal(eval_str(r, &v, &res), want);
    }
    assert_int_equal(regcomp_calls - before, 2);
    rule_free(r);
}

/* ---- a list lookup that fails after load ---- */

static void test_lookup_error(void **state)
{
    (void)state;
    char path[160], err[ERRLEN];
    struct database_cfg db = fx->db;
    struct rule_result res;
    snprintf(path, sizeof path, "%s/flaky.db", fx->dir);
    exec_sql(path, "CREATE TABLE a (name TEXT); INSERT INTO a VALUES ('example.org');"
                   "CREATE TABLE b (name TEXT); INSERT INTO b VALUES ('example.org');");
    db.path = path;
    struct list *lists[] = { must_sql_list("sql/a", &db, "SELECT 1 FROM a WHERE name = ?"),
                             must_sql_list("sql/b", &db, "SELECT 1 FROM b WHERE name = ?") };
    struct nh_config cfg = fx->cfg;
    cfg.policy.lists = lists;
    cfg.policy.n_lists = ARRAY_SIZE(lists);

    struct rule *in = parse_with(&cfg, "( { if = \"rcpt-domain\"; in-list = \"sql/a\"; then = \"lmtp\"; },"
                          "  { else = false; } )", RULE_REMOTE_OR_FALSE, err, sizeof err);
    struct rule *not_in = parse_with(&cfg, "( { if = \"rcpt-domain\"; not-in-list = \"sql/a\"; "
                                           "then = \"lmtp\"; }, { else = false; } )",
                                     RULE_REMOTE_OR_FALSE, err, sizeof err);
    struct rule *either = parse_with(&cfg, "( { any-of = ( { if = \"rcpt-domain\"; in-list = \"sql/a\"; },"
                                           "  { if = \"rcpt-domain\"; in-list = \"sql/b\"; },"
                                           "  { if = \"rcpt-domain\"; eq = \"example.org\"; } );"
                                           "  then = \"smtp\"; }, { else = false; } )",
                                     RULE_REMOTE_OR_FALSE, err, sizeof err);
    assert_non_null(in);
    assert_non_null(not_in);
    assert_non_null(either);
    struct rule_vars v = VARS([RV_RCPT_DOMAIN] = "example.org");
    struct rule_vars unset = VARS([RV_RCPT] = "x");

    assert_string_equal(eval_str(in, &v, &res), "lmtp");
    assert_string_equal(eval_str(not_in, &v, &res), "false");

    exec_sql(path, "DROP TABLE a; DROP TABLE b;");

    err[0] = '\0';
    assert_int_equal(rule_eval(in, &v, NULL, &res, err, sizeof err), -1);
    assert_true(res.is_false);
    assert_string_equal(err, "sql/a: no such table: a");

    err[0] = '\0';
    assert_int_equal(rule_eval(not_in, &v, NULL, &res, err, sizeof err), -1);
    assert_true(res.is_false);   /* an unknown answer satisfies neither form */
    assert_non_null(strstr(err, "no such table: a"));

    /* evaluation goes on after the failures; err keeps the first one */
    err[0] = '\0';
    assert_int_equal(rule_eval(either, &v, NULL, &res, err, sizeof err), -1);
    assert_string_equal(res.str, "smtp");
    assert_ptr_equal(res.remote, &fx->cfg.remotes[1]);
    assert_non_null(strstr(err, "sql/a: "));

    /* an empty value never consults the list */
    err[0] = '\0';
    assert_int_equal(rule_eval(in, &unset, NULL, &res, err, sizeof err), 0);
    assert_true(res.is_false);
    assert_string_equal(err, "");

    rule_free(in);
    rule_free(not_in);
    rule_free(either);
    list_free(lists[0]);
    list_free(lists[1]);
}

static void test_uses_remote(void **state)
{
    (void)state;
    struct rule *r = must_parse("( { if = \"rcpt\"; eq = \"a\"; then = \"lmtp\"; },\n"
                                "  { none-of = ( { if = \"rcpt\"; not-in-list = \"remote/lmtp\"; } );"
                                " then = \"smtp\"; },\n"
                                "  { else = false; } )", RULE_REMOTE_OR_FALSE);
    assert_true(rule_uses_remote(r));
    rule_free(r);
    r = must_parse("( { if = \"rcpt\"; in-list = \"sql/domains\"; then = \"lmtp\"; }, { else = false; } )",
                   RULE_REMOTE_OR_FALSE);
    assert_false(rule_uses_remote(r));
    rule_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_var_names),
        cmocka_unit_test(test_compare_table),
        cmocka_unit_test(test_flow_table),
        cmocka_unit_test(test_value_kinds),
        cmocka_unit_test(test_rule_constant),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_error_names_the_file),
        cmocka_unit_test(test_regex_compiled_once),
        cmocka_unit_test(test_lookup_error),
        cmocka_unit_test(test_uses_remote),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
