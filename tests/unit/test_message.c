/*
 * test_message.c - common/policy/message.c, rcpt.c and eom.c without
 * libmilter: one message at a time, step by step as the milter feeds it,
 * against a scripted LMTP next hop (tests/lib/fakeserver.py: RCPT "ok*"
 * exists; after the data "oktemp*" gets 452, "okperm*" 552, others 250).
 *
 * What the MTA would be told is asserted from the structured results:
 *   RCPT       501 5.1.3 / 550 5.1.1 / 451 4.4.3 / 451 4.3.0 / 501 5.1.7,
 *              with their log lines
 *   end of message, every outcome:
 *     relay delivered            -> discard the MTA copy
 *     relay + a recipient of the MTA's -> delivered one deleted from the copy
 *     all refused                -> reject with the next hop's 552 5.2.2
 *     partial refusal / deferral -> on-tempfail quarantine | tempfail (451 4.4.2) | accept
 *     next hop down              -> the same; the client gets "451 4.4.2 Next hop temporarily
 *                                   unavailable, try again later", the detail (address, error)
 *                                   is in the relay: log line and the hold reason only
 *     one hop down, one 452      -> the client gets the next hop's own text
 *     routing.action quarantine  -> held with the reason, nothing relayed
 *     header mode                -> routing header once per next hop
 *     no next hop                -> nothing but the header removal
 *     spool failure              -> 451 4.3.0
 *   and on every path the client's routing headers (any case) are removed,
 *   and never relayed; the relayed copy starts with our Received: line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_remote.h"
#include "log.h"
#include "message.h"
#include "policy_fixture.h"
#include "runtime.h"

#define CONF                                                                                       \
    "remote = { fake = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\"; lookup = true;" \
    "                    timeout = \"5s\"; tls = { enable = false; }; }; };\n"                      \
    "list = { local = [ \"fake.test\" ]; };\n"                                                     \
    "%s\n"                                                                                         \
    "queue = { outbound = { next-hop = ( { if = \"rcpt-domain\"; in-list = \"list/local\";"        \
    "                                      then = \"fake\"; }, { else = false; } ); }; };\n"        \
    "routing = { action = ( { if = \"sender\"; eq = \"header@example.net\"; then = \"header\"; },"  \
    "                       { if = \"sender\"; eq = \"hold@example.net\"; then = \"quarantine\"; }," \
    "                       { else = \"relay\"; } );\n"                                             \
    "            on-tempfail = \"%s\"; timeout = \"10s\"; spool-memory = %d; };\n"

#define VALIDATE \
    "session = { rcpt = { lookup = { domains = \"list/local\"; addresses = \"remote/fake\"; }; }; };"

static const struct client_info client = { "192.0.2.7", "127.0.0.1", "mx.example", "smtpd" };

struct fixture {
    struct fake fake;
    struct nh_runtime *run;
    struct message *msg;
};

static struct fixture fx;

static int teardown(void **state)
{
    message_free(fx.msg);
    runtime_unref(fx.run);
    memset(&fx, 0, sizeof fx);
    return stop_leftovers(state);
}

/* A fake next hop (scenario) and a config relaying fake.test to it. */
static void start(const char *scenario, const char *session, const char *on_tempfail)
{
    fake_start(&fx.fake, scenario, NULL);
    fx.run = fixture_runtime(CONF, fx.fake.port, session, on_tempfail, 1048576);
}

static struct message *begin(const char *from, const char *qid)
{
    struct answer a;
    char *args[] = { (char *)from, NULL };
    message_free(fx.msg);
    fx.msg = message_begin(&fx.run->cfg->policy, fx.run->remotes, &client, args, "", &a);
    assert_int_equal(a.reply.code, 0);
    message_set_queue_id(fx.msg, qid);
    return fx.msg;
}

static void rcpt(struct message *m, const char *to, struct answer *a)
{
    char *args[] = { (char *)to, NULL };
    message_rcpt(m, args, a);
}

static void rcpt_ok(struct message *m, const char *to)
{
    struct answer a;
    rcpt(m, to, &a);
    if (a.reply.code)
        fail_msg("RCPT %s: %d %s %s", to, a.reply.code, a.reply.xcode, a.reply.text);
}

