/* backplane_local.c: the embedded single-node backplane. There are no other nodes, so
 * subscriptions need no forwarding and a publish is appended to the hub at once. */
#include "rtgate/backplane.h"

#include "rtgate/util.h"

struct backplane_local {
    struct backplane bp;
    struct hub *hub;
};

static void local_subscribe(struct backplane *bp, const char *topic, size_t len)
{
    struct backplane_local *l = container_of(bp, struct backplane_local, bp);

    hub_on_backplane_subscribed(l->hub, topic, len, 0); /* nothing to wait for */
}

static void local_unsubscribe(struct backplane *bp, const char *topic, size_t len)
{
}

static void local_publish(struct backplane *bp, const char *topic, size_t len, const char *from,
                          size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                          void *ud)
{
    struct backplane_local *l = container_of(bp, struct backplane_local, bp);
    struct msg_id id;

    hub_append(l->hub, topic, len, from, from_len, data, data_len, &id);
    if (cb)
        cb(ud, 0, &id);
}

static void local_send_ephemeral(struct backplane *bp, const char *topic, size_t len,
                                 const char *from, size_t from_len, const char *data,
                                 size_t data_len, hub_publish_fn *cb, void *ud)
{
    struct backplane_local *l = container_of(bp, struct backplane_local, bp);
    struct msg *m;

    if (!hub_has_subscribers(l->hub, topic, len)) {
        cb(ud, HUB_OFFLINE, NULL);
        return;
    }
    m = msg_new_ephemeral(topic, len, util_now_ms(), from, from_len, data, data_len);
    hub_ingest(l->hub, m);
    msg_unref(m);
    cb(ud, 0, NULL);
}

static void *local_history(struct backplane *bp, const char *topic, size_t len,
                           const struct cursor_pos *from, size_t max, hub_history_fn *fn, void *ud)
{
    struct backplane_local *l = container_of(bp, struct backplane_local, bp);
    struct hub_history res;

    hub_local_history(l->hub, topic, len, from, max, &res);
    fn(ud, &res);
    xfree(res.msgs);
    return NULL;
}

static void local_cancel(struct backplane *bp, void *req)
{
}

static int local_is_ready(struct backplane *bp)
{
    return 1;
}

static void local_close(struct backplane *bp)
{
}

static void local_free(struct backplane *bp)
{
    xfree(container_of(bp, struct backplane_local, bp));
}

static const struct backplane_ops local_ops = {
    .name = "local",
    .subscribe = local_subscribe,
    .unsubscribe = local_unsubscribe,
    .publish = local_publish,
    .send_ephemeral = local_send_ephemeral,
    .history = local_history,
    .cancel = local_cancel,
    .is_ready = local_is_ready,
    .close = local_close,
    .destroy = local_free,
};

struct backplane *backplane_local_new(struct hub *h)
{
    struct backplane_local *l = xcalloc(1, sizeof(*l));

    l->bp.ops = &local_ops;
    l->hub = h;
    return &l->bp;
}
