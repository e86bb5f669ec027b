/*
 * received.h - our Received: trace line (RFC 5321 4.4), written in front
 * of the headers of a copy we relay to a next hop, as MTAs write it:
 *
 *   Received: from mx.example ([192.0.2.7])
 *   	by HOST (milter-nexthop) with ESMTP id QUEUEID;
 *   	Tue, 01 Dec 2026 10:00:00 +0000
 *
 * The HELO name appears only when it is a host name or an address literal
 * (anything else from the client is written "unknown"); the client address
 * in brackets, "[IPv6:...]" for IPv6, "local" when the MTA gave none.
 *
 * Must not: put anything from the client in the line unchecked, or ask the
 * system for the time or host name itself (the caller passes them, so the
 * line can be tested).
 */
#ifndef NEXTHOP_RECEIVED_H
#define NEXTHOP_RECEIVED_H

#include <stddef.h>
#include <time.h>

/*
 * Writes the line, folded and ending in CRLF, into buf; returns its length
 * (cut to len - 1 if buf is too small). queue_id "" or NULL is written "-".
 */
size_t received_line(char *buf, size_t len, const char *helo, const char *client_ip,
                     const char *host, const char *queue_id, time_t when);

#endif
