/*
 * callbacks.c - the mail flow as libmilter sees it, translated to the
 * core and back:
 *   connect, helo -> struct client_info
 *   mail          -> message_begin()      rcpt   -> message_rcpt()
 *   header, eoh, body -> message_header/eoh/body()
 *   eom           -> message_eom(), whose result is applied with smfi_*
 *   abort, close  -> message_free()
 * Every decision (replies, log lines, headers, recipients to delete,
 * quarantine) is made in common/policy (message.c, rcpt.c, eom.c); this
 * file only carries them to and from libmilter.
 * Per-connection state lives only in smfi_setpriv (libmilter runs the
 * callbacks of one connection on different threads). Each message takes a
 * reference on the runtime (config + remotes) current at MAIL FROM and
 * keeps it to the end, so a reload never changes the rules under a message
 * in flight.
 * Must not: decide a reply, a header, a recipient's fate or a log line's
 * text (common/policy does), or keep state anywhere but the session.
 */
#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "message.h"
#include "milter.h"
#include "stop.h"
#include "util.h"

struct session {
    unsigned long no_reply;       /* SMFIP_NR_* steps negotiated: answer SMFIS_NOREPLY there */
    struct client_info client;
    struct nh_runtime *run;       /* config + remotes of the message, taken at MAIL FROM */
    struct message *msg;          /* the message in progress */
    bool in_flight;               /* counted by stop.c, so a graceful stop waits for it */
};

static struct session *session_of(SMFICTX *ctx) { return smfi_getpriv(ctx); }

/* The session exists from negotiation (or connect, with MTAs that skip it) to close. */
static struct session *session_get(SMFICTX *ctx)
{
    struct session *s = smfi_getpriv(ctx);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        smfi_setpriv(ctx, s);
    }
    return s;
}

