/*
 * config.h - the loaded configuration of milter-nexthop.
 *
 * One schema table in config.c (key, type, default, check, help) drives
 * loading, defaults, validation, `-n` and the reference documentation.
 * A loaded config is immutable and reference-counted: the milter takes a
 * reference per connection, so a SIGUSR1 reload swaps in a new config while
 * messages in flight finish with the one they started with.
 *
 * Runtime objects that belong to one config (connection pools, caches,
 * SQL handles) are created by config_start() and freed with the last
 * reference.
 */
#ifndef NEXTHOP_CONFIG_H
#define NEXTHOP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct rule;
struct list;
struct pool;
struct cache;
struct remote_rt;

enum remote_proto { PROTO_SMTP = 0, PROTO_LMTP, PROTO_IMAP };
enum on_tempfail { ON_TEMPFAIL_QUARANTINE = 0, ON_TEMPFAIL_TEMPFAIL, ON_TEMPFAIL_ACCEPT };
enum routing_action { ACTION_HEADER = 0, ACTION_RELAY, ACTION_QUARANTINE };

struct remote_cfg {
    char *id;
    char *address;            /* host name, IP literal or "unix:/path" */
    int port;
    enum remote_proto protocol;
    int concurrency;
    int64_t timeout_ms;       /* connect limit; command limits derive from it */
    bool lookup;
    bool lowercase_localpart;
    bool catch_all;           /* detect catch-all domains (default true) */
    int cache_entries;
    int64_t ttl_positive_ms, ttl_negative_ms, ttl_stale_ms;
    bool tls_enable, tls_implicit, tls_allow_invalid;
    char *tls_server_name;    /* SNI / verify name; defaults to address */
    char *auth_username;
    char *auth_secret;        /* from auth.secret or auth.secret-file; never logged */
    int limits_errors, limits_requests;
    int line;                 /* where it was defined, for messages */
    struct remote_rt *rt;     /* pool + cache, set by config_start() */
};

struct db_lookup {
    char *name;               /* "domains" in "sql/domains" */
    char *query;
};

struct database_cfg {
    char *id;
    char *type;               /* "sqlite" | "postgresql" */
    char *path;               /* sqlite */
    char *conninfo;           /* postgresql */
    struct db_lookup *lookups;
    size_t n_lookups;
    int line;
};

struct nh_config {
    char *path;
    int refs;                 /* atomic; see config_ref() */

    /* milter */
    char *socket;
    int socket_mode;
    char *user, *group, *pidfile;
    int log_level;
    bool log_syslog;

    struct remote_cfg *remotes;
    size_t n_remotes;
    struct database_cfg *databases;
    size_t n_databases;
    struct list **lists;      /* every list a rule may name, built at load */
    size_t n_lists;

    /* session.rcpt */
    struct rule *rcpt_lookup_domains;     /* value: list name or false */
    struct rule *rcpt_lookup_addresses;   /* value: list name or false */
    bool skip_authenticated;

    /* queue.outbound / routing */
    struct rule *next_hop;                /* value: remote id or false */
    struct rule *action;                  /* value: header|relay|quarantine */
    char *routing_header;
    enum on_tempfail on_tempfail;
    int64_t routing_timeout_ms;
    size_t spool_memory;                  /* body bytes kept in memory */

    /* optional services */
    char *stats_listen;
    char *redis, *redis_prefix;
    char *socketmap_listen;
    char *auth_service_socket, *auth_service_lookup;

    bool world_readable_secret;           /* warn at start and from -n ... */
    char *exposed_secret_file;            /* ... naming this file (config or secret-file) */
};

/*
 * Loads and fully validates FILE. On failure returns NULL and fills err
 * with "FILE:LINE: message" lines (newline-separated, every error found).
 */
struct nh_config *config_load(const char *file, char *err, size_t errlen);
/* Creates pools, caches and SQL handles. Returns -1 with err on failure. */
int config_start(struct nh_config *cfg, char *err, size_t errlen);
struct nh_config *config_ref(struct nh_config *cfg);
void config_unref(struct nh_config *cfg);

const struct remote_cfg *config_remote(const struct nh_config *cfg, const char *id);
/* Finds a list by its rule name: "list/<id>", "<db>/<lookup>", "remote/<id>". */
struct list *config_list(const struct nh_config *cfg, const char *name);

/* Prints the effective config (secrets masked) for -n -v. */
void config_dump(const struct nh_config *cfg, FILE *out);

/* The schema, for documentation checks: one key per line. */
void config_schema_print(FILE *out);

#endif
