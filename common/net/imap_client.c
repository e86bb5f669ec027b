/*
 * imap_client.c - IMAP client session for AUTH lookups (imap_client.h).
 *
 * Phases follow enum imap_phase: imap_open() runs IP_CONNECT .. IP_READY,
 * an AUTH lookup moves the session to IP_USER_AUTHED (it is then logged
 * out and closed), any loss of sync ends in IP_BROKEN. Each tagged command
 * reads at most IMAP_UNTAGGED_MAX untagged lines before its tagged reply.
 *
 * Must not: log credentials, send an argument holding CR/LF, or send
 * LOGIN/AUTHENTICATE in plain text when TLS is enabled.
 */
#include "imap_client.h"

#include <ctype.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "log.h"
#include "request.h"
#include "sasl_client.h"
#include "util.h"

struct imap_caps {
    bool starttls, sasl_ir, logindisabled, literal_plus;
    unsigned mechs;             /* AUTH=... as sasl_client.h SASL_MECH_* bits */
};

struct imap_session {
    const struct endpoint *r;
    struct conn *c;
    enum imap_phase phase;
    bool upgraded;
    struct imap_caps caps;
    unsigned tag;
    char peer[300];
    char line[CONN_LINE_MAX + 1];
    bool in_auth;   /* replies may echo credentials: keep only their status */
};

enum imap_status { IS_OK = 0, IS_NO, IS_BAD, IS_CONTINUE };

/* Deadline of one wait (request.h), within the caller's. */
static int64_t step_deadline(const struct imap_session *s, int64_t deadline_ms)
{
    return request_step_deadline(s->r, deadline_ms);
}

static void broken(struct imap_session *s) { s->phase = IP_BROKEN; }

/* ------------------------------------------------------------ writing */

static int send_data(struct imap_session *s, const char *data, size_t len, int64_t deadline_ms,
                     char *err, size_t errlen)
{
    if (conn_write(s->c, data, len, step_deadline(s, deadline_ms), err, errlen) < 0) {
        broken(s);
        return -1;
    }
    return 0;
}

/* Sends "<tag> <text>\r\n"; logs it unless it carries credentials. */
static int send_tagged(struct imap_session *s, const char *text, bool secret,
                       int64_t deadline_ms, char *err, size_t errlen)
{
    size_t n = strlen(text) + 32;
    char *buf = xmalloc(n);
    s->tag++;
    snprintf(buf, n, "a%u %s\r\n", s->tag, text);
    if (strpbrk(text, "\r\n")) {
        free(buf);
        set_error(err, errlen, "refusing to send a malformed command");
        return -1;
    }
    if (secret)
        log_debug("imap %s > a%u %.*s (credentials not logged)", s->peer, s->tag,
                  (int)strcspn(text, " "), text);
    else
        log_debug("imap %s > a%u %s", s->peer, s->tag, text);
    int rc = send_data(s, buf, strlen(buf), deadline_ms, err, errlen);
    explicit_bzero(buf, n);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ reading */

static bool word_is(const char *p, const char *w)
{
    size_t n = strlen(w);
    return strncasecmp(p, w, n) == 0 && (p[n] == '\0' || p[n] == ' ' || p[n] == ']');
}

static void parse_caps(struct imap_session *s, const char *list)
{
    struct imap_caps *caps = &s->caps;
    memset(caps, 0, sizeof *caps);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        if (word_is(p, "STARTTLS"))
            caps->starttls = true;
        else if (word_is(p, "SASL-IR"))
            caps->sasl_ir = true;
        else if (strncasecmp(p, "AUTH=", 5) == 0)   /* LOGIN: the LOGIN command does it */
            caps->mechs |= sasl_mechs_parse(p + 5) & ~(unsigned)SASL_MECH_LOGIN;
        else if (word_is(p, "LOGINDISABLED"))
            caps->logindisabled = true;
        else if (word_is(p, "LITERAL+"))
            caps->literal_plus = true;
        p += strcspn(p, " ");
    }
}

