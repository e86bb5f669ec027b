/*
 * smtp_auth.h - SMTP AUTH on an open session (smtp_auth.c), for the
 * files of the SMTP client that log in: smtp_open.c (the session's own
 * AUTH) and smtp_lookup.c (the AUTH lookup).
 *
 * Everyone else uses smtp_client.h.
 *
 * Must not: be included outside the SMTP client.
 */
#ifndef NEXTHOP_SMTP_AUTH_H
#define NEXTHOP_SMTP_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct smtp_session;

/* AUTH as user with the strongest offered mechanism. Returns the final
 * reply code (235 only when the mechanism completed too), or -1 with err. */
int smtp_auth(struct smtp_session *s, const char *user, const char *pass, int64_t deadline_ms,
              char *err, size_t errlen);

#endif
