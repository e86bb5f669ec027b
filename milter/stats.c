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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "services.h"
#include "util.h"

char *stats_text(size_t *len)
{
    struct nh_runtime *run = runtime_current();
    size_t n = remote_set_size(run ? run->remotes : NULL);
    struct metrics_remote_live *live = xcalloc(n + 1, sizeof *live);
    if (run)
        remote_set_live(run->remotes, live);
    char *text = metrics_render(live, n, len);
    free(live);
    runtime_unref(run);
    return text;
}

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
    size_t len = 0;
    char *text = stats_text(&len);
    return send_text(conn, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_FREE,
                     "text/plain; version=0.0.4; charset=utf-8");
}

int stats_start(const struct listener *l, const char *spec, char *err, size_t errlen)
{
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                         (l->family == AF_INET6 ? MHD_USE_IPv6 : 0);
    stats_daemon = MHD_start_daemon(flags, 0, NULL, NULL, answer, NULL,
                                    MHD_OPTION_EXTERNAL_LOGGER, stats_log, NULL,
                                    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)l->fd,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)STATS_CONNECTIONS,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)STATS_TIMEOUT_S,
                                    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)STATS_MEMORY,
                                    MHD_OPTION_END);
    if (!stats_daemon) {
        set_error(err, errlen, "stats.listen: cannot start the HTTP server on %s", spec);
        return -1;
    }
    log_info("stats: serving Prometheus metrics at http://%s/metrics", spec);
    return 0;
}

#else /* no libmicrohttpd */

int stats_start(const struct listener *l, const char *spec, char *err, size_t errlen)
{
    set_error(err, errlen, "stats.listen is configured but this build has no libmicrohttpd "
              "(install libmicrohttpd-dev and build again)");
    return -1;
}

#endif
