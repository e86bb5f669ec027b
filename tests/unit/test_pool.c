/*
 * test_pool.c - the pooled SMTP/LMTP client (common/remote/pool.c, smtp_client.c,
 * conn.c) against tests/lib/fakeserver.py: answers, faults that must end
 * in LOOKUP_ERROR within the timeout, argument injection, STARTTLS
 * enforcement, pool limits, host-down marking, idle checks, unix sockets,
 * relaying with per-recipient LMTP replies and dot-stuffing, the SMTP AUTH
 * mechanisms, and IMAP logins (AUTHENTICATE PLAIN, LOGIN with quoting and
 * literals).
 *
 * The fake server runs as a child process per test; it logs every command
 * it received and the most concurrent sessions it saw, which is what the
 * tests assert on. Threads never call cmocka asserts; they record results
 * for the main thread.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "pool.h"
#include "spool.h"
#include "util.h"

#include "fake_remote.h"

/* ------------------------------------------------------------ tests */

static void test_kind_names(void **state)
{
    (void)state;
    assert_int_equal(lookup_kind_parse("rcpt"), LOOKUP_RCPT);
    assert_int_equal(lookup_kind_parse("VRFY"), LOOKUP_VRFY);
    assert_int_equal(lookup_kind_parse("expn"), LOOKUP_EXPN);
    assert_int_equal(lookup_kind_parse("auth"), LOOKUP_AUTH);
    assert_int_equal(lookup_kind_parse("nope"), -1);
    assert_string_equal(lookup_kind_name(LOOKUP_EXPN), "expn");
}

static void check_rcpt_answers(enum remote_proto proto, const char *hello)
{
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, proto);
    struct pool *p = pool_create(&r);

    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok1@example.org", NULL, reply, err), LOOKUP_YES);
    assert_string_equal(reply, "250 2.1.5 Ok");
    assert_int_equal(lookup(p, LOOKUP_RCPT, "nobody@example.org", NULL, reply, err), LOOKUP_NO);
    assert_non_null(strstr(reply, "550 5.1.1"));
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok2@example.org", NULL, reply, err), LOOKUP_YES);

    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 1);      /* one connection, reused */
    assert_int_equal(st.operations, 3);
    assert_int_equal(st.idle, 1);
    pool_destroy(p);
    assert_int_equal(log_count_prefix(&f, hello), 1);
    assert_int_equal(log_count(&f, "MAIL FROM:<>"), 1);   /* once per connection */
    assert_int_equal(log_count(&f, "RCPT TO:<nobody@example.org>"), 1);
    assert_int_equal(log_count(&f, "QUIT"), 1);
    fake_stop(&f);
}

static void test_rcpt_smtp(void **state)
{
    (void)state;
    check_rcpt_answers(PROTO_SMTP, "EHLO ");
}

static void test_rcpt_lmtp(void **state)
{
    (void)state;
    check_rcpt_answers(PROTO_LMTP, "LHLO ");
}

