/*
 * pipeline.h - RCPT probes that share pooled connections (pipeline.c),
 * for pool_lookup.c.
 *
 * Everyone else uses pool.h.
 *
 * Must not: be included outside the pool.
 */
#ifndef NEXTHOP_PIPELINE_H
#define NEXTHOP_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "pool_impl.h"

/*
 * A RCPT probe on an SMTP/LMTP remote: joins a connection that other
 * lookups use right now when the remote offers PIPELINING and one has
 * room, else takes one (pool_get_conn) and carries the probes of the
 * lookups that join it. Each waiter is woken once, by its own answer or to
 * take over reading the connection.
 */
enum lookup_result pool_pipelined_rcpt(struct pool *p, const char *arg, char *reply,
                                       size_t replylen, int64_t deadline_ms,
                                       struct pool_outcome *o, char *err, size_t errlen);

#endif
