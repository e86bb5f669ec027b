/*
 * route.h - end of message: pick the next hop and action of each
 * recipient, relay where asked, and say what must happen to the MTA's copy.
 *
 * Nothing is lost: a recipient counts as delivered only after the next hop
 * answered 2xx for it after the final dot; everything else stays in the
 * MTA's copy (or the whole copy is held, or the client is told to retry).
 *
 * Must not: know libmilter (eom.c turns the outcome into what milter/
 * applies), or count a recipient as delivered before its 2xx.
 */
#ifndef NEXTHOP_ROUTE_H
#define NEXTHOP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "lists.h"
#include "policy.h"
#include "reply.h"
#include "rules.h"

struct spool;
struct remote_set;

struct route_rcpt {
    char *raw;                     /* as the MTA gave it, for smfi_delrcpt */
    char addr[ADDR_MAX + 1];       /* normalized */
    bool unverified;               /* accepted at RCPT without a "yes" (session.rcpt.mode =
                                      report, on-error = accept): never given a next hop */
    const struct remote_def *hop;  /* NULL = left to the MTA (next-hop false) */
    enum routing_action action;
    int code;                      /* relay outcome: 0 not relayed, else SMTP code */
    struct reply reply;            /* relay outcome: the next hop's reply (or our error) */
    bool ours;                     /* reply is our own error: never shown to the client */
};

struct route_msg {
    struct route_rcpt *rcpts;
    size_t n;
    const char *sender;            /* normalized, "" for <> */
    const char *queue_id;
    struct spool *spool;           /* message as it will be relayed; NULL if not spooled */
};

enum route_outcome {
    /*
     * The MTA delivers what remains after the delivered recipients are
     * deleted from its copy. Never a discard, even when we delivered every
     * recipient we saw: Postfix's cleanup adds recipients of its own after
     * the milter saw RCPT (always_bcc, sender/recipient_bcc_maps), and a
     * discard would drop them; with none left, the MTA removes the copy.
     */
    ROUTE_CONTINUE = 0,
    ROUTE_QUARANTINE,     /* hold the MTA copy with reason */
    ROUTE_TEMPFAIL,       /* 451 to the client */
    ROUTE_REJECT,         /* every recipient refused for good: reply with the next hop's 5xx */
};

struct route_result {
    enum route_outcome outcome;
    char reason[512];        /* for quarantine and logs */
    struct reply reply;      /* for reject/tempfail, what the client is told: the first
                                failed recipient's reply from the next hop, or (when every
                                failure was ours) REQUEST_NEXTHOP_UNAVAILABLE */
    size_t delivered;        /* recipients delivered by relay */
};

/*
 * Evaluates queue.outbound.next-hop and routing.action for every recipient.
 * vars holds the message-level variables; rcpt/rcpt-domain are set per
 * recipient inside. <Postmaster> and unverified recipients get no next hop
 * (the MTA delivers them by its own route). Returns -1 if a rule's list
 * lookup failed (the rule still gave a value; err says which).
 */
int route_plan(const struct policy *pol, const struct list_env *env, const struct rule_vars *vars,
               struct route_msg *m, char *err, size_t errlen);
/* True when some recipient is to be relayed (the body must be spooled). */
bool route_needs_body(const struct route_msg *m);
/* True when some recipient's action is quarantine. */
bool route_wants_quarantine(const struct route_msg *m, char *reason, size_t len);

/*
 * Relays the message to each next hop with action relay, one transaction
 * per host, and decides the outcome by routing.on-tempfail.
 */
void route_relay(const struct policy *pol, struct remote_set *remotes, struct route_msg *m,
                 void (*progress)(void *), void *ctx, struct route_result *res);

#endif
