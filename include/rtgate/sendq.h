/* sendq.h: a connection's bounded FIFO of message references waiting to be written. It grows
 * on demand up to its limit, so idle connections cost a few pointers, and a consumer that
 * falls behind by more than the limit is refused (the caller then cuts it). */
#ifndef RTGATE_SENDQ_H
#define RTGATE_SENDQ_H

#include "rtgate/msg.h"

#include <stddef.h>

struct sendq {
    struct msg **ring;
    size_t cap, max, head, n;
};

void sendq_init(struct sendq *q, size_t max);
/* Unrefs what is still queued and frees the ring. */
void sendq_release(struct sendq *q);

/* Queues a new reference to @m. Returns 0, or -1 when @max messages are already queued. */
int sendq_push(struct sendq *q, struct msg *m);

/* The oldest queued message (borrowed), or NULL. */
static inline struct msg *sendq_peek(const struct sendq *q)
{
    return q->n ? q->ring[q->head] : NULL;
}

/* Drops the oldest queued message and its reference. */
void sendq_pop(struct sendq *q);

static inline size_t sendq_len(const struct sendq *q)
{
    return q->n;
}

#endif
