/*
 * config.c - load, check and free the configuration (see config.h).
 *
 * The schema below is the single source of truth for every key: its type,
 * default and one line of help. Loading walks the libconfig tree against
 * it (unknown keys and wrong types are errors with FILE:LINE), applies
 * defaults, copies values into struct nh_config / struct remote_def by
 * offset, then builds lists and parses rules, which resolve every name
 * they use. All errors are collected, not just the first.
 *
 * Must not: open network connections (lists may open their databases;
 * pools belong to runtime.c), or keep secrets anywhere but remote_def.ep.auth_secret.
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "duration.h"
#include "lists.h"
#include "log.h"
#include "redis.h"
#include "rules.h"
#include "endpoint.h"
#include "util.h"

enum key_type {
    K_GROUP = 0, K_STRING, K_INT, K_BOOL, K_DURATION, K_MODE, K_RULE, K_LISTVAL,
};

enum key_scope { S_NONE = 0, S_GLOBAL, S_REMOTE };

struct key_def {
    const char *path;      /* '*' stands for an id chosen by the user */
    enum key_type type;
    const char *def;       /* default as text, NULL = none */
    enum key_scope scope;
    size_t offset;         /* into nh_config or remote_def */
    const char *help;
};

#define G(f) S_GLOBAL, offsetof(struct nh_config, f)
#define R(f) S_REMOTE, offsetof(struct remote_def, f)
#define NONE S_NONE, 0

