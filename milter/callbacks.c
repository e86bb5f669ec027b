/*
 * callbacks.c - the mail flow as libmilter sees it:
 *   connect -> helo -> mail -> rcpt (validate each) -> header/body (spool
 *   when a recipient will be relayed) -> eom (route: header, relay,
 *   quarantine) ; abort/close clean up.
 * Per-connection state lives only in smfi_setpriv (libmilter runs the
 * callbacks of one connection on different threads). Each message takes a
 * reference on the runtime (config + remotes) current at MAIL FROM and
 * keeps it to the end, so a reload never changes the rules under a message
 * in flight.
 * The decisions themselves are in common/ (validate.c, route.c).
 */
#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "milter.h"
#include "route.h"
#include "spool.h"
#include "util.h"
#include "validate.h"

struct session {
    unsigned long no_reply;    /* SMFIP_NR_* steps negotiated: answer SMFIS_NOREPLY there */
    bool spool_failed;
    bool bad_sender;           /* refused at RCPT: MAIL gets no reply of ours */
    char remote_ip[INET6_ADDRSTRLEN], local_ip[INET6_ADDRSTRLEN];
    char helo[256], listener[64];
    /* the message in progress */
    struct nh_runtime *run;       /* config + remotes, taken at MAIL FROM */
    const struct policy *pol;     /* run->cfg->policy */
    char sender[ADDR_MAX + 1], auth[256], priority[16], qid[64];
    struct route_rcpt *rcpts;
    size_t n, cap;
    bool planned, spooling;
    int routing_headers;       /* routing headers the client sent: removed at eom */
    struct spool *spool;
    int64_t started;
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

static const char *queue_id(SMFICTX *ctx, struct session *s)
{
    if (!*s->qid)
        copy_macro(ctx, "i", s->qid, sizeof s->qid);
    return *s->qid ? s->qid : "-";
}

static void message_reset(struct session *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->rcpts[i].raw);
    free(s->rcpts);
    s->rcpts = NULL;
    s->n = s->cap = 0;
    if (s->spool)
        spool_destroy(s->spool);
    s->spool = NULL;
    s->planned = s->spooling = false;
    s->routing_headers = 0;
    s->spool_failed = false;
    s->bad_sender = false;
    s->sender[0] = s->auth[0] = s->priority[0] = s->qid[0] = '\0';
    runtime_unref(s->run);
    s->run = NULL;
    s->pol = NULL;
}

static void base_vars(const struct session *s, struct rule_vars *v)
{
    memset(v, 0, sizeof *v);
    v->v[RV_SENDER] = s->sender;
    v->v[RV_SENDER_DOMAIN] = addr_domain(s->sender);
    v->v[RV_REMOTE_IP] = s->remote_ip;
    v->v[RV_LOCAL_IP] = s->local_ip;
    v->v[RV_HELO_DOMAIN] = s->helo;
    v->v[RV_AUTHENTICATED_AS] = s->auth;
    v->v[RV_LISTENER] = s->listener;
    v->v[RV_PRIORITY] = s->priority;
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
    sockaddr_text(hostaddr, s->remote_ip, sizeof s->remote_ip);
    copy_macro(ctx, "{daemon_name}", s->listener, sizeof s->listener);
    copy_macro(ctx, "{if_addr}", s->local_ip, sizeof s->local_ip);
    if (!*s->local_ip)
        copy_macro(ctx, "{daemon_addr}", s->local_ip, sizeof s->local_ip);
    return carry_on(s, SMFIP_NR_CONN);
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
    struct session *s = session_of(ctx);
    if (s && helo)
        str_printable(s->helo, sizeof s->helo, helo);
    return carry_on(s, SMFIP_NR_HELO);
}

