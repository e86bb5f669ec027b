/*
 * test_log.c - what reaches a log line: control bytes, invalid UTF-8 and
 * characters that reorder or hide text (from remote replies, HELO names,
 * MTA macros) are shown escaped, in the logging path itself, so no caller
 * can forget it (issue 14). Also str_escape() on its own: truncation never
 * splits an escape or a character.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"

static void test_escape(void **state)
{
    static const struct { const char *in, *want; } cases[] = {
        { "plain ascii, \"quotes\" and \\ stay", "plain ascii, \"quotes\" and \\ stay" },
        { "r\xc3\xa9sum\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87", "r\xc3\xa9sum\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87" },
        { "cr\rlf\ntab\tesc\x1b[2Jdel\x7f", "cr\\x0dlf\\x0atab\\x09esc\\x1b[2Jdel\\x7f" },
        { "bad \xff\xfe utf8 \xc3", "bad \\xff\\xfe utf8 \\xc3" },
        { "overlong \xc0\xaf surrogate \xed\xa0\x80", "overlong \\xc0\\xaf surrogate \\xed\\xa0\\x80" },
        { "c1 \xc2\x85 \xc2\x9b", "c1 \\u0085 \\u009b" },
        { "bidi \xe2\x80\xaegpj.exe \xe2\x81\xa6x\xe2\x81\xa9 \xd8\x9c", "bidi \\u202egpj.exe \\u2066x\\u2069 \\u061c" },
        { "zw a\xe2\x80\x8b" "b\xe2\x80\x8d" "c\xef\xbb\xbf" "d\xe2\x81\xa0", "zw a\\u200bb\\u200dc\\ufeffd\\u2060" },
        { "line\xe2\x80\xa8para\xe2\x80\xa9", "line\\u2028para\\u2029" },
        { "neighbours \xc2\xa1\xe2\x80\x90\xe2\x80\xa7\xe2\x81\xb0", "neighbours \xc2\xa1\xe2\x80\x90\xe2\x80\xa7\xe2\x81\xb0" },
        { "invisible \xc2\xa0\xc2\xad\xe2\x80\xaf\xe2\x81\xaa\xf3\xa0\x81\x81", "invisible \\u00a0\\u00ad\\u202f\\u206a\\ue0041" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        str_escape(out, sizeof out, cases[i].in);
        assert_string_equal(out, cases[i].want);
    }
    /* truncation: whole escapes and whole characters only */
    char small[8];
    str_escape(small, sizeof small, "ab\x1b" "cd");   /* "ab\x1bcd" needs 9 */
    assert_string_equal(small, "ab\\x1bc");
    str_escape(small, 6, "ab\x1b" "cd");
    assert_string_equal(small, "ab");
    str_escape(small, 5, "abc\xc3\xa9");
    assert_string_equal(small, "abc");
    str_escape(small, 1, "abc");
    assert_string_equal(small, "");
}

/* Runs log_info("%s%s%s", ...) and returns what was written to stderr. */
static char *logged(const char *before, const char *arg, const char *after)
{
    static char buf[20000];
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    log_info("%s%s%s", before, arg, after);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return buf;
}

static void test_log_line(void **state)
{
    log_init("test", false, LOG_LVL_INFO);
    /* a remote's reply with a bidi override and an injected second line */
    char *line = logged("lookup: reply=\"", "550 no such user\xe2\x80\xae\r\nfake: result=yes", "\"");
    assert_non_null(strstr(line, "lookup: reply=\"550 no such user\\u202e\\x0d\\x0afake: result=yes\"\n"));
    assert_int_equal(strchr(line, '\n') - line + 1, (long)strlen(line));   /* one line */
    assert_null(strstr(line, "\xe2\x80\xae"));
    /* a queue id macro with C1 and zero-width characters */
    line = logged("rcpt: queue=", "Q\xc2\x9b" "1\xe2\x80\x8b" "2", " result=accept");
    assert_non_null(strstr(line, "rcpt: queue=Q\\u009b1\\u200b2 result=accept\n"));
    /* ordinary UTF-8 stays readable */
    line = logged("helo=", "m\xc3\xbc" "ller.example", "");
    assert_non_null(strstr(line, "helo=m\xc3\xbc" "ller.example\n"));
    /* a line of 2,000 control bytes is escaped whole, still one line */
    char many[2001];
    memset(many, '\x01', sizeof many - 1);
    many[sizeof many - 1] = '\0';
    line = logged("x=", many, "");
    assert_int_equal(strchr(line, '\n') - line + 1, (long)strlen(line));
    assert_non_null(strstr(line, "x=\\x01\\x01"));
    assert_true(strlen(line) > 4 * 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
