/*
 * netstring.h - netstrings ("<length>:<bytes>,", djb) as the socketmap
 * protocol of Sendmail and Postfix frames its requests and replies.
 *
 * The parser is bounded: a length longer than the caller's maximum, a
 * length with too many digits, leading zeros, a missing ':' or ',' are
 * errors as soon as they can be seen, so a peer can neither make us buffer
 * more than max bytes nor wait for a frame that can never complete.
 * Must not: allocate, read from sockets, or interpret the payload.
 */
#ifndef NEXTHOP_NETSTRING_H
#define NEXTHOP_NETSTRING_H

#include <stddef.h>

/* Bytes a frame adds around a payload of at most 99999999 bytes. */
#define NETSTRING_OVERHEAD 10

enum netstring_status {
    NETSTRING_OK = 0,     /* one complete frame at the start of the buffer */
    NETSTRING_MORE,       /* a valid prefix: read more bytes and call again */
    NETSTRING_ERROR,      /* malformed or longer than max: close the stream */
};

/*
 * Looks for one frame at the start of buf (len bytes, need not be
 * NUL-terminated). On NETSTRING_OK *payload points into buf, *plen is its
 * length and *used the size of the whole frame. On NETSTRING_ERROR err
 * says why.
 */
enum netstring_status netstring_parse(const char *buf, size_t len, size_t max,
                                      const char **payload, size_t *plen, size_t *used,
                                      char *err, size_t errlen);

/*
 * Writes the frame of payload (plen bytes) into out (outlen bytes) and
 * returns its size, or -1 when it does not fit.
 */
long netstring_encode(const char *payload, size_t plen, char *out, size_t outlen);

#endif
