/*
 * eom.c - what the MTA is told at end of message (eom.h).
 * Must not: know libmilter, log (it fills the result's `eom:` line for the
 * caller), or reach a next hop but through route_relay().
 */
#include "eom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const outcome_names[] = {
    [ROUTE_CONTINUE] = "continue", [ROUTE_QUARANTINE] = "quarantine",
    [ROUTE_TEMPFAIL] = "tempfail", [ROUTE_REJECT] = "reject",
};

/* Every copy of the routing header the client sent, last first so the indexes hold. */
static void remove_routing_headers(const struct policy *pol, int count, struct eom_result *out)
{
    out->remove = xcalloc((size_t)(count > 0 ? count : 1), sizeof *out->remove);
    for (int i = count; i >= 1; i--)
        out->remove[out->n_remove++] = (struct header_removal){ pol->routing_header, i };
}

/* routing.header: <id> once per next hop whose action is header. */
static void name_next_hops(const struct policy *pol, const struct route_msg *m, struct eom_result *out)
{
    out->add = xcalloc(m->n ? m->n : 1, sizeof *out->add);
    for (size_t i = 0; i < m->n; i++) {
        const struct route_rcpt *r = &m->rcpts[i];
        bool first = r->hop && r->action == ACTION_HEADER;
        for (size_t j = 0; first && j < i; j++)
            first = !(m->rcpts[j].hop == r->hop && m->rcpts[j].action == ACTION_HEADER);
        if (first)
            out->add[out->n_add++] = (struct header_addition){ pol->routing_header, r->hop->id };
    }
}

/*
 * The message-level reply for a relay that failed: reject with the next
 * hop's own reply when every recipient was refused for good, else (on-tempfail
 * = tempfail) 451 4.4.2 with the next hop's text (route.c has put our generic
 * text there when the next hop gave no reply of its own).
 */
static void failure_reply(const struct route_result *res, struct reply *r)
{
    const struct reply *hop = &res->reply;
    const char *text = *hop->text ? hop->text : "Next hop refused the message";
    if (res->outcome == ROUTE_TEMPFAIL || (hop->code / 100 != 4 && hop->code / 100 != 5)) {
        reply_set(r, 451, "4.4.2", "%s", text);
        return;
    }
    char xcode[16];
    if (*hop->xcode)
        snprintf(xcode, sizeof xcode, "%s", hop->xcode);
    else
        snprintf(xcode, sizeof xcode, "%d.0.0", hop->code / 100);
    reply_set(r, hop->code, xcode, "%s", text);
}

/* Per recipient: the relay's reply, and whether the MTA's copy loses it. */
static void recipient_outcomes(const struct route_msg *m, const struct route_result *res,
                               struct eom_result *out)
{
    out->rcpts = xcalloc(m->n ? m->n : 1, sizeof *out->rcpts);
    out->n_rcpts = m->n;
    for (size_t i = 0; i < m->n; i++) {
        const struct route_rcpt *r = &m->rcpts[i];
        struct eom_rcpt *e = &out->rcpts[i];
        e->raw = r->raw;
        e->addr = r->addr;
        e->code = r->code;
        e->reply = r->reply;
        e->delete_from_mta = r->code / 100 == 2;
    }
}

static void apply_outcome(const struct route_result *res, struct eom_result *out)
{
    switch (res->outcome) {
    case ROUTE_CONTINUE:
        break;
    case ROUTE_QUARANTINE:
        snprintf(out->quarantine, sizeof out->quarantine, "%s", res->reason);
        break;
    case ROUTE_TEMPFAIL:
    case ROUTE_REJECT:
        failure_reply(res, &out->reply);
        break;
    }
}

void eom_decide(const struct policy *pol, struct remote_set *remotes, const struct eom_input *in,
                void (*progress)(void *), void *ctx, struct eom_result *out)
{
    struct route_msg *m = in->msg;
    struct route_result res;
    memset(out, 0, sizeof *out);
    memset(&res, 0, sizeof res);
    out->received = in->received ? in->received : "";
    remove_routing_headers(pol, in->routing_headers, out);
    if (in->spool_failed) {   /* answered, not logged: the spool error was logged when it happened */
        reply_set(&out->reply, 451, "4.3.0", "Temporary failure while storing the message, try again later");
        out->outcome = "tempfail";
        recipient_outcomes(m, &res, out);
        return;
    }
    bool routed = false;
    for (size_t i = 0; i < m->n; i++)
        routed |= m->rcpts[i].hop != NULL;
    char reason[512];
    if (route_wants_quarantine(m, reason, sizeof reason)) {
        res.outcome = ROUTE_QUARANTINE;
        snprintf(res.reason, sizeof res.reason, "%s", reason);
    } else if (routed) {
        name_next_hops(pol, m, out);
        if (route_needs_body(m))
            route_relay(pol, remotes, m, progress, ctx, &res);
    }
    recipient_outcomes(m, &res, out);
    apply_outcome(&res, out);
    out->delivered = res.delivered;
    out->outcome = outcome_names[res.outcome];
    out->log_level = LOG_LVL_INFO;
    snprintf(out->log, sizeof out->log, "eom: queue=%s rcpts=%zu delivered=%zu outcome=%s ms=%ld%s%s%s",
             m->queue_id && *m->queue_id ? m->queue_id : "-", m->n, res.delivered, out->outcome,
             (long)(now_ms() - in->started_ms), *res.reason ? " reason=\"" : "", res.reason,
             *res.reason ? "\"" : "");
}

void eom_result_clear(struct eom_result *r)
{
    free(r->remove);
    free(r->add);
    free(r->rcpts);
    memset(r, 0, sizeof *r);
}