static void test_vrfy_expn(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    char *members = NULL;
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    struct pool *p = pool_create(&r);

    assert_int_equal(lookup(p, LOOKUP_VRFY, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    assert_int_equal(lookup(p, LOOKUP_VRFY, "nobody@example.org", NULL, reply, err), LOOKUP_NO);
    assert_int_equal(lookup(p, LOOKUP_VRFY, "amb@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "252"));
    assert_int_equal(pool_lookup(p, LOOKUP_EXPN, "oklist@example.org", NULL, &members, reply,
                                 sizeof reply, err, sizeof err),
                     LOOKUP_YES);
    assert_non_null(members);
    assert_string_equal(members, "<one@fake.test>\n<two@fake.test>\n");
    free(members);
    assert_int_equal(lookup(p, LOOKUP_EXPN, "nolist@example.org", NULL, reply, err), LOOKUP_NO);
    pool_destroy(p);
    assert_int_equal(log_count(&f, "VRFY ok@example.org"), 1);
    assert_int_equal(log_count(&f, "EXPN oklist@example.org"), 1);
    fake_stop(&f);
}

/* Every fault ends in LOOKUP_ERROR, within the 2 s timeout (+ slack). */
static void check_fault(const char *scenario, const char *extra, const char *expect_err)
{
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    if (extra)
        fake_start(&f, scenario, "--delay", extra, NULL);
    else
        fake_start(&f, scenario, NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    struct pool *p = pool_create(&r);
    int64_t t0 = now_ms();
    enum lookup_result res = lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err);
    int64_t ms = now_ms() - t0;
    print_message("%-14s -> %d in %lld ms: %s\n", scenario, res, (long long)ms, err);
    assert_int_equal(res, LOOKUP_ERROR);
    assert_true(ms < 3000);
    assert_true(err[0] != '\0');
    if (expect_err)
        assert_non_null(strstr(err, expect_err));
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.open, st.idle);   /* nothing leaked in use */
    pool_destroy(p);
    fake_stop(&f);
}

static void test_faults(void **state)
{
    (void)state;
    check_fault("garbage", NULL, "garbage");
    check_fault("hang", NULL, "timeout");
    check_fault("reset", NULL, NULL);
    check_fault("bigline", NULL, "longer than 2048");
    check_fault("slow", "2.5", "timeout");
    check_fault("manylines", NULL, "100 lines");
    check_fault("tempfail-rcpt", NULL, "451 4.3.0");
}

static void test_injection_rejected(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", "--auth", "alice:secret", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    struct pool *p = pool_create(&r);
    /* a live connection first: evil arguments would go out on it */
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    static const char *const evil[] = {
        "ok@x>\r\nVRFY root", "ok@x\nVRFY root", "ok@x\rVRFY root", "ok@x\x01root",
    };
    for (size_t i = 0; i < ARRAY_SIZE(evil); i++) {
        assert_int_equal(lookup(p, LOOKUP_RCPT, evil[i], NULL, reply, err), LOOKUP_ERROR);
        assert_int_equal(lookup(p, LOOKUP_VRFY, evil[i], NULL, reply, err), LOOKUP_ERROR);
    }
    assert_int_equal(lookup(p, LOOKUP_AUTH, "alice", "secret\r\nVRFY root", reply, err),
                     LOOKUP_ERROR);
    assert_non_null(strstr(err, "CR or LF"));
    assert_int_equal(lookup(p, LOOKUP_AUTH, "alice\nroot", "secret", reply, err), LOOKUP_ERROR);

    struct relay_rcpt rc[2] = { { .addr = "ok1@x" }, { .addr = "ok2@x\r\nRSET" } };
    struct spool *msg = spool_create(1024);
    assert_int_equal(spool_write(msg, "x\n", 2, err, sizeof err), 0);
    assert_int_equal(pool_relay(p, "s@x", rc, 2, msg, NULL, NULL, now_ms() + 2000, err,
                                sizeof err), -1);
    assert_int_equal(rc[0].code, 451);
    assert_int_equal(rc[1].code, 451);
    struct relay_rcpt rc1[1] = { { .addr = "ok1@x" } };
    assert_int_equal(pool_relay(p, "s@x>\nRSET", rc1, 1, msg, NULL, NULL, now_ms() + 2000, err,
                                sizeof err), -1);
    assert_int_equal(rc1[0].code, 451);
    spool_destroy(msg);

    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 1);   /* rejected before anything was written */
    assert_int_equal(st.operations, 1);
    pool_destroy(p);
    assert_false(log_has(&f, "root"));
    assert_false(log_has(&f, "RSET"));
    fake_stop(&f);
}

static void test_starttls_required(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "nostarttls", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    r.ep.tls_enable = true;
    r.ep.tls_implicit = false;
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "STARTTLS"));
    pool_destroy(p);
    assert_true(log_has(&f, "EHLO"));
    assert_false(log_has(&f, "MAIL"));
    assert_false(log_has(&f, "RCPT"));
    fake_stop(&f);
}

/* Implicit TLS against a plain-text server: the handshake fails, nothing is sent. */
static void test_implicit_tls_to_plain_server(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    r.ep.tls_enable = true;
    r.ep.tls_implicit = true;
    struct pool *p = pool_create(&r);
    int64_t t0 = now_ms();
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_true(now_ms() - t0 < 3000);
    assert_non_null(strstr(err, "TLS"));
    pool_destroy(p);
    assert_false(log_has(&f, "RCPT"));
    fake_stop(&f);
}

struct worker {
    struct pool *pool;
    int id;
    int ok;            /* answers that matched */
    int wrong;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char reply[256], err[ERRLEN], addr[64];
    for (int i = 0; i < 3; i++) {
        bool exists = (w->id + i) % 2 == 0;
        snprintf(addr, sizeof addr, "%s%d-%d@example.org", exists ? "ok" : "no", w->id, i);
        enum lookup_result res = pool_lookup(w->pool, LOOKUP_RCPT, addr, NULL, NULL, reply,
                                             sizeof reply, err, sizeof err);
        if (res == (exists ? LOOKUP_YES : LOOKUP_NO))
            w->ok++;
        else
            w->wrong++;
    }
    return NULL;
}

