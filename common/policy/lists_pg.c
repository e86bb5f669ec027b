/*
 * lists_pg.c - SQL lists on PostgreSQL (lists_pg.h), beside the sqlite
 * backend in lists.c.
 *
 * A pg_list holds up to PG_MAX_CONNS connections, handed out under a mutex
 * (libpq allows one thread per connection at a time); callers beyond that
 * wait for one to come back. Each connection is opened with a 2 s connect
 * timeout (unless conninfo says otherwise), a 2 s statement_timeout and
 * read-only transactions, and has the query prepared once. The query's one
 * `?` (or `?1`), outside strings, identifiers, comments and dollar quotes,
 * is sent as `$1`; the key goes as text and the server infers its type.
 * A connection that saw an error is closed and replaced on the next lookup;
 * when a reused connection turns out dead (the server restarted), the idle
 * ones are dropped too and the lookup is tried once on a fresh connection.
 *
 * Must not: log (errors go up through err), put conninfo (it may hold a
 * password) in a message, keep a key after returning, or write to a database.
 */
#include "lists_pg.h"

#include "util.h"

#ifndef NEXTHOP_HAVE_LIBPQ

struct pg_list {
    int unused;
};

struct pg_list *pg_list_new(const char *name, const char *conninfo, const char *query,
                            char *err, size_t errlen)
{
    set_error(err, errlen, "postgresql support is not built in");
    return NULL;
}

int pg_list_contains(struct pg_list *p, const char *key, char *err, size_t errlen)
{
    set_error(err, errlen, "postgresql support is not built in");
    return -1;
}

void pg_list_free(struct pg_list *p) { (void)p; }

int pg_list_libversion(void) { return 0; }

#else

#include <ctype.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PG_MAX_CONNS 8
#define PG_STATEMENT "nexthop_lookup"
/* Defaults that conninfo may override (it is expanded after them). */
#define PG_CONNECT_TIMEOUT_S "2"
#define PG_TCP_USER_TIMEOUT_MS "5000"
#define PG_SESSION_SETUP "SET statement_timeout = 2000; SET default_transaction_read_only = on"

struct pg_conn {
    PGconn *conn;
    struct pg_conn *next;
};

struct pg_list {
    char *name;
    char *conninfo;
    char *query;            /* with $1 */
    pthread_mutex_t mu;
    pthread_cond_t freed;
    struct pg_conn *idle;
    int open;
};

/* ---- messages ---- */

/* Copies msg as one line: whitespace runs (libpq's "\n\t") become one space. */
static void one_line(char *dst, size_t n, const char *msg)
{
    size_t o = 0;
    bool space = false;
    for (const char *s = msg ? msg : ""; *s && o + 1 < n; s++) {
        if (isspace((unsigned char)*s)) {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < n)
            dst[o++] = ' ';
        space = false;
        dst[o++] = (char)((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    }
    dst[o] = '\0';
    if (o == 0)
        snprintf(dst, n, "unknown error");
}

/* The server's primary message for res, else libpq's message for conn. */
static void pg_message(PGconn *conn, const PGresult *res, char *dst, size_t n)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary && *primary)
        one_line(dst, n, primary);
    else if (res && *PQresultErrorMessage(res))
        one_line(dst, n, PQresultErrorMessage(res));
    else
        one_line(dst, n, conn ? PQerrorMessage(conn) : "out of memory");
}

/* ---- the query: ? -> $1 ---- */

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

static size_t skip_quoted(const char *q, size_t i)
{
    char quote = q[i];
    bool backslash = quote == '\'' && i > 0 && (q[i - 1] == 'E' || q[i - 1] == 'e') &&
                     (i < 2 || !word_char(q[i - 2]));
    size_t j = i + 1;
    while (q[j]) {
        if (backslash && q[j] == '\\' && q[j + 1])
            j += 2;
        else if (q[j] == quote && q[j + 1] == quote)
            j += 2;
        else if (q[j] == quote)
            return j + 1;
        else
            j++;
    }
    return j;
}

static size_t skip_block_comment(const char *q, size_t i)
{
    int depth = 0;   /* PostgreSQL block comments nest */
    size_t j = i;
    while (q[j]) {
        if (q[j] == '/' && q[j + 1] == '*') {
            depth++;
            j += 2;
        } else if (q[j] == '*' && q[j + 1] == '/') {
            j += 2;
            if (--depth == 0)
                return j;
        } else {
            j++;
        }
    }
    return j;
}

