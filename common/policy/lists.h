/*
 * lists.h - the sets that `in-list` conditions and session.rcpt.lookup
 * consult, by rule name:
 *   "list/<id>"       inline array (list.<id> = [ ... ]) or file:///path
 *                     (one entry per line, # comments; read at config load,
 *                     so a SIGUSR1 reload re-reads it)
 *   "<db>/<lookup>"   SQL: database.<db>.lookup.<lookup>, a query with one
 *                     `?` parameter; a row means "in the list"
 *   "remote/<id>"     the remote host's rcpt lookup, through its cache
 * Inline and file entries are compared case-insensitively.
 * list_contains is thread-safe.
 *
 * Must not: log, write to a database, or read the config file (the loader
 * hands each list its definition).
 */
#ifndef NEXTHOP_LISTS_H
#define NEXTHOP_LISTS_H

#include <stddef.h>

#include "remote.h"

struct list;
struct remote_set;

/* One SQL database (database.<id>) and its named queries. */
struct db_lookup {
    char *name;               /* "domains" in "sql/domains" */
    char *query;
};

struct database_cfg {
    char *id;
    char *type;               /* "sqlite" | "postgresql" */
    char *path;               /* sqlite */
    char *conninfo;           /* postgresql */
    struct db_lookup *lookups;
    size_t n_lookups;
    int line;
};

/* What a lookup needs at run time: the remotes of the running config, and the queue id for logs. */
struct list_env {
    struct remote_set *remotes;
    const char *queue_id;     /* may be NULL */
};

struct list *list_new_inline(const char *name, const char *const *items, size_t n);
/* url is "file:///path". Reads the file now; err on failure. */
struct list *list_new_file(const char *name, const char *url, char *err, size_t errlen);
/* Checks the query now (opens the database, prepares it); err on failure. */
struct list *list_new_sql(const char *name, const struct database_cfg *db, const char *query,
                          char *err, size_t errlen);
/* remote must outlive the list (both belong to one loaded config). */
struct list *list_new_remote(const char *name, const struct remote_def *remote);
void list_free(struct list *l);

const char *list_name(const struct list *l);
/* The remote behind a "remote/<id>" list, NULL for other lists. */
const struct remote_def *list_remote(const struct list *l);

/*
 * 1 when key is in the list, 0 when not, -1 (with err) when the lookup
 * failed. env is needed by remote lists only (NULL: they fail).
 */
int list_contains(struct list *l, const char *key, const struct list_env *env, char *err,
                  size_t errlen);

#endif
