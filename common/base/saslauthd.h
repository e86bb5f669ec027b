/*
 * saslauthd.h - the saslauthd wire protocol, as pure functions.
 *
 * A request is four counted strings: login, password, service, realm; each
 * is a 2-byte big-endian length followed by that many bytes (no NUL). The
 * reply is one counted string starting with "OK" or "NO", optionally
 * followed by a space and a reason. Cyrus SASL (`pwcheck_method:
 * saslauthd`) sends one request per connection.
 *
 * Must not: do I/O, log, or leave a password in a buffer it owns
 * (saslauthd_request_clear() wipes one).
 */
#ifndef NEXTHOP_SASLAUTHD_H
#define NEXTHOP_SASLAUTHD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Longest field accepted, as saslauthd's own MAX_REQ_LEN. */
#define SASLAUTHD_FIELD_MAX 1024
/* Longest request on the wire: four fields and their lengths. */
#define SASLAUTHD_REQUEST_MAX (4 * (2 + SASLAUTHD_FIELD_MAX))

struct saslauthd_request {
    char login[SASLAUTHD_FIELD_MAX + 1];
    char password[SASLAUTHD_FIELD_MAX + 1];
    char service[SASLAUTHD_FIELD_MAX + 1];
    char realm[SASLAUTHD_FIELD_MAX + 1];
};

/*
 * Parses one request from the first len bytes of buf. Returns the bytes it
 * used (> 0) when complete, 0 when more bytes are needed, -1 (with err)
 * when it is malformed: a field too long, a NUL in any field, a control
 * character in the login, a CR or LF in the password, an empty login.
 */
ssize_t saslauthd_parse_request(const unsigned char *buf, size_t len, struct saslauthd_request *req,
                                char *err, size_t errlen);

/* Wipes every field (the password above all). */
void saslauthd_request_clear(struct saslauthd_request *req);

/*
 * The user name to check: login, or login@realm when the client split the
 * realm off (realm set and login without '@'). Returns -1 if it is too long.
 */
int saslauthd_user(const struct saslauthd_request *req, char *out, size_t outlen);

/* Formats a reply "OK" / "NO reason" (reason may be NULL). Returns its length, -1 if it does not fit. */
ssize_t saslauthd_format_reply(bool ok, const char *reason, unsigned char *out, size_t outlen);

/* Client side, for tests and tools. */
ssize_t saslauthd_format_request(const char *login, const char *password, const char *service,
                                 const char *realm, unsigned char *out, size_t outlen);
/*
 * Parses a reply: 1 for OK, 0 for NO (text gets the whole reply string),
 * -2 when more bytes are needed, -1 when malformed.
 */
int saslauthd_parse_reply(const unsigned char *buf, size_t len, char *text, size_t textlen);

#endif
