/*
 * conn.c - deadline-bounded client sockets with optional GnuTLS (conn.h).
 *
 * Every socket is non-blocking; each wait is a poll() bounded by the
 * caller's deadline (and sliced by the tick interval, so a relay can call
 * smfi_progress while a slow next hop thinks). Host names are resolved
 * within the same deadline (resolve.c). GnuTLS runs on the same
 * non-blocking socket, so handshakes obey the deadline too.
 *
 * TLS: 1.2 or later only (the library's default priorities, which still
 * offer 1.0 and 1.1, minus those); the certificate chain is verified
 * against the system trust store, or only against the remote's CA file
 * (read by the config loader, as root at start; parsed again for each new
 * connection, ~0.06 ms for one certificate); the name is always checked
 * unless invalid certificates are allowed.
 *
 * Must not: speak SMTP/IMAP, log what passes through, or retry in plain
 * text after a TLS failure.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "resolve.h"
#include "util.h"

/* Twice a maximal line, so one full line plus the next bytes always fit. */
#define CONN_BUF_SIZE (2 * CONN_LINE_MAX + 64)

struct conn {
    int fd;
    gnutls_session_t tls;       /* NULL while plain text */
    gnutls_certificate_credentials_t ca_cred;   /* from the remote's CA file, else NULL */
    char ca_file[256];          /* for messages */
    bool tls_up;                /* handshake completed */
    char peer[300];             /* "host:port" or the unix path, for messages */
    /* what GnuTLS verifies against: it keeps pointers, so they live here */
    char verify_name[256];
    unsigned char verify_ip[16];
    gnutls_typed_vdata_st vdata;
    char buf[CONN_BUF_SIZE];
    size_t start, end;          /* unread bytes are buf[start..end) */
    conn_tick_fn tick;
    void *tick_ctx;
    int tick_ms;
    bool awaiting;              /* a write went out since the last read: the
                                   answer cannot be here yet, poll first */
    int64_t last_tick;
};

/* ------------------------------------------------------------ GnuTLS init */

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static gnutls_certificate_credentials_t tls_cred;
static gnutls_priority_t tls_prio;
static int tls_init_rc;         /* < 0: gnutls could not be set up */
static int tls_trust_count;     /* CAs loaded from the system store */

/* Appended to the library's defaults (and the system's policy file, if any). */
#define TLS_NO_OLD_VERSIONS "-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"

static void tls_init_once(void)
{
    tls_init_rc = gnutls_global_init();
    if (tls_init_rc < 0)
        return;
    tls_init_rc = gnutls_priority_init2(&tls_prio, TLS_NO_OLD_VERSIONS, NULL,
                                        GNUTLS_PRIORITY_INIT_DEF_APPEND);
    if (tls_init_rc < 0)
        return;
    tls_init_rc = gnutls_certificate_allocate_credentials(&tls_cred);
    if (tls_init_rc < 0)
        return;
    tls_trust_count = gnutls_certificate_set_x509_system_trust(tls_cred);
    if (tls_trust_count < 0)
        tls_trust_count = 0;
}

/* ------------------------------------------------------------ waiting */

/*
 * Waits until fd is ready for events or the deadline passes, calling the
 * tick function at its interval. Returns 0, CONN_TIMEOUT or CONN_ERROR.
 */
static int wait_fd(struct conn *c, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t now = now_ms();
        if (c->tick && now - c->last_tick >= c->tick_ms) {
            c->tick(c->tick_ctx);
            c->last_tick = now;
        }
        if (now >= deadline_ms)
            return CONN_TIMEOUT;
        int64_t slice = deadline_ms - now;
        if (c->tick && slice > c->tick_ms)
            slice = c->tick_ms;
        struct pollfd pfd = { .fd = c->fd, .events = events };
        int r = poll(&pfd, 1, (int)slice);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return CONN_ERROR;
    }
}

static short tls_events(gnutls_session_t s)
{
    return gnutls_record_get_direction(s) ? POLLOUT : POLLIN;
}

