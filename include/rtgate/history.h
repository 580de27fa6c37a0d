/* history.h: the bounded per-topic ring of recent messages that resumes reconnecting clients.
 * It remembers the id of the newest message it ever evicted, so a resume position older than
 * what is retained is detected exactly (no guessing from timestamps). */
#ifndef RTGATE_HISTORY_H
#define RTGATE_HISTORY_H

#include "rtgate/msg.h"

#include <stddef.h>

struct history {
    struct msg **ring;
    size_t cap, head, n;   /* oldest at ring[head] */
    struct msg_id evicted; /* newest id pushed out of the ring; 0-0 if none */
};

void history_init(struct history *h, size_t cap);
void history_release(struct history *h);

/* Appends @m (takes a new reference), evicting the oldest when full. */
void history_push(struct history *h, struct msg *m);

static inline size_t history_len(const struct history *h)
{
    return h->n;
}

/* The @i-th retained message, oldest first (borrowed). */
struct msg *history_at(const struct history *h, size_t i);

/* Finds where to resume after @after. Sets *@first to the index of the first retained message
 * with id > @after. Returns 1 if nothing after @after was lost (complete), 0 if some message
 * newer than @after was evicted (a gap: the client missed messages). */
int history_since(const struct history *h, struct msg_id after, size_t *first);

#endif