static const struct key_def schema[] = {
    { "milter", K_GROUP, NULL, NONE, "the daemon itself" },
    { "milter.socket", K_STRING, "unix:/run/milter-nexthop/milter.sock", G(socket),
      "libmilter socket: unix:/path or inet:PORT@ADDRESS (-p overrides)" },
    { "milter.socket-mode", K_MODE, "0660", G(socket_mode), "permissions of a unix socket" },
    { "milter.user", K_STRING, NULL, G(user), "user to switch to after the socket exists (-u overrides)" },
    { "milter.group", K_STRING, NULL, G(group), "group of the socket and of the process" },
    { "milter.pidfile", K_STRING, NULL, G(pidfile), "pid file (-P overrides)" },
    { "milter.log", K_GROUP, NULL, NONE, "logging" },
    { "milter.log.level", K_STRING, "info", NONE, "error | warning | info | debug" },
    { "milter.log.syslog", K_BOOL, "true", G(log_syslog), "log to syslog (mail facility) unless -f" },

    { "remote", K_GROUP, NULL, NONE, "remote hosts, one group per id" },
    { "remote.*", K_GROUP, NULL, NONE, "one remote host" },
    { "remote.*.address", K_STRING, NULL, R(ep.address), "host name, IP address or unix:/path" },
    { "remote.*.port", K_INT, NULL, NONE, "TCP port (default by protocol: smtp 25/465, lmtp 24, imap 143/993)" },
    { "remote.*.protocol", K_STRING, "smtp", NONE, "lmtp | smtp | imap" },
    { "remote.*.concurrency", K_INT, "10", R(concurrency), "most connections open at once" },
    { "remote.*.timeout", K_DURATION, "60s", R(ep.timeout_ms), "connect limit; commands wait at most min(timeout, 25s)" },
    { "remote.*.lookup", K_BOOL, "false", R(lookup), "may be used for lookups" },
    { "remote.*.lowercase-localpart", K_BOOL, "false", R(lowercase_localpart), "lower-case local parts before looking them up" },
    { "remote.*.catch-all", K_BOOL, "true", R(catch_all), "detect domains that accept any local part and stop probing them" },
    { "remote.*.cache", K_GROUP, NULL, NONE, "lookup cache" },
    { "remote.*.cache.entries", K_INT, "1024", R(cache_entries), "entries in each of the positive and negative caches" },
    { "remote.*.cache.ttl", K_GROUP, NULL, NONE, "cache lifetimes" },
    { "remote.*.cache.ttl.positive", K_DURATION, "1d", R(ttl_positive_ms), "lifetime of a yes" },
    { "remote.*.cache.ttl.negative", K_DURATION, "1h", R(ttl_negative_ms), "lifetime of a no" },
    { "remote.*.cache.ttl.stale", K_DURATION, "1h", R(ttl_stale_ms), "an expired yes is still served this long while it is refreshed" },
    { "remote.*.cache.ttl.auth", K_DURATION, "5m", R(ttl_auth_ms), "lifetime of a successful AUTH check (never served stale; failures never cached); 0 = never cached" },
    { "remote.*.tls", K_GROUP, NULL, NONE, "TLS" },
    { "remote.*.tls.enable", K_BOOL, "true", R(ep.tls_enable), "false = plain text (loopback and unix sockets only)" },
    { "remote.*.tls.implicit", K_BOOL, "true", R(ep.tls_implicit), "TLS from the start; false = STARTTLS (required)" },
    { "remote.*.tls.allow-invalid-certs", K_BOOL, "false", R(ep.tls_allow_invalid), "accept self-signed and invalid certificates" },
    { "remote.*.tls.server-name", K_STRING, NULL, R(ep.tls_server_name), "name to verify (default: address)" },
    { "remote.*.auth", K_GROUP, NULL, NONE, "authentication to the remote" },
    { "remote.*.auth.username", K_STRING, NULL, R(ep.auth_username), "user name" },
    { "remote.*.auth.secret", K_STRING, NULL, R(ep.auth_secret), "password (prefer secret-file)" },
    { "remote.*.auth.secret-file", K_STRING, NULL, NONE, "file holding the password (first line)" },
    { "remote.*.limits", K_GROUP, NULL, NONE, "connection limits" },
    { "remote.*.limits.errors", K_INT, "3", R(limits_errors), "failures before a connection is closed" },
    { "remote.*.limits.requests", K_INT, "50", R(limits_requests), "requests per connection" },

    { "list", K_GROUP, NULL, NONE, "lists named list/<id>" },
    { "list.*", K_LISTVAL, NULL, NONE, "array of strings, or \"file:///path\"" },
    { "database", K_GROUP, NULL, NONE, "SQL lists named <id>/<lookup>" },
    { "database.*", K_GROUP, NULL, NONE, "one database" },
    { "database.*.type", K_STRING, "sqlite", NONE, "sqlite | postgresql" },
    { "database.*.path", K_STRING, NULL, NONE, "sqlite database file" },
    { "database.*.conninfo", K_STRING, NULL, NONE, "postgresql connection string" },
    { "database.*.lookup", K_GROUP, NULL, NONE, "named queries" },
    { "database.*.lookup.*", K_STRING, NULL, NONE, "query with one ? parameter; a row = in the list" },

    { "session", K_GROUP, NULL, NONE, "SMTP session stages" },
    { "session.rcpt", K_GROUP, NULL, NONE, "RCPT TO stage" },
    { "session.rcpt.lookup", K_GROUP, NULL, NONE, "recipient validation" },
    { "session.rcpt.lookup.domains", K_RULE, NULL, NONE, "(rule) list of domains whose recipients are validated; unset = all" },
    { "session.rcpt.lookup.addresses", K_RULE, NULL, NONE, "(rule) list that holds existing recipients, e.g. remote/lmtp" },
    { "session.rcpt.skip-authenticated", K_BOOL, "true", G(policy.skip_authenticated), "no validation for authenticated senders" },

    { "queue", K_GROUP, NULL, NONE, "queue" },
    { "queue.outbound", K_GROUP, NULL, NONE, "outbound routing" },
    { "queue.outbound.next-hop", K_RULE, "false", NONE, "(rule) remote id or false (leave to the MTA)" },

    { "routing", K_GROUP, NULL, NONE, "what happens at end of message" },
    { "routing.action", K_RULE, "header", NONE, "(rule) header | relay | quarantine" },
    { "routing.header", K_STRING, "X-Nexthop", G(policy.routing_header), "header naming the next hop" },
    { "routing.on-tempfail", K_STRING, "quarantine", NONE, "quarantine | tempfail | accept" },
    { "routing.timeout", K_DURATION, "2m", G(policy.routing_timeout_ms), "budget for relaying one message" },
    { "routing.spool-memory", K_INT, "1048576", NONE, "message bytes kept in memory before a temp file" },

    { "stats", K_GROUP, NULL, NONE, "Prometheus metrics" },
    { "stats.listen", K_STRING, NULL, G(stats_listen), "ADDRESS:PORT serving GET /metrics" },
    { "cache", K_GROUP, NULL, NONE, "shared second-level cache" },
    { "cache.redis", K_STRING, NULL, G(redis), "ADDRESS:PORT of redis" },
    { "cache.prefix", K_STRING, "nexthop:", G(redis_prefix), "key prefix in redis" },
    { "socketmap", K_GROUP, NULL, NONE, "socketmap service" },
    { "socketmap.listen", K_STRING, NULL, G(socketmap_listen), "inet:ADDRESS:PORT or unix:/path" },
    { "auth-service", K_GROUP, NULL, NONE, "saslauthd-protocol password checks" },
    { "auth-service.socket", K_STRING, NULL, G(auth_service_socket), "saslauthd mux socket path" },
    { "auth-service.lookup", K_STRING, NULL, G(auth_service_lookup), "remote/<id> to check passwords against" },
};

