/*
 * daemon.c - run the milter: load the config, open the socket (a busy port
 * or an unwritable path is a clear error, not a silent exit), set its
 * permissions for the MTA, detach, write the pid file, drop privileges,
 * then hand over to libmilter. SIGUSR1 reloads: the new config is fully
 * validated before it is swapped in; an invalid one is logged and ignored.
 * libmilter owns SIGHUP, SIGTERM and SIGINT (graceful stop).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "services.h"
#include "util.h"

static void reload(const char *file)
{
    static char err[16384];
    int64_t start = now_ms();
    struct nh_runtime *running = runtime_current();
    struct nh_runtime *run = runtime_load(file, running, 0, err, sizeof err);
    runtime_unref(running);
    if (!run) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            log_error("reload failed, keeping the running config: %s", line);
        metrics_count(METRICS_RELOAD_FAILED);
        return;
    }
    if (run->cfg->log_level >= 0)
        log_set_level((enum log_level)run->cfg->log_level);
    runtime_install(run);
    metrics_count(METRICS_RELOAD_OK);
    log_info("reload: %s loaded in %ld ms", file, (long)(now_ms() - start));
}

static void *signal_thread(void *arg)
{
    const char *file = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) == 0 && sig == SIGUSR1)
            reload(file);
    }
    return NULL;
}

/* "unix:/p", "local:/p" or "/p" -> "/p"; NULL for inet sockets. */
static const char *unix_path(const char *conn)
{
    if (strncmp(conn, "unix:", 5) == 0)
        return conn + 5;
    if (strncmp(conn, "local:", 6) == 0)
        return conn + 6;
    return conn[0] == '/' ? conn : NULL;
}

static int open_socket(const char *conn, const struct nh_config *cfg)
{
    const char *path = unix_path(conn);
    if (path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        if (access(dir, W_OK | X_OK) != 0) {
            log_error("cannot create socket %s: directory %s: %s", path, dir, strerror(errno));
            return -1;
        }
    }
    if (smfi_setconn((char *)conn) == MI_FAILURE || smfi_opensocket(1) == MI_FAILURE) {
        log_error("cannot listen on %s: %s (in use, or not permitted)", conn,
                  errno ? strerror(errno) : "libmilter refused it");
        return -1;
    }
    if (!path)
        return 0;   /* TCP_NODELAY on its connections: see quickack.c */
    if (chmod(path, (mode_t)cfg->socket_mode) != 0)
        log_warning("chmod %s: %s", path, strerror(errno));
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr || chown(path, (uid_t)-1, gr->gr_gid) != 0)
            log_warning("cannot give socket %s to group %s: %s", path, cfg->group,
                        gr ? strerror(errno) : "no such group");
    }
    return 0;
}

static int drop_privileges(const char *user, const char *group)
{
    if (!user) {
        if (geteuid() == 0)
            log_warning("running as root: set milter.user or -u");
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        log_error("no such user: %s", user);
        return -1;
    }
    if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
        return 0;   /* already that user (e.g. started so by systemd) */
    gid_t gid = pw->pw_gid;
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            log_error("no such group: %s", group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
        log_error("cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        log_error("privileges were not dropped");
        return -1;
    }
    return 0;
}

static int write_pidfile(const char *path)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        log_error("cannot write pid file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "%d\n", (int)getpid());
    fclose(fp);
    return 0;
}

static int detach(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

int daemon_run(const struct options *opt)
{
    static char err[16384];
    log_init("milter-nexthop", !opt->foreground, opt->verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    struct nh_runtime *run = runtime_load(opt->config_file, NULL, 0, err, sizeof err);
    if (!run) {
        fprintf(stderr, "%s\n", err);
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            log_error("%s", line);
        return EX_CONFIG;
    }
    const struct nh_config *cfg = run->cfg;
    if (!opt->verbose && cfg->log_level >= 0)
        log_set_level((enum log_level)cfg->log_level);
    if (cfg->world_readable_secret)
        log_warning("%s holds an auth secret and is readable by everyone: chmod o-r it (or move "
                    "the secret to an auth.secret-file that is)", cfg->exposed_secret_file);
    runtime_install(run);

    /* copies: a reload frees this config while we still need these two */
    char *conn = xstrdup(opt->socket ? opt->socket : cfg->socket);
    char *pidfile = opt->pidfile || cfg->pidfile ? xstrdup(opt->pidfile ? opt->pidfile : cfg->pidfile) : NULL;
    int rc = 0;
    if (callbacks_register() != 0 || open_socket(conn, cfg) != 0) {
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if (!opt->foreground && detach() != 0) {
        rc = EX_OSERR;
        goto out;
    }
    /*
     * Block our signal and libmilter's before any thread starts: SIGUSR1 is
     * waited for by our thread, SIGHUP/SIGTERM/SIGINT by libmilter's.
     */
    sigset_t set;
    pthread_t tid;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    /* Services bind before privileges are dropped (they may want /run). */
    if (services_start(cfg) != 0) {
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if (pidfile && write_pidfile(pidfile) != 0) {
        rc = EX_CANTCREAT;
        goto out;
    }
    if (drop_privileges(opt->user ? opt->user : cfg->user, cfg->group) != 0) {
        rc = EX_NOPERM;
        goto out;
    }
    pthread_create(&tid, NULL, signal_thread, (void *)opt->config_file);
    pthread_detach(tid);

    log_info("started: socket %s, config %s", conn, opt->config_file);
    rc = smfi_main() == MI_SUCCESS ? 0 : EX_SOFTWARE;
    log_info("stopped");
    if (pidfile)
        unlink(pidfile);
out:
    free(pidfile);
    free(conn);
    runtime_install(NULL);
    return rc;
}