/* Headers (with two forged routing headers), end of headers, body, end of message. */
static const struct eom_result *content(struct message *m, const char *subject)
{
    message_header(m, "From", "<s@example.net>");
    message_header(m, "X-Nexthop", "evil");
    message_header(m, "Subject", subject);
    message_header(m, "x-NEXTHOP", "evil-lower");
    message_eoh(m);
    message_body(m, "body line\r\n", 11);
    return message_eom(m, NULL, NULL);
}

/* One whole message from `from` to the recipients (NULL-terminated). */
static const struct eom_result *send_msg(const char *from, const char *subject, ...)
{
    struct message *m = begin(from, subject);
    va_list ap;
    va_start(ap, subject);
    for (const char *to; (to = va_arg(ap, const char *));)
        rcpt_ok(m, to);
    va_end(ap);
    return content(m, subject);
}

static void assert_routing_headers_removed(const struct eom_result *r)
{
    assert_int_equal(r->n_remove, 2);   /* both forged copies, last first */
    assert_string_equal(r->remove[0].name, "X-Nexthop");
    assert_int_equal(r->remove[0].index, 2);
    assert_int_equal(r->remove[1].index, 1);
}

static const struct eom_rcpt *rcpt_of(const struct eom_result *r, const char *addr)
{
    for (size_t i = 0; i < r->n_rcpts; i++)
        if (strcmp(r->rcpts[i].addr, addr) == 0)
            return &r->rcpts[i];
    fail_msg("no recipient %s in the result", addr);
    return NULL;
}

