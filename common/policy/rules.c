/*
 * rules.c - parsing and evaluation of (rule) settings (rules.h).
 *
 * rule_parse() turns a libconfig setting into a tree that needs nothing more
 * at evaluation time: remote ids and list names are resolved to pointers,
 * regexes compiled, CIDR networks parsed. Every problem is reported as
 * "FILE:LINE: key.path: why" on the setting at fault.
 *
 * rule_eval() walks the tree: first branch whose condition holds wins.
 * Comparisons on rcpt, sender, the two domains and helo-domain ignore case;
 * the others are exact, except that remote-ip/local-ip eq/ne compare
 * addresses against a network and priority eq/ne compares numbers when both
 * sides are integers. A failed in-list lookup counts as false (with either
 * in-list or not-in-list: an unknown answer never satisfies a comparison),
 * and rule_eval then returns -1 with the first error, after finishing.
 *
 * Must not: allocate or log in rule_eval (it runs per recipient on every
 * milter thread), or change the config it resolves names against.
 */
#include "rules.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lists.h"
#include "netaddr.h"
#include "util.h"

enum cmp_op { OP_EQ, OP_STARTS_WITH, OP_ENDS_WITH, OP_IN_LIST, OP_MATCHES };
enum cond_kind { COND_COMPARE, COND_ANY_OF, COND_ALL_OF, COND_NONE_OF };

static const char *const var_names[RV__COUNT] = {
    [RV_RCPT] = "rcpt",
    [RV_RCPT_DOMAIN] = "rcpt-domain",
    [RV_SENDER] = "sender",
    [RV_SENDER_DOMAIN] = "sender-domain",
    [RV_REMOTE_IP] = "remote-ip",
    [RV_LOCAL_IP] = "local-ip",
    [RV_HELO_DOMAIN] = "helo-domain",
    [RV_AUTHENTICATED_AS] = "authenticated-as",
    [RV_LISTENER] = "listener",
    [RV_PRIORITY] = "priority",
};

static const struct comparator {
    const char *name;
    enum cmp_op op;
    bool negate;
} comparators[] = {
    { "eq", OP_EQ, false },
    { "ne", OP_EQ, true },
    { "not-eq", OP_EQ, true },
    { "starts-with", OP_STARTS_WITH, false },
    { "not-starts-with", OP_STARTS_WITH, true },
    { "ends-with", OP_ENDS_WITH, false },
    { "not-ends-with", OP_ENDS_WITH, true },
    { "in-list", OP_IN_LIST, false },
    { "not-in-list", OP_IN_LIST, true },
    { "matches", OP_MATCHES, false },
    { "not-matches", OP_MATCHES, true },
};

static const char *const combinator_names[] = {
    [COND_ANY_OF] = "any-of",
    [COND_ALL_OF] = "all-of",
    [COND_NONE_OF] = "none-of",
};

/* The values of the kinds that name a choice, in the order of their C enum. */
static const char *const action_names[] = {
    [ACTION_HEADER] = "header", [ACTION_RELAY] = "relay", [ACTION_QUARANTINE] = "quarantine", NULL,
};
static const char *const rcpt_mode_names[] = {
    [RCPT_MODE_ENFORCE] = "enforce", [RCPT_MODE_REPORT] = "report", NULL,
};
static const char *const on_error_names[] = {
    [RCPT_ON_ERROR_TEMPFAIL] = "tempfail", [RCPT_ON_ERROR_ACCEPT] = "accept", NULL,
};

struct cond {
    enum cond_kind kind;
    /* COND_COMPARE */
    enum rule_var var;
    enum cmp_op op;
    bool negate;
    char *text;
    size_t text_len;
    bool has_num;
    long long num;
    bool has_net;
    struct netaddr_net net;
    bool has_re;
    regex_t re;
    struct list *list;
    /* COND_ANY_OF / ALL_OF / NONE_OF */
    struct cond *subs;
    size_t n_subs;
};

struct rule_value {
    bool is_false;
    char *str;
    const struct remote_def *remote;
    struct list *list;
    int choice;
};

struct branch {
    bool has_cond;   /* false for else (and for a plain value) */
    struct cond cond;
    struct rule_value value;
};

struct rule {
    enum rule_kind kind;
    struct branch *branches;
    size_t n_branches;
    bool uses_remote;
};

struct parser {
    enum rule_kind kind;
    const struct rule_names *names;
    struct rule *rule;
    char *err;
    size_t errlen;
};

