/*
 * reload.c - load the config file again and install it as the current
 * runtime (SIGUSR1, SIGHUP, the control socket's reload), one reload at a
 * time. The new file is loaded and checked in full first: a file with
 * errors is logged with FILE:LINE and the running runtime stays. Settings
 * only a restart applies (common/config/restart.c) are named.
 * Must not: apply a socket, user or pid file setting (the daemon takes
 * them once, at start), or install a config that did not load.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "restart.h"
#include "util.h"

static const char *config_file;              /* -c */
static const struct nh_config *started_cfg;  /* what the sockets, identity and pid file come from */

void reload_setup(const char *file, const struct nh_config *started)
{
    config_file = file;
    started_cfg = started;
}
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

int reload_now(const char *why, char *err, size_t errlen)
{
    char *line, *save = NULL;
    int64_t start = now_ms();
    pthread_mutex_lock(&reload_lock);   /* a signal and the control socket at once: one after the other */
    struct nh_runtime *running = runtime_current();
    struct nh_runtime *run = runtime_load(config_file, running, 0, err, errlen);
    runtime_unref(running);
    if (!run) {
        char *copy = xstrdup(err);
        for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            log_error("reload failed, keeping the running config: %s", line);
        free(copy);
        metrics_count(METRICS_RELOAD_FAILED);
        pthread_mutex_unlock(&reload_lock);
        return -1;
    }
    if (run->cfg->log_level >= 0)
        log_set_level((enum log_level)run->cfg->log_level);
    char later[512];
    size_t n = started_cfg ? config_restart_keys(started_cfg, run->cfg, later, sizeof later) : 0;
    runtime_install(run);
    metrics_count(METRICS_RELOAD_OK);
    log_info("reload: %s loaded in %ld ms (%s)", config_file, (long)(now_ms() - start), why);
    if (n) {
        log_warning("reload: %s changed, which only a restart applies; still running with the "
                    "values the daemon started with", later);
        snprintf(err, errlen, "ok, but only a restart applies the change of %s", later);
    } else {
        snprintf(err, errlen, "ok");
    }
    pthread_mutex_unlock(&reload_lock);
    return 0;
}
