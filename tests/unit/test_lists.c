/*
 * test_lists.c - unit tests of common/policy/lists.c: inline and file lists
 * (case, comments, blank lines, CRLF, unreadable files), sqlite lists
 * (yes/no, query checks at load, read-only, errors after load) and a
 * threaded sqlite run (4 threads x 1000 queries).
 *
 * Each test builds its sqlite database in a fresh temporary directory
 * with the sqlite3 API. Threads never call cmocka asserts: they count
 * what they saw and the main thread asserts after joining.
 */
#include <pthread.h>
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

#include "lists.h"
#include "util.h"

struct fixture {
    char dir[64];
    char db_path[128];
    struct database_cfg db;
};

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s", msg);
    sqlite3_close(db);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_lists.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db_path, sizeof f->db_path, "%s/routing.db", f->dir);
    exec_sql(f->db_path, "CREATE TABLE domains (name TEXT PRIMARY KEY);"
                         "INSERT INTO domains VALUES ('example.org'), ('example.net');"
                         "CREATE TABLE users (addr TEXT, active INTEGER);"
                         "INSERT INTO users VALUES ('alice@example.org', 1), ('bob@example.org', 0);");
    f->db.id = (char *)"sql";
    f->db.type = (char *)"sqlite";
    f->db.path = f->db_path;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[160];
    static const char *const leftovers[] = { "routing.db", "routing.db-journal", "crlf.txt", "empty.txt" };
    for (size_t i = 0; i < ARRAY_SIZE(leftovers); i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, leftovers[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int contains(struct list *l, const char *key)
{
    char err[ERRLEN] = "";
    int r = list_contains(l, key, NULL, err, sizeof err);
    if (r < 0)
        fail_msg("list_contains(%s, %s) failed: %s", list_name(l), key, err);
    return r;
}

/* ---- inline and file lists ---- */

static void test_inline_list(void **state)
{
    (void)state;
    const char *items[] = { "Example.ORG", "example.org", "", NULL, "b@Example.net" };
    struct list *l = list_new_inline("list/local", items, ARRAY_SIZE(items));
    assert_string_equal(list_name(l), "list/local");
    assert_null(list_remote(l));
    assert_int_equal(contains(l, "example.org"), 1);
    assert_int_equal(contains(l, "EXAMPLE.org"), 1);
    assert_int_equal(contains(l, "B@EXAMPLE.NET"), 1);
    assert_int_equal(contains(l, "example.net"), 0);
    assert_int_equal(contains(l, "example.or"), 0);
    assert_int_equal(contains(l, "xexample.org"), 0);
    assert_int_equal(contains(l, ""), 0);
    list_free(l);
}

static void test_inline_list_large(void **state)
{
    (void)state;
    enum { N = 5000 };
    char (*names)[32] = xcalloc(N, sizeof *names);
    const char **items = xcalloc(N, sizeof *items);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "d%d.Example", i);
        items[i] = names[i];
    }
    struct list *l = list_new_inline("list/big", items, N);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "D%d.example", i);
        assert_int_equal(contains(l, key), 1);
        snprintf(key, sizeof key, "d%d.example.", i);
        assert_int_equal(contains(l, key), 0);
    }
    list_free(l);
    free(items);
    free(names);
}

static void test_empty_inline_list(void **state)
{
    (void)state;
    struct list *l = list_new_inline("list/none", NULL, 0);
    assert_int_equal(contains(l, "example.org"), 0);
    list_free(l);
}

