/*
 * smtp_client.h - one SMTP or LMTP client session, as an explicit state
 * machine (enum smtp_phase) from the connect to QUIT: implicit TLS or
 * STARTTLS, greeting, EHLO/LHLO, AUTH, then lookups (RCPT probe, VRFY,
 * EXPN, AUTH) or a relayed transaction (MAIL, RCPT, DATA, the message,
 * the end-of-data replies).
 *
 * The client is split by concept: smtp_session.c (session and reply
 * reader), smtp_open.c (the opening phases), smtp_auth.c with
 * sasl_client.c (SASL), smtp_lookup.c (lookups), smtp_relay.c with
 * dotstuff.c (the relayed transaction).
 *
 * A session is used by one thread at a time (pool.c hands it out). Every
 * wait ends by the deadline the caller passes, and none lasts longer than
 * NET_WAIT_MAX_MS (request.h). Replies are bounded (line length from
 * conn.h, at most SMTP_REPLY_LINES lines). Arguments are checked by the
 * caller with request_check_lookup()/request_check_relay(); a command that
 * would still hold CR or LF is refused when it is written.
 *
 * Must not: pool or cache anything, log AUTH payloads, send an argument
 * holding CR or LF, or continue in plain text when TLS was required.
 */
#ifndef NEXTHOP_SMTP_CLIENT_H
#define NEXTHOP_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "ops.h"
#include "request.h"

struct spool;

/* RCPT probes per transaction before RSET + MAIL again. */
#define SMTP_PROBES_PER_TX 90

enum smtp_phase {
    SP_CONNECT = 0,     /* TCP/unix connect */
    SP_TLS_WRAP,        /* implicit TLS handshake */
    SP_GREETING,        /* waiting for 220 */
    SP_HELLO,           /* EHLO / LHLO */
    SP_STARTTLS,        /* STARTTLS command */
    SP_TLS_UPGRADE,     /* handshake after STARTTLS, then SP_HELLO again */
    SP_AUTH,            /* AUTH with the remote's own credentials */
    SP_READY,           /* in sync, no transaction open */
    SP_MAIL,            /* MAIL FROM accepted: RCPT may follow (probes stay here) */
    SP_RCPT,            /* relay: RCPT TO sent, their replies being read */
    SP_DATA,            /* relay: DATA sent, waiting for 354 */
    SP_BODY,            /* relay: the message is being sent */
    SP_DOT,             /* relay: message ended, the end-of-data replies remain */
    SP_QUIT,            /* QUIT sent: closing */
    SP_USER_AUTHED,     /* ran an AUTH lookup: QUIT and close, never reuse */
    SP_BROKEN,          /* out of sync, timed out or closed: close, no QUIT */
};

/* "greeting", "data", ...: for messages and tests. */
const char *smtp_phase_name(enum smtp_phase phase);

struct smtp_session;

/*
 * Opens a session to r and runs it up to SP_READY. with_auth: log in with
 * r->auth_username (when set); AUTH lookups pass false so the user under
 * test is the first to authenticate. On failure returns NULL with err;
 * *down_why (NULL otherwise) says why the host is to be left alone for a
 * while: "connect failed" (host down), or "it refused our AUTH" for good
 * (5xx: a wrong auth.secret, which every retry would repeat as one more
 * failed login on the store).
 */
struct smtp_session *smtp_open(const struct endpoint *r, bool with_auth, int64_t deadline_ms,
                               const char **down_why, char *err, size_t errlen);

/*
 * One lookup, as pool_lookup() describes. A RCPT, VRFY or EXPN of an
 * address that is not ASCII carries SMTPUTF8 (RFC 6531) when the server
 * offers it; when it does not, nothing is sent and the answer is
 * LOOKUP_UTF8_UNSUPPORTED (reply: REQUEST_UTF8_REPLY).
 */
enum lookup_result smtp_lookup(struct smtp_session *s, enum lookup_kind kind, const char *arg,
                               const char *password, char **members_r, char *reply,
                               size_t replylen, int64_t deadline_ms, char *err, size_t errlen);

/*
 * Pipelined RCPT probes (RFC 2920), so that concurrent lookups can share
 * one session (pool.c): smtp_probe_send() writes the probes of any number
 * of callers in one write, with RSET and MAIL FROM:<> in front where the
 * transaction needs them, and may be called again while replies are still
 * outstanding; smtp_probe_read() reads replies in order until one answers
 * a probe and returns that probe (its res, reply and err set), or NULL
 * with err when the session failed (every probe still awaiting a reply
 * is then unanswered). A RCPT reply after a refused MAIL is an error,
 * never an answer. Only when smtp_pipelining(); at most SMTP_PIPELINE_MAX
 * probes await replies at a time.
 */
#define SMTP_PIPELINE_MAX 32
struct smtp_probe {
    const char *arg;            /* the address, checked by request_check_lookup() */
    char *reply, *err;          /* the caller's buffers */
    size_t replylen, errlen;
    enum lookup_result res;
    bool answered;              /* res is set (without a reply for SMTPUTF8 refusals) */
};
bool smtp_pipelining(const struct smtp_session *s);
int smtp_probe_send(struct smtp_session *s, struct smtp_probe *const *probes, size_t n,
                    int64_t deadline_ms, char *err, size_t errlen);
struct smtp_probe *smtp_probe_read(struct smtp_session *s, int64_t deadline_ms, char *err,
                                   size_t errlen);
/* Probes sent whose reply has not been read yet. */
size_t smtp_probes_awaiting(const struct smtp_session *s);
/* Reply bytes already received and not read yet (reading needs no wait). */
bool smtp_reply_buffered(const struct smtp_session *s);

/* NOOP: 0 when the session answered 250, -1 (session broken) otherwise. */
int smtp_noop(struct smtp_session *s, int64_t deadline_ms, char *err, size_t errlen);

/*
 * One transaction, as pool_relay() describes. Returns 0, -1, or
 * SMTP_RELAY_RETRYABLE when it failed before DATA was sent (nothing was
 * committed: the caller may run it again on another session).
 */
#define SMTP_RELAY_RETRYABLE (-2)
int smtp_relay(struct smtp_session *s, const char *sender, struct relay_rcpt *rcpts, size_t n,
               struct spool *msg, void (*progress)(void *ctx), void *ctx, int64_t deadline_ms,
               char *err, size_t errlen);

enum smtp_phase smtp_phase(const struct smtp_session *s);
/* True when another operation may run on this session. */
bool smtp_reusable(const struct smtp_session *s);
/* For an idle session: false when the server closed it or spoke unasked. */
bool smtp_idle_ok(struct smtp_session *s);
/* Sends QUIT when the session is in sync (waiting briefly for 221), closes. */
void smtp_close(struct smtp_session *s);

#endif
