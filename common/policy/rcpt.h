/*
 * rcpt.h - the answer to one RCPT TO, as an SMTP reply and a log line.
 *
 * In order:
 *   1. the address as the MTA gave it must pass addr_normalize_rcpt():
 *      else 501 5.1.3 (always enforced: such an address never reaches a
 *      rule, a remote or a log line as it is);
 *   2. validate.c's verdict: exists -> accept, unknown -> 550 5.1.1,
 *      lookup error -> 451 4.4.3;
 *   3. session.rcpt.on-error (rule) turns a lookup error into an accept
 *      (`result=accept-on-error`);
 *   4. session.rcpt.mode (rule) = report turns 550 and 451 into an accept
 *      that is logged as `result=would-reject` / `result=would-tempfail`.
 * Each of 3 and 4 is counted (nexthop_rcpt_unenforced_total{result}), and
 * such a recipient is marked unverified: it gets no next hop of ours.
 * The two rules are evaluated only for a recipient that is not accepted
 * (the accepted path costs nothing more).
 *
 * Must not: know libmilter, or log (the caller logs the answer's line).
 */
#ifndef NEXTHOP_RCPT_H
#define NEXTHOP_RCPT_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "lists.h"
#include "policy.h"
#include "reply.h"
#include "rules.h"

struct rcpt_answer {
    struct answer a;               /* reply code 0: the recipient is accepted */
    bool unverified;               /* accepted without a "yes" (report mode, on-error = accept) */
    char addr[ADDR_MAX + 1];       /* normalized; "" when the syntax was refused */
};

/* What session.rcpt.mode and session.rcpt.on-error say for one recipient. */
struct rcpt_enforcement {
    enum rcpt_mode mode;
    enum rcpt_on_error on_error;
};

/*
 * Evaluates both rules for vars (RV_RCPT and RV_RCPT_DOMAIN set). Returns
 * 0, or -1 when an in-list lookup in them failed: that condition counted
 * as false, *out still holds the values the rules gave, err says why.
 */
int rcpt_enforcement(const struct policy *pol, const struct list_env *env,
                     const struct rule_vars *vars, struct rcpt_enforcement *out, char *err,
                     size_t errlen);

/*
 * Answers RCPT TO with argument raw (as the MTA gave it). vars holds the
 * message-level variables (the recipient's are set inside); env->queue_id
 * names the message in the log line.
 */
void rcpt_answer(const struct policy *pol, const struct list_env *env,
                 const struct rule_vars *vars, const char *raw, bool authenticated,
                 struct rcpt_answer *out);

#endif
