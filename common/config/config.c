/*
 * config.c - load, check and free the configuration (see config.h).
 *
 * Loading walks the libconfig tree against the schema table (schema.c):
 * unknown keys and wrong types are errors with FILE:LINE; values and
 * defaults are stored into struct nh_config / remote_def / database_cfg by
 * offset. Then secret files are read, lists and databases built, and rules
 * parsed, which resolve every remote and list they name. All errors are
 * collected, not just the first.
 *
 * Must not: connect to a remote host (pools belong to the runtime,
 * runtime.h; only SQL lists open their databases, to check each query),
 * repeat a default or an enum the schema holds, or keep a secret anywhere
 * but the KF_SECRET fields (ep.auth_secret, database conninfo).
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include "conn.h"
#include "duration.h"
#include "lists.h"
#include "log.h"
#include "redis.h"
#include "rules.h"
#include "schema.h"
#include "sockspec.h"
#include "util.h"

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

static bool type_ok(const config_setting_t *s, enum key_type t)
{
    int st = config_setting_type(s);
    switch (t) {
    case K_GROUP: return st == CONFIG_TYPE_GROUP;
    case K_STRING: return st == CONFIG_TYPE_STRING;
    case K_INT:
    case K_SIZE: return st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    case K_ENUM: return st == CONFIG_TYPE_STRING;
    case K_BOOL: return st == CONFIG_TYPE_BOOL;
    case K_DURATION: return st == CONFIG_TYPE_STRING || st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    case K_MODE: return st == CONFIG_TYPE_STRING;   /* 770 unquoted is decimal 770, mode 01402 */
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
            add_error(ld, s, "%s: must be %s", name, schema_type_name(k->type));
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
    case K_STRING: {
        const char *v = s ? config_setting_get_string(s) : k->def;
        if (k->choices && schema_choice(k, v) < 0) {
            char c[200];
            schema_choices_text(k, c, sizeof c);
            add_error(ld, s, "%s: must be %s, not '%s'", name, c, v);
        }
        *(char **)f = xstrdup(v);
        break;
    }
    case K_ENUM: {
        const char *v = s ? config_setting_get_string(s) : k->def;
        int i = schema_choice(k, v);
        if (i < 0) {
            char c[200];
            schema_choices_text(k, c, sizeof c);
            add_error(ld, s, "%s: must be %s, not '%s'", name, c, v);
            i = 0;
        }
        *(int *)f = i;
        break;
    }
    case K_SIZE: {
        long long v = s ? config_setting_get_int64(s) : atoll(k->def);
        if (v < 0) {
            add_error(ld, s, "%s: %lld is out of range", name, v);
            v = 0;
        }
        *(size_t *)f = (size_t)v;
        break;
    }
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
        if (parse_mode(s ? config_setting_get_string(s) : k->def, &mode) < 0)
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
    for (size_t i = 0; i < config_schema_len; i++) {
        const struct key_def *k = &config_schema[i];
        if (k->scope != scope || k->type == K_RULE || strncmp(k->path, prefix, plen) != 0)
            continue;
        const char *rel = k->path + plen;
        const config_setting_t *s = root ? config_setting_lookup((config_setting_t *)root, rel) : NULL;
        if (s && !type_ok(s, k->type))
            continue;   /* already reported by check_tree */
        if (!s && !k->def)
            continue;
        char name[512];   /* "remote.lmtp.protocol" for "remote.*.protocol" */
        const char *star = strchr(k->path, '*');
        if (star && root && config_setting_name(root))
            snprintf(name, sizeof name, "%.*s%s%s", (int)(star - k->path), k->path,
                     config_setting_name(root), star + 1);
        else
            snprintf(name, sizeof name, "%s", k->path);
        store_value(ld, base, k, s, name);
    }
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

