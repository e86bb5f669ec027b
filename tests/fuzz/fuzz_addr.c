/*
 * fuzz_addr.c - libFuzzer target for addr_normalize() and
 * addr_normalize_rcpt() (common/base/addr.c), the gate between the bytes of
 * an SMTP client and everything else.
 *
 * Input: byte 0, bit 0 = allow_null, bit 1 = as a recipient
 * (addr_normalize_rcpt); the rest is the MTA's argument (cut at the first
 * NUL, as the milter protocol delivers it).
 * Oracles, besides ASan/UBSan: an accepted address holds no control byte,
 * is valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points
 * above U+10FFFF) without C1, bidi, zero-width or line-separator characters,
 * fits ADDR_MAX, has no '<', '>', space or tab outside a leading quoted
 * local part, escapes only printable ASCII with a backslash there, has a
 * lower-case ASCII domain, and normalizes to itself again; an accepted
 * recipient has a domain or is <Postmaster>. A refusal always says why.
 * Must not: depend on more than addr.c and util.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violated(const char *what, const char *raw, const char *out)
{
    fprintf(stderr, "fuzz_addr: %s\n  input:  \"%s\"\n  output: \"%s\"\n", what, raw, out);
    abort();
}

/* Strict RFC 3629 UTF-8 (also refuses C0/C1-style overlongs, surrogates, > U+10FFFF),
 * and none of the code points that make text display differently (written
 * out here, not taken from util.c, so the oracle does not share a bug). */
static bool strict_utf8(const unsigned char *p)
{
    while (*p) {
        unsigned c = *p, n, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
            (cp >= 0x200b && cp <= 0x200f) || cp == 0x2028 || cp == 0x2029)
            return false;
        p += n + 1;
    }
    return true;
}

/* Where the part after a leading quoted local part starts. */
static const char *after_quotes(const char *s)
{
    if (*s != '"')
        return s;
    for (const char *p = s + 1; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return s + strlen(s);
}

/* In a leading quoted local part, every backslash escapes printable ASCII. */
static bool quoted_pairs_ascii(const char *s)
{
    if (*s != '"')
        return true;
    for (const char *p = s + 1; *p && *p != '"'; p++)
        if (*p == '\\' && (*++p < 0x20 || *p > 0x7e))
            return false;
    return true;
}

static void check_accepted(const char *raw, const char *out, bool allow_null, bool rcpt)
{
    char again[ADDR_MAX + 1], err[ERRLEN];
    if (strlen(out) > ADDR_MAX)
        violated("longer than ADDR_MAX", raw, out);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            violated("control byte in an accepted address", raw, out);
    if (!strict_utf8((const unsigned char *)out))
        violated("invalid UTF-8 in an accepted address", raw, out);
    if (strpbrk(after_quotes(out), "<> \t"))
        violated("bracket or space outside quotes", raw, out);
    if (!quoted_pairs_ascii(out))
        violated("a quoted-pair escapes something else than printable ASCII", raw, out);
    const char *dom = addr_domain(out);
    if (*dom && (dom <= out || dom > out + strlen(out) || dom[-1] != '@'))
        violated("addr_domain() is not the part after an '@' of the address", raw, out);
    for (const char *p = dom; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            violated("domain not lower-cased", raw, out);
    if (rcpt && !*dom && strcasecmp(out, "postmaster") != 0)
        violated("a recipient without a domain that is not <Postmaster>", raw, out);
    if (addr_normalize(out, allow_null, again, sizeof again, err, sizeof err) < 0)
        violated("a normalized address is refused when normalized again", raw, out);
    if (strcmp(again, out) != 0)
        violated("normalizing twice changes the address", raw, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool allow_null = data[0] & 1, rcpt = data[0] & 2;
    char *raw = xstrndup((const char *)data + 1, size - 1);   /* stops at a NUL */
    char out[ADDR_MAX + 1], err[ERRLEN];
    memset(out, 0, sizeof out);
    err[0] = '\0';
    int rc = rcpt ? addr_normalize_rcpt(raw, out, sizeof out, err, sizeof err)
                  : addr_normalize(raw, allow_null, out, sizeof out, err, sizeof err);
    if (rc == 0)
        check_accepted(raw, out, allow_null && !rcpt, rcpt);
    else if (!*err)
        violated("refused without a reason", raw, "");
    /* a buffer that is too small must be refused, never overrun */
    char small[8];
    addr_normalize(raw, allow_null, small, sizeof small, err, sizeof err);
    free(raw);
    return 0;
}
