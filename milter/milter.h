/*
 * milter.h - what the parts of the daemon share: the current config
 * (swapped by SIGUSR1) and the entry points of each mode.
 */
#ifndef NEXTHOP_MILTER_H
#define NEXTHOP_MILTER_H

#include <stdbool.h>

#include "config.h"

struct options {
    const char *config_file;
    const char *socket;      /* -p */
    const char *user;        /* -u */
    const char *pidfile;     /* -P */
    bool foreground;         /* -f */
    bool verbose;            /* -v */
};

/* The config new messages start with; the caller owns one reference. */
struct nh_config *config_current(void);
/* Installs cfg (takes its reference) and drops the old one. */
void config_install(struct nh_config *cfg);

/* callbacks.c: registers the libmilter callbacks. */
int callbacks_register(void);

/* daemon.c */
int daemon_run(const struct options *opt);

/* cli.c */
int cli_check(const char *file, bool verbose);
int cli_query(const char *file, const char *remote, const char *kind, const char *arg);
int cli_test(const char *file, const char *rcpt, const char *sender, char **xvars, int nx);
int cli_version(void);

#endif
