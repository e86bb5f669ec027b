/*
 * duration.c - parse and format durations (see duration.h).
 * Overflow and trailing garbage are errors; nothing is guessed.
 * Must not: accept a negative, overflowing or unit-less combination.
 */
#include "duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static int64_t unit_ms(const char *u, size_t len)
{
    static const struct { const char *name; int64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        if (strlen(units[i].name) == len && strncmp(u, units[i].name, len) == 0)
            return units[i].ms;
    return -1;
}

int duration_parse(const char *s, int64_t *ms_r, char *err, size_t errlen)
{
    const char *p = s;
    int64_t total = 0;
    int parts = 0;

    if (!s || !*s) {
        set_error(err, errlen, "empty duration");
        return -1;
    }
    while (*p) {
        int64_t n = 0;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p)) {
            if (n > (INT64_MAX - 9) / 10)
                goto bad;
            n = n * 10 + (*p++ - '0');
        }
        const char *u = p;
        while (isalpha((unsigned char)*p))
            p++;
        int64_t mult = 1;
        if (p > u) {
            mult = unit_ms(u, (size_t)(p - u));
            if (mult < 0)
                goto bad;
        } else if (parts > 0 || *p) {
            goto bad;   /* a bare number only on its own */
        }
        if (n > INT64_MAX / mult || total > INT64_MAX - n * mult)
            goto bad;
        total += n * mult;
        parts++;
    }
    *ms_r = total;
    return 0;
bad:
    set_error(err, errlen, "bad duration '%s' (use d, h, m, s, ms, e.g. \"1h30m\", or a number of milliseconds)", s);
    return -1;
}

void duration_format(int64_t ms, char *buf, size_t len)
{
    static const struct { const char *name; int64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        if (ms > 0 && ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].name);
            return;
        }
    snprintf(buf, len, "%lldms", (long long)ms);
}
