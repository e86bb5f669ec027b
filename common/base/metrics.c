/*
 * metrics.c - lock-free counters and histograms, rendered as Prometheus
 * text (see metrics.h).
 *
 * A remote's numbers live in one slot of a fixed table. Finding the slot
 * of an id is a scan of the published slots (no lock); only the first
 * sight of an id takes the registration lock. When the table is full,
 * further ids share the last slot, shown as remote="_other".
 * Must not: allocate or lock on the bump path once an id is known, or
 * print anything a client chose.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define REMOTE_SLOTS 64
#define SLOT_NAME 64
#define N_BUCKETS 13
#define N_KINDS 4

typedef atomic_uint_fast64_t counter_t;

const long metrics_buckets_ms[N_BUCKETS] = { 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
                                             10000, 30000 };
const size_t metrics_n_buckets = N_BUCKETS;

struct histogram {
    counter_t buckets[N_BUCKETS + 1];   /* not cumulative; the last is +Inf */
    counter_t sum_ms;
};

enum relay_result { RELAY_DELIVERED = 0, RELAY_DEFERRED, RELAY_REFUSED, RELAY_RESULTS };

struct remote_slot {
    char name[SLOT_NAME];
    counter_t lookups[N_KINDS][3];      /* [kind][no, yes, error] */
    counter_t sources[METRICS_SRC_COUNT];
    struct histogram lookup_ms;
    counter_t relay[RELAY_RESULTS];
    struct histogram relay_ms;
    counter_t redis[METRICS_REDIS_COUNT];
};

static struct remote_slot slots[REMOTE_SLOTS];
static atomic_size_t n_slots;
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;
static counter_t events[METRICS_EVENT_COUNT];

static const char *const kind_names[N_KINDS] = { "rcpt", "vrfy", "expn", "auth" };
static const char *const result_names[3] = { "no", "yes", "error" };
static const char *const source_names[METRICS_SRC_COUNT] = { "remote", "cache", "stale", "shared",
                                                             "catch-all", "redis" };
static const char *const relay_names[RELAY_RESULTS] = { "delivered", "deferred", "refused" };
static const char *const redis_names[METRICS_REDIS_COUNT] = { "hit", "miss", "store" };

static void bump(counter_t *c, uint_fast64_t n) { atomic_fetch_add_explicit(c, n, memory_order_relaxed); }
static uint_fast64_t get(counter_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

static struct remote_slot *find_published(const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(slots[i].name, name, SLOT_NAME - 1) == 0)
            return &slots[i];
    return NULL;
}

static struct remote_slot *slot_for(const char *name)
{
    struct remote_slot *s = find_published(name, atomic_load_explicit(&n_slots, memory_order_acquire));
    if (s)
        return s;
    pthread_mutex_lock(&register_lock);
    size_t n = atomic_load_explicit(&n_slots, memory_order_relaxed);
    s = find_published(name, n);
    if (!s && n < REMOTE_SLOTS - 1) {
        s = &slots[n];
        snprintf(s->name, sizeof s->name, "%s", name);
        atomic_store_explicit(&n_slots, n + 1, memory_order_release);
    } else if (!s) {
        s = &slots[REMOTE_SLOTS - 1];
        if (n == REMOTE_SLOTS - 1) {
            snprintf(s->name, sizeof s->name, "_other");
            atomic_store_explicit(&n_slots, REMOTE_SLOTS, memory_order_release);
        }
    }
    pthread_mutex_unlock(&register_lock);
    return s;
}

static void observe(struct histogram *h, long ms)
{
    size_t b = 0;
    if (ms < 0)
        ms = 0;
    while (b < N_BUCKETS && ms > metrics_buckets_ms[b])
        b++;
    bump(&h->buckets[b], 1);
    bump(&h->sum_ms, (uint_fast64_t)ms);
}

