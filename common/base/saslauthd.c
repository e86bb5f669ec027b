/*
 * saslauthd.c - parse and format saslauthd protocol messages (see
 * saslauthd.h). Pure functions over caller buffers.
 * Must not: do I/O or log; never copy a password anywhere but req.
 */
#include "saslauthd.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/*
 * Reads one counted string at *pos. Returns 1 when read, 0 when more bytes
 * are needed, -1 when it is longer than SASLAUTHD_FIELD_MAX.
 */
static int read_field(const unsigned char *buf, size_t len, size_t *pos, char *out, size_t *n_r)
{
    if (len - *pos < 2)
        return 0;
    size_t n = (size_t)buf[*pos] << 8 | buf[*pos + 1];
    if (n > SASLAUTHD_FIELD_MAX)
        return -1;
    if (len - *pos - 2 < n)
        return 0;
    memcpy(out, buf + *pos + 2, n);
    out[n] = '\0';
    *pos += 2 + n;
    *n_r = n;
    return 1;
}

static bool has_byte_below(const char *s, size_t n, unsigned char limit, bool also_del)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < limit || (also_del && s[i] == 0x7f))
            return true;
    return false;
}

static const char *check_fields(const struct saslauthd_request *req, const size_t n[4])
{
    const char *fields[4] = { req->login, req->password, req->service, req->realm };
    static const char *const names[4] = { "login", "password", "service", "realm" };
    for (int i = 0; i < 4; i++)
        if (memchr(fields[i], '\0', n[i]))
            return names[i];
    if (n[0] == 0 || has_byte_below(req->login, n[0], 0x20, true))
        return "login";
    if (memchr(req->password, '\r', n[1]) || memchr(req->password, '\n', n[1]))
        return "password";
    if (has_byte_below(req->service, n[2], 0x20, true))
        return "service";
    if (has_byte_below(req->realm, n[3], 0x20, true))
        return "realm";
    return NULL;
}

ssize_t saslauthd_parse_request(const unsigned char *buf, size_t len, struct saslauthd_request *req,
                                char *err, size_t errlen)
{
    char *fields[4] = { req->login, req->password, req->service, req->realm };
    size_t pos = 0, n[4];
    for (int i = 0; i < 4; i++) {
        int rc = read_field(buf, len, &pos, fields[i], &n[i]);
        if (rc < 0) {
            set_error(err, errlen, "field %d is longer than %d bytes", i + 1, SASLAUTHD_FIELD_MAX);
            saslauthd_request_clear(req);
            return -1;
        }
        if (rc == 0) {
            saslauthd_request_clear(req);
            return 0;
        }
    }
    const char *bad = check_fields(req, n);
    if (bad) {
        set_error(err, errlen, "the %s holds a forbidden byte (or is empty)", bad);
        saslauthd_request_clear(req);
        return -1;
    }
    return (ssize_t)pos;
}

void saslauthd_request_clear(struct saslauthd_request *req) { explicit_bzero(req, sizeof *req); }

int saslauthd_user(const struct saslauthd_request *req, char *out, size_t outlen)
{
    int n;
    if (*req->realm && !strchr(req->login, '@'))
        n = snprintf(out, outlen, "%s@%s", req->login, req->realm);
    else
        n = snprintf(out, outlen, "%s", req->login);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static ssize_t put_field(const char *s, unsigned char *out, size_t outlen, size_t pos)
{
    size_t n = strlen(s);
    if (n > 0xffff || pos + 2 + n > outlen)
        return -1;
    out[pos] = (unsigned char)(n >> 8);
    out[pos + 1] = (unsigned char)(n & 0xff);
    memcpy(out + pos + 2, s, n);
    return (ssize_t)(pos + 2 + n);
}

ssize_t saslauthd_format_reply(bool ok, const char *reason, unsigned char *out, size_t outlen)
{
    char text[512];
    snprintf(text, sizeof text, "%s%s%s", ok ? "OK" : "NO", reason && *reason ? " " : "",
             reason ? reason : "");
    return put_field(text, out, outlen, 0);
}

ssize_t saslauthd_format_request(const char *login, const char *password, const char *service,
                                 const char *realm, unsigned char *out, size_t outlen)
{
    const char *fields[4] = { login, password, service, realm };
    ssize_t pos = 0;
    for (int i = 0; i < 4 && pos >= 0; i++)
        pos = put_field(fields[i] ? fields[i] : "", out, outlen, (size_t)pos);
    return pos;
}

int saslauthd_parse_reply(const unsigned char *buf, size_t len, char *text, size_t textlen)
{
    if (len < 2)
        return -2;
    size_t n = (size_t)buf[0] << 8 | buf[1];
    if (len - 2 < n)
        return -2;
    if (n < 2)
        return -1;
    snprintf(text, textlen, "%.*s", (int)n, (const char *)buf + 2);
    if (memcmp(buf + 2, "OK", 2) == 0)
        return 1;
    return memcmp(buf + 2, "NO", 2) == 0 ? 0 : -1;
}
