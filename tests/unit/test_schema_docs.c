/*
 * test_schema_docs.c - the documentation cannot drift from the schema.
 *
 * Takes the key list from config_schema_print() (the one schema table) and
 * checks that
 *   - contrib/milter-nexthop.conf.5 has a .TP entry for every key whose tag
 *     names the key and, when the key has one, its default, and documents
 *     no key the schema lacks;
 *   - the "Configuration reference" table of README.md has a row for every
 *     key holding its default, and no row for a key the schema lacks.
 * NEXTHOP_SRC (set by ctest) is the source tree; NEXTHOP_README may point
 * at another file holding the table (doc-ops.md before it is merged).
 * Must not: hard-code the key list.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

#define MAX_KEYS 256

struct schema_key {
    char key[128];
    char def[128];   /* "" when the key has no default */
    regex_t re;
};

static struct schema_key keys[MAX_KEYS];
static size_t n_keys;

static const char *src_dir(void)
{
    const char *s = getenv("NEXTHOP_SRC");
    return s && *s ? s : TEST_DATA_DIR "/../../..";
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fail_msg("cannot read %s", path);
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* "remote.*.cache.entries" -> a regex with '*' standing for any id, bounded on both sides. */
static void compile_key(struct schema_key *k)
{
    char re[512] = "(^|[^A-Za-z0-9.-])";
    size_t n = strlen(re);
    for (const char *p = k->key; *p && n < sizeof re - 40; p++) {
        if (*p == '*')
            n += (size_t)snprintf(re + n, sizeof re - n, "[A-Za-z_<>-]+");
        else if (*p == '.')
            n += (size_t)snprintf(re + n, sizeof re - n, "\\.");
        else
            re[n++] = *p;
    }
    snprintf(re + n, sizeof re - n, "($|[^A-Za-z0-9.-])");
    assert_int_equal(regcomp(&k->re, re, REG_EXTENDED | REG_NOSUB), 0);
}

static int load_schema(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_schema_print(out);
    fclose(out);
    n_keys = 0;
    for (char *line = strtok(text, "\n"); line && n_keys < MAX_KEYS; line = strtok(NULL, "\n")) {
        struct schema_key *k = &keys[n_keys++];
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab2)
            return -1;
        *tab1 = *tab2 = '\0';
        snprintf(k->key, sizeof k->key, "%s", line);
        snprintf(k->def, sizeof k->def, "%s", strcmp(tab1 + 1, "-") == 0 ? "" : tab1 + 1);
        compile_key(k);
    }
    free(text);
    return n_keys > 10 ? 0 : -1;   /* the schema has dozens of keys */
}

static int free_schema(void **state)
{
    for (size_t i = 0; i < n_keys; i++)
        regfree(&keys[i].re);
    return 0;
}

/* Removes roff font escapes and turns \- and \(dq back into text. */
static void roff_to_text(const char *in, char *out, size_t len)
{
    size_t n = 0;
    while (*in && n + 1 < len) {
        if (in[0] == '\\' && in[1] == 'f' && in[2]) {
            in += 3;
        } else if (in[0] == '\\' && in[1] == '-') {
            out[n++] = '-';
            in += 2;
        } else if (in[0] == '\\' && in[1] == '&') {
            in += 2;
        } else if (strncmp(in, "\\(dq", 4) == 0) {
            out[n++] = '"';
            in += 4;
        } else {
            out[n++] = *in++;
        }
    }
    out[n] = '\0';
}

static bool matches_some_key(const char *text)
{
    for (size_t i = 0; i < n_keys; i++)
        if (regexec(&keys[i].re, text, 0, NULL, 0) == 0)
            return true;
    return false;
}

/* The tag lines of .TP entries that document a key: "\fBkey\fR (type, ...)". */
static size_t man_key_tags(char *page, char tags[][512], size_t max)
{
    size_t n = 0;
    bool after_tp = false;
    for (char *line = strtok(page, "\n"); line; line = strtok(NULL, "\n")) {
        if (after_tp && strncmp(line, "\\fB", 3) == 0 && strstr(line, " (") && n < max)
            roff_to_text(line, tags[n++], sizeof tags[0]);
        after_tp = strcmp(line, ".TP") == 0;
    }
    return n;
}

