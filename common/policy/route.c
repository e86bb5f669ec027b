/*
 * route.c - next-hop decisions and relaying at end of message (route.h).
 * Must not: know libmilter, count a recipient as delivered before its 2xx
 * after the final dot, or hand one next hop the message more than once
 * (one pool_relay() per next hop). Logs one `relay:` line per relayed
 * recipient, nothing else.
 */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "pool.h"
#include "remote_set.h"
#include "request.h"
#include "util.h"

int route_plan(const struct policy *pol, const struct list_env *env, const struct rule_vars *vars,
               struct route_msg *m, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct route_rcpt *rc_ = &m->rcpts[i];
        struct rule_vars v = *vars;
        struct rule_result hop, act;
        v.v[RV_RCPT] = rc_->addr;
        v.v[RV_RCPT_DOMAIN] = addr_domain(rc_->addr);
        rc_->hop = NULL;
        rc_->action = ACTION_HEADER;
        if (!*v.v[RV_RCPT_DOMAIN])   /* <Postmaster>: the MTA's own, it qualifies and delivers it */
            continue;
        if (rc_->unverified)   /* no "yes" from the store: not ours to deliver there */
            continue;
        if (rule_eval(pol->next_hop, &v, env, &hop, err, errlen) < 0)
            rc = -1;
        rc_->hop = hop.is_false ? NULL : hop.remote;
        if (rc_->hop) {
            if (rule_eval(pol->action, &v, env, &act, err, errlen) < 0)
                rc = -1;
            rc_->action = act.action;
        }
    }
    return rc;
}

bool route_needs_body(const struct route_msg *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->rcpts[i].hop && m->rcpts[i].action == ACTION_RELAY)
            return true;
    return false;
}

bool route_wants_quarantine(const struct route_msg *m, char *reason, size_t len)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->rcpts[i].hop && m->rcpts[i].action == ACTION_QUARANTINE) {
            snprintf(reason, len, "routing.action = quarantine for <%s> (next hop %s)",
                     m->rcpts[i].addr, m->rcpts[i].hop->id);
            return true;
        }
    return false;
}

/* Relays the recipients of one next hop; fills their code and reply. */
static void relay_group(struct remote_set *remotes, struct route_msg *m,
                        const struct remote_def *hop, void (*progress)(void *), void *ctx,
                        int64_t deadline)
{
    struct relay_rcpt *rr = xcalloc(m->n, sizeof *rr);
    size_t *idx = xcalloc(m->n, sizeof *idx), n = 0;
    char err[ERRLEN] = "";
    int64_t start = now_ms();

    for (size_t i = 0; i < m->n; i++)
        if (m->rcpts[i].hop == hop && m->rcpts[i].action == ACTION_RELAY) {
            rr[n].addr = m->rcpts[i].addr;
            idx[n++] = i;
        }
    int rc = -1;
    struct remote_rt *rt = remote_set_find(remotes, hop->id);
    if (!m->spool)
        set_error(err, sizeof err, "message was not spooled");
    else if (!rt)
        set_error(err, sizeof err, "remote %s is not running", hop->id);
    else
        rc = pool_relay(rt->pool, m->sender, rr, n, m->spool, progress, ctx, deadline, err,
                        sizeof err);
    if (rc < 0)
        request_fail_pending(rr, n, hop->id, err);
    for (size_t j = 0; j < n; j++) {
        struct route_rcpt *t = &m->rcpts[idx[j]];
        char line[sizeof rr[j].reply];
        t->code = rr[j].code ? rr[j].code : 451;
        t->ours = rr[j].ours || !rr[j].code;
        snprintf(line, sizeof line, "%s", rr[j].reply);
        if (reply_parse(&t->reply, line) < 0)   /* no code in front: keep the text whole */
            reply_set(&t->reply, t->code, NULL, "%s", line);
        log_info("relay: queue=%s rcpt=<%s> remote=%s result=%s ms=%ld reply=\"%s\"",
                 m->queue_id ? m->queue_id : "-", t->addr, hop->id,
                 t->code / 100 == 2 ? "delivered" : t->code / 100 == 5 ? "refused" : "deferred",
                 (long)(now_ms() - start), line);
        metrics_relay_rcpt(hop->id, t->code); /* ops: stats */
    }
    metrics_relay_time(hop->id, (long)(now_ms() - start)); /* ops: stats */
    free(rr);
    free(idx);
}

static void decide(const struct policy *pol, struct route_msg *m, struct route_result *res)
{
    size_t relayed = 0, refused = 0, failed = 0;
    const struct route_rcpt *first_bad = NULL;
    for (size_t i = 0; i < m->n; i++) {
        const struct route_rcpt *t = &m->rcpts[i];
        if (!t->code)
            continue;
        relayed++;
        if (t->code / 100 == 2) {
            res->delivered++;
        } else {
            if (t->code / 100 == 5)
                refused++;
            failed++;
            /* the next hop's own reply (e.g. 452 4.2.2 mailbox full) over an error of ours */
            if (!first_bad || (first_bad->ours && !t->ours))
                first_bad = t;
        }
    }
    if (relayed == 0) {
        res->outcome = ROUTE_CONTINUE;
        return;
    }
    if (failed == 0) {
        res->outcome = ROUTE_CONTINUE;   /* never a discard: see route.h */
        return;
    }
    res->reply = first_bad->reply;
    if (first_bad->ours)   /* the detail (address, our error) stays in the relay: log line */
        reply_parse(&res->reply, REQUEST_NEXTHOP_UNAVAILABLE);
    if (refused == m->n) {
        res->outcome = ROUTE_REJECT;
        return;
    }
    char line[sizeof first_bad->reply.text + 32];
    reply_format(&first_bad->reply, line, sizeof line);
    snprintf(res->reason, sizeof res->reason, "relay to %s failed for <%s>: %s",
             first_bad->hop->id, first_bad->addr, line);
    switch (pol->on_tempfail) {
    case ON_TEMPFAIL_QUARANTINE: res->outcome = ROUTE_QUARANTINE; break;
    case ON_TEMPFAIL_TEMPFAIL: res->outcome = ROUTE_TEMPFAIL; break;
    case ON_TEMPFAIL_ACCEPT: res->outcome = ROUTE_CONTINUE; break;
    }
}

void route_relay(const struct policy *pol, struct remote_set *remotes, struct route_msg *m,
                 void (*progress)(void *), void *ctx, struct route_result *res)
{
    int64_t deadline = now_ms() + pol->routing_timeout_ms;
    memset(res, 0, sizeof *res);
    for (size_t i = 0; i < m->n; i++) {
        const struct remote_def *hop = m->rcpts[i].hop;
        /* relay_group() sets a code for every recipient of its hop */
        if (hop && m->rcpts[i].action == ACTION_RELAY && !m->rcpts[i].code)
            relay_group(remotes, m, hop, progress, ctx, deadline);
    }
    decide(pol, m, res);
}
