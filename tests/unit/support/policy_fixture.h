/*
 * policy_fixture.h - a loaded config and its runtime for the unit tests of
 * common/policy (rcpt, validate, route, message): the config is written as
 * text, loaded by the real loader and started, so the tests exercise the
 * rules and remotes a user would write.
 *   struct nh_runtime *run = fixture_runtime("remote = { ... port = %d; ... };", port);
 *   ... &run->cfg->policy, run->remotes ...
 *   runtime_unref(run);
 * fixture_closed_port() gives a 127.0.0.1 port nothing listens on (a
 * remote that is down: connections are refused at once); fixture_sql()
 * prepares (or breaks) the SQLite database behind a database.<id> list.
 * Must not: leave files behind, or talk to anything but 127.0.0.1.
 */
#ifndef NEXTHOP_POLICY_FIXTURE_H
#define NEXTHOP_POLICY_FIXTURE_H

#include "runtime.h"

/* Loads the config printf(fmt, ...) and starts it; fails the test when it does not load. */
struct nh_runtime *fixture_runtime(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A port on 127.0.0.1 that was free a moment ago and has no listener. */
int fixture_closed_port(void);

/* Runs sql on the SQLite database at path (created if need be); fails the test on an error. */
void fixture_sql(const char *path, const char *sql);

#endif