static void test_concurrency_limit(void **state)
{
    (void)state;
    enum { N = 100 };
    struct fake f;
    struct remote_def r;
    pthread_t th[N];
    static struct worker w[N];
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    r.concurrency = 4;
    r.ep.timeout_ms = 10000;
    struct pool *p = pool_create(&r);
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){ .pool = p, .id = i };
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    int ok = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        wrong += w[i].wrong;
    }
    struct pool_stats st;
    pool_get_stats(p, &st);
    print_message("ok=%d wrong=%d connects=%ld max_open=%d server max=%d\n", ok, wrong,
                  st.connects, st.max_open, fake_max_sessions(&f));
    assert_int_equal(ok, N * 3);
    assert_int_equal(wrong, 0);
    assert_true(st.max_open <= 4);
    assert_int_equal(st.operations, N * 3);
    pool_destroy(p);
    int max = fake_max_sessions(&f);
    assert_true(max >= 1 && max <= 4);
    fake_stop(&f);
}

/* ---- pipelined probes: concurrent lookups sharing one connection */

struct probe_thread {
    struct pool *p;
    const char *addr;
    pthread_t th;
    enum lookup_result res;
    char reply[256], err[ERRLEN];
    int64_t ms;
};

static void *probe_run(void *arg)
{
    struct probe_thread *t = arg;
    int64_t t0 = now_ms();
    t->res = lookup(t->p, LOOKUP_RCPT, t->addr, NULL, t->reply, t->err);
    t->ms = now_ms() - t0;
    return NULL;
}

/* Starts the lookups one by one, each once the one before is on the shared
 * connection (the first, "x-slow", holds it while the others queue). */
static void start_queued(struct pool *p, struct probe_thread *t, int n)
{
    for (int i = 0; i < n; i++) {
        t[i].p = p;
        assert_int_equal(pthread_create(&t[i].th, NULL, probe_run, &t[i]), 0);
        struct pool_stats st;
        int64_t end = now_ms() + 3000;
        do {
            sleep_ms(1);
            pool_get_stats(p, &st);
        } while (st.pipelined < i + 1 && now_ms() < end);
        assert_int_equal(st.pipelined, i + 1);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i].th, NULL);
}

/* A pool of one connection to a fake ("x-slow" answered after 0.6 s), and
 * the lookups of addrs on it, started as start_queued() does. */