static void set_wait_error(int rc, const struct conn *c, const char *what, char *err,
                           size_t errlen)
{
    if (rc == CONN_TIMEOUT)
        set_error(err, errlen, "timeout %s %s", what, c->peer);
    else
        set_error(err, errlen, "poll on %s: %s", c->peer, strerror(errno));
}

/* ------------------------------------------------------------ connect */

static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms)
{
    if (connect(fd, sa, salen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    for (;;) {
        int64_t left = deadline_ms - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            return -1;
        if (soerr != 0) {
            errno = soerr;
            return -1;
        }
        return 0;
    }
}

static struct conn *conn_new(int fd, const char *peer)
{
    struct conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    return c;
}

static struct conn *open_unix(const char *path, int64_t deadline_ms, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        set_error(err, errlen, "unix socket path too long: %s", path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    if (connect_fd(fd, (struct sockaddr *)&sun, sizeof sun, deadline_ms) < 0) {
        set_error(err, errlen, "connect to unix:%s: %s", path,
                  errno == EAGAIN ? "listen queue full" : strerror(errno));
        close(fd);
        return NULL;
    }
    return conn_new(fd, path);
}

/* "[::1]" -> "::1" (config may bracket IPv6 literals). */
static void strip_brackets(char *dst, size_t n, const char *host)
{
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
        snprintf(dst, n, "%.*s", (int)(len - 2), host + 1);
    else
        snprintf(dst, n, "%s", host);
}

static struct conn *open_tcp(const char *address, int port, int64_t deadline_ms, char *err,
                             size_t errlen)
{
    char host[256], peer[300];
    strip_brackets(host, sizeof host, address);
    snprintf(peer, sizeof peer, "%s:%d", host, port);

    struct resolved addrs;
    if (resolve_tcp(host, port, deadline_ms, &addrs, err, errlen) < 0)
        return NULL;
    int saved = 0;
    for (size_t i = 0; i < addrs.n; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&addrs.addr[i];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect_fd(fd, sa, addrs.len[i], deadline_ms) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return conn_new(fd, peer);
        }
        saved = errno;
        close(fd);
        if (saved == ETIMEDOUT)
            break;
    }
    set_error(err, errlen, "connect to %s: %s", peer,
              saved == ETIMEDOUT ? "timeout" : strerror(saved));
    return NULL;
}

struct conn *conn_open(const char *address, int port, int64_t deadline_ms, char *err,
                       size_t errlen)
{
    if (!address || !*address) {
        set_error(err, errlen, "no address");
        return NULL;
    }
    if (strncmp(address, "unix:", 5) == 0)
        return open_unix(address + 5, deadline_ms, err, errlen);
    return open_tcp(address, port, deadline_ms, err, errlen);
}

/* ------------------------------------------------------------ TLS */

static bool parse_ip_literal(const char *name, unsigned char *raw, unsigned *rawlen)
{
    char host[256];
    strip_brackets(host, sizeof host, name);
    if (inet_pton(AF_INET, host, raw) == 1) {
        *rawlen = 4;
        return true;
    }
    if (inet_pton(AF_INET6, host, raw) == 1) {
        *rawlen = 16;
        return true;
    }
    return false;
}

/*
 * SNI and verification target: a DNS name, or the IP SAN for IP literals.
 * GnuTLS keeps the pointers for the whole session, so the name and the
 * address are copied into c. Without a name (a unix socket without
 * tls.server-name, which the config refuses) only allow_invalid may go on:
 * a chain check alone would accept any certificate the CA ever signed.
 */
static int tls_set_peer_name(struct conn *c, const struct conn_tls_opts *opts, char *err,
                             size_t errlen)
{
    const char *name = opts->server_name;
    unsigned rawlen = 0;
    bool has_name = name && *name && strncmp(name, "unix:", 5) != 0;
    bool is_ip = has_name && parse_ip_literal(name, c->verify_ip, &rawlen);

    snprintf(c->verify_name, sizeof c->verify_name, "%s", has_name ? name : "");
    if (has_name && !is_ip)
        gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, c->verify_name, strlen(c->verify_name));
    if (opts->allow_invalid)
        return 0;
    if (!has_name) {
        set_error(err, errlen, "TLS with %s: no name to check its certificate against "
                  "(tls.server-name)", c->peer);
        return CONN_ERROR;
    }
    if (is_ip) {
        c->vdata = (gnutls_typed_vdata_st){ .type = GNUTLS_DT_IP_ADDRESS, .data = c->verify_ip,
                                            .size = rawlen };
        gnutls_session_set_verify_cert2(c->tls, &c->vdata, 1, 0);
    } else {
        gnutls_session_set_verify_cert(c->tls, c->verify_name, 0);
    }
    return 0;
}

/* A credential trusting only the CAs in pem (named file, for messages); NULL with err. */
static gnutls_certificate_credentials_t ca_credential(const char *pem, const char *file,
                                                      char *err, size_t errlen)
{
    gnutls_certificate_credentials_t cred;
    int rc = gnutls_certificate_allocate_credentials(&cred);
    if (rc < 0) {
        set_error(err, errlen, "GnuTLS credentials: %s", gnutls_strerror(rc));
        return NULL;
    }
    gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };
    int n = gnutls_certificate_set_x509_trust_mem(cred, &d, GNUTLS_X509_FMT_PEM);
    if (n > 0)
        return cred;
    if (n < 0)
        set_error(err, errlen, "CA file %s: %s", file, gnutls_strerror(n));
    else
        set_error(err, errlen, "CA file %s: holds no PEM certificate", file);
    gnutls_certificate_free_credentials(cred);
    return NULL;
}

