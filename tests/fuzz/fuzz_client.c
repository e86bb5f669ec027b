/*
 * fuzz_client.c - libFuzzer target for the SMTP, LMTP and IMAP clients
 * (common/net/smtp_client.c, imap_client.c, conn.c): everything they parse from
 * a remote - greetings, multi-line EHLO/LHLO replies and capabilities, AUTH
 * challenges (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256), RCPT/VRFY/EXPN
 * replies, per-recipient LMTP replies, IMAP untagged and tagged responses.
 *
 * There is no parse function to call on its own, so the target plays the
 * remote: a thread serves the input over a unix socket while the real
 * client runs smtp_open()/smtp_lookup()/smtp_relay() or imap_open()/
 * imap_lookup() against it, with a short deadline.
 * Input: byte 0 picks the run - bits 0-1 protocol (smtp, lmtp, imap, smtp),
 * bit 2 log in with the remote's credentials, bit 3 TLS enabled (STARTTLS,
 * so the handshake meets the input), bits 4-5 lookup kind (rcpt, vrfy,
 * expn, auth), bit 6 relay a message afterwards, bit 7 NOOP at the end.
 * The rest is what the server says, in chunks separated by NUL bytes: the
 * first chunk at once, each next non-empty one after the client's next
 * line (or 5 ms of silence), at most 64 chunks, then end of stream.
 * Oracles: ASan/UBSan/LeakSanitizer; no run may outlast its deadline by
 * more than a second.
 * Must not: talk to anything but its own socket.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "imap_client.h"
#include "log.h"
#include "ops.h"
#include "smtp_client.h"
#include "spool.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEADLINE_MS 1500
#define PACE_MS 5
#define MAX_CHUNKS 64

static char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
static int listen_fd = -1;

struct script {
    const uint8_t *data;
    size_t size;
};

static void setup_once(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[200];
    snprintf(dir, sizeof dir, "%s/nexthop-fuzz-client.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!mkdtemp(dir))
        abort();
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/s", dir);
    listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(listen_fd, 4) < 0)
        abort();
    snprintf(address, sizeof address, "unix:%s", sa.sun_path);
    signal(SIGPIPE, SIG_IGN);
    log_init("fuzz_client", false, LOG_LVL_ERROR);
}

/* Waits up to ms for the client to send something; consumes it. */
static int client_spoke(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char buf[4096];
    if (poll(&p, 1, ms) <= 0)
        return 0;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? 1 : n == 0 ? -1 : 0;
}

static void *serve(void *arg)
{
    const struct script *sc = arg;
    struct pollfd p = { .fd = listen_fd, .events = POLLIN };
    if (poll(&p, 1, 2000) <= 0)
        return NULL;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    const uint8_t *chunk = sc->data, *end = sc->data + sc->size;
    for (int n = 0; chunk <= end && n < MAX_CHUNKS; n++) {
        const uint8_t *nul = memchr(chunk, 0, (size_t)(end - chunk));
        size_t len = (size_t)((nul ? nul : end) - chunk);
        /* empty chunks cost nothing: no wait for a line that may never come */
        if (n > 0 && len > 0 && client_spoke(fd, PACE_MS) < 0)
            break;
        if (len > 0 && send(fd, chunk, len, MSG_NOSIGNAL) < 0)
            break;
        if (!nul)
            break;
        chunk = nul + 1;
    }
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 40 && client_spoke(fd, PACE_MS) >= 0; i++)
        ;
    close(fd);
    return NULL;
}

static void remote_for(struct endpoint *r, uint8_t opt)
{
    static const enum remote_proto protos[] = { PROTO_SMTP, PROTO_LMTP, PROTO_IMAP, PROTO_SMTP };
    memset(r, 0, sizeof *r);
    r->name = "fuzz";
    r->address = address;
    r->protocol = protos[opt & 3];
    r->timeout_ms = DEADLINE_MS;
    r->tls_enable = opt & 8;
    r->tls_allow_invalid = true;
    r->auth_username = (opt & 4) ? "relay_user" : NULL;
    r->auth_secret = (opt & 4) ? "relay-secret" : NULL;
}

static void run_imap(const struct endpoint *r, uint8_t opt, int64_t deadline)
{
    char err[ERRLEN], reply[512];
    const char *refused;
    struct imap_session *s = imap_open(r, deadline, &refused, err, sizeof err);
    if (!s)
        return;
    imap_lookup(s, LOOKUP_AUTH, "alice@example.org", "user-password", reply, sizeof reply, deadline,
                err, sizeof err);
    if (opt & 128)
        imap_noop(s, deadline, err, sizeof err);
    imap_close(s);
}

static void relay(struct smtp_session *s, int64_t deadline)
{
    static const char msg[] = "Subject: fuzz\r\n\r\nbody\r\n.leading dot\r\nend";
    char err[ERRLEN];
    struct relay_rcpt rcpts[2] = { { .addr = "alice@example.org" }, { .addr = "bob@example.org" } };
    struct spool *sp = spool_create(4096);
    if (spool_write(sp, msg, sizeof msg - 1, err, sizeof err) == 0)
        smtp_relay(s, "sender@example.net", rcpts, 2, sp, NULL, NULL, deadline, err, sizeof err);
    spool_destroy(sp);
}

static void run_smtp(const struct endpoint *r, uint8_t opt, int64_t deadline)
{
    static const char *const args[] = { "alice@example.org", "alice@example.org", "list@example.org",
                                        "alice@example.org" };
    char err[ERRLEN], reply[512];
    char *members = NULL;
    const char *refused;
    enum lookup_kind kind = (enum lookup_kind)((opt >> 4) & 3);
    struct smtp_session *s = smtp_open(r, (opt & 4) && kind != LOOKUP_AUTH, deadline, &refused, err,
                                       sizeof err);
    if (!s)
        return;
    smtp_lookup(s, kind, args[kind], kind == LOOKUP_AUTH ? "user-password" : NULL,
                kind == LOOKUP_EXPN ? &members : NULL, reply, sizeof reply, deadline, err, sizeof err);
    free(members);
    if ((opt & 64) && smtp_reusable(s))
        relay(s, deadline);
    if ((opt & 128) && smtp_reusable(s))
        smtp_noop(s, deadline, err, sizeof err);
    smtp_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (listen_fd < 0)
        setup_once();
    if (size < 1)
        return 0;
    struct endpoint r;
    struct script sc = { data + 1, size - 1 };
    pthread_t tid;
    remote_for(&r, data[0]);
    if (pthread_create(&tid, NULL, serve, &sc) != 0)
        abort();
    int64_t start = now_ms(), deadline = start + DEADLINE_MS;
    if (r.protocol == PROTO_IMAP)
        run_imap(&r, data[0], deadline);
    else
        run_smtp(&r, data[0], deadline);
    pthread_join(tid, NULL);
    if (now_ms() - start > DEADLINE_MS + 1000) {
        fprintf(stderr, "fuzz_client: the client outlasted its deadline (%ld ms)\n",
                (long)(now_ms() - start));
        abort();
    }
    return 0;
}
