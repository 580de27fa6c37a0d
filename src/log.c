/* log.c: the one log sink; libwebsockets' own lines are routed here by http_server.c. Knows
 * the two line formats and the repeat limit; knows nothing of what is being logged.
 *
 * The repeat limit is keyed by the format string's address: every call site of one message
 * shares it whatever the arguments, which is what "the same message" means to an operator
 * reading a flood, and costs a pointer hash instead of hashing the formatted text. */
#include "rtgate/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOG_LINE_MAX 1024 /* a formatted message; longer ones are cut */
#define RL_SLOTS     128  /* message templates tracked at once: a power of two */
#define RL_PROBE     8    /* slots looked at per template */
#define PATH_MAX_LOG 256  /* bytes of a request path written to an access line */

struct rl_slot {
    const char *fmt; /* NULL: free */
    uint64_t second; /* the second counted in n */
    unsigned n, suppressed;
    enum log_level lvl;
};

static enum log_level cur_level = LOG_INFO;
static enum log_format cur_format = LOG_FORMAT_PLAIN;
static unsigned repeat_limit = 10;
static struct rl_slot slots[RL_SLOTS];
static uint64_t last_sweep, n_suppressed;
static unsigned n_pending; /* slots holding suppressed lines not yet summarised */

static const char *const names[] = {"err", "warn", "notice", "info", "debug"};
static const char *const formats[] = {"plain", "json"};

static int find_name(const char *const *list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return i;
    return -1;
}

int log_level_parse(const char *name)
{
    return find_name(names, (int)(sizeof(names) / sizeof(names[0])), name);
}

void log_set_level(enum log_level lvl)
{
    cur_level = lvl;
}

enum log_level log_get_level(void)
{
    return cur_level;
}

int log_format_parse(const char *name)
{
    return find_name(formats, (int)(sizeof(formats) / sizeof(formats[0])), name);
}

void log_set_format(enum log_format f)
{
    cur_format = f;
}

enum log_format log_get_format(void)
{
    return cur_format;
}

void log_set_repeat_limit(unsigned n)
{
    repeat_limit = n;
}

uint64_t log_suppressed_total(void)
{
    return n_suppressed;
}

/* ---- one line out ---- */

struct line {
    char *p;
    size_t len, cap; /* cap leaves room for the closing bytes, written unchecked */
};

static void put(struct line *o, const char *s, size_t n)
{
    if (n > o->cap - o->len)
        n = o->cap - o->len;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct line *o, const char *s)
{
    put(o, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at @s (at most @n bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    /* no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629) */
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* A JSON string: escapes what JSON requires, and invalid UTF-8 (lws lines, request paths)
 * becomes U+FFFD, so every line parses. Stops short rather than cut an escape in half. */
static void put_json_str(struct line *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    char esc[8];

    put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        const char *out = esc;
        size_t out_len;

        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)s[i];
            out_len = 2;
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            out_len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
        } else if (s[i] < 0x80) {
            out = (const char *)s + i;
            out_len = 1;
        } else if ((k = utf8_len(s + i, n - i)) > 0) {
            out = (const char *)s + i;
            out_len = k;
        } else {
            k = 1;
            out = "\\ufffd";
            out_len = 6;
        }
        if (out_len + 1 > o->cap - o->len) /* + 1: the closing quote */
            break;
        put(o, out, out_len);
        i += k;
    }
    put(o, "\"", 1);
}

static void put_ts(struct line *o)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    put(o, buf, n);
}

/* An access line's path: up to a '?', at most PATH_MAX_LOG bytes, %-escaping what is not
 * printable ASCII (and quotes), so a path can neither break a line nor fake a field. */
