/*
 * message.c - one message through the filter (message.h).
 * Must not: know libmilter, decide a RCPT answer or an end-of-message
 * outcome itself (rcpt.c and eom.c do), or relay a header of the client's
 * named routing.header.
 */
#include "message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "rcpt.h"
#include "received.h"
#include "route.h"
#include "spool.h"
#include "util.h"

struct message {
    const struct policy *pol;          /* NULL: no config */
    struct remote_set *remotes;
    const struct client_info *client;
    char sender[ADDR_MAX + 1], auth[256], priority[16], qid[64];
    bool bad_sender;                   /* refused: every RCPT gets 501 5.1.7 */
    struct route_rcpt *rcpts;
    size_t n, cap;
    bool planned, spool_failed;
    int routing_headers;               /* copies of routing.header the client sent */
    struct spool *spool;               /* the copy to relay; NULL when nothing is relayed */
    char received[1024];               /* our Received: line in front of it */
    int64_t started;
    struct eom_result eom;
};

static void base_vars(const struct message *m, struct rule_vars *v)
{
    memset(v, 0, sizeof *v);
    v->v[RV_SENDER] = m->sender;
    v->v[RV_SENDER_DOMAIN] = addr_domain(m->sender);
    v->v[RV_REMOTE_IP] = m->client->remote_ip;
    v->v[RV_LOCAL_IP] = m->client->local_ip;
    v->v[RV_HELO_DOMAIN] = m->client->helo;
    v->v[RV_AUTHENTICATED_AS] = m->auth;
    v->v[RV_LISTENER] = m->client->listener;
    v->v[RV_PRIORITY] = m->priority;
}

static struct list_env env_of(const struct message *m)
{
    struct list_env env = { m->remotes, message_queue_id(m) };
    return env;
}

struct message *message_begin(const struct policy *pol, struct remote_set *remotes,
                              const struct client_info *client, char **args, const char *auth,
                              struct answer *out)
{
    static const struct client_info nobody;
    struct message *m = xcalloc(1, sizeof *m);
    char err[ERRLEN];
    memset(out, 0, sizeof *out);
    m->pol = pol;
    m->remotes = remotes;
    m->client = client ? client : &nobody;
    m->started = now_ms();
    str_printable(m->auth, sizeof m->auth, auth ? auth : "");
    for (int i = 1; args[0] && args[i]; i++)
        if (strncasecmp(args[i], "MT-PRIORITY=", 12) == 0)
            str_printable(m->priority, sizeof m->priority, args[i] + 12);
    /*
     * Without a config there is nothing to check the sender against; the
     * recipients are answered "not ready" instead.
     */
    if (pol && addr_normalize(args[0] ? args[0] : "", true, m->sender, sizeof m->sender, err,
                              sizeof err) < 0) {
        m->sender[0] = '\0';
        m->bad_sender = true;
        reply_set(&out->reply, 501, "5.1.7", "Bad sender address syntax");
        out->log_level = LOG_LVL_INFO;
        snprintf(out->log, sizeof out->log, "mail: from=rejected (%s) result=reject", err);
    }
    return m;
}

void message_set_queue_id(struct message *m, const char *queue_id)
{
    if (m && !*m->qid && queue_id)
        str_printable(m->qid, sizeof m->qid, queue_id);
}

const char *message_queue_id(const struct message *m)
{
    return m && *m->qid ? m->qid : "-";
}

static void add_rcpt(struct message *m, const char *raw, const struct rcpt_answer *ra)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->rcpts = xrealloc(m->rcpts, m->cap * sizeof *m->rcpts);
    }
    struct route_rcpt *r = &m->rcpts[m->n++];
    memset(r, 0, sizeof *r);
    r->raw = xstrdup(raw);
    r->unverified = ra->unverified;
    snprintf(r->addr, sizeof r->addr, "%s", ra->addr);
}

void message_rcpt(struct message *m, char **args, struct answer *out)
{
    memset(out, 0, sizeof *out);
    if (!m || !m->pol) {
        reply_set(&out->reply, 451, "4.3.0", "Filter not ready, try again later");
        return;
    }
    if (m->bad_sender) {
        reply_set(&out->reply, 501, "5.1.7", "Bad sender address syntax");
        return;
    }
    struct rule_vars v;
    struct rcpt_answer ra;
    struct list_env env = env_of(m);
    const char *raw = args[0] ? args[0] : "";
    base_vars(m, &v);
    rcpt_answer(m->pol, &env, &v, raw, *m->auth != '\0', &ra);
    if (ra.a.reply.code == 0)
        add_rcpt(m, raw, &ra);
    *out = ra.a;
}

