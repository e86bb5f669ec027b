/*
 * imap_client.h - one IMAP4rev1 client session, for AUTH lookups: connect,
 * implicit TLS or STARTTLS, greeting, CAPABILITY, then AUTHENTICATE PLAIN
 * (SASL-IR when offered) or LOGIN. Phases in enum imap_phase.
 *
 * Must not: log credentials, send an argument holding CR or LF, or log in
 * over plain text when TLS is enabled. rcpt/vrfy/expn are not IMAP
 * operations: they fail with "not supported by imap".
 */
#ifndef NEXTHOP_IMAP_CLIENT_H
#define NEXTHOP_IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "ops.h"

#define IMAP_UNTAGGED_MAX 100

enum imap_phase {
    IP_CONNECT = 0,     /* TCP/unix connect */
    IP_TLS_WRAP,        /* implicit TLS handshake */
    IP_GREETING,        /* waiting for "* OK" */
    IP_CAPABILITY,      /* CAPABILITY */
    IP_STARTTLS,        /* STARTTLS command */
    IP_TLS_UPGRADE,     /* handshake after STARTTLS, then CAPABILITY again */
    IP_READY,           /* not authenticated, in sync */
    IP_USER_AUTHED,     /* ran an AUTH lookup: LOGOUT and close */
    IP_BROKEN,          /* out of sync, timed out or closed: close */
};

struct imap_session;

/* Opens a session to r and runs it up to IP_READY (see smtp_open(): *down_why). */
struct imap_session *imap_open(const struct endpoint *r, int64_t deadline_ms,
                               const char **down_why, char *err, size_t errlen);

/* LOOKUP_AUTH: OK yes, NO no, BAD or anything else error. */
enum lookup_result imap_lookup(struct imap_session *s, enum lookup_kind kind, const char *arg,
                               const char *password, char *reply, size_t replylen,
                               int64_t deadline_ms, char *err, size_t errlen);

/* NOOP: 0 on OK, -1 (session broken) otherwise. */
int imap_noop(struct imap_session *s, int64_t deadline_ms, char *err, size_t errlen);

enum imap_phase imap_phase(const struct imap_session *s);
bool imap_reusable(const struct imap_session *s);
bool imap_idle_ok(struct imap_session *s);
/* LOGOUT when in sync (waiting briefly for the reply), then close. */
void imap_close(struct imap_session *s);

#endif
