/*
 * addr.c - envelope address normalization (see addr.h).
 * Written as a strict recognizer: it accepts only what it understands.
 * Must not: look a domain up in DNS, log, or pass on anything it did not
 * fully recognize.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define LOCAL_MAX 64
#define DOMAIN_MAX 255

static bool is_atext(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL || c >= 0x80;
}

/*
 * Valid UTF-8 without control bytes, and without the characters that make
 * a log line or a mail client show something else than the address holds:
 * C1 controls, bidi controls, zero-width characters, line separators.
 */
static bool valid_characters(const char *s, char *err, size_t errlen)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        size_t n = utf8_decode(p, &cp);
        if (n == 0 || cp < 0x20 || cp == 0x7f) {
            set_error(err, errlen, "address holds control bytes or invalid UTF-8");
            return false;
        }
        if (unicode_is_deceptive(cp)) {
            set_error(err, errlen, "address holds an invisible or direction-changing character "
                                   "(U+%04X)", (unsigned)cp);
            return false;
        }
        p += n;
    }
    return true;
}

/* Checks the local part [p, end): dot-atom or quoted string. */
static bool valid_local(const char *p, const char *end)
{
    if (end - p < 1 || end - p > LOCAL_MAX)
        return false;
    if (*p == '"') {
        if (end - p < 2 || end[-1] != '"')
            return false;
        for (const char *q = p + 1; q < end - 1; q++) {
            if (*q == '\\') {   /* quoted-pair: escapes printable ASCII only (RFC 5321) */
                if (++q >= end - 1 || (unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
                    return false;
            } else if (*q == '"') {
                return false;
            }
        }
        return true;
    }
    bool dot_ok = false;
    for (const char *q = p; q < end; q++) {
        if (*q == '.') {
            if (!dot_ok)
                return false;
            dot_ok = false;
        } else if (is_atext((unsigned char)*q)) {
            dot_ok = true;
        } else {
            return false;
        }
    }
    return dot_ok;   /* no trailing dot */
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3); the tag in any case. */
static bool valid_literal(const char *p, size_t len)
{
    char inner[64];
    struct in6_addr a6;
    struct in_addr a4;
    if (len < 3 || p[len - 1] != ']' || len - 2 >= sizeof inner)
        return false;
    memcpy(inner, p + 1, len - 2);
    inner[len - 2] = '\0';
    if (strncasecmp(inner, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, inner + 5, &a6) == 1;
    return inet_pton(AF_INET, inner, &a4) == 1;
}

static bool valid_domain(const char *p)
{
    size_t len = strlen(p);
    if (len < 1 || len > DOMAIN_MAX)
        return false;
    if (*p == '[')
        return valid_literal(p, len);
    size_t label = 0;
    for (const char *q = p; *q; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '.') {
            if (label == 0 || q[-1] == '-')
                return false;
            label = 0;
        } else if (isalnum(c) || c >= 0x80 || (c == '-' && label > 0) || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && p[len - 1] != '-';
}

/* Finds the '@' that separates local part and domain (outside quotes). */
static const char *find_at(const char *s)
{
    bool quoted = false;
    const char *at = NULL;
    for (const char *p = s; *p; p++) {
        if (quoted && *p == '\\' && p[1])
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '@')
            at = p;
    }
    return quoted ? NULL : at ? at : s + strlen(s);
}

int addr_normalize(const char *raw, bool allow_null, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    char buf[ADDR_MAX + 1];
    size_t len = raw ? strlen(raw) : 0;

    if (!raw || len > ADDR_MAX) {
        set_error(err, errlen, "address too long");
        return -1;
    }
    if (!valid_characters(raw, err, errlen))
        return -1;
    const char *p = raw, *end = raw + len;
    bool open = len > 0 && *p == '<', close = len > 0 && end[-1] == '>';
    if (open != close || (open && len < 2)) {
        set_error(err, errlen, "unbalanced angle brackets");
        return -1;
    }
    if (open) {
        p++;
        end--;
    }
    if (end == p) {
        if (!allow_null) {
            set_error(err, errlen, "null address not allowed here");
            return -1;
        }
        if (outlen)
            out[0] = '\0';
        return 0;
    }
    /* RFC 5321 source route "@a,@b:user@dom": accepted, ignored. */
    if (*p == '@') {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (!colon) {
            set_error(err, errlen, "bad source route");
            return -1;
        }
        p = colon + 1;
    }
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
    if (strpbrk(buf, "<> \t")) {
        const char *at = find_at(buf);
        bool in_quotes = at && buf[0] == '"' && strchr(buf + 1, '"') && at > strrchr(buf, '"');
        if (!in_quotes || strpbrk(at, "<> \t")) {
            set_error(err, errlen, "stray brackets or spaces in address");
            return -1;
        }
    }
    const char *at = find_at(buf);
    if (!at || !valid_local(buf, at)) {
        set_error(err, errlen, "bad local part");
        return -1;
    }
    if (*at == '@' && !valid_domain(at + 1)) {
        set_error(err, errlen, "bad domain");
        return -1;
    }
    if (strlen(buf) + 1 > outlen) {
        set_error(err, errlen, "address too long");
        return -1;
    }
    strcpy(out, buf);
    if (*at == '@')
        str_lower(out + (at - buf) + 1);   /* literals too: "[ipv6:...]" is still valid */
    return 0;
}

const char *addr_domain(const char *addr)
{
    const char *at = find_at(addr);
    return at && *at == '@' ? at + 1 : "";
}

bool addr_is_postmaster(const char *addr)
{
    return strcasecmp(addr, "postmaster") == 0;
}

int addr_normalize_rcpt(const char *raw, char *out, size_t outlen, char *err, size_t errlen)
{
    if (addr_normalize(raw, false, out, outlen, err, errlen) < 0)
        return -1;
    if (!*addr_domain(out) && !addr_is_postmaster(out)) {
        set_error(err, errlen, "recipient without a domain (only <Postmaster> may omit it)");
        return -1;
    }
    return 0;
}

bool addr_is_hostname(const char *s)
{
    size_t len = strlen(s);
    if (len < 1 || len > DOMAIN_MAX)
        return false;
    if (*s == '[')
        return valid_literal(s, len);
    for (const char *p = s; *p; p++)
        if (!isascii((unsigned char)*p) || !(isalnum((unsigned char)*p) || strchr(".-_", *p)))
            return false;
    return true;
}
