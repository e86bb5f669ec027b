/*
 * smtp_reply.h - one SMTP/LMTP reply, taken line by line: each line must
 * be three digits (200-599) followed by '-', ' ' or nothing, every line of
 * a reply carries the same code, and a reply has at most SMTP_REPLY_LINES
 * lines. Gives the reply back as one line (for logs and callers), line by
 * line (EXPN members), or as the EHLO/LHLO capabilities.
 *
 * Must not: do I/O (smtp_session.c reads the lines), or show the text of a
 * reply taken during AUTH (it may echo credentials): such a reply is
 * summarized as its codes only.
 */
#ifndef NEXTHOP_SMTP_REPLY_H
#define NEXTHOP_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_LINES 100

struct smtp_reply {
    int code;
    int nlines;
    char *text;                 /* full lines joined by '\n' */
    size_t len, cap;
    bool redacted;              /* taken during AUTH: only its codes may be shown */
};

enum smtp_reply_status {
    SMTP_REPLY_MORE = 0,        /* a continuation line: more follow */
    SMTP_REPLY_DONE = 1,        /* the last line: rep->code holds the code */
    SMTP_REPLY_GARBAGE = -1,    /* not a reply line, or a code that changed */
    SMTP_REPLY_TOO_LONG = -2,   /* more than SMTP_REPLY_LINES lines */
};

/* Starts a new reply in rep (keeps its buffer). */
void smtp_reply_start(struct smtp_reply *rep, bool redacted);
/* Takes one line (without CRLF, n bytes). */
enum smtp_reply_status smtp_reply_add(struct smtp_reply *rep, const char *line, size_t n);
/* The reply as one line: "550 5.1.1 first line second line". */
void smtp_reply_summary(const struct smtp_reply *rep, char *out, size_t n);
/* Line idx (0-based) without code and separator. */
void smtp_reply_line_text(const struct smtp_reply *rep, int idx, char *out, size_t n);
void smtp_reply_free(struct smtp_reply *rep);

struct smtp_caps {
    bool pipelining, starttls, size, eightbitmime, smtputf8;
    unsigned mechs;             /* sasl_client.h SASL_MECH_* offered by AUTH */
};

/* The capabilities an EHLO/LHLO reply announces. */
void smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *caps);

#endif
