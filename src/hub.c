/* hub.c: topics, their subscribers and their history. No sockets, no Redis: transports and
 * backplanes reach it through sub_ops and backplane_ops, so it unit-tests in milliseconds.
 *
 * Each subscription is one struct hub_link on two lists, the topic's and the subscriber's
 * (Redis pubsub.c keeps both directions too), so a closing connection costs only its own
 * subscriptions and a publish walks only the topic's subscribers. */
#include "rtgate/hub.h"

#include "rtgate/backplane.h"
#include "rtgate/log.h"
#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum bp_state { BP_NONE, BP_SUBSCRIBING, BP_SUBSCRIBED };

struct msgbuf {
    struct msg **v;
    size_t n, cap;
};

struct hub_topic {
    struct hub_topic *next; /* hash chain */
    struct hub *hub;
    uint64_t hash;
    struct dlist subs; /* struct hub_link.by_topic */
    size_t n_subs;
    struct history hist;
    struct msg_id last;            /* newest id delivered here, survives eviction */
    char epoch[MSG_EPOCH_LEN + 1]; /* of the newest message seen (for resync) */
    enum bp_state bp_state;
    unsigned resyncing : 1; /* re-reading the backplane's history after an outage */
    struct msgbuf pending;  /* live messages held while resyncing */
    struct hub_fetch *resync;
    size_t len;
    char name[]; /* NUL-terminated */
};

/* One subscription. While it replays history, live messages wait in held so that the
 * subscriber gets replayed ones first and each message once (by id, in last). */
struct hub_link {
    struct dlist by_topic, by_sub;
    struct hub_topic *topic;
    struct sub *sub;
    struct msg_id last;
    struct cursor_pos from; /* topic is NULL when live only */
    unsigned replaying : 1;
    unsigned reset_sent : 1; /* a paged replay tells reset() once */
    struct msgbuf held;
    struct hub_fetch *req;
};

struct hub_fetch {
    struct hub *h;
    struct backplane *bp; /* the one the request went to */
    hub_history_fn *fn;
    void *ud;
    void *req; /* the backplane's request */
    unsigned async : 1, done : 1;
};

struct hub {
    struct hub_topic **buckets;
    size_t n_buckets, n_topics, n_subscriptions;
    size_t history_size;
    char epoch[MSG_EPOCH_LEN + 1];
    struct backplane *bp;
    uint64_t n_published, n_delivered, n_slow_kicks, n_dropped;
};

static void start_replay(struct hub *h, struct hub_link *l);

/* Live messages a replaying subscriber may hold before it counts as slow. */
#define HUB_HOLD_MAX 65536

void sub_init(struct sub *s, const struct sub_ops *ops)
{
    s->ops = ops;
    dlist_init(&s->links);
    s->n_topics = 0;
    s->kicked = 0;
}

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int msgbuf_push(struct msgbuf *b, struct msg *m, size_t max)
{
    if (b->n == max)
        return -1;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
    }
    b->v[b->n++] = msg_ref(m);
    return 0;
}

