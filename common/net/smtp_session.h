/*
 * smtp_session.h - the inside of one SMTP/LMTP client session, shared by
 * the files that make up the client: smtp_session.c (commands out,
 * replies in, QUIT), smtp_open.c (connect, greeting, EHLO/LHLO, STARTTLS,
 * AUTH), smtp_auth.c (AUTH), smtp_lookup.c (RCPT probe, VRFY, EXPN, AUTH
 * lookup) and smtp_relay.c (the relayed transaction).
 *
 * Everyone else uses smtp_client.h.
 *
 * Must not: be included outside the SMTP client; log what send_secret()
 * sends.
 */
#ifndef NEXTHOP_SMTP_SESSION_H
#define NEXTHOP_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "smtp_client.h"
#include "smtp_reply.h"

struct smtp_session {
    const struct endpoint *r;
    struct conn *c;
    enum smtp_phase phase;
    bool lmtp;
    bool with_auth;
    bool upgraded;              /* STARTTLS done */
    struct smtp_caps caps;
    int tx_probes;              /* RCPT probes in the open transaction */
    bool tx_smtputf8;           /* the open probe transaction's MAIL carried SMTPUTF8 */
    bool need_rset;             /* the server may hold transaction state */
    /* pipelined probes: commands sent whose replies are still to be read */
    struct smtp_pending {
        unsigned char kind;     /* smtp_lookup.c: RSET, MAIL or RCPT */
        struct smtp_probe *probe;   /* RCPT only */
    } pend[3 * SMTP_PIPELINE_MAX];
    unsigned pend_head, pend_count, pend_probes;
    bool mail_refused;          /* the last MAIL read was refused: RCPTs are errors */
    char mail_refusal[256];
    bool in_auth;               /* replies may echo credentials: never log their text */
    char peer[300];
    char line[CONN_LINE_MAX + 1];
    struct smtp_reply rep;
};

/* ---- smtp_session.c */

/* The session is out of step or gone: close it, no QUIT. */
void smtp_broken(struct smtp_session *s);
/* Deadline of one wait (request.h), within the caller's. */
int64_t smtp_step_deadline(const struct smtp_session *s, int64_t deadline_ms);

/* Appends one command line (+CRLF) to buf; the formatted text is checked
 * again for CR/LF, so no caller can smuggle a second command. */
int smtp_add_cmd(char *buf, size_t bufsize, size_t *len, char *err, size_t errlen,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Sends a batch built with smtp_add_cmd() (logged at debug level). */
int smtp_send_batch(struct smtp_session *s, const char *batch, size_t len, int64_t deadline_ms,
                    char *err, size_t errlen);
int smtp_send_cmd(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A line that carries credentials: prefix + payload + CRLF, never logged. */
int smtp_send_secret(struct smtp_session *s, const char *prefix, const char *payload,
                     int64_t deadline_ms, char *err, size_t errlen);
/* Raw bytes (the message body). */
int smtp_send_raw(struct smtp_session *s, const char *data, size_t len, int64_t deadline_ms,
                  char *err, size_t errlen);

/* Reads one (multi-line) reply into s->rep. Returns the code, or -1 with
 * err (session broken) on timeout, I/O error, garbage or too many lines. */
int smtp_read_reply(struct smtp_session *s, const char *step, int64_t deadline_ms, char *err,
                    size_t errlen);
/* Reads the reply to `what` and requires `want`; else an error naming the
 * peer and quoting the reply after `refusal`. */
int smtp_expect_reply(struct smtp_session *s, const char *what, int want, const char *refusal,
                      int64_t deadline_ms, char *err, size_t errlen);
/* The current reply as one line. */
void smtp_summary(const struct smtp_session *s, char *out, size_t n);
const char *smtp_proto(const struct smtp_session *s);

#endif
