/*
 * sockspec.c - parse the spelling of a listening socket (see sockspec.h).
 * Must not: resolve names, bind, or guess: a spelling that could mean two
 * things is an error that says which form to write.
 */
#include "sockspec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *unix_path(const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0)
        return spec + 5;
    if (strncmp(spec, "local:", 6) == 0)
        return spec + 6;
    return spec[0] == '/' ? spec : NULL;
}

static int copy_part(char *dst, size_t dlen, const char *src, size_t n)
{
    if (n >= dlen)
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* "PORT@HOST", "PORT", "HOST:PORT", "[V6]:PORT" -> host and port. */
static int inet_parts(const char *s, struct sockspec *out)
{
    const char *at = strchr(s, '@');
    if (at || !strchr(s, ':')) {   /* libmilter's PORT@HOST */
        size_t n = at ? (size_t)(at - s) : strlen(s);
        if (n == 0 || copy_part(out->port, sizeof out->port, s, n) < 0 ||
            copy_part(out->host, sizeof out->host, at ? at + 1 : "", at ? strlen(at + 1) : 0) < 0)
            return -1;
    } else {
        const char *colon = strrchr(s, ':'), *h = s;
        size_t n = (size_t)(colon - s);
        if (*h == '[') {
            if (n < 2 || colon[-1] != ']')
                return -1;
            h++;
            n -= 2;
        } else if (memchr(s, ':', n)) {
            return -1;   /* an IPv6 address without brackets: where does the port start? */
        }
        if (!colon[1] || copy_part(out->host, sizeof out->host, h, n) < 0 ||
            copy_part(out->port, sizeof out->port, colon + 1, strlen(colon + 1)) < 0)
            return -1;
    }
    size_t hl = strlen(out->host);
    if (hl >= 2 && out->host[0] == '[' && out->host[hl - 1] == ']') {   /* inet6:PORT@[::1] */
        memmove(out->host, out->host + 1, hl - 2);
        out->host[hl - 2] = '\0';
    }
    return 0;
}

int sockspec_parse(const char *spec, struct sockspec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *path = unix_path(spec);
    if (path) {
        out->is_unix = true;
        if (!*path || copy_part(out->path, sizeof out->path, path, strlen(path)) < 0) {
            set_error(err, errlen, "socket path '%s' is empty or longer than %zu bytes", path,
                      sizeof out->path - 1);
            return -1;
        }
        return 0;
    }
    const char *s = spec;
    if (strncmp(s, "inet:", 5) == 0)
        s += 5;
    else if (strncmp(s, "inet6:", 6) == 0)
        s += 6;
    if (inet_parts(s, out) < 0) {
        set_error(err, errlen, "'%s' is neither unix:/path nor inet:PORT@ADDRESS (nor ADDRESS:PORT, "
                  "[IPV6]:PORT)", spec);
        return -1;
    }
    return 0;
}

static bool numeric_port(const char *p)
{
    char *end;
    long v = strtol(p, &end, 10);
    return *p >= '0' && *p <= '9' && *end == '\0' && v >= 1 && v <= 65535;
}

/* A host libmilter takes as the admin meant: an address, or a plain name. */
static bool plain_host(const char *h)
{
    return *h && strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(h);
}

int sockspec_listen(const char *spec, struct sockspec *out, char *err, size_t errlen)
{
    if (sockspec_parse(spec, out, err, errlen) < 0)
        return -1;
    if (out->is_unix)
        return 0;
    if (!*out->host) {
        set_error(err, errlen, "'%s' names no address, so it would listen on every interface: "
                  "write 127.0.0.1:%s (or 0.0.0.0:%s if every interface is really meant)",
                  spec, out->port, out->port);
        return -1;
    }
    if (!numeric_port(out->port)) {
        set_error(err, errlen, "'%s': port '%s' is not a number from 1 to 65535", spec, out->port);
        return -1;
    }
    return 0;
}

int sockspec_milter(const char *spec, char *out, size_t outlen, char *err, size_t errlen)
{
    struct sockspec ss;
    struct in6_addr a6;
    if (sockspec_parse(spec, &ss, err, errlen) < 0)
        return -1;
    if (ss.is_unix) {
        snprintf(out, outlen, "unix:%s", ss.path);
        return 0;
    }
    if (!*ss.host) {
        set_error(err, errlen, "'%s' names no address, so libmilter would listen on every interface: "
                  "write inet:%s@127.0.0.1 (or inet:%s@0.0.0.0 if every interface is really meant)",
                  spec, ss.port, ss.port);
        return -1;
    }
    if (!numeric_port(ss.port)) {
        set_error(err, errlen, "'%s': port '%s' is not a number from 1 to 65535", spec, ss.port);
        return -1;
    }
    bool v6 = inet_pton(AF_INET6, ss.host, &a6) == 1;
    if (!v6 && !plain_host(ss.host)) {
        set_error(err, errlen, "'%s': '%s' is not an address or host name", spec, ss.host);
        return -1;
    }
    if (strncmp(spec, "inet6:", 6) == 0 && !v6) {
        set_error(err, errlen, "'%s': inet6 needs an IPv6 address, not '%s'", spec, ss.host);
        return -1;
    }
    int n = snprintf(out, outlen, "%s:%s@%s", v6 ? "inet6" : "inet", ss.port, ss.host);
    if (n < 0 || (size_t)n >= outlen) {
        set_error(err, errlen, "'%s' is too long", spec);
        return -1;
    }
    return 0;
}