struct loader {
    struct nh_config *cfg;
    config_t lc;
    const char *file;
    char *err;         /* all errors, newline separated */
    size_t errlen;
    int nerrors;
    bool truncated;       /* err is full */
    bool inline_secret;   /* some remote has auth.secret in this file */
};

static void add_error(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Appends one complete line to the error text, or, when it no longer fits,
 * a last line saying so: every line stays a whole "FILE:LINE: ..." line.
 */
static void append_error_line(struct loader *ld, const char *line)
{
    static const char more[] = "(more errors not shown)";
    size_t used = strlen(ld->err), need = strlen(line) + (used ? 1 : 0);
    ld->nerrors++;
    if (ld->truncated)
        return;
    if (used + need + sizeof more + 1 >= ld->errlen) {
        ld->truncated = true;
        line = more;
        need = strlen(line) + (used ? 1 : 0);
        if (used + need >= ld->errlen)
            return;
    }
    snprintf(ld->err + used, ld->errlen - used, "%s%s", used ? "\n" : "", line);
}

static void add_error(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
    char msg[ERRLEN], line[ERRLEN + 600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    str_printable(msg, sizeof msg, msg);   /* a value may hold a newline: one error, one line */
    const char *file = s && config_setting_source_file(s) ? config_setting_source_file(s) : ld->file;
    int line_no = s ? (int)config_setting_source_line(s) : 0;
    if (line_no > 0)
        snprintf(line, sizeof line, "%s:%d: %s", file, line_no, msg);
    else
        snprintf(line, sizeof line, "%s: %s", file, msg);
    append_error_line(ld, line);
}

/* Appends an already formatted "FILE:LINE: ..." message from a module. */
static void add_raw_error(struct loader *ld, const char *raw)
{
    char msg[ERRLEN * 2];
    str_printable(msg, sizeof msg, raw);
    append_error_line(ld, msg);
}

/* "remote.lmtp.tls" -> "remote.*.tls": ids replaced by '*'. */
static void pattern_of(const char *parent_pattern, const char *name, char *out, size_t len)
{
    bool wildcard = strcmp(parent_pattern, "remote") == 0 || strcmp(parent_pattern, "list") == 0 ||
                    strcmp(parent_pattern, "database") == 0 ||
                    strcmp(parent_pattern, "database.*.lookup") == 0;
    if (!*parent_pattern)
        snprintf(out, len, "%s", name);
    else
        snprintf(out, len, "%s.%s", parent_pattern, wildcard ? "*" : name);
}

static const struct key_def *schema_find(const char *pattern)
{
    for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
        if (strcmp(schema[i].path, pattern) == 0)
            return &schema[i];
    return NULL;
}

static const char *type_name(enum key_type t)
{
    switch (t) {
    case K_GROUP: return "a group { ... }";
    case K_STRING: return "a string";
    case K_INT: return "an integer";
    case K_BOOL: return "true or false";
    case K_DURATION: return "a duration (\"30s\", \"1h\") or milliseconds";
    case K_MODE: return "an octal mode string such as \"0660\"";
    case K_RULE: return "a value or a list of rule branches";
    case K_LISTVAL: return "an array of strings or \"file:///path\"";
    }
    return "?";
}

static bool type_ok(const config_setting_t *s, enum key_type t)
{
    int st = config_setting_type(s);
    switch (t) {
    case K_GROUP: return st == CONFIG_TYPE_GROUP;
    case K_STRING: return st == CONFIG_TYPE_STRING;
    case K_INT: return st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    case K_BOOL: return st == CONFIG_TYPE_BOOL;
    case K_DURATION: return st == CONFIG_TYPE_STRING || st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    case K_MODE: return st == CONFIG_TYPE_STRING || st == CONFIG_TYPE_INT;
    case K_RULE: return st == CONFIG_TYPE_STRING || st == CONFIG_TYPE_BOOL || st == CONFIG_TYPE_LIST ||
                        st == CONFIG_TYPE_INT;
    case K_LISTVAL:
        if (st == CONFIG_TYPE_STRING)
            return true;
        if (st != CONFIG_TYPE_ARRAY && st != CONFIG_TYPE_LIST)
            return false;
        for (int i = 0; i < config_setting_length(s); i++)
            if (config_setting_type(config_setting_get_elem(s, (unsigned)i)) != CONFIG_TYPE_STRING)
                return false;
        return true;
    }
    return false;
}

/* Checks every key of the tree against the schema. */
static void check_tree(struct loader *ld, const config_setting_t *group, const char *pattern)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        char child[256], path[512];
        const char *name = config_setting_name(s);
        pattern_of(pattern, name ? name : "?", child, sizeof child);
        snprintf(path, sizeof path, "%s", child);
        const struct key_def *k = schema_find(child);
        if (!k) {
            add_error(ld, s, "unknown key '%s'", name ? name : "?");
            continue;
        }
        if (!type_ok(s, k->type)) {
            add_error(ld, s, "%s: must be %s", name, type_name(k->type));
            continue;
        }
        if (k->type == K_GROUP)
            check_tree(ld, s, child);
    }
}

