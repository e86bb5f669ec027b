/*
 * smtp_relay.c - one relayed transaction on an SMTP/LMTP session
 * (smtp_client.h): RSET if needed, MAIL FROM, RCPT TO for every recipient
 * (in batches with PIPELINING), DATA, the message in wire form
 * (dotstuff.h), and the end-of-data replies: one for all with SMTP, one
 * per accepted recipient with LMTP. The session moves through SP_MAIL,
 * SP_RCPT, SP_DATA, SP_BODY and SP_DOT back to SP_READY.
 *
 * Must not: count a recipient as delivered before its end-of-data reply,
 * pass a 503 (we are out of step) on as a recipient's permanent failure,
 * or retry anything once DATA went out (the caller may retry before).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dotstuff.h"
#include "log.h"
#include "smtp_session.h"
#include "spool.h"
#include "util.h"

#define RELAY_BATCH 50
#define RELAY_CHUNK 16384

struct relay_run {
    struct smtp_session *s;
    struct relay_rcpt *rcpts;
    size_t n;
    bool *accepted;             /* RCPT got 2xx: waits for the end-of-data reply */
    bool data_sent;             /* DATA went out: a failure is no longer retryable */
    size_t n_accepted;
    int64_t deadline;
    char *err;
    size_t errlen;
};

/* Final outcome for rcpt i from the current reply. */
static void rcpt_set_reply(struct relay_run *rr, size_t i)
{
    rr->rcpts[i].code = rr->s->rep.code;
    smtp_summary(rr->s, rr->rcpts[i].reply, sizeof rr->rcpts[i].reply);
}

static int relay_rset_if_needed(struct relay_run *rr)
{
    struct smtp_session *s = rr->s;
    if (!s->need_rset && s->phase != SP_MAIL)
        return 0;
    if (smtp_send_cmd(s, rr->deadline, rr->err, rr->errlen, "RSET") < 0)
        return -1;
    int code = smtp_read_reply(s, "RSET", rr->deadline, rr->err, rr->errlen);
    if (code < 0)
        return -1;
    if (code != 250) {
        set_error(rr->err, rr->errlen, "%s refused RSET", s->peer);
        smtp_broken(s);
        return -1;
    }
    s->need_rset = false;
    s->phase = SP_READY;
    return 0;
}

static bool has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

static bool any_utf8(const char *sender, const struct relay_rcpt *rcpts, size_t n)
{
    if (has_8bit(sender))
        return true;
    for (size_t i = 0; i < n; i++)
        if (has_8bit(rcpts[i].addr))
            return true;
    return false;
}

/* Sends MAIL (when with_mail) and RCPTs from..to in one write. */
static int relay_envelope_send(struct relay_run *rr, const char *sender, size_t size,
                               size_t from, size_t to, bool with_mail)
{
    struct smtp_session *s = rr->s;
    size_t cap = (to - from + 1) * (NET_ARG_MAX + 64), len = 0;
    char *buf = xmalloc(cap);
    int rc = 0;
    if (with_mail) {
        char params[128] = "";
        size_t pl = 0;
        if (s->caps.size)
            pl += (size_t)snprintf(params + pl, sizeof params - pl, " SIZE=%zu", size);
        if (s->caps.eightbitmime)
            pl += (size_t)snprintf(params + pl, sizeof params - pl, " BODY=8BITMIME");
        if (s->caps.smtputf8 && any_utf8(sender, rr->rcpts, rr->n))
            snprintf(params + pl, sizeof params - pl, " SMTPUTF8");
        rc = smtp_add_cmd(buf, cap, &len, rr->err, rr->errlen, "MAIL FROM:<%s>%s", sender,
                          params);
    }
    for (size_t i = from; rc == 0 && i < to; i++)
        rc = smtp_add_cmd(buf, cap, &len, rr->err, rr->errlen, "RCPT TO:<%s>",
                          rr->rcpts[i].addr);
    if (rc == 0)
        rc = smtp_send_batch(s, buf, len, rr->deadline, rr->err, rr->errlen);
    free(buf);
    return rc;
}

/* MAIL refused: every recipient shares its (4xx/5xx) reply. */
static void relay_mail_refused(struct relay_run *rr)
{
    for (size_t i = 0; i < rr->n; i++)
        rcpt_set_reply(rr, i);
    rr->s->need_rset = true;
}

static int out_of_sequence(struct relay_run *rr, const char *step)
{
    char r[256];
    smtp_summary(rr->s, r, sizeof r);
    set_error(rr->err, rr->errlen, "%s answered %s out of sequence: %s", rr->s->peer, step, r);
    smtp_broken(rr->s);
    return -1;
}

static int relay_read_rcpts(struct relay_run *rr, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        int code = smtp_read_reply(rr->s, "RCPT TO", rr->deadline, rr->err, rr->errlen);
        if (code < 0)
            return -1;
        if (code == 503)
            return out_of_sequence(rr, "RCPT TO");
        if (code / 100 == 2) {
            rr->accepted[i] = true;
            rr->n_accepted++;
        } else {
            rcpt_set_reply(rr, i);
        }
    }
    return 0;
}

/*
 * MAIL FROM, then RCPT TO for every recipient; with PIPELINING in batches
 * of RELAY_BATCH commands per write. Returns 0, 1 = MAIL refused, -1 failed.
 */
