/*
 * bench_rcpt_load.c - load client for the scripts in tests/bench: N concurrent
 * sessions sending RCPTs, timing each one, to
 *   -P milter  the milter itself, over the milter protocol (version 6, the
 *              steps and no-reply flags Postfix uses), optionally with whole
 *              messages (headers, body, end of message);
 *   -P lmtp    an LMTP server directly (the bare round trip the milter's
 *              probe is compared with), on a kept-open connection;
 *   -P smtp    an SMTP server (Postfix), to compare what a client sees.
 * Prints one line of key=value figures: RCPTs per second, RCPT latency
 * percentiles, answers by class (yes 2xx, no 5xx, temp 4xx), messages and
 * those the milter discarded (delivered them itself), and for -R (retry 4xx
 * answers) the time to a definitive answer per address and the share of
 * first attempts that got one. -D N pipelines lmtp/smtp RCPTs N at a time
 * (what a pipelining prober would cost the server).
 *
 * Usage: bench_rcpt_load -P milter|lmtp|smtp -a ADDRESS [-c SESSIONS]
 *        [-n RCPTS_PER_SESSION] [-r RCPTS_PER_TRANSACTION] [-f FORMAT]
 *        [-k CYCLE] [-m] [-s SENDER] [-R RETRY_SECONDS] [-A MAX_ATTEMPTS]
 *        [-w TIMEOUT_SECONDS] [-D PIPELINE_DEPTH]
 *   ADDRESS: milter "unix:/path" or "inet:PORT@127.0.0.1"; lmtp/smtp
 *   "127.0.0.1:PORT". FORMAT: the recipient, "%d" replaced by a number:
 *   distinct per session and index (session * n + i + 1), or with -k N
 *   cycling 1..N in every session (the cached path).
 *
 * A benchmark tool, not a test: it judges nothing (exit 1 only when a
 * session broke), and it must not talk to anything but the given address.
 */
#include <errno.h>
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define IOBUF 65536
#define ADDR_LEN 256

enum proto { P_MILTER, P_LMTP, P_SMTP };

struct opts {
    enum proto proto;
    const char *addr, *format, *sender;
    int sessions, per_session, per_tx, cycle, timeout_s, max_attempts, depth;
    bool messages;
    double retry_s;
};

/* One address on its way to a definitive (2xx/5xx) answer. */
struct item {
    int num, attempts;
    int64_t first_us, due_us;
};

struct session {
    const struct opts *o;
    int id, fd;
    char in[IOBUF];
    size_t in_len, in_off;
    unsigned long no_reply;          /* milter steps negotiated without reply */
    bool want_i_rcpt, want_i_eom;    /* macro "i" asked for at RCPT, end of message */
    bool in_tx;
    /* results */
    int64_t *lat, *answer;           /* every RCPT round trip; time to a definitive answer */
    size_t nlat, nanswer;
    long yes, no, temp, first_definitive, messages, discarded;
    struct item *retry;              /* FIFO: retries all have the same delay */
    size_t retry_head, retry_tail;
    bool failed;
    char err[ERRLEN];
};

/* ------------------------------------------------------------ sockets */

