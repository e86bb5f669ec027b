/*
 * fuzz_wire.c - libFuzzer target for the parsers behind the milter's own
 * listeners, which read bytes from local clients: the saslauthd protocol of
 * the auth-service (common/base/saslauthd.c) and the netstrings and requests of
 * the socketmap service (common/base/netstring.c, nexthop_map.c).
 *
 * Input: byte 0 picks the parser (mod 4): saslauthd request, saslauthd
 * reply, netstring, socketmap request; the rest is the bytes on the wire.
 * Oracles, besides ASan/UBSan: a parsed saslauthd request has a non-empty
 * login without control bytes and a password without CR/LF, formats back to
 * the same bytes, and every shorter prefix of it asks for more; a parsed
 * netstring lies inside the input and encodes back to the same bytes; a
 * socketmap key is a terminated string that fits its buffer.
 * Must not: do I/O.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "netstring.h"
#include "nexthop_map.h"
#include "rules.h"
#include "saslauthd.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violated(const char *what)
{
    fprintf(stderr, "fuzz_wire: %s\n", what);
    abort();
}

static void sasl_request(const unsigned char *buf, size_t len)
{
    static struct saslauthd_request req, again;
    static unsigned char out[SASLAUTHD_REQUEST_MAX + 16];
    char err[ERRLEN];
    ssize_t used = saslauthd_parse_request(buf, len, &req, err, sizeof err);
    if (used < 0 || used == 0)
        return;
    if ((size_t)used > len)
        violated("saslauthd: used more bytes than given");
    if (!req.login[0])
        violated("saslauthd: empty login accepted");
    for (const unsigned char *p = (const unsigned char *)req.login; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            violated("saslauthd: control byte in an accepted login");
    if (strpbrk(req.password, "\r\n"))
        violated("saslauthd: CR or LF in an accepted password");
    ssize_t n = saslauthd_format_request(req.login, req.password, req.service, req.realm, out,
                                         sizeof out);
    if (n != used || memcmp(out, buf, (size_t)n) != 0)
        violated("saslauthd: a parsed request does not format back to its bytes");
    for (size_t k = 0; k < (size_t)used; k += 1 + k / 4)
        if (saslauthd_parse_request(buf, k, &again, err, sizeof err) != 0)
            violated("saslauthd: a prefix of a valid request did not ask for more");
    char user[ADDR_MAX + 1];
    saslauthd_user(&req, user, sizeof user);
    saslauthd_request_clear(&req);
}

static void sasl_reply(const unsigned char *buf, size_t len)
{
    char text[600];
    memset(text, 'x', sizeof text);
    int rc = saslauthd_parse_reply(buf, len, text, sizeof text);
    if (rc >= 0 && !memchr(text, '\0', sizeof text))
        violated("saslauthd: reply text not terminated");
    unsigned char out[700];
    saslauthd_format_reply(len & 1, len ? (const char *)"reason" : NULL, out, sizeof out);
}

static void netstring(const char *buf, size_t len)
{
    const char *payload;
    size_t plen, used;
    char err[ERRLEN], out[1100];
    size_t max = 1000;
    if (netstring_parse(buf, len, max, &payload, &plen, &used, err, sizeof err) != NETSTRING_OK)
        return;
    if (used > len || plen > max || payload < buf || payload + plen > buf + used)
        violated("netstring: frame outside the input");
    long n = netstring_encode(payload, plen, out, sizeof out);
    if (n != (long)used || memcmp(out, buf, used) != 0)
        violated("netstring: a parsed frame does not encode back to its bytes");
}

static void socketmap(const char *buf, size_t len)
{
    enum nexthop_map_kind kind;
    char key[ADDR_MAX + 1], err[ERRLEN], addr[ADDR_MAX + 1];
    memset(key, 'x', sizeof key);
    if (nexthop_request_parse(buf, len, &kind, key, sizeof key, err, sizeof err) != 0)
        return;
    if (!memchr(key, '\0', sizeof key))
        violated("socketmap: key not terminated");
    struct rule_vars vars;
    memset(&vars, 0, sizeof vars);
    nexthop_key_vars(key, addr, &vars);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* a private copy of exactly the input, so ASan sees any over-read */
    size_t len = size - 1;
    char *buf = xmalloc(len ? len : 1);
    memcpy(buf, data + 1, len);
    switch (data[0] & 3) {
    case 0: sasl_request((const unsigned char *)buf, len); break;
    case 1: sasl_reply((const unsigned char *)buf, len); break;
    case 2: netstring(buf, len); break;
    default: socketmap(buf, len); break;
    }
    free(buf);
    return 0;
}
