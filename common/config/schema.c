/*
 * schema.c - the table of every configuration key (schema.h).
 * Adding a key: one row here (with its default), the field it is stored
 * in, conf/milter-nexthop.conf, README's reference table and
 * contrib/milter-nexthop.conf.5 (tests/unit/test_schema_docs.c checks the
 * last three against this table).
 * Must not: read the config file or walk libconfig's tree (config.c
 * does), or write a default or a choice anywhere but in its row.
 */
#include "schema.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "rules.h"
#include "util.h"

#define G(f) .scope = S_GLOBAL, .offset = offsetof(struct nh_config, f)
#define R(f) .scope = S_REMOTE, .offset = offsetof(struct remote_def, f)
#define D(f) .scope = S_DATABASE, .offset = offsetof(struct database_cfg, f)

/* The order of each list is the order of its C enum. */
static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };
static const char *const protocols[] = { "smtp", "lmtp", "imap", NULL };
static const char *const on_tempfail[] = { "quarantine", "tempfail", "accept", NULL };
static const char *const db_types[] = { "sqlite", "postgresql", NULL };

const struct key_def config_schema[] = {
    { "milter", K_GROUP, NULL, .help = "the daemon itself" },
    { "milter.socket", K_STRING, "unix:/run/milter-nexthop/milter.sock", G(socket),
      .help = "libmilter socket: unix:/path or inet:PORT@ADDRESS (also inet:ADDRESS:PORT; the address is required) (-p overrides)" },
    { "milter.socket-mode", K_MODE, "0660", G(socket_mode), .help = "permissions of a unix socket" },
    { "milter.user", K_STRING, NULL, G(user), .help = "user to switch to after the socket exists (-u overrides)" },
    { "milter.group", K_STRING, NULL, G(group), .help = "group of the socket and of the process" },
    { "milter.pidfile", K_STRING, NULL, G(pidfile), .help = "pid file (-P overrides)" },
    { "milter.log", K_GROUP, NULL, .help = "logging" },
    { "milter.log.level", K_ENUM, "info", G(log_level), .choices = log_levels, .help = "error | warning | info | debug" },
    { "milter.log.syslog", K_BOOL, "true", G(log_syslog), .help = "log to syslog (mail facility) unless -f" },

    { "remote", K_GROUP, NULL, .help = "remote hosts, one group per id" },
    { "remote.*", K_GROUP, NULL, .help = "one remote host" },
    { "remote.*.address", K_STRING, NULL, R(ep.address), .help = "host name, IP address or unix:/path" },
    { "remote.*.port", K_INT, NULL, .help = "TCP port (default by protocol: smtp 25/465, lmtp 24, imap 143/993)" },
    { "remote.*.protocol", K_ENUM, "smtp", R(ep.protocol), .choices = protocols, .help = "lmtp | smtp | imap" },
    { "remote.*.concurrency", K_INT, "10", R(concurrency), .help = "most connections open at once" },
    { "remote.*.timeout", K_DURATION, "60s", R(ep.timeout_ms), .help = "connect limit; commands wait at most min(timeout, 25s)" },
    { "remote.*.lookup", K_BOOL, "false", R(lookup), .help = "may be used for lookups" },
    { "remote.*.lowercase-localpart", K_BOOL, "false", R(lowercase_localpart), .help = "lower-case local parts before looking them up" },
    { "remote.*.catch-all", K_BOOL, "true", R(catch_all), .help = "detect domains that accept any local part and stop probing them" },
    { "remote.*.cache", K_GROUP, NULL, .help = "lookup cache" },
    { "remote.*.cache.entries", K_INT, "1024", R(cache_entries), .help = "entries in each of the positive and negative caches" },
    { "remote.*.cache.ttl", K_GROUP, NULL, .help = "cache lifetimes" },
    { "remote.*.cache.ttl.positive", K_DURATION, "1d", R(ttl_positive_ms), .help = "lifetime of a yes" },
    { "remote.*.cache.ttl.negative", K_DURATION, "1h", R(ttl_negative_ms), .help = "lifetime of a no" },
    { "remote.*.cache.ttl.stale", K_DURATION, "1h", R(ttl_stale_ms), .help = "an expired yes is still served this long while it is refreshed" },
    { "remote.*.cache.ttl.auth", K_DURATION, "5m", R(ttl_auth_ms), .help = "lifetime of a successful AUTH check (never served stale; failures never cached); 0 = never cached" },
    { "remote.*.tls", K_GROUP, NULL, .help = "TLS" },
    { "remote.*.tls.enable", K_BOOL, "true", R(ep.tls_enable), .help = "false = plain text (loopback and unix sockets only)" },
    { "remote.*.tls.implicit", K_BOOL, "true", R(ep.tls_implicit), .help = "TLS from the start; false = STARTTLS (required)" },
    { "remote.*.tls.allow-invalid-certs", K_BOOL, "false", R(ep.tls_allow_invalid), .help = "accept self-signed and invalid certificates" },
    { "remote.*.tls.server-name", K_STRING, NULL, R(ep.tls_server_name), .help = "name to verify (default: address; required with TLS over a unix socket)" },
    { "remote.*.tls.ca-file", K_STRING, NULL, R(ep.tls_ca_file), .help = "PEM file of the CAs trusted instead of the system store (a private CA)" },
    { "remote.*.auth", K_GROUP, NULL, .help = "authentication to the remote" },
    { "remote.*.auth.username", K_STRING, NULL, R(ep.auth_username), .help = "user name" },
    { "remote.*.auth.secret", K_STRING, NULL, R(ep.auth_secret), .flags = KF_SECRET, .help = "password (prefer secret-file)" },
    { "remote.*.auth.secret-file", K_STRING, NULL, .help = "file holding the password (first line)" },
    { "remote.*.limits", K_GROUP, NULL, .help = "connection limits" },
    { "remote.*.limits.errors", K_INT, "3", R(limits_errors), .help = "failures before a connection is closed" },
    { "remote.*.limits.requests", K_INT, "50", R(limits_requests), .help = "requests per connection" },

    { "list", K_GROUP, NULL, .help = "lists named list/<id>" },
    { "list.*", K_LISTVAL, NULL, .help = "array of strings, or \"file:///path\"" },
    { "database", K_GROUP, NULL, .help = "SQL lists named <id>/<lookup>" },
    { "database.*", K_GROUP, NULL, .help = "one database" },
    { "database.*.type", K_STRING, "sqlite", D(type), .choices = db_types, .help = "sqlite | postgresql" },
    { "database.*.path", K_STRING, NULL, D(path), .help = "sqlite database file" },
    { "database.*.conninfo", K_STRING, NULL, D(conninfo), .flags = KF_SECRET, .help = "postgresql connection string" },
    { "database.*.lookup", K_GROUP, NULL, .help = "named queries" },
    { "database.*.lookup.*", K_STRING, NULL, .help = "query with one ? parameter; a row = in the list" },

    { "session", K_GROUP, NULL, .help = "SMTP session stages" },
    { "session.rcpt", K_GROUP, NULL, .help = "RCPT TO stage" },
    { "session.rcpt.lookup", K_GROUP, NULL, .help = "recipient validation" },
    { "session.rcpt.lookup.domains", K_RULE, NULL, G(policy.rcpt_lookup_domains), .rule_kind = RULE_LIST_OR_FALSE, .help = "(rule) list of domains whose recipients are validated; unset = all" },
    { "session.rcpt.lookup.addresses", K_RULE, NULL, G(policy.rcpt_lookup_addresses), .rule_kind = RULE_LIST_OR_FALSE, .help = "(rule) list that holds existing recipients, e.g. remote/lmtp" },
    { "session.rcpt.skip-authenticated", K_BOOL, "true", G(policy.skip_authenticated), .help = "no validation for authenticated senders" },
    { "session.rcpt.mode", K_RULE, "enforce", G(policy.rcpt_mode), .rule_kind = RULE_RCPT_MODE, .help = "(rule) enforce | report: report only logs and counts what would be refused, and accepts" },
    { "session.rcpt.on-error", K_RULE, "tempfail", G(policy.rcpt_on_error), .rule_kind = RULE_RCPT_ON_ERROR, .help = "(rule) tempfail | accept: what a failed lookup does (451 4.4.3, or accept the recipient)" },

    { "queue", K_GROUP, NULL, .help = "queue" },
    { "queue.outbound", K_GROUP, NULL, .help = "outbound routing" },
    { "queue.outbound.next-hop", K_RULE, "false", G(policy.next_hop), .rule_kind = RULE_REMOTE_OR_FALSE, .help = "(rule) remote id or false (leave to the MTA)" },

    { "routing", K_GROUP, NULL, .help = "what happens at end of message" },
    { "routing.action", K_RULE, "header", G(policy.action), .rule_kind = RULE_ACTION, .help = "(rule) header | relay | quarantine" },
    { "routing.header", K_STRING, "X-Nexthop", G(policy.routing_header), .help = "header naming the next hop" },
    { "routing.on-tempfail", K_ENUM, "tempfail", G(policy.on_tempfail), .choices = on_tempfail, .help = "quarantine | tempfail | accept" },
    { "routing.timeout", K_DURATION, "2m", G(policy.routing_timeout_ms), .help = "budget for relaying one message" },
    { "routing.spool-memory", K_SIZE, "1048576", G(policy.spool_memory), .help = "message bytes kept in memory before a temp file" },

    { "stats", K_GROUP, NULL, .help = "Prometheus metrics" },
    { "stats.listen", K_STRING, NULL, G(stats_listen), .help = "ADDRESS:PORT serving GET /metrics" },
    { "cache", K_GROUP, NULL, .help = "shared second-level cache" },
    { "cache.redis", K_STRING, NULL, G(redis), .help = "ADDRESS:PORT of redis" },
    { "cache.prefix", K_STRING, "nexthop:", G(redis_prefix), .help = "key prefix in redis" },
    { "socketmap", K_GROUP, NULL, .help = "socketmap service" },
    { "socketmap.listen", K_STRING, NULL, G(socketmap_listen), .help = "inet:ADDRESS:PORT or unix:/path" },
    { "auth-service", K_GROUP, NULL, .help = "saslauthd-protocol password checks" },
    { "auth-service.socket", K_STRING, NULL, G(auth_service_socket), .help = "saslauthd mux socket path" },
    { "auth-service.lookup", K_STRING, NULL, G(auth_service_lookup), .help = "remote/<id> to check passwords against" },
    { "control", K_GROUP, NULL, .help = "the admin's control socket (milter-nexthop -C)" },
    { "control.socket", K_STRING, NULL, G(control_socket), .help = "unix socket path for -C; unset = none" },
    { "control.group", K_STRING, NULL, G(control_group), .help = "group of the control socket (default: milter.group); make it your admins'" },
    { "control.mode", K_MODE, NULL, G(control_mode), .help = "permissions of the control socket (default: milter.socket-mode)" },
};
const size_t config_schema_len = ARRAY_SIZE(config_schema);