static struct pool *run_queued(struct fake *f, struct remote_def *r, long timeout_ms,
                               const char *const *addrs, struct probe_thread *t, int n)
{
    fake_start(f, "normal", "--delay", "0.6", NULL);
    remote_init(r, f->port, PROTO_LMTP);
    r->concurrency = 1;
    r->ep.timeout_ms = timeout_ms;
    struct pool *p = pool_create(r);
    memset(t, 0, (size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        t[i].addr = addrs[i];
    start_queued(p, t, n);
    return p;
}

/* One more lookup is answered, after `connects` connections in all. */
static void finish_with_lookup(struct pool *p, struct fake *f, long connects)
{
    char reply[256], err[ERRLEN];
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok5@example.org", NULL, reply, err), LOOKUP_YES);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, connects);
    pool_destroy(p);
    fake_stop(f);
}

/* Eight lookups on one connection: the probes queued behind the slow one go
 * out in one write, and every caller gets the reply to its own address. */
static void test_pipelined_answers_matched(void **state)
{
    (void)state;
    static const char *const addrs[] = { "x-slow0@example.org", "ok1@example.org",
                                         "bad2@example.org",    "ok3@example.org",
                                         "bad4@example.org",    "bad5@example.org",
                                         "ok6@example.org",     "bad7@example.org" };
    enum { N = ARRAY_SIZE(addrs) };
    struct fake f;
    struct remote_def r;
    struct probe_thread t[N];
    struct pool *p = run_queued(&f, &r, 5000, addrs, t, N);
    for (int i = 0; i < N; i++) {
        bool yes = strncmp(addrs[i], "ok", 2) == 0;
        print_message("%s -> %d %s %s\n", addrs[i], t[i].res, t[i].reply, t[i].err);
        assert_int_equal(t[i].res, yes ? LOOKUP_YES : LOOKUP_NO);
        if (!yes)
            assert_non_null(strstr(t[i].reply, addrs[i]));   /* its own reply */
    }
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.operations, N);
    assert_int_equal(st.pipelined, 0);
    assert_int_equal(fake_max_sessions(&f), 1);
    assert_true(fake_pipelined(&f) >= 1);   /* RCPTs that did not wait for a reply */
    pool_destroy(p);
    fake_stop(&f);
}

/* A 451 for one probe is that probe's error alone: the others in the same
 * write get their answers and the connection stays. */
static void test_pipelined_probe_error_isolated(void **state)
{
    (void)state;
    static const char *const addrs[] = { "x-slow0@example.org", "ok1@example.org",
                                         "x-temp2@example.org", "bad3@example.org",
                                         "ok4@example.org" };
    static const enum lookup_result want[] = { LOOKUP_NO, LOOKUP_YES, LOOKUP_ERROR, LOOKUP_NO,
                                               LOOKUP_YES };
    enum { N = ARRAY_SIZE(addrs) };
    struct fake f;
    struct remote_def r;
    struct probe_thread t[N];
    struct pool *p = run_queued(&f, &r, 5000, addrs, t, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(t[i].res, want[i]);
    assert_non_null(strstr(t[2].err, "451 4.2.1"));
    finish_with_lookup(p, &f, 1);   /* on the same connection */
}

/* The server never answers one probe: the probes answered before it keep
 * their answers, it (and what went out behind it on that connection) fails
 * by its own deadline, and the next lookup gets a fresh connection. */
static void test_pipelined_reply_missing(void **state)
{
    (void)state;
    static const char *const addrs[] = { "x-slow0@example.org", "ok1@example.org",
                                         "bad2@example.org", "x-hang3@example.org",
                                         "ok4@example.org" };
    enum { N = ARRAY_SIZE(addrs) };
    struct fake f;
    struct remote_def r;
    struct probe_thread t[N];
    struct pool *p = run_queued(&f, &r, 1500, addrs, t, N);
    assert_int_equal(t[0].res, LOOKUP_NO);
    assert_int_equal(t[1].res, LOOKUP_YES);
    assert_int_equal(t[2].res, LOOKUP_NO);
    assert_non_null(strstr(t[2].reply, "bad2@example.org"));
    for (int i = 3; i < N; i++) {
        print_message("%s -> %d after %lld ms: %s\n", addrs[i], t[i].res, (long long)t[i].ms,
                      t[i].err);
        assert_int_equal(t[i].res, LOOKUP_ERROR);
        assert_non_null(strstr(t[i].err, "timeout"));
        assert_true(t[i].ms <= 1500 + 500);   /* its own deadline, not more */
    }
    finish_with_lookup(p, &f, 2);   /* on a fresh connection */
}

static void test_limits_requests(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    r.limits_requests = 3;
    struct pool *p = pool_create(&r);
    for (int i = 0; i < 9; i++)
        assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err),
                         LOOKUP_YES);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 3);
    assert_int_equal(st.operations, 9);
    assert_int_equal(st.open, 0);      /* the third connection was used up */
    pool_destroy(p);
    assert_int_equal(log_count(&f, "QUIT"), 3);
    fake_stop(&f);
}

static void test_limits_errors(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "tempfail-rcpt", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    r.limits_errors = 2;
    struct pool *p = pool_create(&r);
    for (int i = 0; i < 4; i++)
        assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err),
                         LOOKUP_ERROR);
    assert_non_null(strstr(reply, "451"));
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 2);
    pool_destroy(p);
    fake_stop(&f);
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_host_down(void **state)
{
    (void)state;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    remote_init(&r, closed_port(), PROTO_LMTP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "connect"));
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_true(st.down);

    int64_t t0 = now_ms();
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_true(now_ms() - t0 < 50);
    assert_non_null(strstr(err, "host marked down"));

    sleep_ms(1100);   /* first interval: 1 s; then it tries again and doubles */
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_null(strstr(err, "marked down"));
    sleep_ms(1100);   /* now 2 s: still down */
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "host marked down"));
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 0);
    pool_destroy(p);
}

static void test_unix_socket(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN], path[300], address[310];
    snprintf(path, sizeof path, "/tmp/test_pool.%d.sock", (int)getpid());
    unlink(path);
    fake_start(&f, "normal", "--unix", path, NULL);
    snprintf(address, sizeof address, "unix:%s", path);
    remote_init(&r, 0, PROTO_LMTP);
    r.ep.address = address;
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "no@example.org", NULL, reply, err), LOOKUP_NO);
    pool_destroy(p);
    fake_stop(&f);
    unlink(path);
    /* nobody listening: a connect error that marks the host down */
    p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, path));
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_true(st.down);
    pool_destroy(p);
}

/*
 * The server dropped an idle connection (here after 0.3 s, with a 421).
 * Reused moments after its last lookup, a connection is not checked first:
 * the probe fails on it and is run once more on a fresh connection, so the
 * caller still gets the answer, never a 451 of its own. Once only: a server
 * gone for good is an error.
 */