static int read_line(struct imap_session *s, const char *step, int64_t deadline_ms, char *err,
                     size_t errlen)
{
    char inner[ERRLEN];
    int n = conn_read_line(s->c, s->line, sizeof s->line, step_deadline(s, deadline_ms), inner,
                           sizeof inner);
    if (n < 0) {
        if (n == CONN_TIMEOUT)
            set_error(err, errlen, "timeout after %s (%s)", step, s->peer);
        else
            set_error(err, errlen, "%s after %s", inner, step);
        broken(s);
        return -1;
    }
    log_debug("imap %s < %.*s", s->peer, s->in_auth ? 8 : (int)sizeof s->line, s->line);
    return n;
}

/* Handles one untagged line; -1 when the server says BYE. */
static int untagged(struct imap_session *s, const char *step, char *err, size_t errlen)
{
    const char *p = s->line + 2;
    if (word_is(p, "CAPABILITY"))
        parse_caps(s, p + 10);
    if (word_is(p, "BYE")) {
        set_error(err, errlen, "%s closed the session after %s: %.200s", s->peer, step,
                  s->in_auth ? "(text not shown during login)" : p);
        broken(s);
        return -1;
    }
    return 0;
}

/*
 * Reads until the tagged reply of the current tag (or a "+" continuation
 * when allow_continue). The reply text goes to reply. Returns the status
 * or -1 with err (session broken).
 */
static int read_response(struct imap_session *s, const char *step, bool allow_continue,
                         char *reply, size_t replylen, int64_t deadline_ms, char *err,
                         size_t errlen)
{
    char tag[16];
    int tl = snprintf(tag, sizeof tag, "a%u ", s->tag);
    for (int lines = 0; lines <= IMAP_UNTAGGED_MAX; lines++) {
        if (read_line(s, step, deadline_ms, err, errlen) < 0)
            return -1;
        if (s->line[0] == '+' && allow_continue)
            return IS_CONTINUE;
        if (strncmp(s->line, "* ", 2) == 0) {
            if (untagged(s, step, err, errlen) < 0)
                return -1;
            continue;
        }
        if (strncasecmp(s->line, tag, (size_t)tl) != 0)
            break;
        const char *st = s->line + tl;
        if (reply && replylen)   /* during login: "NO", "OK", "BAD" without the text */
            snprintf(reply, replylen, "%.*s", s->in_auth ? (int)strcspn(st, " ") : (int)replylen, st);
        if (word_is(st, "OK"))
            return IS_OK;
        if (word_is(st, "NO"))
            return IS_NO;
        if (word_is(st, "BAD"))
            return IS_BAD;
        break;
    }
    set_error(err, errlen, "unexpected reply from %s after %s: \"%.60s\"", s->peer, step,
              s->in_auth ? "(not shown during login)" : s->line);
    broken(s);
    return -1;
}

