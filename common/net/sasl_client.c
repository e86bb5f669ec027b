/*
 * sasl_client.c - SASL client mechanisms from GNU SASL (sasl_client.h).
 *
 * One library context for the process (created once, then only read);
 * one library session per exchange, used by one thread. Our preference
 * order lives here, not in the library: strongest offered first.
 *
 * Must not: log or keep a payload, or call the exchange good before the
 * library says the mechanism completed.
 */
#include "sasl_client.h"

#include <gsasl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const struct {
    const char *name;
    unsigned bit;
    bool client_first;
} mechs[] = {   /* strongest first */
    { "SCRAM-SHA-256", SASL_MECH_SCRAM_SHA256, true },
    { "CRAM-MD5", SASL_MECH_CRAM_MD5, false },
    { "PLAIN", SASL_MECH_PLAIN, true },
    { "LOGIN", SASL_MECH_LOGIN, false },
};

static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static Gsasl *ctx;
static int ctx_rc;

static void ctx_init(void) { ctx_rc = gsasl_init(&ctx); }

static Gsasl *library(void)
{
    pthread_once(&ctx_once, ctx_init);
    return ctx_rc == GSASL_OK ? ctx : NULL;
}

unsigned sasl_mechs_parse(const char *p)
{
    unsigned bits = 0;
    while (p && *p) {
        while (*p == ' ' || *p == '=')
            p++;
        size_t n = strcspn(p, " =");
        for (size_t i = 0; i < ARRAY_SIZE(mechs); i++)
            if (strlen(mechs[i].name) == n && strncasecmp(p, mechs[i].name, n) == 0)
                bits |= mechs[i].bit;
        p += n;
    }
    return bits;
}

unsigned sasl_mech_pick(unsigned offered)
{
    Gsasl *g = library();
    for (size_t i = 0; g && i < ARRAY_SIZE(mechs); i++)
        if ((offered & mechs[i].bit) && gsasl_client_support_p(g, mechs[i].name))
            return mechs[i].bit;
    return 0;
}

const char *sasl_mech_name(unsigned mech)
{
    for (size_t i = 0; i < ARRAY_SIZE(mechs); i++)
        if (mechs[i].bit == mech)
            return mechs[i].name;
    return "?";
}

bool sasl_mech_client_first(unsigned mech)
{
    for (size_t i = 0; i < ARRAY_SIZE(mechs); i++)
        if (mechs[i].bit == mech)
            return mechs[i].client_first;
    return false;
}

/* Wipes and frees a string the library allocated. */
static void library_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    gsasl_free(s);
}

struct sasl_client {
    Gsasl_session *session;
    unsigned mech;
    bool done;
};

struct sasl_client *sasl_client_start(unsigned mech, const char *user, const char *pass,
                                      char *err, size_t errlen)
{
    Gsasl *g = library();
    Gsasl_session *session = NULL;
    if (!g) {
        set_error(err, errlen, "SASL library: %s", gsasl_strerror(ctx_rc));
        return NULL;
    }
    int rc = gsasl_client_start(g, sasl_mech_name(mech), &session);
    if (rc != GSASL_OK) {
        set_error(err, errlen, "SASL %s: %s", sasl_mech_name(mech), gsasl_strerror(rc));
        return NULL;
    }
    if (gsasl_property_set(session, GSASL_AUTHID, user) != GSASL_OK
        || gsasl_property_set(session, GSASL_PASSWORD, pass) != GSASL_OK) {
        gsasl_finish(session);
        set_error(err, errlen, "SASL %s: out of memory", sasl_mech_name(mech));
        return NULL;
    }
    struct sasl_client *c = xcalloc(1, sizeof *c);
    c->session = session;
    c->mech = mech;
    return c;
}

int sasl_client_step(struct sasl_client *c, const char *in, char **out, char *err,
                     size_t errlen)
{
    char *o = NULL;
    *out = NULL;
    if (c->done) {
        set_error(err, errlen, "%s: the server sent a challenge after the exchange completed",
                  sasl_mech_name(c->mech));
        return -1;
    }
    int rc = gsasl_step64(c->session, in ? in : "", &o);
    if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
        library_free_secret(o);
        /* e.g. SCRAM: "Authentication failed" for a wrong server signature */
        set_error(err, errlen, "%s: %s", sasl_mech_name(c->mech),
                  rc == GSASL_AUTHENTICATION_ERROR ? "the server failed to prove it knows the password"
                                                   : gsasl_strerror(rc));
        return -1;
    }
    *out = xstrdup(o ? o : "");
    library_free_secret(o);
    c->done = rc == GSASL_OK;
    return c->done ? SASL_STEP_DONE : SASL_STEP_MORE;
}

bool sasl_client_done(const struct sasl_client *c) { return c->done; }

void sasl_client_free(struct sasl_client *c)
{
    if (!c)
        return;
    gsasl_finish(c->session);
    free(c);
}

void sasl_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}
