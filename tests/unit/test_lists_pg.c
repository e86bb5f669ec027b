/*
 * test_lists_pg.c - unit tests of PostgreSQL lists (lists.c, lists_pg.c)
 * against a real private server: yes/no answers, query checks at load
 * (placeholders, bad SQL, unreachable server), read-only sessions, the 2 s
 * timeouts, a server stop (-1 with the message) and restart (works again,
 * even on pooled connections), and threads (4 x 500 queries; 12 threads
 * never open more than 8 connections).
 *
 * The group setup runs initdb into a fresh /tmp directory and starts
 * postgres on 127.0.0.1 at a free port (as the postgres user when run as
 * root); the group teardown stops it with pg_ctl and removes the directory.
 * Without the server binaries (package postgresql) the tests are skipped;
 * built without libpq, only the "not built in" refusal is tested.
 * Threads never call cmocka asserts: they count, the main thread asserts.
 */
#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lists.h"
#include "util.h"

#ifdef NEXTHOP_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

static struct database_cfg pg_db(const char *conninfo)
{
    return (struct database_cfg){ .id = (char *)"pg", .type = (char *)"postgresql",
                                  .conninfo = (char *)conninfo };
}

#ifndef NEXTHOP_HAVE_LIBPQ

static void test_pg_not_built_in(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    struct database_cfg db = pg_db("host=127.0.0.1");
    assert_null(list_new_sql("pg/q", &db, "SELECT 1 WHERE ? = '1'", err, sizeof err));
    assert_string_equal(err, "postgresql support is not built in");
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_pg_not_built_in) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

struct server {
    char dir[64];
    char bin[200];      /* directory of initdb, pg_ctl */
    char as_user[32];   /* "runuser -u postgres -- " when root */
    int port;
    char conninfo[128];
};

static struct server srv;

/* Runs a shell command; its exit status (-1 when it could not run). */
__attribute__((format(printf, 1, 2))) static int run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool find_bindir(char *dst, size_t n)
{
    glob_t g;
    bool found = false;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        /* the highest version sorts last */
        snprintf(dst, n, "%s", g.gl_pathv[g.gl_pathc - 1]);
        *strrchr(dst, '/') = '\0';
        found = true;
    }
    globfree(&g);
    return found;
}

