/*
 * endpoint.h - how to reach one remote host and speak to it: address,
 * port, protocol, TLS settings, the deadline for connecting and the
 * credentials the milter logs in with. Plain data: the config loader fills
 * it from remote.<id>.*, the protocol clients read it.
 *
 * Must not: hold runtime state (connections live in remote/pool.c), or be
 * printed whole (auth_secret is a secret).
 */
#ifndef NEXTHOP_ENDPOINT_H
#define NEXTHOP_ENDPOINT_H

#include <stdbool.h>
#include <stdint.h>

enum remote_proto { PROTO_SMTP = 0, PROTO_LMTP, PROTO_IMAP };

struct endpoint {
    const char *name;         /* the remote's id, for messages; not owned */
    char *address;            /* host name, IP literal or "unix:/path" */
    int port;
    enum remote_proto protocol;
    int64_t timeout_ms;       /* connect limit; command limits derive from it */
    bool tls_enable, tls_implicit, tls_allow_invalid;
    char *tls_server_name;    /* SNI / verify name; defaults to address (required for unix:) */
    char *tls_ca_file;        /* PEM bundle trusted instead of the system store, or NULL */
    char *tls_ca_pem;         /* its text, read at load (before privileges are dropped) */
    char *auth_username;
    char *auth_secret;        /* never logged */
};

/* "smtp", "lmtp", "imap". */
const char *remote_proto_name(enum remote_proto p);

#endif
