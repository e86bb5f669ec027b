/*
 * policy.h - the decisions a loaded configuration holds: which recipients
 * are validated against which list, which next hop and action each
 * recipient gets, and what happens when relaying fails. Plain data built
 * by the config loader (config/) and read by validate.c, route.c and
 * nexthop_map.c; immutable once loaded.
 *
 * Must not: hold runtime state (pools and caches belong to the remote set,
 * remote/remote_set.h), or know the config file.
 */
#ifndef NEXTHOP_POLICY_H
#define NEXTHOP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rule;
struct list;

enum on_tempfail { ON_TEMPFAIL_QUARANTINE = 0, ON_TEMPFAIL_TEMPFAIL, ON_TEMPFAIL_ACCEPT };
enum routing_action { ACTION_HEADER = 0, ACTION_RELAY, ACTION_QUARANTINE };
/* session.rcpt.mode: refuse at RCPT, or only log and count what would be refused. */
enum rcpt_mode { RCPT_MODE_ENFORCE = 0, RCPT_MODE_REPORT };
/* session.rcpt.on-error: what a failed lookup does at RCPT. */
enum rcpt_on_error { RCPT_ON_ERROR_TEMPFAIL = 0, RCPT_ON_ERROR_ACCEPT };

struct policy {
    struct list **lists;                  /* every list a rule may name; owned */
    size_t n_lists;

    /* session.rcpt */
    struct rule *rcpt_lookup_domains;     /* value: list name or false */
    struct rule *rcpt_lookup_addresses;   /* value: list name or false */
    bool skip_authenticated;
    struct rule *rcpt_mode;               /* value: enforce|report */
    struct rule *rcpt_on_error;           /* value: tempfail|accept */

    /* queue.outbound / routing */
    struct rule *next_hop;                /* value: remote id or false */
    struct rule *action;                  /* value: header|relay|quarantine */
    char *routing_header;
    enum on_tempfail on_tempfail;
    int64_t routing_timeout_ms;
    size_t spool_memory;                  /* message bytes kept in memory */
};

/* Finds a list by its rule name ("list/<id>", "<db>/<lookup>", "remote/<id>"); NULL if none. */
struct list *policy_list(const struct policy *p, const char *name);
/* Adds l to the lists p owns. */
void policy_add_list(struct policy *p, struct list *l);
/* Frees what p owns (rules, lists, strings), not p itself. */
void policy_clear(struct policy *p);

#endif
