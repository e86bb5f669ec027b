/*
 * smtp_reply.c - one SMTP/LMTP reply, checked and bounded line by line
 * (smtp_reply.h).
 *
 * Must not: do I/O, or show a redacted reply's text.
 */
#include "smtp_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "sasl_client.h"
#include "util.h"

void smtp_reply_start(struct smtp_reply *rep, bool redacted)
{
    rep->code = 0;
    rep->nlines = 0;
    rep->len = 0;
    if (rep->text)
        rep->text[0] = '\0';
    rep->redacted = redacted;
}

static void append(struct smtp_reply *rep, const char *line, size_t n)
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

static bool line_ok(const char *line, size_t n, int first_code, int *code)
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

enum smtp_reply_status smtp_reply_add(struct smtp_reply *rep, const char *line, size_t n)
{
    int code = 0;
    if (!line_ok(line, n, rep->code, &code))
        return SMTP_REPLY_GARBAGE;
    if (++rep->nlines > SMTP_REPLY_LINES)
        return SMTP_REPLY_TOO_LONG;
    rep->code = code;
    append(rep, line, n);
    return n == 3 || line[3] == ' ' ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

void smtp_reply_summary(const struct smtp_reply *rep, char *out, size_t n)
{
    const char *p = rep->len ? rep->text : NULL;
    size_t o = 0;
    if (n == 0)
        return;
    out[0] = '\0';
    if (rep->redacted && p) {
        /* A reply during AUTH may echo what we sent: keep "535 5.7.8" only. */
        size_t keep = strspn(p, "0123456789");
        if (p[keep] == ' ' || p[keep] == '-')
            keep += 1 + strspn(p + keep + 1, "0123456789.");
        while (keep > 0 && (p[keep - 1] == ' ' || p[keep - 1] == '-'))
            keep--;
        snprintf(out, n, "%.*s (text not shown)", (int)keep, p);
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

void smtp_reply_line_text(const struct smtp_reply *rep, int idx, char *out, size_t n)
{
    const char *p = rep->len ? rep->text : NULL;
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
    if (len > 4)
        snprintf(out, n, "%.*s", (int)(len - 4), p + 4);
}

void smtp_reply_free(struct smtp_reply *rep)
{
    if (rep->text)
        explicit_bzero(rep->text, rep->cap);   /* replies during AUTH may echo secrets */
    free(rep->text);
    memset(rep, 0, sizeof *rep);
}

static bool keyword_is(const char *kw, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(kw, name, n) == 0 && (kw[n] == '\0' || kw[n] == ' ' || kw[n] == '=');
}

void smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *caps)
{
    memset(caps, 0, sizeof *caps);
    for (int i = 1; i < ehlo->nlines; i++) {
        char kw[CONN_LINE_MAX + 1];
        smtp_reply_line_text(ehlo, i, kw, sizeof kw);
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
            caps->mechs |= sasl_mechs_parse(kw + 4);
    }
}
