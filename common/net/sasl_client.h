/*
 * sasl_client.h - the client side of SASL (RFC 4422) for SMTP AUTH and
 * IMAP AUTHENTICATE, from GNU SASL (libgsasl): picks the strongest
 * mechanism both sides know (SCRAM-SHA-256, CRAM-MD5, PLAIN, LOGIN) and
 * turns each base64 challenge into the base64 response.
 *
 * It also says whether the mechanism itself completed: a SCRAM client
 * completes only after it verified the server's signature (RFC 5802,
 * "v="), so a server that answers "235"/"OK" without proving that it knows
 * the password, or with a wrong proof, is caught by the caller.
 *
 * Must not: do I/O, log or keep a payload, or free a buffer that held a
 * password or a response without wiping it.
 */
#ifndef NEXTHOP_SASL_CLIENT_H
#define NEXTHOP_SASL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* Mechanisms we use, as bits; a higher bit is a stronger mechanism. */
enum {
    SASL_MECH_LOGIN = 1,
    SASL_MECH_PLAIN = 2,
    SASL_MECH_CRAM_MD5 = 4,
    SASL_MECH_SCRAM_SHA256 = 8,
};

/* Names separated by spaces (or '=', as in "AUTH=PLAIN LOGIN") -> bits. */
unsigned sasl_mechs_parse(const char *list);
/* The strongest of the offered bits that the library supports; 0: none. */
unsigned sasl_mech_pick(unsigned offered);
const char *sasl_mech_name(unsigned mech);
/* True for a mechanism whose client speaks first (PLAIN, SCRAM-SHA-256):
 * its first response may go with the command (SMTP AUTH, IMAP SASL-IR). */
bool sasl_mech_client_first(unsigned mech);

enum sasl_step_result {
    SASL_STEP_MORE = 1,         /* send *out; the mechanism expects more */
    SASL_STEP_DONE = 0,         /* send *out; the mechanism is complete */
};

struct sasl_client;

/* A client for one exchange as user with pass; NULL with err. */
struct sasl_client *sasl_client_start(unsigned mech, const char *user, const char *pass,
                                      char *err, size_t errlen);
/*
 * One step: in is the server's base64 challenge ("" for an empty one;
 * NULL for the initial response of a client-first mechanism). *out gets
 * the base64 response to send (malloc'd, possibly ""; free it with
 * sasl_free_secret()). Returns enum sasl_step_result, or -1 with err when
 * the challenge is malformed or the server failed to prove itself.
 */
int sasl_client_step(struct sasl_client *c, const char *in, char **out, char *err,
                     size_t errlen);
/* True once the mechanism completed (SCRAM: the server signature checked). */
bool sasl_client_done(const struct sasl_client *c);
void sasl_client_free(struct sasl_client *c);

/* Wipes and frees a string that held a response or a password. */
void sasl_free_secret(char *s);

#endif