void metrics_count(enum metrics_event ev)
{
    if ((unsigned)ev < METRICS_EVENT_COUNT)
        bump(&events[ev], 1);
}

static enum metrics_source source_of(const char *source)
{
    for (size_t i = 0; source && i < METRICS_SRC_COUNT; i++)
        if (strcmp(source, source_names[i]) == 0)
            return (enum metrics_source)i;
    return METRICS_SRC_REMOTE;
}

static int kind_of(const char *kind)
{
    for (int k = 0; kind && k < N_KINDS; k++)
        if (strcmp(kind, kind_names[k]) == 0)
            return k;
    return -1;
}

void metrics_lookup(const char *remote, const char *kind, int result, const char *source, long ms)
{
    struct remote_slot *s = slot_for(remote);
    int r = result == 1 ? 1 : result == 0 ? 0 : 2;
    int k = kind_of(kind);
    if (k >= 0)
        bump(&s->lookups[k][r], 1);
    bump(&s->sources[source_of(source)], 1);
    observe(&s->lookup_ms, ms);
}

void metrics_relay_rcpt(const char *remote, int code)
{
    struct remote_slot *s = slot_for(remote);
    bump(&s->relay[code / 100 == 2 ? RELAY_DELIVERED : code / 100 == 5 ? RELAY_REFUSED : RELAY_DEFERRED], 1);
}

void metrics_relay_time(const char *remote, long ms) { observe(&slot_for(remote)->relay_ms, ms); }

void metrics_redis(const char *remote, enum metrics_redis what)
{
    if ((unsigned)what < METRICS_REDIS_COUNT)
        bump(&slot_for(remote)->redis[what], 1);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&register_lock);
    memset(slots, 0, sizeof slots);
    memset(events, 0, sizeof events);
    atomic_store(&n_slots, 0);
    pthread_mutex_unlock(&register_lock);
}

/* ------------------------------------------------------------ rendering */

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants. */
static void label_value(FILE *out, const char *v)
{
    fputc('"', out);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', out);
        if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
    fputc('"', out);
}

static void sample(FILE *out, const char *name, const char *remote, const char *label,
                   const char *value, uint_fast64_t n)
{
    fputs(name, out);
    if (remote || label) {
        fputc('{', out);
        if (remote) {
            fputs("remote=", out);
            label_value(out, remote);
        }
        if (label) {
            fprintf(out, "%s%s=", remote ? "," : "", label);
            label_value(out, value);
        }
        fputc('}', out);
    }
    fprintf(out, " %llu\n", (unsigned long long)n);
}

static void render_histogram(FILE *out, const char *name, const char *remote, struct histogram *h)
{
    uint_fast64_t cumulative = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        cumulative += get(&h->buckets[b]);
        fprintf(out, "%s_bucket{remote=", name);
        label_value(out, remote);
        if (b < N_BUCKETS)
            fprintf(out, ",le=\"%g\"} %llu\n", (double)metrics_buckets_ms[b] / 1000.0,
                    (unsigned long long)cumulative);
        else
            fprintf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    }
    uint_fast64_t sum = get(&h->sum_ms);
    fprintf(out, "%s_sum{remote=", name);
    label_value(out, remote);
    fprintf(out, "} %llu.%03llu\n", (unsigned long long)(sum / 1000), (unsigned long long)(sum % 1000));
    fprintf(out, "%s_count{remote=", name);
    label_value(out, remote);
    fprintf(out, "} %llu\n", (unsigned long long)cumulative);
}