/* A command that must answer OK; anything else is an error naming the step. */
static int command_ok(struct imap_session *s, const char *cmd, int64_t deadline_ms, char *err,
                      size_t errlen)
{
    char reply[256];
    if (send_tagged(s, cmd, false, deadline_ms, err, errlen) < 0)
        return -1;
    int st = read_response(s, cmd, false, reply, sizeof reply, deadline_ms, err, errlen);
    if (st < 0)
        return -1;
    if (st != IS_OK) {
        set_error(err, errlen, "%s answered %s with: %s", s->peer, cmd, reply);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ opening */

static int step_connect(struct imap_session *s, int64_t deadline_ms, const char **down_why,
                        char *err, size_t errlen)
{
    s->c = conn_open(s->r->address, s->r->port, step_deadline(s, deadline_ms), err, errlen);
    if (!s->c) {
        *down_why = "connect failed";
        return -1;
    }
    s->phase = s->r->tls_enable && s->r->tls_implicit ? IP_TLS_WRAP : IP_GREETING;
    return 0;
}

static int step_tls(struct imap_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    struct conn_tls_opts o = {
        .server_name = s->r->tls_server_name ? s->r->tls_server_name : s->r->address,
        .ca_pem = s->r->tls_ca_pem, .ca_file = s->r->tls_ca_file,
        .allow_invalid = s->r->tls_allow_invalid,
    };
    if (conn_start_tls(s->c, &o, step_deadline(s, deadline_ms), err, errlen) < 0)
        return -1;
    if (s->phase == IP_TLS_UPGRADE) {
        s->upgraded = true;
        s->phase = IP_CAPABILITY;
    } else {
        s->phase = IP_GREETING;
    }
    return 0;
}

static int step_greeting(struct imap_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (read_line(s, "connect (greeting)", deadline_ms, err, errlen) < 0)
        return -1;
    if (strncasecmp(s->line, "* OK", 4) != 0) {
        set_error(err, errlen, "%s greeted with: \"%.60s\"", s->peer, s->line);
        return -1;
    }
    s->phase = IP_CAPABILITY;
    return 0;
}

static int step_capability(struct imap_session *s, int64_t deadline_ms, char *err,
                           size_t errlen)
{
    memset(&s->caps, 0, sizeof s->caps);
    if (command_ok(s, "CAPABILITY", deadline_ms, err, errlen) < 0)
        return -1;
    s->phase = s->r->tls_enable && !s->r->tls_implicit && !s->upgraded ? IP_STARTTLS : IP_READY;
    return 0;
}

static int step_starttls(struct imap_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (!s->caps.starttls) {
        set_error(err, errlen, "%s does not offer STARTTLS (tls.implicit = false)", s->peer);
        return -1;
    }
    if (command_ok(s, "STARTTLS", deadline_ms, err, errlen) < 0)
        return -1;
    s->phase = IP_TLS_UPGRADE;
    return 0;
}

static int open_step(struct imap_session *s, int64_t deadline_ms, const char **down_why,
                     char *err, size_t errlen)
{
    switch (s->phase) {
    case IP_CONNECT:
        return step_connect(s, deadline_ms, down_why, err, errlen);
    case IP_TLS_WRAP:
    case IP_TLS_UPGRADE:
        return step_tls(s, deadline_ms, err, errlen);
    case IP_GREETING:
        return step_greeting(s, deadline_ms, err, errlen);
    case IP_CAPABILITY:
        return step_capability(s, deadline_ms, err, errlen);
    case IP_STARTTLS:
        return step_starttls(s, deadline_ms, err, errlen);
    default:
        set_error(err, errlen, "internal: unexpected IMAP phase %d", (int)s->phase);
        return -1;
    }
}

struct imap_session *imap_open(const struct endpoint *r, int64_t deadline_ms,
                               const char **down_why, char *err, size_t errlen)
{
    struct imap_session *s = xcalloc(1, sizeof *s);
    s->r = r;
    s->phase = IP_CONNECT;
    *down_why = NULL;
    if (strncmp(r->address, "unix:", 5) == 0)
        snprintf(s->peer, sizeof s->peer, "%s", r->address);
    else
        snprintf(s->peer, sizeof s->peer, "%s:%d", r->address, r->port);
    while (s->phase != IP_READY) {
        if (open_step(s, deadline_ms, down_why, err, errlen) < 0) {
            s->phase = IP_BROKEN;
            imap_close(s);
            return NULL;
        }
    }
    return s;
}

/* ------------------------------------------------------------ AUTH */

/* Cancels an AUTHENTICATE exchange ("*"), keeping the session in sync. */
static int authenticate_cancel(struct imap_session *s, int64_t deadline_ms, const char *why,
                               char *err, size_t errlen)
{
    char tmp[ERRLEN];
    if (send_data(s, "*\r\n", 3, deadline_ms, tmp, sizeof tmp) == 0)
        read_response(s, "AUTHENTICATE", false, NULL, 0, deadline_ms, tmp, sizeof tmp);
    set_error(err, errlen, "AUTHENTICATE with %s: %s", s->peer, why);
    return -1;
}

/* One base64 response line of an AUTHENTICATE exchange, never logged. */
static int send_response(struct imap_session *s, const char *b64, int64_t deadline_ms,
                         char *err, size_t errlen)
{
    size_t n = strlen(b64) + 3;
    char *line = xmalloc(n);
    snprintf(line, n, "%s\r\n", b64);
    log_debug("imap %s > (credentials not logged)", s->peer);
    int rc = send_data(s, line, n - 1, deadline_ms, err, errlen);
    explicit_bzero(line, n);
    free(line);
    return rc;
}

/* The AUTHENTICATE command, with SASL-IR when offered and the mechanism
 * speaks first. */
static int authenticate_command(struct imap_session *s, struct sasl_client *c, unsigned mech,
                                int64_t deadline_ms, char *err, size_t errlen)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "AUTHENTICATE %s", sasl_mech_name(mech));
    if (!s->caps.sasl_ir || !sasl_mech_client_first(mech))
        return send_tagged(s, cmd, false, deadline_ms, err, errlen);
    char *ir = NULL;
    if (sasl_client_step(c, NULL, &ir, err, errlen) < 0)
        return -1;
    size_t n = strlen(cmd) + strlen(ir) + 3;
    char *line = xmalloc(n);
    snprintf(line, n, "%s %s", cmd, *ir ? ir : "=");
    int rc = send_tagged(s, line, true, deadline_ms, err, errlen);
    explicit_bzero(line, n);
    free(line);
    sasl_free_secret(ir);
    return rc;
}

