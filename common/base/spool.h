/*
 * spool.h - one message (headers + body) held for relaying: in memory up to
 * a bound, then in a private (0600, unlinked) temporary file.
 * Must not: parse the message, or leave a named file behind.
 */
#ifndef NEXTHOP_SPOOL_H
#define NEXTHOP_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

struct spool;

struct spool *spool_create(size_t memory_limit);
int spool_write(struct spool *s, const void *data, size_t len, char *err, size_t errlen);
/* Starts reading from the beginning. */
int spool_rewind(struct spool *s, char *err, size_t errlen);
/* Reads up to n bytes; 0 at the end, -1 on error. */
ssize_t spool_read(struct spool *s, void *buf, size_t n);
size_t spool_size(const struct spool *s);
void spool_destroy(struct spool *s);

#endif
