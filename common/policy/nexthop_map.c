/*
 * nexthop_map.c - next hop of a recipient or domain as a Postfix transport
 * or a Sendmail mailertable value (nexthop_map.h).
 * Must not: touch sockets, log, or spell a next hop that the MTA cannot
 * reach as given (imap, or smtp over a unix socket for Postfix: an error).
 */
#include "nexthop_map.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *unix_socket_path(const char *address)
{
    return strncmp(address, "unix:", 5) == 0 ? address + 5 : NULL;
}

static bool is_ipv6(const char *address) { return strchr(address, ':') != NULL; }

static int fits(int n, size_t outlen, const char *what, char *err, size_t errlen)
{
    if (n < 0 || (size_t)n >= outlen) {
        set_error(err, errlen, "%s is too long", what);
        return -1;
    }
    return 0;
}

int nexthop_postfix_transport(const struct remote_def *r, char *out, size_t outlen, char *err,
                              size_t errlen)
{
    const char *path = unix_socket_path(r->ep.address);
    const char *open = is_ipv6(r->ep.address) ? "[" : "", *close = *open ? "]" : "";
    int n;
    if (r->ep.protocol == PROTO_IMAP) {
        set_error(err, errlen, "next hop %s speaks imap, which delivers no mail", r->id);
        return -1;
    }
    if (r->ep.protocol == PROTO_LMTP && path)
        n = snprintf(out, outlen, "lmtp:unix:%s", path);
    else if (r->ep.protocol == PROTO_LMTP)
        n = snprintf(out, outlen, "lmtp:inet:%s%s%s:%d", open, r->ep.address, close, r->ep.port);
    else if (path) {
        set_error(err, errlen, "next hop %s is smtp over a unix socket, which Postfix's smtp "
                               "client cannot reach (use protocol lmtp)", r->id);
        return -1;
    } else
        n = snprintf(out, outlen, "smtp:[%s]:%d", r->ep.address, r->ep.port);
    return fits(n, outlen, "transport", err, errlen);
}

void nexthop_sendmail_mailer_name(const char *remote_id, char *out, size_t outlen)
{
    /* Sendmail mailer names are one token: keep letters, digits, '-' and '_'. */
    snprintf(out, outlen, "nexthop_%s", remote_id);
    for (size_t i = 8; i < strlen(out); i++) {
        char c = out[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            out[i] = '_';
    }
}

int nexthop_sendmail_mailertable(const struct remote_def *r, char *out, size_t outlen, char *err,
                                 size_t errlen)
{
    char mailer[128];
    int n;
    if (r->ep.protocol == PROTO_IMAP) {
        set_error(err, errlen, "next hop %s speaks imap, which delivers no mail", r->id);
        return -1;
    }
    nexthop_sendmail_mailer_name(r->id, mailer, sizeof mailer);
    if (unix_socket_path(r->ep.address))   /* the mailer's A=FILE names the socket */
        n = snprintf(out, outlen, "%s:localhost", mailer);
    else if (is_ipv6(r->ep.address))
        n = snprintf(out, outlen, "%s:[IPv6:%s]", mailer, r->ep.address);
    else
        n = snprintf(out, outlen, "%s:[%s]", mailer, r->ep.address);
    return fits(n, outlen, "mailertable value", err, errlen);
}

static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int nexthop_request_parse(const char *req, size_t len, enum nexthop_map_kind *kind, char *key,
                          size_t keylen, char *err, size_t errlen)
{
    const char *sp = memchr(req, ' ', len);
    if (!printable(req, len)) {
        set_error(err, errlen, "malformed request: control characters");
        return -1;
    }
    if (!sp || sp == req || sp + 1 == req + len) {
        set_error(err, errlen, "malformed request: expected \"<map> <key>\"");
        return -1;
    }
    size_t mlen = (size_t)(sp - req), klen = len - mlen - 1;
    if (mlen == 7 && memcmp(req, "nexthop", 7) == 0)
        *kind = NEXTHOP_MAP_POSTFIX;
    else if (mlen == 11 && memcmp(req, "mailertable", 11) == 0)
        *kind = NEXTHOP_MAP_SENDMAIL;
    else {
        char shown[64];
        snprintf(shown, sizeof shown, "%.*s", mlen > 40 ? 40 : (int)mlen, req);
        set_error(err, errlen, "unknown map '%s' (this server answers nexthop and mailertable)",
                  shown);
        return -1;
    }
    if (klen >= keylen)
        return 1;
    memcpy(key, sp + 1, klen);
    key[klen] = '\0';
    return 0;
}

int nexthop_key_vars(const char *key, char addr[ADDR_MAX + 1], struct rule_vars *vars)
{
    char err[ERRLEN], probe[ADDR_MAX + 3];
    bool is_addr = strchr(key, '@') != NULL;
    /* A bare domain is checked as the domain of an address. */
    if (snprintf(probe, sizeof probe, "%s%s", is_addr ? "" : "x@", key) >= (int)sizeof probe)
        return -1;
    if (addr_normalize(probe, false, addr, ADDR_MAX + 1, err, sizeof err) < 0)
        return -1;
    const char *domain = addr_domain(addr);
    if (!*domain)
        return -1;
    vars->v[RV_RCPT] = is_addr ? addr : NULL;
    vars->v[RV_RCPT_DOMAIN] = domain;
    return 0;
}

static void answer_error(char *reply, size_t replylen, const char *status, const char *why)
{
    char shown[NEXTHOP_MAP_REPLY_MAX];
    str_printable(shown, sizeof shown, why);
    snprintf(reply, replylen, "%s %s", status, shown);
}

void nexthop_map_answer(const struct policy *pol, const struct list_env *env, const char *req,
                        size_t len, char *reply, size_t replylen)
{
    char key[ADDR_MAX + 1], addr[ADDR_MAX + 1], err[ERRLEN], value[NEXTHOP_MAP_REPLY_MAX];
    enum nexthop_map_kind kind;
    struct rule_vars vars = { { 0 } };
    struct rule_result hop;

    int rc = nexthop_request_parse(req, len, &kind, key, sizeof key, err, sizeof err);
    if (rc < 0) {
        answer_error(reply, replylen, "PERM", err);
        return;
    }
    if (rc > 0 || nexthop_key_vars(key, addr, &vars) < 0) {
        snprintf(reply, replylen, "NOTFOUND ");
        return;
    }
    if (rule_eval(pol->next_hop, &vars, env, &hop, err, sizeof err) < 0) {
        answer_error(reply, replylen, "TEMP", err);
        return;
    }
    if (hop.is_false || !hop.remote) {
        snprintf(reply, replylen, "NOTFOUND ");
        return;
    }
    rc = kind == NEXTHOP_MAP_POSTFIX
             ? nexthop_postfix_transport(hop.remote, value, sizeof value, err, sizeof err)
             : nexthop_sendmail_mailertable(hop.remote, value, sizeof value, err, sizeof err);
    if (rc < 0)
        answer_error(reply, replylen, "TEMP", err);
    else
        snprintf(reply, replylen, "OK %s", value);
}
