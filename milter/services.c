/*
 * services.c - open, start and clean up the optional listeners configured
 * in the file (see services.h).
 * Must not: start a service whose socket could not be opened.
 */
#include "services.h"

#include "milter.h"

static struct listener stats = { .fd = -1 }, socketmap = { .fd = -1 }, authsvc = { .fd = -1 },
                       control = { .fd = -1 };

int services_open(const struct nh_config *cfg, char *err, size_t errlen)
{
    const struct listener_perm perm = { .mode = cfg->socket_mode, .group = cfg->group };
    /* the MTA needs the others; the control socket is the admins' (control.group, control.mode) */
    const struct listener_perm control_perm = { .mode = cfg->control_mode, .group = cfg->control_group };
    if (cfg->stats_listen &&
        listener_open(&stats, "stats.listen", cfg->stats_listen, LISTEN_INET, NULL, err, errlen) < 0)
        return -1;
    if (cfg->socketmap_listen &&
        listener_open(&socketmap, "socketmap.listen", cfg->socketmap_listen, LISTEN_UNIX | LISTEN_INET,
                      &perm, err, errlen) < 0)
        return -1;
    if (cfg->auth_service_socket &&
        listener_open(&authsvc, "auth-service.socket", cfg->auth_service_socket, LISTEN_UNIX, &perm,
                      err, errlen) < 0)
        return -1;
    if (cfg->control_socket &&
        listener_open(&control, "control.socket", cfg->control_socket, LISTEN_UNIX, &control_perm,
                      err, errlen) < 0)
        return -1;
    return 0;
}

int services_start(const struct nh_config *cfg, char *err, size_t errlen)
{
    if (stats.fd >= 0 && stats_start(&stats, cfg->stats_listen, err, errlen) < 0)
        return -1;
    if (socketmap.fd >= 0 && socketmap_start(&socketmap, cfg->socketmap_listen, err, errlen) < 0)
        return -1;
    if (authsvc.fd >= 0 && authsvc_start(&authsvc, cfg, err, errlen) < 0)
        return -1;
    if (control.fd >= 0 && control_start(&control, cfg->control_socket, err, errlen) < 0)
        return -1;
    return 0;
}

void services_close(void)
{
    listener_remove(&socketmap);
    listener_remove(&authsvc);
    listener_remove(&control);
}
