/*
 * duration.h - "1d", "2h", "30m", "10s", "250ms", combinations such as
 * "1m30s", or a bare number of milliseconds.
 * Must not: know which key a duration belongs to (the schema does).
 */
#ifndef NEXTHOP_DURATION_H
#define NEXTHOP_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 and *ms_r, or -1 with err ("bad duration ..."). Negative values are errors. */
int duration_parse(const char *s, int64_t *ms_r, char *err, size_t errlen);
/* Formats ms as the shortest exact duration ("1d", "90s", "250ms"). */
void duration_format(int64_t ms, char *buf, size_t len);

#endif
