/*
 * reply.h - what the filter answers for one step of an SMTP transaction:
 * an SMTP reply split into code, enhanced status code and text, the way
 * the MTA wants it (smfi_setreply takes the three apart), and the one line
 * the step leaves in the log.
 *
 *   code 0            carry on (no reply of ours)
 *   4xx               the client is told to try again later
 *   5xx               refused for good
 *
 * reply_parse() is the one place that reads a reply given as one line
 * ("552 5.2.2 <x> Over quota": a next hop's answer, as the SMTP client
 * summarizes it) back into its parts.
 *
 * Must not: know libmilter, or log (the caller logs `log`).
 */
#ifndef NEXTHOP_REPLY_H
#define NEXTHOP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

struct reply {
    int code;             /* 0 = none */
    char xcode[16];       /* enhanced status code "5.1.1"; "" when there is none */
    char text[256];
};

/* The answer to one step (MAIL FROM, RCPT TO) and its log line. */
struct answer {
    struct reply reply;        /* code 0: carry on */
    enum log_level log_level;
    char log[768];             /* "" = nothing to log */
};

void reply_set(struct reply *r, int code, const char *xcode, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Splits "CODE[ X.Y.Z][ text]" (code 2xx-5xx) into r. Returns 0, or -1
 * when line does not start with such a code (r is then cleared).
 */
int reply_parse(struct reply *r, const char *line);

/* "CODE X.Y.Z text" (parts left out when empty) into buf. */
void reply_format(const struct reply *r, char *buf, size_t len);

/* True for a 4xx reply, false for none, 2xx, 3xx or 5xx. */
bool reply_is_temporary(const struct reply *r);

#endif
