/*
 * smtp_lookup.c - lookups on an SMTP/LMTP session (smtp_client.h): the
 * RCPT probe (MAIL FROM:<> once per transaction, RCPT TO:<x>, RSET when
 * needed, all in one write with PIPELINING; with PIPELINING the probes of
 * several callers share one write and their replies are read in order),
 * VRFY, EXPN, and the AUTH lookup that tests a user's password.
 *
 * Must not: relay anything (a probe never sends DATA), reuse a session a
 * user logged in on, or turn a reply that is not 2xx/5xx into an answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_auth.h"
#include "smtp_session.h"
#include "util.h"

static enum lookup_result reply_result(struct smtp_session *s, int code, const char *step,
                                       char *reply, size_t replylen, char *err, size_t errlen)
{
    smtp_summary(s, reply, replylen);
    if (code / 100 == 2)
        return LOOKUP_YES;
    if (code / 100 == 5)
        return LOOKUP_NO;
    set_error(err, errlen, "%s answered %s with: %s", s->peer, step, reply);
    return LOOKUP_ERROR;
}

/* ------------------------------------------------------------ RCPT probe */

enum { PROBE_RSET = 0, PROBE_MAIL, PROBE_RCPT };
static const char *const probe_steps[] = { "RSET", "MAIL FROM", "RCPT TO" };

/* What must go before the RCPT of the next probe, from the state the
 * commands sent so far leave the server in: RSET when it may hold state or
 * the transaction is full (or lacks SMTPUTF8), MAIL FROM:<> when no
 * transaction is open. The state moves on as if both were accepted. */
static void probe_plan(struct smtp_session *s, bool utf8, bool *rset, bool *mail)
{
    *rset = s->need_rset || (s->phase == SP_MAIL && s->tx_probes >= SMTP_PROBES_PER_TX)
            || (s->phase == SP_MAIL && utf8 && !s->tx_smtputf8);
    *mail = *rset || s->phase != SP_MAIL;
    if (*rset) {
        s->need_rset = false;
        s->phase = SP_READY;
    }
    if (*mail) {
        s->phase = SP_MAIL;
        s->tx_probes = 0;
        s->tx_smtputf8 = utf8;
    }
    s->tx_probes++;
}

static const char *mail_cmd(bool utf8) { return utf8 ? "MAIL FROM:<> SMTPUTF8" : "MAIL FROM:<>"; }

/* The reply to RSET: anything but 250 leaves the session unusable. */
static int rset_replied(struct smtp_session *s, int code, char *err, size_t errlen)
{
    if (code == 250)
        return 0;
    set_error(err, errlen, "%s refused RSET", s->peer);
    smtp_broken(s);
    return -1;
}

/* Without PIPELINING: each command waits for its reply. */
static enum lookup_result lookup_rcpt_serial(struct smtp_session *s, const char *arg,
                                             int64_t deadline_ms, char *reply, size_t replylen,
                                             char *err, size_t errlen)
{
    bool utf8 = request_needs_smtputf8(arg), rset, mail;
    probe_plan(s, utf8, &rset, &mail);
    if (rset && (smtp_send_cmd(s, deadline_ms, err, errlen, "RSET") < 0
                 || rset_replied(s, smtp_read_reply(s, "RSET", deadline_ms, err, errlen), err,
                                 errlen) < 0))
        return LOOKUP_ERROR;
    if (mail) {
        if (smtp_send_cmd(s, deadline_ms, err, errlen, "%s", mail_cmd(utf8)) < 0)
            return LOOKUP_ERROR;
        int code = smtp_read_reply(s, "MAIL FROM", deadline_ms, err, errlen);
        if (code < 0)
            return LOOKUP_ERROR;
        if (code / 100 != 2) {
            smtp_summary(s, reply, replylen);
            set_error(err, errlen, "%s refused MAIL FROM:<>: %s", s->peer, reply);
            s->need_rset = true;
            return LOOKUP_ERROR;
        }
    }
    if (smtp_send_cmd(s, deadline_ms, err, errlen, "RCPT TO:<%s>", arg) < 0)
        return LOOKUP_ERROR;
    int code = smtp_read_reply(s, "RCPT TO", deadline_ms, err, errlen);
    if (code < 0)
        return LOOKUP_ERROR;
    return reply_result(s, code, "RCPT TO", reply, replylen, err, errlen);
}

bool smtp_pipelining(const struct smtp_session *s) { return s->caps.pipelining; }

size_t smtp_probes_awaiting(const struct smtp_session *s) { return s->pend_probes; }

bool smtp_reply_buffered(const struct smtp_session *s) { return conn_has_buffered(s->c); }

static void pend_push(struct smtp_session *s, int kind, struct smtp_probe *p)
{
    unsigned at = (s->pend_head + s->pend_count++) % ARRAY_SIZE(s->pend);
    s->pend[at].kind = (unsigned char)kind;
    s->pend[at].probe = p;
    if (kind == PROBE_RCPT)
        s->pend_probes++;
}

