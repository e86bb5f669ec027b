/*
 * netaddr.h - IPv4/IPv6 addresses and CIDR networks, for the remote-ip and
 * local-ip rule variables (`eq`/`ne` compare addresses, not strings).
 *
 * Every address is held as 16 bytes: an IPv4 address a.b.c.d is stored as
 * the IPv4-mapped IPv6 address ::ffff:a.b.c.d and an IPv4 network /n as
 * ::ffff:a.b.c.d/(96+n). So "::ffff:192.0.2.7" (how a dual-stack socket
 * reports an IPv4 peer) is inside 192.0.2.0/24, and one comparison serves
 * both families. Consequence: an IPv6 network short enough to cover
 * ::ffff:0:0/96 (for example ::/0) also contains every IPv4 address.
 *
 * Must not: allocate, resolve host names, or accept anything inet_pton
 * would not (no "10.1", no octal, no hex quads).
 */
#ifndef NEXTHOP_NETADDR_H
#define NEXTHOP_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netaddr {
    uint8_t b[16];
};

struct netaddr_net {
    struct netaddr addr;   /* host bits are zero */
    unsigned prefix;       /* 0..128, counted on the 16-byte form */
    bool v4;               /* written in IPv4 form (for messages) */
};

/*
 * Parses an IPv4 or IPv6 address. Tolerates the spellings an MTA may hand
 * over: "[192.0.2.1]", "[IPv6:2001:db8::1]", "IPv6:2001:db8::1" and a zone
 * suffix "fe80::1%eth0" (the zone is ignored). Returns 0, or -1.
 */
int netaddr_parse(const char *s, struct netaddr *out);

/*
 * Parses "ADDRESS" (a network of one address) or "ADDRESS/PREFIX", IPv4 or
 * IPv6. A network with host bits set ("192.168.9.1/24") is refused, as
 * Postfix's cidr tables do, since it is usually a typo. Returns 0, or -1
 * with err.
 */
int netaddr_net_parse(const char *s, struct netaddr_net *out, char *err, size_t errlen);

bool netaddr_net_contains(const struct netaddr_net *net, const struct netaddr *a);

/* Writes net as text ("192.0.2.0/24", "2001:db8::/32") into buf. */
void netaddr_net_format(const struct netaddr_net *net, char *buf, size_t len);

#endif
