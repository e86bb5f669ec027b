/*
 * milter.h - what the parts of the daemon share: the current runtime
 * (config + remotes, swapped by a reload) and the entry points of each mode.
 * Must not: hold mail logic or libmilter types; declarations only.
 */
#ifndef NEXTHOP_MILTER_H
#define NEXTHOP_MILTER_H

#include <stdbool.h>

#include "config.h"
#include "listener.h"
#include "runtime.h"

struct options {
    const char *config_file;
    const char *socket;      /* -p */
    const char *user;        /* -u */
    const char *pidfile;     /* -P */
    bool foreground;         /* -f */
    bool verbose;            /* -v */
};

/* current.c: the runtime new work starts with; the caller owns one reference (NULL before start). */
struct nh_runtime *runtime_current(void);
/* Installs rt (takes its reference) and drops the old one. */
void runtime_install(struct nh_runtime *rt);

/* callbacks.c: registers the libmilter callbacks. */
int callbacks_register(void);

/* daemon.c */
int daemon_run(const struct options *opt);
/* reload.c: the file reloads read, and the config the daemon started with. */
void reload_setup(const char *config_file, const struct nh_config *started);
/*
 * Reloads the config file (SIGUSR1, SIGHUP, the control socket's reload):
 * 0 with "ok" in err (or which changed settings wait for a restart), or
 * -1 with every FILE:LINE error in err (one per line) and the running
 * config kept. why is logged.
 */
int reload_now(const char *why, char *err, size_t errlen);

/* control.c: the control socket (control.socket) on its open listener. */
int control_start(const struct listener *l, const char *spec, char *err, size_t errlen);

/* ctl.c: -C, one command to the running daemon: exit 0, 1 (it failed), 75 (unreachable). */
int ctl_command(const char *file, char **words, int n);

/* cli.c */
int cli_check(const char *file, bool verbose);
int cli_query(const char *file, const char *remote, const char *kind, const char *arg);
int cli_test(const char *file, const char *rcpt, const char *sender, char **xvars, int nx);
int cli_version(void);

#endif
