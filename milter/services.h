/*
 * services.h - the optional listeners that run beside the milter, each off
 * unless configured: stats (Prometheus /metrics), socketmap (next hop for
 * Postfix transport_maps / Sendmail mailertable), auth-service (saslauthd
 * protocol), control (the admin's -C commands). Each reads runtime_current() per request, so a reload applies
 * to them too; their sockets are opened once, at start.
 *
 * Must not: block a mail thread, or keep a runtime reference between
 * requests.
 */
#ifndef NEXTHOP_SERVICES_H
#define NEXTHOP_SERVICES_H

#include <stddef.h>

#include "config.h"
#include "listener.h"

/*
 * Opens the socket of every configured service (before privileges are
 * dropped; unix sockets get milter.socket-mode and milter.group). Returns
 * 0, or -1 with the reason in err; an administrator who configured a
 * service expects it to be there.
 */
int services_open(const struct nh_config *cfg, char *err, size_t errlen);
/* Starts serving them. Returns 0, or -1 with the reason in err. */
int services_start(const struct nh_config *cfg, char *err, size_t errlen);
/* At exit: removes their socket files, if they are still ours. */
void services_close(void);

/* Each service, on its open listener. */
int stats_start(const struct listener *l, const char *spec, char *err, size_t errlen);
int socketmap_start(const struct listener *l, const char *spec, char *err, size_t errlen);
int authsvc_start(const struct listener *l, const struct nh_config *cfg, char *err, size_t errlen);

/* stats.c: the counters of /metrics as Prometheus text (malloc'ed, *len bytes). */
char *stats_text(size_t *len);

#endif