static void *field_ptr(void *base, const struct key_def *k) { return (char *)base + k->offset; }

static int parse_mode(const char *text, int *mode_r)
{
    char *end;
    long v = strtol(text, &end, 8);
    if (*text == '\0' || *end != '\0' || v < 0 || v > 0777)
        return -1;
    *mode_r = (int)v;
    return 0;
}

/* Stores one value (from setting s, or from the default text) into the field of k. */
static void store_value(struct loader *ld, void *base, const struct key_def *k,
                        const config_setting_t *s, const char *name)
{
    char e[ERRLEN];
    void *f = field_ptr(base, k);
    switch (k->type) {
    case K_STRING:
        *(char **)f = xstrdup(s ? config_setting_get_string(s) : k->def);
        break;
    case K_INT: {
        long long v = s ? config_setting_get_int64(s) : atoll(k->def);
        if (v < 0 || v > 1000000000) {
            add_error(ld, s, "%s: %lld is out of range", name, v);
            v = 0;
        }
        *(int *)f = (int)v;
        break;
    }
    case K_BOOL:
        *(bool *)f = s ? config_setting_get_bool(s) : strcmp(k->def, "true") == 0;
        break;
    case K_DURATION: {
        int64_t ms = 0;
        if (s && config_setting_type(s) != CONFIG_TYPE_STRING)
            ms = config_setting_get_int64(s);
        else if (duration_parse(s ? config_setting_get_string(s) : k->def, &ms, e, sizeof e) < 0)
            add_error(ld, s, "%s: %s", name, e);
        if (ms < 0)
            add_error(ld, s, "%s: must not be negative", name);
        *(int64_t *)f = ms;
        break;
    }
    case K_MODE: {
        int mode = 0;
        if (s && config_setting_type(s) == CONFIG_TYPE_INT)
            mode = config_setting_get_int(s);
        else if (parse_mode(s ? config_setting_get_string(s) : k->def, &mode) < 0)
            add_error(ld, s, "%s: must be an octal mode such as \"0660\"", name);
        *(int *)f = mode;
        break;
    }
    default:
        break;
    }
}

/* Fills every field of one scope from group `root` (whose schema prefix is prefix). */
static void load_scope(struct loader *ld, void *base, enum key_scope scope,
                       const config_setting_t *root, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
        const struct key_def *k = &schema[i];
        if (k->scope != scope || strncmp(k->path, prefix, plen) != 0)
            continue;
        const char *rel = k->path + plen;
        const config_setting_t *s = root ? config_setting_lookup((config_setting_t *)root, rel) : NULL;
        if (s && !type_ok(s, k->type))
            continue;   /* already reported by check_tree */
        if (s || k->def)
            store_value(ld, base, k, s, k->path);
    }
}

static const char *lookup_string(const config_setting_t *g, const char *path, const char *def)
{
    const config_setting_t *s = g ? config_setting_lookup((config_setting_t *)g, path) : NULL;
    return s && config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : def;
}

static const config_setting_t *lookup_setting(struct loader *ld, const char *path)
{
    return config_lookup(&ld->lc, path);
}

static int default_port(enum remote_proto p, bool implicit_tls)
{
    switch (p) {
    case PROTO_SMTP: return implicit_tls ? 465 : 25;
    case PROTO_LMTP: return 24;
    case PROTO_IMAP: return implicit_tls ? 993 : 143;
    }
    return 25;
}

