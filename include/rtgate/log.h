/* log.h: leveled logging to stderr, one line per event (journald adds timestamps), as plain
 * text or one JSON object per line. Repeats of one message are rate-limited. */
#ifndef RTGATE_LOG_H
#define RTGATE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

/* "plain": "<N>rtgate <level>: <msg>" (the <N> syslog prefix lets journald keep the level).
 * "json": {"ts":"<RFC 3339, ms, UTC>","level":"<level>","msg":"<msg>"[, access fields]}. */
enum log_format { LOG_FORMAT_PLAIN, LOG_FORMAT_JSON };

/* Returns the level named @name ("err", "warn", "notice", "info", "debug"), or -1. */
int log_level_parse(const char *name);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Returns the format named @name ("plain", "json"), or -1. */
int log_format_parse(const char *name);
void log_set_format(enum log_format f);
enum log_format log_get_format(void);

/* At most @n lines per second from one message template (one format string: the key is its
 * address); past that they are counted, and once that second is over one line says
 * "(suppressed K similar lines ...)". 0: no limit. Default 10. */
void log_set_repeat_limit(unsigned n);

/* Writes the summaries of suppressed lines whose second is over. Cheap (one clock read when
 * there is nothing to do): call it from a timer, so a summary is not held back until the next
 * line is logged. */
void log_tick(void);

/* Lines suppressed by the rate limit since start (for /metrics). */
uint64_t log_suppressed_total(void);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One finished HTTP request or WebSocket session. Strings are borrowed; @path is what the
 * client asked for WITHOUT the query string (tokens travel there): anything from a '?' on is
 * cut anyway, and bytes outside printable ASCII are %-escaped. */
struct log_access {
    const char *method;
    const char *path;
    size_t path_len;
    int status;
    uint64_t duration_us;
    const char *transport; /* "http", "sse", "ws", "poll", "longpoll" */
};

/* Writes one access line (level info, message "access"). Access lines are turned on by the
 * caller (log.access), so neither the level nor the rate limit applies to them. */
void log_access(const struct log_access *a);

#define log_err(...)    log_write(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_write(LOG_WARN, __VA_ARGS__)
#define log_notice(...) log_write(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_write(LOG_INFO, __VA_ARGS__)
#ifdef NDEBUG
#define log_debug(...) ((void)0)
#else
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#endif

#endif
