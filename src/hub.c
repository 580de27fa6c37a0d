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

struct hub_topic {
    struct hub_topic *next; /* hash chain */
    uint64_t hash;
    struct dlist subs; /* struct hub_link.by_topic */
    size_t n_subs;
    struct history hist;
    struct msg_id last; /* newest id ever stored, survives eviction */
    size_t len;
    char name[]; /* NUL-terminated */
};

struct hub_link {
    struct dlist by_topic, by_sub;
    struct hub_topic *topic;
    struct sub *sub;
};

struct hub {
    struct hub_topic **buckets;
    size_t n_buckets, n_topics, n_subscriptions;
    size_t history_size;
    char epoch[MSG_EPOCH_LEN + 1];
    struct backplane *bp;
    uint64_t n_published, n_delivered, n_slow_kicks;
};

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

struct hub *hub_new(size_t history_size)
{
    struct hub *h = xcalloc(1, sizeof(*h));
    unsigned char rnd[MSG_EPOCH_LEN / 2];

    h->n_buckets = 64;
    h->buckets = xcalloc(h->n_buckets, sizeof(*h->buckets));
    h->history_size = history_size ? history_size : 1;
    if (util_random(rnd, sizeof(rnd)) != 0) {
        uint64_t t = util_now_ms();

        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(h->epoch + 2 * i, 3, "%02x", rnd[i]);
    return h;
}

static void topic_free(struct hub_topic *t)
{
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
            dlist_for_each_safe(pos, tmp, &t->subs)
            {
                struct hub_link *l = dlist_entry(pos, struct hub_link, by_topic);

                dlist_remove(&l->by_sub);
                l->sub->n_topics--;
                xfree(l);
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

static struct hub_topic *find_topic(const struct hub *h, const char *name, size_t len,
                                    uint64_t hash)
{
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
    uint64_t hash = hash_name(name, len);
    struct hub_topic *t = find_topic(h, name, len, hash);

    if (t)
        return t;
    if (h->n_topics >= h->n_buckets)
        grow_buckets(h);
    t = xcalloc(1, sizeof(*t) + len + 1);
    t->hash = hash;
    dlist_init(&t->subs);
    history_init(&t->hist, h->history_size);
    t->len = len;
    memcpy(t->name, name, len);
    t->next = h->buckets[hash & (h->n_buckets - 1)];
    h->buckets[hash & (h->n_buckets - 1)] = t;
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

int hub_subscribe(struct hub *h, struct sub *s, const char *topic, size_t len)
{
    struct hub_topic *t;
    struct hub_link *l;
    struct dlist *pos;

    if (!topic_is_valid(topic, len))
        return -1;
    t = get_topic(h, topic, len);
    dlist_for_each(pos, &s->links)
    {
        if (dlist_entry(pos, struct hub_link, by_sub)->topic == t)
            return 0;
    }
    l = xmalloc(sizeof(*l));
    l->topic = t;
    l->sub = s;
    dlist_insert_tail(&t->subs, &l->by_topic);
    dlist_insert_tail(&s->links, &l->by_sub);
    s->n_topics++;
    h->n_subscriptions++;
    if (t->n_subs++ == 0 && h->bp)
        h->bp->ops->subscribe(h->bp, t->name, t->len);
    return 1;
}

static void unlink_sub(struct hub *h, struct hub_link *l)
{
    struct hub_topic *t = l->topic;

    dlist_remove(&l->by_topic);
    dlist_remove(&l->by_sub);
    l->sub->n_topics--;
    h->n_subscriptions--;
    xfree(l);
    if (--t->n_subs == 0 && h->bp)
        h->bp->ops->unsubscribe(h->bp, t->name, t->len);
    maybe_drop_topic(h, t);
}

int hub_unsubscribe(struct hub *h, struct sub *s, const char *topic, size_t len)
{
    struct dlist *pos;

    dlist_for_each(pos, &s->links)
    {
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

    dlist_for_each_safe(pos, tmp, &s->links)
    {
        unlink_sub(h, dlist_entry(pos, struct hub_link, by_sub));
    }
}

void hub_position(struct hub *h, const char *topic, size_t len, struct cursor_pos *out)
{
    struct hub_topic *t = find_topic(h, topic, len, hash_name(topic, len));

    out->topic = topic;
    out->topic_len = len;
    memcpy(out->epoch, h->epoch, sizeof(out->epoch));
    out->id = t ? t->last : (struct msg_id){0, 0};
}

/* Where a replay from @from starts; returns HUB_REPLAY_OK or HUB_REPLAY_RESET. */
static int resume_point(const struct hub *h, const struct hub_topic *t,
                        const struct cursor_pos *from, size_t *first)
{
    *first = 0;
    if (!from)
        return HUB_REPLAY_OK;
    if (memcmp(from->epoch, h->epoch, MSG_EPOCH_LEN) != 0)
        return HUB_REPLAY_RESET;
    if (!t)
        /* Same epoch, topic forgotten: it never stored a message, so nothing was missed. */
        return HUB_REPLAY_OK;
    return history_since(&t->hist, from->id, first) ? HUB_REPLAY_OK : HUB_REPLAY_RESET;
}

int hub_replay(struct hub *h, const char *topic, size_t len, const struct cursor_pos *from,
               size_t max, hub_replay_fn *fn, void *ud, size_t *n_out)
{
    struct hub_topic *t = find_topic(h, topic, len, hash_name(topic, len));
    size_t first, n = 0;
    int rc = resume_point(h, t, from, &first);

    if (t) {
        for (size_t i = first; i < history_len(&t->hist) && n < max; i++, n++)
            if (fn(ud, history_at(&t->hist, i)) != 0)
                break;
    }
    if (n_out)
        *n_out = n;
    return rc;
}

int hub_has_after(struct hub *h, const char *topic, size_t len, const struct cursor_pos *from)
{
    struct hub_topic *t = find_topic(h, topic, len, hash_name(topic, len));
    size_t first;

    if (!t)
        return 0;
    if (resume_point(h, t, from, &first) == HUB_REPLAY_RESET)
        return history_len(&t->hist) > 0;
    return first < history_len(&t->hist);
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

void hub_append(struct hub *h, const char *topic, size_t len, const char *from, size_t from_len,
                const char *data, size_t data_len, struct msg_id *id)
{
    struct hub_topic *t = get_topic(h, topic, len);
    uint64_t now = util_now_ms();
    struct msg *m;

    *id = msg_id_next(t->last, now);
    m = msg_new(t->name, t->len, h->epoch, *id, now, from, from_len, data, data_len);
    hub_ingest(h, m);
    msg_unref(m);
}

void hub_ingest(struct hub *h, struct msg *m)
{
    struct hub_topic *t = find_topic(h, m->topic, m->topic_len, hash_name(m->topic, m->topic_len));
    struct dlist *pos;

    if (!t)
        t = get_topic(h, m->topic, m->topic_len);
    if (msg_id_cmp(m->id, t->last) <= 0 || msg_id_is_zero(m->id)) {
        /* at-most-once per id: a duplicate or stale copy (e.g. replay racing live) is dropped */
        log_debug("hub: dropped stale message %" PRIu64 "-%" PRIu64 " on '%s'", m->id.ms,
                  m->id.seq, t->name);
        maybe_drop_topic(h, t);
        return;
    }
    t->last = m->id;
    history_push(&t->hist, m);
    h->n_published++;
    /* deliver() never unsubscribes synchronously (kick is deferred), so the list is stable */
    dlist_for_each(pos, &t->subs)
    {
        struct sub *s = dlist_entry(pos, struct hub_link, by_topic)->sub;

        if (s->kicked)
            continue;
        if (s->ops->deliver(s, m) == SUB_SLOW) {
            s->kicked = 1;
            h->n_slow_kicks++;
            s->ops->kick(s, SUB_KICK_SLOW);
            continue;
        }
        h->n_delivered++;
    }
}

void hub_get_stats(const struct hub *h, struct hub_stats *st)
{
    st->n_topics = h->n_topics;
    st->n_subscriptions = h->n_subscriptions;
    st->n_published = h->n_published;
    st->n_delivered = h->n_delivered;
    st->n_slow_kicks = h->n_slow_kicks;
}