static int relay_envelope(struct relay_run *rr, const char *sender, size_t size)
{
    struct smtp_session *s = rr->s;
    size_t step = s->caps.pipelining ? RELAY_BATCH : 1;
    size_t first = s->caps.pipelining ? (rr->n < step ? rr->n : step) : 0;
    if (relay_envelope_send(rr, sender, size, 0, first, true) < 0)
        return -1;
    int code = smtp_read_reply(s, "MAIL FROM", rr->deadline, rr->err, rr->errlen);
    if (code < 0)
        return -1;
    if (code == 503)
        return out_of_sequence(rr, "MAIL FROM");
    if (code / 100 != 2) {
        char tmp[ERRLEN];
        relay_mail_refused(rr);
        for (size_t i = 0; i < first; i++)   /* drain the pipelined RCPT replies */
            if (smtp_read_reply(s, "RCPT TO", rr->deadline, tmp, sizeof tmp) < 0)
                return 1;
        return 1;
    }
    s->phase = SP_RCPT;
    if (relay_read_rcpts(rr, 0, first) < 0)
        return -1;
    for (size_t from = first; from < rr->n; from += step) {
        size_t to = from + step < rr->n ? from + step : rr->n;
        if (relay_envelope_send(rr, sender, size, from, to, false) < 0
            || relay_read_rcpts(rr, from, to) < 0)
            return -1;
    }
    s->phase = SP_MAIL;
    return 0;
}

static int relay_body(struct relay_run *rr, struct spool *msg)
{
    struct smtp_session *s = rr->s;
    char in[RELAY_CHUNK], out[DOTSTUFF_MAX(RELAY_CHUNK)];
    struct dotstuff st;
    dotstuff_start(&st);
    if (spool_rewind(msg, rr->err, rr->errlen) < 0)
        return -1;
    for (;;) {
        ssize_t n = spool_read(msg, in, sizeof in);
        if (n < 0) {
            set_error(rr->err, rr->errlen, "reading the spooled message failed");
            return -1;
        }
        if (n == 0)
            break;
        size_t o = dotstuff_chunk(&st, in, (size_t)n, out);
        if (smtp_send_raw(s, out, o, rr->deadline, rr->err, rr->errlen) < 0)
            return -1;
    }
    size_t o = dotstuff_end(&st, out);
    log_debug("%s %s > (message, %zu bytes) .", smtp_proto(s), s->peer, spool_size(msg));
    return smtp_send_raw(s, out, o, rr->deadline, rr->err, rr->errlen);
}

/* DATA, body, then the end-of-data reply (one per accepted rcpt with LMTP). */
static int relay_data(struct relay_run *rr, struct spool *msg)
{
    struct smtp_session *s = rr->s;
    rr->data_sent = true;
    if (smtp_send_cmd(s, rr->deadline, rr->err, rr->errlen, "DATA") < 0)
        return -1;
    s->phase = SP_DATA;
    int code = smtp_read_reply(s, "DATA", rr->deadline, rr->err, rr->errlen);
    if (code < 0)
        return -1;
    if (code != 354) {
        if (code == 503 || (code / 100 != 4 && code / 100 != 5)) {
            set_error(rr->err, rr->errlen, "%s answered DATA with %d", s->peer, code);
            smtp_broken(s);
            return -1;
        }
        for (size_t i = 0; i < rr->n; i++)
            if (rr->accepted[i])
                rcpt_set_reply(rr, i);
        s->phase = SP_MAIL;
        s->need_rset = true;
        return 0;
    }
    s->phase = SP_BODY;
    if (relay_body(rr, msg) < 0)
        return -1;
    s->phase = SP_DOT;
    bool have_reply = false;
    for (size_t i = 0; i < rr->n; i++) {
        if (!rr->accepted[i])
            continue;
        if (s->lmtp || !have_reply) {   /* SMTP: one reply covers every recipient */
            if (smtp_read_reply(s, "end of data", rr->deadline, rr->err, rr->errlen) < 0)
                return -1;
            have_reply = true;
        }
        rcpt_set_reply(rr, i);
    }
    s->phase = SP_READY;
    return 0;
}

static int relay_run_all(struct relay_run *rr, const char *sender, struct spool *msg)
{
    if (relay_rset_if_needed(rr) < 0)
        return -1;
    int e = relay_envelope(rr, sender, spool_size(msg));
    if (e != 0)
        return e < 0 ? -1 : 0;
    if (rr->n_accepted == 0) {
        rr->s->need_rset = true;   /* transaction open, nothing to send */
        return 0;
    }
    return relay_data(rr, msg);
}

int smtp_relay(struct smtp_session *s, const char *sender, struct relay_rcpt *rcpts, size_t n,
               struct spool *msg, void (*progress)(void *ctx), void *ctx, int64_t deadline_ms,
               char *err, size_t errlen)
{
    struct relay_run rr = { s, rcpts, n, NULL, false, 0, deadline_ms, err, errlen };
    const char *remote = s->r->name ? s->r->name : s->peer;
    for (size_t i = 0; i < n; i++) {
        rcpts[i].code = 0;
        rcpts[i].reply[0] = '\0';
        rcpts[i].ours = false;
    }
    if (!smtp_reusable(s)) {
        set_error(err, errlen, "internal: session to %s not usable", s->peer);
        request_fail_pending(rcpts, n, remote, err);
        return -1;
    }
    if (n == 0)
        return 0;
    rr.accepted = xcalloc(n, sizeof *rr.accepted);
    if (progress)
        conn_set_tick(s->c, progress, ctx, 2000);
    int rc = relay_run_all(&rr, sender, msg);
    conn_set_tick(s->c, NULL, NULL, 0);
    free(rr.accepted);
    if (rc < 0) {
        request_fail_pending(rcpts, n, remote, err);
        smtp_broken(s);
        return rr.data_sent ? -1 : SMTP_RELAY_RETRYABLE;
    }
    return 0;
}