static void test_idle_dropped_by_server(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", "--idle-close", "0.3", NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    sleep_ms(800);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "bad@example.org", NULL, reply, err), LOOKUP_NO);
    assert_non_null(strstr(reply, "550 5.1.1"));
    assert_int_equal(log_count(&f, "RCPT TO:<bad@example.org>"), 1);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 2);
    fake_stop(&f);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok2@example.org", NULL, reply, err), LOOKUP_ERROR);
    pool_destroy(p);
}

static void test_noop_before_reuse(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    assert_int_equal(log_count(&f, "NOOP"), 0);
    sleep_ms(5300);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    assert_int_equal(log_count(&f, "NOOP"), 1);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 1);
    pool_destroy(p);
    fake_stop(&f);
}

static struct spool *message(const char *text, size_t limit)
{
    char err[ERRLEN];
    struct spool *s = spool_create(limit);
    assert_int_equal(spool_write(s, text, strlen(text), err, sizeof err), 0);
    return s;
}

static int progress_calls;
static void progress(void *ctx)
{
    (void)ctx;
    progress_calls++;
}

static void test_relay_lmtp(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char err[ERRLEN] = "";
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    struct pool *p = pool_create(&r);
    /* a probe first leaves a transaction open: the relay must RSET it */
    char reply[256];
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);

    struct relay_rcpt rc[4] = {
        { .addr = "ok1@example.org" }, { .addr = "nobody@example.org" },
        { .addr = "oktemp@example.org" }, { .addr = "okperm@example.org" },
    };
    struct spool *msg = message("Subject: t\n\n.hidden\nline\r\n..two\n.\nlast", 8);
    assert_int_equal(pool_relay(p, "sender@example.net", rc, 4, msg, progress, NULL,
                                now_ms() + 5000, err, sizeof err), 0);
    assert_int_equal(rc[0].code, 250);
    assert_non_null(strstr(rc[0].reply, "Saved"));
    assert_int_equal(rc[1].code, 550);
    assert_int_equal(rc[2].code, 452);
    assert_int_equal(rc[3].code, 552);
    spool_destroy(msg);
    pool_destroy(p);
    assert_int_equal(log_count(&f, "RSET"), 1);
    assert_int_equal(log_count(&f, "MAIL FROM:<sender@example.net> SIZE=38 BODY=8BITMIME"), 1);
    char *data = slurp(f.data);
    assert_string_equal(data, "=== ok1@example.org oktemp@example.org okperm@example.org\n"
                              "Subject: t\r\n\r\n..hidden\r\nline\r\n...two\r\n..\r\nlast\r\n"
                              "=== end\n");
    free(data);
    fake_stop(&f);
}

static void test_relay_smtp_one_reply(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char err[ERRLEN] = "";
    fake_start(&f, "normal", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    struct pool *p = pool_create(&r);
    struct relay_rcpt rc[3] = {
        { .addr = "ok1@example.org" }, { .addr = "no@example.org" }, { .addr = "ok2@example.org" },
    };
    /* bigger than memory: comes from the spill file */
    char body[70000];
    memset(body, 'a', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (size_t i = 100; i < sizeof body - 1; i += 100)
        body[i] = '\n';
    struct spool *msg = message(body, 1024);
    assert_int_equal(pool_relay(p, "", rc, 3, msg, NULL, NULL, now_ms() + 5000, err,
                                sizeof err), 0);
    assert_int_equal(rc[0].code, 250);
    assert_int_equal(rc[1].code, 550);
    assert_int_equal(rc[2].code, 250);
    assert_string_equal(rc[2].reply, "250 2.0.0 Ok: queued as FAKE1");
    /* the connection is reusable for a second transaction */
    assert_int_equal(pool_relay(p, "", rc, 1, msg, NULL, NULL, now_ms() + 5000, err,
                                sizeof err), 0);
    assert_int_equal(rc[0].code, 250);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 1);
    spool_destroy(msg);
    pool_destroy(p);
    assert_true(log_has(&f, "MAIL FROM:<> SIZE="));
    fake_stop(&f);
}

/*
 * SMTP smuggling (issue 14 item 11): a message whose body holds a bare CR
 * or LF around a dot, relayed to a receiver that takes a lone CR as a line
 * end (--bare-cr-eol). Every lone CR and LF must go out as CRLF and the
 * dot be doubled, so the receiver sees no end of data and no second
 * transaction.
 */
static void test_relay_no_smuggling(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "Subject: s\r\n\r\nhi\r.\rMAIL FROM:<evil@evil.test>\r\nRCPT TO:<ok-smuggled@example.org>\r\n"
        "DATA\r\nsmuggled\r\n.\r\n",
        "Subject: s\r\n\r\nhi\r.\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<ok-smuggled@example.org>\r\n"
        "DATA\r\nsmuggled\r\n.\r\n",
        "Subject: s\r\n\r\nhi\n.\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<ok-smuggled@example.org>\r\n"
        "DATA\r\nsmuggled\r\n.\r\n",
        "Subject: s\r\n\r\nhi\r\n.\rMAIL FROM:<evil@evil.test>\r\nRCPT TO:<ok-smuggled@example.org>\r\n"
        "DATA\r\nsmuggled\r\n.\r",
    };
    for (size_t b = 0; b < ARRAY_SIZE(bodies); b++) {
        struct fake f;
        struct remote_def r;
        char err[ERRLEN] = "";
        fake_start(&f, "normal", "--bare-cr-eol", NULL);
        remote_init(&r, f.port, PROTO_SMTP);
        struct pool *p = pool_create(&r);
        struct relay_rcpt rc[1] = { { .addr = "ok@example.org" } };
        struct spool *msg = message(bodies[b], 1 << 16);
        assert_int_equal(pool_relay(p, "sender@example.net", rc, 1, msg, NULL, NULL,
                                    now_ms() + 5000, err, sizeof err), 0);
        assert_int_equal(rc[0].code, 250);
        spool_destroy(msg);
        pool_destroy(p);
        if (log_has(&f, "evil@evil.test"))
            print_message("body %zu: command log:\n%s\n", b, slurp(f.log));
        assert_false(log_has(&f, "MAIL FROM:<evil@evil.test>"));
        assert_false(log_has(&f, "RCPT TO:<ok-smuggled@example.org>"));
        assert_int_equal(log_count_prefix(&f, "MAIL FROM:"), 1);
        assert_int_equal(log_count(&f, "DATA"), 1);
        char *data = slurp(f.data);
        assert_int_equal(strstr(data, "=== end") - data, strlen(data) - 8);   /* one transaction */
        assert_non_null(strstr(data, "\r\n..\r\n"));    /* the dot went out doubled, on its own line */
        free(data);
        fake_stop(&f);
    }
}

