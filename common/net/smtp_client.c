/*
 * smtp_client.c - SMTP/LMTP client session (smtp_client.h).
 *
 * The session walks the phases of enum smtp_phase: smtp_open() drives it
 * from SP_CONNECT to SP_READY, lookups and relays move it between
 * SP_READY, SP_MAIL and SP_DATA, and any loss of sync ends in SP_BROKEN.
 * Each step reads a bounded reply (conn.h limits the line, this file the
 * number of lines) before the deadline.
 *
 * Must not: log AUTH payloads, write an argument that holds CR/LF, accept
 * a 2xx for a relayed recipient before the end-of-data reply, or use AUTH
 * over plain text when TLS is enabled.
 */
#include "smtp_client.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "spool.h"
#include "util.h"

enum { MECH_LOGIN = 1, MECH_PLAIN = 2, MECH_CRAM_MD5 = 4, MECH_SCRAM_SHA256 = 8 };

struct smtp_caps {
    bool pipelining, starttls, size, eightbitmime, smtputf8;
    unsigned mechs;             /* MECH_* offered by AUTH */
};

struct smtp_reply {
    int code;
    int nlines;
    char *text;                 /* full lines joined by '\n' */
    size_t len, cap;
    bool redacted;              /* read during AUTH: only its codes may be shown */
};

struct smtp_session {
    const struct endpoint *r;
    struct conn *c;
    enum smtp_phase phase;
    bool lmtp;
    bool with_auth;
    bool upgraded;              /* STARTTLS done */
    struct smtp_caps caps;
    int tx_probes;              /* RCPT probes in the open transaction */
    bool need_rset;             /* the server may hold transaction state */
    bool in_auth;               /* replies may echo credentials: never log their text */
    char peer[300];
    char line[CONN_LINE_MAX + 1];
    struct smtp_reply rep;
};

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

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Deadline of one step: the remote's timeout (at most 25 s), within the caller's. */
static int64_t step_deadline(const struct smtp_session *s, int64_t deadline_ms)
{
    int64_t t = s->r->timeout_ms > 0 ? min64(s->r->timeout_ms, SMTP_WAIT_MAX_MS) : SMTP_WAIT_MAX_MS;
    return min64(deadline_ms, now_ms() + t);
}

int smtp_check_arg(const char *what, const char *arg, bool is_secret, char *err, size_t errlen)
{
    if (!arg) {
        set_error(err, errlen, "%s missing", what);
        return -1;
    }
    if (strlen(arg) > SMTP_ARG_MAX) {
        set_error(err, errlen, "%s longer than %d bytes", what, SMTP_ARG_MAX);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            set_error(err, errlen, "%s contains CR or LF", what);
            return -1;
        }
        if (!is_secret && (*p < 0x20 || *p == 0x7f)) {
            set_error(err, errlen, "%s contains a control character", what);
            return -1;
        }
    }
    return 0;
}

static void broken(struct smtp_session *s) { s->phase = SP_BROKEN; }

/* ------------------------------------------------------------ writing */

static int send_raw(struct smtp_session *s, const char *data, size_t len, int64_t deadline_ms,
                    char *err, size_t errlen)
{
    int rc = conn_write(s->c, data, len, step_deadline(s, deadline_ms), err, errlen);
    if (rc < 0)
        broken(s);
    return rc < 0 ? -1 : 0;
}

/*
 * Appends one command line (+CRLF) to buf. The formatted text is checked
 * again for CR/LF so no caller can smuggle a second command.
 */
