/*
 * smtp_open.c - opening an SMTP/LMTP client session (smtp_open(),
 * smtp_client.h): the phases SP_CONNECT .. SP_READY, one step at a time -
 * connect, implicit TLS, greeting, EHLO/LHLO, STARTTLS and the TLS
 * upgrade, AUTH (smtp_auth.c) - each reading one bounded reply through
 * smtp_session.c before its deadline.
 *
 * Must not: go on in plain text when TLS is enabled, send AUTH
 * credentials that fail request_check_arg(), or hand out a session that
 * is not SP_READY.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "smtp_auth.h"
#include "smtp_session.h"
#include "util.h"

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

/* ------------------------------------------------------------ opening */

static int step_connect(struct smtp_session *s, int64_t deadline_ms, const char **down_why,
                        char *err, size_t errlen)
{
    s->c = conn_open(s->r->address, s->r->port, smtp_step_deadline(s, deadline_ms), err, errlen);
    if (!s->c) {
        *down_why = "connect failed";
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

static int step_auth(struct smtp_session *s, int64_t deadline_ms, const char **down_why,
                     char *err, size_t errlen)
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
        if (code / 100 == 5)   /* the same secret would fail again: back off */
            *down_why = "it refused our AUTH";
        return -1;
    }
    s->phase = SP_READY;
    return 0;
}

static int open_step(struct smtp_session *s, int64_t deadline_ms, const char **down_why,
                     char *err, size_t errlen)
{
    switch (s->phase) {
    case SP_CONNECT:
        return step_connect(s, deadline_ms, down_why, err, errlen);
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
        return step_auth(s, deadline_ms, down_why, err, errlen);
    default:
        set_error(err, errlen, "internal: unexpected phase %s while opening",
                  smtp_phase_name(s->phase));
        return -1;
    }
}

struct smtp_session *smtp_open(const struct endpoint *r, bool with_auth, int64_t deadline_ms,
                               const char **down_why, char *err, size_t errlen)
{
    struct smtp_session *s = xcalloc(1, sizeof *s);
    s->r = r;
    s->lmtp = r->protocol == PROTO_LMTP;
    s->with_auth = with_auth;
    s->phase = SP_CONNECT;
    *down_why = NULL;
    if (strncmp(r->address, "unix:", 5) == 0)
        snprintf(s->peer, sizeof s->peer, "%s", r->address);
    else
        snprintf(s->peer, sizeof s->peer, "%s:%d", r->address, r->port);
    while (s->phase != SP_READY) {
        if (open_step(s, deadline_ms, down_why, err, errlen) < 0) {
            smtp_broken(s);
            smtp_close(s);
            return NULL;
        }
    }
    return s;
}