static void test_relay_tempfail_data(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char err[ERRLEN] = "";
    fake_start(&f, "tempfail-data", NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    struct pool *p = pool_create(&r);
    struct relay_rcpt rc[2] = { { .addr = "ok1@example.org" }, { .addr = "x@example.org" } };
    struct spool *msg = message("hello\n", 1024);
    assert_int_equal(pool_relay(p, "s@example.net", rc, 2, msg, NULL, NULL, now_ms() + 5000,
                                err, sizeof err), 0);
    assert_int_equal(rc[0].code, 451);
    assert_non_null(strstr(rc[0].reply, "data tempfail"));
    assert_int_equal(rc[1].code, 550);
    spool_destroy(msg);
    pool_destroy(p);
    fake_stop(&f);
}

static void test_relay_timeout_after_data(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char err[ERRLEN] = "";
    fake_start(&f, "hang-data", NULL);
    remote_init(&r, f.port, PROTO_LMTP);
    r.ep.timeout_ms = 4500;
    struct pool *p = pool_create(&r);
    struct relay_rcpt rc[2] = { { .addr = "ok1@example.org" }, { .addr = "x@example.org" } };
    struct spool *msg = message("hello\n", 1024);
    progress_calls = 0;
    int64_t t0 = now_ms();
    assert_int_equal(pool_relay(p, "s@example.net", rc, 2, msg, progress, NULL, now_ms() + 8000,
                                err, sizeof err), -1);
    int64_t ms = now_ms() - t0;
    print_message("relay timeout after %lld ms, %d progress calls: %s\n", (long long)ms,
                  progress_calls, rc[0].reply);
    assert_true(ms >= 4400 && ms < 6000);
    assert_true(progress_calls >= 2);
    assert_int_equal(rc[0].code, 451);
    assert_non_null(strstr(rc[0].reply, "451 4.4.2 next hop fake: timeout after end of data"));
    assert_int_equal(rc[1].code, 550);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.open, 0);   /* closed after the failure */
    spool_destroy(msg);
    pool_destroy(p);
    fake_stop(&f);
}

static void check_auth_mech(const char *mech)
{
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN], line[64];
    fake_start(&f, "normal", "--auth", "alice@example.org:s3cr=t,x", "--mechs", mech, NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_AUTH, "alice@example.org", "s3cr=t,x", reply, err),
                     LOOKUP_YES);
    assert_non_null(strstr(reply, "235"));
    assert_int_equal(lookup(p, LOOKUP_AUTH, "alice@example.org", "wrong", reply, err),
                     LOOKUP_NO);
    assert_non_null(strstr(reply, "535"));
    assert_int_equal(lookup(p, LOOKUP_AUTH, "bob@example.org", "s3cr=t,x", reply, err),
                     LOOKUP_NO);
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 3);   /* a fresh session per AUTH lookup */
    assert_int_equal(st.open, 0);       /* never kept: it is logged in as the user */
    pool_destroy(p);
    snprintf(line, sizeof line, "AUTH %s", strchr(mech, ' ') ? "SCRAM-SHA-256" : mech);
    assert_true(log_has(&f, line));
    fake_stop(&f);
}