/* A port on 127.0.0.1 nobody listens on, below the ephemeral range. */
static int free_port(void)
{
    for (int tries = 0; tries < 200; tries++) {
        int port = 20000 + (int)((getpid() * 31 + tries * 97) % 12000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static int server_start(void)
{
    return run("%s%s/pg_ctl -D %s/data -l %s/server.log -w -t 20 -o "
               "'-k %s -c listen_addresses=127.0.0.1 -p %d -c fsync=off' start >/dev/null",
               srv.as_user, srv.bin, srv.dir, srv.dir, srv.dir, srv.port);
}

static int server_stop(void)
{
    return run("%s%s/pg_ctl -D %s/data -m fast -w -t 20 stop >/dev/null", srv.as_user, srv.bin,
               srv.dir);
}

/* Runs sql as the superuser; fails the test on an error. */
static void exec_sql(const char *sql)
{
    PGconn *c = PQconnectdb(srv.conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* The first column of the first row of sql, as a number. */
static long query_number(const char *sql)
{
    PGconn *c = PQconnectdb(srv.conninfo);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

/* Sessions the server has for application_name (which conninfo may set). */
static long sessions_of(const char *application)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", application);
    return query_number(sql);
}

/* Backends leave pg_stat_activity a moment after the client closes. */
static long sessions_after_close(const char *application)
{
    long n = sessions_of(application);
    for (int i = 0; i < 30 && n > 0; i++) {
        usleep(100 * 1000);
        n = sessions_of(application);
    }
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    if (!find_bindir(srv.bin, sizeof srv.bin)) {
        fprintf(stderr, "test_lists_pg: no /usr/lib/postgresql/*/bin/initdb (package "
                        "postgresql): skipping\n");
        return 0;
    }
    snprintf(srv.dir, sizeof srv.dir, "/tmp/test_lists_pg.XXXXXX");
    if (!mkdtemp(srv.dir))
        return -1;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(srv.dir, pw->pw_uid, pw->pw_gid) != 0)
            return -1;
        snprintf(srv.as_user, sizeof srv.as_user, "runuser -u postgres -- ");
    }
    srv.port = free_port();
    snprintf(srv.conninfo, sizeof srv.conninfo,
             "host=127.0.0.1 port=%d user=postgres dbname=postgres", srv.port);
    if (run("%s%s/initdb -D %s/data -U postgres -A trust -E UTF8 --locale=C --no-sync "
            ">%s/initdb.log 2>&1", srv.as_user, srv.bin, srv.dir, srv.dir) != 0 ||
        server_start() != 0) {
        fprintf(stderr, "test_lists_pg: cannot start postgres (see %s)\n", srv.dir);
        return -1;
    }
    exec_sql("CREATE TABLE domains (name TEXT PRIMARY KEY);"
             "INSERT INTO domains VALUES ('example.org'), ('example.net');"
             "CREATE TABLE users (addr TEXT, active BOOLEAN);"
             "INSERT INTO users VALUES ('alice@example.org', true), ('bob@example.org', false);"
             "CREATE SEQUENCE counter;"
             "CREATE TABLE many (name TEXT PRIMARY KEY);"
             "INSERT INTO many SELECT 'd' || i || '.example' FROM generate_series(0, 199) i;");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!srv.dir[0])
        return 0;
    server_stop();
    run("rm -rf %s", srv.dir);
    return 0;
}

static int need_server(void **state)
{
    (void)state;
    if (!srv.dir[0])
        skip();
    return 0;
}

static struct list *pg_list(const char *query)
{
    char err[ERRLEN] = "";
    struct database_cfg db = pg_db(srv.conninfo);
    struct list *l = list_new_sql("pg/q", &db, query, err, sizeof err);
    if (!l)
        fail_msg("list_new_sql(%s): %s", query, err);
    return l;
}

static int contains(struct list *l, const char *key)
{
    char err[ERRLEN] = "";
    int r = list_contains(l, key, NULL, err, sizeof err);
    if (r < 0)
        fail_msg("list_contains(%s, %s) failed: %s", list_name(l), key, err);
    return r;
}

/* list_contains expected to fail: the error text. */
static void contains_fails(struct list *l, const char *key, char *err, size_t errlen)
{
    err[0] = '\0';
    if (list_contains(l, key, NULL, err, errlen) != -1)
        fail_msg("list_contains(%s, %s) did not fail", list_name(l), key);
}

/* ---- answers ---- */

static void test_pg_list(void **state)
{
    (void)state;
    struct list *l = pg_list("SELECT 1 FROM domains WHERE name = ? LIMIT 1");
    assert_string_equal(list_name(l), "pg/q");
    assert_null(list_remote(l));
    assert_int_equal(contains(l, "example.org"), 1);
    assert_int_equal(contains(l, "example.net"), 1);
    assert_int_equal(contains(l, "example.com"), 0);
    assert_int_equal(contains(l, ""), 0);
    assert_int_equal(contains(l, "x' OR '1'='1"), 0);   /* a key stays a value */
    assert_int_equal(sessions_of("milter-nexthop"), 1);   /* the default application_name */
    list_free(l);

    /* ?1 as in sqlite; a ? inside strings, identifiers and comments is text */
    l = pg_list("SELECT '?', \"name\" AS \"?\" FROM users u JOIN domains d -- who?\n"
                "ON d.name = split_part(u.addr, '@', 2) /* a /* nested ? */ comment */ "
                "WHERE addr = ?1 AND active AND E'\\'?' <> $$?$$");
    assert_int_equal(contains(l, "alice@example.org"), 1);
    assert_int_equal(contains(l, "bob@example.org"), 0);
    list_free(l);
}

static void test_pg_sees_new_rows(void **state)
{
    (void)state;
    struct list *l = pg_list("SELECT name FROM domains WHERE name = ?");
    assert_int_equal(contains(l, "new.example"), 0);
    exec_sql("INSERT INTO domains VALUES ('new.example')");
    assert_int_equal(contains(l, "new.example"), 1);
    exec_sql("DELETE FROM domains WHERE name = 'new.example'");
    assert_int_equal(contains(l, "new.example"), 0);
    list_free(l);
}

/* ---- load errors ---- */

struct error_case {
    const char *query;
    const char *message;
};

static void test_pg_load_errors(void **state)
{
    (void)state;
    static const struct error_case cases[] = {
        { "SELECT 1 FROM nowhere WHERE name = ?", "bad query: relation \"nowhere\" does not exist" },
        { "SELEKT 1 FROM domains WHERE name = ?", "bad query: syntax error at or near \"SELEKT\"" },
        { "SELECT 1 FROM domains", "exactly one parameter (?), it has 0" },
        { "SELECT 1 FROM domains WHERE name = '?'", "exactly one parameter (?), it has 0" },
        { "SELECT 1 FROM domains WHERE name = ? OR name = ?", "exactly one parameter (?), it has 2" },
        { "SELECT 1 FROM domains WHERE name = ?2", "only ? or ?1 is allowed" },
        { "SELECT 1 FROM domains WHERE name = ? OR name = $2", "exactly one parameter (?), it has 2" },
        { "SELECT 1 FROM domains WHERE name = ?; DROP TABLE domains", "cannot insert multiple commands" },
        { "DELETE FROM domains WHERE name = ?", "it must be a SELECT" },
        { "", "exactly one parameter (?), it has 0" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char err[ERRLEN] = "";
        struct database_cfg db = pg_db(srv.conninfo);
        if (list_new_sql("pg/q", &db, cases[i].query, err, sizeof err))
            fail_msg("case %zu accepted: %s", i, cases[i].query);
        if (!strstr(err, cases[i].message))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].message);
    }
    /* the refused statements ran nothing */
    assert_int_equal(query_number("SELECT count(*) FROM domains"), 2);
}

static void test_pg_connect_errors(void **state)
{
    (void)state;
    char err[ERRLEN] = "", conninfo[128];
    const char *query = "SELECT 1 FROM domains WHERE name = ?";

    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres password=hunter2",
             free_port());
    struct database_cfg db = pg_db(conninfo);
    assert_null(list_new_sql("pg/q", &db, query, err, sizeof err));
    assert_non_null(strstr(err, "cannot connect: "));
    assert_non_null(strstr(err, "Connection refused"));
    assert_null(strchr(err, '\n'));
    assert_null(strstr(err, "hunter2"));

    db = pg_db("host=127.0.0.1 colour=blue");
    assert_null(list_new_sql("pg/q", &db, query, err, sizeof err));
    assert_non_null(strstr(err, "invalid connection option \"colour\""));

    snprintf(conninfo, sizeof conninfo, "%s dbname=nosuchdb", srv.conninfo);
    db = pg_db(conninfo);
    assert_null(list_new_sql("pg/q", &db, query, err, sizeof err));
    assert_non_null(strstr(err, "database \"nosuchdb\" does not exist"));

    db = pg_db(NULL);
    assert_null(list_new_sql("pg/q", &db, query, err, sizeof err));
    assert_string_equal(err, "database 'pg' has no conninfo");

    /* a URI works as well as key=value */
    snprintf(conninfo, sizeof conninfo, "postgresql://postgres@127.0.0.1:%d/postgres", srv.port);
    db = pg_db(conninfo);
    struct list *l = list_new_sql("pg/q", &db, query, err, sizeof err);
    if (!l)
        fail_msg("URI: %s", err);
    assert_int_equal(contains(l, "example.org"), 1);
    list_free(l);
}