static void test_man_page_covers_schema(void **state)
{
    static char tags[MAX_KEYS * 2][512];
    char path[4096];
    snprintf(path, sizeof path, "%s/contrib/milter-nexthop.conf.5", src_dir());
    char *page = read_file(path);
    size_t n_tags = man_key_tags(page, tags, ARRAY_SIZE(tags));
    int missing = 0;
    for (size_t i = 0; i < n_keys; i++) {
        const char *tag = NULL;
        for (size_t t = 0; t < n_tags && !tag; t++)
            if (regexec(&keys[i].re, tags[t], 0, NULL, 0) == 0)
                tag = tags[t];
        char want[160];
        snprintf(want, sizeof want, "default %s)", keys[i].def);
        if (!tag) {
            print_error("%s: no .TP entry for %s\n", path, keys[i].key);
            missing++;
        } else if (*keys[i].def && !strstr(tag, want)) {
            print_error("%s: entry of %s does not say '%s': %s\n", path, keys[i].key, want, tag);
            missing++;
        }
    }
    for (size_t t = 0; t < n_tags; t++)
        if (!matches_some_key(tags[t])) {
            print_error("%s: documents a key the schema lacks: %s\n", path, tags[t]);
            missing++;
        }
    free(page);
    assert_int_equal(missing, 0);
}

/* The rows of the table under the "Configuration reference" heading. */
static size_t readme_rows(char *text, char rows[][512], size_t max)
{
    size_t n = 0;
    bool inside = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            inside = strstr(line, "Configuration reference") != NULL;
            continue;
        }
        if (inside && strncmp(line, "| `", 3) == 0 && n < max)
            snprintf(rows[n++], sizeof rows[0], "%s", line);
    }
    return n;
}

static void test_readme_covers_schema(void **state)
{
    static char rows[MAX_KEYS * 2][512];
    char path[4096];
    const char *override = getenv("NEXTHOP_README");
    snprintf(path, sizeof path, "%s", override && *override ? override : "");
    if (!*path)
        snprintf(path, sizeof path, "%s/README.md", src_dir());
    char *text = read_file(path);
    size_t n_rows = readme_rows(text, rows, ARRAY_SIZE(rows));
    int missing = 0;
    for (size_t i = 0; i < n_keys; i++) {
        const char *row = NULL;
        for (size_t r = 0; r < n_rows && !row; r++) {
            char first[256];
            snprintf(first, sizeof first, "%s", rows[r]);
            char *end = strchr(first + 2, '|');   /* the key cell only */
            if (end)
                *end = '\0';
            if (regexec(&keys[i].re, first, 0, NULL, 0) == 0)
                row = rows[r];
        }
        char want[160];
        snprintf(want, sizeof want, "`%s`", keys[i].def);
        if (!row) {
            print_error("%s: the Configuration reference table has no row for %s\n", path, keys[i].key);
            missing++;
        } else if (*keys[i].def && !strstr(row, want)) {
            print_error("%s: row of %s does not give the default %s: %s\n", path, keys[i].key, want, row);
            missing++;
        }
    }
    for (size_t r = 0; r < n_rows; r++) {
        char first[256];
        snprintf(first, sizeof first, "%s", rows[r]);
        char *end = strchr(first + 2, '|');
        if (end)
            *end = '\0';
        if (!matches_some_key(first)) {
            print_error("%s: the table documents a key the schema lacks: %s\n", path, rows[r]);
            missing++;
        }
    }
    free(text);
    assert_int_equal(missing, 0);
}

/* The checks themselves must be able to fail: a made-up key is not found. */
static void test_checks_can_fail(void **state)
{
    assert_true(matches_some_key("\\fBremote.lmtp.address\\fR") || matches_some_key("remote.lmtp.address"));
    assert_true(matches_some_key("`remote.<id>.cache.ttl.stale`"));
    assert_false(matches_some_key("`remote.<id>.cache.ttl.forever`"));
    assert_false(matches_some_key("`milter.socket-colour`"));
    assert_false(matches_some_key("`remote.<id>.cache`"));   /* a group, not a key */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks_can_fail),
        cmocka_unit_test(test_man_page_covers_schema),
        cmocka_unit_test(test_readme_covers_schema),
    };
    return cmocka_run_group_tests(tests, load_schema, free_schema);
}
