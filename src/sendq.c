/* sendq.c: growable ring of message references with a hard cap. */
#include "rtgate/sendq.h"

#include "rtgate/util.h"

#include <string.h>

void sendq_init(struct sendq *q, size_t max)
{
    q->ring = NULL;
    q->cap = q->head = q->n = q->n_control = 0;
    q->max = max;
    q->bytes = q->max_bytes = 0;
    q->sse = 0;
}

void sendq_release(struct sendq *q)
{
    while (q->n)
        sendq_pop(q);
    xfree(q->ring);
    q->ring = NULL;
    q->cap = 0;
}

static void grow(struct sendq *q, size_t limit)
{
    size_t cap = q->cap ? q->cap * 2 : 4;
    struct msg **ring;

    if (cap > limit)
        cap = limit;
    if (cap <= q->n)
        cap = q->n + 1;
    ring = xmalloc(cap * sizeof(*ring));
    for (size_t i = 0; i < q->n; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    xfree(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

void sendq_limit_bytes(struct sendq *q, size_t max_bytes, int sse)
{
    q->max_bytes = max_bytes;
    q->sse = sse;
}

static size_t frame_len(const struct sendq *q, const struct msg *m)
{
    return q->sse ? m->sse_len : m->ws_len;
}

int sendq_push(struct sendq *q, struct msg *m)
{
    size_t len = frame_len(q, m);

    if (q->n - q->n_control >= q->max)
        return -1;
    /* one message always fits an empty queue, however big: the size limit is at the edge */
    if (q->max_bytes && q->bytes && q->bytes + len > q->max_bytes)
        return -1;
    q->bytes += len;
    if (q->n == q->cap)
        grow(q, q->max + q->n_control);
    q->ring[(q->head + q->n) % q->cap] = msg_ref(m);
    q->n++;
    return 0;
}

void sendq_push_control(struct sendq *q, struct msg *m)
{
    if (q->n == q->cap)
        grow(q, q->n + 4);
    q->ring[(q->head + q->n) % q->cap] = (struct msg *)((uintptr_t)msg_ref(m) | 1);
    q->n++;
    q->n_control++;
}

void sendq_pop(struct sendq *q)
{
    if (!q->n)
        return;
    if ((uintptr_t)q->ring[q->head] & 1)
        q->n_control--;
    else
        q->bytes -= frame_len(q, sendq_at(q, 0));
    msg_unref(sendq_at(q, 0));
    q->head = (q->head + 1) % q->cap;
    q->n--;
    if (q->n == 0 && q->cap > 16) {
        /* give back the memory a burst needed: idle connections stay small */
        xfree(q->ring);
        q->ring = NULL;
        q->cap = q->head = 0;
    }
}