static int add_cmd(char *buf, size_t bufsize, size_t *len, char *err, size_t errlen,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int add_cmd(char *buf, size_t bufsize, size_t *len, char *err, size_t errlen,
                   const char *fmt, ...)
{
    char line[SMTP_ARG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
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

static void log_sent(const struct smtp_session *s, const char *batch)
{
    if (!log_enabled(LOG_LVL_DEBUG))
        return;
    const char *p = batch;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        log_debug("%s %s > %.*s", s->lmtp ? "lmtp" : "smtp", s->peer, (int)n, p);
        p += n + (e ? 2 : 0);
    }
}

static int send_batch(struct smtp_session *s, const char *batch, size_t len, int64_t deadline_ms,
                      char *err, size_t errlen)
{
    log_sent(s, batch);
    return send_raw(s, batch, len, deadline_ms, err, errlen);
}

static int send_cmd(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int send_cmd(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen,
                    const char *fmt, ...)
{
    char line[SMTP_ARG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char buf[SMTP_ARG_MAX + 132];
    size_t len = 0;
    if (n < 0 || (size_t)n >= sizeof line
        || add_cmd(buf, sizeof buf, &len, err, errlen, "%s", line) < 0) {
        set_error(err, errlen, "refusing to send a malformed command");
        return -1;
    }
    return send_batch(s, buf, len, deadline_ms, err, errlen);
}

/* An AUTH line whose content is never logged. */
static int send_secret(struct smtp_session *s, const char *prefix, const char *payload,
                       int64_t deadline_ms, char *err, size_t errlen)
{
    size_t n = strlen(prefix) + strlen(payload) + 3;
    char *buf = xmalloc(n);
    snprintf(buf, n, "%s%s\r\n", prefix, payload);
    log_debug("%s %s > %s(credentials not logged)", s->lmtp ? "lmtp" : "smtp", s->peer,
              prefix);
    int rc = send_raw(s, buf, strlen(buf), deadline_ms, err, errlen);
    memset(buf, 0, n);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ replies */

static void reply_append(struct smtp_reply *rep, const char *line, size_t n)
{
    if (rep->len + n + 2 > rep->cap) {
        rep->cap = (rep->len + n + 2) * 2;
        rep->text = xrealloc(rep->text, rep->cap);
    }
    if (rep->len)
        rep->text[rep->len++] = '\n';
    memcpy(rep->text + rep->len, line, n);
    rep->len += n;
    rep->text[rep->len] = '\0';
}

static bool reply_line_ok(const char *line, int n, int first_code, int *code)
{
    if (n < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1])
        || !isdigit((unsigned char)line[2]))
        return false;
    if (n > 3 && line[3] != ' ' && line[3] != '-')
        return false;
    *code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (*code < 200 || *code > 599)
        return false;
    return first_code == 0 || *code == first_code;
}

static void read_error(struct smtp_session *s, int rc, const char *step, const char *inner,
                       char *err, size_t errlen)
{
    if (rc == CONN_TIMEOUT)
        set_error(err, errlen, "timeout after %s (%s)", step, s->peer);
    else
        set_error(err, errlen, "%s after %s", inner, step);
}

/*
 * Reads one (multi-line) reply into s->rep. Returns the code, or -1 with
 * err (session broken) on timeout, I/O error or garbage.
 */
static int read_reply(struct smtp_session *s, const char *step, int64_t deadline_ms, char *err,
                      size_t errlen)
{
    struct smtp_reply *rep = &s->rep;
    char inner[ERRLEN];
    rep->code = 0;
    rep->nlines = 0;
    rep->len = 0;
    rep->redacted = s->in_auth;
    for (;;) {
        int n = conn_read_line(s->c, s->line, sizeof s->line, step_deadline(s, deadline_ms),
                               inner, sizeof inner);
        if (n < 0) {
            read_error(s, n, step, inner, err, errlen);
            broken(s);
            return -1;
        }
        int code = 0;
        if (!reply_line_ok(s->line, n, rep->code, &code)) {
            set_error(err, errlen, "garbage reply from %s after %s: \"%.60s\"", s->peer, step,
                      s->in_auth ? "(not shown during AUTH)" : s->line);
            broken(s);
            return -1;
        }
        if (++rep->nlines > SMTP_REPLY_LINES) {
            set_error(err, errlen, "reply from %s after %s longer than %d lines", s->peer, step,
                      SMTP_REPLY_LINES);
            broken(s);
            return -1;
        }
        rep->code = code;
        reply_append(rep, s->line, (size_t)n);
        log_debug("%s %s < %.*s", s->lmtp ? "lmtp" : "smtp", s->peer,
                  s->in_auth ? 3 : (int)sizeof s->line, s->line);
        if (n == 3 || s->line[3] == ' ')
            break;
    }
    if (rep->code == 421)
        broken(s);   /* the server is closing the session */
    return rep->code;
}

/* The reply as one line: "550 5.1.1 first line second line". */
static void reply_summary(const struct smtp_session *s, char *out, size_t n)
{
    const char *p = s->rep.text;
    size_t o = 0;
    if (n == 0)
        return;
    out[0] = '\0';
    if (s->rep.redacted && p) {
        /* A reply during AUTH may echo what we sent: keep "535 5.7.8" only. */
        size_t keep = strspn(p, "0123456789");
        if (p[keep] == ' ' || p[keep] == '-')
            keep += 1 + strspn(p + keep + 1, "0123456789.");
        snprintf(out, n, "%.*s(text not shown)", (int)keep, p);
        return;
    }
    for (int i = 0; p && *p && o + 1 < n; i++) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *t = p;
        if (i > 0) {                       /* later lines: text only */
            size_t skip = len > 4 ? 4 : len;
            t += skip;
            len -= skip;
            out[o++] = ' ';
        }
        for (size_t k = 0; k < len && o + 1 < n; k++)
            out[o++] = (i == 0 && k == 3 && t[k] == '-') ? ' ' : t[k];
        p = e ? e + 1 : NULL;
    }
    out[o] = '\0';
}

/* Line i (0-based) of the reply, without code and separator, into out. */
static void reply_line_text(const struct smtp_reply *rep, int idx, char *out, size_t n)
{
    const char *p = rep->text;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    out[0] = '\0';
    if (!p)
        return;
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len <= 4) {
        return;
    }
    snprintf(out, n, "%.*s", (int)(len - 4), p + 4);
}

/* ------------------------------------------------------------ capabilities */

static unsigned mech_bit(const char *name, size_t n)
{
    static const struct { const char *name; unsigned bit; } mechs[] = {
        { "LOGIN", MECH_LOGIN }, { "PLAIN", MECH_PLAIN },
        { "CRAM-MD5", MECH_CRAM_MD5 }, { "SCRAM-SHA-256", MECH_SCRAM_SHA256 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(mechs); i++)
        if (strlen(mechs[i].name) == n && strncasecmp(name, mechs[i].name, n) == 0)
            return mechs[i].bit;
    return 0;
}

static unsigned parse_mechs(const char *p)
{
    unsigned bits = 0;
    while (*p) {
        while (*p == ' ' || *p == '=')
            p++;
        size_t n = strcspn(p, " ");
        bits |= mech_bit(p, n);
        p += n;
    }
    return bits;
}

static bool keyword_is(const char *kw, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(kw, name, n) == 0 && (kw[n] == '\0' || kw[n] == ' ' || kw[n] == '=');
}

static void parse_caps(struct smtp_session *s)
{
    struct smtp_caps *caps = &s->caps;
    memset(caps, 0, sizeof *caps);
    for (int i = 1; i < s->rep.nlines; i++) {
        char kw[CONN_LINE_MAX + 1];
        reply_line_text(&s->rep, i, kw, sizeof kw);
        if (keyword_is(kw, "PIPELINING"))
            caps->pipelining = true;
        else if (keyword_is(kw, "STARTTLS"))
            caps->starttls = true;
        else if (keyword_is(kw, "SIZE"))
            caps->size = true;
        else if (keyword_is(kw, "8BITMIME"))
            caps->eightbitmime = true;
        else if (keyword_is(kw, "SMTPUTF8"))
            caps->smtputf8 = true;
        else if (keyword_is(kw, "AUTH"))
            caps->mechs |= parse_mechs(kw + 4);
    }
}

/* ------------------------------------------------------------ SASL */

static char *b64_encode(const void *data, size_t len)
{
    gnutls_datum_t in = { (unsigned char *)data, (unsigned)len }, out = { NULL, 0 };
    if (len == 0)
        return xstrdup("");
    if (gnutls_base64_encode2(&in, &out) < 0)
        return NULL;
    char *s = xstrndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    return s;
}

/* Decodes text (may be empty) into a NUL-terminated buffer; NULL on bad base64. */
static char *b64_decode(const char *text, size_t *outlen)
{
    gnutls_datum_t in = { (unsigned char *)text, (unsigned)strlen(text) }, out = { NULL, 0 };
    *outlen = 0;
    if (!*text)
        return xstrdup("");
    if (gnutls_base64_decode2(&in, &out) < 0)
        return NULL;
    char *s = xmalloc(out.size + 1);
    memcpy(s, out.data, out.size);
    s[out.size] = '\0';
    *outlen = out.size;
    gnutls_free(out.data);
    return s;
}

/* Text of a 334 challenge line ("334 <base64>"), decoded. */
static char *challenge(const struct smtp_session *s, size_t *len)
{
    const char *t = s->rep.len > 4 ? s->rep.text + 4 : "";
    return b64_decode(t, len);
}

struct sasl_state {
    struct smtp_session *s;
    const char *user, *pass;
    int64_t deadline;
    char *err;
    size_t errlen;
};

/* Sends base64(data) as a SASL response and reads the next reply. */
static int sasl_respond(struct sasl_state *st, const void *data, size_t len)
{
    char *b = b64_encode(data, len);
    if (!b) {
        set_error(st->err, st->errlen, "base64 encoding failed");
        return -1;
    }
    int rc = send_secret(st->s, "", b, st->deadline, st->err, st->errlen);
    free(b);
    if (rc < 0)
        return -1;
    return read_reply(st->s, "AUTH", st->deadline, st->err, st->errlen);
}

/* Cancels a SASL exchange ("*"), keeping the session in sync. */
static int sasl_cancel(struct sasl_state *st, const char *why)
{
    char tmp[ERRLEN];
    if (send_cmd(st->s, st->deadline, tmp, sizeof tmp, "*") == 0)
        read_reply(st->s, "AUTH cancel", st->deadline, tmp, sizeof tmp);
    set_error(st->err, st->errlen, "AUTH with %s: %s", st->s->peer, why);
    return -1;
}

static int auth_plain(struct sasl_state *st)
{
    size_t ul = strlen(st->user), pl = strlen(st->pass);
    char *msg = xmalloc(ul + pl + 2);
    msg[0] = '\0';
    memcpy(msg + 1, st->user, ul);
    msg[ul + 1] = '\0';
    memcpy(msg + ul + 2, st->pass, pl);
    char *b = b64_encode(msg, ul + pl + 2);
    memset(msg, 0, ul + pl + 2);
    free(msg);
    if (!b) {
        set_error(st->err, st->errlen, "base64 encoding failed");
        return -1;
    }
    int rc = send_secret(st->s, "AUTH PLAIN ", b, st->deadline, st->err, st->errlen);
    free(b);
    if (rc < 0)
        return -1;
    return read_reply(st->s, "AUTH", st->deadline, st->err, st->errlen);
}

static int auth_login(struct sasl_state *st)
{
    if (send_cmd(st->s, st->deadline, st->err, st->errlen, "AUTH LOGIN") < 0)
        return -1;
    int code = read_reply(st->s, "AUTH", st->deadline, st->err, st->errlen);
    if (code != 334)
        return code;
    code = sasl_respond(st, st->user, strlen(st->user));
    if (code != 334)
        return code;
    return sasl_respond(st, st->pass, strlen(st->pass));
}

static int auth_cram_md5(struct sasl_state *st)
{
    if (send_cmd(st->s, st->deadline, st->err, st->errlen, "AUTH CRAM-MD5") < 0)
        return -1;
    int code = read_reply(st->s, "AUTH", st->deadline, st->err, st->errlen);
    if (code != 334)
        return code;
    size_t clen;
    char *chal = challenge(st->s, &clen);
    if (!chal)
        return sasl_cancel(st, "bad CRAM-MD5 challenge");
    unsigned char mac[16];
    int rc = gnutls_hmac_fast(GNUTLS_MAC_MD5, st->pass, strlen(st->pass), chal, clen, mac);
    free(chal);
    if (rc < 0)
        return sasl_cancel(st, "HMAC-MD5 not available");
    size_t n = strlen(st->user) + 1 + 32 + 1;
    char *resp = xmalloc(n);
    int off = snprintf(resp, n, "%s ", st->user);
    for (int i = 0; i < 16; i++)
        off += snprintf(resp + off, n - (size_t)off, "%02x", mac[i]);
    code = sasl_respond(st, resp, strlen(resp));
    free(resp);
    return code;
}

/* --- SCRAM-SHA-256 (RFC 5802, RFC 7677); passwords are used as given. */

#define SHA256_LEN 32

static char *scram_escape_user(const char *user)
{
    char *out = xmalloc(strlen(user) * 3 + 1), *o = out;
    for (const char *p = user; *p; p++) {
        if (*p == '=') {
            memcpy(o, "=3D", 3);
            o += 3;
        } else if (*p == ',') {
            memcpy(o, "=2C", 3);
            o += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

/* Finds "k=value" in a SCRAM attribute list; copies value into out. */
static bool scram_attr(const char *msg, char key, char *out, size_t n)
{
    const char *p = msg;
    while (p && *p) {
        if (p[0] == key && p[1] == '=') {
            size_t len = strcspn(p + 2, ",");
            if (len + 1 > n)
                return false;
            memcpy(out, p + 2, len);
            out[len] = '\0';
            return true;
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return false;
}

struct scram_keys {
    unsigned char client_proof[SHA256_LEN];
    unsigned char server_sig[SHA256_LEN];
};

static int scram_compute(const char *pass, const unsigned char *salt, size_t saltlen,
                         unsigned iter, const char *auth_msg, struct scram_keys *k)
{
    unsigned char salted[SHA256_LEN], ckey[SHA256_LEN], stored[SHA256_LEN], csig[SHA256_LEN];
    unsigned char skey[SHA256_LEN];
    gnutls_datum_t key = { (unsigned char *)pass, (unsigned)strlen(pass) };
    gnutls_datum_t s = { (unsigned char *)salt, (unsigned)saltlen };
    if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iter, salted, sizeof salted) < 0
        || gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, sizeof salted, "Client Key", 10, ckey) < 0
        || gnutls_hash_fast(GNUTLS_DIG_SHA256, ckey, sizeof ckey, stored) < 0
        || gnutls_hmac_fast(GNUTLS_MAC_SHA256, stored, sizeof stored, auth_msg,
                            strlen(auth_msg), csig) < 0
        || gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, sizeof salted, "Server Key", 10, skey) < 0
        || gnutls_hmac_fast(GNUTLS_MAC_SHA256, skey, sizeof skey, auth_msg, strlen(auth_msg),
                            k->server_sig) < 0)
        return -1;
    for (int i = 0; i < SHA256_LEN; i++)
        k->client_proof[i] = ckey[i] ^ csig[i];
    memset(salted, 0, sizeof salted);
    memset(ckey, 0, sizeof ckey);
    return 0;
}

/* Verifies the server-final message "v=<base64 signature>". */
static bool scram_server_ok(const char *server_final, const struct scram_keys *k)
{
    char v[128];
    size_t len;
    if (!scram_attr(server_final, 'v', v, sizeof v))
        return false;
    char *sig = b64_decode(v, &len);
    bool ok = sig && len == SHA256_LEN && memcmp(sig, k->server_sig, SHA256_LEN) == 0;
    free(sig);
    return ok;
}

/* After the client-final message: 334 server-final, empty line, 235. */
static int scram_finish(struct sasl_state *st, int code, const struct scram_keys *k)
{
    if (code != 334)
        return code;
    size_t len;
    char *final = challenge(st->s, &len);
    bool ok = final && scram_server_ok(final, k);
    free(final);
    if (!ok)
        return sasl_cancel(st, "SCRAM server signature mismatch");
    if (send_cmd(st->s, st->deadline, st->err, st->errlen, "%s", "") < 0)
        return -1;
    return read_reply(st->s, "AUTH", st->deadline, st->err, st->errlen);
}

static int scram_client_final(struct sasl_state *st, const char *first_bare,
                              const char *nonce)
{
    size_t len;
    char *sfirst = challenge(st->s, &len);
    char rnonce[256], salt64[256], iters[16];
    if (!sfirst || !scram_attr(sfirst, 'r', rnonce, sizeof rnonce)
        || !scram_attr(sfirst, 's', salt64, sizeof salt64)
        || !scram_attr(sfirst, 'i', iters, sizeof iters)
        || strncmp(rnonce, nonce, strlen(nonce)) != 0) {
        free(sfirst);
        return sasl_cancel(st, "bad SCRAM server-first message");
    }
    long iter = strtol(iters, NULL, 10);
    size_t saltlen;
    char *salt = b64_decode(salt64, &saltlen);
    if (!salt || iter < 1 || iter > 1000000) {
        free(sfirst);
        free(salt);
        return sasl_cancel(st, "bad SCRAM salt or iteration count");
    }
    char without_proof[300];
    snprintf(without_proof, sizeof without_proof, "c=biws,r=%s", rnonce);
    size_t am_len = strlen(first_bare) + strlen(sfirst) + strlen(without_proof) + 3;
    char *auth_msg = xmalloc(am_len);
    snprintf(auth_msg, am_len, "%s,%s,%s", first_bare, sfirst, without_proof);
    free(sfirst);
    struct scram_keys k;
    int rc = scram_compute(st->pass, (unsigned char *)salt, saltlen, (unsigned)iter, auth_msg, &k);
    free(salt);
    free(auth_msg);
    if (rc < 0)
        return sasl_cancel(st, "SCRAM computation failed");
    char *proof = b64_encode(k.client_proof, sizeof k.client_proof);
    char final[512];
    snprintf(final, sizeof final, "%s,p=%s", without_proof, proof ? proof : "");
    free(proof);
    int code = sasl_respond(st, final, strlen(final));
    return scram_finish(st, code, &k);
}

static int auth_scram_sha256(struct sasl_state *st)
{
    unsigned char rnd[18];
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) < 0) {
        set_error(st->err, st->errlen, "no random nonce");
        return -1;
    }
    char *nonce = b64_encode(rnd, sizeof rnd);
    char *user = scram_escape_user(st->user);
    size_t n = strlen(user) + strlen(nonce) + 16;
    char *first = xmalloc(n);
    snprintf(first, n, "n,,n=%s,r=%s", user, nonce);
    free(user);
    char *b = b64_encode(first, strlen(first));
    int code = -1;
    if (b && send_secret(st->s, "AUTH SCRAM-SHA-256 ", b, st->deadline, st->err, st->errlen) == 0)
        code = read_reply(st->s, "AUTH", st->deadline, st->err, st->errlen);
    free(b);
    if (code == 334)
        code = scram_client_final(st, first + 3, nonce);
    free(first);
    free(nonce);
    return code;
}

/*
 * AUTH with the strongest offered mechanism. Returns the final reply code
 * (235 success, 535 bad credentials, other) or -1 with err.
 */
static int smtp_auth(struct smtp_session *s, const char *user, const char *pass,
                     int64_t deadline_ms, char *err, size_t errlen)
{
    struct sasl_state st = { s, user, pass, deadline_ms, err, errlen };
    if (s->r->tls_enable && !conn_is_tls(s->c)) {
        set_error(err, errlen, "refusing AUTH to %s over plain text", s->peer);
        return -1;
    }
    unsigned m = s->caps.mechs;
    int rc;
    s->in_auth = true;
    if (m & MECH_SCRAM_SHA256)
        rc = auth_scram_sha256(&st);
    else if (m & MECH_CRAM_MD5)
        rc = auth_cram_md5(&st);
    else if (m & MECH_PLAIN)
        rc = auth_plain(&st);
    else if (m & MECH_LOGIN)
        rc = auth_login(&st);
    else {
        set_error(err, errlen, "%s offers no AUTH mechanism we support", s->peer);
        rc = -1;
    }
    s->in_auth = false;
    return rc;
}

/* ------------------------------------------------------------ opening */

static int step_connect(struct smtp_session *s, int64_t deadline_ms, bool *connect_failed,
                        char *err, size_t errlen)
{
    s->c = conn_open(s->r->address, s->r->port, step_deadline(s, deadline_ms), err, errlen);
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
    if (conn_start_tls(s->c, &o, step_deadline(s, deadline_ms), err, errlen) < 0)
        return -1;
    if (s->phase == SP_TLS_UPGRADE) {
        s->upgraded = true;
        s->phase = SP_HELLO;
    } else {
        s->phase = SP_GREETING;
    }
    return 0;
}

/*
 * Reads the reply to `what` and requires code `want`; anything else is an
 * error that names the peer and quotes its reply after `refusal`.
 */
static int expect_reply(struct smtp_session *s, const char *what, int want, const char *refusal,
                        int64_t deadline_ms, char *err, size_t errlen)
{
    int code = read_reply(s, what, deadline_ms, err, errlen);
    if (code < 0)
        return -1;
    if (code != want) {
        char r[256];
        reply_summary(s, r, sizeof r);
        set_error(err, errlen, "%s %s: %s", s->peer, refusal, r);
        return -1;
    }
    return 0;
}

static int step_greeting(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (expect_reply(s, "connect (greeting)", 220, "greeted with", deadline_ms, err, errlen) < 0)
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
    if (send_cmd(s, deadline_ms, err, errlen, "%s %s", verb, helo_name) < 0)
        return -1;
    if (expect_reply(s, verb, 250, s->lmtp ? "refused LHLO" : "refused EHLO", deadline_ms, err,
                     errlen) < 0)
        return -1;
    parse_caps(s);
    s->phase = after_hello(s);
    return 0;
}

static int step_starttls(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (!s->caps.starttls) {
        set_error(err, errlen, "%s does not offer STARTTLS (tls.implicit = false)", s->peer);
        return -1;
    }
    if (send_cmd(s, deadline_ms, err, errlen, "STARTTLS") < 0)
        return -1;
    if (expect_reply(s, "STARTTLS", 220, "refused STARTTLS", deadline_ms, err, errlen) < 0)
        return -1;
    s->phase = SP_TLS_UPGRADE;
    return 0;
}

static int step_auth(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    const char *secret = s->r->auth_secret ? s->r->auth_secret : "";
    if (smtp_check_arg("auth.username", s->r->auth_username, false, err, errlen) < 0
        || smtp_check_arg("auth.secret", secret, true, err, errlen) < 0)
        return -1;
    int code = smtp_auth(s, s->r->auth_username, secret, deadline_ms, err, errlen);
    if (code < 0)
        return -1;
    if (code != 235) {
        char r[256];
        reply_summary(s, r, sizeof r);
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
        set_error(err, errlen, "internal: unexpected phase %d while opening", (int)s->phase);
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
            s->phase = SP_BROKEN;
            smtp_close(s);
            return NULL;
        }
    }
    return s;
}

