/*
 * fuzz_config.c - libFuzzer target for the config loader and, through it,
 * the rule parser, durations, CIDR networks, regexes and the schema checks
 * (common/config/config.c, rules.c, duration.c, netaddr.c, lists.c).
 *
 * Input: the text of a config file. It is written to a private temporary
 * file and loaded with config_load(); a config that loads is printed with
 * config_dump() (to /dev/null) and released.
 * Oracles, besides ASan/UBSan/LeakSanitizer: a refused config comes with
 * at least one message, and every message line starts with "FILE:".
 * Inputs naming /dev, /proc, /sys or /run, or using \x escapes, are
 * skipped: they could make the loader read an endless file, which is the
 * administrator's choice, not an attack. The loader never starts pools.
 * Must not: write anywhere but its own temporary directory (under $TMPDIR).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];
static FILE *devnull;

static void setup_once(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[200];
    snprintf(dir, sizeof dir, "%s/nexthop-fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/fuzz.conf", dir);
    devnull = fopen("/dev/null", "w");
    log_init("fuzz_config", false, LOG_LVL_ERROR);
}

static int unsafe_input(const uint8_t *data, size_t size)
{
    static const char *const words[] = { "/dev", "/proc", "/sys", "/run", "\\x", "\\X" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (memmem(data, size, words[i], strlen(words[i])))
            return 1;
    return 0;
}

static void check_messages(const char *err)
{
    if (!*err) {
        fprintf(stderr, "fuzz_config: a config was refused without a message\n");
        abort();
    }
    size_t plen = strlen(path);
    for (const char *line = err; *line; ) {
        if (strncmp(line, path, plen) != 0 || line[plen] != ':') {
            fprintf(stderr, "fuzz_config: message without FILE:LINE: \"%.200s\"\n", line);
            abort();
        }
        const char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[16384];
    if (!*path)
        setup_once();
    if (unsafe_input(data, size))
        return 0;
    FILE *fp = fopen(path, "w");
    if (!fp)
        abort();
    fwrite(data, 1, size, fp);
    fclose(fp);
    struct nh_config *cfg = config_load(path, err, sizeof err);
    if (cfg) {
        config_dump(cfg, devnull);
        config_unref(cfg);
    } else {
        check_messages(err);
    }
    return 0;
}
