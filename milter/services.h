/*
 * services.h - the optional listeners that run beside the milter, each off
 * unless configured: stats (Prometheus /metrics), socketmap (next hop for
 * Postfix transport_maps / Sendmail mailertable), auth-service (saslauthd
 * protocol). Each reads config_current() per request, so a SIGUSR1 reload
 * applies to them too; their listen addresses are fixed at start.
 */
#ifndef NEXTHOP_SERVICES_H
#define NEXTHOP_SERVICES_H

#include "config.h"

/* Each returns 0 when started (or not configured), -1 after logging why. */
int stats_start(const struct nh_config *cfg);
int socketmap_start(const struct nh_config *cfg);
int authsvc_start(const struct nh_config *cfg);

/* Starts every configured service; -1 if one could not start. */
int services_start(const struct nh_config *cfg);

#endif
