/* ring.c: consistent hashing with virtual nodes. A sorted array of points and a binary
 * search: a lookup costs log2(n * vnodes) comparisons and no allocation. */
#include "rtgate/ring.h"

#include "rtgate/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ring_point {
    uint64_t at;
    size_t shard;
};

struct ring {
    struct ring_point *points;
    size_t n_points;
};

uint64_t ring_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    /* FNV alone leaves similar names ("a#1", "a#2") close together on the circle */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static int cmp_point(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;

    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    /* a collision (about never) is broken by shard index, so every node agrees */
    return x->shard < y->shard ? -1 : x->shard > y->shard;
}

struct ring *ring_new(const char *const *names, size_t n, unsigned vnodes)
{
    struct ring *r;
    char buf[512];

    if (n == 0 || vnodes == 0)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    r->n_points = n * vnodes;
    r->points = xmalloc(r->n_points * sizeof(*r->points));
    for (size_t i = 0; i < n; i++) {
        for (unsigned v = 0; v < vnodes; v++) {
            int k = snprintf(buf, sizeof(buf), "%s#%u", names[i], v);

            r->points[i * vnodes + v].at =
                ring_hash(buf, (size_t)k < sizeof(buf) ? (size_t)k : sizeof(buf) - 1);
            r->points[i * vnodes + v].shard = i;
        }
    }
    qsort(r->points, r->n_points, sizeof(*r->points), cmp_point);
    return r;
}

void ring_free(struct ring *r)
{
    if (!r)
        return;
    xfree(r->points);
    xfree(r);
}

size_t ring_lookup(const struct ring *r, const char *key, size_t len)
{
    uint64_t h = ring_hash(key, len);
    size_t lo = 0, hi = r->n_points;

    while (lo < hi) { /* first point with at >= h */
        size_t mid = lo + (hi - lo) / 2;

        if (r->points[mid].at < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->points[lo == r->n_points ? 0 : lo].shard;
}
