/*
 * dump.c - the effective settings of a loaded config, for `-n -v`: every
 * key of the schema with the value in force (given or default), one per
 * line, as "key = value"; per remote and per database with their ids.
 * Must not: print a secret (KF_SECRET keys show whether they are set).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "duration.h"
#include "lists.h"
#include "rules.h"
#include "schema.h"

/* Formats the value of k stored in base into buf. */
static void format_value(const struct key_def *k, const void *base, char *buf, size_t len)
{
    const void *f = (const char *)base + k->offset;
    switch (k->type) {
    case K_STRING: {
        const char *v = *(char *const *)f;
        if (!v)
            snprintf(buf, len, "(unset)");
        else if (k->flags & KF_SECRET)
            snprintf(buf, len, "(set, not shown)");
        else
            snprintf(buf, len, "\"%s\"", v);
        break;
    }
    case K_INT: snprintf(buf, len, "%d", *(const int *)f); break;
    case K_SIZE: snprintf(buf, len, "%zu", *(const size_t *)f); break;
    case K_BOOL: snprintf(buf, len, "%s", *(const bool *)f ? "true" : "false"); break;
    case K_DURATION: duration_format(*(const int64_t *)f, buf, len); break;
    case K_MODE: snprintf(buf, len, "\"%04o\"", (unsigned)*(const int *)f); break;
    case K_ENUM: {
        int i = *(const int *)f;
        snprintf(buf, len, "%s", i >= 0 ? k->choices[i] : "?");
        break;
    }
    case K_RULE: rule_describe(*(struct rule *const *)f, buf, len); break;
    case K_GROUP:
    case K_LISTVAL: snprintf(buf, len, "-"); break;
    }
}

/* Prints every key of scope (with '*' replaced by id) from base. */
static void dump_scope(FILE *out, enum key_scope scope, const void *base, const char *id)
{
    char value[512];
    for (size_t i = 0; i < config_schema_len; i++) {
        const struct key_def *k = &config_schema[i];
        if (k->scope != scope || k->type == K_GROUP)
            continue;
        format_value(k, base, value, sizeof value);
        const char *star = id ? strchr(k->path, '*') : NULL;
        if (star)
            fprintf(out, "%.*s%s%s = %s\n", (int)(star - k->path), k->path, id, star + 1, value);
        else
            fprintf(out, "%s = %s\n", k->path, value);
    }
}

void config_dump(const struct nh_config *cfg, FILE *out)
{
    dump_scope(out, S_GLOBAL, cfg, NULL);
    for (size_t i = 0; i < cfg->n_remotes; i++) {
        const struct remote_def *r = &cfg->remotes[i];
        dump_scope(out, S_REMOTE, r, r->id);
        fprintf(out, "remote.%s.port = %d\n", r->id, r->ep.port);
    }
    for (size_t i = 0; i < cfg->n_databases; i++) {
        const struct database_cfg *db = &cfg->databases[i];
        dump_scope(out, S_DATABASE, db, db->id);
        for (size_t j = 0; j < db->n_lookups; j++)
            fprintf(out, "database.%s.lookup.%s = \"%s\"\n", db->id, db->lookups[j].name,
                    db->lookups[j].query);
    }
    for (size_t i = 0; i < cfg->policy.n_lists; i++)
        fprintf(out, "list %s\n", list_name(cfg->policy.lists[i]));
}