/* A port that accepts TCP connections and never says a word. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("silent listener");
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_pg_connect_timeout(void **state)
{
    (void)state;
    char err[ERRLEN] = "", conninfo[128];
    int port, fd = silent_listener(&port);
    const char *query = "SELECT 1 FROM domains WHERE name = ?";

    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres", port);
    struct database_cfg db = pg_db(conninfo);
    int64_t t0 = now_ms();
    assert_null(list_new_sql("pg/q", &db, query, err, sizeof err));
    int64_t took = now_ms() - t0;
    assert_non_null(strstr(err, "timeout expired"));
    if (took < 1500 || took > 4000)
        fail_msg("default connect timeout took %lld ms, want about 2000", (long long)took);

    /* conninfo's own connect_timeout wins over the default (libpq's minimum is 2) */
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres connect_timeout=3",
             port);
    db = pg_db(conninfo);
    t0 = now_ms();
    assert_null(list_new_sql("pg/q", &db, query, err, sizeof err));
    took = now_ms() - t0;
    if (took < 2600 || took > 4500)
        fail_msg("connect_timeout=3 took %lld ms, want about 3000", (long long)took);
    close(fd);
}

/* ---- errors after load ---- */

static void test_pg_read_only_and_statement_timeout(void **state)
{
    (void)state;
    char err[ERRLEN];
    struct list *l = pg_list("SELECT nextval('counter') WHERE ? <> ''");
    contains_fails(l, "example.org", err, sizeof err);
    assert_string_equal(err, "pg/q: cannot execute nextval() in a read-only transaction");
    list_free(l);
    assert_int_equal(query_number("SELECT last_value FROM counter"), 1);   /* never called */
    assert_int_equal(query_number("SELECT count(*) FROM counter WHERE is_called"), 0);

    l = pg_list("SELECT 1 FROM pg_sleep(3) WHERE ? <> ''");
    int64_t t0 = now_ms();
    contains_fails(l, "example.org", err, sizeof err);
    int64_t took = now_ms() - t0;
    assert_string_equal(err, "pg/q: canceling statement due to statement timeout");
    if (took < 1800 || took > 4000)
        fail_msg("statement timeout after %lld ms, want about 2000", (long long)took);
    list_free(l);
}

