/*
 * cli.c - the one-shot modes: -n (check config), -q (one remote lookup),
 * -t (what the rules decide for a recipient: validation, next hop, action,
 * session.rcpt.mode and on-error, one line each), -V (versions).
 * Exit codes of -q: 0 yes, 1 no, 75 error, 78 bad config (DESIGN.md).
 * Must not: start the daemon or its listeners, relay mail, or keep the
 * password of -q auth after the lookup (it is wiped); -t never asks the
 * store about the recipient itself (validation is a dry run).
 */
#include <gnutls/gnutls.h>
#include <libconfig.h>
#include <libmilter/mfapi.h>
#ifdef NEXTHOP_HAVE_MICROHTTPD
#include <microhttpd.h>
#endif
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "lookup.h"
#include "pool.h"
#include "milter.h"
#include "rcpt.h"
#include "lists_pg.h"
#include "redis.h"
#include "route.h"
#include "validate.h"

static struct nh_config *load_or_print(const char *file)
{
    static char err[16384];
    struct nh_config *cfg = config_load(file, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    return cfg;
}

static void warn_secret(const struct nh_config *cfg)
{
    char text[2048];
    if (!cfg->world_readable_secret)
        return;
    config_secret_warning(cfg, text, sizeof text);
    fprintf(stderr, "%s: warning: %s\n", cfg->path, text);
}

int cli_check(const char *file, bool verbose)
{
    log_init("milter-nexthop", false, LOG_LVL_WARNING);
    struct nh_config *cfg = load_or_print(file);
    if (!cfg)
        return 1;
    warn_secret(cfg);
    if (verbose)
        config_dump(cfg, stdout);
    printf("%s: ok\n", file);
    config_unref(cfg);
    return 0;
}

static int read_password(char *buf, size_t len)
{
    if (!fgets(buf, (int)len, stdin))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int query_expn(struct remote_rt *rt, const char *addr)
{
    char reply[256], err[ERRLEN];
    char *members = NULL;
    const char *id = rt->def->id;
    int res = pool_lookup(rt->pool, LOOKUP_EXPN, addr, NULL, &members, reply, sizeof reply,
                          err, sizeof err);
    if (res == LOOKUP_YES && members)
        fputs(members, stdout);
    if (res == LOOKUP_NO || res == LOOKUP_UTF8_UNSUPPORTED)
        fprintf(stderr, "%s: no: %s\n", id, reply);
    else if (res == LOOKUP_ERROR)
        fprintf(stderr, "%s: error: %s\n", id, err);
    free(members);
    return res == LOOKUP_YES ? 0 : res == LOOKUP_ERROR ? EX_TEMPFAIL : 1;
}

int cli_query(const char *file, const char *remote_id, const char *kind_name, const char *arg)
{
    char err[ERRLEN], addr[ADDR_MAX + 1], password[1024] = "";
    log_init("milter-nexthop", false, LOG_LVL_WARNING);
    struct nh_config *cfg = load_or_print(file);
    if (!cfg)
        return EX_CONFIG;
    const struct remote_def *r = config_remote(cfg, remote_id);
    int kind = lookup_kind_parse(kind_name), rc = EX_CONFIG;
    struct nh_runtime *run = NULL;
    if (!r)
        fprintf(stderr, "%s: no remote '%s' is defined\n", file, remote_id);
    else if (!r->lookup)
        fprintf(stderr, "%s:%d: remote %s has lookup = false\n", file, r->line, r->id);
    else if (kind < 0)
        fprintf(stderr, "milter-nexthop: unknown lookup '%s' (rcpt, vrfy, expn, auth)\n", kind_name);
    /* one lookup: nothing to learn about catch-all domains for later ones */
    else if (!(run = runtime_start(config_ref(cfg), NULL, REMOTE_SET_NO_LEARN, err, sizeof err)))
        fprintf(stderr, "%s\n", err);
    else
        rc = -1;
    if (rc != -1)
        goto out;
    struct remote_rt *rt = remote_set_find(run->remotes, r->id);
    if (kind == LOOKUP_AUTH) {
        if (strpbrk(arg, "\r\n") || strlen(arg) > ADDR_MAX || read_password(password, sizeof password) < 0) {
            fprintf(stderr, "milter-nexthop: auth wants a user name and a password on stdin\n");
            rc = EX_USAGE;
            goto out;
        }
        snprintf(addr, sizeof addr, "%s", arg);
    } else if ((kind == LOOKUP_RCPT ? addr_normalize_rcpt(arg, addr, sizeof addr, err, sizeof err)
                                    : addr_normalize(arg, false, addr, sizeof addr, err, sizeof err)) < 0) {
        fprintf(stderr, "milter-nexthop: not an address: %s\n", err);
        rc = 1;
        goto out;
    }
    if (kind == LOOKUP_EXPN) {
        rc = query_expn(rt, addr);
        goto out;
    }
    struct lookup_info info;
    int res = lookup_run(rt, (enum lookup_kind)kind, addr, password, NULL, &info, err, sizeof err);
    if (res == LOOKUP_NO || res == LOOKUP_UTF8_UNSUPPORTED)
        fprintf(stderr, "%s: no: %s\n", r->id, *info.reply ? info.reply : "not found");
    else if (res == LOOKUP_ERROR)
        fprintf(stderr, "%s: error: %s\n", r->id, err);
    rc = res == LOOKUP_YES ? 0 : res == LOOKUP_ERROR ? EX_TEMPFAIL : 1;
out:
    explicit_bzero(password, sizeof password);
    runtime_unref(run);
    config_unref(cfg);
    return rc;
}

static int set_xvars(struct rule_vars *vars, char **xvars, int nx)
{
    for (int i = 0; i < nx; i++) {
        char *eq = strchr(xvars[i], '=');
        *eq = '\0';
        int v = rule_var_parse(xvars[i]);
        if (v < 0 || v == RV_RCPT || v == RV_RCPT_DOMAIN || v == RV_SENDER || v == RV_SENDER_DOMAIN) {
            fprintf(stderr, "milter-nexthop: -x %s: unknown variable (use -s for the sender)\n", xvars[i]);
            return -1;
        }
        vars->v[v] = eq + 1;
    }
    return 0;
}

int cli_test(const char *file, const char *rcpt, const char *sender, char **xvars, int nx)
{
    char err[ERRLEN], addr[ADDR_MAX + 1], from[ADDR_MAX + 1] = "";
    struct rule_vars vars = { { 0 } };
    log_init("milter-nexthop", false, LOG_LVL_WARNING);
    if (addr_normalize_rcpt(rcpt, addr, sizeof addr, err, sizeof err) < 0) {
        fprintf(stderr, "milter-nexthop: not an address (the milter answers 501 5.1.3): %s\n", err);
        return EX_USAGE;
    }
    if (sender && addr_normalize(sender, true, from, sizeof from, err, sizeof err) < 0) {
        fprintf(stderr, "milter-nexthop: not an address: %s\n", err);
        return EX_USAGE;
    }
    struct nh_config *cfg = load_or_print(file);
    if (!cfg)
        return EX_CONFIG;
    int rc = EX_CONFIG;
    if (set_xvars(&vars, xvars, nx) < 0) {
        rc = EX_USAGE;
        goto out;
    }
    struct nh_runtime *run = runtime_start(config_ref(cfg), NULL, 0, err, sizeof err);
    if (!run) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    struct list_env env = runtime_env(run, NULL);
    vars.v[RV_RCPT] = addr;
    vars.v[RV_RCPT_DOMAIN] = addr_domain(addr);
    vars.v[RV_SENDER] = from;
    vars.v[RV_SENDER_DOMAIN] = addr_domain(from);

    struct rcpt_check chk;
    validate_rcpt(&cfg->policy, &env, &vars,
                  vars.v[RV_AUTHENTICATED_AS] && *vars.v[RV_AUTHENTICATED_AS], true, &chk);
    if (chk.verdict == RCPT_TEMPFAIL)
        printf("validation: error (%s: %s)\n", chk.why, chk.err);
    else
        printf("validation: %s\n", chk.list ? chk.list : "none");

    struct route_rcpt rr = { .raw = (char *)rcpt };
    snprintf(rr.addr, sizeof rr.addr, "%s", addr);
    struct route_msg m = { .rcpts = &rr, .n = 1, .sender = from };
    if (route_plan(&cfg->policy, &env, &vars, &m, err, sizeof err) < 0)
        fprintf(stderr, "milter-nexthop: a list lookup failed while evaluating rules: %s\n", err);
    static const char *const actions[] = { "header", "relay", "quarantine" };
    printf("next-hop: %s\n", rr.hop ? rr.hop->id : "false");
    printf("action: %s\n", actions[rr.action]);

    struct rcpt_enforcement enf;
    if (rcpt_enforcement(&cfg->policy, &env, &vars, &enf, err, sizeof err) < 0)
        fprintf(stderr, "milter-nexthop: a list lookup failed while evaluating rules: %s\n", err);
    printf("mode: %s\n", enf.mode == RCPT_MODE_REPORT ? "report" : "enforce");
    printf("on-error: %s\n", enf.on_error == RCPT_ON_ERROR_ACCEPT ? "accept" : "tempfail");
    runtime_unref(run);
    rc = 0;
out:
    config_unref(cfg);
    return rc;
}

int cli_version(void)
{
    unsigned int major, minor, patch;
    smfi_version(&major, &minor, &patch);
    printf("milter-nexthop %s\n", NEXTHOP_VERSION);
    printf("libmilter %u.%u.%u\n", major, minor, patch);
    printf("gnutls %s\n", gnutls_check_version(NULL));
    printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
    printf("sqlite %s\n", sqlite3_libversion());
#ifdef NEXTHOP_HAVE_MICROHTTPD
    printf("libmicrohttpd %s\n", MHD_get_version());
#endif
    if (pg_list_libversion() > 0)
        printf("libpq %d.%d\n", pg_list_libversion() / 10000, pg_list_libversion() % 10000);
    if (redis_client_version())
        printf("%s\n", redis_client_version());
    return 0;
}
