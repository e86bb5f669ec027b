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
 */
#ifndef NEXTHOP_LISTS_H
#define NEXTHOP_LISTS_H

#include <stddef.h>

#include "config.h"

struct list;

struct list *list_new_inline(const char *name, const char *const *items, size_t n);
/* url is "file:///path". Reads the file now; err on failure. */
struct list *list_new_file(const char *name, const char *url, char *err, size_t errlen);
/* Checks the query now (opens the database, prepares it); err on failure. */
struct list *list_new_sql(const char *name, const struct database_cfg *db, const char *query,
                          char *err, size_t errlen);
struct list *list_new_remote(const char *name, struct remote_cfg *remote);
void list_free(struct list *l);

const char *list_name(const struct list *l);
/* The remote behind a "remote/<id>" list, NULL for other lists. */
struct remote_cfg *list_remote(const struct list *l);

/* 1 when key is in the list, 0 when not, -1 (with err) when the lookup failed. */
int list_contains(struct list *l, const char *key, char *err, size_t errlen);

#endif