/* Appends the commands of one probe to buf; a probe answered at once
 * (SMTPUTF8 not offered) adds nothing. */
static int probe_add(struct smtp_session *s, struct smtp_probe *p, char *buf, size_t cap,
                     size_t *len, char *err, size_t errlen)
{
    bool utf8 = request_needs_smtputf8(p->arg), rset, mail;
    char rcpt[NET_ARG_MAX + 32];
    p->answered = false;
    if (utf8 && !s->caps.smtputf8) {
        snprintf(p->reply, p->replylen, "%s", REQUEST_UTF8_REPLY);
        p->res = LOOKUP_UTF8_UNSUPPORTED;
        p->answered = true;
        return 0;
    }
    size_t rlen = 0;
    if (smtp_add_cmd(rcpt, sizeof rcpt, &rlen, err, errlen, "RCPT TO:<%s>", p->arg) < 0)
        return -1;
    probe_plan(s, utf8, &rset, &mail);
    if (rset && smtp_add_cmd(buf, cap, len, err, errlen, "RSET") < 0)
        return -1;
    if (mail && smtp_add_cmd(buf, cap, len, err, errlen, "%s", mail_cmd(utf8)) < 0)
        return -1;
    if (*len + rlen >= cap) {
        set_error(err, errlen, "command batch too long");
        return -1;
    }
    memcpy(buf + *len, rcpt, rlen + 1);
    *len += rlen;
    if (rset)
        pend_push(s, PROBE_RSET, NULL);
    if (mail)
        pend_push(s, PROBE_MAIL, NULL);
    pend_push(s, PROBE_RCPT, p);
    return 0;
}

int smtp_probe_send(struct smtp_session *s, struct smtp_probe *const *probes, size_t n,
                    int64_t deadline_ms, char *err, size_t errlen)
{
    if (!smtp_reusable(s) || !s->caps.pipelining || s->pend_probes + n > SMTP_PIPELINE_MAX) {
        set_error(err, errlen, "internal: cannot pipeline %zu more probes to %s", n, s->peer);
        return -1;
    }
    size_t cap = n * 3 * (NET_ARG_MAX + 40) + 1, len = 0;
    char *buf = xmalloc(cap);
    int rc = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = probe_add(s, probes[i], buf, cap, &len, err, errlen);
    if (rc == 0 && len > 0)
        rc = smtp_send_batch(s, buf, len, deadline_ms, err, errlen);
    free(buf);
    if (rc < 0)
        smtp_broken(s);   /* some commands may be out, some not: out of step */
    return rc < 0 ? -1 : 0;
}

/* The reply to one RCPT: after a refused MAIL an error, never an answer. */
static void probe_answer(struct smtp_session *s, struct smtp_probe *p, int code)
{
    p->answered = true;
    if (s->mail_refused) {
        snprintf(p->reply, p->replylen, "%s", s->mail_refusal);
        set_error(p->err, p->errlen, "%s refused MAIL FROM:<>: %s", s->peer, s->mail_refusal);
        p->res = LOOKUP_ERROR;
        return;
    }
    p->res = reply_result(s, code, "RCPT TO", p->reply, p->replylen, p->err, p->errlen);
}

struct smtp_probe *smtp_probe_read(struct smtp_session *s, int64_t deadline_ms, char *err,
                                   size_t errlen)
{
    while (s->pend_count > 0) {
        struct smtp_pending e = s->pend[s->pend_head];
        s->pend_head = (s->pend_head + 1) % ARRAY_SIZE(s->pend);
        s->pend_count--;
        if (e.kind == PROBE_RCPT)
            s->pend_probes--;
        int code = smtp_read_reply(s, probe_steps[e.kind], deadline_ms, err, errlen);
        if (code < 0)
            return NULL;
        if (e.kind == PROBE_RSET) {
            if (rset_replied(s, code, err, errlen) < 0)
                return NULL;
            s->mail_refused = false;
        } else if (e.kind == PROBE_MAIL) {
            s->mail_refused = code / 100 != 2;
            if (s->mail_refused) {
                smtp_summary(s, s->mail_refusal, sizeof s->mail_refusal);
                s->need_rset = true;
            }
        } else {
            probe_answer(s, e.probe, code);
            return e.probe;
        }
    }
    set_error(err, errlen, "internal: no probe awaits a reply from %s", s->peer);
    return NULL;
}

static enum lookup_result lookup_rcpt(struct smtp_session *s, const char *arg,
                                      int64_t deadline_ms, char *reply, size_t replylen,
                                      char *err, size_t errlen)
{
    if (!s->caps.pipelining)
        return lookup_rcpt_serial(s, arg, deadline_ms, reply, replylen, err, errlen);
    struct smtp_probe pr = { .arg = arg, .reply = reply, .replylen = replylen, .err = err,
                             .errlen = errlen };
    struct smtp_probe *one = &pr;
    if (smtp_probe_send(s, &one, 1, deadline_ms, err, errlen) < 0)
        return LOOKUP_ERROR;
    while (!pr.answered)
        if (!smtp_probe_read(s, deadline_ms, err, errlen))
            return LOOKUP_ERROR;
    return pr.res;
}

