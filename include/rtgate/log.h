/* log.h: leveled logging to stderr, one line per event (journald adds timestamps). */
#ifndef RTGATE_LOG_H
#define RTGATE_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

/* Returns the level named @name ("err", "warn", "notice", "info", "debug"), or -1. */
int log_level_parse(const char *name);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