static char *read_secret_file(struct loader *ld, const config_setting_t *s, const char *path)
{
    FILE *fp = fopen(path, "r");
    char line[1024];
    struct stat st;
    if (!fp) {
        add_error(ld, s, "auth.secret-file: cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(fp), &st) == 0 && (st.st_mode & S_IROTH) && !ld->cfg->exposed_secret_file) {
        ld->cfg->world_readable_secret = true;
        ld->cfg->exposed_secret_file = xstrdup(path);
    }
    if (!fgets(line, sizeof line, fp))
        line[0] = '\0';
    fclose(fp);
    line[strcspn(line, "\r\n")] = '\0';
    if (!*line) {
        add_error(ld, s, "auth.secret-file: %s is empty", path);
        return NULL;
    }
    char *secret = xstrdup(line);
    explicit_bzero(line, sizeof line);
    return secret;
}

static bool is_loopback(const char *address)
{
    return strncmp(address, "unix:", 5) == 0 || strncmp(address, "127.", 4) == 0 ||
           strcmp(address, "::1") == 0 || strcmp(address, "localhost") == 0;
}

static void load_remote(struct loader *ld, struct remote_def *r, const config_setting_t *g)
{
    r->id = xstrdup(config_setting_name(g));
    r->ep.name = r->id;
    r->line = (int)config_setting_source_line(g);
    load_scope(ld, r, S_REMOTE, g, "remote.*.");

    const char *proto = lookup_string(g, "protocol", "smtp");
    if (strcmp(proto, "smtp") == 0)
        r->ep.protocol = PROTO_SMTP;
    else if (strcmp(proto, "lmtp") == 0)
        r->ep.protocol = PROTO_LMTP;
    else if (strcmp(proto, "imap") == 0)
        r->ep.protocol = PROTO_IMAP;
    else
        add_error(ld, config_setting_lookup((config_setting_t *)g, "protocol"),
                  "remote.%s.protocol: unknown protocol '%s' (lmtp, smtp or imap)", r->id, proto);

    if (!r->ep.address)
        add_error(ld, g, "remote.%s: address is missing", r->id);
    const config_setting_t *port = config_setting_lookup((config_setting_t *)g, "port");
    r->ep.port = port && type_ok(port, K_INT) ? config_setting_get_int(port)
                                           : default_port(r->ep.protocol, r->ep.tls_implicit);
    if (r->ep.port < 0 || r->ep.port > 65535 || (r->ep.port == 0 && !(r->ep.address && !strncmp(r->ep.address, "unix:", 5))))
        add_error(ld, port ? port : g, "remote.%s.port: %d is not a TCP port", r->id, r->ep.port);
    if (r->concurrency < 1)
        add_error(ld, g, "remote.%s.concurrency: must be at least 1", r->id);
    if (r->limits_requests < 1 || r->limits_errors < 1)
        add_error(ld, g, "remote.%s.limits: errors and requests must be at least 1", r->id);
    if (r->ep.timeout_ms < 100)
        add_error(ld, g, "remote.%s.timeout: must be at least 100ms", r->id);

    const config_setting_t *sf = config_setting_lookup((config_setting_t *)g, "auth.secret-file");
    if (sf && type_ok(sf, K_STRING)) {
        if (r->ep.auth_secret)
            add_error(ld, sf, "remote.%s.auth: set secret or secret-file, not both", r->id);
        else
            r->ep.auth_secret = read_secret_file(ld, sf, config_setting_get_string(sf));
    }
    if (config_setting_lookup((config_setting_t *)g, "auth.secret"))
        ld->inline_secret = true;   /* checked against the file mode later */
    if (r->ep.auth_secret && !r->ep.auth_username)
        add_error(ld, g, "remote.%s.auth: secret without username", r->id);
    if (!r->ep.tls_enable && r->ep.address && !is_loopback(r->ep.address))
        log_warning("%s:%d: remote.%s: tls.enable = false on a non-loopback address sends mail and "
                    "passwords in plain text", ld->file, r->line, r->id);
}

static void load_lists(struct loader *ld)
{
    const config_setting_t *g = lookup_setting(ld, "list");
    for (int i = 0; g && i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char name[300], e[ERRLEN];
        if (!type_ok(s, K_LISTVAL))
            continue;
        snprintf(name, sizeof name, "list/%s", config_setting_name(s));
        struct list *l = NULL;
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
            const char *url = config_setting_get_string(s);
            if (strncmp(url, "file://", 7) != 0) {
                add_error(ld, s, "list.%s: a string list must be a file:///path URL", config_setting_name(s));
                continue;
            }
            l = list_new_file(name, url, e, sizeof e);
            if (!l)
                add_error(ld, s, "list.%s: %s", config_setting_name(s), e);
        } else {
            int n = config_setting_length(s);
            const char **items = xcalloc((size_t)n + 1, sizeof *items);
            for (int j = 0; j < n; j++)
                items[j] = config_setting_get_string_elem(s, j);
            l = list_new_inline(name, items, (size_t)n);
            free(items);
        }
        if (l)
            policy_add_list(&ld->cfg->policy, l);
    }
}