/* ---- names ---- */

int rule_var_parse(const char *name)
{
    for (int i = 0; i < RV__COUNT; i++)
        if (strcmp(name, var_names[i]) == 0)
            return i;
    return -1;
}

const char *rule_var_name(enum rule_var v)
{
    return (unsigned)v < RV__COUNT ? var_names[v] : "?";
}

static const struct comparator *comparator_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(comparators); i++)
        if (strcmp(name, comparators[i].name) == 0)
            return &comparators[i];
    return NULL;
}

static int combinator_find(const char *name)
{
    for (int k = COND_ANY_OF; k <= COND_NONE_OF; k++)
        if (strcmp(name, combinator_names[k]) == 0)
            return k;
    return -1;
}

static bool var_ignores_case(enum rule_var v)
{
    return v == RV_RCPT || v == RV_RCPT_DOMAIN || v == RV_SENDER || v == RV_SENDER_DOMAIN ||
           v == RV_HELO_DOMAIN;
}

static bool var_is_ip(enum rule_var v) { return v == RV_REMOTE_IP || v == RV_LOCAL_IP; }

/* ---- error reporting ---- */

/* "queue.outbound.next-hop[0].if" for s. */
static void setting_path(const config_setting_t *s, char *buf, size_t len)
{
    const config_setting_t *chain[32];
    size_t n = 0, used = 0;
    for (; s && !config_setting_is_root(s) && n < ARRAY_SIZE(chain); s = config_setting_parent(s))
        chain[n++] = s;
    buf[0] = '\0';
    while (n-- > 0 && used < len) {
        const char *name = config_setting_name(chain[n]);
        if (name)
            snprintf(buf + used, len - used, "%s%s", used ? "." : "", name);
        else
            snprintf(buf + used, len - used, "[%d]", config_setting_index(chain[n]));
        used = strlen(buf);
    }
}

static void parse_error(struct parser *p, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void parse_error(struct parser *p, const config_setting_t *s, const char *fmt, ...)
{
    char why[ERRLEN], path[256];
    const char *file = config_setting_source_file(s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    setting_path(s, path, sizeof path);
    set_error(p->err, p->errlen, "%s:%u: %s: %s", file ? file : "(string)",
              config_setting_source_line(s), path, why);
}

/* ---- name resolution ---- */

/* Finds list `name` in the config; NULL with why. */
static struct list *resolve_list(struct parser *p, const char *name, char *why, size_t whylen)
{
    struct list *l = p->names->list(p->names->ctx, name);
    if (l)
        return l;
    if (strncmp(name, "remote/", 7) == 0) {
        const struct remote_def *r = p->names->remote(p->names->ctx, name + 7);
        if (r && !r->lookup) {
            set_error(why, whylen, "remote %s is used for lookups but has lookup = false", r->id);
            return NULL;
        }
    }
    set_error(why, whylen, "unknown list '%s'", name);
    return NULL;
}

/* The names a kind's value must be one of; NULL for the kinds that take free text or names. */
static const char *const *kind_choices(enum rule_kind kind)
{
    switch (kind) {
    case RULE_ACTION: return action_names;
    case RULE_RCPT_MODE: return rcpt_mode_names;
    case RULE_RCPT_ON_ERROR: return on_error_names;
    case RULE_STRING:
    case RULE_REMOTE_OR_FALSE:
    case RULE_LIST_OR_FALSE: break;
    }
    return NULL;
}

static const char *kind_expectation(enum rule_kind kind)
{
    switch (kind) {
    case RULE_REMOTE_OR_FALSE: return "must be a remote id or false";
    case RULE_LIST_OR_FALSE: return "must be a list name or false";
    case RULE_ACTION: return "must be header, relay or quarantine";
    case RULE_RCPT_MODE: return "must be enforce or report";
    case RULE_RCPT_ON_ERROR: return "must be tempfail or accept";
    case RULE_STRING: break;
    }
    return "must be a string or false";
}

/* Fills v from the text of a value (not `false`); -1 with why. */
static int value_from_text(struct parser *p, const char *text, struct rule_value *v, char *why,
                           size_t whylen)
{
    v->str = xstrdup(text);
    switch (p->kind) {
    case RULE_STRING:
        return 0;
    case RULE_REMOTE_OR_FALSE:
        v->remote = p->names->remote(p->names->ctx, text);
        if (!v->remote)
            set_error(why, whylen, "unknown remote '%s'", text);
        return v->remote ? 0 : -1;
    case RULE_LIST_OR_FALSE:
        v->list = resolve_list(p, text, why, whylen);
        return v->list ? 0 : -1;
    case RULE_ACTION:
    case RULE_RCPT_MODE:
    case RULE_RCPT_ON_ERROR:
        for (const char *const *c = kind_choices(p->kind); *c; c++)
            if (strcmp(text, *c) == 0) {
                v->choice = (int)(c - kind_choices(p->kind));
                return 0;
            }
        break;
    }
    set_error(why, whylen, "'%s' %s", text, kind_expectation(p->kind));
    return -1;
}

static int value_false(struct parser *p, struct rule_value *v, char *why, size_t whylen)
{
    if (kind_choices(p->kind)) {
        set_error(why, whylen, "%s, not false", kind_expectation(p->kind));
        return -1;
    }
    v->is_false = true;
    v->str = xstrdup("false");
    return 0;
}

/* Text of a scalar setting (string, number, boolean); false when it is none. */
static bool scalar_text(const config_setting_t *s, char *buf, size_t len)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        snprintf(buf, len, "%s", config_setting_get_string(s));
        return true;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, len, "%lld", config_setting_get_int64(s));
        return true;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, len, "%g", config_setting_get_float(s));
        return true;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, len, "%s", config_setting_get_bool(s) ? "true" : "false");
        return true;
    }
    return false;
}

