/*
 * ops.h - what a session with a remote host can be asked to do, and how it
 * answers: lookups (RCPT probe, VRFY, EXPN, AUTH) and relayed recipients.
 * Shared by the protocol clients (net/) and everything above them.
 *
 * Must not: grow behaviour; these are the words, not the work.
 */
#ifndef NEXTHOP_OPS_H
#define NEXTHOP_OPS_H

#include <stdbool.h>

enum lookup_kind { LOOKUP_RCPT = 0, LOOKUP_VRFY, LOOKUP_EXPN, LOOKUP_AUTH };
/*
 * LOOKUP_UTF8_UNSUPPORTED: the address is not ASCII and the remote does
 * not offer SMTPUTF8 (RFC 6531), so it was not asked. Not an answer about
 * the user: never cached, and not "unknown" (553 5.6.7, not 550 5.1.1).
 */
enum lookup_result {
    LOOKUP_ERROR = -1,
    LOOKUP_NO = 0,
    LOOKUP_YES = 1,
    LOOKUP_UTF8_UNSUPPORTED = 2,
};

/* Parses "rcpt", "vrfy", "expn", "auth" (any case); -1 when unknown. */
int lookup_kind_parse(const char *name);
const char *lookup_kind_name(enum lookup_kind kind);

/* One recipient of a relayed transaction and its outcome. */
struct relay_rcpt {
    const char *addr;   /* normalized, without angle brackets */
    int code;           /* filled in: the SMTP/LMTP reply code for it */
    char reply[256];    /* filled in: the reply text (or our error) */
    bool ours;          /* filled in: reply is our own error, the next hop gave none */
};

#endif
