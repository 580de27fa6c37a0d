/* dlist.h: intrusive doubly linked list (ngx_queue_t, Linux list.h). An empty list points at
 * itself; a node that is not on any list should be dlist_init()ed so dlist_remove() is safe. */
#ifndef RTGATE_DLIST_H
#define RTGATE_DLIST_H

#include "rtgate/util.h"

struct dlist {
    struct dlist *prev, *next;
};

static inline void dlist_init(struct dlist *l)
{
    l->prev = l->next = l;
}

static inline int dlist_is_empty(const struct dlist *l)
{
    return l->next == l;
}

static inline void dlist_insert_tail(struct dlist *head, struct dlist *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Unlinks @n and re-initialises it, so removing twice is harmless. */
static inline void dlist_remove(struct dlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    dlist_init(n);
}

#define dlist_entry(ptr, type, member) container_of(ptr, type, member)

#define dlist_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* Safe against removal of @pos while iterating. */
#define dlist_for_each_safe(pos, tmp, head)                                                        \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
