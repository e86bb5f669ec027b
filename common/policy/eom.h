/*
 * eom.h - end of message: from the planned recipients to everything the
 * MTA must be told, as data the milter applies one for one:
 *
 *   remove   every copy of routing.header the client sent, on every path
 *            (no next hop, header, relay, quarantine, tempfail, reject),
 *            so nothing downstream can be handed a next hop by the client
 *   add      routing.header: <id>, once per next hop with action header
 *   rcpts    per recipient the relay's reply (code 0: not relayed) and
 *            whether to delete it from the MTA's copy (delivered by us);
 *            the copy itself is never discarded, as it may hold recipients
 *            the MTA added after RCPT (Postfix's always_bcc, bcc maps)
 *   quarantine  the reason to hold the MTA's copy with ("" = none)
 *   reply    the message-level reply: a permanent refusal of every relayed
 *            recipient rejects with the next hop's reply; a failure under
 *            routing.on-tempfail = tempfail answers 451 4.4.2
 *   outcome  continue | quarantine | tempfail | reject, and the
 *            `eom:` line to log
 * Relaying itself happens here (route_relay()), while the MTA waits.
 *
 * Must not: know libmilter, or log (the caller logs the result's line;
 * route.c logs each relayed recipient).
 */
#ifndef NEXTHOP_EOM_H
#define NEXTHOP_EOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "policy.h"
#include "reply.h"
#include "route.h"

struct remote_set;

struct header_removal {
    const char *name;
    int index;           /* 1 = the first header of that name; apply in the order given */
};

struct header_addition {
    const char *name, *value;
};

struct eom_rcpt {
    const char *raw;           /* as the MTA gave it (for the MTA's delete) */
    const char *addr;          /* normalized */
    int code;                  /* the relay's code; 0 = not relayed */
    struct reply reply;        /* the relay's reply */
    bool delete_from_mta;      /* delivered by us: remove it from the MTA's copy */
};

struct eom_result {
    struct header_removal *remove;
    size_t n_remove;
    struct header_addition *add;
    size_t n_add;
    struct eom_rcpt *rcpts;
    size_t n_rcpts;
    const char *received;      /* the Received: line spooled in front of a relayed copy ("" = none) */
    char quarantine[512];      /* "" = none */
    struct reply reply;        /* code 0: none (the MTA carries on, or discards) */
    size_t delivered;          /* recipients delivered by relay */
    const char *outcome;       /* for the log: continue, discard, quarantine, tempfail, reject */
    enum log_level log_level;
    char log[1024];            /* "" = nothing to log */
};

/* What the message brings to its end. */
struct eom_input {
    struct route_msg *msg;         /* planned recipients (relay outcomes are filled in) */
    int routing_headers;           /* copies of routing.header the client sent */
    bool spool_failed;             /* the copy to relay could not be stored */
    int64_t started_ms;            /* now_ms() at MAIL FROM, for the log */
    const char *received;          /* the Received: line spooled, or "" */
};

/*
 * Decides the end of message for in, relaying where the plan says so
 * (progress(ctx) is called while the next hop works). out is cleared
 * first; free it with eom_result_clear().
 */
void eom_decide(const struct policy *pol, struct remote_set *remotes, const struct eom_input *in,
                void (*progress)(void *), void *ctx, struct eom_result *out);

void eom_result_clear(struct eom_result *r);

#endif
