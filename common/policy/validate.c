/*
 * validate.c - recipient validation at RCPT time (see validate.h).
 * A failed lookup is never an answer: it is a temporary failure.
 * Must not: know libmilter, log (lookup.c logs each remote lookup), or
 * turn a failed lookup into an answer.
 */
#include "validate.h"

#include <string.h>

#include "addr.h"
#include "lists.h"
#include "log.h"
#include "lookup.h"
#include "remote_set.h"

static void tempfail(struct rcpt_check *out, const char *why)
{
    out->verdict = RCPT_TEMPFAIL;
    out->why = why;
}

/* Asks list l about key; fills cached/ms for remote lists. */
static int ask_list(struct list *l, const char *key, const struct list_env *env,
                    struct rcpt_check *out)
{
    const struct remote_def *r = list_remote(l);
    if (!r)
        return list_contains(l, key, env, out->err, sizeof out->err);
    struct remote_rt *rt = remote_set_find(env->remotes, r->id);
    if (!rt) {
        set_error(out->err, sizeof out->err, "remote %s is not running", r->id);
        return -1;
    }
    struct lookup_info info;
    int res = lookup_run(rt, LOOKUP_RCPT, key, NULL, env->queue_id, &info, out->err, sizeof out->err);
    out->cached = info.cached;
    out->ms = info.ms;
    return res;
}

void validate_rcpt(const struct policy *pol, const struct list_env *env,
                   const struct rule_vars *vars, bool authenticated, bool dry_run,
                   struct rcpt_check *out)
{
    struct rule_result rr;
    memset(out, 0, sizeof *out);
    out->verdict = RCPT_ACCEPT;
    const char *rcpt = vars->v[RV_RCPT] ? vars->v[RV_RCPT] : "";
    if (addr_is_postmaster(rcpt)) {
        out->why = "postmaster (RFC 5321 4.5.1)";
        return;
    }
    if (!*addr_domain(rcpt)) {   /* addr_normalize_rcpt() refused it already: never ask anyone */
        set_error(out->err, sizeof out->err, "recipient without a domain");
        return tempfail(out, "not validated");
    }
    if (!pol->rcpt_lookup_addresses) {
        out->why = "no validation configured";
        return;
    }
    if (authenticated && pol->skip_authenticated) {
        out->why = "sender authenticated";
        return;
    }
    if (pol->rcpt_lookup_domains) {
        if (rule_eval(pol->rcpt_lookup_domains, vars, env, &rr, out->err, sizeof out->err) < 0)
            return tempfail(out, "domain rule lookup failed");
        if (rr.is_false) {
            out->why = "domain not validated";
            return;
        }
        int in = list_contains(rr.list, vars->v[RV_RCPT_DOMAIN] ? vars->v[RV_RCPT_DOMAIN] : "",
                               env, out->err, sizeof out->err);
        if (in < 0)
            return tempfail(out, "domain lookup failed");
        if (in == 0) {
            out->why = "domain not validated";
            return;
        }
    }
    if (rule_eval(pol->rcpt_lookup_addresses, vars, env, &rr, out->err, sizeof out->err) < 0)
        return tempfail(out, "address rule lookup failed");
    if (rr.is_false) {
        out->why = "address not validated";
        return;
    }
    out->list = list_name(rr.list);
    if (dry_run) {
        out->why = "would look up";
        return;
    }
    int in = ask_list(rr.list, vars->v[RV_RCPT], env, out);
    if (in == LOOKUP_UTF8_UNSUPPORTED) {
        out->verdict = RCPT_UTF8_UNSUPPORTED;
        out->why = "non-ASCII address not supported by the mail store";
        return;
    }
    if (in < 0)
        return tempfail(out, "lookup failed");
    out->verdict = in ? RCPT_ACCEPT : RCPT_UNKNOWN;
    out->why = in ? "exists" : "unknown";
}