static size_t clean_path(char *out, const char *path, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len && path[i] != '?' && o + 3 <= PATH_MAX_LOG; i++) {
        unsigned char c = (unsigned char)path[i];

        if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

static void put_access(struct line *o, const struct log_access *a, int json)
{
    char path[PATH_MAX_LOG], num[64];
    size_t plen = clean_path(path, a->path, a->path_len);

    snprintf(num, sizeof(num), "%d", a->status);
    if (json) {
        puts_(o, ",\"method\":");
        put_json_str(o, a->method, strlen(a->method));
        puts_(o, ",\"path\":");
        put_json_str(o, path, plen);
        puts_(o, ",\"status\":");
        puts_(o, num);
        snprintf(num, sizeof(num),
                 ",\"ms\":%llu.%03llu,\"transport\":", (unsigned long long)(a->duration_us / 1000),
                 (unsigned long long)(a->duration_us % 1000));
        puts_(o, num);
        put_json_str(o, a->transport, strlen(a->transport));
        return;
    }
    puts_(o, ": method=");
    puts_(o, a->method);
    puts_(o, " path=");
    put(o, path, plen);
    puts_(o, " status=");
    puts_(o, num);
    snprintf(num, sizeof(num),
             " ms=%llu.%03llu transport=", (unsigned long long)(a->duration_us / 1000),
             (unsigned long long)(a->duration_us % 1000));
    puts_(o, num);
    puts_(o, a->transport);
}

/* Builds the whole line, then writes it with one call, so lines never interleave. */
static void emit(enum log_level lvl, const char *msg, size_t len, const struct log_access *a)
{
    char buf[LOG_LINE_MAX * 2 + 1024];
    struct line o = {buf, 0, sizeof(buf) - 4};
    char prefix[40];

    if (cur_format == LOG_FORMAT_JSON) {
        puts_(&o, "{\"ts\":\"");
        put_ts(&o);
        puts_(&o, "\",\"level\":\"");
        puts_(&o, names[lvl]);
        puts_(&o, "\",\"msg\":");
        put_json_str(&o, msg, len);
        if (a)
            put_access(&o, a, 1);
        buf[o.len++] = '}';
    } else {
        snprintf(prefix, sizeof(prefix), "<%d>rtgate %s: ", (int)lvl + 3, names[lvl]);
        puts_(&o, prefix);
        put(&o, msg, len);
        if (a)
            put_access(&o, a, 0);
    }
    buf[o.len++] = '\n';
    fwrite(buf, 1, o.len, stderr);
}

/* ---- the repeat limit ---- */

static uint64_t now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec;
}

static void summarize(struct rl_slot *s)
{
    char msg[LOG_LINE_MAX];
    int n = snprintf(msg, sizeof(msg), "(suppressed %u similar lines: \"%.100s\")", s->suppressed,
                     s->fmt);

    s->suppressed = 0;
    n_pending--;
    if (n > 0)
        emit(s->lvl, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, NULL);
}

/* Once per second at most: the summaries of the seconds that are over. */
static void sweep(uint64_t now)
{
    if (now == last_sweep)
        return;
    last_sweep = now;
    for (size_t i = 0; n_pending && i < RL_SLOTS; i++)
        if (slots[i].suppressed && slots[i].second < now)
            summarize(&slots[i]);
}

/* 1 if a line of @fmt may be written now, 0 if it is one too many this second. */
static int admit(const char *fmt, enum log_level lvl, uint64_t now)
{
    uint64_t h = ((uint64_t)(uintptr_t)fmt >> 3) * 0x9e3779b97f4a7c15ULL;
    struct rl_slot *s, *victim = NULL, *oldest = NULL;

    for (size_t k = 0; k < RL_PROBE; k++) {
        s = &slots[((h >> 57) + k) & (RL_SLOTS - 1)];
        if (s->fmt == fmt)
            goto found;
        if (!victim && (!s->fmt || (s->second < now && !s->suppressed)))
            victim = s;
        if (!oldest || s->second < oldest->second)
            oldest = s;
    }
    if (!victim) {
        /* RL_PROBE templates busy this second around this hash: forget the oldest */
        victim = oldest;
        if (victim->suppressed)
            summarize(victim);
    }
    *victim = (struct rl_slot){fmt, now, 1, 0, lvl};
    return 1;

found:
    if (s->second != now) {
        if (s->suppressed)
            summarize(s);
        s->second = now;
        s->n = 0;
    }
    if (++s->n <= repeat_limit)
        return 1;
    if (s->suppressed++ == 0)
        n_pending++;
    s->lvl = lvl;
    n_suppressed++;
    return 0;
}

void log_tick(void)
{
    if (n_pending)
        sweep(now_s());
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    uint64_t now;
    int n;

    if (lvl > cur_level)
        return;
    now = now_s();
    sweep(now);
    if (repeat_limit && !admit(fmt, lvl, now))
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    emit(lvl, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, NULL);
}

void log_access(const struct log_access *a)
{
    emit(LOG_INFO, "access", 6, a);
}