static void test_pg_error_after_load(void **state)
{
    (void)state;
    char err[ERRLEN];
    exec_sql("CREATE TABLE fleeting (name TEXT); INSERT INTO fleeting VALUES ('a.example')");
    struct list *l = pg_list("SELECT 1 FROM fleeting WHERE name = ?");
    assert_int_equal(contains(l, "a.example"), 1);
    exec_sql("DROP TABLE fleeting");
    contains_fails(l, "a.example", err, sizeof err);
    assert_non_null(strstr(err, "pg/q: "));
    assert_non_null(strstr(err, "relation \"fleeting\" does not exist"));
    /* the list recovers once the table is back */
    exec_sql("CREATE TABLE fleeting (name TEXT); INSERT INTO fleeting VALUES ('b.example')");
    assert_int_equal(contains(l, "b.example"), 1);
    assert_int_equal(contains(l, "a.example"), 0);
    list_free(l);
    exec_sql("DROP TABLE fleeting");
}

/* ---- threads ---- */

enum { QUERIES = 500 };

struct worker {
    struct list *list;
    int id;
    int right, wrong, errors;
    char last_error[ERRLEN];
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < QUERIES; i++) {
        char key[64];
        int want = (i + w->id) % 3 != 0;
        snprintf(key, sizeof key, want ? "d%d.example" : "absent%d.example", (i * 7 + w->id) % 200);
        int got = list_contains(w->list, key, NULL, w->last_error, sizeof w->last_error);
        if (got < 0)
            w->errors++;
        else if (got == want)
            w->right++;
        else
            w->wrong++;
    }
    return NULL;
}

