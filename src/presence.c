/* presence.c: this node's connection count per user, and lookups over all nodes.
 *
 * The counts live in a small chained hash table keyed by user id. Every change is handed to
 * the backplane as the new absolute count (not +1/-1), so a lost or repeated write is mended
 * by the next one and a resync is just "write every count again". Which user went online or
 * offline over all nodes only the backplane can tell (it sees the other nodes); the local
 * backplane has no other nodes, so here a local 0 <-> 1 change is that event. */
#include "rtgate/presence.h"

#include "rtgate/backplane.h"
#include "rtgate/hub.h"
#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <stdio.h>
#include <string.h>

struct presence_user {
    struct presence_user *next;
    uint64_t hash;
    unsigned conns;
    size_t len;
    char name[];
};

struct presence {
    struct hub *hub;
    struct backplane *bp;
    int events;
    struct presence_user **buckets;
    size_t n_buckets, n_users;
};

struct presence_req {
    struct presence *p;
    presence_lookup_fn *fn;
    presence_online_fn *one; /* presence_is_online(): the single-user answer */
    void *ud;
    void *bp_req;
    const char *const *users;
    const size_t *lens;
    size_t n;
    const char *user1; /* presence_is_online() keeps its one user here */
    size_t len1;
    unsigned done : 1, async : 1;
};

static uint64_t hash_user(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct presence_user **find_slot(const struct presence *p, const char *user, size_t len,
                                        uint64_t hash)
{
    struct presence_user **pp = &p->buckets[hash & (p->n_buckets - 1)];

    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && (*pp)->len == len && memcmp((*pp)->name, user, len) == 0)
            break;
    return pp;
}

static void grow(struct presence *p)
{
    size_t n = p->n_buckets * 2;
    struct presence_user **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < p->n_buckets; i++) {
        struct presence_user *u = p->buckets[i], *next;

        for (; u; u = next) {
            next = u->next;
            u->next = b[u->hash & (n - 1)];
            b[u->hash & (n - 1)] = u;
        }
    }
    xfree(p->buckets);
    p->buckets = b;
    p->n_buckets = n;
}

struct presence *presence_new(struct hub *h, struct backplane *bp, int events)
{
    struct presence *p = xcalloc(1, sizeof(*p));

    p->hub = h;
    p->bp = bp;
    p->events = events;
    p->n_buckets = 64;
    p->buckets = xcalloc(p->n_buckets, sizeof(*p->buckets));
    if (bp)
        bp->presence = p;
    return p;
}

void presence_free(struct presence *p)
{
    if (!p)
        return;
    if (p->bp)
        p->bp->presence = NULL;
    for (size_t i = 0; i < p->n_buckets; i++) {
        struct presence_user *u = p->buckets[i], *next;

        for (; u; u = next) {
            next = u->next;
            xfree(u);
        }
    }
    xfree(p->buckets);
    xfree(p);
}

static int has_store(const struct presence *p)
{
    return p->bp && p->bp->ops->presence_set;
}

/* Sets @user's count to its old value + @delta; tells the backplane. */
static void change(struct presence *p, const char *user, size_t len, int delta)
{
    uint64_t hash = hash_user(user, len);
    struct presence_user **pp = find_slot(p, user, len, hash), *u = *pp;
    unsigned conns;

    if (!u) {
        if (delta < 0)
            return; /* a leave without its join: nothing was counted */
        if (p->n_users >= p->n_buckets) {
            grow(p);
            pp = find_slot(p, user, len, hash);
        }
        u = xmalloc(sizeof(*u) + len + 1);
        u->next = NULL;
        u->hash = hash;
        u->conns = 0;
        u->len = len;
        memcpy(u->name, user, len);
        u->name[len] = '\0';
        *pp = u;
        p->n_users++;
    }
    u->conns = delta > 0 ? u->conns + 1 : u->conns - 1;
    conns = u->conns;
    if (conns == 0) {
        *pp = u->next;
        p->n_users--;
    }
    if (has_store(p))
        p->bp->ops->presence_set(p->bp, user, len, conns);
    else if ((delta > 0 && conns == 1) || conns == 0)
        presence_changed(p, user, len, conns == 1); /* one node: its counts are the truth */
    if (conns == 0)
        xfree(u);
}

