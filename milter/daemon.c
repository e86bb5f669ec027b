/*
 * daemon.c - run the milter: the order of the start, the signals, the end.
 *
 * Start: load and check the config; take the pid file (locked: a second
 * instance stops here, before it touches any socket); open every listening
 * socket (the milter's, then stats, socketmap, auth-service), each with its
 * mode and group from the first moment; switch to milter.user /
 * milter.group; detach (the parent waits until the daemon serves, or
 * prints why it failed and exits with its status); write the pid; start
 * the services and the signal thread; serve. So a start that exits 0 is a
 * daemon that serves, and a failure always reaches the terminal:
 *   78 config, 73 pid file, 69 a socket or service, 77 user or group, 71 fork.
 *
 * Signals are ours, not libmilter's (stop.c): SIGUSR1 and SIGHUP reload
 * (the new config is fully validated before it is swapped in; an invalid
 * one is logged and ignored); SIGTERM and SIGINT stop gracefully: no new
 * connections, messages in flight get routing.timeout + STOP_MARGIN_MS to
 * end; a second one stops at once.
 * Must not: report success before the daemon serves, or exit while it
 * could still finish a message inside the bound.
 */
#include <errno.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "detach.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "pidfile.h"
#include "privileges.h"
#include "services.h"
#include "sockspec.h"
#include "stop.h"
#include "util.h"

/* The drain after SIGTERM: routing.timeout plus the longest RCPT lookup and some slack. */
#define STOP_MARGIN_MS 30000


/* How long messages in flight may take to end once a stop begins. */
static int64_t drain_ms(void)
{
    struct nh_runtime *run = runtime_current();
    int64_t ms = (run ? run->cfg->policy.routing_timeout_ms : 120000) + STOP_MARGIN_MS;
    runtime_unref(run);
    return ms;
}

static void daemon_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

static void *signal_thread(void *arg)
{
    static char err[16384];
    sigset_t set;
    (void)arg;
    daemon_signals(&set);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1 || sig == SIGHUP)
            reload_now(strsignal(sig), err, sizeof err);
        else
            stop_begin(drain_ms());
    }
    return NULL;
}

/* Where the start's failures go besides the log: the terminal, or the parent that waits. */
static bool logs_to_stderr, detached;
static struct listener milter_socket = { .fd = -1 };

/* Removes what the start made (socket files, pid file): each only if it is still ours. */
static void clean_up(void)
{
    services_close();
    listener_close(&milter_socket);
    pidfile_remove();
}

static int fail(int status, const char *msg)
{
    log_error("%s", msg);
    clean_up();
    if (detached)
        detach_failed(status, logs_to_stderr ? "" : msg);
    else if (!logs_to_stderr)
        fprintf(stderr, "milter-nexthop: %s\n", msg);
    return status;
}

/* Logging as the config asks: syslog unless -f or milter.log.syslog = false. */
static void set_logging(const struct options *opt, const struct nh_config *cfg)
{
    enum log_level level = opt->verbose ? LOG_LVL_DEBUG
                           : cfg->log_level >= 0 ? (enum log_level)cfg->log_level : LOG_LVL_INFO;
    logs_to_stderr = opt->foreground || !cfg->log_syslog;
    log_init("milter-nexthop", !logs_to_stderr, level);
}

/* Everything after the config is loaded; returns the exit status. */
static int serve(const struct options *opt, const struct nh_config *cfg)
{
    char err[ERRLEN];
    const char *conn = opt->socket ? opt->socket : cfg->socket;
    const char *pidfile = opt->pidfile ? opt->pidfile : cfg->pidfile;
    const struct listener_perm perm = { .mode = cfg->socket_mode, .group = cfg->group };

    if (pidfile && pidfile_open(pidfile, err, sizeof err) < 0)
        return fail(EX_CANTCREAT, err);
    if (callbacks_register() != 0)
        return fail(EX_UNAVAILABLE, "libmilter refused the filter's registration");
    if (listener_open_milter(&milter_socket, conn, &perm, err, sizeof err) < 0)
        return fail(EX_UNAVAILABLE, err);
    if (services_open(cfg, err, sizeof err) < 0)
        return fail(EX_UNAVAILABLE, err);
    if (privileges_drop(opt->user ? opt->user : cfg->user, cfg->group, err, sizeof err) < 0)
        return fail(EX_NOPERM, err);
    if (!opt->foreground) {
        if (detach_begin(logs_to_stderr) != 0)
            return fail(EX_OSERR, "cannot fork to the background");
        detached = true;
    }
    if (pidfile_write(err, sizeof err) < 0)
        return fail(EX_CANTCREAT, err);

    pthread_t tid;
    stop_init(&milter_socket);
    if (services_start(cfg, err, sizeof err) < 0)
        return fail(EX_UNAVAILABLE, err);
    if (pthread_create(&tid, NULL, signal_thread, (void *)opt->config_file) != 0)
        return fail(EX_OSERR, "cannot start the signal thread");
    pthread_detach(tid);

    log_info("started: socket %s, config %s", conn, opt->config_file);
    detach_ready();
    int rc = smfi_main();
    int left = stop_messages_left();
    log_info("stopped");
    clean_up();
    if (left > 0)
        _exit(0);   /* worker threads are still in those messages: no exit handlers under them */
    return rc == MI_SUCCESS || stop_listener_closed() ? 0 : EX_SOFTWARE;
}

int daemon_run(const struct options *opt)
{
    static char err[16384];
    sigset_t set;
    /*
     * Our signals wait from the start: blocked here (every thread inherits
     * the mask), taken by the signal thread once the daemon serves, so a
     * SIGTERM during the start is a graceful stop too.
     */
    daemon_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    log_init("milter-nexthop", !opt->foreground, opt->verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    char conn[512];
    if (opt->socket && sockspec_milter(opt->socket, conn, sizeof conn, err, sizeof err) < 0) {
        fprintf(stderr, "milter-nexthop: -p: %s\n", err);   /* checked as milter.socket is at load */
        return EX_USAGE;
    }
    struct nh_runtime *run = runtime_load(opt->config_file, NULL, 0, err, sizeof err);
    if (!run) {
        fprintf(stderr, "%s\n", err);
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            log_error("%s", line);
        return EX_CONFIG;
    }
    const struct nh_config *cfg = run->cfg;
    reload_setup(opt->config_file, cfg);   /* run is held until daemon_run returns */
    set_logging(opt, cfg);
    if (cfg->world_readable_secret) {
        char text[2048];
        config_secret_warning(cfg, text, sizeof text);
        log_warning("%s", text);
    }
    runtime_install(runtime_ref(run));   /* serve() keeps using run->cfg across reloads */
    int status = serve(opt, cfg);
    runtime_install(NULL);
    runtime_unref(run);
    return status;
}