static void load_databases(struct loader *ld)
{
    const config_setting_t *g = lookup_setting(ld, "database");
    struct nh_config *cfg = ld->cfg;
    int n = g ? config_setting_length(g) : 0;
    cfg->databases = xcalloc((size_t)n + 1, sizeof *cfg->databases);
    for (int i = 0; i < n; i++) {
        const config_setting_t *d = config_setting_get_elem(g, (unsigned)i);
        if (!type_ok(d, K_GROUP))
            continue;
        struct database_cfg *db = &cfg->databases[cfg->n_databases++];
        db->id = xstrdup(config_setting_name(d));
        db->line = (int)config_setting_source_line(d);
        db->type = xstrdup(lookup_string(d, "type", "sqlite"));
        const char *path = lookup_string(d, "path", NULL), *ci = lookup_string(d, "conninfo", NULL);
        db->path = path ? xstrdup(path) : NULL;
        db->conninfo = ci ? xstrdup(ci) : NULL;
        if (strcmp(db->type, "sqlite") != 0 && strcmp(db->type, "postgresql") != 0) {
            add_error(ld, config_setting_lookup((config_setting_t *)d, "type"),
                      "database.%s.type: unknown type '%s' (sqlite or postgresql)", db->id, db->type);
            continue;
        }
        if (strcmp(db->type, "sqlite") == 0 && !db->path) {
            add_error(ld, d, "database.%s: path is missing", db->id);
            continue;
        }
        const config_setting_t *lk = config_setting_lookup((config_setting_t *)d, "lookup");
        int nl = lk && type_ok(lk, K_GROUP) ? config_setting_length(lk) : 0;
        db->lookups = xcalloc((size_t)nl + 1, sizeof *db->lookups);
        for (int j = 0; j < nl; j++) {
            const config_setting_t *q = config_setting_get_elem(lk, (unsigned)j);
            char name[300], e[ERRLEN];
            if (!type_ok(q, K_STRING))
                continue;
            struct db_lookup *dl = &db->lookups[db->n_lookups++];
            dl->name = xstrdup(config_setting_name(q));
            dl->query = xstrdup(config_setting_get_string(q));
            snprintf(name, sizeof name, "%s/%s", db->id, dl->name);
            struct list *l = list_new_sql(name, db, dl->query, e, sizeof e);
            if (l)
                policy_add_list(&cfg->policy, l);
            else
                add_error(ld, q, "database.%s.lookup.%s: %s", db->id, dl->name, e);
        }
    }
}

static void load_remotes(struct loader *ld)
{
    const config_setting_t *g = lookup_setting(ld, "remote");
    struct nh_config *cfg = ld->cfg;
    int n = g ? config_setting_length(g) : 0;
    cfg->remotes = xcalloc((size_t)n + 1, sizeof *cfg->remotes);
    for (int i = 0; i < n; i++) {
        const config_setting_t *r = config_setting_get_elem(g, (unsigned)i);
        if (type_ok(r, K_GROUP))
            load_remote(ld, &cfg->remotes[cfg->n_remotes++], r);
    }
    for (size_t i = 0; i < cfg->n_remotes; i++) {
        char name[300];
        if (!cfg->remotes[i].lookup)
            continue;
        snprintf(name, sizeof name, "remote/%s", cfg->remotes[i].id);
        policy_add_list(&cfg->policy, list_new_remote(name, &cfg->remotes[i]));
    }
}

static const struct remote_def *names_remote(const void *ctx, const char *id)
{
    return config_remote(ctx, id);
}

static struct list *names_list(const void *ctx, const char *name)
{
    return policy_list(&((const struct nh_config *)ctx)->policy, name);
}

static struct rule *load_rule(struct loader *ld, const char *path, enum rule_kind kind)
{
    const struct rule_names names = { ld->cfg, names_remote, names_list };
    const struct key_def *k = schema_find(path);
    const config_setting_t *s = lookup_setting(ld, path);
    char e[ERRLEN * 2];
    struct rule *r = NULL;
    if (s && type_ok(s, K_RULE)) {
        r = rule_parse(s, kind, &names, e, sizeof e);
        if (!r)
            add_raw_error(ld, e);
    } else if (!s && k && k->def) {
        r = rule_constant(kind, k->def, &names, e, sizeof e);
        if (!r)
            add_raw_error(ld, e);
    }
    return r;
}

