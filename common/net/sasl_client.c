/*
 * sasl_client.c - SASL client mechanisms from GNU SASL (sasl_client.h).
 *
 * One library context for the process (created once, then only read);
 * one library session per exchange, used by one thread. Our preference
 * order lives here, not in the library: strongest offered first.
 *
 * Must not: log or keep a payload, call the exchange good before the
 * library says the mechanism completed, or let a password or a response
 * reach free() unwiped (base64 is done here, not by the library, for that).
 */
#include "sasl_client.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gsasl.h>
#include <pthread.h>
#include <stdio.h>
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

static int library_callback(Gsasl *g, Gsasl_session *session, Gsasl_property prop);

static void ctx_init(void)
{
    ctx_rc = gsasl_init(&ctx);
    if (ctx_rc == GSASL_OK)
        gsasl_callback_set(ctx, library_callback);
}

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

/* Decodes base64 text; NULL when malformed. *len gets the length. */
static char *b64_decode(const char *text, size_t *len)
{
    gnutls_datum_t in = { (unsigned char *)text, (unsigned)strlen(text) }, out = { NULL, 0 };
    *len = 0;
    if (!*text)
        return xstrdup("");
    if (gnutls_base64_decode2(&in, &out) < 0)
        return NULL;
    char *s = xmalloc(out.size + 1);
    memcpy(s, out.data, out.size);
    s[out.size] = '\0';
    *len = out.size;
    gnutls_memset(out.data, 0, out.size);
    gnutls_free(out.data);
    return s;
}

/* Encodes data as base64 (malloc'd; "" for no data). */
static char *b64_encode(const char *data, size_t len)
{
    gnutls_datum_t in = { (unsigned char *)data, (unsigned)len }, out = { NULL, 0 };
    if (len == 0 || gnutls_base64_encode2(&in, &out) < 0)
        return xstrdup("");
    char *s = xstrndup((const char *)out.data, out.size);
    gnutls_memset(out.data, 0, out.size);
    gnutls_free(out.data);
    return s;
}

struct sasl_client {
    Gsasl_session *session;
    unsigned mech;
    bool done;
    const char *pass;           /* the caller's; SCRAM reads it in the callback */
};

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/*
 * SCRAM's SaltedPassword = PBKDF2-HMAC-SHA256(SASLprep(password), salt, i),
 * hex, computed here so the library never holds the password: it would
 * SASLprep copies of it and free them unwiped. SASLprep leaves printable
 * ASCII as it is; other passwords go through the library's SASLprep, whose
 * result we wipe.
 */
static int scram_salted_password(struct sasl_client *c, Gsasl_session *session)
{
    const char *salt64 = gsasl_property_fast(session, GSASL_SCRAM_SALT);
    const char *iter_s = gsasl_property_fast(session, GSASL_SCRAM_ITER);
    char *prepped = NULL, *salt = NULL;
    size_t salt_len = 0;
    long iter = iter_s ? strtol(iter_s, NULL, 10) : 0;
    unsigned char key[32];
    char hex[2 * sizeof key + 1];
    int rc = GSASL_AUTHENTICATION_ERROR;
    if (!salt64 || iter < 1 || iter > 1000000 || !(salt = b64_decode(salt64, &salt_len)))
        return GSASL_MECHANISM_PARSE_ERROR;
    if (!printable_ascii(c->pass) && gsasl_saslprep(c->pass, 0, &prepped, NULL) != GSASL_OK)
        goto out;
    const char *pw = prepped ? prepped : c->pass;
    gnutls_datum_t k = { (unsigned char *)pw, (unsigned)strlen(pw) };
    gnutls_datum_t sd = { (unsigned char *)salt, (unsigned)salt_len };
    if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &k, &sd, (unsigned)iter, key, sizeof key) < 0)
        goto out;
    for (size_t i = 0; i < sizeof key; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    rc = gsasl_property_set(session, GSASL_SCRAM_SALTED_PASSWORD, hex);
out:
    if (prepped) {
        explicit_bzero(prepped, strlen(prepped));
        gsasl_free(prepped);
    }
    free(salt);
    explicit_bzero(key, sizeof key);
    explicit_bzero(hex, sizeof hex);
    return rc;
}

static int library_callback(Gsasl *g, Gsasl_session *session, Gsasl_property prop)
{
    (void)g;
    struct sasl_client *c = gsasl_session_hook_get(session);
    if (c && c->mech == SASL_MECH_SCRAM_SHA256 && prop == GSASL_SCRAM_SALTED_PASSWORD)
        return scram_salted_password(c, session);
    return GSASL_NO_CALLBACK;
}

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
    /* SCRAM gets the password through library_callback() only */
    if (gsasl_property_set(session, GSASL_AUTHID, user) != GSASL_OK
        || (mech != SASL_MECH_SCRAM_SHA256
            && gsasl_property_set(session, GSASL_PASSWORD, pass) != GSASL_OK)) {
        gsasl_finish(session);
        set_error(err, errlen, "SASL %s: out of memory", sasl_mech_name(mech));
        return NULL;
    }
    struct sasl_client *c = xcalloc(1, sizeof *c);
    c->session = session;
    c->mech = mech;
    c->pass = pass;
    gsasl_session_hook_set(session, c);
    return c;
}

/*
 * The raw library step (not gsasl_step64): the clear text of a response
 * (PLAIN's "\0user\0password") then lives only in buffers we wipe.
 */
int sasl_client_step(struct sasl_client *c, const char *in, char **out, char *err,
                     size_t errlen)
{
    char *raw = NULL, *challenge = NULL;
    size_t raw_len = 0, challenge_len = 0;
    *out = NULL;
    if (c->done) {
        set_error(err, errlen, "%s: the server sent a challenge after the exchange completed",
                  sasl_mech_name(c->mech));
        return -1;
    }
    if (in && !(challenge = b64_decode(in, &challenge_len))) {
        set_error(err, errlen, "%s: the server's challenge is not base64",
                  sasl_mech_name(c->mech));
        return -1;
    }
    int rc = gsasl_step(c->session, challenge, challenge_len, &raw, &raw_len);
    if (challenge) {
        explicit_bzero(challenge, challenge_len);
        free(challenge);
    }
    if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
        if (raw)
            explicit_bzero(raw, raw_len);
        gsasl_free(raw);
        /* e.g. SCRAM: "Authentication failed" for a wrong server signature */
        set_error(err, errlen, "%s: %s", sasl_mech_name(c->mech),
                  rc == GSASL_AUTHENTICATION_ERROR ? "the server failed to prove it knows the password"
                                                   : gsasl_strerror(rc));
        return -1;
    }
    *out = b64_encode(raw, raw_len);
    if (raw)
        explicit_bzero(raw, raw_len);
    gsasl_free(raw);
    c->done = rc == GSASL_OK;
    return c->done ? SASL_STEP_DONE : SASL_STEP_MORE;
}

bool sasl_client_done(const struct sasl_client *c) { return c->done; }

/* The library frees its copies of these without wiping them: wipe first. */
static void wipe_property(Gsasl_session *session, Gsasl_property prop)
{
    const char *v = gsasl_property_fast(session, prop);
    if (v)
        explicit_bzero((char *)v, strlen(v));
}

void sasl_client_free(struct sasl_client *c)
{
    if (!c)
        return;
    wipe_property(c->session, GSASL_PASSWORD);
    wipe_property(c->session, GSASL_SCRAM_SALTED_PASSWORD);
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
