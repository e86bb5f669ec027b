/*
 * lists.c - the sets behind `in-list` and session.rcpt.lookup (lists.h).
 *
 * Four kinds, one interface:
 *   inline, file  an open-addressing hash set of lower-cased entries, built
 *                 once and read-only afterwards, so lookups need no lock;
 *   sqlite        a small pool of read-only connections, each with the
 *                 query prepared, handed out under a mutex. A connection
 *                 serves one thread at a time (SQLITE_OPEN_NOMUTEX); up to
 *                 SQL_MAX_CONNS are opened on demand and callers beyond
 *                 that wait for one to come back. A connection that saw an
 *                 error is closed, so a replaced database file is reopened;
 *   postgresql    the same on PostgreSQL, in lists_pg.c (a load-time error
 *                 "not built in" when compiled without libpq);
 *   remote        a rcpt lookup through lookup_run() (cache, then pool).
 * Both SQL kinds check the query at load by connecting and preparing it, so
 * an unreadable database or an unreachable server stops a config from
 * loading (at start, -n and reload alike); later failures are lookup errors.
 *
 * Must not: log (errors go up through err), keep a key after returning,
 * or write to a database.
 */
#include "lists.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lists_pg.h"
#include "lookup.h"
#include "remote_set.h"
#include "util.h"

#define SQL_MAX_CONNS 8
#define SQL_BUSY_TIMEOUT_MS 2000

enum list_type { LIST_SET, LIST_SQL, LIST_PG, LIST_REMOTE };

struct strset {
    char **slots;   /* NULL = empty */
    size_t cap;     /* power of two */
    size_t n;
};

struct sql_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt;
    struct sql_conn *next;
};

struct sql_list {
    char *path;
    char *query;
    pthread_mutex_t mu;
    pthread_cond_t freed;
    struct sql_conn *idle;
    int open;
};

struct list {
    char *name;
    enum list_type type;
    struct strset set;
    struct sql_list sql;
    struct pg_list *pg;
    const struct remote_def *remote;
};

/* ---- hash set of lower-cased strings ---- */

static uint64_t hash_lower(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)tolower((unsigned char)*s);
        h *= 1099511628211ULL;
    }
    return h;
}

/* The slot holding key, or the empty slot where it would go. */
static char **set_slot(const struct strset *set, const char *key)
{
    size_t i = (size_t)hash_lower(key) & (set->cap - 1);
    while (set->slots[i] && strcasecmp(set->slots[i], key) != 0)
        i = (i + 1) & (set->cap - 1);
    return &set->slots[i];
}

static void set_init(struct strset *set, size_t expected)
{
    set->cap = 16;
    while (set->cap < expected * 2)
        set->cap *= 2;
    set->slots = xcalloc(set->cap, sizeof *set->slots);
    set->n = 0;
}

static void set_grow(struct strset *set)
{
    struct strset bigger;
    set_init(&bigger, set->cap);
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i])
            *set_slot(&bigger, set->slots[i]) = set->slots[i];
    bigger.n = set->n;
    free(set->slots);
    *set = bigger;
}

/* Adds the first len bytes of item (lower-cased); duplicates are ignored. */
static void set_add(struct strset *set, const char *item, size_t len)
{
    char *copy = str_lower(xstrndup(item, len));
    if ((set->n + 1) * 2 > set->cap)
        set_grow(set);
    char **slot = set_slot(set, copy);
    if (*slot) {
        free(copy);
        return;
    }
    *slot = copy;
    set->n++;
}

static bool set_contains(const struct strset *set, const char *key)
{
    return *set_slot(set, key) != NULL;
}

static void set_free(struct strset *set)
{
    for (size_t i = 0; set->slots && i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    set->slots = NULL;
}

/* ---- construction ---- */

static struct list *list_alloc(const char *name, enum list_type type)
{
    struct list *l = xcalloc(1, sizeof *l);
    l->name = xstrdup(name);
    l->type = type;
    return l;
}

struct list *list_new_inline(const char *name, const char *const *items, size_t n)
{
    struct list *l = list_alloc(name, LIST_SET);
    set_init(&l->set, n);
    for (size_t i = 0; i < n; i++)
        if (items[i] && items[i][0])
            set_add(&l->set, items[i], strlen(items[i]));
    return l;
}

/* One line of a list file: trims blanks and CR, skips comments. */
static void add_file_line(struct strset *set, const char *line)
{
    size_t len = strlen(line);
    while (*line && isspace((unsigned char)*line)) {
        line++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)line[len - 1]))
        len--;
    if (len == 0 || line[0] == '#')
        return;
    set_add(set, line, len);
}

