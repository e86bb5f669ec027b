/*
 * util.h - small helpers shared by every module: clocks, checked
 * allocation, bounded string formatting of errors, UTF-8 and the
 * characters that must never be shown raw to an administrator.
 *
 * Errors travel upward as text: a failing function writes a human message
 * into (char *err, size_t errlen) with set_error() and returns -1; the top
 * caller logs it once with the queue id and recipient.
 * Must not: grow anything that knows mail, milters or the config; it is the
 * bottom of base/.
 */
#ifndef NEXTHOP_UTIL_H
#define NEXTHOP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ERRLEN 512
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in milliseconds (for timeouts and durations). */
int64_t now_ms(void);
/*
 * Waits until fd is ready for events (POLLIN, POLLOUT) or the monotonic
 * clock reaches deadline (now_ms() terms); EINTR is retried. Returns 1
 * ready, 0 the deadline passed, -1 poll failed (errno set).
 */
int fd_wait_until(int fd, short events, int64_t deadline);
/* Monotonic clock in microseconds. */
int64_t now_us(void);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lower-cases ASCII in place; returns s. */
char *str_lower(char *s);
/* True when both are NULL or both hold the same text. */
bool str_same(const char *a, const char *b);
/* Copies s into dst (size n) with bytes < 0x20 and 0x7f replaced by '?'. */
void str_printable(char *dst, size_t n, const char *s);

/*
 * Length of the valid UTF-8 sequence at p (1-4) with its code point in *cp,
 * or 0 when invalid: overlong forms, surrogates (U+D800..DFFF) and anything
 * above U+10FFFF are invalid (RFC 3629). p must be NUL-terminated.
 */
size_t utf8_decode(const unsigned char *p, uint32_t *cp);

/*
 * True for the code points that make a line show something else than it
 * holds: C1 controls (U+0080..009F), the bidi controls (U+061C, U+200E,
 * U+200F, U+202A..202E, U+2066..2069), zero-width and invisible characters
 * (U+00AD soft hyphen, U+034F, U+200B..200D, U+2060..2064, U+206A..206F,
 * U+FEFF, Hangul and Mongolian fillers and selectors, variation selectors
 * U+FE00..FE0F, tags and supplementary selectors U+E0000..E0FFF,
 * U+FFF9..FFFB), spaces other than U+0020 (U+00A0, U+1680, U+2000..200A,
 * U+202F, U+205F, U+3000), the line/paragraph separators (U+2028, U+2029)
 * the noncharacters (U+FDD0..FDEF, U+xFFFE, U+xFFFF), the other format
 * characters (Arabic, Syriac, Kaithi, Egyptian, shorthand and musical
 * format controls) and the blank braille pattern U+2800.
 */
bool unicode_is_deceptive(uint32_t cp);

/*
 * Copies s into dst (size n) so that it shows what it holds: control bytes
 * and bytes of invalid UTF-8 become "\xNN", deceptive code points (above)
 * become "\uNNNN"; the rest (printable ASCII and other valid UTF-8) is kept.
 * Truncates between characters, never inside an escape. dst needs up to
 * 4 * strlen(s) + 1 bytes to hold all of s.
 */
void str_escape(char *dst, size_t n, const char *s);

#endif
