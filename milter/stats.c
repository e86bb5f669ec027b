/*
 * stats.c - the stats.listen service: Prometheus text at GET /metrics,
 * served by libmicrohttpd on one internal thread.
 *
 * The listening socket is opened here, before privileges are dropped, so
 * a busy or forbidden address stops the start with a clear message; then
 * libmicrohttpd serves it with a bounded number of connections and a
 * timeout. Each scrape renders common/base/metrics.c with the current config.
 * Must not: answer anything but GET/HEAD, keep a config reference past a
 * request, or block a mail thread.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "util.h"
#include "services.h"

#ifdef NEXTHOP_HAVE_MICROHTTPD
#include <microhttpd.h>

#define STATS_CONNECTIONS 16
#define STATS_TIMEOUT_S 10
#define STATS_MEMORY (32 * 1024)

static struct MHD_Daemon *stats_daemon;

static void stats_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warning("stats: %s", msg);
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned int status, char *text,
                                 size_t len, enum MHD_ResponseMemoryMode mode, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    static char not_allowed[] = "only GET and HEAD\n", not_found[] = "not found: try /metrics\n";
    const char *plain = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, strlen(not_allowed),
                         MHD_RESPMEM_PERSISTENT, plain);
    if (strcmp(url, "/metrics") != 0)
        return send_text(conn, MHD_HTTP_NOT_FOUND, not_found, strlen(not_found),
                         MHD_RESPMEM_PERSISTENT, plain);
    struct nh_runtime *run = runtime_current();
    size_t len = 0, n = remote_set_size(run ? run->remotes : NULL);
    struct metrics_remote_live *live = xcalloc(n + 1, sizeof *live);
    if (run)
        remote_set_live(run->remotes, live);
    char *text = metrics_render(live, n, &len);
    free(live);
    runtime_unref(run);
    return send_text(conn, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_FREE,
                     "text/plain; version=0.0.4; charset=utf-8");
}

/* "ADDRESS:PORT", "[V6ADDRESS]:PORT" (an "inet:" prefix is allowed) -> host, port. */
static int split_listen(const char *spec, char *host, size_t hlen, char *port, size_t plen)
{
    if (strncmp(spec, "inet:", 5) == 0)
        spec += 5;
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1] || colon == spec)
        return -1;
    const char *h = spec;
    size_t n = (size_t)(colon - spec);
    if (*h == '[') {
        if (colon[-1] != ']')
            return -1;
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}

/* A bound, listening TCP socket for `spec`; -1 after logging why. */
static int open_listener(const char *spec, bool *ipv6_r)
{
    char host[256], port[16];
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
    if (split_listen(spec, host, sizeof host, port, sizeof port) < 0) {
        log_error("stats.listen: '%s' is not ADDRESS:PORT", spec);
        return -1;
    }
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        log_error("stats.listen: %s: %s", spec, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, STATS_CONNECTIONS) != 0) {
        log_error("stats.listen: cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    *ipv6_r = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return fd;
}

int stats_start(const struct nh_config *cfg)
{
    if (!cfg->stats_listen)
        return 0;
    bool ipv6 = false;
    int fd = open_listener(cfg->stats_listen, &ipv6);
    if (fd < 0)
        return -1;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    stats_daemon = MHD_start_daemon(flags, 0, NULL, NULL, answer, NULL,
                                    MHD_OPTION_EXTERNAL_LOGGER, stats_log, NULL,
                                    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)STATS_CONNECTIONS,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)STATS_TIMEOUT_S,
                                    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)STATS_MEMORY,
                                    MHD_OPTION_END);
    if (!stats_daemon) {
        log_error("stats.listen: cannot start the HTTP server on %s", cfg->stats_listen);
        close(fd);
        return -1;
    }
    log_info("stats: serving Prometheus metrics at http://%s/metrics", cfg->stats_listen);
    return 0;
}

#else /* no libmicrohttpd */

int stats_start(const struct nh_config *cfg)
{
    if (!cfg->stats_listen)
        return 0;
    log_error("stats.listen is configured but this build has no libmicrohttpd "
              "(install libmicrohttpd-dev and build again)");
    return -1;
}

#endif