static void assert_reply(const struct reply *r, int code, const char *xcode, const char *text)
{
    if (r->code != code || strcmp(r->xcode, xcode) != 0 || strcmp(r->text, text) != 0)
        fail_msg("reply \"%d %s %s\", wanted \"%d %s %s\"", r->code, r->xcode, r->text, code, xcode,
                 text);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* ---------------------------------------------------------------- RCPT */

static void test_rcpt_answers(void **state)
{
    (void)state;
    struct answer a;
    start("normal", VALIDATE, "quarantine");
    struct message *m = begin("<s@example.net>", "QR");
    log_set_level(LOG_LVL_DEBUG);   /* the accept line is a debug line */

    rcpt(m, "<ok1@fake.test>", &a);
    assert_int_equal(a.reply.code, 0);
    assert_contains(a.log, "rcpt: queue=QR rcpt=<ok1@fake.test> result=accept why=\"exists\"");
    log_set_level(LOG_LVL_INFO);

    rcpt(m, "<nobody@fake.test>", &a);
    assert_reply(&a.reply, 550, "5.1.1", "Recipient address rejected: User unknown");
    assert_int_equal(a.log_level, LOG_LVL_INFO);
    assert_contains(a.log, "rcpt: queue=QR rcpt=<nobody@fake.test> list=remote/fake result=reject code=550 ms=");

    rcpt(m, "<bad address@fake.test>", &a);
    assert_reply(&a.reply, 501, "5.1.3", "Bad recipient address syntax");
    assert_contains(a.log, "rcpt: queue=QR rcpt=<bad address@fake.test> result=reject why=");

    rcpt(m, "<test>", &a);   /* no domain: refused, never looked up */
    assert_reply(&a.reply, 501, "5.1.3", "Bad recipient address syntax");
    assert_int_equal(log_count(&fx.fake, "RCPT TO:<test>"), 0);

    rcpt(m, "<Postmaster>", &a);   /* accepted without a lookup, and left to the MTA */
    assert_int_equal(a.reply.code, 0);
    rcpt(m, "<someone@elsewhere.example>", &a);   /* a domain that is not validated */
    assert_int_equal(a.reply.code, 0);

    const struct eom_result *r = content(m, "rcpt-answers");
    assert_int_equal(r->n_rcpts, 3);   /* only the accepted ones */
    assert_int_equal(rcpt_of(r, "Postmaster")->code, 0);
    assert_int_equal(rcpt_of(r, "ok1@fake.test")->code, 250);
    assert_int_equal(log_count(&fx.fake, "RCPT TO:<Postmaster>"), 0);
}

static void test_rcpt_lookup_error(void **state)
{
    (void)state;
    struct answer a;
    fx.run = fixture_runtime(CONF, fixture_closed_port(), VALIDATE, "quarantine", 1048576);
    struct message *m = begin("<s@example.net>", "QE");
    rcpt(m, "<ok1@fake.test>", &a);
    assert_reply(&a.reply, 451, "4.4.3", "Recipient address verification unavailable, try again later");
    assert_int_equal(a.log_level, LOG_LVL_WARNING);
    assert_contains(a.log, "rcpt: queue=QE rcpt=<ok1@fake.test> result=tempfail code=451 why=\"lookup failed: ");
}

static void test_bad_sender(void **state)
{
    (void)state;
    struct answer a;
    char *args[] = { (char *)"<bad sender@example.net>", NULL };
    fx.run = fixture_runtime(CONF, fixture_closed_port(), "", "quarantine", 1048576);
    fx.msg = message_begin(&fx.run->cfg->policy, fx.run->remotes, &client, args, "", &a);
    assert_reply(&a.reply, 501, "5.1.7", "Bad sender address syntax");
    assert_contains(a.log, "mail: from=rejected (");
    assert_contains(a.log, ") result=reject");
    rcpt(fx.msg, "<someone@elsewhere.example>", &a);   /* MAIL may go unanswered: RCPT refuses */
    assert_reply(&a.reply, 501, "5.1.7", "Bad sender address syntax");
}

static void test_not_ready(void **state)
{
    (void)state;
    struct answer a;
    char *args[] = { (char *)"<s@example.net>", NULL };
    fx.msg = message_begin(NULL, NULL, &client, args, "", &a);   /* no config loaded */
    assert_int_equal(a.reply.code, 0);
    rcpt(fx.msg, "<a@example.org>", &a);
    assert_reply(&a.reply, 451, "4.3.0", "Filter not ready, try again later");
    rcpt(NULL, "<a@example.org>", &a);
    assert_reply(&a.reply, 451, "4.3.0", "Filter not ready, try again later");
    const struct eom_result *r = content(fx.msg, "not-ready");
    assert_int_equal(r->reply.code, 0);
    assert_int_equal(r->n_remove, 0);
    assert_string_equal(r->log, "");
}

/* ---------------------------------------------------------------- end of message */

static void test_relay_delivered(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r = send_msg("<s@example.net>", "delivered", "<ok1@fake.test>", NULL);
    assert_routing_headers_removed(r);
    assert_int_equal(r->reply.code, 0);
    assert_string_equal(r->quarantine, "");
    assert_int_equal(r->n_add, 0);
    assert_int_equal(r->delivered, 1);
    const struct eom_rcpt *e = rcpt_of(r, "ok1@fake.test");
    assert_int_equal(e->code, 250);
    assert_string_equal(e->reply.xcode, "2.0.0");
    /* deleted from the MTA's copy, which is never discarded: Postfix may have added
       recipients of its own (always_bcc, bcc maps); with none, it removes the copy */
    assert_true(e->delete_from_mta);
    assert_string_equal(r->outcome, "continue");
    assert_contains(r->log, "eom: queue=delivered rcpts=1 delivered=1 outcome=continue ms=");

    /* the relayed copy: our Received: line first, no routing header of the client's */
    char *data = slurp(fx.fake.data);
    assert_contains(data, "=== ok1@fake.test\nReceived: from mx.example ([192.0.2.7])\r\n"
                          "\tby ");
    assert_contains(data, " (milter-nexthop) with ESMTP id delivered;\r\n");
    assert_contains(data, "\r\nFrom: <s@example.net>\r\nSubject: delivered\r\n\r\nbody line\r\n");
    assert_null(strcasestr(data, "nexthop:"));
    assert_int_equal(strncmp(data + strlen("=== ok1@fake.test\n"), r->received, strlen(r->received)), 0);
    free(data);
}

/* Header values with line breaks (a hostile MTA; Postfix folds with LF and a blank). */
static void test_header_line_breaks(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    struct message *m = begin("<s@example.net>", "breaks");
    rcpt_ok(m, "<ok1@fake.test>");
    message_header(m, "Subject", "folded\n\tproperly");
    message_header(m, "X-A", "v\r\n.\r\nMAIL FROM:<h1@evil>");
    message_header(m, "X-B", "v\n\nX-Injected: in the body?");
    message_header(m, "X-C\r\nX-D", "bad name");
    message_header(m, "X-E", "tail\r\n");
    message_eoh(m);
    message_body(m, "body line\r\n", 11);
    const struct eom_result *r = message_eom(m, NULL, NULL);
    assert_int_equal(r->delivered, 1);
    char *data = slurp(fx.fake.data);
    assert_contains(data, "Subject: folded\r\n\tproperly\r\n");
    assert_contains(data, "X-A: v\r\n .\r\n MAIL FROM:<h1@evil>\r\n");
    assert_contains(data, "X-B: v\r\n \r\n X-Injected: in the body?\r\n");
    assert_contains(data, "X-E: tail\r\n\r\nbody line\r\n");   /* the one empty line */
    assert_null(strstr(data, "bad name"));
    assert_null(strstr(data, "\nMAIL FROM:<h1"));
    free(data);
}

static void test_relay_and_mta_recipient(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r =
        send_msg("<s@example.net>", "mixed", "<ok2@fake.test>", "<bob@elsewhere.example>", NULL);
    assert_routing_headers_removed(r);
    assert_int_equal(r->reply.code, 0);
    assert_true(rcpt_of(r, "ok2@fake.test")->delete_from_mta);   /* delivered: not twice */
    assert_false(rcpt_of(r, "bob@elsewhere.example")->delete_from_mta);
    assert_int_equal(rcpt_of(r, "bob@elsewhere.example")->code, 0);
    assert_string_equal(r->outcome, "continue");
    assert_contains(r->log, "rcpts=2 delivered=1 outcome=continue");
}

static void test_all_refused_rejects_with_next_hop_reply(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r =
        send_msg("<s@example.net>", "refused", "<okperm1@fake.test>", "<okperm2@fake.test>", NULL);
    assert_routing_headers_removed(r);
    assert_reply(&r->reply, 552, "5.2.2", "<okperm1@fake.test> Over quota");   /* the first one's */
    assert_string_equal(r->quarantine, "");
    assert_false(rcpt_of(r, "okperm1@fake.test")->delete_from_mta);
    assert_reply(&rcpt_of(r, "okperm2@fake.test")->reply, 552, "5.2.2", "<okperm2@fake.test> Over quota");
    assert_string_equal(r->outcome, "reject");
    assert_contains(r->log, "delivered=0 outcome=reject");
}

static void test_partial_refusal_is_held(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r =
        send_msg("<s@example.net>", "partly", "<ok3@fake.test>", "<okperm3@fake.test>", NULL);
    assert_routing_headers_removed(r);
    assert_string_equal(r->quarantine,
                        "relay to fake failed for <okperm3@fake.test>: 552 5.2.2 <okperm3@fake.test> Over quota");
    assert_int_equal(r->reply.code, 0);
    assert_true(rcpt_of(r, "ok3@fake.test")->delete_from_mta);
    assert_false(rcpt_of(r, "okperm3@fake.test")->delete_from_mta);   /* held, not lost */
    assert_string_equal(r->outcome, "quarantine");
    assert_contains(r->log, "outcome=quarantine ms=");
    assert_contains(r->log, " reason=\"relay to fake failed for <okperm3@fake.test>: 552 5.2.2");
}

/* One delivered and one deferred recipient under each routing.on-tempfail. */
static void deferral(const char *on_tempfail, const struct eom_result **out)
{
    start("normal", VALIDATE, on_tempfail);
    const struct eom_result *r =
        send_msg("<s@example.net>", on_tempfail, "<ok4@fake.test>", "<oktemp4@fake.test>", NULL);
    assert_routing_headers_removed(r);
    assert_int_equal(rcpt_of(r, "oktemp4@fake.test")->code, 452);
    assert_false(rcpt_of(r, "oktemp4@fake.test")->delete_from_mta);
    assert_true(rcpt_of(r, "ok4@fake.test")->delete_from_mta);
    *out = r;
}

static void test_deferral_quarantine(void **state)
{
    (void)state;
    const struct eom_result *r;
    deferral("quarantine", &r);
    assert_string_equal(r->quarantine,
                        "relay to fake failed for <oktemp4@fake.test>: 452 4.2.2 <oktemp4@fake.test> Mailbox full");
    assert_int_equal(r->reply.code, 0);
    assert_string_equal(r->outcome, "quarantine");
}

static void test_deferral_tempfail(void **state)
{
    (void)state;
    const struct eom_result *r;
    deferral("tempfail", &r);
    assert_reply(&r->reply, 451, "4.4.2", "<oktemp4@fake.test> Mailbox full");
    assert_string_equal(r->quarantine, "");
    assert_string_equal(r->outcome, "tempfail");
}

static void test_deferral_accept(void **state)
{
    (void)state;
    const struct eom_result *r;
    deferral("accept", &r);
    assert_int_equal(r->reply.code, 0);   /* the MTA keeps oktemp4 and delivers it itself */
    assert_string_equal(r->quarantine, "");
    assert_string_equal(r->outcome, "continue");
}

static void test_partial_refusal_tempfail(void **state)
{
    (void)state;
    start("normal", VALIDATE, "tempfail");
    const struct eom_result *r =
        send_msg("<s@example.net>", "partly-t", "<ok5@fake.test>", "<okperm5@fake.test>", NULL);
    /* a partial 5xx is handled like a temporary failure: nobody dropped without a bounce */
    assert_reply(&r->reply, 451, "4.4.2", "<okperm5@fake.test> Over quota");
}

/* Runs message_eom() with stderr (where the log goes in tests) into a string (malloc'd). */
static const struct eom_result *content_logged(struct message *m, const char *subject, char **log)
{
    char path[] = "/tmp/test_message_log.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    const struct eom_result *r = content(m, subject);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    *log = slurp(path);
    unlink(path);
    return r;
}

#define UNAVAILABLE "Next hop temporarily unavailable, try again later"

/* The client is told the next hop is unavailable, not where it is or what failed. */
static void test_next_hop_down(void **state)
{
    (void)state;
    const char *modes[] = { "tempfail", "quarantine" };
    for (size_t i = 0; i < 2; i++) {
        int port = fixture_closed_port();
        char want_log[128], *log = NULL;
        fx.run = fixture_runtime(CONF, port, "", modes[i], 1048576);
        struct message *m = begin("<s@example.net>", "down");
        rcpt_ok(m, "<ok6@fake.test>");
        const struct eom_result *r = content_logged(m, "down", &log);
        assert_routing_headers_removed(r);
        assert_int_equal(rcpt_of(r, "ok6@fake.test")->code, 451);
        assert_false(rcpt_of(r, "ok6@fake.test")->delete_from_mta);
        /* the detail is in our log line */
        snprintf(want_log, sizeof want_log, "reply=\"451 4.4.2 next hop fake: connect to 127.0.0.1:%d: ", port);
        assert_contains(log, "relay: queue=down rcpt=<ok6@fake.test> remote=fake result=deferred ms=");
        assert_contains(log, want_log);
        free(log);
        if (i == 0) {
            assert_reply(&r->reply, 451, "4.4.2", UNAVAILABLE);
            assert_string_equal(r->outcome, "tempfail");
        } else {   /* the hold reason is for the admin (Postfix drops it, Sendmail keeps it) */
            assert_int_equal(r->reply.code, 0);
            const char *want = "relay to fake failed for <ok6@fake.test>: 451 4.4.2 next hop fake: connect to 127.0.0.1:";
            assert_int_equal(strncmp(r->quarantine, want, strlen(want)), 0);
        }
        message_free(fx.msg);
        fx.msg = NULL;
        runtime_unref(fx.run);
        fx.run = NULL;
    }
}

/* One next hop down, another one answering 452: the client gets the next hop's own text. */
static void test_next_hop_reply_over_ours(void **state)
{
    (void)state;
    fake_start(&fx.fake, "normal", NULL);
    fx.run = fixture_runtime(
        "remote = { fake = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\";"
        "                    timeout = \"5s\"; tls = { enable = false; }; };\n"
        "           down = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\";"
        "                    timeout = \"5s\"; tls = { enable = false; }; }; };\n"
        "queue = { outbound = { next-hop = ( { if = \"rcpt-domain\"; eq = \"fake.test\"; then = \"fake\"; },"
        "                                    { if = \"rcpt-domain\"; eq = \"down.test\"; then = \"down\"; },"
        "                                    { else = false; } ); }; };\n"
        "routing = { action = \"relay\"; on-tempfail = \"tempfail\"; timeout = \"10s\"; };\n",
        fx.fake.port, fixture_closed_port());
    const struct eom_result *r =
        send_msg("<s@example.net>", "mixed-down", "<ok1@down.test>", "<oktemp9@fake.test>", NULL);
    assert_int_equal(rcpt_of(r, "ok1@down.test")->code, 451);
    assert_int_equal(rcpt_of(r, "oktemp9@fake.test")->code, 452);
    assert_reply(&r->reply, 451, "4.4.2", "<oktemp9@fake.test> Mailbox full");
    assert_string_equal(r->outcome, "tempfail");
}

static void test_quarantine_action(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r = send_msg("<hold@example.net>", "hold", "<ok7@fake.test>", NULL);
    assert_routing_headers_removed(r);
    assert_string_equal(r->quarantine, "routing.action = quarantine for <ok7@fake.test> (next hop fake)");
    assert_int_equal(r->n_add, 0);
    assert_int_equal(r->reply.code, 0);
    assert_string_equal(r->received, "");   /* nothing spooled ... */
    assert_int_equal(log_count(&fx.fake, "DATA"), 0);   /* ... nothing relayed */
    assert_string_equal(r->outcome, "quarantine");
    assert_contains(r->log, "reason=\"routing.action = quarantine for <ok7@fake.test> (next hop fake)\"");
}

static void test_header_mode(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r = send_msg("<header@example.net>", "header", "<ok8@fake.test>",
                                          "<ok9@fake.test>", "<bob@elsewhere.example>", NULL);
    assert_routing_headers_removed(r);
    assert_int_equal(r->n_add, 1);   /* once per next hop */
    assert_string_equal(r->add[0].name, "X-Nexthop");
    assert_string_equal(r->add[0].value, "fake");
    for (size_t i = 0; i < r->n_rcpts; i++)
        assert_false(r->rcpts[i].delete_from_mta);
    assert_int_equal(log_count(&fx.fake, "DATA"), 0);
    assert_int_equal(r->reply.code, 0);
    assert_string_equal(r->outcome, "continue");
}

static void test_no_next_hop(void **state)
{
    (void)state;
    start("normal", VALIDATE, "quarantine");
    const struct eom_result *r =
        send_msg("<s@example.net>", "nohop", "<bob@elsewhere.example>", "<Postmaster>", NULL);
    assert_routing_headers_removed(r);   /* also when nothing else happens */
    assert_int_equal(r->n_add, 0);
    assert_int_equal(r->reply.code, 0);
    assert_string_equal(r->quarantine, "");
    assert_contains(r->log, "eom: queue=nohop rcpts=2 delivered=0 outcome=continue ms=");
    assert_null(strstr(r->log, "reason="));
}

static void test_spool_failure(void **state)
{
    (void)state;
    fake_start(&fx.fake, "normal", NULL);
    fx.run = fixture_runtime(CONF, fx.fake.port, VALIDATE, "quarantine", 16);   /* to a file at once */
    char *tmpdir = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", "/nonexistent/nexthop-test", 1);
    const struct eom_result *r = send_msg("<s@example.net>", "spool", "<ok1@fake.test>", NULL);
    if (tmpdir)
        setenv("TMPDIR", tmpdir, 1);
    else
        unsetenv("TMPDIR");
    free(tmpdir);
    assert_routing_headers_removed(r);
    assert_reply(&r->reply, 451, "4.3.0", "Temporary failure while storing the message, try again later");
    assert_int_equal(log_count(&fx.fake, "DATA"), 0);
}

int main(void)
{
    log_init("test_message", false, LOG_LVL_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rcpt_answers, teardown),
        cmocka_unit_test_teardown(test_rcpt_lookup_error, teardown),
        cmocka_unit_test_teardown(test_bad_sender, teardown),
        cmocka_unit_test_teardown(test_not_ready, teardown),
        cmocka_unit_test_teardown(test_relay_delivered, teardown),
        cmocka_unit_test_teardown(test_relay_and_mta_recipient, teardown),
        cmocka_unit_test_teardown(test_all_refused_rejects_with_next_hop_reply, teardown),
        cmocka_unit_test_teardown(test_partial_refusal_is_held, teardown),
        cmocka_unit_test_teardown(test_deferral_quarantine, teardown),
        cmocka_unit_test_teardown(test_deferral_tempfail, teardown),
        cmocka_unit_test_teardown(test_deferral_accept, teardown),
        cmocka_unit_test_teardown(test_partial_refusal_tempfail, teardown),
        cmocka_unit_test_teardown(test_next_hop_down, teardown),
        cmocka_unit_test_teardown(test_next_hop_reply_over_ours, teardown),
        cmocka_unit_test_teardown(test_quarantine_action, teardown),
        cmocka_unit_test_teardown(test_header_mode, teardown),
        cmocka_unit_test_teardown(test_no_next_hop, teardown),
        cmocka_unit_test_teardown(test_spool_failure, teardown),
        cmocka_unit_test_teardown(test_header_line_breaks, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
