/*
 * received.c - our Received: trace line (received.h).
 * Must not: ask the system for the time or host name, or write client text
 * it has not checked.
 */
#include "received.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"

size_t received_line(char *buf, size_t len, const char *helo, const char *client_ip,
                     const char *host, const char *queue_id, time_t when)
{
    char date[64], client[64] = "local";
    struct tm tm;
    localtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (client_ip && *client_ip)
        snprintf(client, sizeof client, "[%s%s]", strchr(client_ip, ':') ? "IPv6:" : "", client_ip);
    int n = snprintf(buf, len,
                     "Received: from %s (%s)\r\n\tby %s (milter-nexthop) with ESMTP id %s;\r\n\t%s\r\n",
                     helo && addr_is_hostname(helo) ? helo : "unknown", client,
                     host && *host ? host : "localhost", queue_id && *queue_id ? queue_id : "-", date);
    if (n < 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}