char *conn_tls_read_ca_file(const char *path, char *err, size_t errlen)
{
    pthread_once(&tls_once, tls_init_once);
    gnutls_datum_t d = { NULL, 0 };
    int rc = gnutls_load_file(path, &d);
    if (rc < 0) {
        if (access(path, R_OK) != 0)
            set_error(err, errlen, "CA file %s: %s", path, strerror(errno));
        else
            set_error(err, errlen, "CA file %s: %s", path, gnutls_strerror(rc));
        return NULL;
    }
    char *pem = xstrndup((const char *)d.data, d.size);
    gnutls_free(d.data);
    gnutls_certificate_credentials_t cred = ca_credential(pem, path, err, errlen);
    if (!cred) {
        free(pem);
        return NULL;
    }
    gnutls_certificate_free_credentials(cred);
    return pem;
}

/* The credential for this session: the remote's CA file, else the system store. */
static int tls_set_trust(struct conn *c, const struct conn_tls_opts *opts, char *err,
                         size_t errlen)
{
    gnutls_certificate_credentials_t cred = tls_cred;
    if (opts->ca_pem) {
        const char *file = opts->ca_file ? opts->ca_file : "(inline)";
        c->ca_cred = ca_credential(opts->ca_pem, file, err, errlen);
        if (!c->ca_cred)
            return CONN_ERROR;
        snprintf(c->ca_file, sizeof c->ca_file, "%s", file);
        cred = c->ca_cred;
    }
    int rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cred);
    if (rc < 0) {
        set_error(err, errlen, "TLS with %s: %s", c->peer, gnutls_strerror(rc));
        return CONN_ERROR;
    }
    return 0;
}

static void tls_handshake_error(struct conn *c, int rc, char *err, size_t errlen)
{
    if (rc == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
        (rc == GNUTLS_E_FATAL_ALERT_RECEIVED &&
         gnutls_alert_get(c->tls) == GNUTLS_A_PROTOCOL_VERSION)) {
        set_error(err, errlen, "TLS handshake with %s: %s (TLS 1.2 or later is required)",
                  c->peer, gnutls_strerror(rc));
        return;
    }
    if (rc != GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        set_error(err, errlen, "TLS handshake with %s: %s", c->peer, gnutls_strerror(rc));
        return;
    }
    unsigned status = gnutls_session_get_verify_cert_status(c->tls);
    gnutls_datum_t out = { NULL, 0 };
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
        char trust[300];
        if (c->ca_cred)
            snprintf(trust, sizeof trust, " (trusting only the CAs of %s)", c->ca_file);
        else
            snprintf(trust, sizeof trust, "%s",
                     tls_trust_count == 0 ? " (no system trust store loaded)" : "");
        set_error(err, errlen, "TLS certificate of %s rejected: %s%s", c->peer,
                  (char *)out.data, trust);
        gnutls_free(out.data);
    } else {
        set_error(err, errlen, "TLS certificate of %s rejected", c->peer);
    }
}