static void spool_failure(struct message *m, const char *err)
{
    log_error("spool: queue=%s %s", message_queue_id(m), err);
    m->spool_failed = true;   /* answered at end of message */
}

static void spool_put(struct message *m, const void *data, size_t len)
{
    char err[ERRLEN];
    if (m->spool && !m->spool_failed && spool_write(m->spool, data, len, err, sizeof err) < 0)
        spool_failure(m, err);
}

/* Decides next hops once all recipients are known; starts the spool if a relay is coming. */
static void plan(struct message *m)
{
    char err[ERRLEN], host[256] = "localhost";
    struct rule_vars v;
    if (m->planned)
        return;
    m->planned = true;
    base_vars(m, &v);
    struct route_msg rm = { m->rcpts, m->n, m->sender, message_queue_id(m), NULL };
    struct list_env env = env_of(m);
    if (route_plan(m->pol, &env, &v, &rm, err, sizeof err) < 0)
        log_warning("route: queue=%s a list lookup failed, condition taken as false: %s",
                    message_queue_id(m), err);
    if (!route_needs_body(&rm))
        return;
    m->spool = spool_create(m->pol->spool_memory);
    gethostname(host, sizeof host - 1);
    size_t n = received_line(m->received, sizeof m->received, m->client->helo,
                             m->client->remote_ip, host, message_queue_id(m), time(NULL));
    spool_put(m, m->received, n);
}

/* A field name as RFC 5322 has it: printable ASCII but ':' and space. */
static bool field_name_ok(const char *name)
{
    if (!*name)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == ':')
            return false;
    return true;
}

/*
 * Spools a header value. A line break in it (CR, LF or CRLF; the MTA folds
 * with LF and a blank) goes out as CRLF, and one not followed by a blank
 * gets one, so no value can end the header section or start a line of its
 * own in the relayed copy; breaks at the end are dropped.
 */
static void spool_value(struct message *m, const char *value)
{
    const char *p = value, *end = value + strlen(value);
    while (end > p && (end[-1] == '\r' || end[-1] == '\n'))
        end--;
    while (p < end) {
        size_t run = strcspn(p, "\r\n");
        if (run > (size_t)(end - p))
            run = (size_t)(end - p);
        spool_put(m, p, run);
        p += run;
        if (p >= end)
            break;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
        spool_put(m, "\r\n", 2);
        if (*p != ' ' && *p != '\t')
            spool_put(m, " ", 1);
    }
}

void message_header(struct message *m, const char *name, const char *value)
{
    if (!m || !m->pol)
        return;
    plan(m);
    if (strcasecmp(name, m->pol->routing_header) == 0) {
        m->routing_headers++;   /* the client's: removed from the MTA copy at eom, never relayed */
        return;
    }
    if (!field_name_ok(name)) {   /* no MTA sends one; a hostile one must not shape our copy */
        if (m->spool)
            log_warning("spool: queue=%s a header field with an invalid name was not relayed",
                        message_queue_id(m));
        return;
    }
    spool_put(m, name, strlen(name));
    spool_put(m, ": ", 2);
    spool_value(m, value);
    spool_put(m, "\r\n", 2);
}

void message_eoh(struct message *m)
{
    if (!m || !m->pol)
        return;
    plan(m);
    spool_put(m, "\r\n", 2);
}

void message_body(struct message *m, const void *chunk, size_t len)
{
    if (m && m->pol)
        spool_put(m, chunk, len);
}

const struct eom_result *message_eom(struct message *m, void (*progress)(void *), void *ctx)
{
    static const struct eom_result nothing = { .received = "", .outcome = "continue" };
    if (!m || !m->pol)
        return &nothing;
    plan(m);
    struct route_msg rm = { m->rcpts, m->n, m->sender, message_queue_id(m), m->spool };
    struct eom_input in = { &rm, m->routing_headers, m->spool_failed, m->started, m->received };
    eom_result_clear(&m->eom);
    eom_decide(m->pol, m->remotes, &in, progress, ctx, &m->eom);
    return &m->eom;
}

void message_free(struct message *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->rcpts[i].raw);
    free(m->rcpts);
    if (m->spool)
        spool_destroy(m->spool);
    eom_result_clear(&m->eom);
    free(m);
}
