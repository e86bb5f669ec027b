/*
 * util.h - small helpers shared by every module: clocks, checked
 * allocation, bounded string formatting of errors.
 *
 * Errors travel upward as text: a failing function writes a human message
 * into (char *err, size_t errlen) with set_error() and returns -1; the top
 * caller logs it once with the queue id and recipient.
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
/* Copies s into dst (size n) with bytes < 0x20 and 0x7f replaced by '?'. */
void str_printable(char *dst, size_t n, const char *s);

#endif
