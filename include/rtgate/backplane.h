/* backplane.h: how the hub reaches other gateway nodes. The hub calls these ops; an
 * implementation reports messages back with hub_ingest()/hub_append(). The embedded default,
 * "local", loops a publish straight back into the hub (single node, history in memory). */
#ifndef RTGATE_BACKPLANE_H
#define RTGATE_BACKPLANE_H

#include "rtgate/hub.h"

#include <stddef.h>

struct backplane;
struct presence;
struct metrics_buf;

/* A presence read: @status 0 and one count per user asked, in order; or -1 (@conns NULL). */
typedef void backplane_presence_fn(void *ud, int status, const unsigned *conns);

struct backplane_ops {
    const char *name;
    /* The first local subscriber joined / the last one left @topic. Once the subscription is
     * effective (every later publish will reach us), call hub_on_backplane_subscribed(). */
    void (*subscribe)(struct backplane *bp, const char *topic, size_t len);
    void (*unsubscribe)(struct backplane *bp, const char *topic, size_t len);
    /* Reads @topic's history (see hub_fetch()); calls @fn(ud, res) once, maybe at once.
     * Returns an opaque request that cancel() can withdraw while it is pending, or NULL when
     * @fn already ran. */
    void *(*history)(struct backplane *bp, const char *topic, size_t len,
                     const struct cursor_pos *from, size_t max, hub_history_fn *fn, void *ud);
    void (*cancel)(struct backplane *bp, void *req);
    /* Publish; call @cb(ud, 0, id) once the message has its id, or @cb(ud, -1, NULL). */
    void (*publish)(struct backplane *bp, const char *topic, size_t len, const char *from,
                    size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                    void *ud);
    /* An ephemeral message: deliver it live to @topic's subscribers on every node (through
     * hub_ingest() of a msg_new_ephemeral()), store nothing. @cb(ud, 0, NULL) once sent to at
     * least one node with a subscriber, @cb(ud, HUB_OFFLINE, NULL) when there was none,
     * @cb(ud, -1, NULL) when it could not be sent. */
    void (*send_ephemeral)(struct backplane *bp, const char *topic, size_t len, const char *from,
                           size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                           void *ud);
    /* 1 when publishing can succeed now (for /readyz). */
    int (*is_ready)(struct backplane *bp);
    /* Shutting down: stop reconnecting, close connections and handles so the loop can end.
     * Pending requests complete with failures (later, from the loop). */
    void (*close)(struct backplane *bp);
    void (*destroy)(struct backplane *bp);
    /* Presence; all three NULL when the backplane keeps none (local: the node's own counts
     * are the whole answer). This node now holds @conns connections of @user (0: none). */
    void (*presence_set)(struct backplane *bp, const char *user, size_t len, unsigned conns);
    /* The connections of each of @n users over all live nodes. Calls @fn once, maybe before
     * returning (then returns NULL); else returns a request presence_cancel() can withdraw. */
    void *(*presence_get)(struct backplane *bp, const char *const *users, const size_t *lens,
                          size_t n, backplane_presence_fn *fn, void *ud);
    void (*presence_cancel)(struct backplane *bp, void *req);
    /* Optional (NULL: one store, up or down as is_ready says). The number of shards, and in
     * *@up how many accept commands now. */
    size_t (*shards)(struct backplane *bp, size_t *up);
    /* Optional: appends the backplane's own metrics (per shard) to @b. */
    void (*metrics)(struct backplane *bp, struct metrics_buf *b);
};

struct backplane {
    const struct backplane_ops *ops;
    struct presence *presence; /* set by presence_new(): told of users going on/offline */
};

/* The local backplane over @h (borrowed). */
struct backplane *backplane_local_new(struct hub *h);

static inline void backplane_close(struct backplane *bp)
{
    if (bp)
        bp->ops->close(bp);
}

static inline void backplane_free(struct backplane *bp)
{
    if (bp)
        bp->ops->destroy(bp);
}

#endif
