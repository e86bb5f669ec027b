/*
 * reply.c - SMTP replies as code, enhanced status code and text (reply.h).
 * Must not: know libmilter, or log.
 */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void reply_set(struct reply *r, int code, const char *xcode, const char *fmt, ...)
{
    va_list ap;
    r->code = code;
    snprintf(r->xcode, sizeof r->xcode, "%s", xcode ? xcode : "");
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
}

/* Length of an enhanced status code "D.D{1,3}.D{1,3}" at s (then a space or the end), else 0. */
static size_t xcode_length(const char *s)
{
    static const size_t most[3] = { 1, 3, 3 };
    size_t n = 0;
    for (int part = 0; part < 3; part++) {
        size_t digits = strspn(s + n, "0123456789");
        if (digits == 0 || digits > most[part])
            return 0;
        n += digits;
        if (part < 2 && s[n++] != '.')
            return 0;
    }
    return (s[n] == ' ' || s[n] == '\0') ? n : 0;
}

int reply_parse(struct reply *r, const char *line)
{
    memset(r, 0, sizeof *r);
    if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' || strspn(line, "0123456789") != 3 ||
        (line[3] != ' ' && line[3] != '\0'))
        return -1;
    r->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const char *p = line[3] ? line + 4 : line + 3;
    size_t x = xcode_length(p);
    if (x > 0 && x < sizeof r->xcode && *p == line[0]) {
        memcpy(r->xcode, p, x);
        r->xcode[x] = '\0';
        p += x;
        if (*p == ' ')
            p++;
    }
    snprintf(r->text, sizeof r->text, "%s", p);
    return 0;
}

void reply_format(const struct reply *r, char *buf, size_t len)
{
    snprintf(buf, len, "%d%s%s%s%s", r->code, *r->xcode ? " " : "", r->xcode, *r->text ? " " : "",
             r->text);
}

bool reply_is_temporary(const struct reply *r) { return r->code / 100 == 4; }
