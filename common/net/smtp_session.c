/*
 * smtp_session.c - an SMTP/LMTP client session once it is connected:
 * commands out, replies in (smtp_reply.h checks and bounds them), NOOP,
 * QUIT (smtp_client.h), and the phase names.
 *
 * smtp_open.c walks the opening phases (SP_CONNECT .. SP_READY) with
 * these primitives, smtp_auth.c runs AUTH with them; lookups
 * (smtp_lookup.c) and relays (smtp_relay.c) move the session between
 * SP_READY and the transaction phases; any loss of sync ends in
 * SP_BROKEN. Each read takes one bounded reply before its deadline.
 *
 * Must not: log AUTH payloads or the text of a reply read during AUTH,
 * write a command that holds CR/LF, or call up into the files that use
 * it (smtp_open.c, smtp_auth.c, smtp_lookup.c, smtp_relay.c).
 */
#include "smtp_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static const char *const phase_names[] = {
    [SP_CONNECT] = "connect",     [SP_TLS_WRAP] = "TLS handshake",
    [SP_GREETING] = "greeting",   [SP_HELLO] = "hello",
    [SP_STARTTLS] = "STARTTLS",   [SP_TLS_UPGRADE] = "TLS upgrade",
    [SP_AUTH] = "AUTH",           [SP_READY] = "ready",
    [SP_MAIL] = "MAIL",           [SP_RCPT] = "RCPT",
    [SP_DATA] = "DATA",           [SP_BODY] = "message",
    [SP_DOT] = "end of data",     [SP_QUIT] = "QUIT",
    [SP_USER_AUTHED] = "user authenticated", [SP_BROKEN] = "broken",
};

const char *smtp_phase_name(enum smtp_phase phase)
{
    return (unsigned)phase < ARRAY_SIZE(phase_names) && phase_names[phase] ? phase_names[phase]
                                                                           : "?";
}

/* ------------------------------------------------------------ helpers */

int64_t smtp_step_deadline(const struct smtp_session *s, int64_t deadline_ms)
{
    return request_step_deadline(s->r, deadline_ms);
}

void smtp_broken(struct smtp_session *s) { s->phase = SP_BROKEN; }

const char *smtp_proto(const struct smtp_session *s) { return s->lmtp ? "lmtp" : "smtp"; }

/* ------------------------------------------------------------ writing */

int smtp_send_raw(struct smtp_session *s, const char *data, size_t len, int64_t deadline_ms,
                  char *err, size_t errlen)
{
    int rc = conn_write(s->c, data, len, smtp_step_deadline(s, deadline_ms), err, errlen);
    if (rc < 0)
        smtp_broken(s);
    return rc < 0 ? -1 : 0;
}

static int add_cmd_v(char *buf, size_t bufsize, size_t *len, char *err, size_t errlen,
                     const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static int add_cmd_v(char *buf, size_t bufsize, size_t *len, char *err, size_t errlen,
                     const char *fmt, va_list ap)
{
    char line[NET_ARG_MAX + 128];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof line || strpbrk(line, "\r\n")) {
        set_error(err, errlen, "refusing to send a malformed command");
        return -1;
    }
    if (*len + (size_t)n + 2 >= bufsize) {
        set_error(err, errlen, "command batch too long");
        return -1;
    }
    memcpy(buf + *len, line, (size_t)n);
    memcpy(buf + *len + n, "\r\n", 2);
    *len += (size_t)n + 2;
    buf[*len] = '\0';
    return 0;
}