/* Runs n workers on l; fails unless every answer was right. */
static void run_workers(struct list *l, int n)
{
    pthread_t tids[16];
    struct worker workers[16];
    assert_true(n <= 16);
    for (int t = 0; t < n; t++) {
        workers[t] = (struct worker){ .list = l, .id = t };
        assert_int_equal(pthread_create(&tids[t], NULL, worker_run, &workers[t]), 0);
    }
    for (int t = 0; t < n; t++)
        pthread_join(tids[t], NULL);
    for (int t = 0; t < n; t++) {
        if (workers[t].errors)
            fail_msg("thread %d: %d errors, last: %s", t, workers[t].errors, workers[t].last_error);
        assert_int_equal(workers[t].wrong, 0);
        assert_int_equal(workers[t].right, QUERIES);
    }
}

static void test_pg_threads(void **state)
{
    (void)state;
    char err[ERRLEN] = "", conninfo[200];
    snprintf(conninfo, sizeof conninfo, "%s application_name=threads", srv.conninfo);
    struct database_cfg db = pg_db(conninfo);
    struct list *l = list_new_sql("pg/q", &db, "SELECT 1 FROM many WHERE name = ?", err,
                                  sizeof err);
    if (!l)
        fail_msg("%s", err);
    int64_t t0 = now_ms();
    run_workers(l, 4);
    printf("4 threads x %d queries: %lld ms\n", QUERIES, (long long)(now_ms() - t0));
    long open = sessions_of("threads");
    if (open < 1 || open > 4)
        fail_msg("%ld connections for 4 threads", open);
    run_workers(l, 12);
    open = sessions_of("threads");
    if (open < 1 || open > 8)
        fail_msg("%ld connections for 12 threads, the pool holds at most 8", open);
    list_free(l);
    assert_int_equal(sessions_after_close("threads"), 0);   /* list_free closed them all */
}

/* ---- server stop and restart ---- */

static void test_pg_server_restart(void **state)
{
    (void)state;
    char err[ERRLEN];
    struct list *l = pg_list("SELECT 1 FROM many WHERE name = ?");
    run_workers(l, 4);   /* several pooled connections */
    assert_int_equal(server_stop(), 0);

    int64_t t0 = now_ms();
    contains_fails(l, "d1.example", err, sizeof err);
    assert_non_null(strstr(err, "pg/q: cannot connect: "));
    assert_non_null(strstr(err, "Connection refused"));
    if (now_ms() - t0 > 1000)
        fail_msg("a stopped server took %lld ms to report", (long long)(now_ms() - t0));
    contains_fails(l, "d2.example", err, sizeof err);
    assert_non_null(strstr(err, "Connection refused"));

    assert_int_equal(server_start(), 0);
    assert_int_equal(contains(l, "d1.example"), 1);
    assert_int_equal(contains(l, "absent1.example"), 0);

    /* a restart behind idle pooled connections: the next lookup still works */
    run_workers(l, 4);
    assert_int_equal(server_stop(), 0);
    assert_int_equal(server_start(), 0);
    assert_int_equal(contains(l, "d3.example"), 1);
    run_workers(l, 4);
    list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pg_list, need_server),
        cmocka_unit_test_setup(test_pg_sees_new_rows, need_server),
        cmocka_unit_test_setup(test_pg_load_errors, need_server),
        cmocka_unit_test_setup(test_pg_connect_errors, need_server),
        cmocka_unit_test_setup(test_pg_connect_timeout, need_server),
        cmocka_unit_test_setup(test_pg_read_only_and_statement_timeout, need_server),
        cmocka_unit_test_setup(test_pg_error_after_load, need_server),
        cmocka_unit_test_setup(test_pg_threads, need_server),
        cmocka_unit_test_setup(test_pg_server_restart, need_server),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

#endif