/* The CA file is read now (as root at start); a unix socket gives no name to check a certificate against. */
static void check_remote_tls(struct loader *ld, struct remote_def *r, const config_setting_t *g)
{
    if (!r->ep.tls_enable)
        return;
    const config_setting_t *ca = config_setting_lookup((config_setting_t *)g, "tls.ca-file");
    char e[ERRLEN];
    if (r->ep.tls_ca_file && !(r->ep.tls_ca_pem = conn_tls_read_ca_file(r->ep.tls_ca_file, e, sizeof e)))
        add_error(ld, ca, "remote.%s.tls.ca-file: %s", r->id, e);
    if (r->ep.address && strncmp(r->ep.address, "unix:", 5) == 0 && !r->ep.tls_server_name &&
        !r->ep.tls_allow_invalid) {
        const config_setting_t *tls = config_setting_lookup((config_setting_t *)g, "tls");
        add_error(ld, tls ? tls : g, "remote.%s: TLS over a unix socket needs tls.server-name, the "
                  "name its certificate must hold (or tls.enable = false)", r->id);
    }
}

static void load_remote(struct loader *ld, struct remote_def *r, const config_setting_t *g)
{
    r->id = xstrdup(config_setting_name(g));
    r->ep.name = r->id;
    r->line = (int)config_setting_source_line(g);
    load_scope(ld, r, S_REMOTE, g, "remote.*.");

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
    check_remote_tls(ld, r, g);
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
        int before = ld->nerrors;
        load_scope(ld, db, S_DATABASE, d, "database.*.");
        if (ld->nerrors > before)
            continue;
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

/* Parses the rule of key k (or its default); NULL when unset and without default. */
static struct rule *load_rule(struct loader *ld, const struct key_def *k)
{
    const struct rule_names names = { ld->cfg, names_remote, names_list };
    const enum rule_kind kind = (enum rule_kind)k->rule_kind;
    const config_setting_t *s = lookup_setting(ld, k->path);
    char e[ERRLEN * 2];
    struct rule *r = NULL;
    if (s && type_ok(s, K_RULE)) {
        r = rule_parse(s, kind, &names, e, sizeof e);
        if (!r)
            add_raw_error(ld, e);
    } else if (!s && k->def) {
        r = rule_constant(kind, k->def, &names, e, sizeof e);
        if (!r)
            add_raw_error(ld, e);
    }
    return r;
}

/* A socket mode that lets every local user in gets a warning: nothing else guards these sockets. */
static void warn_other_access(struct loader *ld, const char *key, int mode)
{
    const config_setting_t *s = lookup_setting(ld, key);
    if (s && (mode & 0007))
        log_warning("%s:%d: %s: \"%04o\" lets every local user connect (and, on the control socket, "
                    "flush and reload); give the access to a group instead (\"0660\")", ld->file,
                    (int)config_setting_source_line(s), key, (unsigned)mode);
}

/* The user and group must exist here: -n (and a reload) says so, not the next start. */
static void check_identity(struct loader *ld, const char *key, const char *name, bool is_user)
{
    if (!name)
        return;
    if (is_user ? getpwnam(name) == NULL : getgrnam(name) == NULL)
        add_error(ld, lookup_setting(ld, key), "%s: no %s '%s' on this machine", key,
                  is_user ? "user" : "group", name);
}

/*
 * The milter socket in a spelling libmilter takes as meant (sockspec.h);
 * the control socket's group and mode default to the milter socket's.
 */
static void check_sockets(struct loader *ld)
{
    struct nh_config *cfg = ld->cfg;
    char conn[512], e[ERRLEN];
    const config_setting_t *sock = lookup_setting(ld, "milter.socket");
    if (cfg->socket && sockspec_milter(cfg->socket, conn, sizeof conn, e, sizeof e) < 0)
        add_error(ld, sock, "milter.socket: %s", e);
    const struct { const char *key, *spec; } tcp_ok[] = {
        { "socketmap.listen", cfg->socketmap_listen }, { "stats.listen", cfg->stats_listen },
    };
    struct sockspec ss;
    for (size_t i = 0; i < ARRAY_SIZE(tcp_ok); i++)
        if (tcp_ok[i].spec && sockspec_listen(tcp_ok[i].spec, &ss, e, sizeof e) < 0)
            add_error(ld, lookup_setting(ld, tcp_ok[i].key), "%s: %s", tcp_ok[i].key, e);
    if (!lookup_setting(ld, "control.mode"))
        cfg->control_mode = cfg->socket_mode;
    if (!lookup_setting(ld, "control.group") && cfg->group)
        cfg->control_group = xstrdup(cfg->group);
    check_identity(ld, "milter.user", cfg->user, true);
    check_identity(ld, "milter.group", cfg->group, false);
    if (lookup_setting(ld, "control.group"))
        check_identity(ld, "control.group", cfg->control_group, false);
    warn_other_access(ld, "milter.socket-mode", cfg->socket_mode);
    if (cfg->control_socket)
        warn_other_access(ld, "control.mode", cfg->control_mode);
}

static void load_globals(struct loader *ld)
{
    struct nh_config *cfg = ld->cfg;
    const config_setting_t *root = config_root_setting(&ld->lc);
    load_scope(ld, cfg, S_GLOBAL, root, "");

    const char *hdr = cfg->policy.routing_header;
    if (hdr && (!*hdr || strcspn(hdr, ": \t\x7f") != strlen(hdr) ||
                strspn(hdr, "!\"#$%&'()*+,-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                            "abcdefghijklmnopqrstuvwxyz{|}~") != strlen(hdr)))
        add_error(ld, lookup_setting(ld, "routing.header"),
                  "routing.header: '%s' is not a valid header name", hdr);
    check_sockets(ld);
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

/* The parse error of lc, as "FILE:LINE: message". */
static void parse_error(config_t *lc, const char *file, char *err, size_t errlen)
{
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
        set_error(err, errlen, "%s: cannot read: %s", file, strerror(errno));
    else
        set_error(err, errlen, "%s:%d: %s", config_error_file(lc) ? config_error_file(lc) : file,
                  config_error_line(lc), config_error_text(lc));
}

int config_peek_string(const char *file, const char *key, char **out, char *err, size_t errlen)
{
    config_t lc;
    const char *value = NULL;
    config_init(&lc);
    if (!config_read_file(&lc, file)) {
        parse_error(&lc, file, err, errlen);
        config_destroy(&lc);
        return -1;
    }
    int found = config_lookup_string(&lc, key, &value) == CONFIG_TRUE;
    *out = found ? xstrdup(value) : NULL;
    config_destroy(&lc);
    return found;
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
        parse_error(&ld.lc, file, err, errlen);
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
    for (size_t i = 0; i < config_schema_len; i++) {   /* after remotes and lists: rules name them */
        const struct key_def *k = &config_schema[i];
        if (k->type == K_RULE && k->scope == S_GLOBAL)
            *(struct rule **)((char *)cfg + k->offset) = load_rule(&ld, k);
    }
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
                         &cfg->socketmap_listen, &cfg->auth_service_socket, &cfg->auth_service_lookup,
                         &cfg->control_socket, &cfg->control_group };
    for (size_t i = 0; i < ARRAY_SIZE(strings); i++)
        free(*strings[i]);
    free(cfg);
}

void config_secret_warning(const struct nh_config *cfg, char *buf, size_t len)
{
    const char *group = cfg->group ? cfg->group : "milter-nexthop", *f = cfg->exposed_secret_file;
    snprintf(buf, len, "%s holds an auth secret and is readable by everyone: give it to the daemon's "
             "group, mode 0640 (chgrp %s %s; chmod 0640 %s), or move the secret to an "
             "auth.secret-file only the daemon's user can read (a plain chmod o-r on a root-owned "
             "file also locks out a daemon running as its own user)", f, group, f, f);
}

const struct remote_def *config_remote(const struct nh_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_remotes; i++)
        if (strcmp(cfg->remotes[i].id, id) == 0)
            return &cfg->remotes[i];
    return NULL;
}
