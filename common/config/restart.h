/*
 * restart.h - which settings a reload cannot apply: the sockets the daemon
 * listens on, its identity and its pid file are taken once, at start.
 *
 * Must not: decide whether a reload happens (it always does; these
 * settings wait for a restart), or touch a running daemon.
 */
#ifndef NEXTHOP_RESTART_H
#define NEXTHOP_RESTART_H

#include <stddef.h>

#include "config.h"

/*
 * Writes the keys that differ between the config the daemon started with
 * and a newly loaded one, among those only a restart applies, as
 * "milter.socket, stats.listen" into out. Returns how many.
 */
size_t config_restart_keys(const struct nh_config *started, const struct nh_config *loaded,
                           char *out, size_t len);

#endif
