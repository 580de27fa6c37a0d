/* util.c: the allocation wrappers every module uses, and two clocks. */
#include "rtgate/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#ifdef UNIT_TESTING
/* cmocka's allocators catch leaks and double frees in unit tests. */
extern void *_test_malloc(const size_t size, const char *file, const int line);
extern void *_test_calloc(const size_t n, const size_t size, const char *file, const int line);
extern void *_test_realloc(void *p, const size_t size, const char *file, const int line);
extern void _test_free(void *const p, const char *file, const int line);
#define malloc(n)     _test_malloc(n, __FILE__, __LINE__)
#define calloc(n, s)  _test_calloc(n, s, __FILE__, __LINE__)
#define realloc(p, n) _test_realloc(p, n, __FILE__, __LINE__)
#define free(p)       _test_free(p, __FILE__, __LINE__)
#endif

static void oom(size_t n)
{
    fprintf(stderr, "rtgate: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        oom(n);
    return q;
}

char *xstrndup(const char *s, size_t len)
{
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void xfree(void *p)
{
    if (p)
        free(p);
}

uint64_t util_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int util_random(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