/*
 * AUTHENTICATE with the strongest offered mechanism (sasl_client.c). OK
 * counts only when the mechanism completed too (SCRAM: the server proved
 * it knows the password). Returns the tagged status or -1 with err.
 */
static int authenticate(struct imap_session *s, unsigned mech, const char *user,
                        const char *pass, char *reply, size_t replylen, int64_t deadline_ms,
                        char *err, size_t errlen)
{
    struct sasl_client *c = sasl_client_start(mech, user, pass, err, errlen);
    if (!c)
        return -1;
    int st = authenticate_command(s, c, mech, deadline_ms, err, errlen) < 0 ? -1 : IS_CONTINUE;
    for (int round = 0; st == IS_CONTINUE; round++) {
        st = read_response(s, "AUTHENTICATE", true, reply, replylen, deadline_ms, err, errlen);
        if (st != IS_CONTINUE)
            break;
        char *out = NULL, why[ERRLEN];
        const char *challenge = s->line[1] == ' ' ? s->line + 2 : "";
        if (round >= 8)
            st = authenticate_cancel(s, deadline_ms, "too many challenges", err, errlen);
        else if (sasl_client_step(c, challenge, &out, why, sizeof why) < 0)
            st = authenticate_cancel(s, deadline_ms, why, err, errlen);
        else if (send_response(s, out, deadline_ms, err, errlen) < 0)
            st = -1;
        sasl_free_secret(out);
        explicit_bzero(s->line, sizeof s->line);
    }
    if (st == IS_OK && !sasl_client_done(c)) {
        set_error(err, errlen, "%s answered OK before proving it knows the password (%s)",
                  s->peer, sasl_mech_name(mech));
        broken(s);
        st = -1;
    }
    sasl_client_free(c);
    return st;
}

static bool quotable(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return true;
}

/*
 * Appends v to the LOGIN command as a quoted string, or as a literal:
 * the text so far is sent, and (unless LITERAL+) the continuation awaited.
 */
static int add_astring(struct imap_session *s, char *cmd, size_t *len, size_t cap,
                       const char *v, bool *sent_tag, int64_t deadline_ms, char *err,
                       size_t errlen)
{
    if (quotable(v)) {
        cmd[(*len)++] = '"';
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\')
                cmd[(*len)++] = '\\';
            cmd[(*len)++] = *p;
        }
        cmd[(*len)++] = '"';
        cmd[*len] = '\0';
        return 0;
    }
    *len += (size_t)snprintf(cmd + *len, cap - *len, "{%zu%s}\r\n", strlen(v),
                             s->caps.literal_plus ? "+" : "");
    if (!*sent_tag) {
        s->tag++;
        *sent_tag = true;
    }
    log_debug("imap %s > a%u LOGIN ... (literal, credentials not logged)", s->peer, s->tag);
    if (send_data(s, cmd, *len, deadline_ms, err, errlen) < 0)
        return -1;
    if (!s->caps.literal_plus) {
        int st = read_response(s, "LOGIN", true, NULL, 0, deadline_ms, err, errlen);
        if (st != IS_CONTINUE) {
            if (st >= 0)
                set_error(err, errlen, "%s refused a LOGIN literal", s->peer);
            return -1;
        }
    }
    *len = (size_t)snprintf(cmd, cap, "%s", v);
    return 0;
}

