/* log.c: the one log sink; libwebsockets' own lines are routed here by http_server.c. */
#include "rtgate/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level cur_level = LOG_INFO;
static const char *const names[] = {"err", "warn", "notice", "info", "debug"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(enum log_level lvl)
{
    cur_level = lvl;
}

enum log_level log_get_level(void)
{
    return cur_level;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    if (lvl > cur_level)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* "<3>" style prefixes let journald keep the level (sd-daemon(3)). */
    fprintf(stderr, "<%d>rtgate %s: %s\n", (int)lvl + 3, names[lvl], line);
}
