/*
 * util.c - clocks, checked allocation, error formatting, UTF-8 decoding and
 * escaping for display (see util.h).
 * Allocation failure is fatal: a mail filter that half-works on OOM is worse
 * than one that exits and lets the MTA's milter_default_action apply.
 * Must not: use log.h (log.c is built on this file), or return NULL from an
 * x*alloc.
 */
#include "util.h"

#include <limits.h>
#include <errno.h>
#include <poll.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int fd_wait_until(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = { .fd = fd, .events = events };
        int rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc > 0 ? 1 : rc;
    }
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void oom(void)
{
    static const char msg[] = "milter-nexthop: out of memory\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        oom();
    return d;
}

char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d)
        oom();
    return d;
}

void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

char *str_lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

void str_printable(char *dst, size_t n, const char *s)
{
    size_t i = 0;
    if (n == 0)
        return;
    for (; s && s[i] && i + 1 < n; i++)
        dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    dst[i] = '\0';
}

size_t utf8_decode(const unsigned char *p, uint32_t *cp)
{
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;   /* allowed range of the second byte */
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        *cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        *cp = p[0] & 0x0f;
        if (p[0] == 0xe0)
            lo = 0xa0;
        else if (p[0] == 0xed)
            hi = 0x9f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        *cp = p[0] & 0x07;
        if (p[0] == 0xf0)
            lo = 0x90;
        else if (p[0] == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3f);
    }
    return n;
}

bool unicode_is_deceptive(uint32_t cp)
{
    if (cp < 0x80)
        return false;
    return (cp >= 0x80 && cp <= 0xa0) || cp == 0xad || cp == 0x34f || cp == 0x61c ||
           cp == 0x115f || cp == 0x1160 || cp == 0x1680 || cp == 0x17b4 || cp == 0x17b5 ||
           (cp >= 0x180b && cp <= 0x180f) || (cp >= 0x2000 && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 ||
           cp == 0x3164 || (cp >= 0xfe00 && cp <= 0xfe0f) || cp == 0xfeff || cp == 0xffa0 ||
           (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
           (cp & 0xfffe) == 0xfffe || (cp >= 0xe0000 && cp <= 0xe0fff) ||
           /* the other format characters (Unicode category Cf) and the blank braille pattern */
           (cp >= 0x600 && cp <= 0x605) || cp == 0x6dd || cp == 0x70f || cp == 0x890 || cp == 0x891 ||
           cp == 0x8e2 || cp == 0x2800 || cp == 0x110bd || cp == 0x110cd ||
           (cp >= 0x13430 && cp <= 0x1343f) || (cp >= 0x1bca0 && cp <= 0x1bca3) ||
           (cp >= 0x1d173 && cp <= 0x1d17a);
}

void str_escape(char *dst, size_t n, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t used = 0;
    if (n == 0)
        return;
    while (*p) {
        if (*p >= 0x20 && *p < 0x7f) {   /* the common case: printable ASCII */
            if (used + 2 > n)
                break;
            dst[used++] = (char)*p++;
            continue;
        }
        char esc[8];
        const char *piece = (const char *)p;
        uint32_t cp;
        size_t len = utf8_decode(p, &cp), plen = len;
        if (len == 0 || cp < 0x20 || cp == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            piece = esc, plen = 4, len = 1;
        } else if (unicode_is_deceptive(cp)) {   /* \u202e, \ue0041 beyond the BMP */
            plen = (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            piece = esc;
        }
        if (used + plen + 1 > n)
            break;
        memcpy(dst + used, piece, plen);
        used += plen;
        p += len;
    }
    dst[used] = '\0';
}