int conn_start_tls(struct conn *c, const struct conn_tls_opts *opts, int64_t deadline_ms,
                   char *err, size_t errlen)
{
    pthread_once(&tls_once, tls_init_once);
    if (tls_init_rc < 0) {
        set_error(err, errlen, "GnuTLS init: %s", gnutls_strerror(tls_init_rc));
        return CONN_ERROR;
    }
    if (c->tls) {
        set_error(err, errlen, "TLS already active on %s", c->peer);
        return CONN_ERROR;
    }
    if (c->end > c->start) {
        /* bytes sent before the handshake would be trusted as if encrypted */
        set_error(err, errlen, "%s sent data before the TLS handshake", c->peer);
        return CONN_ERROR;
    }
    int rc = gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc < 0) {
        c->tls = NULL;
        set_error(err, errlen, "gnutls_init: %s", gnutls_strerror(rc));
        return CONN_ERROR;
    }
    gnutls_priority_set(c->tls, tls_prio);
    if (tls_set_trust(c, opts, err, errlen) < 0 || tls_set_peer_name(c, opts, err, errlen) < 0)
        return CONN_ERROR;
    gnutls_transport_set_int(c->tls, c->fd);

    for (;;) {
        rc = gnutls_handshake(c->tls);
        if (rc == 0) {
            c->tls_up = true;
            break;
        }
        if (gnutls_error_is_fatal(rc)) {
            tls_handshake_error(c, rc, err, errlen);
            return CONN_ERROR;
        }
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            int w = wait_fd(c, tls_events(c->tls), deadline_ms);
            if (w < 0) {
                set_wait_error(w, c, "in TLS handshake with", err, errlen);
                return w;
            }
        }
    }
    if (log_enabled(LOG_LVL_DEBUG)) {
        char *desc = gnutls_session_get_desc(c->tls);
        log_debug("TLS with %s: %s", c->peer, desc ? desc : "?");
        gnutls_free(desc);
    }
    return 0;
}

bool conn_is_tls(const struct conn *c) { return c->tls != NULL; }

void conn_set_tick(struct conn *c, conn_tick_fn fn, void *ctx, int interval_ms)
{
    c->tick = fn;
    c->tick_ctx = ctx;
    c->tick_ms = interval_ms > 0 ? interval_ms : 1000;
    c->last_tick = now_ms();
}

/* ------------------------------------------------------------ I/O */

/* One write attempt: bytes written (> 0), 0 = would block, -1 error. */
static ssize_t try_send(struct conn *c, const char *p, size_t n, short *events, char *err,
                        size_t errlen)
{
    if (c->tls) {
        ssize_t r = gnutls_record_send(c->tls, p, n);
        if (r >= 0)
            return r;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            *events = tls_events(c->tls);
            return 0;
        }
        set_error(err, errlen, "TLS write to %s: %s", c->peer, gnutls_strerror((int)r));
        return -1;
    }
    ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0)
        return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *events = POLLOUT;
        return 0;
    }
    set_error(err, errlen, "write to %s: %s", c->peer, strerror(errno));
    return -1;
}

int conn_write(struct conn *c, const void *buf, size_t len, int64_t deadline_ms, char *err,
               size_t errlen)
{
    const char *p = buf;
    size_t off = 0;
    while (off < len) {
        short events = POLLOUT;
        ssize_t r = try_send(c, p + off, len - off, &events, err, errlen);
        if (r < 0)
            return CONN_ERROR;
        if (r > 0) {
            off += (size_t)r;
            c->awaiting = true;
            continue;
        }
        int w = wait_fd(c, events, deadline_ms);
        if (w < 0) {
            set_wait_error(w, c, "writing to", err, errlen);
            return w;
        }
    }
    return 0;
}