/* A `then`, `else` or plain value setting. */
static int parse_value(struct parser *p, const config_setting_t *s, struct rule_value *v)
{
    char why[ERRLEN], text[1024];
    int type = config_setting_type(s);
    int rc;
    if (type == CONFIG_TYPE_BOOL && !config_setting_get_bool(s))
        rc = value_false(p, v, why, sizeof why);
    else if (type == CONFIG_TYPE_STRING || (p->kind == RULE_STRING && scalar_text(s, text, sizeof text)))
        rc = value_from_text(p, type == CONFIG_TYPE_STRING ? config_setting_get_string(s) : text, v,
                             why, sizeof why);
    else {
        set_error(why, sizeof why, "%s", kind_expectation(p->kind));
        rc = -1;
    }
    if (rc < 0)
        parse_error(p, s, "%s", why);
    return rc;
}

/* ---- conditions ---- */

static bool parse_integer(const char *s, long long *out)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0';
}

/* The operand of a comparator: network, number, regex or list. */
static int parse_operand(struct parser *p, const config_setting_t *cmp, struct cond *c)
{
    char why[ERRLEN];
    if (c->op == OP_EQ && var_is_ip(c->var)) {
        if (netaddr_net_parse(c->text, &c->net, why, sizeof why) < 0) {
            parse_error(p, cmp, "%s", why);
            return -1;
        }
        c->has_net = true;
    } else if (c->op == OP_EQ && c->var == RV_PRIORITY) {
        c->has_num = parse_integer(c->text, &c->num);
    } else if (c->op == OP_MATCHES) {
        int flags = REG_EXTENDED | REG_NOSUB | (var_ignores_case(c->var) ? REG_ICASE : 0);
        int rc = regcomp(&c->re, c->text, flags);
        if (rc != 0) {
            regerror(rc, &c->re, why, sizeof why);
            parse_error(p, cmp, "bad regular expression '%s': %s", c->text, why);
            return -1;
        }
        c->has_re = true;
    } else if (c->op == OP_IN_LIST) {
        c->list = resolve_list(p, c->text, why, sizeof why);
        if (!c->list) {
            parse_error(p, cmp, "%s", why);
            return -1;
        }
        if (list_remote(c->list))
            p->rule->uses_remote = true;
    }
    return 0;
}

/* { if = "<var>"; <comparator> = <value>; } */
static int parse_compare(struct parser *p, const config_setting_t *ifs, const config_setting_t *cmp,
                         struct cond *c)
{
    char text[1024];
    const struct comparator *k = comparator_find(config_setting_name(cmp));
    int var = -1;

