/* hub.h: the registry of topics -> local subscribers, each topic with its history ring.
 *
 * The hub knows nothing of HTTP or Redis. Transports embed a struct sub in their connection and
 * fill in a struct sub_ops; the backplane (backplane.h) tells the hub about messages with
 * hub_ingest() and is told about first/last subscribers. Everything runs on one loop thread. */
#ifndef RTGATE_HUB_H
#define RTGATE_HUB_H

#include "rtgate/cursor.h"
#include "rtgate/dlist.h"
#include "rtgate/history.h"
#include "rtgate/msg.h"

#include <stddef.h>
#include <stdint.h>

struct hub;
struct backplane;
struct sub;

#define SUB_SLOW 1 /* deliver(): the subscriber's queue is full */

enum sub_kick { SUB_KICK_SLOW };

struct sub_ops {
    /* Queue a new reference to @m for writing. Returns 0, or SUB_SLOW when the queue is full.
     * Must not unsubscribe or free @s synchronously. */
    int (*deliver)(struct sub *s, struct msg *m);
    /* The hub gave up on @s (why); close it soon. Must not free @s synchronously. */
    void (*kick)(struct sub *s, enum sub_kick why);
};

struct sub {
    const struct sub_ops *ops;
    struct dlist links; /* struct hub_link.by_sub, one per subscribed topic */
    size_t n_topics;
    unsigned kicked : 1;
};

void sub_init(struct sub *s, const struct sub_ops *ops);

/* Creates a hub whose topics keep @history_size messages each. The hub's history epoch is made
 * from the CSPRNG, so cursors from a previous process are recognised as lost history. */
struct hub *hub_new(size_t history_size);
void hub_free(struct hub *h);

/* Borrows @bp (may be NULL: then nothing is forwarded). */
void hub_set_backplane(struct hub *h, struct backplane *bp);

/* Adds @s to @topic. Returns 1 if newly subscribed, 0 if it already was, -1 for an invalid
 * name. The first subscriber of a topic subscribes the backplane. Borrows @s: call
 * hub_unsubscribe_all() before freeing it. Safe inside a delivery. */
int hub_subscribe(struct hub *h, struct sub *s, const char *topic, size_t len);
/* Returns 1 if @s was subscribed to @topic and no longer is, 0 if it was not. */
int hub_unsubscribe(struct hub *h, struct sub *s, const char *topic, size_t len);
void hub_unsubscribe_all(struct hub *h, struct sub *s);

/* The position "now" of @topic (its epoch and last id), for a cursor that skips history. */
void hub_position(struct hub *h, const char *topic, size_t len, struct cursor_pos *out);

#define HUB_REPLAY_OK 0    /* every message after the position was retained */
#define HUB_REPLAY_RESET 1 /* history was lost since the position (evicted, or other epoch) */

/* Called for each replayed message (borrowed); return 0 to go on, -1 to stop. */
typedef int hub_replay_fn(void *ud, struct msg *m);

/* Replays @topic's retained messages after @from (NULL: from the oldest retained) to @fn, at
 * most @max of them, oldest first; *@n_out counts them. Returns HUB_REPLAY_OK, or
 * HUB_REPLAY_RESET when @from is older than what is retained or of another epoch (then every
 * retained message is replayed, so the client at least gets what exists). */
int hub_replay(struct hub *h, const char *topic, size_t len, const struct cursor_pos *from,
               size_t max, hub_replay_fn *fn, void *ud, size_t *n_out);

/* Returns 1 if @topic has retained messages after @from (NULL: any), 0 otherwise. */
int hub_has_after(struct hub *h, const char *topic, size_t len, const struct cursor_pos *from);

/* Called with the outcome of a publish: 0 and the id, or -1 (backplane unavailable). */
typedef void hub_publish_fn(void *ud, int status, const struct msg_id *id);

/* Publishes through the backplane. @data is compact JSON. @cb may run before this returns
 * (local backplane) or later (Redis). Returns 0 if accepted, -1 for an invalid topic. */
int hub_publish(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, hub_publish_fn *cb, void *ud);

/* For a backplane that assigns ids itself (local): appends a new message to @topic with the
 * next id, stores it in history and delivers it. Returns the new message's id in *@id. */
void hub_append(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, struct msg_id *id);

/* Stores @m (borrowed) in its topic's history and delivers it to every local subscriber. */
void hub_ingest(struct hub *h, struct msg *m);

struct hub_stats {
    size_t n_topics, n_subscriptions;
    uint64_t n_published, n_delivered, n_slow_kicks;
};
void hub_get_stats(const struct hub *h, struct hub_stats *st);

#endif
