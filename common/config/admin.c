/*
 * admin.c - flush and show for the control socket (see admin.h): the
 * address an admin typed is normalized as a RCPT TO would be, so the entry
 * found is the one the milter uses.
 *
 * Must not: know the socket, the command syntax or libmilter, or write a
 * cache key (AUTH keys hold salted password hashes).
 */
#include "admin.h"

#include <string.h>

#include "addr.h"
#include "lookup.h"
#include "util.h"

/* address (with or without <>) as the milter would key it; -1 after writing why. */
static int normalized(const char *address, char *out, size_t len, FILE *err_out)
{
    char raw[ADDR_MAX + 3], err[ERRLEN];
    if (strlen(address) > ADDR_MAX) {
        fprintf(err_out, "address too long (at most %d bytes)\n", ADDR_MAX);
        return -1;
    }
    snprintf(raw, sizeof raw, address[0] == '<' ? "%s" : "<%s>", address);
    if (addr_normalize_rcpt(raw, out, len, err, sizeof err) < 0 || !*out) {
        fprintf(err_out, "not an address: %s\n", *out ? err : "empty");
        return -1;
    }
    if (!strchr(out, '@')) {
        fprintf(err_out, "<%s> is never looked up or cached\n", out);
        return -1;
    }
    return 0;
}

/* "@domain" as the milter would key it (a domain checked like the one of an address). */
static int normalized_domain(const char *what, char *out, size_t len, FILE *err_out)
{
    char addr[ADDR_MAX + 1];
    if (strchr(what + 1, '@') || !what[1]) {
        fprintf(err_out, "not a domain: %s\n", what + 1);
        return -1;
    }
    snprintf(addr, sizeof addr, "x@%s", what + 1);
    if (normalized(addr, addr, sizeof addr, err_out) < 0)
        return -1;
    snprintf(out, len, "@%s", addr_domain(addr));
    return 0;
}

int admin_flush(struct nh_runtime *run, const char *what, const char *remote_id, FILE *out)
{
    char norm[ADDR_MAX + 2];
    if (what && (what[0] == '@' ? normalized_domain(what, norm, sizeof norm, out)
                                : normalized(what, norm, sizeof norm, out)) < 0)
        return -1;
    if (remote_id && !remote_set_find(run->remotes, remote_id)) {
        fprintf(out, "no remote named %s\n", remote_id);
        return -1;
    }
    size_t total = 0, n = remote_set_size(run->remotes);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct remote_rt *rt = remote_set_at(run->remotes, i);
        if (remote_id && strcmp(rt->def->id, remote_id) != 0)
            continue;
        size_t local = 0;
        long shared = 0;
        if (lookup_forget(rt, what ? norm : NULL, &local, &shared) < 0) {
            fprintf(out, "%s: %zu removed locally; Redis failed, its entries may remain\n",
                    rt->def->id, local);
            rc = -1;
            total += local;
            continue;
        }
        fprintf(out, "%s: %zu removed (%zu local, %ld in Redis)\n", rt->def->id,
                local + (size_t)shared, local, shared);
        total += local + (size_t)shared;
    }
    fprintf(out, "%zu removed in all\n", total);
    return rc;
}

int admin_show(struct nh_runtime *run, const char *address, FILE *out)
{
    char norm[ADDR_MAX + 1];
    if (normalized(address, norm, sizeof norm, out) < 0)
        return -1;
    size_t n = remote_set_size(run->remotes), shown = 0;
    for (size_t i = 0; i < n; i++) {
        struct remote_rt *rt = remote_set_at(run->remotes, i);
        if (!rt->def->lookup)
            continue;
        struct lookup_cached c;
        lookup_cached(rt, norm, &c);
        shown++;
        if (c.answer < 0)
            fprintf(out, "%s: <%s> not cached\n", rt->def->id, norm);
        else if (strcmp(c.source, "catch-all") == 0)
            fprintf(out, "%s: <%s> yes, from catch-all (the domain accepts any recipient)\n",
                    rt->def->id, norm);
        else if (c.ms_left < 0)
            fprintf(out, "%s: <%s> %s, expired, served stale while it is asked again, from %s\n",
                    rt->def->id, norm, c.answer ? "yes" : "no", c.source);
        else
            fprintf(out, "%s: <%s> %s, %lld s left, from %s\n", rt->def->id, norm,
                    c.answer ? "yes" : "no", (long long)((c.ms_left + 999) / 1000), c.source);
    }
    if (!shown)
        fprintf(out, "no remote does lookups\n");
    return 0;
}
