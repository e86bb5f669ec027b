/*
 * smtp_lookup.c - lookups on an SMTP/LMTP session (smtp_client.h): the
 * RCPT probe (MAIL FROM:<> once per transaction, RCPT TO:<x>, RSET when
 * needed, all in one write with PIPELINING), VRFY, EXPN, and the AUTH
 * lookup that tests a user's password.
 *
 * Must not: relay anything (a probe never sends DATA), reuse a session a
 * user logged in on, or turn a reply that is not 2xx/5xx into an answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct probe {
    int kind[3];
    char cmd[3][NET_ARG_MAX + 32];
    size_t len[3];
    int n;
};

static int probe_add(struct probe *p, int kind, const char *line, char *err, size_t errlen)
{
    p->kind[p->n] = kind;
    p->len[p->n] = 0;
    if (smtp_add_cmd(p->cmd[p->n], sizeof p->cmd[0], &p->len[p->n], err, errlen, "%s", line) < 0)
        return -1;
    p->n++;
    return 0;
}

/* RSET when the server may hold state or the transaction is full, MAIL
 * FROM:<> when no transaction is open, then RCPT TO:<x>. */
static int probe_build(struct smtp_session *s, const char *arg, bool utf8, struct probe *p,
                       char *err, size_t errlen)
{
    bool rset = s->need_rset || (s->phase == SP_MAIL && s->tx_probes >= SMTP_PROBES_PER_TX)
                || (s->phase == SP_MAIL && utf8 && !s->tx_smtputf8);
    bool mail = rset || s->phase != SP_MAIL;
    char rcpt[NET_ARG_MAX + 32];
    p->n = 0;
    if (rset && probe_add(p, PROBE_RSET, "RSET", err, errlen) < 0)
        return -1;
    if (mail && probe_add(p, PROBE_MAIL, utf8 ? "MAIL FROM:<> SMTPUTF8" : "MAIL FROM:<>", err,
                          errlen) < 0)
        return -1;
    int n = snprintf(rcpt, sizeof rcpt, "RCPT TO:<%s>", arg);
    if (n < 0 || (size_t)n >= sizeof rcpt) {
        set_error(err, errlen, "refusing to send a malformed command");
        return -1;
    }
    return probe_add(p, PROBE_RCPT, rcpt, err, errlen);
}

static int probe_send_all(struct smtp_session *s, const struct probe *p, int64_t deadline_ms,
                          char *err, size_t errlen)
{
    char buf[sizeof p->cmd];
    size_t len = 0;
    for (int k = 0; k < p->n; k++) {
        memcpy(buf + len, p->cmd[k], p->len[k]);
        len += p->len[k];
    }
    buf[len] = '\0';
    return smtp_send_batch(s, buf, len, deadline_ms, err, errlen);
}

static enum lookup_result lookup_rcpt(struct smtp_session *s, const char *arg,
                                      int64_t deadline_ms, char *reply, size_t replylen,
                                      char *err, size_t errlen)
{
    static const char *const steps[] = { "RSET", "MAIL FROM", "RCPT TO" };
    struct probe p;
    bool pipelined = s->caps.pipelining, mail_refused = false;
    bool utf8 = request_needs_smtputf8(arg);
    char tmp[ERRLEN];
    if (probe_build(s, arg, utf8, &p, err, errlen) < 0)
        return LOOKUP_ERROR;
    if (pipelined && probe_send_all(s, &p, deadline_ms, err, errlen) < 0)
        return LOOKUP_ERROR;
    for (int k = 0; k < p.n; k++) {
        if (!pipelined && smtp_send_batch(s, p.cmd[k], p.len[k], deadline_ms, err, errlen) < 0)
            return LOOKUP_ERROR;
        /* after a refused MAIL keep its error; the RCPT reply (503) says nothing */
        int code = smtp_read_reply(s, steps[p.kind[k]], deadline_ms, mail_refused ? tmp : err,
                                   mail_refused ? sizeof tmp : errlen);
        if (code < 0 || mail_refused)
            return LOOKUP_ERROR;
        if (p.kind[k] == PROBE_RSET) {
            if (code != 250) {
                set_error(err, errlen, "%s refused RSET", s->peer);
                smtp_broken(s);
                return LOOKUP_ERROR;
            }
            s->need_rset = false;
            s->phase = SP_READY;
        } else if (p.kind[k] == PROBE_MAIL) {
            if (code / 100 != 2) {
                smtp_summary(s, reply, replylen);
                set_error(err, errlen, "%s refused MAIL FROM:<>: %s", s->peer, reply);
                s->need_rset = true;
                mail_refused = true;
                if (!pipelined)
                    return LOOKUP_ERROR;
                continue;
            }
            s->phase = SP_MAIL;
            s->tx_probes = 0;
            s->tx_smtputf8 = utf8;
        } else {
            s->tx_probes++;
            return reply_result(s, code, "RCPT TO", reply, replylen, err, errlen);
        }
    }
    return LOOKUP_ERROR;
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