const struct key_def *schema_find(const char *pattern)
{
    for (size_t i = 0; i < config_schema_len; i++)
        if (strcmp(config_schema[i].path, pattern) == 0)
            return &config_schema[i];
    return NULL;
}

const char *schema_type_name(enum key_type t)
{
    switch (t) {
    case K_GROUP: return "a group { ... }";
    case K_STRING: return "a string";
    case K_INT: return "an integer";
    case K_SIZE: return "a number of bytes";
    case K_BOOL: return "true or false";
    case K_DURATION: return "a duration (\"30s\", \"1h\") or milliseconds";
    case K_MODE: return "an octal string such as \"0660\" (quoted: a bare 660 is a decimal number)";
    case K_ENUM: return "one of the names listed for it";
    case K_RULE: return "a value or a list of rule branches";
    case K_LISTVAL: return "an array of strings or \"file:///path\"";
    }
    return "?";
}

int schema_choice(const struct key_def *k, const char *value)
{
    for (int i = 0; k->choices && k->choices[i]; i++)
        if (strcmp(value, k->choices[i]) == 0)
            return i;
    return -1;
}

void schema_choices_text(const struct key_def *k, char *buf, size_t len)
{
    size_t n = 0, used = 0;
    while (k->choices && k->choices[n])
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, k->choices[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

void config_schema_print(FILE *out)
{
    for (size_t i = 0; i < config_schema_len; i++)
        if (config_schema[i].type != K_GROUP)
            fprintf(out, "%s\t%s\t%s\n", config_schema[i].path,
                    config_schema[i].def ? config_schema[i].def : "-", config_schema[i].help);
}
