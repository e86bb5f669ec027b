/*
 * netstring.c - bounded netstring framing for the socketmap protocol
 * (netstring.h). Pure functions: no allocation, no I/O.
 * Must not: allocate, do I/O, or look inside the payload.
 */
#include "netstring.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* Digits of the largest length we accept (payloads are small here). */
#define LENGTH_DIGITS_MAX 8

enum netstring_status netstring_parse(const char *buf, size_t len, size_t max,
                                      const char **payload, size_t *plen, size_t *used,
                                      char *err, size_t errlen)
{
    size_t n = 0, digits = 0;
    while (digits < len && buf[digits] >= '0' && buf[digits] <= '9') {
        if (digits == LENGTH_DIGITS_MAX) {
            set_error(err, errlen, "netstring length has more than %d digits", LENGTH_DIGITS_MAX);
            return NETSTRING_ERROR;
        }
        n = n * 10 + (size_t)(buf[digits] - '0');
        digits++;
        if (n > max) {
            set_error(err, errlen, "netstring longer than %zu bytes", max);
            return NETSTRING_ERROR;
        }
    }
    if (digits > 1 && buf[0] == '0') {
        set_error(err, errlen, "netstring length has a leading zero");
        return NETSTRING_ERROR;
    }
    if (digits == len)
        return NETSTRING_MORE;
    if (digits == 0 || buf[digits] != ':') {
        set_error(err, errlen, "not a netstring: expected %s", digits ? "':'" : "a length");
        return NETSTRING_ERROR;
    }
    size_t frame = digits + 1 + n + 1;
    if (len < frame)
        return NETSTRING_MORE;
    if (buf[frame - 1] != ',') {
        set_error(err, errlen, "netstring does not end with ','");
        return NETSTRING_ERROR;
    }
    *payload = buf + digits + 1;
    *plen = n;
    *used = frame;
    return NETSTRING_OK;
}

long netstring_encode(const char *payload, size_t plen, char *out, size_t outlen)
{
    char head[24];
    int h = snprintf(head, sizeof head, "%zu:", plen);
    if (h < 0 || (size_t)h + plen + 1 > outlen)
        return -1;
    memcpy(out, head, (size_t)h);
    if (plen)
        memcpy(out + h, payload, plen);
    out[(size_t)h + plen] = ',';
    return (long)((size_t)h + plen + 1);
}
