/*
 * config.h - the loaded configuration of milter-nexthop.
 *
 * One schema table (schema.c: key, type, default, choices, help) drives
 * loading, defaults, validation, `-n` and the reference documentation.
 * A loaded config is immutable and reference-counted; the milter holds it
 * through a runtime (runtime.h), one reference per message, so a SIGUSR1
 * reload swaps in a new config while messages in flight finish with the
 * one they started with.
 *
 * The config is data: lists (with their SQL handles) are built at load,
 * but pools and caches belong to the runtime built from it (runtime.h),
 * which a reload carries over for the remotes that did not change.
 *
 * Must not: hold runtime state (pools, caches, catch-all knowledge), be
 * changed once loaded, or know libmilter.
 */
#ifndef NEXTHOP_CONFIG_H
#define NEXTHOP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lists.h"
#include "policy.h"
#include "remote.h"

struct nh_config {
    char *path;
    int refs;                 /* atomic; see config_ref() */

    /* milter */
    char *socket;
    int socket_mode;
    char *user, *group, *pidfile;
    int log_level;
    bool log_syslog;

    struct remote_def *remotes;
    size_t n_remotes;
    struct database_cfg *databases;
    size_t n_databases;

    /* session.rcpt, queue.outbound, routing; and every list a rule may name */
    struct policy policy;

    /* optional services */
    char *stats_listen;
    char *redis, *redis_prefix;
    char *socketmap_listen;
    char *auth_service_socket, *auth_service_lookup;
    char *control_socket;
    char *control_group;    /* control.group, else milter.group */
    int control_mode;       /* control.mode, else milter.socket-mode */

    bool world_readable_secret;           /* warn at start and from -n ... */
    char *exposed_secret_file;            /* ... naming this file (config or secret-file) */
};

/*
 * Loads and fully validates FILE. On failure returns NULL and fills err
 * with "FILE:LINE: message" lines (newline-separated, every error found).
 */
struct nh_config *config_load(const char *file, char *err, size_t errlen);

/*
 * One string setting of FILE (e.g. "control.socket"), read without
 * validating the rest: -C must reach the daemon even when the file has
 * errors the daemon's reload is asked to show. Returns 1 and a malloc'ed
 * *out, 0 when the key is not set, -1 when the file cannot be parsed
 * (err: "FILE:LINE: message").
 */
int config_peek_string(const char *file, const char *key, char **out, char *err, size_t errlen);
struct nh_config *config_ref(struct nh_config *cfg);
void config_unref(struct nh_config *cfg);

const struct remote_def *config_remote(const struct nh_config *cfg, const char *id);

/* Prints the effective config (secrets masked) for -n -v. */
void config_dump(const struct nh_config *cfg, FILE *out);

/* The schema, for documentation checks: one key per line. */
void config_schema_print(FILE *out);

/*
 * The warning for a secret anyone can read, with what to do that keeps the
 * daemon able to read it after it dropped privileges (a plain chmod o-r on
 * a root-owned file does not): "FILE holds an auth secret ...".
 */
void config_secret_warning(const struct nh_config *cfg, char *buf, size_t len);

#endif
