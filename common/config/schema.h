/*
 * schema.h - every configuration key in one table: path, type, default,
 * where the value is stored, the values an enum allows, and one line of
 * help. The loader (config.c) applies defaults, types and enums from it,
 * `-n -v` (dump.c) prints from it, and the docs test holds the README and
 * the man page against it: a default or a choice is written here only.
 *
 * Must not: read files, or walk libconfig's tree (config.c does).
 */
#ifndef NEXTHOP_SCHEMA_H
#define NEXTHOP_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum key_type {
    K_GROUP = 0,
    K_STRING,      /* char *; with choices: one of them */
    K_INT,         /* int, 0 .. 1e9 */
    K_SIZE,        /* size_t, bytes */
    K_BOOL,        /* bool */
    K_DURATION,    /* int64_t milliseconds: "30s", "1h", or a number of ms */
    K_MODE,        /* int: an octal mode such as "0660" */
    K_ENUM,        /* int: the index of the value in choices */
    K_RULE,        /* struct rule *: a value or a list of rule branches */
    K_LISTVAL,     /* a list: array of strings or "file:///path" (loaded by config.c) */
};

/* Where a key's value lives: the config, each remote, each database, or nowhere by offset. */
enum key_scope { S_NONE = 0, S_GLOBAL, S_REMOTE, S_DATABASE };

enum key_flag { KF_SECRET = 1 };   /* never printed */

struct key_def {
    const char *path;                /* '*' stands for an id chosen by the user */
    enum key_type type;
    const char *def;                 /* default as text, NULL = none */
    enum key_scope scope;
    size_t offset;                   /* into nh_config, remote_def or database_cfg */
    const char *const *choices;      /* K_ENUM and checked K_STRING: NULL-terminated */
    int rule_kind;                   /* K_RULE: enum rule_kind of its value */
    unsigned flags;
    const char *help;
};

extern const struct key_def config_schema[];
extern const size_t config_schema_len;

/* The key whose path is pattern ("remote.*.tls.enable"); NULL when there is none. */
const struct key_def *schema_find(const char *pattern);
/* "a string", "true or false", ... for error messages. */
const char *schema_type_name(enum key_type t);
/* Index of value in choices, -1 when it is not one. */
int schema_choice(const struct key_def *k, const char *value);
/* "a, b or c" into buf. */
void schema_choices_text(const struct key_def *k, char *buf, size_t len);

/* The schema, for documentation checks: one key per line (path, default, help). */
void config_schema_print(FILE *out);

#endif