/* ------------------------------------------------------------ lookups */

static enum lookup_result reply_result(struct smtp_session *s, int code, const char *step,
                                       char *reply, size_t replylen, char *err, size_t errlen)
{
    reply_summary(s, reply, replylen);
    if (code / 100 == 2)
        return LOOKUP_YES;
    if (code / 100 == 5)
        return LOOKUP_NO;
    set_error(err, errlen, "%s answered %s with: %s", s->peer, step, reply);
    return LOOKUP_ERROR;
}

/*
 * A RCPT probe: RSET when the server may hold state or the transaction is
 * full, MAIL FROM:<> when no transaction is open, then RCPT TO:<x>. With
 * PIPELINING all of them go out in one write (one round trip).
 */
enum { PROBE_RSET = 0, PROBE_MAIL, PROBE_RCPT };

struct probe {
    int kind[3];
    char cmd[3][SMTP_ARG_MAX + 32];
    size_t len[3];
    int n;
};

static int probe_build(struct smtp_session *s, const char *arg, struct probe *p, char *err,
                       size_t errlen)
{
    bool rset = s->need_rset || (s->phase == SP_MAIL && s->tx_probes >= SMTP_PROBES_PER_TX);
    bool mail = rset || s->phase != SP_MAIL;
    p->n = 0;
    if (rset) {
        p->kind[p->n] = PROBE_RSET;
        p->len[p->n] = 0;
        if (add_cmd(p->cmd[p->n], sizeof p->cmd[0], &p->len[p->n], err, errlen, "RSET") < 0)
            return -1;
        p->n++;
    }
    if (mail) {
        p->kind[p->n] = PROBE_MAIL;
        p->len[p->n] = 0;
        if (add_cmd(p->cmd[p->n], sizeof p->cmd[0], &p->len[p->n], err, errlen,
                    "MAIL FROM:<>") < 0)
            return -1;
        p->n++;
    }
    p->kind[p->n] = PROBE_RCPT;
    p->len[p->n] = 0;
    if (add_cmd(p->cmd[p->n], sizeof p->cmd[0], &p->len[p->n], err, errlen, "RCPT TO:<%s>",
                arg) < 0)
        return -1;
    p->n++;
    return 0;
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
    return send_batch(s, buf, len, deadline_ms, err, errlen);
}

