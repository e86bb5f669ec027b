/*
 * pool_lookup.c - one lookup on a pooled connection (pool_lookup(),
 * pool.h): checks its arguments, then runs it on a connection of its own
 * (pool.c) or, for a RCPT probe on an SMTP/LMTP remote, on one shared
 * with other probes (pipeline.c); a reused connection that the server
 * dropped meanwhile gets the lookup once more, on a fresh connection.
 *
 * Must not: cache answers (lookup.c does), log secrets, retry a lookup
 * more than once, or hold p->mu (it takes connections through pool.c).
 */
#include <stdbool.h>
#include <stddef.h>

#include "imap_client.h"
#include "log.h"
#include "pipeline.h"
#include "pool_impl.h"
#include "request.h"
#include "smtp_client.h"
#include "util.h"

static enum lookup_result run_lookup(struct pconn *pc, enum lookup_kind kind, const char *arg,
                                     const char *password, char **members_r, char *reply,
                                     size_t replylen, int64_t deadline_ms, char *err,
                                     size_t errlen)
{
    if (pc->imap)
        return imap_lookup(pc->imap, kind, arg, password, reply, replylen, deadline_ms, err,
                           errlen);
    return smtp_lookup(pc->smtp, kind, arg, password, members_r, reply, replylen, deadline_ms,
                       err, errlen);
}

/* One lookup with a connection of its own. */
static enum lookup_result exclusive_lookup(struct pool *p, enum lookup_kind kind, const char *arg,
                                           const char *password, char **members_r, char *reply,
                                           size_t replylen, int64_t deadline,
                                           struct pool_outcome *o, char *err, size_t errlen)
{
    struct pconn *pc = pool_get_conn(p, kind == LOOKUP_AUTH, deadline, err, errlen);
    if (!pc)
        return LOOKUP_ERROR;
    o->reused = pc->reused;
    enum lookup_result res = run_lookup(pc, kind, arg, password, members_r, reply, replylen,
                                        deadline, err, errlen);
    o->broke = res == LOOKUP_ERROR && !pool_conn_reusable(pc);
    pool_put_conn(p, pc, 1, res == LOOKUP_ERROR);
    return res;
}

enum lookup_result pool_lookup(struct pool *p, enum lookup_kind kind, const char *arg,
                               const char *password, char **members_r, char *reply,
                               size_t replylen, char *err, size_t errlen)
{
    char tmp[256];
    if (members_r)
        *members_r = NULL;
    if (!reply || replylen == 0) {
        reply = tmp;
        replylen = sizeof tmp;
    }
    reply[0] = '\0';
    if (request_check_lookup(p->r->ep.protocol, kind, arg, password, err, errlen) < 0)
        return LOOKUP_ERROR;
    int64_t deadline = request_lookup_deadline(&p->r->ep);
    int64_t budget = deadline - now_ms();
    bool shared = kind == LOOKUP_RCPT && p->r->ep.protocol != PROTO_IMAP;
    for (int attempt = 0;;) {
        struct pool_outcome o = { false, false, false };
        enum lookup_result res =
            shared ? pool_pipelined_rcpt(p, arg, reply, replylen, deadline, &o, err, errlen)
                   : exclusive_lookup(p, kind, arg, password, members_r, reply, replylen,
                                      deadline, &o, err, errlen);
        /* its connection failed before the probe went out: not an attempt */
        if (o.unsent && now_ms() < deadline) {
            reply[0] = '\0';
            continue;
        }
        /* A reused connection the server dropped meanwhile: once more, fresh. */
        if (o.broke && o.reused && attempt++ == 0 && deadline - now_ms() > budget / 2) {
            log_debug("remote %s: reused connection failed (%s), retrying",
                      p->r->id ? p->r->id : "?", err);
            reply[0] = '\0';
            continue;
        }
        return res;
    }
}
