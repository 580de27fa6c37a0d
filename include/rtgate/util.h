/* util.h: allocation that never returns NULL, container_of, clocks. */
#ifndef RTGATE_UTIL_H
#define RTGATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))

/* Allocate or abort: limits are enforced before allocating, so running out of memory is a bug
 * we do not try to limp through (Redis zmalloc). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t len);
void xfree(void *p);

/* Wall clock in milliseconds since the epoch (message timestamps, ids, token expiry). */
uint64_t util_now_ms(void);

/* Fills @buf with @n bytes from the OS CSPRNG. Returns 0, or -1. */
int util_random(void *buf, size_t n);

#endif
