/*
 * fake_remote.h - a scripted remote host (tests/lib/fakeserver.py) for the
 * unit tests of the protocol clients, the pool and the lookups.
 *   fake_start(&f, "normal", "--option", "value", NULL)  -> f.port
 *   ... the code under test talks to 127.0.0.1:f.port ...
 *   log_count(&f, "RCPT TO:<a@b>")      commands the fake received
 *   fake_stop(&f)
 * Use stop_leftovers as the teardown of every test that starts one: a
 * failed assert jumps past fake_stop.
 */
#ifndef NEXTHOP_FAKE_REMOTE_H
#define NEXTHOP_FAKE_REMOTE_H

#include <stdbool.h>
#include <sys/types.h>

#include "pool.h"

struct fake {
    pid_t pid;
    int port;
    char dir[256];
    char log[300], status[300], data[300];
};

void sleep_ms(long ms);
const char *fakeserver_path(void);
/* Starts fakeserver.py SCENARIO with extra options (NULL-terminated); asserts on failure. */
void fake_start(struct fake *f, const char *scenario, ...);
void fake_stop(struct fake *f);
/* cmocka teardown: stops every fake a test left running. */
int stop_leftovers(void **state);
/* The whole file at path (malloc'd, "" when missing). */
char *slurp(const char *path);
/* Lines of the command log equal to line / starting with prefix. */
int log_count(const struct fake *f, const char *line);
int log_count_prefix(const struct fake *f, const char *prefix);
bool log_has(const struct fake *f, const char *needle);
/* The most sessions the fake saw at once, -1 when unknown. */
int fake_max_sessions(const struct fake *f);
/* RCPTs the fake got in one read with an earlier RCPT (pipelined), -1 when unknown. */
int fake_pipelined(const struct fake *f);

/* A remote "fake" at 127.0.0.1:port, plain text, 2 s timeout, 4 connections. */
void remote_init(struct remote_def *r, int port, enum remote_proto proto);
/* pool_lookup() with a 256-byte reply and an ERRLEN err, both cleared first. */
enum lookup_result lookup(struct pool *p, enum lookup_kind kind, const char *arg,
                          const char *pw, char *reply, char *err);

#endif
