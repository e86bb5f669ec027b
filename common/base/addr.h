/*
 * addr.h - envelope address normalization, the gate between bytes from an
 * SMTP client and everything else.
 *
 * Accepts what RFC 5321 (and SMTPUTF8) allows in a path: optional angle
 * brackets (balanced), an optional source route (dropped), a dot-atom or
 * quoted local part, a domain or address literal. The domain is lower-cased;
 * the local part is kept as given. Anything else - CR, LF, NUL, control
 * bytes, unbalanced brackets, invalid UTF-8, over-long parts - is refused,
 * so nothing hostile ever reaches a remote host or a log line.
 */
#ifndef NEXTHOP_ADDR_H
#define NEXTHOP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_MAX 256   /* RFC 5321 path limit, brackets included */

/*
 * raw: the MTA's argument, e.g. "<Alice@Example.ORG>". out receives
 * "Alice@example.org" ("" for the null path "<>", allowed only when
 * allow_null). Returns 0, or -1 with err naming the problem.
 */
int addr_normalize(const char *raw, bool allow_null, char *out, size_t outlen, char *err,
                   size_t errlen);

/* The domain of a normalized address ("" when it has none). */
const char *addr_domain(const char *addr);

#endif
