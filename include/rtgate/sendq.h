/* sendq.h: a connection's bounded FIFO of message references waiting to be written. It grows
 * on demand up to its limit, so idle connections cost a few pointers, and a consumer that
 * falls behind by more than the limit is refused (the caller then cuts it). */
#ifndef RTGATE_SENDQ_H
#define RTGATE_SENDQ_H

#include "rtgate/msg.h"

#include <stddef.h>
#include <stdint.h>

struct sendq {
    struct msg **ring; /* bit 0 of an entry marks a control frame (not counted against max) */
    size_t cap, max, head, n, n_control;
    size_t bytes, max_bytes; /* frame bytes queued (control frames excluded); 0: no limit */
    int sse;                 /* which frame counts: sse_len (1) or ws_len (0) */
};

void sendq_init(struct sendq *q, size_t max);
/* Also refuses a push once @max_bytes of frames are queued (0: no byte limit), counting each
 * message's SSE frame (@sse) or WebSocket frame. */
void sendq_limit_bytes(struct sendq *q, size_t max_bytes, int sse);

/* Unrefs what is still queued and frees the ring. */
void sendq_release(struct sendq *q);

/* Queues a new reference to @m. Returns 0, or -1 when @max messages (or max_bytes) are already
 * queued. */
int sendq_push(struct sendq *q, struct msg *m);

/* Queues @m even past the limit: for the few control frames (retry hint, reset events) that
 * must not crowd out the messages themselves. */
void sendq_push_control(struct sendq *q, struct msg *m);

/* The @i-th queued message, oldest first (borrowed). */
static inline struct msg *sendq_at(const struct sendq *q, size_t i)
{
    return (struct msg *)((uintptr_t)q->ring[(q->head + i) % q->cap] & ~(uintptr_t)1);
}

/* The oldest queued message (borrowed), or NULL. */
static inline struct msg *sendq_peek(const struct sendq *q)
{
    return q->n ? sendq_at(q, 0) : NULL;
}

/* Drops the oldest queued message and its reference. */
void sendq_pop(struct sendq *q);

static inline size_t sendq_len(const struct sendq *q)
{
    return q->n;
}

#endif