/* ------------------------------------------------------------ VRFY, EXPN */

/* "2.1.5 text" -> "text": members must not carry enhanced status codes. */
static const char *skip_enhanced_code(const char *t)
{
    const char *p = t;
    if (*p < '2' || *p > '5' || p[1] != '.')
        return t;
    p += 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3)
            return t;
        p += digits;
        if (part == 0 && *p++ != '.')
            return t;
    }
    return *p == ' ' ? p + 1 : t;
}

static void collect_members(const struct smtp_session *s, char **members_r)
{
    size_t cap = s->rep.len + 2, o = 0;
    char *m = xmalloc(cap);
    char text[CONN_LINE_MAX + 1];
    for (int i = 0; i < s->rep.nlines; i++) {
        smtp_reply_line_text(&s->rep, i, text, sizeof text);
        const char *member = skip_enhanced_code(text);
        size_t n = strlen(member);
        if (n == 0 || o + n + 2 > cap)
            continue;
        memcpy(m + o, member, n);
        o += n;
        m[o++] = '\n';
    }
    m[o] = '\0';
    *members_r = m;
}

static enum lookup_result lookup_verify(struct smtp_session *s, enum lookup_kind kind,
                                        const char *arg, char **members_r, int64_t deadline_ms,
                                        char *reply, size_t replylen, char *err, size_t errlen)
{
    const char *verb = kind == LOOKUP_EXPN ? "EXPN" : "VRFY";
    bool utf8 = request_needs_smtputf8(arg);
    if (smtp_send_cmd(s, deadline_ms, err, errlen, "%s %s%s", verb, arg, utf8 ? " SMTPUTF8" : "")
        < 0)
        return LOOKUP_ERROR;
    int code = smtp_read_reply(s, verb, deadline_ms, err, errlen);
    if (code < 0)
        return LOOKUP_ERROR;
    smtp_summary(s, reply, replylen);
    if (code == 250 || code == 251) {
        if (kind == LOOKUP_EXPN && members_r)
            collect_members(s, members_r);
        return LOOKUP_YES;
    }
    if (code == 550 || code == 551 || code == 553)
        return LOOKUP_NO;
    set_error(err, errlen, "%s answered %s with: %s", s->peer, verb, reply);
    return LOOKUP_ERROR;
}

/* ------------------------------------------------------------ AUTH */

static enum lookup_result lookup_auth(struct smtp_session *s, const char *user,
                                      const char *password, int64_t deadline_ms, char *reply,
                                      size_t replylen, char *err, size_t errlen)
{
    if (s->phase != SP_READY || s->with_auth) {
        set_error(err, errlen, "internal: AUTH lookup needs a fresh session");
        return LOOKUP_ERROR;
    }
    int code = smtp_auth(s, user, password, deadline_ms, err, errlen);
    if (s->phase != SP_BROKEN)
        s->phase = SP_USER_AUTHED;
    if (code < 0)
        return LOOKUP_ERROR;
    smtp_summary(s, reply, replylen);
    if (code == 235)
        return LOOKUP_YES;
    if (code == 535)
        return LOOKUP_NO;
    set_error(err, errlen, "%s answered AUTH with: %s", s->peer, reply);
    return LOOKUP_ERROR;
}

enum lookup_result smtp_lookup(struct smtp_session *s, enum lookup_kind kind, const char *arg,
                               const char *password, char **members_r, char *reply,
                               size_t replylen, int64_t deadline_ms, char *err, size_t errlen)
{
    char tmp[256];
    if (!reply || replylen == 0) {
        reply = tmp;
        replylen = sizeof tmp;
    }
    reply[0] = '\0';
    if (!smtp_reusable(s)) {
        set_error(err, errlen, "internal: session to %s not usable", s->peer);
        return LOOKUP_ERROR;
    }
    if (kind != LOOKUP_AUTH && request_needs_smtputf8(arg) && !s->caps.smtputf8) {
        snprintf(reply, replylen, "%s", REQUEST_UTF8_REPLY);
        return LOOKUP_UTF8_UNSUPPORTED;
    }
    switch (kind) {
    case LOOKUP_RCPT:
        return lookup_rcpt(s, arg, deadline_ms, reply, replylen, err, errlen);
    case LOOKUP_VRFY:
    case LOOKUP_EXPN:
        return lookup_verify(s, kind, arg, members_r, deadline_ms, reply, replylen, err, errlen);
    case LOOKUP_AUTH:
        return lookup_auth(s, arg, password, deadline_ms, reply, replylen, err, errlen);
    }
    set_error(err, errlen, "unknown lookup kind");
    return LOOKUP_ERROR;
}
