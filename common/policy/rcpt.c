/*
 * rcpt.c - the answer to one RCPT TO (rcpt.h).
 * Must not: know libmilter, log (it fills the answer's line for the
 * caller), or evaluate session.rcpt.mode and on-error for a recipient
 * that is accepted (the accepted path costs nothing more).
 */
#include "rcpt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"
#include "validate.h"

/* Sets the log line of the answer, formatted only when that level is logged. */
static void say(struct rcpt_answer *out, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct rcpt_answer *out, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    out->a.log_level = level;
    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(out->a.log, sizeof out->a.log, fmt, ap);
    va_end(ap);
}

int rcpt_enforcement(const struct policy *pol, const struct list_env *env,
                     const struct rule_vars *vars, struct rcpt_enforcement *out, char *err,
                     size_t errlen)
{
    struct rule_result mode, on_error;
    char scratch[ERRLEN];
    int rc = rule_eval(pol->rcpt_mode, vars, env, &mode, err, errlen);
    if (rule_eval(pol->rcpt_on_error, vars, env, &on_error, rc < 0 ? scratch : err,
                  rc < 0 ? sizeof scratch : errlen) < 0)
        rc = -1;
    /* a missing rule (a policy not made by the loader) is the default */
    out->mode = pol->rcpt_mode ? (enum rcpt_mode)mode.choice : RCPT_MODE_ENFORCE;
    out->on_error = pol->rcpt_on_error ? (enum rcpt_on_error)on_error.choice : RCPT_ON_ERROR_TEMPFAIL;
    return rc;
}

/* The refusal the verdict stands for: 550 5.1.1, 553 5.6.7 or 451 4.4.3. */
static void refusal(const struct rcpt_check *chk, struct reply *r)
{
    if (chk->verdict == RCPT_UNKNOWN)
        reply_set(r, 550, "5.1.1", "Recipient address rejected: User unknown");
    else if (chk->verdict == RCPT_UTF8_UNSUPPORTED)
        reply_set(r, 553, "5.6.7", "Non-ASCII address not supported by the mail store");
    else
        reply_set(r, 451, "4.4.3", "Recipient address verification unavailable, try again later");
}

/* A recipient validate.c did not accept: refused, or accepted by on-error or report mode. */
static void not_accepted(const struct policy *pol, const struct list_env *env,
                         const struct rule_vars *v, const struct rcpt_check *chk,
                         struct rcpt_answer *out)
{
    const char *qid = env->queue_id ? env->queue_id : "-";
    struct rcpt_enforcement enf;
    char rule_err[ERRLEN] = "", note[ERRLEN + 32] = "";
    if (rcpt_enforcement(pol, env, v, &enf, rule_err, sizeof rule_err) < 0)
        snprintf(note, sizeof note, " rule-error=\"%s\"", rule_err);
    bool failed = chk->verdict == RCPT_TEMPFAIL;

    if (failed && enf.on_error == RCPT_ON_ERROR_ACCEPT) {
        out->unverified = true;
        metrics_count(METRICS_RCPT_ACCEPT_ON_ERROR);
        say(out, LOG_LVL_WARNING, "rcpt: queue=%s rcpt=<%s> result=accept-on-error why=\"%s: %s\"%s",
            qid, out->addr, chk->why, chk->err, note);
        return;
    }
    bool report = enf.mode == RCPT_MODE_REPORT;
    const char *result = report ? (failed ? "would-tempfail" : "would-reject") : (failed ? "tempfail" : "reject");
    const char *mode = report ? " mode=report" : "";
    if (chk->verdict == RCPT_UTF8_UNSUPPORTED)
        say(out, report ? LOG_LVL_WARNING : LOG_LVL_INFO, "rcpt: queue=%s rcpt=<%s> list=%s result=%s code=553 why=\"%s\"%s%s", qid,
            out->addr, chk->list, result, chk->why, mode, note);
    else if (failed)
        say(out, LOG_LVL_WARNING, "rcpt: queue=%s rcpt=<%s> result=%s code=451 why=\"%s: %s\"%s%s", qid,
            out->addr, result, chk->why, chk->err, mode, note);
    else
        say(out, report ? LOG_LVL_WARNING : LOG_LVL_INFO, "rcpt: queue=%s rcpt=<%s> list=%s result=%s code=550 ms=%ld%s%s", qid,
            out->addr, chk->list, result, chk->ms, mode, note);
    if (report) {
        out->unverified = true;
        metrics_count(failed ? METRICS_RCPT_WOULD_TEMPFAIL : METRICS_RCPT_WOULD_REJECT);
        return;
    }
    refusal(chk, &out->a.reply);
}

void rcpt_answer(const struct policy *pol, const struct list_env *env,
                 const struct rule_vars *vars, const char *raw, bool authenticated,
                 struct rcpt_answer *out)
{
    const char *qid = env->queue_id ? env->queue_id : "-";
    char err[ERRLEN];
    memset(out, 0, sizeof *out);
    if (addr_normalize_rcpt(raw, out->addr, sizeof out->addr, err, sizeof err) < 0) {
        out->addr[0] = '\0';
        reply_set(&out->a.reply, 501, "5.1.3", "Bad recipient address syntax");
        say(out, LOG_LVL_INFO, "rcpt: queue=%s rcpt=%.80s result=reject why=\"%s\"", qid, raw, err);
        return;
    }
    struct rule_vars v = *vars;
    struct rcpt_check chk;
    v.v[RV_RCPT] = out->addr;
    v.v[RV_RCPT_DOMAIN] = addr_domain(out->addr);
    validate_rcpt(pol, env, &v, authenticated, false, &chk);
    if (chk.verdict == RCPT_ACCEPT) {
        say(out, LOG_LVL_DEBUG, "rcpt: queue=%s rcpt=<%s> result=accept why=\"%s\"", qid, out->addr,
            chk.why);
        return;
    }
    not_accepted(pol, env, &v, &chk, out);
}
