/*
 * rules.h - the rule language of settings marked (rule) in DESIGN.md.
 *
 * A rule is a plain value or a list of branches; the first branch whose
 * condition holds gives the value, the last branch is { else = ...; }.
 *   { if = "<var>"; <comparator> = <value>; then = <value>; }
 *   { any-of | all-of | none-of = ( <condition>, ... ); then = <value>; }
 * Conditions nest: a condition is { if = ...; <comparator> = ...; } or
 * { any-of|all-of|none-of = ( ... ); }.
 * Comparators: eq ne starts-with ends-with in-list matches and not-<each>.
 * remote-ip/local-ip with eq/ne take an address or CIDR network.
 * Regexes (POSIX extended) are compiled once, at load.
 *
 * Parsing resolves every name a rule mentions (remote ids, lists) through
 * the loader's struct rule_names, so an undefined name is a load-time error
 * with FILE:LINE. Evaluation never allocates on the success path.
 *
 * Must not: allocate or log during evaluation, or look names up at
 * evaluation time (they were resolved at load).
 */
#ifndef NEXTHOP_RULES_H
#define NEXTHOP_RULES_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "lists.h"
#include "policy.h"
#include "remote.h"

enum rule_var {
    RV_RCPT = 0, RV_RCPT_DOMAIN, RV_SENDER, RV_SENDER_DOMAIN, RV_REMOTE_IP, RV_LOCAL_IP,
    RV_HELO_DOMAIN, RV_AUTHENTICATED_AS, RV_LISTENER, RV_PRIORITY, RV__COUNT
};

/* What the value of a rule must be. */
enum rule_kind {
    RULE_STRING = 0,        /* any string */
    RULE_REMOTE_OR_FALSE,   /* a remote id, or false */
    RULE_LIST_OR_FALSE,     /* a list name ("list/x", "db/q", "remote/x"), or false */
    RULE_ACTION,            /* header | relay | quarantine (enum routing_action) */
    RULE_RCPT_MODE,         /* enforce | report (enum rcpt_mode) */
    RULE_RCPT_ON_ERROR,     /* tempfail | accept (enum rcpt_on_error) */
};

struct rule_vars {
    const char *v[RV__COUNT];   /* NULL = unset, compares as "" */
};

struct rule_result {
    bool is_false;                  /* the value was `false` */
    const char *str;                /* the value as text ("false" when is_false) */
    const struct remote_def *remote; /* RULE_REMOTE_OR_FALSE */
    struct list *list;              /* RULE_LIST_OR_FALSE */
    enum routing_action action;     /* RULE_ACTION */
    int choice;                     /* RULE_ACTION, RULE_RCPT_MODE, RULE_RCPT_ON_ERROR: the
                                       value's index among the kind's names = its C enum */
};

/* "rcpt-domain" -> RV_RCPT_DOMAIN; -1 when unknown. */
int rule_var_parse(const char *name);
const char *rule_var_name(enum rule_var v);

/*
 * How the parser finds the remotes and lists a rule names: the config
 * loader answers from the remotes and lists it has built so far.
 */
struct rule_names {
    const void *ctx;
    const struct remote_def *(*remote)(const void *ctx, const char *id);
    struct list *(*list)(const void *ctx, const char *name);
};

/*
 * Parses setting s (a scalar or a list of branches), resolving every name
 * through names. On error returns NULL with "FILE:LINE: key: why" in err.
 */
struct rule *rule_parse(const config_setting_t *s, enum rule_kind kind,
                        const struct rule_names *names, char *err, size_t errlen);
/* A rule holding one constant value (for defaults). */
struct rule *rule_constant(enum rule_kind kind, const char *value, const struct rule_names *names,
                           char *err, size_t errlen);
void rule_free(struct rule *r);

/*
 * Evaluates r (NULL: the value false). env is what in-list lookups on
 * remote lists need. Returns 0, or -1 when an in-list lookup failed along
 * the way (that condition counted as false, *out is still set, err says why).
 */
int rule_eval(const struct rule *r, const struct rule_vars *vars, const struct list_env *env,
              struct rule_result *out, char *err, size_t errlen);

/* True when evaluating r may contact a remote (an in-list on remote/<id>). */
bool rule_uses_remote(const struct rule *r);

/* For -n -v: the constant value of r, or how many branches it has. */
void rule_describe(const struct rule *r, char *buf, size_t len);

#endif
