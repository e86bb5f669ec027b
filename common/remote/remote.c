/*
 * remote.c - copying, comparing and freeing remote definitions (remote.h).
 * Must not: log anything (a definition holds a secret).
 */
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

struct remote_def *remote_def_dup(const struct remote_def *d)
{
    struct remote_def *c = xmalloc(sizeof *c);
    *c = *d;
    c->id = dup_or_null(d->id);
    c->ep.name = c->id;
    c->ep.address = dup_or_null(d->ep.address);
    c->ep.tls_server_name = dup_or_null(d->ep.tls_server_name);
    c->ep.tls_ca_file = dup_or_null(d->ep.tls_ca_file);
    c->ep.tls_ca_pem = dup_or_null(d->ep.tls_ca_pem);
    c->ep.auth_username = dup_or_null(d->ep.auth_username);
    c->ep.auth_secret = dup_or_null(d->ep.auth_secret);
    return c;
}

void remote_def_clear(struct remote_def *d)
{
    if (!d)
        return;
    free(d->id);
    free(d->ep.address);
    free(d->ep.tls_server_name);
    free(d->ep.tls_ca_file);
    free(d->ep.tls_ca_pem);
    free(d->ep.auth_username);
    if (d->ep.auth_secret) {
        explicit_bzero(d->ep.auth_secret, strlen(d->ep.auth_secret));
        free(d->ep.auth_secret);
    }
    memset(d, 0, sizeof *d);
}

void remote_def_free(struct remote_def *d)
{
    remote_def_clear(d);
    free(d);
}

bool remote_def_equal(const struct remote_def *a, const struct remote_def *b)
{
    const struct endpoint *x = &a->ep, *y = &b->ep;
    return str_same(a->id, b->id) && str_same(x->address, y->address) && x->port == y->port &&
           x->protocol == y->protocol && x->timeout_ms == y->timeout_ms &&
           x->tls_enable == y->tls_enable && x->tls_implicit == y->tls_implicit &&
           x->tls_allow_invalid == y->tls_allow_invalid &&
           str_same(x->tls_server_name, y->tls_server_name) &&
           str_same(x->tls_ca_file, y->tls_ca_file) && str_same(x->tls_ca_pem, y->tls_ca_pem) &&
           str_same(x->auth_username, y->auth_username) && str_same(x->auth_secret, y->auth_secret) &&
           a->concurrency == b->concurrency && a->lookup == b->lookup &&
           a->lowercase_localpart == b->lowercase_localpart && a->catch_all == b->catch_all &&
           a->cache_entries == b->cache_entries && a->ttl_positive_ms == b->ttl_positive_ms &&
           a->ttl_negative_ms == b->ttl_negative_ms && a->ttl_stale_ms == b->ttl_stale_ms &&
           a->ttl_auth_ms == b->ttl_auth_ms && a->limits_errors == b->limits_errors &&
           a->limits_requests == b->limits_requests;
}
