/*
 * conn.h - one client byte stream to a remote host: TCP or unix socket,
 * plain or GnuTLS, with a deadline on every connect, read, write and
 * handshake.
 *
 * Lines are read into a bounded buffer: a line longer than CONN_LINE_MAX
 * is an error as soon as that many bytes arrived without a line end, so a
 * remote can neither stall us past the deadline nor grow our memory.
 *
 * Must not: know any mail protocol, log payloads (AUTH data passes
 * through here), or fall back to plain text when TLS fails.
 */
#ifndef NEXTHOP_CONN_H
#define NEXTHOP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_LINE_MAX 2048

/* Return codes besides >= 0 (success). */
#define CONN_ERROR (-1)       /* I/O error, EOF, TLS error, line too long */
#define CONN_TIMEOUT (-2)     /* the deadline passed (buffered data stays) */

struct conn;

/*
 * Called while waiting, at least every interval_ms, so a caller can keep
 * a watchdog happy (smfi_progress). NULL to disable.
 */
typedef void (*conn_tick_fn)(void *ctx);

/*
 * Connects to address ("host", "1.2.3.4", "::1" or "unix:/path") and port
 * before deadline_ms (now_ms() clock), the name resolved within the same
 * deadline (resolve.h). On failure returns NULL with err (a resolver
 * failure reads "DNS lookup of HOST: ...").
 */
struct conn *conn_open(const char *address, int port, int64_t deadline_ms, char *err,
                       size_t errlen);

struct conn_tls_opts {
    const char *server_name;  /* SNI and the name (or IP literal) to verify */
    const char *ca_pem;       /* PEM CAs trusted instead of the system store, or NULL */
    const char *ca_file;      /* where ca_pem came from, for messages */
    bool allow_invalid;       /* accept any certificate */
};

/*
 * TLS handshake on an open connection (right after connect for implicit
 * TLS, after STARTTLS otherwise), TLS 1.2 or later. Verifies the chain
 * against ca_pem (else the system trust store) and the name unless
 * allow_invalid; without a name (a unix socket) it refuses unless
 * allow_invalid. Any unread plain text buffered before the handshake is
 * an error (STARTTLS injection).
 */
int conn_start_tls(struct conn *c, const struct conn_tls_opts *opts, int64_t deadline_ms,
                   char *err, size_t errlen);
bool conn_is_tls(const struct conn *c);

/*
 * For the config loader: the text of path, a PEM file holding at least
 * one certificate (free() it), or NULL with err ("CA file PATH: ...").
 */
char *conn_tls_read_ca_file(const char *path, char *err, size_t errlen);

void conn_set_tick(struct conn *c, conn_tick_fn fn, void *ctx, int interval_ms);

/* Writes all of buf. Returns 0, CONN_ERROR or CONN_TIMEOUT (err set). */
int conn_write(struct conn *c, const void *buf, size_t len, int64_t deadline_ms, char *err,
               size_t errlen);

/*
 * Reads one line, without its CRLF (or bare LF), into line (size linesize,
 * NUL-terminated; bytes < 0x20 other than TAB become '?'). Returns the
 * length, CONN_ERROR or CONN_TIMEOUT (err set).
 */
int conn_read_line(struct conn *c, char *line, size_t linesize, int64_t deadline_ms, char *err,
                   size_t errlen);

/* True when bytes are already buffered (a server that talks out of turn). */
bool conn_has_buffered(const struct conn *c);

/*
 * For an idle connection: false when the peer closed it or sent something
 * unsolicited (a 421, a TLS alert), so it must not be reused.
 */
bool conn_idle_ok(struct conn *c);

/* Closes the socket (sending a TLS close_notify without waiting). */
void conn_close(struct conn *c);

#endif