/* One read attempt into the free buffer space: > 0 bytes, 0 would block, -1 error/EOF. */
static ssize_t try_recv(struct conn *c, short *events, char *err, size_t errlen)
{
    char *p = c->buf + c->end;
    size_t n = sizeof c->buf - c->end;
    ssize_t r;
    if (c->tls) {
        r = gnutls_record_recv(c->tls, p, n);
        if (r > 0)
            return r;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            *events = tls_events(c->tls);
            return 0;
        }
        if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
            set_error(err, errlen, "connection closed by %s", c->peer);
        else
            set_error(err, errlen, "TLS read from %s: %s", c->peer, gnutls_strerror((int)r));
        return -1;
    }
    r = recv(c->fd, p, n, 0);
    if (r > 0)
        return r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        *events = POLLIN;
        return 0;
    }
    if (r == 0)
        set_error(err, errlen, "connection closed by %s", c->peer);
    else
        set_error(err, errlen, "read from %s: %s", c->peer, strerror(errno));
    return -1;
}

static int fill(struct conn *c, int64_t deadline_ms, char *err, size_t errlen)
{
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    /* right after a request its answer is never there yet: a read would
     * only return EAGAIN, so wait first (one system call less) */
    if (c->awaiting && !conn_has_buffered(c)) {
        int w = wait_fd(c, POLLIN, deadline_ms);
        if (w < 0) {
            set_wait_error(w, c, "reading from", err, errlen);
            return w;
        }
    }
    c->awaiting = false;
    for (;;) {
        short events = POLLIN;
        ssize_t r = try_recv(c, &events, err, errlen);
        if (r < 0)
            return CONN_ERROR;
        if (r > 0) {
            c->end += (size_t)r;
            return 0;
        }
        if (c->tls && gnutls_record_check_pending(c->tls) > 0)
            continue;
        int w = wait_fd(c, events, deadline_ms);
        if (w < 0) {
            set_wait_error(w, c, "reading from", err, errlen);
            return w;
        }
    }
}

static int take_line(struct conn *c, const char *nl, char *line, size_t linesize, char *err,
                     size_t errlen)
{
    const char *p = c->buf + c->start;
    size_t len = (size_t)(nl - p);
    size_t consumed = len + 1;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (len > CONN_LINE_MAX || len + 1 > linesize) {
        set_error(err, errlen, "line from %s longer than %d bytes", c->peer, CONN_LINE_MAX);
        return CONN_ERROR;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        line[i] = ((ch < 0x20 && ch != '\t') || ch == 0x7f) ? '?' : (char)ch;
    }
    line[len] = '\0';
    c->start += consumed;
    return (int)len;
}

int conn_read_line(struct conn *c, char *line, size_t linesize, int64_t deadline_ms, char *err,
                   size_t errlen)
{
    for (;;) {
        const char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
        if (nl)
            return take_line(c, nl, line, linesize, err, errlen);
        if (c->end - c->start > CONN_LINE_MAX + 1) {
            set_error(err, errlen, "line from %s longer than %d bytes", c->peer, CONN_LINE_MAX);
            return CONN_ERROR;
        }
        int r = fill(c, deadline_ms, err, errlen);
        if (r < 0)
            return r;
    }
}

bool conn_has_buffered(const struct conn *c)
{
    return c->end > c->start || (c->tls && gnutls_record_check_pending(c->tls) > 0);
}

bool conn_idle_ok(struct conn *c)
{
    if (conn_has_buffered(c))
        return false;
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    int r = poll(&pfd, 1, 0);
    return r == 0;
}

void conn_close(struct conn *c)
{
    if (!c)
        return;
    if (c->tls) {
        if (c->tls_up)
            gnutls_bye(c->tls, GNUTLS_SHUT_WR);   /* non-blocking: best effort */
        gnutls_deinit(c->tls);
    }
    if (c->ca_cred)
        gnutls_certificate_free_credentials(c->ca_cred);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}