    if (config_setting_type(ifs) != CONFIG_TYPE_STRING) {
        parse_error(p, ifs, "must be a variable name (a string)");
        return -1;
    }
    var = rule_var_parse(config_setting_get_string(ifs));
    if (var < 0) {
        parse_error(p, ifs, "unknown variable '%s'", config_setting_get_string(ifs));
        return -1;
    }
    bool needs_string = k->op == OP_IN_LIST || k->op == OP_MATCHES;
    if (needs_string ? config_setting_type(cmp) != CONFIG_TYPE_STRING
                     : !scalar_text(cmp, text, sizeof text)) {
        parse_error(p, cmp, "must be a %s", needs_string ? "string" : "string, number or boolean");
        return -1;
    }
    c->kind = COND_COMPARE;
    c->var = (enum rule_var)var;
    c->op = k->op;
    c->negate = k->negate;
    c->text = xstrdup(needs_string ? config_setting_get_string(cmp) : text);
    c->text_len = strlen(c->text);
    return parse_operand(p, cmp, c);
}

static int parse_group(struct parser *p, const config_setting_t *g, bool branch, struct cond *c,
                       const config_setting_t **value_r, bool *is_else);

/* any-of / all-of / none-of = ( <condition>, ... ) */
static int parse_combinator(struct parser *p, const config_setting_t *s, struct cond *c)
{
    c->kind = (enum cond_kind)combinator_find(config_setting_name(s));
    if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
        parse_error(p, s, "must be a list of conditions ( { if = ...; ... }, ... )");
        return -1;
    }
    int n = config_setting_length(s);
    if (n == 0) {
        parse_error(p, s, "holds no condition");
        return -1;
    }
    c->subs = xcalloc((size_t)n, sizeof *c->subs);
    c->n_subs = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(e)) {
            parse_error(p, e, "a condition must be a group { if = ...; ... }");
            return -1;
        }
        if (parse_group(p, e, false, &c->subs[i], NULL, NULL) < 0)
            return -1;
    }
    return 0;
}

/* The members of a branch or condition group, sorted by role. */
struct group_keys {
    const config_setting_t *ifs, *cmp, *comb, *then, *els, *other;
};

static int classify_keys(struct parser *p, const config_setting_t *g, bool branch,
                         struct group_keys *k)
{
    memset(k, 0, sizeof *k);
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        const config_setting_t **slot = NULL;
        if (strcmp(name, "if") == 0)
            slot = &k->ifs;
        else if (strcmp(name, "then") == 0 || strcmp(name, "else") == 0) {
            if (!branch) {
                parse_error(p, m, "'%s' belongs in a branch of the rule, not in a condition", name);
                return -1;
            }
            slot = name[0] == 't' ? &k->then : &k->els;
        } else if (comparator_find(name))
            slot = &k->cmp;
        else if (combinator_find(name) >= 0)
            slot = &k->comb;
        else {
            parse_error(p, m, "unknown comparator '%s'", name);
            return -1;
        }
        if (*slot) {
            parse_error(p, m, "two comparators: '%s' and '%s'", config_setting_name(*slot), name);
            return -1;
        }
        *slot = m;
        if (slot != &k->els && !k->other)
            k->other = m;
    }
    return 0;
}

/* Checks that the keys of g make one valid shape. */
static int check_shape(struct parser *p, const config_setting_t *g, bool branch,
                       const struct group_keys *k)
{
    if (k->els && k->other) {
        parse_error(p, k->other, "'%s' cannot be used in an else branch", config_setting_name(k->other));
        return -1;
    }
    if (k->els)
        return 0;
    if (k->comb && (k->ifs || k->cmp)) {
        const config_setting_t *extra = k->cmp ? k->cmp : k->ifs;
        parse_error(p, extra, "two comparators: '%s' and '%s'", config_setting_name(k->comb),
                    config_setting_name(extra));
        return -1;
    }
    if (k->cmp && !k->ifs) {
        parse_error(p, k->cmp, "'%s' needs if = \"<variable>\"", config_setting_name(k->cmp));
        return -1;
    }
    if (k->ifs && !k->cmp) {
        parse_error(p, k->ifs, "missing comparator (eq, ne, starts-with, ends-with, in-list, "
                               "matches or a not- form)");
        return -1;
    }
    if (!k->ifs && !k->comb) {
        parse_error(p, g, "%s needs if, any-of, all-of or none-of%s",
                    branch ? "a branch" : "a condition", branch ? " (or else)" : "");
        return -1;
    }
    if (branch && !k->then) {
        parse_error(p, g, "missing then");
        return -1;
    }
    return 0;
}

/*
 * A branch (branch=true: sets *value_r to its then/else setting, *is_else)
 * or a nested condition (branch=false).
 */
