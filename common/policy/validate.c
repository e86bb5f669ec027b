/*
 * validate.c - recipient validation at RCPT time (see validate.h).
 * A failed lookup is never an answer: it is a temporary failure.
 */
#include "validate.h"

#include <string.h>

#include "lists.h"
#include "log.h"
#include "lookup.h"

static void tempfail(struct rcpt_check *out, const char *why)
{
    out->verdict = RCPT_TEMPFAIL;
    out->why = why;
}

/* Asks list l about key; fills cached/ms for remote lists. */
static int ask_list(struct list *l, const char *key, const char *queue_id, struct rcpt_check *out)
{
    struct remote_cfg *r = list_remote(l);
    if (!r)
        return list_contains(l, key, out->err, sizeof out->err);
    struct lookup_info info;
    int res = lookup_run(r, LOOKUP_RCPT, key, NULL, queue_id, &info, out->err, sizeof out->err);
    out->cached = info.cached;
    out->ms = info.ms;
    return res;
}

void validate_rcpt(struct nh_config *cfg, const struct rule_vars *vars, bool authenticated,
                   const char *queue_id, bool dry_run, struct rcpt_check *out)
{
    struct rule_result rr;
    memset(out, 0, sizeof *out);
    out->verdict = RCPT_ACCEPT;
    if (!cfg->rcpt_lookup_addresses) {
        out->why = "no validation configured";
        return;
    }
    if (authenticated && cfg->skip_authenticated) {
        out->why = "sender authenticated";
        return;
    }
    if (cfg->rcpt_lookup_domains) {
        if (rule_eval(cfg->rcpt_lookup_domains, vars, &rr, out->err, sizeof out->err) < 0)
            return tempfail(out, "domain rule lookup failed");
        if (rr.is_false) {
            out->why = "domain not validated";
            return;
        }
        int in = list_contains(rr.list, vars->v[RV_RCPT_DOMAIN] ? vars->v[RV_RCPT_DOMAIN] : "",
                               out->err, sizeof out->err);
        if (in < 0)
            return tempfail(out, "domain lookup failed");
        if (in == 0) {
            out->why = "domain not validated";
            return;
        }
    }
    if (rule_eval(cfg->rcpt_lookup_addresses, vars, &rr, out->err, sizeof out->err) < 0)
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
    int in = ask_list(rr.list, vars->v[RV_RCPT], queue_id, out);
    if (in < 0)
        return tempfail(out, "lookup failed");
    out->verdict = in ? RCPT_ACCEPT : RCPT_UNKNOWN;
    out->why = in ? "exists" : "unknown";
}
