/*
 * restart.c - the settings a reload leaves for the next restart (see
 * restart.h): compared key by key, by value.
 *
 * Must not: change either config, or log (the daemon says what it found).
 */
#include "restart.h"

#include <stdbool.h>
#include <stdio.h>

#include "util.h"

size_t config_restart_keys(const struct nh_config *started, const struct nh_config *loaded,
                           char *out, size_t len)
{
    const struct {
        const char *key;
        bool changed;
    } keys[] = {
        { "milter.socket", !str_same(started->socket, loaded->socket) },
        { "milter.socket-mode", started->socket_mode != loaded->socket_mode },
        { "milter.user", !str_same(started->user, loaded->user) },
        { "milter.group", !str_same(started->group, loaded->group) },
        { "milter.pidfile", !str_same(started->pidfile, loaded->pidfile) },
        { "stats.listen", !str_same(started->stats_listen, loaded->stats_listen) },
        { "socketmap.listen", !str_same(started->socketmap_listen, loaded->socketmap_listen) },
        { "auth-service.socket", !str_same(started->auth_service_socket, loaded->auth_service_socket) },
        { "control.socket", !str_same(started->control_socket, loaded->control_socket) },
        { "control.group", !str_same(started->control_group, loaded->control_group) },
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
