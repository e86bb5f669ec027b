/*
 * dotstuff.c - message to DATA wire form (dotstuff.h).
 *
 * Must not: do I/O.
 */
#include "dotstuff.h"

#include <string.h>

void dotstuff_start(struct dotstuff *st)
{
    st->bol = true;
    st->prev = '\0';
}

size_t dotstuff_chunk(struct dotstuff *st, const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (ch == '\n') {
            if (st->prev != '\r')
                out[o++] = '\r';
            out[o++] = '\n';
            st->bol = true;
        } else {
            if (st->bol && ch == '.')
                out[o++] = '.';
            out[o++] = ch;
            st->bol = false;
        }
        st->prev = ch;
    }
    return o;
}

size_t dotstuff_end(struct dotstuff *st, char *out)
{
    size_t o = 0;
    if (!st->bol) {
        if (st->prev != '\r')
            out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}