/* $tag$ ... $tag$; i when q[i] starts no dollar quote ($1 is a parameter). */
static size_t skip_dollar_quote(const char *q, size_t i)
{
    if (i > 0 && word_char(q[i - 1]))
        return i;   /* part of an identifier such as a$b */
    size_t j = i + 1;
    if (isdigit((unsigned char)q[j]))
        return i;
    while (q[j] && q[j] != '$' && word_char(q[j]))
        j++;
    if (q[j] != '$')
        return i;
    size_t tag_len = j + 1 - i;
    for (const char *s = q + j + 1; (s = strchr(s, '$')) != NULL; s++)
        if (strncmp(s, q + i, tag_len) == 0)
            return (size_t)(s - q) + tag_len;
    return strlen(q);
}

/* Index after the string, quoted identifier, comment or dollar quote at q[i]; i if none. */
static size_t skip_literal(const char *q, size_t i)
{
    if (q[i] == '\'' || q[i] == '"')
        return skip_quoted(q, i);
    if (q[i] == '-' && q[i + 1] == '-')
        return i + strcspn(q + i, "\n");
    if (q[i] == '/' && q[i + 1] == '*')
        return skip_block_comment(q, i);
    if (q[i] == '$')
        return skip_dollar_quote(q, i);
    return i;
}

/*
 * The query with each ? and ?1 as $1 (NULL with err). As in sqlite, ?1 is
 * the first parameter and every plain ? a new one: exactly one is allowed.
 */
static char *translate_query(const char *query, char *err, size_t errlen)
{
    size_t len = strlen(query);
    char *out = xmalloc(len * 2 + 1), *o = out;
    int plain = 0;
    bool numbered = false;
    for (size_t i = 0; i < len;) {
        size_t end = skip_literal(query, i);
        if (end > i) {
            memcpy(o, query + i, end - i);
            o += end - i;
            i = end;
        } else if (query[i] != '?') {
            *o++ = query[i++];
        } else {
            size_t digits = strspn(query + i + 1, "0123456789");
            if (digits > 0 && (digits != 1 || query[i + 1] != '1')) {
                set_error(err, errlen, "parameter ?%.*s: only ? or ?1 is allowed", (int)digits,
                          query + i + 1);
                free(out);
                return NULL;
            }
            numbered |= digits > 0;
            plain += digits == 0;
            *o++ = '$';
            *o++ = '1';
            i += 1 + digits;
        }
    }
    *o = '\0';
    int params = plain > 0 ? plain : numbered;
    if (params != 1) {
        set_error(err, errlen, "the query must have exactly one parameter (?), it has %d", params);
        free(out);
        return NULL;
    }
    return out;
}

/* ---- connections ---- */

static void pg_conn_close(struct pg_conn *c)
{
    PQfinish(c->conn);
    free(c);
}

