/*
 * nexthop_map.h - the answers of the socketmap service: what the
 * queue.outbound.next-hop rule decides for a recipient or a domain, spelled
 * as a Postfix transport (transport_maps) or a Sendmail mailertable value.
 *
 * Requests are socketmap payloads "<map> <key>":
 *   map "nexthop"      Postfix transport:  lmtp:inet:HOST:PORT, lmtp:unix:/PATH,
 *                                          smtp:[HOST]:PORT
 *   map "mailertable"  Sendmail mailer:host  nexthop_<remote id>:[HOST]
 *                      (the port and protocol live in that mailer's definition,
 *                      since a mailertable value cannot carry a port)
 * A key holding '@' sets the rule variables rcpt and rcpt-domain; a bare
 * domain sets rcpt-domain only. Replies: "OK <value>", "NOTFOUND " (next hop
 * false, or a key that is no address or domain: ".domain", "*"),
 * "TEMP <why>" (a list lookup failed, or the next hop has no spelling for
 * that MTA), "PERM <why>" (unknown map, malformed request).
 *
 * Must not: touch sockets or log (socketmap.c does both); the value
 * functions are pure.
 */
#ifndef NEXTHOP_NEXTHOP_MAP_H
#define NEXTHOP_NEXTHOP_MAP_H

#include <stddef.h>

#include "addr.h"
#include "lists.h"
#include "policy.h"
#include "remote.h"
#include "rules.h"

#define NEXTHOP_MAP_REQUEST_MAX 10000   /* payload bytes of one request */
#define NEXTHOP_MAP_REPLY_MAX 1024      /* payload bytes of one reply */

enum nexthop_map_kind { NEXTHOP_MAP_POSTFIX = 0, NEXTHOP_MAP_SENDMAIL };

/* Postfix transport value for next hop r. -1 with err when it has none. */
int nexthop_postfix_transport(const struct remote_def *r, char *out, size_t outlen, char *err,
                              size_t errlen);

/* Sendmail mailertable value for next hop r. -1 with err when it has none. */
int nexthop_sendmail_mailertable(const struct remote_def *r, char *out, size_t outlen, char *err,
                                 size_t errlen);

/* The Sendmail mailer that must be defined for remote id ("nexthop_<id>"). */
void nexthop_sendmail_mailer_name(const char *remote_id, char *out, size_t outlen);

/*
 * Splits payload req (len bytes) into map kind and key (copied, NUL-
 * terminated). Returns 0; 1 when the key does not fit in keylen (no address
 * or domain is that long: answered NOTFOUND); -1 with err for a malformed
 * request or an unknown map (both answered PERM).
 */
int nexthop_request_parse(const char *req, size_t len, enum nexthop_map_kind *kind, char *key,
                          size_t keylen, char *err, size_t errlen);

/*
 * Sets RV_RCPT/RV_RCPT_DOMAIN of vars from key; addr (ADDR_MAX + 1 bytes)
 * holds the normalized address they point into. Returns 0, or -1 when key is
 * neither an address nor a domain (answered NOTFOUND).
 */
int nexthop_key_vars(const char *key, char addr[ADDR_MAX + 1], struct rule_vars *vars);

/*
 * The reply payload (NUL-terminated) to request payload req. Evaluates
 * pol->next_hop, which may ask a list (and through it, with env, a remote host).
 */
void nexthop_map_answer(const struct policy *pol, const struct list_env *env, const char *req,
                        size_t len, char *reply, size_t replylen);

#endif