static int dial_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        set_error(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        set_error(err, errlen, "connect %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int dial_tcp(const char *host, int port, char *err, size_t errlen)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1;
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        set_error(err, errlen, "not an IPv4 address: %s", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        set_error(err, errlen, "connect %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* "unix:/path", "inet:PORT@HOST" (milter style) or "HOST:PORT". */
static int dial(const char *spec, int timeout_s, char *err, size_t errlen)
{
    char host[64];
    int port, fd;
    if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0)
        fd = dial_unix(strchr(spec, ':') + 1, err, errlen);
    else if (sscanf(spec, "inet:%d@%63s", &port, host) == 2 ||
             sscanf(spec, "%63[^:]:%d", host, &port) == 2)
        fd = dial_tcp(host, port, err, errlen);
    else {
        set_error(err, errlen, "cannot parse address %s", spec);
        return -1;
    }
    if (fd >= 0) {
        struct timeval tv = { .tv_sec = timeout_s };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

static int write_all(struct session *s, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(s->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_error(s->err, sizeof s->err, "write: %s", n < 0 ? strerror(errno) : "closed");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes at least `want` unread bytes available in s->in. */
static int fill(struct session *s, size_t want)
{
    if (s->in_off > 0 && s->in_len - s->in_off < want) {
        memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
        s->in_len -= s->in_off;
        s->in_off = 0;
    }
    while (s->in_len - s->in_off < want) {
        if (s->in_len == sizeof s->in) {
            set_error(s->err, sizeof s->err, "reply larger than %d bytes", IOBUF);
            return -1;
        }
        ssize_t n = read(s->fd, s->in + s->in_len, sizeof s->in - s->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_error(s->err, sizeof s->err, "read: %s",
                      n < 0 ? (errno == EAGAIN ? "timeout" : strerror(errno)) : "closed by peer");
            return -1;
        }
        s->in_len += (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------ milter protocol */

struct pkt {
    char b[8192];
    size_t n;
};

static void pkt_put(struct pkt *p, char cmd, const void *data, size_t len)
{
    uint32_t n = htonl((uint32_t)len + 1);
    if (p->n + 5 + len > sizeof p->b) {
        fprintf(stderr, "bench_rcpt_load: packet buffer overflow\n");
        exit(2);
    }
    memcpy(p->b + p->n, &n, 4);
    p->b[p->n + 4] = cmd;
    memcpy(p->b + p->n + 5, data, len);
    p->n += 5 + len;
}

/* NUL-terminated strings, one after the other, as milter arguments. */
static size_t args(char *dst, size_t cap, int count, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        const char *a = va_arg(ap, const char *);
        size_t l = strlen(a) + 1;
        if (n + l > cap)
            break;
        memcpy(dst + n, a, l);
        n += l;
    }
    va_end(ap);
    return n;
}

static void pkt_args(struct pkt *p, char cmd, int count, const char *a, const char *b)
{
    char data[1024];
    pkt_put(p, cmd, data, count == 1 ? args(data, sizeof data, 1, a) : args(data, sizeof data, 2, a, b));
}

/* A macro packet: step letter, then name and value. */
static void pkt_macro(struct pkt *p, char step, const char *name, const char *value)
{
    char data[512];
    data[0] = step;
    size_t n = 1 + args(data + 1, sizeof data - 1, 2, name, value);
    pkt_put(p, SMFIC_MACRO, data, n);
}

/* Next packet from the milter: its command letter and data (NUL-terminated copy). */
static int milter_read(struct session *s, char *cmd, char *data, size_t cap, size_t *len_r)
{
    uint32_t n;
    if (fill(s, 4) < 0)
        return -1;
    memcpy(&n, s->in + s->in_off, 4);
    n = ntohl(n);
    if (n < 1 || n > IOBUF - 8) {
        set_error(s->err, sizeof s->err, "bad milter packet length %u", n);
        return -1;
    }
    if (fill(s, 4 + n) < 0)
        return -1;
    *cmd = s->in[s->in_off + 4];
    size_t len = n - 1 < cap - 1 ? n - 1 : cap - 1;
    memcpy(data, s->in + s->in_off + 5, len);
    data[len] = '\0';
    s->in_off += 4 + n;
    if (len_r)
        *len_r = len;
    return 0;
}

/*
 * The final answer to a step (progress and modifications skipped), as an
 * SMTP code; a discard (the milter delivered the message itself) is 250 and
 * counted.
 */
static int milter_answer(struct session *s, long *mods)
{
    char cmd, data[1024];
    for (;;) {
        if (milter_read(s, &cmd, data, sizeof data, NULL) < 0)
            return -1;
        switch (cmd) {
        case SMFIR_DISCARD: s->discarded++; return 250;
        case SMFIR_CONTINUE: case SMFIR_ACCEPT: return 250;
        case SMFIR_REJECT: return 550;
        case SMFIR_TEMPFAIL: return 451;
        case SMFIR_REPLYCODE: return atoi(data);
        case SMFIR_PROGRESS: continue;
        case SMFIR_ADDHEADER: case SMFIR_INSHEADER: case SMFIR_CHGHEADER: case SMFIR_DELRCPT:
        case SMFIR_ADDRCPT: case SMFIR_QUARANTINE: case SMFIR_CHGFROM: case SMFIR_ADDRCPT_PAR:
            if (mods)
                (*mods)++;
            continue;
        default:
            set_error(s->err, sizeof s->err, "unexpected milter packet '%c'", cmd);
            return -1;
        }
    }
}

static int milter_send(struct session *s, const struct pkt *p)
{
    return write_all(s, p->b, p->n);
}

/* Sends a step and, unless it was negotiated without reply, needs it continued. */
static int milter_step(struct session *s, const struct pkt *p, unsigned long nr_flag,
                       const char *what)
{
    if (milter_send(s, p) < 0)
        return -1;
    if (s->no_reply & nr_flag)
        return 0;
    int code = milter_answer(s, NULL);
    if (code < 0)
        return -1;
    if (code / 100 != 2) {
        set_error(s->err, sizeof s->err, "milter refused %s with %d", what, code);
        return -1;
    }
    return 0;
}

/* Whether a space-separated macro list (len bytes) names macro `name`. */
static bool list_has(const char *list, size_t len, const char *name)
{
    size_t nl = strlen(name), i = 0;
    while (i < len) {
        size_t w = 0;
        while (i + w < len && list[i + w] != ' ')
            w++;
        if (w == nl && memcmp(list + i, name, nl) == 0)
            return true;
        i += w + 1;
    }
    return false;
}

/*
 * The macros the milter asked for per step (symbol lists after the
 * negotiation reply): like Postfix, we send "i" at RCPT and at end of
 * message only when asked, and no macro packet otherwise.
 */
static void read_symlists(struct session *s, const char *p, size_t len)
{
    s->want_i_rcpt = s->want_i_eom = true;   /* no lists: Postfix sends its defaults */
    while (len > 4) {
        uint32_t stage;
        memcpy(&stage, p, 4);
        stage = ntohl(stage);
        size_t l = strnlen(p + 4, len - 4);
        if (stage == SMFIM_ENVRCPT)
            s->want_i_rcpt = list_has(p + 4, l, "i");
        else if (stage == SMFIM_EOM)
            s->want_i_eom = list_has(p + 4, l, "i");
        size_t used = 4 + l + 1;
        p += used;
        len = len > used ? len - used : 0;
    }
}

static int milter_negotiate(struct session *s)
{
    const unsigned long offer = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_HDR |
                                SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NOUNKNOWN | SMFIP_NODATA;
    uint32_t v[3] = { htonl(6), htonl(0x1FF), htonl((uint32_t)offer) };
    struct pkt p = { .n = 0 };
    char cmd, data[1024];
    pkt_put(&p, SMFIC_OPTNEG, v, sizeof v);
    size_t len;
    if (milter_send(s, &p) < 0 || milter_read(s, &cmd, data, sizeof data, &len) < 0)
        return -1;
    if (cmd != SMFIC_OPTNEG || len < 12) {
        set_error(s->err, sizeof s->err, "negotiation answered with '%c'", cmd);
        return -1;
    }
    uint32_t proto;
    memcpy(&proto, data + 8, 4);
    s->no_reply = ntohl(proto) & offer;
    read_symlists(s, data + 12, len - 12);
    return 0;
}

static int milter_open(struct session *s)
{
    struct pkt p = { .n = 0 };
    char data[256], port[2] = { 0x12, 0x34 };
    size_t n = args(data, sizeof data, 1, "client.example.net");
    if (milter_negotiate(s) < 0)
        return -1;
    data[n++] = SMFIA_INET;
    memcpy(data + n, port, 2);
    n += 2;
    n += args(data + n, sizeof data - n, 1, "192.0.2.7");
    pkt_macro(&p, SMFIC_CONNECT, "{daemon_name}", "smtpd");
    pkt_put(&p, SMFIC_CONNECT, data, n);
    if (milter_step(s, &p, SMFIP_NR_CONN, "connect") < 0)
        return -1;
    p.n = 0;
    pkt_args(&p, SMFIC_HELO, 1, "client.example.net", NULL);
    return milter_step(s, &p, SMFIP_NR_HELO, "helo");
}

static void queue_id(const struct session *s, char *qid, size_t len)
{
    snprintf(qid, len, "B%dM%ld", s->id, s->messages);
}

static int milter_begin(struct session *s)
{
    struct pkt p = { .n = 0 };
    char from[ADDR_LEN + 2];
    snprintf(from, sizeof from, "<%s>", s->o->sender);
    pkt_args(&p, SMFIC_MAIL, 1, from, NULL);
    s->in_tx = true;
    return milter_step(s, &p, SMFIP_NR_MAIL, "MAIL");
}

static int milter_rcpt(struct session *s, const char *addr)
{
    struct pkt p = { .n = 0 };
    char to[ADDR_LEN + 2], qid[32];
    snprintf(to, sizeof to, "<%s>", addr);
    queue_id(s, qid, sizeof qid);
    if (s->want_i_rcpt)
        pkt_macro(&p, SMFIC_RCPT, "i", qid);
    pkt_args(&p, SMFIC_RCPT, 1, to, NULL);
    if (milter_send(s, &p) < 0)
        return -1;
    return milter_answer(s, NULL);
}

/* Headers, body and end of message, like Postfix after DATA. */
static int milter_message(struct session *s)
{
    static const char *const hdrs[][2] = {
        { "From", " <s@example.net>" }, { "To", " <undisclosed-recipients:;>" },
        { "Subject", " benchmark message" }, { "Message-ID", " <bench@example.net>" },
    };
    struct pkt p = { .n = 0 };
    char body[1024], qid[32];
    long mods = 0;
    queue_id(s, qid, sizeof qid);
    for (size_t i = 0; i < ARRAY_SIZE(hdrs); i++)
        pkt_args(&p, SMFIC_HEADER, 2, hdrs[i][0], hdrs[i][1]);
    pkt_put(&p, SMFIC_EOH, "", 0);
    memset(body, 'x', sizeof body);
    for (size_t i = 70; i < sizeof body; i += 72)
        memcpy(body + i - 2, "\r\n", 2);
    pkt_put(&p, SMFIC_BODY, body, sizeof body);
    if (s->want_i_eom)
        pkt_macro(&p, SMFIC_BODYEOB, "i", qid);
    pkt_put(&p, SMFIC_BODYEOB, "", 0);
    if (!(s->no_reply & SMFIP_NR_HDR) || !(s->no_reply & SMFIP_NR_EOH) ||
        !(s->no_reply & SMFIP_NR_BODY)) {
        set_error(s->err, sizeof s->err, "message mode needs no-reply headers, eoh and body");
        return -1;
    }
    if (milter_send(s, &p) < 0)
        return -1;
    int code = milter_answer(s, &mods);
    if (code < 0)
        return -1;
    s->messages++;
    return 0;
}

static int milter_end(struct session *s, bool accepted_any)
{
    struct pkt p = { .n = 0 };
    s->in_tx = false;
    if (s->o->messages && accepted_any)
        return milter_message(s);
    pkt_put(&p, SMFIC_ABORT, "", 0);
    s->messages++;
    return milter_send(s, &p);
}

static void milter_close(struct session *s)
{
    struct pkt p = { .n = 0 };
    pkt_put(&p, SMFIC_QUIT, "", 0);
    milter_send(s, &p);
}

/* ------------------------------------------------------------ SMTP / LMTP */

/* Reads one (multi-line) reply; returns its code. */
static int smtp_reply(struct session *s)
{
    for (;;) {
        char *nl;
        while (!(nl = memchr(s->in + s->in_off, '\n', s->in_len - s->in_off)))
            if (fill(s, s->in_len - s->in_off + 1) < 0)
                return -1;
        char *line = s->in + s->in_off;
        size_t len = (size_t)(nl - line) + 1;
        s->in_off += len;
        if (len < 4 || line[0] < '2' || line[0] > '5') {
            set_error(s->err, sizeof s->err, "bad reply line %.40s", line);
            return -1;
        }
        if (line[3] != '-')
            return atoi(line);
    }
}

static int smtp_cmd(struct session *s, const char *cmd, int want_class)
{
    if (write_all(s, cmd, strlen(cmd)) < 0)
        return -1;
    int code = smtp_reply(s);
    if (code < 0)
        return -1;
    if (want_class && code / 100 != want_class) {
        set_error(s->err, sizeof s->err, "%.20s answered %d", cmd, code);
        return -1;
    }
    return code;
}

static int smtp_open(struct session *s)
{
    int code = smtp_reply(s);
    if (code != 220) {
        if (code > 0)
            set_error(s->err, sizeof s->err, "greeting %d", code);
        return -1;
    }
    return smtp_cmd(s, s->o->proto == P_LMTP ? "LHLO bench.example\r\n" : "EHLO bench.example\r\n",
                    2) < 0 ? -1 : 0;
}

/* MAIL, after RSET when a transaction was open: pipelined, one round trip. */
static int smtp_begin(struct session *s)
{
    char cmd[ADDR_LEN + 32];
    snprintf(cmd, sizeof cmd, "%sMAIL FROM:<%s>\r\n", s->in_tx ? "RSET\r\n" : "", s->o->sender);
    if (write_all(s, cmd, strlen(cmd)) < 0)
        return -1;
    if (s->in_tx && smtp_reply(s) < 0)
        return -1;
    int code = smtp_reply(s);
    if (code < 0)
        return -1;
    if (code / 100 != 2) {
        set_error(s->err, sizeof s->err, "MAIL answered %d", code);
        return -1;
    }
    s->in_tx = true;
    return 0;
}

static int smtp_rcpt(struct session *s, const char *addr)
{
    char cmd[ADDR_LEN + 16];
    snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", addr);
    if (write_all(s, cmd, strlen(cmd)) < 0)
        return -1;
    return smtp_reply(s);
}

static int smtp_end(struct session *s, bool accepted_any)
{
    (void)accepted_any;   /* the next MAIL sends RSET first */
    s->messages++;
    return 0;
}

static void smtp_close(struct session *s)
{
    smtp_cmd(s, "QUIT\r\n", 0);
}

/* ------------------------------------------------------------ one session */

struct proto_ops {
    int (*open)(struct session *);
    int (*begin)(struct session *);
    int (*rcpt)(struct session *, const char *addr);
    int (*end)(struct session *, bool accepted_any);
    void (*close)(struct session *);
};

static const struct proto_ops milter_ops = { milter_open, milter_begin, milter_rcpt, milter_end,
                                             milter_close };
static const struct proto_ops smtp_ops = { smtp_open, smtp_begin, smtp_rcpt, smtp_end, smtp_close };

static const struct proto_ops *ops_of(const struct opts *o)
{
    return o->proto == P_MILTER ? &milter_ops : &smtp_ops;
}

/* The recipient for number num: FORMAT with its first "%d" replaced. */
static void rcpt_address(const char *format, int num, char *out, size_t len)
{
    const char *pct = strstr(format, "%d");
    if (!pct) {
        snprintf(out, len, "%s", format);
        return;
    }
    snprintf(out, len, "%.*s%d%s", (int)(pct - format), format, num, pct + 2);
}

static int64_t clock_us(void)
{
    return now_us();
}

static void sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* Records one answer; returns true when the address needs another attempt. */
static bool record(struct session *s, struct item *it, int code, int64_t t0, int64_t t1)
{
    s->lat[s->nlat++] = t1 - t0;
    bool definitive = code / 100 == 2 || code / 100 == 5;
    if (code / 100 == 2)
        s->yes++;
    else if (code / 100 == 5)
        s->no++;
    else
        s->temp++;
    if (definitive) {
        if (it->attempts == 1)
            s->first_definitive++;
        s->answer[s->nanswer++] = t1 - it->first_us;
        return false;
    }
    return s->o->retry_s > 0 && it->attempts < s->o->max_attempts;
}

/* Up to per_tx addresses: retries that are due first, then new ones. */
static size_t next_batch(struct session *s, int *next_new, struct item *batch)
{
    const struct opts *o = s->o;
    size_t n = 0;
    int64_t now = clock_us();
    while ((int)n < o->per_tx && s->retry_head < s->retry_tail &&
           s->retry[s->retry_head].due_us <= now)
        batch[n++] = s->retry[s->retry_head++];
    while ((int)n < o->per_tx && *next_new < o->per_session) {
        int i = (*next_new)++;
        int num = o->cycle > 0 ? i % o->cycle + 1 : s->id * o->per_session + i + 1;
        batch[n++] = (struct item){ .num = num, .first_us = 0 };
    }
    return n;
}

static int run_batch(struct session *s, const struct proto_ops *ops, struct item *batch,
                     size_t n)
{
    char addr[ADDR_LEN];
    bool accepted_any = false;
    if (ops->begin(s) < 0)
        return -1;
    for (size_t k = 0; k < n; k++) {
        struct item *it = &batch[k];
        rcpt_address(s->o->format, it->num, addr, sizeof addr);
        int64_t t0 = clock_us();
        int code = ops->rcpt(s, addr);
        int64_t t1 = clock_us();
        if (code < 0)
            return -1;
        if (it->attempts++ == 0)
            it->first_us = t0;
        accepted_any |= code / 100 == 2;
        if (record(s, it, code, t0, t1)) {
            it->due_us = t1 + (int64_t)(s->o->retry_s * 1e6);
            s->retry[s->retry_tail++] = *it;
        }
    }
    return ops->end(s, accepted_any);
}

/*
 * lmtp/smtp with -D: the RCPTs of a transaction go out DEPTH at a time in
 * one write (PIPELINING); each one's latency runs from that write to its reply.
 */
static int run_batch_pipelined(struct session *s, struct item *batch, size_t n)
{
    char addr[ADDR_LEN], cmds[256 * (ADDR_LEN + 16)];
    bool accepted_any = false;
    size_t depth = (size_t)s->o->depth;
    if (smtp_begin(s) < 0)
        return -1;
    for (size_t from = 0; from < n; from += depth) {
        size_t to = from + depth < n ? from + depth : n, len = 0;
        for (size_t k = from; k < to; k++) {
            rcpt_address(s->o->format, batch[k].num, addr, sizeof addr);
            len += (size_t)snprintf(cmds + len, sizeof cmds - len, "RCPT TO:<%s>\r\n", addr);
        }
        int64_t t0 = clock_us();
        if (write_all(s, cmds, len) < 0)
            return -1;
        for (size_t k = from; k < to; k++) {
            struct item *it = &batch[k];
            int code = smtp_reply(s);
            int64_t t1 = clock_us();
            if (code < 0)
                return -1;
            if (it->attempts++ == 0)
                it->first_us = t0;
            accepted_any |= code / 100 == 2;
            if (record(s, it, code, t0, t1)) {
                it->due_us = t1 + (int64_t)(s->o->retry_s * 1e6);
                s->retry[s->retry_tail++] = *it;
            }
        }
    }
    return smtp_end(s, accepted_any);
}

static int session_run(struct session *s)
{
    const struct proto_ops *ops = ops_of(s->o);
    struct item batch[256];
    int next_new = 0;
    for (;;) {
        size_t n = next_batch(s, &next_new, batch);
        if (n > 0) {
            int rc = s->o->depth > 1 ? run_batch_pipelined(s, batch, n) : run_batch(s, ops, batch, n);
            if (rc < 0)
                return -1;
            continue;
        }
        if (s->retry_head == s->retry_tail)
            return 0;
        sleep_us(s->retry[s->retry_head].due_us - clock_us());
    }
}

struct runner {
    struct session *sessions;
    pthread_barrier_t ready;
};

struct thread_arg {
    struct runner *r;
    struct session *s;
};

static void *session_thread(void *arg)
{
    struct thread_arg *ta = arg;
    struct session *s = ta->s;
    const struct proto_ops *ops = ops_of(s->o);
    s->fd = dial(s->o->addr, s->o->timeout_s, s->err, sizeof s->err);
    bool ok = s->fd >= 0 && ops->open(s) == 0;
    pthread_barrier_wait(&ta->r->ready);   /* everybody connected: the clock starts */
    pthread_barrier_wait(&ta->r->ready);
    if (ok && session_run(s) == 0)
        ops->close(s);
    else
        s->failed = true;
    if (s->fd >= 0)
        close(s->fd);
    return NULL;
}

/* ------------------------------------------------------------ report */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static int64_t *merge(struct session *ss, int count, bool answers, size_t *total)
{
    size_t n = 0;
    for (int i = 0; i < count; i++)
        n += answers ? ss[i].nanswer : ss[i].nlat;
    int64_t *all = xmalloc((n + 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < count; i++) {
        size_t m = answers ? ss[i].nanswer : ss[i].nlat;
        memcpy(all + k, answers ? ss[i].answer : ss[i].lat, m * sizeof *all);
        k += m;
    }
    qsort(all, n, sizeof *all, cmp_i64);
    *total = n;
    return all;
}

static const char *proto_name(enum proto p)
{
    return p == P_MILTER ? "milter" : p == P_LMTP ? "lmtp" : "smtp";
}

static int report(const struct opts *o, struct session *ss, double secs)
{
    long yes = 0, no = 0, temp = 0, firstdef = 0, msgs = 0, addrs = 0, discarded = 0;
    int failed = 0;
    size_t nlat, nans;
    for (int i = 0; i < o->sessions; i++) {
        yes += ss[i].yes, no += ss[i].no, temp += ss[i].temp;
        firstdef += ss[i].first_definitive, msgs += ss[i].messages, discarded += ss[i].discarded;
        addrs += o->per_session;
        if (ss[i].failed) {
            failed++;
            fprintf(stderr, "bench_rcpt_load: session %d: %s\n", i, ss[i].err);
        }
    }
    int64_t *lat = merge(ss, o->sessions, false, &nlat);
    int64_t *ans = merge(ss, o->sessions, true, &nans);
    printf("proto=%s sessions=%d rcpts=%zu secs=%.3f per_sec=%.1f p50_ms=%.3f p90_ms=%.3f "
           "p99_ms=%.3f max_ms=%.3f yes=%ld no=%ld temp=%ld messages=%ld discarded=%ld addresses=%ld "
           "first_definitive=%.3f answer_p50_ms=%.3f answer_p99_ms=%.3f failed_sessions=%d\n",
           proto_name(o->proto), o->sessions, nlat, secs, secs > 0 ? (double)nlat / secs : 0,
           pct_ms(lat, nlat, 0.5), pct_ms(lat, nlat, 0.9), pct_ms(lat, nlat, 0.99),
           pct_ms(lat, nlat, 1.0), yes, no, temp, msgs, discarded, addrs,
           addrs ? (double)firstdef / (double)addrs : 0, pct_ms(ans, nans, 0.5),
           pct_ms(ans, nans, 0.99), failed);
    free(lat);
    free(ans);
    return failed ? 1 : 0;
}

static double run_all(const struct opts *o, struct session *ss)
{
    struct runner r = { .sessions = ss };
    pthread_t *th = xcalloc((size_t)o->sessions, sizeof *th);
    struct thread_arg *ta = xcalloc((size_t)o->sessions, sizeof *ta);
    pthread_barrier_init(&r.ready, NULL, (unsigned)o->sessions + 1);
    for (int i = 0; i < o->sessions; i++) {
        size_t slots = (size_t)o->per_session * (size_t)(o->max_attempts > 0 ? o->max_attempts : 1) + 1;
        memset(&ss[i], 0, sizeof ss[i]);
        ss[i].o = o, ss[i].id = i, ss[i].fd = -1;
        ss[i].lat = xmalloc(slots * sizeof(int64_t));
        ss[i].answer = xmalloc(slots * sizeof(int64_t));
        ss[i].retry = xmalloc(slots * sizeof(struct item));
        ta[i] = (struct thread_arg){ &r, &ss[i] };
        pthread_create(&th[i], NULL, session_thread, &ta[i]);
    }
    pthread_barrier_wait(&r.ready);
    int64_t t0 = clock_us();
    pthread_barrier_wait(&r.ready);
    for (int i = 0; i < o->sessions; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(clock_us() - t0) / 1e6;
    pthread_barrier_destroy(&r.ready);
    free(th);
    free(ta);
    return secs;
}

/* ------------------------------------------------------------ options */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_rcpt_load -P milter|lmtp|smtp -a ADDRESS [-c SESSIONS] [-n RCPTS_PER_SESSION]\n"
            "       [-r RCPTS_PER_TRANSACTION] [-f FORMAT] [-k CYCLE] [-m] [-s SENDER]\n"
            "       [-R RETRY_SECONDS] [-A MAX_ATTEMPTS] [-w TIMEOUT_SECONDS] [-D PIPELINE_DEPTH]\n");
    exit(2);
}

static int parse_proto(const char *name)
{
    if (strcmp(name, "milter") == 0)
        return P_MILTER;
    if (strcmp(name, "lmtp") == 0)
        return P_LMTP;
    if (strcmp(name, "smtp") == 0)
        return P_SMTP;
    usage();
    return -1;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    int c;
    *o = (struct opts){ .proto = P_MILTER, .format = "u%d@dovecot.test", .sender = "",
                        .sessions = 10, .per_session = 500, .per_tx = 5, .timeout_s = 60,
                        .max_attempts = 1 };
    while ((c = getopt(argc, argv, "P:a:c:n:r:f:k:ms:R:A:w:D:")) != -1) {
        switch (c) {
        case 'P': o->proto = (enum proto)parse_proto(optarg); break;
        case 'a': o->addr = optarg; break;
        case 'c': o->sessions = atoi(optarg); break;
        case 'n': o->per_session = atoi(optarg); break;
        case 'r': o->per_tx = atoi(optarg); break;
        case 'f': o->format = optarg; break;
        case 'k': o->cycle = atoi(optarg); break;
        case 'm': o->messages = true; break;
        case 's': o->sender = optarg; break;
        case 'R': o->retry_s = atof(optarg); break;
        case 'A': o->max_attempts = atoi(optarg); break;
        case 'w': o->timeout_s = atoi(optarg); break;
        case 'D': o->depth = atoi(optarg); break;
        default: usage();
        }
    }
    if (o->retry_s > 0 && o->max_attempts < 2)
        o->max_attempts = 20;
    if (!o->addr || o->sessions < 1 || o->per_session < 1 || o->per_tx < 1 || o->per_tx > 256 ||
        o->max_attempts < 1 || (o->messages && o->proto != P_MILTER) ||
        (o->depth > 1 && o->proto == P_MILTER))
        usage();
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o);
    struct session *ss = xcalloc((size_t)o.sessions, sizeof *ss);
    double secs = run_all(&o, ss);
    int rc = report(&o, ss, secs);
    for (int i = 0; i < o.sessions; i++) {
        free(ss[i].lat);
        free(ss[i].answer);
        free(ss[i].retry);
    }
    free(ss);
    return rc;
}
