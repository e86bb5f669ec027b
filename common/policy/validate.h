/*
 * validate.h - the RCPT TO decision: does this recipient exist?
 *
 * session.rcpt.lookup.domains picks a list of domains whose recipients are
 * validated (unset = every domain); session.rcpt.lookup.addresses picks the
 * list (usually remote/<id>) that holds the existing recipients.
 * Exists -> accept; unknown -> 550 5.1.1; lookup error -> 451 4.4.3;
 * a non-ASCII address a store without SMTPUTF8 cannot take -> 553 5.6.7.
 * <Postmaster> (no domain, any case) is accepted without a lookup; any other
 * recipient without a domain is refused before (addr_normalize_rcpt()) and
 * is never looked up here.
 * Called for the milter (through rcpt.c) and for `-t` alike.
 *
 * Must not: know libmilter, or turn a failed lookup into an answer (it is
 * a temporary failure).
 */
#ifndef NEXTHOP_VALIDATE_H
#define NEXTHOP_VALIDATE_H

#include <stdbool.h>

#include "lists.h"
#include "policy.h"
#include "rules.h"
#include "util.h"

/* RCPT_UTF8_UNSUPPORTED: a non-ASCII address the mail store cannot take
 * (no SMTPUTF8): 553 5.6.7, never "unknown". */
enum rcpt_verdict { RCPT_ACCEPT = 0, RCPT_UNKNOWN, RCPT_TEMPFAIL, RCPT_UTF8_UNSUPPORTED };

struct rcpt_check {
    enum rcpt_verdict verdict;
    const char *list;      /* list consulted for the address, NULL = not validated */
    const char *why;       /* short reason for logs: "exists", "unknown", "domain not validated", ... */
    bool cached;
    long ms;
    char err[ERRLEN];      /* on RCPT_TEMPFAIL */
};

/*
 * vars must hold RV_RCPT (normalized) and RV_RCPT_DOMAIN; env the running
 * remotes and the queue id. With dry_run the address list is only named,
 * not asked (for -t).
 */
void validate_rcpt(const struct policy *pol, const struct list_env *env,
                   const struct rule_vars *vars, bool authenticated, bool dry_run,
                   struct rcpt_check *out);

#endif