/* "Carry on" for a step: SMFIS_NOREPLY where the MTA was told not to wait for us. */
static sfsistat carry_on(const struct session *s, unsigned long step)
{
    return s && (s->no_reply & step) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static void copy_macro(SMFICTX *ctx, const char *name, char *dst, size_t len)
{
    const char *v = smfi_getsymval(ctx, (char *)name);
    if (v)
        str_printable(dst, len, v);
}

/* Hands the MTA's queue id (macro i) to the message once the MTA has one. */
static struct message *message_of(SMFICTX *ctx, struct session *s)
{
    if (!s)
        return NULL;
    if (s->msg && strcmp(message_queue_id(s->msg), "-") == 0)
        message_set_queue_id(s->msg, smfi_getsymval(ctx, (char *)"i"));
    return s->msg;
}

static void message_end(struct session *s)
{
    message_free(s->msg);
    s->msg = NULL;
    runtime_unref(s->run);
    s->run = NULL;
    if (s->in_flight)
        stop_message_end();
    s->in_flight = false;
}

/* Gives the MTA a reply of the core's; returns the status that goes with it. */
static sfsistat set_reply(SMFICTX *ctx, const struct reply *r)
{
    char code[8], text[2 * sizeof r->text], *t = text;
    snprintf(code, sizeof code, "%d", r->code);
    /* libmilter's reply text is a format: a next hop's "100% full" must arrive as such */
    for (const char *p = r->text; *p && t < text + sizeof text - 2; p++) {
        if (*p == '%')
            *t++ = '%';
        *t++ = *p;
    }
    *t = '\0';
    smfi_setreply(ctx, code, (char *)(*r->xcode ? r->xcode : NULL), text);
    return r->code / 100 == 4 ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

static void log_answer(const struct answer *a)
{
    if (*a->log)
        log_msg(a->log_level, "%s", a->log);
}

static void sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
    struct session *s = session_get(ctx);
    struct client_info *c = &s->client;
    sockaddr_text(hostaddr, c->remote_ip, sizeof c->remote_ip);
    copy_macro(ctx, "{daemon_name}", c->listener, sizeof c->listener);
    copy_macro(ctx, "{if_addr}", c->local_ip, sizeof c->local_ip);
    if (!*c->local_ip)
        copy_macro(ctx, "{daemon_addr}", c->local_ip, sizeof c->local_ip);
    return carry_on(s, SMFIP_NR_CONN);
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
    struct session *s = session_of(ctx);
    if (s && helo)
        str_printable(s->client.helo, sizeof s->client.helo, helo);
    return carry_on(s, SMFIP_NR_HELO);
}

/*
 * MAIL FROM is not answered (SMFIP_NR_MAIL saves a round trip per message):
 * a sender we cannot use is refused at each RCPT instead, which stops the
 * transaction just the same.
 */
static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
    struct session *s = session_get(ctx);
    struct answer a;
    const char *auth = smfi_getsymval(ctx, (char *)"{auth_authen}");
    message_end(s);
    s->in_flight = stop_message_begin();   /* false once stopping: no config, so RCPT gets 451 */
    s->run = s->in_flight ? runtime_current() : NULL;
    s->msg = message_begin(s->run ? &s->run->cfg->policy : NULL, s->run ? s->run->remotes : NULL,
                           &s->client, argv, auth ? auth : "", &a);
    log_answer(&a);
    if (a.reply.code && !(s->no_reply & SMFIP_NR_MAIL))
        return set_reply(ctx, &a.reply);
    return carry_on(s, SMFIP_NR_MAIL);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
    struct answer a;
    message_rcpt(message_of(ctx, session_of(ctx)), argv, &a);
    log_answer(&a);
    return a.reply.code ? set_reply(ctx, &a.reply) : SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    struct session *s = session_of(ctx);
    message_header(message_of(ctx, s), name, value);
    return carry_on(s, SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    message_eoh(message_of(ctx, s));
    return carry_on(s, SMFIP_NR_EOH);
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    struct session *s = session_of(ctx);
    message_body(s ? s->msg : NULL, chunk, len);
    return carry_on(s, SMFIP_NR_BODY);
}

static void progress(void *ctx) { smfi_progress(ctx); }

static sfsistat on_eom(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    const struct eom_result *r = message_eom(message_of(ctx, s), progress, ctx);
    for (size_t i = 0; i < r->n_remove; i++)
        smfi_chgheader(ctx, (char *)r->remove[i].name, r->remove[i].index, NULL);
    for (size_t i = 0; i < r->n_add; i++)
        smfi_addheader(ctx, (char *)r->add[i].name, (char *)r->add[i].value);
    for (size_t i = 0; i < r->n_rcpts; i++)
        if (r->rcpts[i].delete_from_mta)
            smfi_delrcpt(ctx, (char *)r->rcpts[i].raw);
    if (*r->quarantine)
        smfi_quarantine(ctx, (char *)r->quarantine);
    if (*r->log)
        log_msg(r->log_level, "%s", r->log);
    sfsistat st = r->reply.code ? set_reply(ctx, &r->reply) : SMFIS_CONTINUE;
    if (s)
        message_end(s);
    return st;
}

static sfsistat on_abort(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    if (s)
        message_end(s);
    return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    if (s) {
        message_end(s);
        free(s);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

/*
 * Ask the MTA for only what we use: no reply awaited for connect, HELO,
 * headers, end of headers and body (we answer those at end of message),
 * no DATA or unknown commands, and only the macros the rules and logs need
 * - fewer packets per message and no extra round trips.
 */
static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT | SMFIF_QUARANTINE;
    unsigned long no_reply = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_HDR |
                             SMFIP_NR_EOH | SMFIP_NR_BODY;
    if ((f0 & want) != want) {
        log_error("the MTA does not offer the actions we need (add/change headers, delete "
                  "recipients, quarantine)");
        return SMFIS_REJECT;
    }
    struct session *s = session_get(ctx);
    s->no_reply = f1 & no_reply;
    *pf0 = want;
    *pf1 = (f1 & (SMFIP_NOUNKNOWN | SMFIP_NODATA)) | s->no_reply;
    *pf2 = *pf3 = 0;
    smfi_setsymlist(ctx, SMFIM_CONNECT, "{daemon_name} {if_addr} {daemon_addr}");
    smfi_setsymlist(ctx, SMFIM_HELO, "");
    smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen}");
    smfi_setsymlist(ctx, SMFIM_ENVRCPT, "i");
    smfi_setsymlist(ctx, SMFIM_DATA, "");
    smfi_setsymlist(ctx, SMFIM_EOH, "");
    smfi_setsymlist(ctx, SMFIM_EOM, "i");
    return SMFIS_CONTINUE;
}

int callbacks_register(void)
{
    static struct smfiDesc desc = {
        .xxfi_name = "milter-nexthop",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT | SMFIF_QUARANTINE,
        .xxfi_connect = on_connect,
        .xxfi_helo = on_helo,
        .xxfi_envfrom = on_envfrom,
        .xxfi_envrcpt = on_envrcpt,
        .xxfi_header = on_header,
        .xxfi_eoh = on_eoh,
        .xxfi_body = on_body,
        .xxfi_eom = on_eom,
        .xxfi_abort = on_abort,
        .xxfi_close = on_close,
        .xxfi_negotiate = on_negotiate,
    };
    if (smfi_register(desc) == MI_FAILURE) {
        log_error("smfi_register failed");
        return -1;
    }
    return 0;
}