static sfsistat reply(SMFICTX *ctx, const char *code, const char *xcode, const char *text)
{
    smfi_setreply(ctx, (char *)code, (char *)xcode, (char *)text);
    return code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

static void mail_params(struct session *s, char **argv)
{
    for (int i = 1; argv[i]; i++)
        if (strncasecmp(argv[i], "MT-PRIORITY=", 12) == 0)
            str_printable(s->priority, sizeof s->priority, argv[i] + 12);
}

/*
 * MAIL FROM is not answered (SMFIP_NR_MAIL saves a round trip per message):
 * a sender we cannot use is refused at each RCPT instead, which stops the
 * transaction just the same.
 */
static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
    struct session *s = session_get(ctx);
    char err[ERRLEN];
    message_reset(s);
    s->started = now_ms();
    s->run = runtime_current();
    s->pol = s->run ? &s->run->cfg->policy : NULL;
    if (s->run && addr_normalize(argv[0], true, s->sender, sizeof s->sender, err, sizeof err) < 0) {
        log_info("mail: from=rejected (%s) result=reject", err);
        s->bad_sender = true;
        if (!(s->no_reply & SMFIP_NR_MAIL))
            return reply(ctx, "501", "5.1.7", "Bad sender address syntax");
    }
    copy_macro(ctx, "{auth_authen}", s->auth, sizeof s->auth);
    mail_params(s, argv);
    return carry_on(s, SMFIP_NR_MAIL);
}

static void add_rcpt(struct session *s, const char *raw, const char *addr)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->rcpts = xrealloc(s->rcpts, s->cap * sizeof *s->rcpts);
    }
    struct route_rcpt *r = &s->rcpts[s->n++];
    memset(r, 0, sizeof *r);
    r->raw = xstrdup(raw);
    snprintf(r->addr, sizeof r->addr, "%s", addr);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
    struct session *s = session_of(ctx);
    char addr[ADDR_MAX + 1], err[ERRLEN];
    if (!s || !s->run)
        return reply(ctx, "451", "4.3.0", "Filter not ready, try again later");
    if (s->bad_sender)
        return reply(ctx, "501", "5.1.7", "Bad sender address syntax");
    if (addr_normalize_rcpt(argv[0], addr, sizeof addr, err, sizeof err) < 0) {
        log_info("rcpt: queue=%s rcpt=%.80s result=reject why=\"%s\"", queue_id(ctx, s), argv[0], err);
        return reply(ctx, "501", "5.1.3", "Bad recipient address syntax");
    }
    struct rule_vars v;
    struct rcpt_check chk;
    base_vars(s, &v);
    v.v[RV_RCPT] = addr;
    v.v[RV_RCPT_DOMAIN] = addr_domain(addr);
    struct list_env env = runtime_env(s->run, queue_id(ctx, s));
    validate_rcpt(s->pol, &env, &v, *s->auth != '\0', false, &chk);
    switch (chk.verdict) {
    case RCPT_ACCEPT:
        log_debug("rcpt: queue=%s rcpt=<%s> result=accept why=\"%s\"", queue_id(ctx, s), addr, chk.why);
        add_rcpt(s, argv[0], addr);
        return SMFIS_CONTINUE;
    case RCPT_UNKNOWN:
        log_info("rcpt: queue=%s rcpt=<%s> list=%s result=reject code=550 ms=%ld", queue_id(ctx, s),
                 addr, chk.list, chk.ms);
        return reply(ctx, "550", "5.1.1", "Recipient address rejected: User unknown");
    case RCPT_UTF8_UNSUPPORTED:
        log_info("rcpt: queue=%s rcpt=<%s> list=%s result=reject code=553 why=\"%s\"",
                 queue_id(ctx, s), addr, chk.list, chk.why);
        return reply(ctx, "553", "5.6.7", "Non-ASCII address not supported by the mail store");
    case RCPT_TEMPFAIL:
        log_warning("rcpt: queue=%s rcpt=<%s> result=tempfail code=451 why=\"%s: %s\"",
                    queue_id(ctx, s), addr, chk.why, chk.err);
        return reply(ctx, "451", "4.4.3", "Recipient address verification unavailable, try again later");
    }
    return SMFIS_TEMPFAIL;
}

