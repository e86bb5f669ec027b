/*
 * restart.c - the settings a reload leaves for the next restart (see
 * restart.h): compared key by key, by value.
 *
 * Must not: change either config, or log (the daemon says what it found).
 */
#include "restart.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

size_t config_restart_keys(const struct nh_config *started, const struct nh_config *loaded,
                           char *out, size_t len)
{
    const struct {
        const char *key;
        bool changed;
    } keys[] = {
        { "milter.socket", !same(started->socket, loaded->socket) },
        { "milter.socket-mode", started->socket_mode != loaded->socket_mode },
        { "milter.user", !same(started->user, loaded->user) },
        { "milter.group", !same(started->group, loaded->group) },
        { "milter.pidfile", !same(started->pidfile, loaded->pidfile) },
        { "stats.listen", !same(started->stats_listen, loaded->stats_listen) },
        { "socketmap.listen", !same(started->socketmap_listen, loaded->socketmap_listen) },
        { "auth-service.socket", !same(started->auth_service_socket, loaded->auth_service_socket) },
        { "control.socket", !same(started->control_socket, loaded->control_socket) },
        { "control.group", !same(started->control_group, loaded->control_group) },
        { "control.mode", started->control_mode != loaded->control_mode },
    };
    size_t n = 0, used = 0;
    if (len)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!keys[i].changed)
            continue;
        int w = snprintf(out + used, used < len ? len - used : 0, "%s%s", n ? ", " : "", keys[i].key);
        if (w > 0 && used + (size_t)w < len)
            used += (size_t)w;
        n++;
    }
    return n;
}
