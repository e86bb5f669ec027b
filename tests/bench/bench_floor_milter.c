/*
 * bench_floor_milter.c - the floor for tests/bench/floor.sh: the least a
 * libmilter filter can cost per message while the MTA talks to it the way
 * it talks to milter-nexthop.
 *
 * It negotiates exactly what milter/callbacks.c's on_negotiate does (the
 * same actions, the same protocol steps and no-reply flags, the same macro
 * lists through smfi_setsymlist), registers the same callbacks, answers
 * every RCPT "continue" and adds one header at end of message. Nothing else:
 * no per-connection allocation (the negotiated no-reply flags are kept in
 * the private pointer itself), no macro reads, no logging.
 *
 * Must not: do any work milter-nexthop does beyond libmilter's own, or
 * diverge from on_negotiate (keep the two in step, or the floor measures a
 * different protocol).
 *
 * Usage: bench_floor_milter unix:/path | inet:PORT@127.0.0.1 [LEANER]
 * LEANER (a diagnostic, to price the levers of the negotiation), any of,
 * comma-separated: "hdrs" (SMFIP_NOHDRS | SMFIP_NOEOH) and "body"
 * (SMFIP_NOBODY) ask the MTA not to send those steps; "macros" names a macro
 * no MTA defines instead of the empty lists, since Postfix replaces an empty
 * list with its own default (milter_data_macros, milter_end_of_header_macros:
 * "i"), which it then sends before every header.
 */
#include <libmilter/mfapi.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned long leaner;   /* SMFIP_NO* steps added to the negotiation (diagnostic) */
static const char *none = "";  /* the "no macros" list: "" as on_negotiate, or one never defined */

/* The no-reply flags negotiated for this connection, stored in the private pointer. */
static unsigned long no_reply_of(SMFICTX *ctx) { return (unsigned long)(uintptr_t)smfi_getpriv(ctx); }

static sfsistat carry_on(SMFICTX *ctx, unsigned long step)
{
    return no_reply_of(ctx) & step ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
    (void)hostname, (void)hostaddr;
    return carry_on(ctx, SMFIP_NR_CONN);
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
    (void)helo;
    return carry_on(ctx, SMFIP_NR_HELO);
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
    (void)argv;
    return carry_on(ctx, SMFIP_NR_MAIL);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
    (void)ctx, (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    (void)name, (void)value;
    return carry_on(ctx, SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx) { return carry_on(ctx, SMFIP_NR_EOH); }

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    (void)chunk, (void)len;
    return carry_on(ctx, SMFIP_NR_BODY);
}

static sfsistat on_eom(SMFICTX *ctx)
{
    smfi_addheader(ctx, "X-Floor", "floor");
    return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

/* libmilter logs "private data not NULL" (a syslog call) for a connection that ends with one set. */
static sfsistat on_close(SMFICTX *ctx)
{
    smfi_setpriv(ctx, NULL);
    return SMFIS_CONTINUE;
}

/* A copy of milter/callbacks.c's on_negotiate, minus its logging (plus LEANER). */
static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT | SMFIF_QUARANTINE;
    unsigned long no_reply = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_HDR |
                             SMFIP_NR_EOH | SMFIP_NR_BODY;
    (void)f2, (void)f3;
    if ((f0 & want) != want)
        return SMFIS_REJECT;
    no_reply &= f1;
    smfi_setpriv(ctx, (void *)(uintptr_t)no_reply);
    *pf0 = want;
    *pf1 = (f1 & (SMFIP_NOUNKNOWN | SMFIP_NODATA | leaner)) | no_reply;
    *pf2 = *pf3 = 0;
    smfi_setsymlist(ctx, SMFIM_CONNECT, "{daemon_name} {if_addr} {daemon_addr}");
    smfi_setsymlist(ctx, SMFIM_HELO, (char *)none);
    smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen}");
    smfi_setsymlist(ctx, SMFIM_ENVRCPT, "i");
    smfi_setsymlist(ctx, SMFIM_DATA, (char *)none);
    smfi_setsymlist(ctx, SMFIM_EOH, (char *)none);
    smfi_setsymlist(ctx, SMFIM_EOM, "i");
    return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
    static struct smfiDesc desc = {
        .xxfi_name = "floor",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT | SMFIF_QUARANTINE,
        .xxfi_connect = on_connect,
        .xxfi_helo = on_helo,
        .xxfi_envfrom = on_envfrom,
        .xxfi_envrcpt = on_envrcpt,
        .xxfi_header = on_header,
        .xxfi_eoh = on_eoh,
        .xxfi_body = on_body,
        .xxfi_eom = on_eom,
        .xxfi_abort = on_abort,
        .xxfi_close = on_close,
        .xxfi_negotiate = on_negotiate,
    };
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s unix:/path | inet:PORT@127.0.0.1 [hdrs,body,macros]\n", argv[0]);
        return 2;
    }
    if (argc == 3 && strstr(argv[2], "hdrs"))
        leaner |= SMFIP_NOHDRS | SMFIP_NOEOH;
    if (argc == 3 && strstr(argv[2], "body"))
        leaner |= SMFIP_NOBODY;
    if (argc == 3 && strstr(argv[2], "macros"))
        none = "{floor_undefined}";
    if (smfi_register(desc) == MI_FAILURE || smfi_setconn(argv[1]) == MI_FAILURE ||
        smfi_opensocket(1) == MI_FAILURE) {
        fprintf(stderr, "%s: cannot listen on %s\n", argv[0], argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