static int parse_group(struct parser *p, const config_setting_t *g, bool branch, struct cond *c,
                       const config_setting_t **value_r, bool *is_else)
{
    struct group_keys k;
    if (classify_keys(p, g, branch, &k) < 0 || check_shape(p, g, branch, &k) < 0)
        return -1;
    if (branch) {
        *is_else = k.els != NULL;
        *value_r = k.els ? k.els : k.then;
        if (k.els)
            return 0;
    }
    if (k.comb)
        return parse_combinator(p, k.comb, c);
    return parse_compare(p, k.ifs, k.cmp, c);
}

/* ---- rules ---- */

static struct rule *rule_alloc(enum rule_kind kind, size_t n)
{
    struct rule *r = xcalloc(1, sizeof *r);
    r->kind = kind;
    r->branches = xcalloc(n, sizeof *r->branches);
    r->n_branches = n;
    return r;
}

static int parse_branch(struct parser *p, const config_setting_t *list, int i)
{
    const config_setting_t *b = config_setting_get_elem(list, (unsigned)i);
    const config_setting_t *value = NULL;
    struct branch *br = &p->rule->branches[i];
    bool is_else = false;
    int n = config_setting_length(list);

    if (!config_setting_is_group(b)) {
        parse_error(p, b, "a branch must be a group { if = ...; then = ...; } or { else = ...; }");
        return -1;
    }
    if (parse_group(p, b, true, &br->cond, &value, &is_else) < 0)
        return -1;
    if (is_else && i + 1 < n) {
        parse_error(p, config_setting_get_elem(list, (unsigned)i + 1),
                    "branch after else (else must be the last branch)");
        return -1;
    }
    if (!is_else && i + 1 == n) {
        parse_error(p, b, "missing else: the last branch must be { else = ...; }");
        return -1;
    }
    br->has_cond = !is_else;
    return parse_value(p, value, &br->value);
}

struct rule *rule_parse(const config_setting_t *s, enum rule_kind kind, const struct rule_names *names,
                        char *err, size_t errlen)
{
    struct parser p = { .kind = kind, .names = names, .err = err, .errlen = errlen };
    if (!s) {
        set_error(err, errlen, "rule_parse: no setting");
        return NULL;
    }
    if (config_setting_is_scalar(s)) {
        p.rule = rule_alloc(kind, 1);
        if (parse_value(&p, s, &p.rule->branches[0].value) < 0)
            goto fail;
        return p.rule;
    }
    if (!config_setting_is_list(s)) {
        parse_error(&p, s, "must be a value or a list of branches ( { if = ...; then = ...; }, "
                           "{ else = ...; } )");
        return NULL;
    }
    int n = config_setting_length(s);
    if (n == 0) {
        parse_error(&p, s, "empty rule: missing else (the last branch must be { else = ...; })");
        return NULL;
    }
    p.rule = rule_alloc(kind, (size_t)n);
    for (int i = 0; i < n; i++)
        if (parse_branch(&p, s, i) < 0)
            goto fail;
    return p.rule;
fail:
    rule_free(p.rule);
    return NULL;
}

struct rule *rule_constant(enum rule_kind kind, const char *value, const struct rule_names *names,
                           char *err, size_t errlen)
{
    struct parser p = { .kind = kind, .names = names, .err = err, .errlen = errlen };
    char why[ERRLEN];
    p.rule = rule_alloc(kind, 1);
    struct rule_value *v = &p.rule->branches[0].value;
    int rc = (!value || strcmp(value, "false") == 0) ? value_false(&p, v, why, sizeof why)
                                                     : value_from_text(&p, value, v, why, sizeof why);
    if (rc < 0) {
        set_error(err, errlen, "default value '%s': %s", value ? value : "false", why);
        rule_free(p.rule);
        return NULL;
    }
    return p.rule;
}

static void cond_free(struct cond *c)
{
    free(c->text);
    if (c->has_re)
        regfree(&c->re);
    for (size_t i = 0; i < c->n_subs; i++)
        cond_free(&c->subs[i]);
    free(c->subs);
}

void rule_free(struct rule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_branches; i++) {
        cond_free(&r->branches[i].cond);
        free(r->branches[i].value.str);
    }
    free(r->branches);
    free(r);
}

bool rule_uses_remote(const struct rule *r) { return r && r->uses_remote; }