static void msgbuf_release(struct msgbuf *b)
{
    for (size_t i = 0; i < b->n; i++)
        msg_unref(b->v[i]);
    xfree(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

struct hub *hub_new(size_t history_size)
{
    struct hub *h = xcalloc(1, sizeof(*h));
    unsigned char rnd[MSG_EPOCH_LEN / 2];

    h->n_buckets = 64;
    h->buckets = xcalloc(h->n_buckets, sizeof(*h->buckets));
    h->history_size = history_size;
    if (util_random(rnd, sizeof(rnd)) != 0) {
        uint64_t t = util_now_ms();

        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(h->epoch + 2 * i, 3, "%02x", rnd[i]);
    return h;
}

const char *hub_epoch(const struct hub *h)
{
    return h->epoch;
}

static void link_free(struct hub_link *l)
{
    hub_fetch_cancel(l->req);
    msgbuf_release(&l->held);
    xfree(l);
}

static void topic_free(struct hub_topic *t)
{
    hub_fetch_cancel(t->resync);
    msgbuf_release(&t->pending);
    history_release(&t->hist);
    xfree(t);
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_buckets; i++) {
        struct hub_topic *t = h->buckets[i], *next;

        for (; t; t = next) {
            struct dlist *pos, *tmp;

            next = t->next;
            dlist_for_each_safe (pos, tmp, &t->subs) {
                struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

                dlist_remove(&l->by_sub);
                l->sub->n_topics--;
                link_free(l);
            }
            topic_free(t);
        }
    }
    xfree(h->buckets);
    xfree(h);
}

void hub_set_backplane(struct hub *h, struct backplane *bp)
{
    h->bp = bp;
}

static struct hub_topic *find_topic(const struct hub *h, const char *name, size_t len)
{
    uint64_t hash = hash_name(name, len);
    struct hub_topic *t = h->buckets[hash & (h->n_buckets - 1)];

    for (; t; t = t->next)
        if (t->hash == hash && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

static void grow_buckets(struct hub *h)
{
    size_t n = h->n_buckets * 2;
    struct hub_topic **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < h->n_buckets; i++) {
        struct hub_topic *t = h->buckets[i], *next;

        for (; t; t = next) {
            next = t->next;
            t->next = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
        }
    }
    xfree(h->buckets);
    h->buckets = b;
    h->n_buckets = n;
}

static struct hub_topic *get_topic(struct hub *h, const char *name, size_t len)
{
    struct hub_topic *t = find_topic(h, name, len);

    if (t)
        return t;
    if (h->n_topics >= h->n_buckets)
        grow_buckets(h);
    t = xcalloc(1, sizeof(*t) + len + 1);
    t->hash = hash_name(name, len);
    t->hub = h;
    dlist_init(&t->subs);
    history_init(&t->hist, h->history_size ? h->history_size : 1);
    memcpy(t->epoch, h->epoch, sizeof(t->epoch));
    t->len = len;
    memcpy(t->name, name, len);
    t->next = h->buckets[t->hash & (h->n_buckets - 1)];
    h->buckets[t->hash & (h->n_buckets - 1)] = t;
    h->n_topics++;
    return t;
}

/* A topic nobody listens to and nobody can resume from costs nothing to forget: forget it. */
static void maybe_drop_topic(struct hub *h, struct hub_topic *t)
{
    struct hub_topic **pp;

    if (t->n_subs || history_len(&t->hist))
        return;
    for (pp = &h->buckets[t->hash & (h->n_buckets - 1)]; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    h->n_topics--;
    topic_free(t);
}

/* Hands @m to @l's subscriber if it has not had it. Returns -1 if the subscriber is slow. */
static int deliver(struct hub *h, struct hub_link *l, struct msg *m)
{
    struct sub *s = l->sub;

    if (s->kicked) {
        h->n_dropped++;
        return -1;
    }
    if (!m->is_ephemeral && msg_id_cmp(m->id, l->last) <= 0)
        return 0;
    if (s->ops->deliver(s, m) == SUB_SLOW) {
        s->kicked = 1;
        h->n_slow_kicks++;
        h->n_dropped++;
        s->ops->kick(s, SUB_KICK_SLOW);
        return -1;
    }
    if (!m->is_ephemeral)
        l->last = m->id; /* an ephemeral message is outside the sequence */
    h->n_delivered++;
    return 0;
}

/* The replay of a link's history arrived: reset if needed, replay, release what was held
 * meanwhile, go live. */
static void on_link_history(void *ud, const struct hub_history *res)
{
    struct hub_link *l = ud;
    struct hub_topic *t = l->topic;
    struct sub *s = l->sub;
    struct hub *h = t->hub;
    struct cursor_pos pos;
    int live_only = l->from.topic == NULL;

    l->req = NULL;
    if (res->status == 0 && !live_only && res->reset && !l->reset_sent) {
        s->ops->reset(s, t->name, t->len, res->epoch);
        l->last = (struct msg_id){0, 0};
        l->reset_sent = 1;
    }
    for (size_t i = 0; res->status == 0 && !live_only && i < res->n; i++)
        if (deliver(h, l, res->msgs[i]) != 0)
            break;
    if (res->status == 0 && !live_only && res->more && res->n && !s->kicked) {
        /* the backplane answered in pages: read on from the last one delivered */
        memcpy(l->from.epoch, res->epoch, sizeof(l->from.epoch));
        l->from.id = l->last;
        start_replay(h, l);
        return;
    }
    for (size_t i = 0; i < l->held.n; i++)
        if (deliver(h, l, l->held.v[i]) != 0)
            break;
    msgbuf_release(&l->held);
    l->replaying = 0;
    pos.topic = t->name;
    pos.topic_len = t->len;
    memcpy(pos.epoch, res->status == 0 ? res->epoch : t->epoch, sizeof(pos.epoch));
    pos.id = l->last;
    if (res->status == 0 && msg_id_cmp(res->last, pos.id) > 0)
        pos.id = res->last;
    /* live from pos: a resync after an outage re-reads from here */
    l->last = pos.id;
    if (res->status == 0 && msg_id_is_zero(t->last))
        memcpy(t->epoch, res->epoch, sizeof(t->epoch));
    if (!s->kicked)
        s->ops->ready(s, t->name, t->len, &pos, res->status);
}

static void on_fetched(void *ud, const struct hub_history *res)
{
    struct hub_fetch *f = ud;

    f->done = 1;
    f->fn(f->ud, res);
    if (f->async)
        xfree(f);
}

struct hub_fetch *hub_fetch(struct hub *h, const char *topic, size_t len,
                            const struct cursor_pos *from, size_t max, hub_history_fn *fn, void *ud)
{
    struct hub_fetch *f = xcalloc(1, sizeof(*f));

    f->h = h;
    f->bp = h->bp;
    f->fn = fn;
    f->ud = ud;
    if (h->bp) {
        f->req = h->bp->ops->history(h->bp, topic, len, from, max, on_fetched, f);
    } else {
        struct hub_history res;

        hub_local_history(h, topic, len, from, max, &res);
        on_fetched(f, &res);
        xfree(res.msgs);
    }
    if (f->done) {
        xfree(f);
        return NULL;
    }
    f->async = 1;
    return f;
}

void hub_fetch_cancel(struct hub_fetch *f)
{
    if (!f)
        return;
    /* the backplane forgets the request: on_fetched will not run for it */
    f->bp->ops->cancel(f->bp, f->req);
    xfree(f);
}

static void start_replay(struct hub *h, struct hub_link *l)
{
    struct hub_topic *t = l->topic;
    struct hub_fetch *f;

    /* Live only still asks for the position (max 0), so ready() can tell where it starts. */
    f = hub_fetch(h, t->name, t->len, l->from.topic ? &l->from : NULL, l->from.topic ? SIZE_MAX : 0,
                  on_link_history, l);
    if (f && l->replaying)
        l->req = f;
}

int hub_subscribe_from(struct hub *h, struct sub *s, const char *topic, size_t len,
                       const struct cursor_pos *from)
{
    struct hub_topic *t;
    struct hub_link *l;
    struct dlist *pos;

    if (!topic_is_valid(topic, len))
        return -1;
    t = get_topic(h, topic, len);
    dlist_for_each (pos, &s->links) {
        if (dlist_entry(pos, struct hub_link, by_sub)->topic == t)
            return 0;
    }
    l = xcalloc(1, sizeof(*l));
    l->topic = t;
    l->sub = s;
    l->replaying = 1;
    if (from) {
        l->from = *from;
        l->from.topic = t->name; /* ours: outlives the caller's copy */
        l->last = from->id;
    }
    dlist_insert_tail(&t->subs, &l->by_topic);
    dlist_insert_tail(&s->links, &l->by_sub);
    s->n_topics++;
    h->n_subscriptions++;
    if (t->n_subs++ == 0 && h->bp && t->bp_state == BP_NONE) {
        t->bp_state = BP_SUBSCRIBING;
        h->bp->ops->subscribe(h->bp, t->name, t->len); /* may confirm at once */
    } else if (!h->bp) {
        t->bp_state = BP_SUBSCRIBED;
    }
    if (t->bp_state == BP_SUBSCRIBED && l->replaying && !l->req)
        start_replay(h, l);
    return 1;
}

int hub_subscribe(struct hub *h, struct sub *s, const char *topic, size_t len)
{
    return hub_subscribe_from(h, s, topic, len, NULL);
}

static void unlink_sub(struct hub *h, struct hub_link *l)
{
    struct hub_topic *t = l->topic;

    dlist_remove(&l->by_topic);
    dlist_remove(&l->by_sub);
    l->sub->n_topics--;
    h->n_subscriptions--;
    link_free(l);
    if (--t->n_subs == 0) {
        if (h->bp && t->bp_state != BP_NONE)
            h->bp->ops->unsubscribe(h->bp, t->name, t->len);
        t->bp_state = BP_NONE;
        hub_fetch_cancel(t->resync);
        t->resync = NULL;
        t->resyncing = 0;
        msgbuf_release(&t->pending);
    }
    maybe_drop_topic(h, t);
}

int hub_unsubscribe(struct hub *h, struct sub *s, const char *topic, size_t len)
{
    struct dlist *pos;

    dlist_for_each (pos, &s->links) {
        struct hub_link *l = dlist_entry(pos, struct hub_link, by_sub);

        if (l->topic->len == len && memcmp(l->topic->name, topic, len) == 0) {
            unlink_sub(h, l);
            return 1;
        }
    }
    return 0;
}

void hub_unsubscribe_all(struct hub *h, struct sub *s)
{
    struct dlist *pos, *tmp;

    dlist_for_each_safe (pos, tmp, &s->links) {
        unlink_sub(h, dlist_entry(pos, struct hub_link, by_sub));
    }
}

static void ingest(struct hub *h, struct hub_topic *t, struct msg *m)
{
    struct dlist *pos, *tmp;

    if (msg_id_cmp(m->id, t->last) <= 0 || msg_id_is_zero(m->id))
        return; /* a copy we already have (replay racing live, or a resync overlap) */
    t->last = m->id;
    memcpy(t->epoch, m->epoch, sizeof(t->epoch));
    if (h->history_size)
        history_push(&t->hist, m);
    h->n_published++;
    /* deliver() never unsubscribes synchronously (kick is deferred), so the list is stable */
    dlist_for_each_safe (pos, tmp, &t->subs) {
        struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

        if (l->sub->kicked) {
            h->n_dropped++;
            continue;
        }
        if (l->replaying) {
            if (msgbuf_push(&l->held, m, HUB_HOLD_MAX) != 0) {
                l->sub->kicked = 1;
                h->n_slow_kicks++;
                h->n_dropped++;
                l->sub->ops->kick(l->sub, SUB_KICK_SLOW);
            }
            continue;
        }
        deliver(h, l, m);
    }
}

/* Live only: no history, no topic-level dedupe (it has no id). A replaying subscriber holds
 * it with the live messages; a topic resyncing after an outage delivers it at once, since it
 * will not be in what the resync reads. */
static void ingest_ephemeral(struct hub *h, struct hub_topic *t, struct msg *m)
{
    struct dlist *pos, *tmp;

    dlist_for_each_safe (pos, tmp, &t->subs) {
        struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

        if (l->sub->kicked) {
            h->n_dropped++;
        } else if (l->replaying) {
            if (msgbuf_push(&l->held, m, HUB_HOLD_MAX) != 0) {
                l->sub->kicked = 1;
                h->n_slow_kicks++;
                h->n_dropped++;
                l->sub->ops->kick(l->sub, SUB_KICK_SLOW);
            }
        } else {
            deliver(h, l, m);
        }
    }
}

void hub_ingest(struct hub *h, struct msg *m)
{
    struct hub_topic *t = find_topic(h, m->topic, m->topic_len);

    if (m->is_ephemeral) {
        if (t)
            ingest_ephemeral(h, t, m);
        return;
    }
    if (!t) {
        if (!h->history_size)
            return; /* nobody here listens and nothing is kept in memory */
        t = get_topic(h, m->topic, m->topic_len);
    }
    if (t->resyncing) {
        msgbuf_push(&t->pending, m, SIZE_MAX);
        return;
    }
    ingest(h, t, m);
    maybe_drop_topic(h, t);
}

/* After an outage: what the backplane stored while we were cut off, then what arrived
 * during the read, each once. A lost history resets every subscriber of the topic. */
static void on_resynced(void *ud, const struct hub_history *res)
{
    struct hub_topic *t = ud;
    struct hub *h = t->hub;
    struct dlist *pos;

    t->resync = NULL;
    t->resyncing = 0;
    if (res->status == 0 && res->reset) {
        dlist_for_each (pos, &t->subs) {
            struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

            if (!l->sub->kicked)
                l->sub->ops->reset(l->sub, t->name, t->len, res->epoch);
            l->last = (struct msg_id){0, 0};
        }
        t->last = (struct msg_id){0, 0};
    }
    for (size_t i = 0; res->status == 0 && i < res->n; i++)
        ingest(h, t, res->msgs[i]);
    if (res->status == 0 && res->more && res->n) {
        /* paged: read on from what we just delivered, still holding live messages */
        struct cursor_pos from = {.topic = t->name, .topic_len = t->len, .id = t->last};
        struct hub_fetch *f;

        memcpy(from.epoch, res->epoch, sizeof(from.epoch));
        t->resyncing = 1;
        f = hub_fetch(h, t->name, t->len, &from, SIZE_MAX, on_resynced, t);
        if (f && t->resyncing)
            t->resync = f;
        return;
    }
    for (size_t i = 0; i < t->pending.n; i++)
        ingest(h, t, t->pending.v[i]);
    msgbuf_release(&t->pending);
}

void hub_on_backplane_subscribed(struct hub *h, const char *topic, size_t len, int resync)
{
    struct hub_topic *t = find_topic(h, topic, len);
    struct dlist *pos, *tmp;
    struct msg_id from_id = {UINT64_MAX, UINT64_MAX};
    int live = 0;

    if (!t || !t->n_subs)
        return;
    t->bp_state = BP_SUBSCRIBED;
    /* re-read from the oldest position a live subscriber has (each then dedupes by id) */
    dlist_for_each (pos, &t->subs) {
        struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

        if (!l->replaying && !l->sub->kicked) {
            live = 1;
            if (msg_id_cmp(l->last, from_id) < 0)
                from_id = l->last;
        }
    }
    if (resync && live && !t->resyncing) {
        struct cursor_pos from = {.topic = t->name, .topic_len = t->len, .id = from_id};
        struct hub_fetch *f;

        memcpy(from.epoch, t->epoch, sizeof(from.epoch));
        if (msg_id_cmp(from_id, t->last) < 0)
            t->last = from_id; /* so the topic-level dedupe lets the re-read through */
        t->resyncing = 1;
        f = hub_fetch(h, t->name, t->len, &from, SIZE_MAX, on_resynced, t);
        if (f && t->resyncing)
            t->resync = f;
    }
    dlist_for_each_safe (pos, tmp, &t->subs) {
        struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

        if (l->replaying && !l->req)
            start_replay(h, l);
    }
}

void hub_for_each_topic(struct hub *h, void (*fn)(void *ud, const char *topic, size_t len),
                        void *ud)
{
    for (size_t i = 0; i < h->n_buckets; i++)
        for (struct hub_topic *t = h->buckets[i]; t; t = t->next)
            if (t->n_subs) {
                t->bp_state = BP_SUBSCRIBING;
                fn(ud, t->name, t->len);
            }
}

void hub_local_history(struct hub *h, const char *topic, size_t len, const struct cursor_pos *from,
                       size_t max, struct hub_history *res)
{
    struct hub_topic *t = find_topic(h, topic, len);
    size_t first = 0, n;

    memset(res, 0, sizeof(*res));
    memcpy(res->epoch, h->epoch, sizeof(res->epoch));
    res->last = t ? t->last : (struct msg_id){0, 0};
    if (from && memcmp(from->epoch, h->epoch, MSG_EPOCH_LEN) != 0)
        res->reset = HUB_REPLAY_RESET;
    else if (from && t && !history_since(&t->hist, from->id, &first))
        res->reset = HUB_REPLAY_RESET;
    if (res->reset)
        first = 0;
    if (!t || !max)
        return;
    n = history_len(&t->hist) - first;
    if (n > max) {
        n = max;
        res->more = 1;
    }
    res->msgs = xmalloc((n ? n : 1) * sizeof(*res->msgs));
    for (size_t i = 0; i < n; i++)
        res->msgs[i] = history_at(&t->hist, first + i);
    res->n = n;
}

int hub_publish(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, hub_publish_fn *cb, void *ud)
{
    if (!topic_is_valid(topic, len) || (from_len && !topic_is_valid_id(from, from_len)))
        return -1;
    if (!h->bp) {
        struct msg_id id;

        hub_append(h, topic, len, from, from_len, data, data_len, &id);
        if (cb)
            cb(ud, 0, &id);
        return 0;
    }
    h->bp->ops->publish(h->bp, topic, len, from, from_len, data, data_len, cb, ud);
    return 0;
}

int hub_has_subscribers(const struct hub *h, const char *topic, size_t len)
{
    const struct hub_topic *t = find_topic(h, topic, len);
    const struct dlist *pos;

    if (!t)
        return 0;
    dlist_for_each (pos, &t->subs) {
        if (!dlist_entry(pos, struct hub_link, by_topic)->sub->kicked)
            return 1;
    }
    return 0;
}

int hub_send_ephemeral(struct hub *h, const char *topic, size_t len, const char *from,
                       size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                       void *ud)
{
    struct msg *m;

    if (!topic_is_valid(topic, len) || (from_len && !topic_is_valid_id(from, from_len)))
        return -1;
    if (h->bp) {
        h->bp->ops->send_ephemeral(h->bp, topic, len, from, from_len, data, data_len, cb, ud);
        return 0;
    }
    if (!hub_has_subscribers(h, topic, len)) {
        cb(ud, HUB_OFFLINE, NULL);
        return 0;
    }
    m = msg_new_ephemeral(topic, len, util_now_ms(), from, from_len, data, data_len);
    hub_ingest(h, m);
    msg_unref(m);
    cb(ud, 0, NULL);
    return 0;
}

void hub_append(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, struct msg_id *id)
{
    struct hub_topic *t = get_topic(h, topic, len);
    uint64_t now = util_now_ms();
    struct msg *m;

    *id = msg_id_next(t->last, now);
    m = msg_new(t->name, t->len, h->epoch, *id, now, from, from_len, data, data_len);
    ingest(h, t, m);
    msg_unref(m);
    maybe_drop_topic(h, t);
}

void hub_get_stats(const struct hub *h, struct hub_stats *st)
{
    st->n_topics = h->n_topics;
    st->n_subscriptions = h->n_subscriptions;
    st->n_published = h->n_published;
    st->n_delivered = h->n_delivered;
    st->n_slow_kicks = h->n_slow_kicks;
    st->n_dropped = h->n_dropped;
}