void presence_join(struct presence *p, const char *user, size_t len)
{
    if (p && topic_is_valid_id(user, len))
        change(p, user, len, 1);
}

void presence_leave(struct presence *p, const char *user, size_t len)
{
    if (p && topic_is_valid_id(user, len))
        change(p, user, len, -1);
}

unsigned presence_local(const struct presence *p, const char *user, size_t len)
{
    struct presence_user *u = *find_slot(p, user, len, hash_user(user, len));

    return u ? u->conns : 0;
}

size_t presence_local_users(const struct presence *p)
{
    return p->n_users;
}

void presence_for_each(struct presence *p,
                       void (*fn)(void *ud, const char *user, size_t len, unsigned conns), void *ud)
{
    for (size_t i = 0; i < p->n_buckets; i++)
        for (struct presence_user *u = p->buckets[i]; u; u = u->next)
            fn(ud, u->name, u->len, u->conns);
}

static void on_event_published(void *ud, int status, const struct msg_id *id)
{
    /* NEEDSWORK: a refused event (backplane down) is lost; the counts themselves are not */
}

void presence_changed(struct presence *p, const char *user, size_t len, int online)
{
    char topic[TOPIC_MAX_LEN + 1], data[TOPIC_ID_MAX + 48];
    int tn, dn;

    if (!p || !p->events || len > TOPIC_ID_MAX)
        return;
    tn = snprintf(topic, sizeof(topic), "presence:%.*s", (int)len, user);
    dn = snprintf(data, sizeof(data), "{\"event\":\"%s\",\"user\":\"%.*s\"}",
                  online ? "join" : "leave", (int)len, user); /* ids need no JSON escaping */
    hub_publish(p->hub, topic, (size_t)tn, "", 0, data, (size_t)dn, on_event_published, NULL);
}

/* ---- lookups ---- */

static void answer(struct presence_req *r, int status, const unsigned *conns)
{
    struct presence_result res[PRESENCE_MAX_USERS];

    if (r->one) {
        r->one(r->ud, status, status == 0 ? conns[0] : 0);
        return;
    }
    for (size_t i = 0; status == 0 && i < r->n; i++) {
        res[i].user = r->users[i];
        res[i].len = r->lens[i];
        res[i].conns = conns[i];
    }
    r->fn(r->ud, status, status == 0 ? res : NULL, status == 0 ? r->n : 0);
}

static void on_counts(void *ud, int status, const unsigned *conns)
{
    struct presence_req *r = ud;

    r->done = 1;
    answer(r, status, conns);
    if (r->async)
        xfree(r);
}

static struct presence_req *start(struct presence_req *r)
{
    struct presence *p = r->p;
    unsigned conns[PRESENCE_MAX_USERS];

    if (!has_store(p)) {
        for (size_t i = 0; i < r->n; i++)
            conns[i] = presence_local(p, r->users[i], r->lens[i]);
        answer(r, 0, conns);
        xfree(r);
        return NULL;
    }
    r->bp_req = p->bp->ops->presence_get(p->bp, r->users, r->lens, r->n, on_counts, r);
    if (r->done) {
        xfree(r);
        return NULL;
    }
    r->async = 1;
    return r;
}

struct presence_req *presence_lookup(struct presence *p, const char *const *users,
                                     const size_t *lens, size_t n, presence_lookup_fn *fn, void *ud)
{
    struct presence_req *r;

    if (n == 0 || n > PRESENCE_MAX_USERS) {
        fn(ud, -1, NULL, 0);
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    r->p = p;
    r->fn = fn;
    r->ud = ud;
    r->users = users;
    r->lens = lens;
    r->n = n;
    return start(r);
}

struct presence_req *presence_is_online(struct presence *p, const char *user, size_t len,
                                        presence_online_fn *fn, void *ud)
{
    struct presence_req *r = xcalloc(1, sizeof(*r));

    r->p = p;
    r->one = fn;
    r->ud = ud;
    r->user1 = user;
    r->len1 = len;
    r->users = &r->user1;
    r->lens = &r->len1;
    r->n = 1;
    return start(r);
}

void presence_cancel(struct presence_req *r)
{
    if (!r)
        return;
    /* the backplane will not call on_counts for it any more */
    r->p->bp->ops->presence_cancel(r->p->bp, r->bp_req);
    xfree(r);
}
