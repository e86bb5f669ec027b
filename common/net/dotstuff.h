/*
 * dotstuff.h - a message in the form DATA sends it (RFC 5321 4.5.2): every
 * line end CRLF - a lone CR and a lone LF become CRLF too, so no receiver
 * that takes either as a line end can be made to see "\r.\r" or "\n.\n"
 * as the end of the data (SMTP smuggling) - a '.' at the start of a line
 * doubled, and the final ".\r\n". Works on chunks, carrying its state from
 * one to the next.
 *
 * Must not: do I/O, or let anything through that a receiver could read as
 * the end of the data before the final ".\r\n".
 */
#ifndef NEXTHOP_DOTSTUFF_H
#define NEXTHOP_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

struct dotstuff {
    bool bol;           /* the next byte starts a line */
    bool cr;            /* a CR was read and not yet written: CRLF or a lone CR */
};

/* Output of one call is at most DOTSTUFF_MAX(n) bytes. */
#define DOTSTUFF_MAX(n) (2 * (n) + 8)

void dotstuff_start(struct dotstuff *st);
/* Converts n bytes of in into out; returns the bytes written. */
size_t dotstuff_chunk(struct dotstuff *st, const char *in, size_t n, char *out);
/* Ends the last line (if it lacked its line end) and writes ".\r\n". */
size_t dotstuff_end(struct dotstuff *st, char *out);

#endif