struct list *list_new_file(const char *name, const char *url, char *err, size_t errlen)
{
    static const char scheme[] = "file://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0 || url[sizeof scheme - 1] == '\0') {
        set_error(err, errlen, "'%s' is not a file:///path URL", url);
        return NULL;
    }
    const char *path = url + sizeof scheme - 1;
    FILE *f = fopen(path, "re");
    if (!f) {
        set_error(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct list *l = list_alloc(name, LIST_SET);
    set_init(&l->set, 64);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0)
        add_file_line(&l->set, line);
    int failed = ferror(f);
    int saved = errno;
    free(line);
    fclose(f);
    if (failed) {
        set_error(err, errlen, "cannot read %s: %s", path, strerror(saved));
        list_free(l);
        return NULL;
    }
    return l;
}

/* ---- sqlite connections ---- */

static void sql_conn_close(struct sql_conn *c)
{
    sqlite3_finalize(c->stmt);
    sqlite3_close(c->db);
    free(c);
}

static bool only_blanks(const char *s)
{
    while (s && (isspace((unsigned char)*s) || *s == ';'))
        s++;
    return !s || !*s;
}

/* Opens the database read-only and prepares the query; NULL with err. */
static struct sql_conn *sql_conn_open(const char *path, const char *query, char *err,
                                      size_t errlen)
{
    struct sql_conn *c = xcalloc(1, sizeof *c);
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_error(err, errlen, "cannot open %s: %s", path,
                  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sql_conn_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, SQL_BUSY_TIMEOUT_MS);
    const char *tail = NULL;
    if (sqlite3_prepare_v2(c->db, query, -1, &c->stmt, &tail) != SQLITE_OK) {
        set_error(err, errlen, "bad query on %s: %s", path, sqlite3_errmsg(c->db));
        sql_conn_close(c);
        return NULL;
    }
    if (!c->stmt || !only_blanks(tail)) {
        set_error(err, errlen, "the query must be exactly one SQL statement");
        sql_conn_close(c);
        return NULL;
    }
    int params = sqlite3_bind_parameter_count(c->stmt);
    if (params != 1) {
        set_error(err, errlen, "the query must have exactly one parameter (?), it has %d",
                  params);
        sql_conn_close(c);
        return NULL;
    }
    return c;
}

static struct list *list_new_pg(const char *name, const struct database_cfg *db,
                                const char *query, char *err, size_t errlen)
{
    if (!db->conninfo || !db->conninfo[0]) {
        set_error(err, errlen, "database '%s' has no conninfo", db->id ? db->id : "");
        return NULL;
    }
    struct pg_list *pg = pg_list_new(name, db->conninfo, query, err, errlen);
    if (!pg)
        return NULL;
    struct list *l = list_alloc(name, LIST_PG);
    l->pg = pg;
    return l;
}

struct list *list_new_sql(const char *name, const struct database_cfg *db, const char *query,
                          char *err, size_t errlen)
{
    if (db->type && strcmp(db->type, "postgresql") == 0)
        return list_new_pg(name, db, query, err, errlen);
    if (!db->type || strcmp(db->type, "sqlite") != 0) {
        set_error(err, errlen, "unknown database type '%s'", db->type ? db->type : "");
        return NULL;
    }
    if (!db->path || !db->path[0]) {
        set_error(err, errlen, "database '%s' has no path", db->id ? db->id : "");
        return NULL;
    }
    struct sql_conn *first = sql_conn_open(db->path, query, err, errlen);
    if (!first)
        return NULL;
    struct list *l = list_alloc(name, LIST_SQL);
    l->sql.path = xstrdup(db->path);
    l->sql.query = xstrdup(query);
    pthread_mutex_init(&l->sql.mu, NULL);
    pthread_cond_init(&l->sql.freed, NULL);
    l->sql.idle = first;
    l->sql.open = 1;
    return l;
}

