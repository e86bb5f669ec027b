/*
 * ops.c - names of the lookup kinds and protocols, both ways (ops.h).
 * Must not: hold state, or know what a lookup does.
 */
#include "ops.h"

#include <strings.h>

#include "endpoint.h"
#include "util.h"

static const char *const kind_names[] = { "rcpt", "vrfy", "expn", "auth" };

int lookup_kind_parse(const char *name)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(kind_names); i++)
        if (strcasecmp(name, kind_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *lookup_kind_name(enum lookup_kind kind)
{
    return (unsigned)kind < ARRAY_SIZE(kind_names) ? kind_names[kind] : "?";
}

const char *remote_proto_name(enum remote_proto p)
{
    return p == PROTO_LMTP ? "lmtp" : p == PROTO_IMAP ? "imap" : "smtp";
}
