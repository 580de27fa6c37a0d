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
    /* History of @topic was lost since the position @s subscribed from (or, after a backplane
     * outage, since what it last received): the messages that follow are what is retained. */
    void (*reset)(struct sub *s, const char *topic, size_t len, const char *epoch);
    /* The subscription to @topic is live: every message after @pos will be delivered. Called
     * once per hub_subscribe_from() that returned 1, after the replay. @status is -1 when the
     * history could not be read (backplane down): the subscription is then live only. */
    void (*ready)(struct sub *s, const char *topic, size_t len, const struct cursor_pos *pos,
                  int status);
};

struct sub {
    const struct sub_ops *ops;
    struct dlist links; /* struct hub_link.by_sub, one per subscribed topic */
    size_t n_topics;
    unsigned kicked : 1;
};

void sub_init(struct sub *s, const struct sub_ops *ops);

/* Creates a hub whose topics keep @history_size messages each in memory (0: none, when the
 * backplane keeps history). The hub's epoch is made from the CSPRNG, so cursors from a
 * previous process are recognised as lost history. */
struct hub *hub_new(size_t history_size);
void hub_free(struct hub *h);

/* Borrows @bp (may be NULL: then the hub is its own local backplane). */
void hub_set_backplane(struct hub *h, struct backplane *bp);

/* The epoch of the hub's in-memory history (MSG_EPOCH_LEN hex chars + NUL). */
const char *hub_epoch(const struct hub *h);

/* Adds @s to @topic and, once the topic is subscribed at the backplane, replays what @topic
 * stored after @from (NULL: nothing, live only), then goes live. @s sees each message once, in
 * id order: replayed first, then live, with no gap and no duplicate between the two; then
 * s->ops->ready(). Returns 1 if newly subscribed, 0 if it already was (nothing replayed, no
 * ready), -1 for an invalid name. Borrows @s: call hub_unsubscribe_all() before freeing it.
 * Callbacks may run before this returns (local backplane). */
int hub_subscribe_from(struct hub *h, struct sub *s, const char *topic, size_t len,
                       const struct cursor_pos *from);
/* Live only: hub_subscribe_from(h, s, topic, len, NULL). */
int hub_subscribe(struct hub *h, struct sub *s, const char *topic, size_t len);
/* Returns 1 if @s was subscribed to @topic and no longer is, 0 if it was not. */
int hub_unsubscribe(struct hub *h, struct sub *s, const char *topic, size_t len);
void hub_unsubscribe_all(struct hub *h, struct sub *s);

#define HUB_REPLAY_OK    0 /* every message after the position was retained */
#define HUB_REPLAY_RESET 1 /* history was lost since the position (evicted, or other epoch) */

/* What a history read found. The messages are borrowed for the callback's duration. */
struct hub_history {
    int status;                    /* 0, or -1: the backplane could not be read */
    int reset;                     /* HUB_REPLAY_RESET: messages after the position are gone */
    int more;                      /* stopped at max: more messages follow */
    char epoch[MSG_EPOCH_LEN + 1]; /* the topic's history epoch now */
    struct msg_id last;            /* newest id the topic stored */
    struct msg **msgs;             /* oldest first; on reset, the oldest retained onwards */
    size_t n;
};

typedef void hub_history_fn(void *ud, const struct hub_history *res);
struct hub_fetch;

/* Reads up to @max messages of @topic after @from (NULL: from the oldest retained; @max 0:
 * only the position). Calls @fn once, possibly before returning (then returns NULL). Otherwise
 * returns a handle: hub_fetch_cancel() it if @ud goes away first. */
struct hub_fetch *hub_fetch(struct hub *h, const char *topic, size_t len,
                            const struct cursor_pos *from, size_t max, hub_history_fn *fn,
                            void *ud);
void hub_fetch_cancel(struct hub_fetch *f);

/* Called with the outcome of a publish: 0 and the id, or -1 (backplane unavailable). */
typedef void hub_publish_fn(void *ud, int status, const struct msg_id *id);

/* Publishes through the backplane. @data is compact JSON; @from a user id or empty. @cb may
 * run before this returns (local backplane) or later; it is always called once (unless the
 * returned value is -1). Returns 0 if accepted, -1 for an invalid topic or sender. */
int hub_publish(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, hub_publish_fn *cb, void *ud);

#define HUB_OFFLINE 1 /* hub_send_ephemeral(): nobody is subscribed to the topic */

/* 1 if @topic has a local subscriber that is not being cut: for a user inbox, the user is
 * online on this node. The one place the local "is the target online" answer comes from. */
int hub_has_subscribers(const struct hub *h, const char *topic, size_t len);

/* Sends an ephemeral message (msg_new_ephemeral()) through the backplane: delivered to the
 * topic's current subscribers on every node, never stored, never replayed. @cb(ud, status,
 * NULL) is called once, maybe before this returns: 0 delivered, HUB_OFFLINE when nobody
 * anywhere subscribes to @topic (nothing was sent), -1 backplane unavailable. Returns 0, or -1
 * for an invalid topic or sender (then @cb is not called). */
int hub_send_ephemeral(struct hub *h, const char *topic, size_t len, const char *from,
                       size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                       void *ud);

/* For a backplane that assigns ids itself (local): appends a new message to @topic with the
 * next id, stores it in history and delivers it. Returns the new message's id in *@id. */
void hub_append(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, struct msg_id *id);

/* Delivers @m (borrowed) to every local subscriber of its topic that has not had it, and
 * keeps it in the topic's in-memory history (if any). Stale copies are dropped. An ephemeral
 * @m goes to every current subscriber at once and is kept nowhere. */
void hub_ingest(struct hub *h, struct msg *m);

/* Backplane -> hub: @topic's subscription at the backplane is effective (@resync: again,
 * after a reconnect, so the hub re-reads what it may have missed while cut off). */
void hub_on_backplane_subscribed(struct hub *h, const char *topic, size_t len, int resync);

/* Backplane -> hub: calls @fn for every topic with local subscribers (to resubscribe). */
void hub_for_each_topic(struct hub *h, void (*fn)(void *ud, const char *topic, size_t len),
                        void *ud);

/* The in-memory history read used by the local backplane (synchronous). */
void hub_local_history(struct hub *h, const char *topic, size_t len, const struct cursor_pos *from,
                       size_t max, struct hub_history *res);

struct hub_stats {
    size_t n_topics, n_subscriptions;
    uint64_t n_published;  /* messages that reached this hub (each once) */
    uint64_t n_delivered;  /* messages queued to subscribers */
    uint64_t n_slow_kicks; /* subscribers cut because their queue was full */
    uint64_t n_dropped;    /* deliveries not made: the subscriber was full or already cut */
};
void hub_get_stats(const struct hub *h, struct hub_stats *st);

#endif