static void render_lookups(FILE *out, size_t n)
{
    family(out, "nexthop_lookups_total", "counter", "Lookups against remote hosts by kind and result.");
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < N_KINDS; k++)
            for (int r = 0; r < 3; r++) {
                fprintf(out, "nexthop_lookups_total{remote=");
                label_value(out, slots[i].name);
                fprintf(out, ",kind=\"%s\",result=\"%s\"} %llu\n", kind_names[k], result_names[r],
                        (unsigned long long)get(&slots[i].lookups[k][r]));
            }
    family(out, "nexthop_lookup_sources_total", "counter",
           "Where lookup answers came from: remote, cache, stale, shared, catch-all, redis.");
    for (size_t i = 0; i < n; i++)
        for (int src = 0; src < METRICS_SRC_COUNT; src++)
            sample(out, "nexthop_lookup_sources_total", slots[i].name, "source", source_names[src],
                   get(&slots[i].sources[src]));
    family(out, "nexthop_lookup_duration_seconds", "histogram", "Time to answer a lookup, cache included.");
    for (size_t i = 0; i < n; i++)
        render_histogram(out, "nexthop_lookup_duration_seconds", slots[i].name, &slots[i].lookup_ms);
}

static void render_relays(FILE *out, size_t n)
{
    family(out, "nexthop_relay_recipients_total", "counter",
           "Recipients relayed to a next hop: delivered (2xx), deferred (4xx or failure), refused (5xx).");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < RELAY_RESULTS; r++)
            sample(out, "nexthop_relay_recipients_total", slots[i].name, "result", relay_names[r],
                   get(&slots[i].relay[r]));
    family(out, "nexthop_relay_duration_seconds", "histogram", "Time of one relay transaction to a next hop.");
    for (size_t i = 0; i < n; i++)
        render_histogram(out, "nexthop_relay_duration_seconds", slots[i].name, &slots[i].relay_ms);
    family(out, "nexthop_redis_requests_total", "counter",
           "Second-level cache in Redis: hits, misses and answers stored.");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < METRICS_REDIS_COUNT; r++)
            sample(out, "nexthop_redis_requests_total", slots[i].name, "result", redis_names[r],
                   get(&slots[i].redis[r]));
}

struct event_family {
    const char *name, *help, *label;
    struct { enum metrics_event ev; const char *value; } members[4];
};

static const struct event_family event_families[] = {
    { "nexthop_auth_service_requests_total", "saslauthd-protocol requests by answer.", "result",
      { { METRICS_AUTHSVC_OK, "ok" }, { METRICS_AUTHSVC_NO, "no" }, { METRICS_AUTHSVC_ERROR, "error" },
        { METRICS_AUTHSVC_BAD, "bad-request" } } },
    { "nexthop_socketmap_requests_total", "socketmap requests by answer.", "result",
      { { METRICS_SOCKETMAP_OK, "ok" }, { METRICS_SOCKETMAP_NOTFOUND, "notfound" },
        { METRICS_SOCKETMAP_TEMP, "temp" }, { METRICS_SOCKETMAP_PERM, "perm" } } },
    { "nexthop_rcpt_unenforced_total",
      "Recipients accepted that enforcement would have refused (report mode) or after a failed lookup.",
      "result",
      { { METRICS_RCPT_WOULD_REJECT, "would-reject" }, { METRICS_RCPT_WOULD_TEMPFAIL, "would-tempfail" },
        { METRICS_RCPT_ACCEPT_ON_ERROR, "accept-on-error" }, { 0, NULL } } },
    { "nexthop_reloads_total", "Config reloads (SIGUSR1) by outcome.", "result",
      { { METRICS_RELOAD_OK, "ok" }, { METRICS_RELOAD_FAILED, "failed" }, { 0, NULL }, { 0, NULL } } },
    { "nexthop_redis_errors_total", "Redis commands that failed or timed out.", NULL,
      { { METRICS_REDIS_ERROR, NULL }, { 0, NULL }, { 0, NULL }, { 0, NULL } } },
    { "nexthop_redis_connects_total", "Connections made to Redis.", NULL,
      { { METRICS_REDIS_CONNECT, NULL }, { 0, NULL }, { 0, NULL }, { 0, NULL } } },
};

