/* main.c: command line, config, and the two things rtgate does: serve, or mint a token. */
#include "rtgate/auth.h"
#include "rtgate/conf.h"
#include "rtgate/gateway.h"
#include "rtgate/log.h"
#include "rtgate/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef RTGATE_DEFAULT_CONFIG
#define RTGATE_DEFAULT_CONFIG "/etc/rtgate/rtgate.json"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: rtgate [--config FILE] [--check-config]\n"
               "       rtgate token --sub USER [--ttl SECONDS] [--config FILE]\n"
               "       rtgate --version | --help\n"
               "\n"
               "  -c, --config FILE   configuration file (default " RTGATE_DEFAULT_CONFIG ")\n"
               "  -s, --static-dir DIR  serve DIR's files (instead of static_dir)\n"
               "  -t, --check-config  check the configuration and exit (0 ok, 1 bad)\n"
               "  -v, --version       print the version and exit\n"
               "  -h, --help          print this help and exit\n"
               "\n"
               "  token               print an HS256 JWT for USER signed with auth.jwt_secret\n"
               "                      (default --ttl 3600), for trying things out\n"
               "\n"
               "Signals: SIGTERM/SIGINT drain and exit 0.\n");
}

/* Each connection is a descriptor: take the whole hard limit systemd or the shell allows. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("main: cannot raise the open-files limit to %llu",
                 (unsigned long long)rl.rlim_max);
}

static int cmd_token(struct conf *cf, int argc, char **argv)
{
    static const struct option opts[] = {{"sub", required_argument, NULL, 's'},
                                         {"ttl", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    const char *sub = NULL;
    long ttl = 3600;
    char tok[AUTH_TOKEN_MAX];
    int64_t now = (int64_t)(util_now_ms() / 1000);
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "s:l:", opts, NULL)) != -1) {
        char *end;

        switch (c) {
        case 's': sub = optarg; break;
        case 'l':
            ttl = strtol(optarg, &end, 10);
            if (*end || ttl <= 0) {
                fprintf(stderr, "rtgate token: --ttl must be a positive number of seconds\n");
                return 2;
            }
            break;
        default: usage(stderr); return 2;
        }
    }
    if (!sub) {
        fprintf(stderr, "rtgate token: --sub USER is required\n");
        return 2;
    }
    if (!cf->jwt_secret) {
        fprintf(stderr, "rtgate token: needs auth.jwt_secret (tokens for auth.keys come from "
                        "your identity provider)\n");
        return 1;
    }
    if (auth_sign_jwt(cf->jwt_secret, cf->jwt_secret_len, sub, now, now + ttl, tok, sizeof(tok)) <
        0) {
        fprintf(stderr, "rtgate token: invalid user id \"%s\" (allowed: A-Z a-z 0-9 _ . @ -)\n",
                sub);
        return 1;
    }
    printf("%s\n", tok);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 't'},
                                         {"static-dir", required_argument, NULL, 's'},
                                         {"version", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = RTGATE_DEFAULT_CONFIG, *static_dir = NULL;
    int check = 0, c, rc = 0, token = 0;
    char err[512];
    struct conf cf;
    struct gateway gw;

    while ((c = getopt_long(argc, argv, "+c:s:tvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's': static_dir = optarg; break;
        case 't': check = 1; break;
        case 'v': printf("rtgate %s\n", RTGATE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        if (strcmp(argv[optind], "token") != 0) {
            fprintf(stderr, "rtgate: unknown command \"%s\"\n", argv[optind]);
            usage(stderr);
            return 2;
        }
        token = 1;
        /* allow "rtgate token --sub x --config FILE" too */
        for (int i = optind + 1; i + 1 < argc; i++)
            if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
                path = argv[i + 1];
                memmove(&argv[i], &argv[i + 2], (size_t)(argc - i - 2) * sizeof(*argv));
                argc -= 2;
                break;
            }
    }

    conf_init(&cf);
    if (conf_load(&cf, path, err, sizeof(err)) != 0 ||
        (static_dir && conf_set_static_dir(&cf, static_dir, err, sizeof(err)) != 0)) {
        fprintf(stderr, "rtgate: %s\n", err);
        conf_release(&cf);
        return 1;
    }
    if (check) {
        printf("%s: ok\n", path);
        conf_release(&cf);
        return 0;
    }
    if (token) {
        rc = cmd_token(&cf, argc - optind, argv + optind);
        conf_release(&cf);
        return rc;
    }
    log_set_level((enum log_level)cf.log_level);
    log_set_format((enum log_format)cf.log_format);
    log_set_repeat_limit(cf.log_repeat_limit_per_s);
    raise_nofile();
    if (gateway_start(&gw, &cf, err, sizeof(err)) != 0) {
        log_err("%s", err);
        conf_release(&cf);
        return 1;
    }
    gateway_run(&gw);
    gateway_release(&gw);
    conf_release(&cf);
    return rc;
}