int smtp_add_cmd(char *buf, size_t bufsize, size_t *len, char *err, size_t errlen,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = add_cmd_v(buf, bufsize, len, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static void log_sent(const struct smtp_session *s, const char *batch)
{
    if (!log_enabled(LOG_LVL_DEBUG))
        return;
    const char *p = batch;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        log_debug("%s %s > %.*s", smtp_proto(s), s->peer, (int)n, p);
        p += n + (e ? 2 : 0);
    }
}

int smtp_send_batch(struct smtp_session *s, const char *batch, size_t len, int64_t deadline_ms,
                    char *err, size_t errlen)
{
    log_sent(s, batch);
    return smtp_send_raw(s, batch, len, deadline_ms, err, errlen);
}

int smtp_send_cmd(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen,
                  const char *fmt, ...)
{
    char buf[NET_ARG_MAX + 132];
    size_t len = 0;
    va_list ap;
    va_start(ap, fmt);
    int rc = add_cmd_v(buf, sizeof buf, &len, err, errlen, fmt, ap);
    va_end(ap);
    return rc < 0 ? -1 : smtp_send_batch(s, buf, len, deadline_ms, err, errlen);
}

int smtp_send_secret(struct smtp_session *s, const char *prefix, const char *payload,
                     int64_t deadline_ms, char *err, size_t errlen)
{
    if (strpbrk(payload, "\r\n")) {
        set_error(err, errlen, "refusing to send a malformed command");
        return -1;
    }
    size_t n = strlen(prefix) + strlen(payload) + 3;
    char *buf = xmalloc(n);
    snprintf(buf, n, "%s%s\r\n", prefix, payload);
    log_debug("%s %s > %s(credentials not logged)", smtp_proto(s), s->peer, prefix);
    int rc = smtp_send_raw(s, buf, strlen(buf), deadline_ms, err, errlen);
    explicit_bzero(buf, n);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ replies */

static void read_error(struct smtp_session *s, int rc, const char *step, const char *inner,
                       char *err, size_t errlen)
{
    if (rc == CONN_TIMEOUT)
        set_error(err, errlen, "timeout after %s (%s)", step, s->peer);
    else
        set_error(err, errlen, "%s after %s", inner, step);
}

int smtp_read_reply(struct smtp_session *s, const char *step, int64_t deadline_ms, char *err,
                    size_t errlen)
{
    char inner[ERRLEN];
    smtp_reply_start(&s->rep, s->in_auth);
    for (;;) {
        int n = conn_read_line(s->c, s->line, sizeof s->line,
                               smtp_step_deadline(s, deadline_ms), inner, sizeof inner);
        if (n < 0) {
            read_error(s, n, step, inner, err, errlen);
            smtp_broken(s);
            return -1;
        }
        enum smtp_reply_status st = smtp_reply_add(&s->rep, s->line, (size_t)n);
        if (st == SMTP_REPLY_GARBAGE) {
            set_error(err, errlen, "garbage reply from %s after %s: \"%.60s\"", s->peer, step,
                      s->in_auth ? "(not shown during AUTH)" : s->line);
            smtp_broken(s);
            return -1;
        }
        if (st == SMTP_REPLY_TOO_LONG) {
            set_error(err, errlen, "reply from %s after %s longer than %d lines", s->peer, step,
                      SMTP_REPLY_LINES);
            smtp_broken(s);
            return -1;
        }
        log_debug("%s %s < %.*s", smtp_proto(s), s->peer, s->in_auth ? 3 : (int)sizeof s->line,
                  s->line);
        if (st == SMTP_REPLY_DONE)
            break;
    }
    if (s->rep.code == 421)
        smtp_broken(s);   /* the server is closing the session */
    return s->rep.code;
}

void smtp_summary(const struct smtp_session *s, char *out, size_t n)
{
    smtp_reply_summary(&s->rep, out, n);
}

int smtp_expect_reply(struct smtp_session *s, const char *what, int want, const char *refusal,
                      int64_t deadline_ms, char *err, size_t errlen)
{
    int code = smtp_read_reply(s, what, deadline_ms, err, errlen);
    if (code < 0)
        return -1;
    if (code != want) {
        char r[256];
        smtp_summary(s, r, sizeof r);
        set_error(err, errlen, "%s %s: %s", s->peer, refusal, r);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ NOOP, state, QUIT */

int smtp_noop(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (smtp_send_cmd(s, deadline_ms, err, errlen, "NOOP") < 0)
        return -1;
    int code = smtp_read_reply(s, "NOOP", deadline_ms, err, errlen);
    if (code < 0)
        return -1;
    if (code != 250) {
        set_error(err, errlen, "%s answered NOOP with %d", s->peer, code);
        smtp_broken(s);
        return -1;
    }
    return 0;
}

enum smtp_phase smtp_phase(const struct smtp_session *s) { return s->phase; }

bool smtp_reusable(const struct smtp_session *s)
{
    return s->phase == SP_READY || s->phase == SP_MAIL;
}

bool smtp_idle_ok(struct smtp_session *s)
{
    return smtp_reusable(s) && conn_idle_ok(s->c);
}

void smtp_close(struct smtp_session *s)
{
    if (!s)
        return;
    if (s->c && (smtp_reusable(s) || s->phase == SP_USER_AUTHED)) {
        char tmp[ERRLEN];
        int64_t d = now_ms() + 1000;
        if (smtp_send_cmd(s, d, tmp, sizeof tmp, "QUIT") == 0) {
            s->phase = SP_QUIT;
            smtp_read_reply(s, "QUIT", d, tmp, sizeof tmp);
        }
    }
    conn_close(s->c);
    smtp_reply_free(&s->rep);
    free(s);
}