/* Runs a command that returns no rows; -1 with err. */
static int pg_command(PGconn *conn, const char *what, PGresult *res, char *err, size_t errlen)
{
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[ERRLEN];
        pg_message(conn, res, msg, sizeof msg);
        set_error(err, errlen, "%s: %s", what, msg);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* The prepared statement must take one parameter and return columns. */
static int pg_check_prepared(PGconn *conn, char *err, size_t errlen)
{
    PGresult *desc = PQdescribePrepared(conn, PG_STATEMENT);
    int rc = -1;
    if (PQresultStatus(desc) != PGRES_COMMAND_OK) {
        char msg[ERRLEN];
        pg_message(conn, desc, msg, sizeof msg);
        set_error(err, errlen, "bad query: %s", msg);
    } else if (PQnparams(desc) != 1) {
        set_error(err, errlen, "the query must have exactly one parameter (?), it has %d",
                  PQnparams(desc));
    } else if (PQnfields(desc) == 0) {
        set_error(err, errlen, "the query returns no rows: it must be a SELECT");
    } else {
        rc = 0;
    }
    PQclear(desc);
    return rc;
}

static PGconn *pg_connect(const char *conninfo, char *err, size_t errlen)
{
    /* conninfo is expanded last, so its own settings win over these defaults */
    const char *const keys[] = { "connect_timeout", "tcp_user_timeout", "application_name",
                                 "dbname", NULL };
    const char *const values[] = { PG_CONNECT_TIMEOUT_S, PG_TCP_USER_TIMEOUT_MS,
                                   "milter-nexthop", conninfo, NULL };
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        char msg[ERRLEN];
        pg_message(conn, NULL, msg, sizeof msg);
        set_error(err, errlen, "cannot connect: %s", msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Connects, sets the session up and prepares query ($1 form); NULL with err. */
static struct pg_conn *pg_conn_open(const char *conninfo, const char *query, char *err,
                                    size_t errlen)
{
    PGconn *conn = pg_connect(conninfo, err, errlen);
    if (!conn)
        return NULL;
    if (pg_command(conn, "session setup", PQexec(conn, PG_SESSION_SETUP), err, errlen) < 0 ||
        pg_command(conn, "bad query", PQprepare(conn, PG_STATEMENT, query, 1, NULL), err,
                   errlen) < 0 ||
        pg_check_prepared(conn, err, errlen) < 0) {
        PQfinish(conn);
        return NULL;
    }
    struct pg_conn *c = xcalloc(1, sizeof *c);
    c->conn = conn;
    return c;
}

/* ---- the pool ---- */

/* An idle connection, else a new one, else waits; NULL with err. *fresh: newly opened. */
static struct pg_conn *pg_acquire(struct pg_list *p, bool *fresh, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    while (!p->idle && p->open >= PG_MAX_CONNS)
        pthread_cond_wait(&p->freed, &p->mu);
    struct pg_conn *c = p->idle;
    if (c) {
        p->idle = c->next;
        pthread_mutex_unlock(&p->mu);
        *fresh = false;
        return c;
    }
    p->open++;
    pthread_mutex_unlock(&p->mu);
    char why[ERRLEN];
    c = pg_conn_open(p->conninfo, p->query, why, sizeof why);
    if (!c) {
        set_error(err, errlen, "%s: %s", p->name, why);
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->mu);
    }
    *fresh = true;
    return c;
}

/* Returns c to the pool, or closes it when it failed (broken stays out). */
static void pg_release(struct pg_list *p, struct pg_conn *c, bool broken)
{
    if (broken)
        pg_conn_close(c);
    pthread_mutex_lock(&p->mu);
    if (broken) {
        p->open--;
    } else {
        c->next = p->idle;
        p->idle = c;
    }
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

/* Closes every idle connection: after one was found dead, the others are too. */
static void pg_drop_idle(struct pg_list *p)
{
    pthread_mutex_lock(&p->mu);
    struct pg_conn *c = p->idle;
    int n = 0;
    for (struct pg_conn *i = c; i; i = i->next)
        n++;
    p->idle = NULL;
    p->open -= n;
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->mu);
    while (c) {
        struct pg_conn *next = c->next;
        pg_conn_close(c);
        c = next;
    }
}

/* 1 row(s), 0 none, -1 with the server's message in msg. */
static int pg_exec(PGconn *conn, const char *key, char *msg, size_t n)
{
    PGresult *res = PQexecPrepared(conn, PG_STATEMENT, 1, &key, NULL, NULL, 0);
    int result = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        result = PQntuples(res) > 0 ? 1 : 0;
    else
        pg_message(conn, res, msg, n);
    PQclear(res);
    return result;
}

/* ---- interface ---- */

struct pg_list *pg_list_new(const char *name, const char *conninfo, const char *query,
                            char *err, size_t errlen)
{
    char *translated = translate_query(query, err, errlen);
    if (!translated)
        return NULL;
    struct pg_conn *first = pg_conn_open(conninfo, translated, err, errlen);
    if (!first) {
        free(translated);
        return NULL;
    }
    struct pg_list *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->conninfo = xstrdup(conninfo);
    p->query = translated;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->idle = first;
    p->open = 1;
    return p;
}

int pg_list_contains(struct pg_list *p, const char *key, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh;
        struct pg_conn *c = pg_acquire(p, &fresh, err, errlen);
        if (!c)
            return -1;
        char msg[ERRLEN];
        int result = pg_exec(c->conn, key, msg, sizeof msg);
        bool dead = result < 0 && PQstatus(c->conn) == CONNECTION_BAD;
        pg_release(p, c, result < 0);
        if (result >= 0)
            return result;
        set_error(err, errlen, "%s: %s", p->name, msg);
        if (!dead || fresh)
            return -1;
        pg_drop_idle(p);
    }
    return -1;
}

void pg_list_free(struct pg_list *p)
{
    if (!p)
        return;
    pg_drop_idle(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
    free(p->name);
    free(p->conninfo);
    free(p->query);
    free(p);
}

int pg_list_libversion(void) { return PQlibVersion(); }

#endif
