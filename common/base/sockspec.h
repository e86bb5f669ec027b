/*
 * sockspec.h - the spellings of a listening socket, parsed in one place:
 * the config loader checks milter.socket with it (FILE:LINE errors), -p is
 * checked with it, and the daemon's listeners bind what it returns.
 *
 * Unix: "unix:/path", "local:/path", "/path".
 * TCP: libmilter's "inet:PORT@HOST" / "inet6:PORT@HOST", "inet:PORT" (no
 * host: every interface), and Postfix's "inet:HOST:PORT", "HOST:PORT",
 * "[IPV6]:PORT" (with or without "inet:"/"inet6:").
 *
 * Must not: resolve a host name, or touch a socket.
 */
#ifndef NEXTHOP_SOCKSPEC_H
#define NEXTHOP_SOCKSPEC_H

#include <stdbool.h>
#include <stddef.h>

struct sockspec {
    bool is_unix;
    char path[108];      /* unix: the socket file */
    char host[256];      /* TCP: address or name without brackets; "" = every interface */
    char port[32];       /* TCP: as written */
};

/* Splits spec into its parts. Returns 0, or -1 with the reason in err. */
int sockspec_parse(const char *spec, struct sockspec *out, char *err, size_t errlen);

/*
 * The milter socket: spec in libmilter's own spelling ("unix:/path",
 * "inet:PORT@HOST", "inet6:PORT@HOST") into out, so Postfix's spelling
 * means what the admin meant. A TCP socket must name its address (libmilter
 * would bind every interface) and a numeric port. Returns 0, or -1 with
 * the reason in err.
 */
int sockspec_milter(const char *spec, char *out, size_t outlen, char *err, size_t errlen);

/*
 * The other listeners (socketmap.listen, stats.listen, the service
 * sockets): sockspec_parse(), and a TCP socket must name its address too
 * ("8896" alone would listen on every interface) and a numeric port.
 */
int sockspec_listen(const char *spec, struct sockspec *out, char *err, size_t errlen);

#endif
