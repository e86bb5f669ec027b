/*
 * smtp_auth.c - SMTP AUTH (RFC 4954) with the strongest mechanism both
 * sides know; the mechanisms themselves come from sasl_client.c (GNU SASL).
 *
 * AUTH succeeds only when the server answers 235 and the mechanism
 * completed: a SCRAM server that answers 235 without its signature, or
 * sends a wrong one, fails the AUTH (RFC 5802).
 *
 * Must not: log a payload or the text of a reply during AUTH (replies are
 * read redacted), send credentials over plain text when TLS is enabled, or
 * free a response without wiping it.
 */
#include "smtp_auth.h"

#include <stdio.h>
#include <string.h>

#include "sasl_client.h"
#include "smtp_session.h"
#include "util.h"

/* More challenges than any of our mechanisms needs: a server in a loop. */
#define SASL_ROUNDS_MAX 8

/* Cancels the exchange ("*"), keeping the session in sync. */
static int cancel(struct smtp_session *s, int64_t deadline_ms, const char *why, char *err,
                  size_t errlen)
{
    char tmp[ERRLEN];
    if (smtp_send_cmd(s, deadline_ms, tmp, sizeof tmp, "*") == 0)
        smtp_read_reply(s, "AUTH cancel", deadline_ms, tmp, sizeof tmp);
    set_error(err, errlen, "AUTH with %s: %s", s->peer, why);
    return -1;
}

/* The AUTH command, with the initial response of a client-first mechanism. */
static int first_command(struct smtp_session *s, struct sasl_client *c, unsigned mech,
                         int64_t deadline_ms, char *err, size_t errlen)
{
    const char *name = sasl_mech_name(mech);
    if (!sasl_mech_client_first(mech))
        return smtp_send_cmd(s, deadline_ms, err, errlen, "AUTH %s", name);
    char *out = NULL, prefix[64];
    if (sasl_client_step(c, NULL, &out, err, errlen) < 0)
        return -1;
    snprintf(prefix, sizeof prefix, "AUTH %s ", name);
    int rc = smtp_send_secret(s, prefix, *out ? out : "=", deadline_ms, err, errlen);
    sasl_free_secret(out);
    return rc;
}

/* Answers 334 challenges until the final reply; returns its code or -1. */
static int exchange(struct smtp_session *s, struct sasl_client *c, unsigned mech,
                    int64_t deadline_ms, char *err, size_t errlen)
{
    char challenge[CONN_LINE_MAX + 1], why[ERRLEN];
    if (first_command(s, c, mech, deadline_ms, err, errlen) < 0)
        return -1;
    for (int round = 0;; round++) {
        int code = smtp_read_reply(s, "AUTH", deadline_ms, err, errlen);
        if (code != 334) {
            if (code == 235 && !sasl_client_done(c)) {
                set_error(err, errlen,
                          "AUTH with %s: the server answered 235 before proving it knows the "
                          "password (%s)", s->peer, sasl_mech_name(mech));
                smtp_broken(s);
                return -1;
            }
            return code;
        }
        if (round >= SASL_ROUNDS_MAX)
            return cancel(s, deadline_ms, "too many challenges", err, errlen);
        smtp_reply_line_text(&s->rep, 0, challenge, sizeof challenge);
        char *out = NULL;
        int rc = sasl_client_step(c, challenge, &out, why, sizeof why);
        explicit_bzero(challenge, sizeof challenge);
        if (rc < 0)
            return cancel(s, deadline_ms, why, err, errlen);
        rc = smtp_send_secret(s, "", out, deadline_ms, err, errlen);
        sasl_free_secret(out);
        if (rc < 0)
            return -1;
    }
}

int smtp_auth(struct smtp_session *s, const char *user, const char *pass, int64_t deadline_ms,
              char *err, size_t errlen)
{
    if (s->r->tls_enable && !conn_is_tls(s->c)) {
        set_error(err, errlen, "refusing AUTH to %s over plain text", s->peer);
        return -1;
    }
    unsigned mech = sasl_mech_pick(s->caps.mechs);
    if (!mech) {
        set_error(err, errlen, "%s offers no AUTH mechanism we support", s->peer);
        return -1;
    }
    struct sasl_client *c = sasl_client_start(mech, user, pass, err, errlen);
    if (!c)
        return -1;
    s->in_auth = true;
    int code = exchange(s, c, mech, deadline_ms, err, errlen);
    s->in_auth = false;
    sasl_client_free(c);
    return code;
}
