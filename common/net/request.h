/*
 * request.h - what a caller may ask of a protocol session, checked in one
 * place: the arguments every lookup and relay passes before any client
 * writes them, the time limit no wait may exceed, and the replies we make
 * up ourselves when a relay fails before the next hop answered
 * ("451 4.4.2 next hop <id>: <why>").
 *
 * Used by the protocol clients (net/), the pool (remote/pool.c) and the
 * relay outcome (policy/route.c) alike, so a limit or a text changes here
 * and nowhere else.
 *
 * Must not: do I/O, or quote a secret in an error (a password is named,
 * never shown).
 */
#ifndef NEXTHOP_REQUEST_H
#define NEXTHOP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "ops.h"

/* No single wait (connect, reply, write), and no lookup as a whole, lasts
 * longer: Postfix gives a milter 30 s per command. */
#define NET_WAIT_MAX_MS 25000
/* Longest address or user name we send. */
#define NET_ARG_MAX 900

/*
 * One argument: non-NULL, at most NET_ARG_MAX bytes, no CR or LF, and
 * (unless is_secret) no other control byte. Returns 0, or -1 with err
 * naming `what` (never quoting the value).
 */
int request_check_arg(const char *what, const char *arg, bool is_secret, char *err,
                      size_t errlen);

/* A lookup of kind on a remote speaking proto: kind known and supported by
 * proto, arg (address or user name) and, for auth, the password. */
int request_check_lookup(enum remote_proto proto, enum lookup_kind kind, const char *arg,
                         const char *password, char *err, size_t errlen);

/* A relay: proto can relay, the sender and every recipient are sendable. */
int request_check_relay(enum remote_proto proto, const char *sender,
                        const struct relay_rcpt *rcpts, size_t n, char *err, size_t errlen);

/* Deadline of one wait on ep: its timeout (at most NET_WAIT_MAX_MS) from
 * now, within the caller's deadline. */
int64_t request_step_deadline(const struct endpoint *ep, int64_t deadline_ms);
/* Deadline of one lookup on ep as a whole, from now. */
int64_t request_lookup_deadline(const struct endpoint *ep);

/* True when s holds a byte that is not ASCII (it needs SMTPUTF8). */
bool request_needs_smtputf8(const char *s);
/* Our own reply for LOOKUP_UTF8_UNSUPPORTED. */
#define REQUEST_UTF8_REPLY "553 5.6.7 non-ASCII address not supported by the mail store"

/* Our own reply for a relay that failed before the next hop answered:
 * "451 4.4.2 next hop <remote>: <why>", for our log and the hold reason
 * only: it names the next hop's address and our error. */
void request_nexthop_failure(char *out, size_t outlen, const char *remote, const char *why);
/* What the MTA's client is told instead when every failure was ours: no
 * internal address, no error of ours (those stay in the log line). */
#define REQUEST_NEXTHOP_UNAVAILABLE "451 4.4.2 Next hop temporarily unavailable, try again later"
/* Every recipient still without a code (0) gets that reply, code 451 and ours. */
void request_fail_pending(struct relay_rcpt *rcpts, size_t n, const char *remote,
                          const char *why);
/* Every recipient gets it, whatever it had. */
void request_fail_all(struct relay_rcpt *rcpts, size_t n, const char *remote, const char *why);

#endif