static int login(struct imap_session *s, const char *user, const char *pass, char *reply,
                 size_t replylen, int64_t deadline_ms, char *err, size_t errlen)
{
    size_t cap = 2 * (strlen(user) + strlen(pass)) + 64, len;
    char *cmd = xmalloc(cap);
    bool sent_tag = false;
    len = (size_t)snprintf(cmd, cap, "a%u LOGIN ", s->tag + 1);
    int rc = add_astring(s, cmd, &len, cap, user, &sent_tag, deadline_ms, err, errlen);
    if (rc == 0) {
        cmd[len++] = ' ';
        rc = add_astring(s, cmd, &len, cap, pass, &sent_tag, deadline_ms, err, errlen);
    }
    if (rc == 0) {
        if (!sent_tag) {
            s->tag++;
            log_debug("imap %s > a%u LOGIN (credentials not logged)", s->peer, s->tag);
        }
        memcpy(cmd + len, "\r\n", 3);
        rc = send_data(s, cmd, len + 2, deadline_ms, err, errlen);
    }
    explicit_bzero(cmd, cap);
    free(cmd);
    if (rc < 0)
        return -1;
    return read_response(s, "LOGIN", false, reply, replylen, deadline_ms, err, errlen);
}

static enum lookup_result lookup_auth(struct imap_session *s, const char *user,
                                      const char *pass, char *reply, size_t replylen,
                                      int64_t deadline_ms, char *err, size_t errlen)
{
    int st;
    if (s->r->tls_enable && !conn_is_tls(s->c)) {
        set_error(err, errlen, "refusing to log in to %s over plain text", s->peer);
        return LOOKUP_ERROR;
    }
    unsigned mech = sasl_mech_pick(s->caps.mechs);
    s->in_auth = true;
    if (mech) {
        st = authenticate(s, mech, user, pass, reply, replylen, deadline_ms, err, errlen);
    } else if (!s->caps.logindisabled) {
        st = login(s, user, pass, reply, replylen, deadline_ms, err, errlen);
    } else {
        s->in_auth = false;
        set_error(err, errlen, "%s offers neither an AUTH= mechanism we know nor LOGIN", s->peer);
        return LOOKUP_ERROR;
    }
    s->in_auth = false;
    if (s->phase != IP_BROKEN)
        s->phase = IP_USER_AUTHED;
    if (st == IS_OK)
        return LOOKUP_YES;
    if (st == IS_NO)
        return LOOKUP_NO;
    if (st == IS_BAD)
        set_error(err, errlen, "%s answered the login with: %s", s->peer, reply);
    return LOOKUP_ERROR;
}

enum lookup_result imap_lookup(struct imap_session *s, enum lookup_kind kind, const char *arg,
                               const char *password, char *reply, size_t replylen,
                               int64_t deadline_ms, char *err, size_t errlen)
{
    if (reply && replylen)
        reply[0] = '\0';
    if (kind != LOOKUP_AUTH) {   /* request_check_lookup() refuses these before connecting */
        set_error(err, errlen, "%s lookups are not supported by imap", lookup_kind_name(kind));
        return LOOKUP_ERROR;
    }
    if (s->phase != IP_READY) {
        set_error(err, errlen, "internal: IMAP session to %s not usable", s->peer);
        return LOOKUP_ERROR;
    }
    char tmp[256];
    if (!reply || replylen == 0) {
        reply = tmp;
        replylen = sizeof tmp;
    }
    return lookup_auth(s, arg, password, reply, replylen, deadline_ms, err, errlen);
}

int imap_noop(struct imap_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (command_ok(s, "NOOP", deadline_ms, err, errlen) < 0) {
        broken(s);
        return -1;
    }
    return 0;
}

enum imap_phase imap_phase(const struct imap_session *s) { return s->phase; }

bool imap_reusable(const struct imap_session *s) { return s->phase == IP_READY; }

bool imap_idle_ok(struct imap_session *s) { return imap_reusable(s) && conn_idle_ok(s->c); }

void imap_close(struct imap_session *s)
{
    if (!s)
        return;
    if (s->c && (s->phase == IP_READY || s->phase == IP_USER_AUTHED)) {
        char tmp[ERRLEN];
        int64_t d = now_ms() + 1000;
        if (send_tagged(s, "LOGOUT", false, d, tmp, sizeof tmp) == 0)
            read_response(s, "LOGOUT", false, NULL, 0, d, tmp, sizeof tmp);
    }
    conn_close(s->c);
    free(s);
}