static void test_auth_mechanisms(void **state)
{
    (void)state;
    check_auth_mech("PLAIN");
    check_auth_mech("LOGIN");
    check_auth_mech("CRAM-MD5");
    check_auth_mech("SCRAM-SHA-256");
    /* all offered: the strongest is used */
    check_auth_mech("LOGIN PLAIN CRAM-MD5 SCRAM-SHA-256");
}

/* With auth.username set, the pool logs in before probing. */
static void test_relay_user_auth(void **state)
{
    (void)state;
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", "--auth", "relay:pw", "--mechs", "PLAIN", NULL);
    remote_init(&r, f.port, PROTO_SMTP);
    r.ep.auth_username = (char *)"relay";
    r.ep.auth_secret = (char *)"pw";
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_YES);
    pool_destroy(p);
    assert_true(log_has(&f, "AUTH PLAIN"));

    r.ep.auth_secret = (char *)"bad";
    p = pool_create(&r);
    int before = log_count_prefix(&f, "AUTH PLAIN");
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "refused our AUTH"));
    /* a wrong secret is not tried again at once: every try is a failed login at the store */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
        assert_non_null(strstr(err, "host marked down (it refused our AUTH; retry in"));
    }
    assert_int_equal(log_count_prefix(&f, "AUTH PLAIN") - before, 1);
    pool_destroy(p);
    fake_stop(&f);
}

/* One IMAP server with CAPS and the user alice@example.org / PASS. */
static void check_imap_auth(const char *caps, const char *pass, const char *wrong,
                            const char *expect_line)
{
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN], auth[300];
    snprintf(auth, sizeof auth, "alice@example.org:%s", pass);
    fake_start(&f, "normal", "--proto", "imap", "--imap-caps", caps, "--auth", auth, NULL);
    remote_init(&r, f.port, PROTO_IMAP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_AUTH, "alice@example.org", pass, reply, err), LOOKUP_YES);
    assert_non_null(strstr(reply, "OK"));
    assert_int_equal(lookup(p, LOOKUP_AUTH, "alice@example.org", wrong, reply, err), LOOKUP_NO);
    assert_non_null(strstr(reply, "NO"));
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_int_equal(st.connects, 2);   /* logged in: never reused */
    assert_int_equal(st.open, 0);
    pool_destroy(p);
    if (!log_has(&f, expect_line))
        print_message("command log:\n%s\n", slurp(f.log));
    assert_true(log_has(&f, expect_line));
    assert_int_equal(log_count(&f, "a3 LOGOUT"), 2);
    fake_stop(&f);
}

static void test_imap_auth(void **state)
{
    (void)state;
    /* base64("\0alice@example.org\0secret") */
    check_imap_auth("AUTH=PLAIN SASL-IR", "secret", "wrong",
                    "a2 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==");
    check_imap_auth("AUTH=PLAIN", "secret", "wrong", "a2 AUTHENTICATE PLAIN\n");
    check_imap_auth("AUTH=LOGIN", "se\"cr\\et x", "se\"cr\\et",
                    "a2 LOGIN \"alice@example.org\" \"se\\\"cr\\\\et x\"");
    check_imap_auth("", "p\xc3\xa4ssw\xc3\xb6rd", "p\xc3\xa4ssw\xc3\xb6rD",
                    "a2 LOGIN \"alice@example.org\" {10}");
    check_imap_auth("LITERAL+", "p\xc3\xa4ssw\xc3\xb6rd", "passw",
                    "a2 LOGIN \"alice@example.org\" {10+}");
}