/* Takes an idle connection, opens one, or waits for one; NULL with err. */
static struct sql_conn *sql_acquire(struct list *l, char *err, size_t errlen)
{
    struct sql_list *s = &l->sql;
    pthread_mutex_lock(&s->mu);
    while (!s->idle && s->open >= SQL_MAX_CONNS)
        pthread_cond_wait(&s->freed, &s->mu);
    struct sql_conn *c = s->idle;
    if (c) {
        s->idle = c->next;
        pthread_mutex_unlock(&s->mu);
        return c;
    }
    s->open++;
    pthread_mutex_unlock(&s->mu);
    char why[ERRLEN];
    c = sql_conn_open(s->path, s->query, why, sizeof why);
    if (!c) {
        set_error(err, errlen, "%s: %s", l->name, why);
        pthread_mutex_lock(&s->mu);
        s->open--;
        pthread_cond_signal(&s->freed);
        pthread_mutex_unlock(&s->mu);
    }
    return c;
}

/* Returns c to the pool, or closes it when it failed (broken stays out). */
static void sql_release(struct list *l, struct sql_conn *c, bool broken)
{
    struct sql_list *s = &l->sql;
    if (broken)
        sql_conn_close(c);
    pthread_mutex_lock(&s->mu);
    if (broken) {
        s->open--;
    } else {
        c->next = s->idle;
        s->idle = c;
    }
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->mu);
}

static int sql_contains(struct list *l, const char *key, char *err, size_t errlen)
{
    struct sql_conn *c = sql_acquire(l, err, errlen);
    if (!c)
        return -1;
    int result = -1;
    int rc = sqlite3_bind_text(c->stmt, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(c->stmt);
        if (rc == SQLITE_ROW)
            result = 1;
        else if (rc == SQLITE_DONE)
            result = 0;
    }
    if (result < 0)
        set_error(err, errlen, "%s: %s", l->name, sqlite3_errmsg(c->db));
    sqlite3_reset(c->stmt);
    sqlite3_clear_bindings(c->stmt);
    sql_release(l, c, result < 0);
    return result;
}

static void sql_free(struct sql_list *s)
{
    while (s->idle) {
        struct sql_conn *next = s->idle->next;
        sql_conn_close(s->idle);
        s->idle = next;
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->freed);
    free(s->path);
    free(s->query);
}

/* ---- remote ---- */

struct list *list_new_remote(const char *name, const struct remote_def *remote)
{
    struct list *l = list_alloc(name, LIST_REMOTE);
    l->remote = remote;
    return l;
}

static int remote_contains(struct list *l, const char *key, const struct list_env *env, char *err,
                           size_t errlen)
{
    struct lookup_info info;
    struct remote_rt *rt = env ? remote_set_find(env->remotes, l->remote->id) : NULL;
    if (!rt) {
        set_error(err, errlen, "%s: remote %s is not running", l->name, l->remote->id);
        return -1;
    }
    enum lookup_result r = lookup_run(rt, LOOKUP_RCPT, key, NULL, env->queue_id, &info, err, errlen);
    if (r == LOOKUP_YES)
        return 1;
    if (r == LOOKUP_NO)
        return 0;
    return -1;
}

/* ---- common ---- */

void list_free(struct list *l)
{
    if (!l)
        return;
    if (l->type == LIST_SET)
        set_free(&l->set);
    else if (l->type == LIST_SQL)
        sql_free(&l->sql);
    else if (l->type == LIST_PG)
        pg_list_free(l->pg);
    free(l->name);
    free(l);
}

const char *list_name(const struct list *l) { return l->name; }

const struct remote_def *list_remote(const struct list *l)
{
    return l->type == LIST_REMOTE ? l->remote : NULL;
}

int list_contains(struct list *l, const char *key, const struct list_env *env, char *err,
                  size_t errlen)
{
    if (!key)
        key = "";
    switch (l->type) {
    case LIST_SET:
        return set_contains(&l->set, key) ? 1 : 0;
    case LIST_SQL:
        return sql_contains(l, key, err, errlen);
    case LIST_PG:
        return pg_list_contains(l->pg, key, err, errlen);
    case LIST_REMOTE:
        return remote_contains(l, key, env, err, errlen);
    }
    set_error(err, errlen, "%s: unknown list type", l->name);
    return -1;
}
