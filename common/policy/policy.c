/*
 * policy.c - ownership of the policy's lists and rules (policy.h).
 * Must not: evaluate rules or consult lists (rules.c, lists.c do), or hold
 * runtime state.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include "lists.h"
#include "rules.h"
#include "util.h"

struct list *policy_list(const struct policy *p, const char *name)
{
    for (size_t i = 0; i < p->n_lists; i++)
        if (strcmp(list_name(p->lists[i]), name) == 0)
            return p->lists[i];
    return NULL;
}

void policy_add_list(struct policy *p, struct list *l)
{
    p->lists = xrealloc(p->lists, (p->n_lists + 1) * sizeof *p->lists);
    p->lists[p->n_lists++] = l;
}

void policy_clear(struct policy *p)
{
    rule_free(p->rcpt_lookup_domains);
    rule_free(p->rcpt_lookup_addresses);
    rule_free(p->rcpt_mode);
    rule_free(p->rcpt_on_error);
    rule_free(p->next_hop);
    rule_free(p->action);
    for (size_t i = 0; i < p->n_lists; i++)
        list_free(p->lists[i]);
    free(p->lists);
    free(p->routing_header);
    memset(p, 0, sizeof *p);
}