static enum lookup_result lookup_rcpt(struct smtp_session *s, const char *arg,
                                      int64_t deadline_ms, char *reply, size_t replylen,
                                      char *err, size_t errlen)
{
    static const char *const steps[] = { "RSET", "MAIL FROM", "RCPT TO" };
    struct probe p;
    bool pipelined = s->caps.pipelining, mail_refused = false;
    char tmp[ERRLEN];
    if (probe_build(s, arg, &p, err, errlen) < 0)
        return LOOKUP_ERROR;
    if (pipelined && probe_send_all(s, &p, deadline_ms, err, errlen) < 0)
        return LOOKUP_ERROR;
    for (int k = 0; k < p.n; k++) {
        if (!pipelined && send_batch(s, p.cmd[k], p.len[k], deadline_ms, err, errlen) < 0)
            return LOOKUP_ERROR;
        /* after a refused MAIL keep its error; the RCPT reply (503) says nothing */
        int code = read_reply(s, steps[p.kind[k]], deadline_ms, mail_refused ? tmp : err,
                              mail_refused ? sizeof tmp : errlen);
        if (code < 0 || mail_refused)
            return LOOKUP_ERROR;
        if (p.kind[k] == PROBE_RSET) {
            if (code != 250) {
                set_error(err, errlen, "%s refused RSET", s->peer);
                broken(s);
                return LOOKUP_ERROR;
            }
            s->need_rset = false;
            s->phase = SP_READY;
        } else if (p.kind[k] == PROBE_MAIL) {
            if (code / 100 != 2) {
                reply_summary(s, reply, replylen);
                set_error(err, errlen, "%s refused MAIL FROM:<>: %s", s->peer, reply);
                s->need_rset = true;
                mail_refused = true;
                if (!pipelined)
                    return LOOKUP_ERROR;
                continue;
            }
            s->phase = SP_MAIL;
            s->tx_probes = 0;
        } else {
            s->tx_probes++;
            return reply_result(s, code, "RCPT TO", reply, replylen, err, errlen);
        }
    }
    return LOOKUP_ERROR;
}

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
        reply_line_text(&s->rep, i, text, sizeof text);
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
    if (send_cmd(s, deadline_ms, err, errlen, "%s %s", verb, arg) < 0)
        return LOOKUP_ERROR;
    int code = read_reply(s, verb, deadline_ms, err, errlen);
    if (code < 0)
        return LOOKUP_ERROR;
    reply_summary(s, reply, replylen);
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
    reply_summary(s, reply, replylen);
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
    if (reply && replylen)
        reply[0] = '\0';
    if (smtp_check_arg(kind == LOOKUP_AUTH ? "user name" : "address", arg, false, err,
                       errlen) < 0)
        return LOOKUP_ERROR;
    if (kind == LOOKUP_AUTH && smtp_check_arg("password", password, true, err, errlen) < 0)
        return LOOKUP_ERROR;
    if (!smtp_reusable(s)) {
        set_error(err, errlen, "internal: session to %s not usable", s->peer);
        return LOOKUP_ERROR;
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

int smtp_noop(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen)
{
    if (send_cmd(s, deadline_ms, err, errlen, "NOOP") < 0)
        return -1;
    int code = read_reply(s, "NOOP", deadline_ms, err, errlen);
    if (code < 0)
        return -1;
    if (code != 250) {
        set_error(err, errlen, "%s answered NOOP with %d", s->peer, code);
        broken(s);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ relay */

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
    reply_summary(rr->s, rr->rcpts[i].reply, sizeof rr->rcpts[i].reply);
}

/* Every recipient still without a final code gets 451 with our reason. */
static void fail_pending(struct relay_rcpt *rcpts, size_t n, const char *remote,
                         const char *why)
{
    for (size_t i = 0; i < n; i++) {
        if (rcpts[i].code != 0)
            continue;
        rcpts[i].code = 451;
        snprintf(rcpts[i].reply, sizeof rcpts[i].reply, "451 4.4.2 next hop %s: %s", remote,
                 why);
    }
}

static int relay_rset_if_needed(struct relay_run *rr)
{
    struct smtp_session *s = rr->s;
    if (!s->need_rset && s->phase != SP_MAIL)
        return 0;
    if (send_cmd(s, rr->deadline, rr->err, rr->errlen, "RSET") < 0)
        return -1;
    int code = read_reply(s, "RSET", rr->deadline, rr->err, rr->errlen);
    if (code < 0)
        return -1;
    if (code != 250) {
        set_error(rr->err, rr->errlen, "%s refused RSET", s->peer);
        broken(s);
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

/* Sends MAIL and RCPTs in batches (one write per batch when pipelining). */
static int relay_envelope_send(struct relay_run *rr, const char *sender, size_t size,
                               size_t from, size_t to, bool with_mail)
{
    struct smtp_session *s = rr->s;
    size_t cap = (to - from + 1) * (SMTP_ARG_MAX + 64), len = 0;
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
        rc = add_cmd(buf, cap, &len, rr->err, rr->errlen, "MAIL FROM:<%s>%s", sender, params);
    }
    for (size_t i = from; rc == 0 && i < to; i++)
        rc = add_cmd(buf, cap, &len, rr->err, rr->errlen, "RCPT TO:<%s>", rr->rcpts[i].addr);
    if (rc == 0)
        rc = send_batch(s, buf, len, rr->deadline, rr->err, rr->errlen);
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

/*
 * 503 (bad sequence of commands) means we are out of step with the server:
 * never pass it on as a recipient's permanent failure.
 */
static int out_of_sequence(struct relay_run *rr, const char *step)
{
    char r[256];
    reply_summary(rr->s, r, sizeof r);
    set_error(rr->err, rr->errlen, "%s answered %s out of sequence: %s", rr->s->peer, step, r);
    broken(rr->s);
    return -1;
}

static int relay_read_rcpts(struct relay_run *rr, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        int code = read_reply(rr->s, "RCPT TO", rr->deadline, rr->err, rr->errlen);
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

#define RELAY_BATCH 50

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
    int code = read_reply(s, "MAIL FROM", rr->deadline, rr->err, rr->errlen);
    if (code < 0)
        return -1;
    if (code == 503)
        return out_of_sequence(rr, "MAIL FROM");
    if (code / 100 != 2) {
        char tmp[ERRLEN];
        relay_mail_refused(rr);
        for (size_t i = 0; i < first; i++)   /* drain the pipelined RCPT replies */
            if (read_reply(s, "RCPT TO", rr->deadline, tmp, sizeof tmp) < 0)
                return 1;
        return 1;
    }
    s->phase = SP_MAIL;
    if (relay_read_rcpts(rr, 0, first) < 0)
        return -1;
    for (size_t from = first; from < rr->n; from += step) {
        size_t to = from + step < rr->n ? from + step : rr->n;
        if (relay_envelope_send(rr, sender, size, from, to, false) < 0
            || relay_read_rcpts(rr, from, to) < 0)
            return -1;
    }
    return 0;
}

/*
 * Converts a chunk of the message to wire form: bare LF -> CRLF, a '.' at
 * line start doubled. *bol and *prev carry state across chunks.
 */
static size_t wire_convert(const char *in, size_t n, char *out, bool *bol, char *prev)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (ch == '\n') {
            if (*prev != '\r')
                out[o++] = '\r';
            out[o++] = '\n';
            *bol = true;
        } else {
            if (*bol && ch == '.')
                out[o++] = '.';
            out[o++] = ch;
            *bol = false;
        }
        *prev = ch;
    }
    return o;
}

#define RELAY_CHUNK 16384

static int relay_body(struct relay_run *rr, struct spool *msg)
{
    struct smtp_session *s = rr->s;
    char in[RELAY_CHUNK], out[2 * RELAY_CHUNK + 8];
    bool bol = true;
    char prev = '\0';
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
        size_t o = wire_convert(in, (size_t)n, out, &bol, &prev);
        if (send_raw(s, out, o, rr->deadline, rr->err, rr->errlen) < 0)
            return -1;
    }
    size_t o = 0;
    if (!bol) {
        if (prev != '\r')
            out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    o += 3;
    log_debug("%s %s > (message, %zu bytes) .", s->lmtp ? "lmtp" : "smtp", s->peer,
              spool_size(msg));
    return send_raw(s, out, o, rr->deadline, rr->err, rr->errlen);
}

/* DATA, body, then the end-of-data reply (one per accepted rcpt with LMTP). */
static int relay_data(struct relay_run *rr, struct spool *msg)
{
    struct smtp_session *s = rr->s;
    rr->data_sent = true;
    if (send_cmd(s, rr->deadline, rr->err, rr->errlen, "DATA") < 0)
        return -1;
    int code = read_reply(s, "DATA", rr->deadline, rr->err, rr->errlen);
    if (code < 0)
        return -1;
    if (code != 354) {
        if (code == 503 || (code / 100 != 4 && code / 100 != 5)) {
            set_error(rr->err, rr->errlen, "%s answered DATA with %d", s->peer, code);
            broken(s);
            return -1;
        }
        for (size_t i = 0; i < rr->n; i++)
            if (rr->accepted[i])
                rcpt_set_reply(rr, i);
        s->need_rset = true;
        return 0;
    }
    s->phase = SP_DATA;
    if (relay_body(rr, msg) < 0)
        return -1;
    bool have_reply = false;
    for (size_t i = 0; i < rr->n; i++) {
        if (!rr->accepted[i])
            continue;
        if (s->lmtp || !have_reply) {   /* SMTP: one reply covers every recipient */
            if (read_reply(s, "end of data", rr->deadline, rr->err, rr->errlen) < 0)
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

static int relay_check_args(const char *sender, const struct relay_rcpt *rcpts, size_t n,
                            char *err, size_t errlen)
{
    if (smtp_check_arg("sender", sender, false, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (smtp_check_arg("recipient", rcpts[i].addr, false, err, errlen) < 0)
            return -1;
    return 0;
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
    }
    if (relay_check_args(sender, rcpts, n, err, errlen) < 0) {
        fail_pending(rcpts, n, remote, err);
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
        fail_pending(rcpts, n, remote, err);
        broken(s);
        return rr.data_sent ? -1 : SMTP_RELAY_RETRYABLE;
    }
    return 0;
}

/* ------------------------------------------------------------ state */

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
        if (send_cmd(s, d, tmp, sizeof tmp, "QUIT") == 0)
            read_reply(s, "QUIT", d, tmp, sizeof tmp);
    }
    conn_close(s->c);
    free(s->rep.text);
    free(s);
}