static void test_imap_faults(void **state)
{
    (void)state;
    static const char *const scenarios[] = { "garbage", "hang", "bigline", "slow" };
    for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
        struct fake f;
        struct remote_def r;
        char reply[256], err[ERRLEN];
        fake_start(&f, scenarios[i], "--proto", "imap", "--auth", "a:b", "--delay", "2.5", NULL);
        remote_init(&r, f.port, PROTO_IMAP);
        struct pool *p = pool_create(&r);
        int64_t t0 = now_ms();
        assert_int_equal(lookup(p, LOOKUP_AUTH, "a", "b", reply, err), LOOKUP_ERROR);
        print_message("imap %-8s -> %lld ms: %s\n", scenarios[i], (long long)(now_ms() - t0), err);
        assert_true(now_ms() - t0 < 3000);
        pool_destroy(p);
        fake_stop(&f);
    }
    /* LOGINDISABLED and no AUTH=PLAIN: nothing to log in with */
    struct fake f;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    fake_start(&f, "normal", "--proto", "imap", "--imap-caps", "LOGINDISABLED", "--auth", "a:b",
               NULL);
    remote_init(&r, f.port, PROTO_IMAP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_AUTH, "a", "b", reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "neither"));
    pool_destroy(p);
    assert_false(log_has(&f, "LOGIN \""));
    fake_stop(&f);
    /* STARTTLS demanded but not offered: no credentials in plain text */
    fake_start(&f, "normal", "--proto", "imap", "--auth", "a:b", NULL);
    remote_init(&r, f.port, PROTO_IMAP);
    r.ep.tls_enable = true;
    r.ep.tls_implicit = false;
    p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_AUTH, "a", "b", reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "STARTTLS"));
    pool_destroy(p);
    assert_true(log_has(&f, "a1 CAPABILITY"));
    assert_false(log_has(&f, "AUTHENTICATE"));
    assert_false(log_has(&f, "LOGIN"));
    fake_stop(&f);
}

static void test_imap_rejects_smtp_lookups(void **state)
{
    (void)state;
    struct remote_def r;
    char reply[256], err[ERRLEN];
    remote_init(&r, closed_port(), PROTO_IMAP);
    struct pool *p = pool_create(&r);
    assert_int_equal(lookup(p, LOOKUP_RCPT, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "not supported by imap"));
    assert_int_equal(lookup(p, LOOKUP_VRFY, "ok@example.org", NULL, reply, err), LOOKUP_ERROR);
    assert_non_null(strstr(err, "not supported by imap"));
    struct pool_stats st;
    pool_get_stats(p, &st);
    assert_false(st.down);   /* nothing was even tried */
    pool_destroy(p);
}

int main(void)
{
    const char *dbg = getenv("NEXTHOP_TEST_DEBUG");
    log_init("test_pool", false, dbg && *dbg ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kind_names, stop_leftovers),
        cmocka_unit_test_teardown(test_rcpt_smtp, stop_leftovers),
        cmocka_unit_test_teardown(test_rcpt_lmtp, stop_leftovers),
        cmocka_unit_test_teardown(test_vrfy_expn, stop_leftovers),
        cmocka_unit_test_teardown(test_faults, stop_leftovers),
        cmocka_unit_test_teardown(test_injection_rejected, stop_leftovers),
        cmocka_unit_test_teardown(test_starttls_required, stop_leftovers),
        cmocka_unit_test_teardown(test_implicit_tls_to_plain_server, stop_leftovers),
        cmocka_unit_test_teardown(test_concurrency_limit, stop_leftovers),
        cmocka_unit_test_teardown(test_pipelined_answers_matched, stop_leftovers),
        cmocka_unit_test_teardown(test_pipelined_probe_error_isolated, stop_leftovers),
        cmocka_unit_test_teardown(test_pipelined_reply_missing, stop_leftovers),
        cmocka_unit_test_teardown(test_limits_requests, stop_leftovers),
        cmocka_unit_test_teardown(test_limits_errors, stop_leftovers),
        cmocka_unit_test_teardown(test_host_down, stop_leftovers),
        cmocka_unit_test_teardown(test_unix_socket, stop_leftovers),
        cmocka_unit_test_teardown(test_idle_dropped_by_server, stop_leftovers),
        cmocka_unit_test_teardown(test_noop_before_reuse, stop_leftovers),
        cmocka_unit_test_teardown(test_relay_lmtp, stop_leftovers),
        cmocka_unit_test_teardown(test_relay_smtp_one_reply, stop_leftovers),
        cmocka_unit_test_teardown(test_relay_no_smuggling, stop_leftovers),
        cmocka_unit_test_teardown(test_relay_tempfail_data, stop_leftovers),
        cmocka_unit_test_teardown(test_relay_timeout_after_data, stop_leftovers),
        cmocka_unit_test_teardown(test_auth_mechanisms, stop_leftovers),
        cmocka_unit_test_teardown(test_relay_user_auth, stop_leftovers),
        cmocka_unit_test_teardown(test_imap_auth, stop_leftovers),
        cmocka_unit_test_teardown(test_imap_faults, stop_leftovers),
        cmocka_unit_test_teardown(test_imap_rejects_smtp_lookups, stop_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
