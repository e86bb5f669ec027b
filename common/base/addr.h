/*
 * addr.h - envelope address normalization, the gate between bytes from an
 * SMTP client and everything else.
 *
 * Accepts what RFC 5321 (and SMTPUTF8) allows in a path: optional angle
 * brackets (balanced), an optional source route (dropped), a dot-atom or
 * quoted local part, a domain or address literal. The domain is lower-cased;
 * the local part is kept as given. Anything else - CR, LF, NUL, control
 * bytes, unbalanced brackets, invalid UTF-8, over-long parts, a quoted-pair
 * escaping anything but printable ASCII, and characters that make text
 * display differently than it reads (C1 controls, bidi controls, zero-width
 * characters, line separators: unicode_is_deceptive() in util.h) - is
 * refused, so nothing hostile ever reaches a remote host or a log line.
 * Must not: decide anything about routing or validation beyond syntax.
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

/*
 * addr_normalize() for a RCPT TO path: also refuses a path without a domain,
 * except <Postmaster> in any case (RFC 5321 4.1.1.3 and 4.5.1): an MTA would
 * qualify such a recipient with a domain of its own choosing after we
 * checked it. The refusal is a syntax error (501 5.1.3).
 */
int addr_normalize_rcpt(const char *raw, char *out, size_t outlen, char *err, size_t errlen);

/* True for the domain-less postmaster path of a normalized address, in any case. */
bool addr_is_postmaster(const char *addr);

/* The domain of a normalized address ("" when it has none). */
const char *addr_domain(const char *addr);

/*
 * True when s may stand as the client's name in a Received: line: host-name
 * characters only (ASCII letters, digits, '.', '-', and '_' as found in the
 * wild), or an address literal ("[192.0.2.7]", "[IPv6:2001:db8::1]").
 */
bool addr_is_hostname(const char *s);

#endif
