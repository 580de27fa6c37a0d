/* history.c: a fixed-capacity ring of message references, oldest first. */
#include "rtgate/history.h"

#include "rtgate/util.h"

void history_init(struct history *h, size_t cap)
{
    h->ring = NULL; /* allocated on first push: most topics of a big node never get one */
    h->cap = cap;
    h->head = h->n = 0;
    h->evicted.ms = h->evicted.seq = 0;
}

void history_release(struct history *h)
{
    for (size_t i = 0; i < h->n; i++)
        msg_unref(h->ring[(h->head + i) % h->cap]);
    xfree(h->ring);
    h->ring = NULL;
    h->n = h->head = 0;
}

void history_push(struct history *h, struct msg *m)
{
    if (!h->ring)
        h->ring = xcalloc(h->cap, sizeof(*h->ring));
    if (h->n == h->cap) {
        struct msg *old = h->ring[h->head];

        h->evicted = old->id;
        msg_unref(old);
        h->ring[h->head] = msg_ref(m);
        h->head = (h->head + 1) % h->cap;
        return;
    }
    h->ring[(h->head + h->n) % h->cap] = msg_ref(m);
    h->n++;
}

struct msg *history_at(const struct history *h, size_t i)
{
    return h->ring[(h->head + i) % h->cap];
}

int history_since(const struct history *h, struct msg_id after, size_t *first)
{
    size_t lo = 0, hi = h->n;

    /* ids in the ring are increasing: binary search for the first id > after */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (msg_id_cmp(history_at(h, mid)->id, after) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    return msg_id_cmp(h->evicted, after) <= 0;
}