/* Decides next hops once all recipients are known; starts the spool if a relay is coming. */
static void plan(SMFICTX *ctx, struct session *s)
{
    char err[ERRLEN];
    struct rule_vars v;
    if (s->planned)
        return;
    s->planned = true;
    base_vars(s, &v);
    struct route_msg m = { s->rcpts, s->n, s->sender, queue_id(ctx, s), NULL };
    struct list_env env = runtime_env(s->run, queue_id(ctx, s));
    if (route_plan(s->pol, &env, &v, &m, err, sizeof err) < 0)
        log_warning("route: queue=%s a list lookup failed, condition taken as false: %s",
                    queue_id(ctx, s), err);
    if (!route_needs_body(&m))
        return;
    s->spooling = true;
    s->spool = spool_create(s->pol->spool_memory);

    char host[256] = "localhost", date[64], client[INET6_ADDRSTRLEN + 8] = "local", line[1024];
    time_t now = time(NULL);
    struct tm tm;
    gethostname(host, sizeof host - 1);
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    /* as MTAs write it: "from mx.example ([192.0.2.7])"; a HELO that is no host name is "unknown" */
    if (*s->remote_ip)
        snprintf(client, sizeof client, "[%s%s]", strchr(s->remote_ip, ':') ? "IPv6:" : "", s->remote_ip);
    int n = snprintf(line, sizeof line,
                     "Received: from %s (%s)\r\n\tby %s (milter-nexthop) with ESMTP id %s;\r\n\t%s\r\n",
                     addr_is_hostname(s->helo) ? s->helo : "unknown", client, host, queue_id(ctx, s), date);
    spool_write(s->spool, line, (size_t)n, err, sizeof err);
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    struct session *s = session_of(ctx);
    char err[ERRLEN];
    if (!s || !s->run)
        return carry_on(s, SMFIP_NR_HDR);
    plan(ctx, s);
    bool routing = strcasecmp(name, s->pol->routing_header) == 0;
    if (routing)
        s->routing_headers++;   /* the client's: removed from the MTA copy at eom ... */
    if (s->spooling && !s->spool_failed && !routing &&   /* ... and never relayed */
        (spool_write(s->spool, name, strlen(name), err, sizeof err) < 0 ||
         spool_write(s->spool, ": ", 2, err, sizeof err) < 0 ||
         spool_write(s->spool, value, strlen(value), err, sizeof err) < 0 ||
         spool_write(s->spool, "\r\n", 2, err, sizeof err) < 0)) {
        log_error("spool: queue=%s %s", queue_id(ctx, s), err);
        s->spool_failed = true;   /* answered at end of message */
    }
    return carry_on(s, SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    char err[ERRLEN];
    if (!s || !s->run)
        return carry_on(s, SMFIP_NR_EOH);
    plan(ctx, s);
    if (s->spooling && !s->spool_failed && spool_write(s->spool, "\r\n", 2, err, sizeof err) < 0) {
        log_error("spool: queue=%s %s", queue_id(ctx, s), err);
        s->spool_failed = true;
    }
    return carry_on(s, SMFIP_NR_EOH);
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    struct session *s = session_of(ctx);
    char err[ERRLEN];
    if (s && s->spooling && !s->spool_failed && spool_write(s->spool, chunk, len, err, sizeof err) < 0) {
        log_error("spool: queue=%s %s", queue_id(ctx, s), err);
        s->spool_failed = true;
    }
    return carry_on(s, SMFIP_NR_BODY);
}

/* Removes every routing header the client sent (last first, so the indexes hold). */
static void remove_routing_headers(SMFICTX *ctx, struct session *s)
{
    for (int i = s->routing_headers; i >= 1; i--)
        smfi_chgheader(ctx, (char *)s->pol->routing_header, i, NULL);
}

/* Names each next hop in a routing header. */
static void write_headers(SMFICTX *ctx, struct session *s)
{
    const char *hdr = s->pol->routing_header;
    for (size_t i = 0; i < s->n; i++) {
        struct route_rcpt *r = &s->rcpts[i];
        bool first = r->hop && r->action == ACTION_HEADER;
        for (size_t j = 0; first && j < i; j++)
            first = !(s->rcpts[j].hop == r->hop && s->rcpts[j].action == ACTION_HEADER);
        if (first)
            smfi_addheader(ctx, (char *)hdr, r->hop->id);
    }
}

static void progress(void *ctx) { smfi_progress(ctx); }

static const char *outcome_name(enum route_outcome o)
{
    static const char *const names[] = { "continue", "discard", "quarantine", "tempfail", "reject" };
    return names[o];
}

static sfsistat apply(SMFICTX *ctx, struct session *s, const struct route_result *res)
{
    char code[4] = "451", xcode[16] = "4.4.2";
    const char *text = res->reply;
    switch (res->outcome) {
    case ROUTE_CONTINUE:
        return SMFIS_CONTINUE;
    case ROUTE_DISCARD:
        return SMFIS_DISCARD;
    case ROUTE_QUARANTINE:
        smfi_quarantine(ctx, (char *)res->reason);
        return SMFIS_CONTINUE;
    case ROUTE_TEMPFAIL:
    case ROUTE_REJECT:
        if (strlen(text) > 4 && (text[0] == '4' || text[0] == '5') && text[3] == ' ') {
            memcpy(code, text, 3);
            text += 4;
            size_t x = strspn(text, "0123456789.");
            if (x > 0 && x < sizeof xcode && text[x] == ' ') {
                memcpy(xcode, text, x);
                xcode[x] = '\0';
                text += x + 1;
            } else {
                snprintf(xcode, sizeof xcode, "%c.0.0", code[0]);
            }
        }
        if (res->outcome == ROUTE_TEMPFAIL)
            memcpy(code, "451", 3), memcpy(xcode, "4.4.2", 6);
        smfi_setreply(ctx, code, xcode, (char *)(*text ? text : "Next hop refused the message"));
        return code[0] == '5' ? SMFIS_REJECT : SMFIS_TEMPFAIL;
    }
    return SMFIS_TEMPFAIL;
}

static sfsistat on_eom(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    struct route_result res = { 0 };
    if (!s || !s->run)
        return SMFIS_CONTINUE;
    plan(ctx, s);
    remove_routing_headers(ctx, s);   /* on every path: whatever follows may trust the header */
    if (s->spool_failed) {
        message_reset(s);
        return reply(ctx, "451", "4.3.0", "Temporary failure while storing the message, try again later");
    }
    struct route_msg m = { s->rcpts, s->n, s->sender, queue_id(ctx, s), s->spool };
    sfsistat st = SMFIS_CONTINUE;
    char reason[512];
    bool routed = false;
    for (size_t i = 0; i < s->n; i++)
        routed |= s->rcpts[i].hop != NULL;
    if (route_wants_quarantine(&m, reason, sizeof reason)) {
        smfi_quarantine(ctx, reason);
        res.outcome = ROUTE_QUARANTINE;
        snprintf(res.reason, sizeof res.reason, "%s", reason);
    } else if (routed) {
        write_headers(ctx, s);
        if (route_needs_body(&m)) {
            route_relay(s->pol, s->run->remotes, &m, progress, ctx, &res);
            for (size_t i = 0; i < s->n; i++)
                if (s->rcpts[i].code / 100 == 2 && res.outcome != ROUTE_DISCARD)
                    smfi_delrcpt(ctx, s->rcpts[i].raw);
        }
        st = apply(ctx, s, &res);
    }
    log_info("eom: queue=%s rcpts=%zu delivered=%zu outcome=%s ms=%ld%s%s%s", queue_id(ctx, s), s->n,
             res.delivered, outcome_name(res.outcome), (long)(now_ms() - s->started),
             *res.reason ? " reason=\"" : "", res.reason, *res.reason ? "\"" : "");
    message_reset(s);
    return st;
}

static sfsistat on_abort(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    if (s)
        message_reset(s);
    return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
    struct session *s = session_of(ctx);
    if (s) {
        message_reset(s);
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