static int choose(const char *value, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0)
            return (int)i;
    return -1;
}

static void load_globals(struct loader *ld)
{
    struct nh_config *cfg = ld->cfg;
    const config_setting_t *root = config_root_setting(&ld->lc);
    load_scope(ld, cfg, S_GLOBAL, root, "");

    const char *level = lookup_string(root, "milter.log.level", "info");
    cfg->log_level = log_level_parse(level);
    if (cfg->log_level < 0)
        add_error(ld, lookup_setting(ld, "milter.log.level"),
                  "milter.log.level: unknown level '%s' (error, warning, info, debug)", level);

    static const char *const tempfail_names[] = { "quarantine", "tempfail", "accept" };
    const char *ot = lookup_string(root, "routing.on-tempfail", "quarantine");
    int v = choose(ot, tempfail_names, ARRAY_SIZE(tempfail_names));
    if (v < 0)
        add_error(ld, lookup_setting(ld, "routing.on-tempfail"),
                  "routing.on-tempfail: must be quarantine, tempfail or accept, not '%s'", ot);
    cfg->policy.on_tempfail = v < 0 ? ON_TEMPFAIL_QUARANTINE : (enum on_tempfail)v;

    const config_setting_t *sm = lookup_setting(ld, "routing.spool-memory");
    cfg->policy.spool_memory = sm && type_ok(sm, K_INT) ? (size_t)config_setting_get_int(sm) : 1048576;

    const char *hdr = cfg->policy.routing_header;
    if (hdr && (!*hdr || strcspn(hdr, ": \t\x7f") != strlen(hdr) ||
                strspn(hdr, "!\"#$%&'()*+,-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                            "abcdefghijklmnopqrstuvwxyz{|}~") != strlen(hdr)))
        add_error(ld, lookup_setting(ld, "routing.header"),
                  "routing.header: '%s' is not a valid header name", hdr);
}

static void check_services(struct loader *ld)
{
    struct nh_config *cfg = ld->cfg;
    const char *lk = cfg->auth_service_lookup;
    if (lk) {
        const struct remote_def *r = strncmp(lk, "remote/", 7) == 0 ? config_remote(cfg, lk + 7) : NULL;
        const config_setting_t *s = lookup_setting(ld, "auth-service.lookup");
        if (!r)
            add_error(ld, s, "auth-service.lookup: '%s' is not a remote/<id> that is defined", lk);
        else if (!r->lookup)
            add_error(ld, s, "auth-service.lookup: remote %s is used for lookups but has lookup = false", r->id);
    }
    char e[ERRLEN];
    if (cfg->redis && redis_cache_check(cfg->redis, e, sizeof e) < 0)
        add_error(ld, lookup_setting(ld, "cache.redis"), "cache.redis: %s", e);
    if (cfg->auth_service_socket && !lk)
        add_error(ld, lookup_setting(ld, "auth-service"), "auth-service: socket without lookup");
}

/* A secret anyone on the machine can read gets a warning (at start and from -n). */
static void check_file_mode(struct loader *ld)
{
    struct stat st;
    if (!ld->inline_secret || stat(ld->file, &st) != 0 || !(st.st_mode & S_IROTH))
        return;
    ld->cfg->world_readable_secret = true;
    free(ld->cfg->exposed_secret_file);
    ld->cfg->exposed_secret_file = xstrdup(ld->file);
}

struct nh_config *config_load(const char *file, char *err, size_t errlen)
{
    struct loader ld = { .file = file, .err = err, .errlen = errlen };
    err[0] = '\0';
    ld.cfg = xcalloc(1, sizeof *ld.cfg);
    ld.cfg->path = xstrdup(file);
    ld.cfg->refs = 1;
    config_init(&ld.lc);
    if (!config_read_file(&ld.lc, file)) {
        if (config_error_type(&ld.lc) == CONFIG_ERR_FILE_IO)
            set_error(err, errlen, "%s: cannot read: %s", file, strerror(errno));
        else
            set_error(err, errlen, "%s:%d: %s", config_error_file(&ld.lc) ? config_error_file(&ld.lc) : file,
                      config_error_line(&ld.lc), config_error_text(&ld.lc));
        config_destroy(&ld.lc);
        config_unref(ld.cfg);
        return NULL;
    }
    check_tree(&ld, config_root_setting(&ld.lc), "");
    load_globals(&ld);
    load_remotes(&ld);
    load_lists(&ld);
    load_databases(&ld);
    struct nh_config *cfg = ld.cfg;
    struct policy *pol = &cfg->policy;
    pol->rcpt_lookup_domains = load_rule(&ld, "session.rcpt.lookup.domains", RULE_LIST_OR_FALSE);
    pol->rcpt_lookup_addresses = load_rule(&ld, "session.rcpt.lookup.addresses", RULE_LIST_OR_FALSE);
    pol->next_hop = load_rule(&ld, "queue.outbound.next-hop", RULE_REMOTE_OR_FALSE);
    pol->action = load_rule(&ld, "routing.action", RULE_ACTION);
    check_services(&ld);
    check_file_mode(&ld);
    config_destroy(&ld.lc);
    if (ld.nerrors > 0) {
        config_unref(cfg);
        return NULL;
    }
    return cfg;
}

struct nh_config *config_ref(struct nh_config *cfg)
{
    atomic_fetch_add_explicit((_Atomic int *)&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

static void free_database(struct database_cfg *db)
{
    for (size_t j = 0; j < db->n_lookups; j++) {
        free(db->lookups[j].name);
        free(db->lookups[j].query);
    }
    free(db->lookups);
    free(db->id);
    free(db->type);
    free(db->path);
    free(db->conninfo);
}

void config_unref(struct nh_config *cfg)
{
    if (!cfg || atomic_fetch_sub_explicit((_Atomic int *)&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    policy_clear(&cfg->policy);
    for (size_t i = 0; i < cfg->n_remotes; i++)
        remote_def_clear(&cfg->remotes[i]);
    free(cfg->remotes);
    for (size_t i = 0; i < cfg->n_databases; i++)
        free_database(&cfg->databases[i]);
    free(cfg->databases);
    char **strings[] = { &cfg->path, &cfg->exposed_secret_file, &cfg->socket, &cfg->user, &cfg->group, &cfg->pidfile,
                         &cfg->stats_listen, &cfg->redis, &cfg->redis_prefix,
                         &cfg->socketmap_listen, &cfg->auth_service_socket, &cfg->auth_service_lookup };
    for (size_t i = 0; i < ARRAY_SIZE(strings); i++)
        free(*strings[i]);
    free(cfg);
}

const struct remote_def *config_remote(const struct nh_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_remotes; i++)
        if (strcmp(cfg->remotes[i].id, id) == 0)
            return &cfg->remotes[i];
    return NULL;
}

void config_schema_print(FILE *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
        if (schema[i].type != K_GROUP)
            fprintf(out, "%s\t%s\t%s\n", schema[i].path, schema[i].def ? schema[i].def : "-",
                     schema[i].help);
}

void config_dump(const struct nh_config *cfg, FILE *out)
{
    char d1[32], d2[32], d3[32];
    fprintf(out, "milter.socket = %s\n", cfg->socket);
    for (size_t i = 0; i < cfg->n_remotes; i++) {
        const struct remote_def *r = &cfg->remotes[i];
        duration_format(r->ep.timeout_ms, d1, sizeof d1);
        fprintf(out, "remote.%s = %s %s:%d concurrency=%d timeout=%s lookup=%s tls=%s%s\n", r->id,
                remote_proto_name(r->ep.protocol), r->ep.address, r->ep.port, r->concurrency, d1,
                r->lookup ? "true" : "false",
                !r->ep.tls_enable ? "off" : r->ep.tls_implicit ? "implicit" : "starttls",
                r->ep.tls_allow_invalid ? " (invalid certs allowed)" : "");
        duration_format(r->ttl_positive_ms, d1, sizeof d1);
        duration_format(r->ttl_negative_ms, d2, sizeof d2);
        duration_format(r->ttl_stale_ms, d3, sizeof d3);
        fprintf(out, "remote.%s.cache = entries=%d positive=%s negative=%s stale=%s\n", r->id,
                r->cache_entries, d1, d2, d3);
        if (r->ep.auth_username)
            fprintf(out, "remote.%s.auth = %s (secret %s)\n", r->id, r->ep.auth_username,
                    r->ep.auth_secret ? "set, not shown" : "unset");
    }
    for (size_t i = 0; i < cfg->policy.n_lists; i++)
        fprintf(out, "list %s\n", list_name(cfg->policy.lists[i]));
    duration_format(cfg->policy.routing_timeout_ms, d1, sizeof d1);
    fprintf(out, "routing.header = %s\nrouting.timeout = %s\n", cfg->policy.routing_header, d1);
}
