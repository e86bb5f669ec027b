/*
 * message.h - one message through the filter, from MAIL FROM to the end
 * of the message, step by step as the MTA reports it:
 *
 *   message_begin   MAIL FROM: the sender (a bad one: 501 5.1.7, here or
 *                   at each RCPT) and the ESMTP parameters (MT-PRIORITY)
 *   message_rcpt    RCPT TO: the answer of rcpt.c; accepted ones are kept
 *   message_header  \
 *   message_eoh      > the content: once every recipient is known the next
 *   message_body    /  hops are planned (route.c); when a recipient will be
 *                      relayed the content is spooled, behind our Received:
 *                      line and without the client's routing headers
 *   message_eom     end of message: eom.c's result
 *
 * The caller (milter/callbacks.c) applies each answer and result to the
 * MTA and logs their lines; the message logs only what happens between
 * the answers (a failed spool write, a rule lookup that failed while
 * planning). A message made without a policy (no config loaded) answers
 * every RCPT with 451 4.3.0 and leaves the content alone; so does a NULL
 * message.
 *
 * Must not: know libmilter, or outlive the policy and remote set it was
 * begun with (the caller holds them, e.g. by a runtime reference).
 */
#ifndef NEXTHOP_MESSAGE_H
#define NEXTHOP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "eom.h"
#include "policy.h"
#include "reply.h"

struct remote_set;

/* The SMTP client as the MTA describes it at connect and HELO (printable text, "" = unknown). */
struct client_info {
    char remote_ip[46];    /* INET6_ADDRSTRLEN */
    char local_ip[46];
    char helo[256];
    char listener[64];     /* the MTA daemon's name ({daemon_name}) */
};

struct message;

/*
 * MAIL FROM with args (the sender path, then the ESMTP parameters,
 * NULL-terminated), auth the authenticated user ("" = none). pol NULL:
 * no config is loaded. client must outlive the message. *out is the
 * answer to MAIL FROM.
 */
struct message *message_begin(const struct policy *pol, struct remote_set *remotes,
                              const struct client_info *client, char **args, const char *auth,
                              struct answer *out);

/* The MTA's queue id, once known (the first one given sticks); "-" until then. */
void message_set_queue_id(struct message *m, const char *queue_id);
const char *message_queue_id(const struct message *m);

/* RCPT TO with args (the recipient path, then the ESMTP parameters). */
void message_rcpt(struct message *m, char **args, struct answer *out);

void message_header(struct message *m, const char *name, const char *value);
void message_eoh(struct message *m);
void message_body(struct message *m, const void *chunk, size_t len);

/*
 * End of message (relays now, calling progress(ctx) while the next hop
 * works). The result stays valid until message_free().
 */
const struct eom_result *message_eom(struct message *m, void (*progress)(void *), void *ctx);

void message_free(struct message *m);

#endif
