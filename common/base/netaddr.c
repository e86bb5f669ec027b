/*
 * netaddr.c - IPv4/IPv6 address and CIDR parsing and matching (netaddr.h).
 *
 * Parsing is inet_pton on a bounded stack copy; matching is a byte-wise
 * prefix compare on the 16-byte (IPv4-mapped) form.
 *
 * Must not: allocate (rule evaluation calls netaddr_parse per message),
 * or look up host names.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define ADDR_TEXT_MAX 64

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Copies s without brackets, "IPv6:" tag and zone into buf; -1 if too long. */
static int strip_decorations(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
        s += 5;
        n -= 5;
    }
    const char *zone = memchr(s, '%', n);
    if (zone)
        n = (size_t)(zone - s);
    if (n == 0 || n >= len)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

/* Plain address text (no decorations) to 16 bytes; sets *v4. */
static int parse_plain(const char *text, struct netaddr *out, bool *v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        memcpy(out->b, v4_mapped_prefix, sizeof v4_mapped_prefix);
        memcpy(out->b + 12, &a4, 4);
        *v4 = true;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->b) == 1) {
        *v4 = false;
        return 0;
    }
    return -1;
}

int netaddr_parse(const char *s, struct netaddr *out)
{
    char buf[ADDR_TEXT_MAX];
    bool v4;
    if (!s || strip_decorations(s, buf, sizeof buf) < 0)
        return -1;
    return parse_plain(buf, out, &v4);
}

/* Decimal 0..max, digits only; -1 otherwise. */
static int parse_prefix(const char *s, unsigned max)
{
    unsigned v = 0;
    if (!*s || strlen(s) > 3)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    return v <= max ? (int)v : -1;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static void mask_host_bits(struct netaddr *a, unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;
        if (bits < 8)
            a->b[i] &= (uint8_t)(0xff << (8 - bits));
    }
}

void netaddr_net_format(const struct netaddr_net *net, char *buf, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    if (net->v4)
        inet_ntop(AF_INET, net->addr.b + 12, text, sizeof text);
    else
        inet_ntop(AF_INET6, net->addr.b, text, sizeof text);
    snprintf(buf, len, "%s/%u", text, net->v4 ? net->prefix - 96 : net->prefix);
}

int netaddr_net_parse(const char *s, struct netaddr_net *out, char *err, size_t errlen)
{
    char buf[ADDR_TEXT_MAX];
    const char *slash = s ? strchr(s, '/') : NULL;
    size_t n = slash ? (size_t)(slash - s) : (s ? strlen(s) : 0);

    if (!s || n == 0 || n >= sizeof buf) {
        set_error(err, errlen, "'%s' is not an IP address or network", s ? s : "");
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (parse_plain(buf, &out->addr, &out->v4) < 0) {
        set_error(err, errlen, "'%s' is not an IP address or network", s);
        return -1;
    }
    out->prefix = 128;
    if (slash) {
        int p = parse_prefix(slash + 1, out->v4 ? 32 : 128);
        if (p < 0) {
            set_error(err, errlen, "'%s': bad prefix length (0-%d)", s, out->v4 ? 32 : 128);
            return -1;
        }
        out->prefix = (unsigned)p + (out->v4 ? 96 : 0);
    }
    struct netaddr masked = out->addr;
    mask_host_bits(&masked, out->prefix);
    if (memcmp(masked.b, out->addr.b, 16) != 0) {
        char want[80];
        out->addr = masked;
        netaddr_net_format(out, want, sizeof want);
        set_error(err, errlen, "'%s' has host bits set (did you mean %s?)", s, want);
        return -1;
    }
    return 0;
}

bool netaddr_net_contains(const struct netaddr_net *net, const struct netaddr *a)
{
    return prefix_equal(net->addr.b, a->b, net->prefix);
}