static void test_file_list(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    struct list *l = list_new_file("list/domains", "file://" TEST_DATA_DIR "/list-domains.txt", err,
                                   sizeof err);
    if (!l)
        fail_msg("%s", err);
    static const struct { const char *key; int want; } cases[] = {
        { "example.org", 1 },     { "EXAMPLE.ORG", 1 },  { "example.net", 1 },
        { "tabbed.example", 1 },  { "sub.example.org", 1 }, { "other.example", 0 },
        { "  Example.NET  ", 0 }, { "# an indented comment", 0 },
        { "# Domains we accept mail for (fixture for test_lists and test_rules).", 0 },
        { "", 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (contains(l, cases[i].key) != cases[i].want)
            fail_msg("'%s': want %d", cases[i].key, cases[i].want);
    list_free(l);
}

static void test_file_list_crlf(void **state)
{
    struct fixture *f = *state;
    char path[160], url[200], err[ERRLEN] = "";
    snprintf(path, sizeof path, "%s/crlf.txt", f->dir);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs("# written on Windows\r\none.example\r\n\r\nTWO.example\r\nthree.example", out);
    fclose(out);
    snprintf(url, sizeof url, "file://%s", path);
    struct list *l = list_new_file("list/crlf", url, err, sizeof err);
    if (!l)
        fail_msg("%s", err);
    assert_int_equal(contains(l, "one.example"), 1);
    assert_int_equal(contains(l, "two.example"), 1);
    assert_int_equal(contains(l, "three.example"), 1);   /* last line without newline */
    assert_int_equal(contains(l, "one.example\r"), 0);
    list_free(l);
}

static void test_file_list_errors(void **state)
{
    struct fixture *f = *state;
    char err[ERRLEN] = "", url[200];

    assert_null(list_new_file("list/x", "file:///nonexistent/blocked.txt", err, sizeof err));
    assert_string_equal(err, "cannot read /nonexistent/blocked.txt: No such file or directory");

    snprintf(url, sizeof url, "file://%s", f->dir);   /* a directory */
    assert_null(list_new_file("list/x", url, err, sizeof err));
    assert_non_null(strstr(err, "Is a directory"));
    assert_non_null(strstr(err, f->dir));

    assert_null(list_new_file("list/x", "http://example.org/list.txt", err, sizeof err));
    assert_string_equal(err, "'http://example.org/list.txt' is not a file:///path URL");
    assert_null(list_new_file("list/x", "file://", err, sizeof err));
    assert_non_null(strstr(err, "is not a file:///path URL"));
}

/* ---- sqlite lists ---- */

static struct list *sql_list(struct fixture *f, const char *query)
{
    char err[ERRLEN] = "";
    struct list *l = list_new_sql("sql/q", &f->db, query, err, sizeof err);
    if (!l)
        fail_msg("list_new_sql: %s", err);
    return l;
}

static void test_sql_list(void **state)
{
    struct fixture *f = *state;
    struct list *l = sql_list(f, "SELECT 1 FROM domains WHERE name = ? LIMIT 1");
    assert_string_equal(list_name(l), "sql/q");
    assert_null(list_remote(l));
    assert_int_equal(contains(l, "example.org"), 1);
    assert_int_equal(contains(l, "example.net"), 1);
    assert_int_equal(contains(l, "example.com"), 0);
    assert_int_equal(contains(l, ""), 0);
    /* a key that is SQL text stays a value */
    assert_int_equal(contains(l, "x' OR '1'='1"), 0);
    list_free(l);

    l = sql_list(f, "SELECT 1 FROM users WHERE addr = ?1 AND active");
    assert_int_equal(contains(l, "alice@example.org"), 1);
    assert_int_equal(contains(l, "bob@example.org"), 0);
    list_free(l);
}

static void test_sql_sees_new_rows(void **state)
{
    struct fixture *f = *state;
    struct list *l = sql_list(f, "SELECT name FROM domains WHERE name = ?");
    assert_int_equal(contains(l, "new.example"), 0);
    exec_sql(f->db_path, "INSERT INTO domains VALUES ('new.example');");
    assert_int_equal(contains(l, "new.example"), 1);
    list_free(l);
}

struct sql_error_case {
    const char *query;
    const char *message;
};

static void test_sql_load_errors(void **state)
{
    struct fixture *f = *state;
    static const struct sql_error_case cases[] = {
        { "SELECT 1 FROM nowhere WHERE name = ?", "no such table: nowhere" },
        { "SELEKT 1 FROM domains WHERE name = ?", "syntax error" },
        { "SELECT 1 FROM domains", "exactly one parameter (?), it has 0" },
        { "SELECT 1 FROM domains WHERE name = ? OR name = ?", "exactly one parameter (?), it has 2" },
        { "SELECT 1 FROM domains WHERE name = ?; DROP TABLE domains", "exactly one SQL statement" },
        { "", "exactly one SQL statement" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char err[ERRLEN] = "";
        if (list_new_sql("sql/q", &f->db, cases[i].query, err, sizeof err))
            fail_msg("case %zu accepted: %s", i, cases[i].query);
        if (!strstr(err, cases[i].message))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].message);
    }
    /* the refused multi-statement query ran nothing */
    struct list *l = sql_list(f, "SELECT 1 FROM domains WHERE name = ?");
    assert_int_equal(contains(l, "example.org"), 1);
    list_free(l);
}

static void test_sql_database_errors(void **state)
{
    struct fixture *f = *state;
    char err[ERRLEN] = "", path[160];
    struct database_cfg db = { .id = (char *)"sql", .type = (char *)"sqlite" };

    snprintf(path, sizeof path, "%s/missing.db", f->dir);
    db.path = path;
    assert_null(list_new_sql("sql/q", &db, "SELECT 1 WHERE ? = 1", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_non_null(strstr(err, path));
    assert_int_equal(access(path, F_OK), -1);   /* read-only: not created */

    snprintf(path, sizeof path, "%s/empty.txt", f->dir);   /* not a database */
    FILE *out = fopen(path, "w");
    fputs("this is not a database, just some text that is long enough to have a header\n", out);
    fclose(out);
    assert_null(list_new_sql("sql/q", &db, "SELECT 1 FROM t WHERE a = ?", err, sizeof err));
    assert_non_null(strstr(err, "file is not a database"));

#ifndef NEXTHOP_HAVE_LIBPQ
    db.type = (char *)"postgresql";
    db.conninfo = (char *)"host=127.0.0.1";
    assert_null(list_new_sql("pg/q", &db, "SELECT 1 WHERE $1 = 1", err, sizeof err));
    assert_string_equal(err, "postgresql support is not built in");
#endif

    db.type = (char *)"oracle";
    assert_null(list_new_sql("x/q", &db, "SELECT 1", err, sizeof err));
    assert_string_equal(err, "unknown database type 'oracle'");
}

static void test_sql_is_read_only(void **state)
{
    struct fixture *f = *state;
    char err[ERRLEN] = "";
    struct list *l = sql_list(f, "DELETE FROM domains WHERE name = ?");
    assert_int_equal(list_contains(l, "example.org", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "sql/q: "));
    assert_non_null(strstr(err, "readonly"));
    list_free(l);
    l = sql_list(f, "SELECT 1 FROM domains WHERE name = ?");
    assert_int_equal(contains(l, "example.org"), 1);
    list_free(l);
}

static void test_sql_error_after_load(void **state)
{
    struct fixture *f = *state;
    char err[ERRLEN] = "";
    struct list *l = sql_list(f, "SELECT 1 FROM domains WHERE name = ?");
    assert_int_equal(contains(l, "example.org"), 1);
    exec_sql(f->db_path, "DROP TABLE domains;");
    assert_int_equal(list_contains(l, "example.org", NULL, err, sizeof err), -1);
    assert_string_equal(err, "sql/q: no such table: domains");
    /* the broken connection was dropped; a new one fails the same way */
    err[0] = '\0';
    assert_int_equal(list_contains(l, "example.org", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no such table: domains"));
    /* and the list recovers once the table is back */
    exec_sql(f->db_path, "CREATE TABLE domains (name TEXT); INSERT INTO domains VALUES ('back.example');");
    assert_int_equal(contains(l, "back.example"), 1);
    list_free(l);
}

/* ---- threads ---- */

enum { THREADS = 4, QUERIES = 1000 };

struct worker {
    struct list *list;
    int id;
    int right, wrong, errors;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < QUERIES; i++) {
        char key[64], err[ERRLEN];
        int want = (i + w->id) % 3 != 0;
        snprintf(key, sizeof key, want ? "d%d.example" : "absent%d.example", (i * 7 + w->id) % 200);
        int got = list_contains(w->list, key, NULL, err, sizeof err);
        if (got < 0)
            w->errors++;
        else if (got == want)
            w->right++;
        else
            w->wrong++;
    }
    return NULL;
}

static void test_sql_threads(void **state)
{
    struct fixture *f = *state;
    char sql[128];
    exec_sql(f->db_path, "CREATE TABLE many (name TEXT PRIMARY KEY);");
    for (int i = 0; i < 200; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO many VALUES ('d%d.example');", i);
        exec_sql(f->db_path, sql);
    }
    struct list *l = sql_list(f, "SELECT 1 FROM many WHERE name = ?");
    pthread_t tids[THREADS];
    struct worker workers[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){ .list = l, .id = t };
        assert_int_equal(pthread_create(&tids[t], NULL, worker_run, &workers[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tids[t], NULL);
        assert_int_equal(workers[t].errors, 0);
        assert_int_equal(workers[t].wrong, 0);
        assert_int_equal(workers[t].right, QUERIES);
    }
    list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_list),
        cmocka_unit_test(test_inline_list_large),
        cmocka_unit_test(test_empty_inline_list),
        cmocka_unit_test(test_file_list),
        cmocka_unit_test_setup_teardown(test_file_list_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_list_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_sees_new_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_database_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_is_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_error_after_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
