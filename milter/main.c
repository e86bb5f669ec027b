/*
 * main.c - milter-nexthop: command line, then one of the modes:
 *   run the milter (default), check the config (-n), one remote lookup (-q),
 *   print what the rules decide for a recipient (-t), one command to the
 *   running daemon's control socket (-C), version (-V).
 * The command line is pinned by DESIGN.md; exit codes follow sysexits.
 * Must not: do the work of a mode itself (daemon.c and cli.c do), or
 * change the command line DESIGN.md pins.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "milter.h"

#define DEFAULT_CONFIG "/etc/milter-nexthop.conf"
#define MAX_XVARS 32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: milter-nexthop [-c FILE] [-f] [-p SOCKET] [-u USER] [-P PIDFILE] [-v]\n"
            "       milter-nexthop -c FILE -n\n"
            "       milter-nexthop -c FILE -q REMOTE rcpt|vrfy|expn ADDRESS\n"
            "       milter-nexthop -c FILE -q REMOTE auth USER   (password on stdin)\n"
            "       milter-nexthop -c FILE -t RCPT [-s SENDER] [-x VAR=VALUE]...\n"
            "       milter-nexthop -c FILE -C COMMAND [ARG]...   (flush, show, reload, stats, help)\n"
            "       milter-nexthop -V\n");
}

int main(int argc, char **argv)
{
    struct options opt = { .config_file = DEFAULT_CONFIG };
    const char *query_remote = NULL, *test_rcpt = NULL, *sender = NULL, *control = NULL;
    char *xvars[MAX_XVARS];
    int nx = 0, c;
    bool check = false, version = false;

    while ((c = getopt(argc, argv, "c:fp:u:P:vnq:t:s:x:C:Vh")) != -1) {
        switch (c) {
        case 'c': opt.config_file = optarg; break;
        case 'f': opt.foreground = true; break;
        case 'p': opt.socket = optarg; break;
        case 'u': opt.user = optarg; break;
        case 'P': opt.pidfile = optarg; break;
        case 'v': opt.verbose = true; break;
        case 'n': check = true; break;
        case 'q': query_remote = optarg; break;
        case 't': test_rcpt = optarg; break;
        case 's': sender = optarg; break;
        case 'x':
            if (nx == MAX_XVARS || !strchr(optarg, '=')) {
                fprintf(stderr, "milter-nexthop: -x wants VAR=VALUE (at most %d)\n", MAX_XVARS);
                return EX_USAGE;
            }
            xvars[nx++] = optarg;
            break;
        case 'C': control = optarg; break;
        case 'V': version = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (version)
        return cli_version();
    if (check)
        return cli_check(opt.config_file, opt.verbose);
    if (query_remote) {
        if (argc - optind != 2) {
            usage(stderr);
            return EX_USAGE;
        }
        return cli_query(opt.config_file, query_remote, argv[optind], argv[optind + 1]);
    }
    if (control) {
        /* the command's words: -C's argument and every word after the options */
        char *words[8];
        int n = 0;
        words[n++] = (char *)control;
        while (optind < argc && n < 8)
            words[n++] = argv[optind++];
        if (optind != argc) {
            usage(stderr);
            return EX_USAGE;
        }
        return ctl_command(opt.config_file, words, n);
    }
    if (test_rcpt)
        return cli_test(opt.config_file, test_rcpt, sender, xvars, nx);
    if (optind != argc) {
        usage(stderr);
        return EX_USAGE;
    }
    return daemon_run(&opt);
}