void rule_describe(const struct rule *r, char *buf, size_t len)
{
    if (!r)
        snprintf(buf, len, "false");
    else if (r->n_branches == 1 && !r->branches[0].has_cond)
        snprintf(buf, len, "%s", r->branches[0].value.str ? r->branches[0].value.str : "false");
    else
        snprintf(buf, len, "(%zu branches, the first that matches wins)", r->n_branches);
}

/* ---- evaluation ---- */

struct eval {
    const struct rule_vars *vars;
    const struct list_env *env;
    char *err;
    size_t errlen;
    int status;   /* -1 once a lookup failed */
};

static const char *var_value(const struct eval *e, enum rule_var v)
{
    const char *s = e->vars ? e->vars->v[v] : NULL;
    return s ? s : "";
}

static bool text_equal(bool icase, const char *a, const char *b, size_t n)
{
    return icase ? strncasecmp(a, b, n) == 0 : strncmp(a, b, n) == 0;
}

static bool eval_eq(const struct cond *c, const char *val, bool icase)
{
    long long n;
    if (c->has_net) {
        struct netaddr a;
        return netaddr_parse(val, &a) == 0 && netaddr_net_contains(&c->net, &a);
    }
    if (c->has_num && parse_integer(val, &n))
        return n == c->num;
    return icase ? strcasecmp(val, c->text) == 0 : strcmp(val, c->text) == 0;
}

/* 1 in the list, 0 not (or empty value), -1 lookup failed (recorded). */
static int eval_in_list(struct eval *e, const struct cond *c, const char *val)
{
    char scratch[ERRLEN];
    if (!*val)
        return 0;
    bool first_error = e->status == 0;
    int r = list_contains(c->list, val, e->env, first_error ? e->err : scratch,
                          first_error ? e->errlen : sizeof scratch);
    if (r < 0)
        e->status = -1;
    return r;
}

static bool eval_compare(struct eval *e, const struct cond *c)
{
    const char *val = var_value(e, c->var);
    bool icase = var_ignores_case(c->var);
    size_t len = strlen(val);
    bool hit = false;
    switch (c->op) {
    case OP_EQ:
        hit = eval_eq(c, val, icase);
        break;
    case OP_STARTS_WITH:
        hit = len >= c->text_len && text_equal(icase, val, c->text, c->text_len);
        break;
    case OP_ENDS_WITH:
        hit = len >= c->text_len && text_equal(icase, val + len - c->text_len, c->text, c->text_len);
        break;
    case OP_MATCHES:
        hit = regexec(&c->re, val, 0, NULL, 0) == 0;
        break;
    case OP_IN_LIST: {
        int r = eval_in_list(e, c, val);
        if (r < 0)
            return false;   /* unknown is never a match, negated or not */
        hit = r == 1;
        break;
    }
    }
    return hit != c->negate;
}

static bool eval_cond(struct eval *e, const struct cond *c)
{
    switch (c->kind) {
    case COND_COMPARE:
        return eval_compare(e, c);
    case COND_ANY_OF:
    case COND_NONE_OF:
        for (size_t i = 0; i < c->n_subs; i++)
            if (eval_cond(e, &c->subs[i]))
                return c->kind == COND_ANY_OF;
        return c->kind == COND_NONE_OF;
    case COND_ALL_OF:
        for (size_t i = 0; i < c->n_subs; i++)
            if (!eval_cond(e, &c->subs[i]))
                return false;
        return true;
    }
    return false;
}

static void fill_result(enum rule_kind kind, const struct rule_value *v, struct rule_result *out)
{
    out->is_false = v->is_false;
    out->str = v->str;
    out->remote = v->remote;
    out->list = v->list;
    out->choice = v->choice;
    out->action = kind == RULE_ACTION ? (enum routing_action)v->choice : ACTION_HEADER;
}

int rule_eval(const struct rule *r, const struct rule_vars *vars, const struct list_env *env,
              struct rule_result *out, char *err, size_t errlen)
{
    static const struct rule_value no_rule = { .is_false = true, .str = (char *)"false" };
    struct eval e = { .vars = vars, .env = env, .err = err, .errlen = errlen, .status = 0 };
    const struct rule_value *chosen = &no_rule;
    for (size_t i = 0; r && i < r->n_branches; i++) {
        const struct branch *b = &r->branches[i];
        if (!b->has_cond || eval_cond(&e, &b->cond)) {
            chosen = &b->value;
            break;
        }
    }
    fill_result(r ? r->kind : RULE_STRING, chosen, out);
    return e.status;
}
