/*
 * dotstuff.c - message to DATA wire form (dotstuff.h).
 *
 * A CR is held back until the next byte shows whether it starts a CRLF;
 * either way one CRLF goes out, so CR, LF and CRLF all end a line.
 *
 * Must not: do I/O.
 */
#include "dotstuff.h"

#include <string.h>

void dotstuff_start(struct dotstuff *st)
{
    st->bol = true;
    st->cr = false;
}

static size_t line_end(struct dotstuff *st, char *out)
{
    out[0] = '\r';
    out[1] = '\n';
    st->bol = true;
    st->cr = false;
    return 2;
}

size_t dotstuff_chunk(struct dotstuff *st, const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (st->cr) {
            o += line_end(st, out + o);
            if (ch == '\n')
                continue;   /* that CR began a CRLF */
        }
        if (ch == '\r') {
            st->cr = true;
        } else if (ch == '\n') {
            o += line_end(st, out + o);
        } else {
            if (st->bol && ch == '.')
                out[o++] = '.';
            out[o++] = ch;
            st->bol = false;
        }
    }
    return o;
}

size_t dotstuff_end(struct dotstuff *st, char *out)
{
    size_t o = 0;
    if (st->cr || !st->bol)
        o += line_end(st, out);
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}
