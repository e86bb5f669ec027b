/*
 * smtp_session.c - an SMTP/LMTP client session from the connect to QUIT:
 * the opening phases (SP_CONNECT .. SP_READY), commands out, replies in
 * (smtp_reply.h checks and bounds them), NOOP, QUIT (smtp_client.h).
 *
 * smtp_open() walks enum smtp_phase one step at a time; lookups
 * (smtp_lookup.c) and relays (smtp_relay.c) move the session between
 * SP_READY and the transaction phases; any loss of sync ends in
 * SP_BROKEN. Each step reads one bounded reply before its deadline.
 *
 * Must not: log AUTH payloads or the text of a reply read during AUTH,
 * write a command that holds CR/LF, or go on in plain text when TLS is
 * enabled.
 */
#include "smtp_session.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static pthread_once_t helo_once = PTHREAD_ONCE_INIT;
static char helo_name[256];

static void helo_init(void)
{
    char h[256] = "";
    size_t j = 0;
    if (gethostname(h, sizeof h - 1) != 0)
        h[0] = '\0';
    for (size_t i = 0; h[i] && j + 1 < sizeof helo_name; i++)
        if (isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-')
            helo_name[j++] = h[i];
    helo_name[j] = '\0';
    if (j == 0)
        snprintf(helo_name, sizeof helo_name, "localhost");
}

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

/* ------------------------------------------------------------ opening */

static int step_connect(struct smtp_session *s, int64_t deadline_ms, bool *connect_failed,
                        char *err, size_t errlen)
{
    s->c = conn_open(s->r->address, s->r->port, smtp_step_deadline(s, deadline_ms), err, errlen);
    if (!s->c) {
        *connect_failed = true;
        return -1;
    }
    s->phase = s->r->tls_enable && s->r->tls_implicit ? SP_TLS_WRAP : SP_GREETING;
    return 0;
}

static int step_tls(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    struct conn_tls_opts o = {
        .server_name = s->r->tls_server_name ? s->r->tls_server_name : s->r->address,
        .ca_pem = s->r->tls_ca_pem, .ca_file = s->r->tls_ca_file,
        .allow_invalid = s->r->tls_allow_invalid,
    };
    if (conn_start_tls(s->c, &o, smtp_step_deadline(s, deadline_ms), err, errlen) < 0)
        return -1;
    if (s->phase == SP_TLS_UPGRADE) {
        s->upgraded = true;
        s->phase = SP_HELLO;
    } else {
        s->phase = SP_GREETING;
    }
    return 0;
}

static int step_greeting(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (smtp_expect_reply(s, "connect (greeting)", 220, "greeted with", deadline_ms, err,
                          errlen) < 0)
        return -1;
    s->phase = SP_HELLO;
    return 0;
}

static enum smtp_phase after_hello(const struct smtp_session *s)
{
    if (s->r->tls_enable && !s->r->tls_implicit && !s->upgraded)
        return SP_STARTTLS;
    if (s->with_auth && s->r->auth_username && *s->r->auth_username)
        return SP_AUTH;
    return SP_READY;
}

static int step_hello(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    const char *verb = s->lmtp ? "LHLO" : "EHLO";
    pthread_once(&helo_once, helo_init);
    if (smtp_send_cmd(s, deadline_ms, err, errlen, "%s %s", verb, helo_name) < 0)
        return -1;
    if (smtp_expect_reply(s, verb, 250, s->lmtp ? "refused LHLO" : "refused EHLO", deadline_ms,
                          err, errlen) < 0)
        return -1;
    smtp_caps_parse(&s->rep, &s->caps);
    s->phase = after_hello(s);
    return 0;
}

static int step_starttls(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (!s->caps.starttls) {
        set_error(err, errlen, "%s does not offer STARTTLS (tls.implicit = false)", s->peer);
        return -1;
    }
    if (smtp_send_cmd(s, deadline_ms, err, errlen, "STARTTLS") < 0)
        return -1;
    if (smtp_expect_reply(s, "STARTTLS", 220, "refused STARTTLS", deadline_ms, err, errlen) < 0)
        return -1;
    s->phase = SP_TLS_UPGRADE;
    return 0;
}

static int step_auth(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    const char *secret = s->r->auth_secret ? s->r->auth_secret : "";
    if (request_check_arg("auth.username", s->r->auth_username, false, err, errlen) < 0
        || request_check_arg("auth.secret", secret, true, err, errlen) < 0)
        return -1;
    int code = smtp_auth(s, s->r->auth_username, secret, deadline_ms, err, errlen);
    if (code < 0)
        return -1;
    if (code != 235) {
        char r[256];
        smtp_summary(s, r, sizeof r);
        set_error(err, errlen, "%s refused our AUTH as %s: %s", s->peer, s->r->auth_username,
                  r);
        return -1;
    }
    s->phase = SP_READY;
    return 0;
}

static int open_step(struct smtp_session *s, int64_t deadline_ms, bool *connect_failed,
                     char *err, size_t errlen)
{
    switch (s->phase) {
    case SP_CONNECT:
        return step_connect(s, deadline_ms, connect_failed, err, errlen);
    case SP_TLS_WRAP:
    case SP_TLS_UPGRADE:
        return step_tls(s, deadline_ms, err, errlen);
    case SP_GREETING:
        return step_greeting(s, deadline_ms, err, errlen);
    case SP_HELLO:
        return step_hello(s, deadline_ms, err, errlen);
    case SP_STARTTLS:
        return step_starttls(s, deadline_ms, err, errlen);
    case SP_AUTH:
        return step_auth(s, deadline_ms, err, errlen);
    default:
        set_error(err, errlen, "internal: unexpected phase %s while opening",
                  smtp_phase_name(s->phase));
        return -1;
    }
}

struct smtp_session *smtp_open(const struct endpoint *r, bool with_auth, int64_t deadline_ms,
                               bool *connect_failed, char *err, size_t errlen)
{
    struct smtp_session *s = xcalloc(1, sizeof *s);
    s->r = r;
    s->lmtp = r->protocol == PROTO_LMTP;
    s->with_auth = with_auth;
    s->phase = SP_CONNECT;
    *connect_failed = false;
    if (strncmp(r->address, "unix:", 5) == 0)
        snprintf(s->peer, sizeof s->peer, "%s", r->address);
    else
        snprintf(s->peer, sizeof s->peer, "%s:%d", r->address, r->port);
    while (s->phase != SP_READY) {
        if (open_step(s, deadline_ms, connect_failed, err, errlen) < 0) {
            smtp_broken(s);
            smtp_close(s);
            return NULL;
        }
    }
    return s;
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
