/* sendq.c: growable ring of message references with a hard cap. */
#include "rtgate/sendq.h"

#include "rtgate/util.h"

#include <string.h>

void sendq_init(struct sendq *q, size_t max)
{
    q->ring = NULL;
    q->cap = q->head = q->n = 0;
    q->max = max;
}

void sendq_release(struct sendq *q)
{
    while (q->n)
        sendq_pop(q);
    xfree(q->ring);
    q->ring = NULL;
    q->cap = 0;
}

static void grow(struct sendq *q)
{
    size_t cap = q->cap ? q->cap * 2 : 4;
    struct msg **ring;

    if (cap > q->max)
        cap = q->max;
    ring = xmalloc(cap * sizeof(*ring));
    for (size_t i = 0; i < q->n; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    xfree(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

int sendq_push(struct sendq *q, struct msg *m)
{
    if (q->n >= q->max)
        return -1;
    if (q->n == q->cap)
        grow(q);
    q->ring[(q->head + q->n) % q->cap] = msg_ref(m);
    q->n++;
    return 0;
}

void sendq_pop(struct sendq *q)
{
    if (!q->n)
        return;
    msg_unref(q->ring[q->head]);
    q->head = (q->head + 1) % q->cap;
    q->n--;
    if (q->n == 0 && q->cap > 16) {
        /* give back the memory a burst needed: idle connections stay small */
        xfree(q->ring);
        q->ring = NULL;
        q->cap = q->head = 0;
    }
}