static void render_events(FILE *out)
{
    for (size_t f = 0; f < sizeof event_families / sizeof event_families[0]; f++) {
        const struct event_family *ef = &event_families[f];
        family(out, ef->name, "counter", ef->help);
        for (size_t m = 0; m < 4; m++) {
            if (ef->label && !ef->members[m].value)
                break;
            sample(out, ef->name, NULL, ef->label, ef->members[m].value, get(&events[ef->members[m].ev]));
            if (!ef->label)
                break;
        }
    }
}

static uint_fast64_t non_negative(long v) { return v > 0 ? (uint_fast64_t)v : 0; }

/* Live numbers of the running remotes' caches and pools, gathered by the caller. */
static void render_live(FILE *out, const struct metrics_remote_live *live, size_t n)
{
    static const struct { const char *name, *type, *help; } fams[] = {
        { "nexthop_cache_hits_total", "counter", "Answers found in the local cache (answer=yes|no)." },
        { "nexthop_cache_misses_total", "counter", "Lookups not found in the local cache." },
        { "nexthop_cache_stale_served_total", "counter", "Expired yes answers served while refreshing." },
        { "nexthop_cache_evictions_total", "counter", "Entries pushed out of the local cache." },
        { "nexthop_cache_entries", "gauge", "Entries in the local cache (answer=yes|no)." },
        { "nexthop_pool_connections_open", "gauge", "Connections open to the remote host." },
        { "nexthop_pool_connections_idle", "gauge", "Open connections waiting in the pool." },
        { "nexthop_pool_connections_max", "gauge", "Most connections open at once so far." },
        { "nexthop_pool_connects_total", "counter", "Connections opened to the remote host." },
        { "nexthop_pool_operations_total", "counter", "Lookups and relays run on pooled connections." },
        { "nexthop_remote_down", "gauge", "1 while the remote host is marked down after failed connects." },
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        const char *nm = fams[f].name;
        family(out, nm, fams[f].type, fams[f].help);
        for (size_t i = 0; i < n; i++) {
            const struct metrics_remote_live *l = &live[i];
            const char *id = l->remote;
            switch (f) {
            case 0:
                sample(out, nm, id, "answer", "yes", l->hits_positive);
                sample(out, nm, id, "answer", "no", l->hits_negative);
                break;
            case 1: sample(out, nm, id, NULL, NULL, l->misses); break;
            case 2: sample(out, nm, id, NULL, NULL, l->stale_served); break;
            case 3: sample(out, nm, id, NULL, NULL, l->evictions); break;
            case 4:
                sample(out, nm, id, "answer", "yes", l->entries_positive);
                sample(out, nm, id, "answer", "no", l->entries_negative);
                break;
            case 5: sample(out, nm, id, NULL, NULL, non_negative(l->open)); break;
            case 6: sample(out, nm, id, NULL, NULL, non_negative(l->idle)); break;
            case 7: sample(out, nm, id, NULL, NULL, non_negative(l->max_open)); break;
            case 8: sample(out, nm, id, NULL, NULL, non_negative(l->connects)); break;
            case 9: sample(out, nm, id, NULL, NULL, non_negative(l->operations)); break;
            case 10: sample(out, nm, id, NULL, NULL, l->down ? 1 : 0); break;
            }
        }
    }
}

char *metrics_render(const struct metrics_remote_live *live, size_t n_live, size_t *len_r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        abort();
    /* every remote of the running config shows up, with zeros until used */
    for (size_t i = 0; i < n_live; i++)
        slot_for(live[i].remote);
    size_t n = atomic_load_explicit(&n_slots, memory_order_acquire);
    family(out, "nexthop_build_info", "gauge", "Version of milter-nexthop; always 1.");
    fprintf(out, "nexthop_build_info{version=\"%s\"} 1\n", NEXTHOP_VERSION);
    render_lookups(out, n);
    render_relays(out, n);
    render_events(out);
    render_live(out, live, n_live);
    fclose(out);
    if (len_r)
        *len_r = len;
    return text;
}
