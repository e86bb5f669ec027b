/*
 * lists_pg.h - the PostgreSQL backend of SQL lists (database.<id> with
 * type = "postgresql"), used only by lists.c.
 *
 * A pg_list is one lookup query on one server: a small pool of
 * connections, each with the query prepared. The query is written with one
 * `?` (as for sqlite); it is sent as `$1`. Any row means "in the list".
 * Built without libpq (NEXTHOP_HAVE_LIBPQ undefined), pg_list_new always
 * fails with "postgresql support is not built in".
 *
 * Must not: be used but through lists.c, log, put conninfo (it may hold a
 * password) in an error, or write to the database.
 */
#ifndef NEXTHOP_LISTS_PG_H
#define NEXTHOP_LISTS_PG_H

#include <stddef.h>

struct pg_list;

/*
 * Connects with conninfo (a libpq key=value string or postgresql:// URI)
 * and prepares query, so a bad query or an unreachable server is an error
 * now; NULL with err. name ("<db>/<lookup>") prefixes later lookup errors.
 */
struct pg_list *pg_list_new(const char *name, const char *conninfo, const char *query,
                            char *err, size_t errlen);
/* 1 a row came back, 0 none, -1 (with err naming the list) on any failure. Thread-safe. */
int pg_list_contains(struct pg_list *p, const char *key, char *err, size_t errlen);
void pg_list_free(struct pg_list *p);

/* libpq's version (PQlibVersion, e.g. 150018), 0 when not built in. */
int pg_list_libversion(void);

#endif
