/* test_hub.c: topics, subscribers, fan-out, history replay and the backplane seam, through a
 * fake struct sub_ops that records deliveries and a fake struct backplane that records calls. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/hub.h"

#include "rtgate/backplane.h"
#include "rtgate/cursor.h"
#include "rtgate/topic.h"

#include <stdio.h>
#include <string.h>

#define MAX_GOT 1100
#define T1      "room:1"
#define T2      "room:2"
#define T3      "chat:x"
#define L(s)    s, strlen(s)

/* ---- fake subscriber ---- */

struct fake_sub {
    struct sub sub;
    struct hub *hub;
    struct msg *got[MAX_GOT]; /* a reference per delivered message */
    size_t n_delivered;
    size_t n_calls;      /* deliver() calls, including refused ones */
    size_t slow_at_call; /* 1-based deliver() call that answers SUB_SLOW; 0: never */
    size_t n_kicks;
    enum sub_kick why;
    const char *join_on_deliver; /* subscribe to this topic from inside deliver() */
    int join_rc;
};

static int fake_deliver(struct sub *s, struct msg *m)
{
    struct fake_sub *f = container_of(s, struct fake_sub, sub);

    f->n_calls++;
    if (f->join_on_deliver) {
        f->join_rc = hub_subscribe(f->hub, s, L(f->join_on_deliver));
        f->join_on_deliver = NULL;
    }
    if (f->slow_at_call && f->n_calls >= f->slow_at_call)
        return SUB_SLOW;
    assert_true(f->n_delivered < MAX_GOT);
    f->got[f->n_delivered++] = msg_ref(m);
    return 0;
}

static void fake_kick(struct sub *s, enum sub_kick why)
{
    struct fake_sub *f = container_of(s, struct fake_sub, sub);

    f->n_kicks++;
    f->why = why;
}

static const struct sub_ops fake_ops = {.deliver = fake_deliver, .kick = fake_kick};

static struct fake_sub *fake_sub_new(struct hub *h)
{
    struct fake_sub *f = test_calloc(1, sizeof(*f));

    sub_init(&f->sub, &fake_ops);
    f->hub = h;
    return f;
}

static void fake_sub_free(struct fake_sub *f)
{
    if (f->hub)
        hub_unsubscribe_all(f->hub, &f->sub);
    assert_int_equal(f->sub.n_topics, 0);
    for (size_t i = 0; i < f->n_delivered; i++)
        msg_unref(f->got[i]);
    test_free(f);
}

/* ---- publish results ---- */

struct pub_result {
    int n_calls, status;
    struct msg_id id;
    int id_was_null;
};

static void on_published(void *ud, int status, const struct msg_id *id)
{
    struct pub_result *r = ud;

    r->n_calls++;
    r->status = status;
    r->id_was_null = id == NULL;
    if (id)
        r->id = *id;
}

/* Publishes @data on @topic with no callback; asserts it was accepted. */
static void publish(struct hub *h, const char *topic, const char *data)
{
    assert_int_equal(hub_publish(h, L(topic), "", 0, L(data), NULL, NULL), 0);
}

/* The "data" member of @m's envelope is exactly @data. */
static void assert_data(const struct msg *m, const char *data)
{
    size_t len = strlen(data);

    assert_non_null(m->env);
    assert_true(m->env_len > len + 9);
    assert_memory_equal(m->env + m->env_len - len - 9, ",\"data\":", 8);
    assert_memory_equal(m->env + m->env_len - len - 1, data, len);
    assert_int_equal(m->env[m->env_len - 1], '}');
}

static void assert_topic(const struct msg *m, const char *topic)
{
    assert_int_equal(m->topic_len, strlen(topic));
    assert_string_equal(m->topic, topic);
}

/* ---- replay recording ---- */

struct replay_rec {
    struct msg *m[64];
    size_t n;
    size_t stop_at; /* 1-based call that returns -1; 0: never */
};

static int on_replay(void *ud, struct msg *m)
{
    struct replay_rec *r = ud;

    assert_true(r->n < 64);
    r->m[r->n++] = m; /* borrowed: the hub keeps it in history */
    return r->stop_at && r->n == r->stop_at ? -1 : 0;
}

/* The position just after @m, as a client would hand it back: decoded from m->cursor. */
static void pos_of(const struct msg *m, struct cursor *c)
{
    assert_int_equal(cursor_parse(c, m->cursor, m->cursor_len), 0);
    assert_int_equal(c->n, 1);
}

static struct hub_stats stats(struct hub *h)
{
    struct hub_stats st;

    memset(&st, 0xff, sizeof(st));
    hub_get_stats(h, &st);
    return st;
}

/* ---- fake backplane ---- */

enum fake_bp_mode { BP_APPEND, BP_FAIL, BP_HOLD };

struct fake_bp {
    struct backplane bp;
    struct hub *hub;
    enum fake_bp_mode mode;
    char subs[8][TOPIC_MAX_LEN + 1], unsubs[8][TOPIC_MAX_LEN + 1];
    size_t n_subs, n_unsubs, n_publish, n_free;
    char pub_topic[TOPIC_MAX_LEN + 1], pub_from[64], pub_data[256];
    hub_publish_fn *pub_cb;
    void *pub_ud;
};

static void fbp_subscribe(struct backplane *bp, const char *topic, size_t len)
{
    struct fake_bp *f = container_of(bp, struct fake_bp, bp);

    assert_true(f->n_subs < 8 && len <= TOPIC_MAX_LEN);
    snprintf(f->subs[f->n_subs++], TOPIC_MAX_LEN + 1, "%.*s", (int)len, topic);
}

static void fbp_unsubscribe(struct backplane *bp, const char *topic, size_t len)
{
    struct fake_bp *f = container_of(bp, struct fake_bp, bp);

    assert_true(f->n_unsubs < 8 && len <= TOPIC_MAX_LEN);
    snprintf(f->unsubs[f->n_unsubs++], TOPIC_MAX_LEN + 1, "%.*s", (int)len, topic);
}

static void fbp_publish(struct backplane *bp, const char *topic, size_t len, const char *from,
                        size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                        void *ud)
{
    struct fake_bp *f = container_of(bp, struct fake_bp, bp);
    struct msg_id id;

    f->n_publish++;
    snprintf(f->pub_topic, sizeof(f->pub_topic), "%.*s", (int)len, topic);
    snprintf(f->pub_from, sizeof(f->pub_from), "%.*s", (int)from_len, from);
    snprintf(f->pub_data, sizeof(f->pub_data), "%.*s", (int)data_len, data);
    f->pub_cb = cb;
    f->pub_ud = ud;
    if (f->mode == BP_APPEND) {
        hub_append(f->hub, topic, len, from, from_len, data, data_len, &id);
        if (cb)
            cb(ud, 0, &id);
    } else if (f->mode == BP_FAIL) {
        if (cb)
            cb(ud, -1, NULL);
    }
}

static int fbp_is_ready(struct backplane *bp)
{
    return 1;
}

static void fbp_free(struct backplane *bp)
{
    container_of(bp, struct fake_bp, bp)->n_free++;
}

static const struct backplane_ops fake_bp_ops = {
    .name = "fake",
    .subscribe = fbp_subscribe,
    .unsubscribe = fbp_unsubscribe,
    .publish = fbp_publish,
    .is_ready = fbp_is_ready,
    .destroy = fbp_free,
};

static void fake_bp_init(struct fake_bp *f, struct hub *h, enum fake_bp_mode mode)
{
    memset(f, 0, sizeof(*f));
    f->bp.ops = &fake_bp_ops;
    f->hub = h;
    f->mode = mode;
}

/* ---- subscribe / publish / unsubscribe ---- */

static void test_subscribe_return_values(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 0); /* already subscribed */
    assert_int_equal(hub_subscribe(h, &a->sub, L(T2)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L("Room:1")), -1);
    assert_int_equal(hub_subscribe(h, &a->sub, L("room")), -1);
    assert_int_equal(hub_subscribe(h, &a->sub, L("room:")), -1);
    assert_int_equal(hub_subscribe(h, &a->sub, "", 0), -1);
    assert_int_equal(hub_subscribe(h, &a->sub, "room:1x", 6), 0); /* only @len bytes: room:1 */
    assert_int_equal(a->sub.n_topics, 2);
    assert_int_equal(stats(h).n_topics, 2);
    assert_int_equal(stats(h).n_subscriptions, 2);
    fake_sub_free(a);
    assert_int_equal(stats(h).n_topics, 0);
    assert_int_equal(stats(h).n_subscriptions, 0);
    hub_free(h);
}

static void test_publish_reaches_each_subscriber_once(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h), *c = fake_sub_new(h);
    struct pub_result r = {0};

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 0);
    assert_int_equal(hub_subscribe(h, &c->sub, L(T2)), 1);
    assert_int_equal(hub_publish(h, L(T1), L("alice"), L("{\"n\":1}"), on_published, &r), 0);

    assert_int_equal(a->n_delivered, 1);
    assert_int_equal(b->n_delivered, 1);
    assert_int_equal(c->n_delivered, 0);
    assert_ptr_equal(a->got[0], b->got[0]); /* one message, shared */
    assert_topic(a->got[0], T1);
    assert_data(a->got[0], "{\"n\":1}");
    assert_non_null(strstr((const char *)a->got[0]->ws, "\"from\":\"alice\""));
    /* references: a's, b's and the history's */
    assert_int_equal(a->got[0]->refs, 3);

    /* the callback ran once, with the delivered id */
    assert_int_equal(r.n_calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.id_was_null, 0);
    assert_int_equal(msg_id_cmp(r.id, a->got[0]->id), 0);

    fake_sub_free(a);
    fake_sub_free(b);
    fake_sub_free(c);
    hub_free(h);
}

static void test_publish_invalid_topic(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);
    struct pub_result r = {0};

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_publish(h, L("Room:1"), "", 0, L("1"), on_published, &r), -1);
    assert_int_equal(hub_publish(h, L("room:1:2"), "", 0, L("1"), on_published, &r), -1);
    assert_int_equal(hub_publish(h, "", 0, "", 0, L("1"), on_published, &r), -1);
    assert_int_equal(r.n_calls, 0);
    assert_int_equal(a->n_calls, 0);
    assert_int_equal(stats(h).n_published, 0);
    assert_int_equal(stats(h).n_topics, 1);
    fake_sub_free(a);
    hub_free(h);
}

static void test_delivery_in_id_order(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);
    char data[16];

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T2)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    for (int i = 0; i < 10; i++) {
        snprintf(data, sizeof(data), "%d", i);
        publish(h, i % 2 ? T2 : T1, data);
    }
    assert_int_equal(a->n_delivered, 10);
    assert_int_equal(b->n_delivered, 5);
    for (size_t i = 0; i < 10; i++) {
        snprintf(data, sizeof(data), "%zu", i);
        assert_topic(a->got[i], i % 2 ? T2 : T1);
        assert_data(a->got[i], data);
        if (i >= 2)
            assert_int_equal(msg_id_cmp(a->got[i - 2]->id, a->got[i]->id), -1);
    }
    for (size_t i = 0; i < 5; i++) {
        assert_ptr_equal(b->got[i], a->got[2 * i]);
        if (i)
            assert_int_equal(msg_id_cmp(b->got[i - 1]->id, b->got[i]->id), -1);
    }
    fake_sub_free(a);
    fake_sub_free(b);
    hub_free(h);
}

static void test_unsubscribe_stops_delivery(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    publish(h, T1, "1");
    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T1)), 0);
    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T2)), 0); /* never subscribed */
    assert_int_equal(hub_unsubscribe(h, &b->sub, L("room:")), 0);
    assert_int_equal(a->sub.n_topics, 0);
    publish(h, T1, "2");
    assert_int_equal(a->n_delivered, 1);
    assert_int_equal(a->n_calls, 1);
    assert_int_equal(b->n_delivered, 2);
    assert_data(b->got[1], "2");
    assert_int_equal(stats(h).n_subscriptions, 1);
    /* subscribing again works and only new messages are delivered */
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    publish(h, T1, "3");
    assert_int_equal(a->n_delivered, 2);
    assert_data(a->got[1], "3");
    fake_sub_free(a);
    fake_sub_free(b);
    hub_free(h);
}

static void test_unsubscribe_all(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T2)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T3)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T2)), 1);
    assert_int_equal(stats(h).n_subscriptions, 4);
    assert_int_equal(stats(h).n_topics, 3);
    hub_unsubscribe_all(h, &a->sub);
    assert_int_equal(a->sub.n_topics, 0);
    assert_int_equal(stats(h).n_subscriptions, 1);
    assert_int_equal(stats(h).n_topics, 1); /* only T2, which b still holds */
    publish(h, T1, "1");
    publish(h, T2, "2");
    publish(h, T3, "3");
    assert_int_equal(a->n_calls, 0);
    assert_int_equal(b->n_delivered, 1);
    assert_data(b->got[0], "2");
    hub_unsubscribe_all(h, &a->sub); /* nothing left: harmless */
    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T1)), 0);
    fake_sub_free(a);
    fake_sub_free(b);
    hub_free(h);
}

static void test_ids_strictly_increase(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);
    struct pub_result r = {0};
    struct msg_id prev = {0, 0};

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(hub_publish(h, L(T1), "", 0, L("0"), on_published, &r), 0);
        assert_int_equal(r.n_calls, i + 1);
        assert_int_equal(r.status, 0);
        assert_int_equal(msg_id_cmp(prev, r.id), -1);
        prev = r.id;
    }
    assert_int_equal(a->n_delivered, 1000);
    for (size_t i = 1; i < 1000; i++)
        assert_int_equal(msg_id_cmp(a->got[i - 1]->id, a->got[i]->id), -1);
    assert_int_equal(msg_id_cmp(a->got[999]->id, r.id), 0);
    assert_int_equal(stats(h).n_published, 1000);
    assert_int_equal(stats(h).n_delivered, 1000);
    fake_sub_free(a);
    hub_free(h);
}

static void test_subscribe_inside_delivery(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    a->join_on_deliver = T2;
    publish(h, T1, "1");
    assert_int_equal(a->join_rc, 1);
    assert_int_equal(a->sub.n_topics, 2);
    publish(h, T2, "2");
    assert_int_equal(a->n_delivered, 2);
    assert_topic(a->got[1], T2);
    fake_sub_free(a);
    hub_free(h);
}

/* ---- history replay ---- */

/* Publishes @n messages "0".."n-1" on T1 to a fresh subscriber (returned) of hub @h. */
static struct fake_sub *publish_n(struct hub *h, int n)
{
    struct fake_sub *a = fake_sub_new(h);
    char data[16];

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    for (int i = 0; i < n; i++) {
        snprintf(data, sizeof(data), "%d", i);
        publish(h, T1, data);
    }
    assert_int_equal(a->n_delivered, (size_t)n);
    return a;
}

static void test_replay_from_null(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = publish_n(h, 3);
    struct replay_rec rr = {0};
    size_t n = 99;

    assert_int_equal(hub_replay(h, L(T1), NULL, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 3);
    assert_int_equal(rr.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_ptr_equal(rr.m[i], a->got[i]);
    /* unknown topic: nothing, OK */
    rr.n = 0;
    n = 99;
    assert_int_equal(hub_replay(h, L(T2), NULL, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rr.n, 0);
    /* n_out may be NULL */
    assert_int_equal(hub_replay(h, L(T1), NULL, 100, on_replay, &rr, NULL), HUB_REPLAY_OK);
    assert_int_equal(rr.n, 3);
    fake_sub_free(a);
    hub_free(h);
}

static void test_replay_from_delivered_cursor(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = publish_n(h, 4);
    struct cursor c;

    for (size_t k = 0; k < 4; k++) {
        struct replay_rec rr = {0};
        size_t n = 99;

        pos_of(a->got[k], &c);
        assert_int_equal(hub_replay(h, L(T1), &c.pos[0], 100, on_replay, &rr, &n), HUB_REPLAY_OK);
        /* exactly the messages after got[k] */
        assert_int_equal(n, 3 - k);
        assert_int_equal(rr.n, 3 - k);
        for (size_t i = 0; i < rr.n; i++)
            assert_ptr_equal(rr.m[i], a->got[k + 1 + i]);
        assert_int_equal(hub_has_after(h, L(T1), &c.pos[0]), k < 3);
        cursor_release(&c);
    }
    fake_sub_free(a);
    hub_free(h);
}

static void test_replay_max_and_stop(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = publish_n(h, 4);
    struct replay_rec rr = {0};
    struct cursor c;
    size_t n = 99;

    pos_of(a->got[0], &c);
    assert_int_equal(hub_replay(h, L(T1), &c.pos[0], 2, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rr.n, 2);
    assert_ptr_equal(rr.m[0], a->got[1]);
    assert_ptr_equal(rr.m[1], a->got[2]);

    rr.n = 0;
    assert_int_equal(hub_replay(h, L(T1), NULL, 0, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rr.n, 0);

    /* fn returns -1 on its second call: replay stops there; the refused one is not counted */
    rr.n = 0;
    rr.stop_at = 2;
    assert_int_equal(hub_replay(h, L(T1), NULL, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(rr.n, 2);
    assert_int_equal(n, 1);
    assert_ptr_equal(rr.m[0], a->got[0]);
    assert_ptr_equal(rr.m[1], a->got[1]);
    cursor_release(&c);
    fake_sub_free(a);
    hub_free(h);
}

static void test_replay_from_evicted_position(void **state)
{
    struct hub *h = hub_new(4);           /* keeps 4 */
    struct fake_sub *a = publish_n(h, 6); /* got[0], got[1] evicted; got[2..5] retained */
    struct replay_rec rr = {0};
    struct cursor c;
    size_t n = 99;

    /* after got[0]: got[1] was lost, so RESET and everything retained */
    pos_of(a->got[0], &c);
    assert_int_equal(hub_replay(h, L(T1), &c.pos[0], 100, on_replay, &rr, &n), HUB_REPLAY_RESET);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(rr.m[i], a->got[2 + i]);
    assert_int_equal(hub_has_after(h, L(T1), &c.pos[0]), 1);
    cursor_release(&c);

    /* after got[1], the newest evicted: nothing was lost */
    rr.n = 0;
    pos_of(a->got[1], &c);
    assert_int_equal(hub_replay(h, L(T1), &c.pos[0], 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(rr.m[i], a->got[2 + i]);
    cursor_release(&c);

    /* RESET still honours max */
    rr.n = 0;
    pos_of(a->got[0], &c);
    assert_int_equal(hub_replay(h, L(T1), &c.pos[0], 3, on_replay, &rr, &n), HUB_REPLAY_RESET);
    assert_int_equal(n, 3);
    assert_ptr_equal(rr.m[0], a->got[2]);
    cursor_release(&c);
    fake_sub_free(a);
    hub_free(h);
}

static void test_replay_from_other_epoch(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = publish_n(h, 3);
    struct replay_rec rr = {0};
    struct cursor c;
    size_t n = 99;

    /* the position of the newest message, but from another process's history */
    pos_of(a->got[2], &c);
    c.pos[0].epoch[0] = c.pos[0].epoch[0] == '0' ? '1' : '0';
    assert_int_equal(hub_replay(h, L(T1), &c.pos[0], 100, on_replay, &rr, &n), HUB_REPLAY_RESET);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_ptr_equal(rr.m[i], a->got[i]);
    assert_int_equal(hub_has_after(h, L(T1), &c.pos[0]), 1);
    /* another epoch on a topic the hub does not know: RESET, nothing to send */
    rr.n = 0;
    assert_int_equal(hub_replay(h, L(T2), &c.pos[0], 100, on_replay, &rr, &n), HUB_REPLAY_RESET);
    assert_int_equal(n, 0);
    assert_int_equal(rr.n, 0);
    assert_int_equal(hub_has_after(h, L(T2), &c.pos[0]), 0);
    cursor_release(&c);
    fake_sub_free(a);
    hub_free(h);
}

static void test_position(void **state)
{
    struct hub *h = hub_new(4);
    struct cursor_pos before, after, other;
    struct fake_sub *a;
    struct replay_rec rr = {0};
    struct cursor c;
    size_t n = 99;

    hub_position(h, L(T1), &before);
    assert_ptr_equal(before.topic, T1);
    assert_int_equal(before.topic_len, 6);
    assert_int_equal(strlen(before.epoch), MSG_EPOCH_LEN);
    assert_int_equal(strspn(before.epoch, "0123456789abcdef"), MSG_EPOCH_LEN);
    assert_true(msg_id_is_zero(before.id));
    assert_int_equal(hub_has_after(h, L(T1), &before), 0);
    assert_int_equal(hub_has_after(h, L(T1), NULL), 0);

    a = publish_n(h, 3);
    hub_position(h, L(T1), &after);
    assert_string_equal(after.epoch, before.epoch);
    assert_int_equal(msg_id_cmp(after.id, a->got[2]->id), 0);
    /* the epoch is the one in the messages' cursors */
    pos_of(a->got[0], &c);
    assert_string_equal(c.pos[0].epoch, after.epoch);
    cursor_release(&c);
    /* same epoch across topics */
    hub_position(h, L(T3), &other);
    assert_string_equal(other.epoch, before.epoch);
    assert_true(msg_id_is_zero(other.id));

    /* "now" skips history */
    assert_int_equal(hub_replay(h, L(T1), &after, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hub_has_after(h, L(T1), &after), 0);
    assert_int_equal(hub_has_after(h, L(T1), NULL), 1);
    /* from the empty topic's position: everything since, nothing lost */
    assert_int_equal(hub_replay(h, L(T1), &before, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 3);
    assert_int_equal(hub_has_after(h, L(T1), &before), 1);

    /* once a message published after "before" is evicted, "before" is a gap */
    publish(h, T1, "3");
    publish(h, T1, "4");
    rr.n = 0;
    assert_int_equal(hub_replay(h, L(T1), &before, 100, on_replay, &rr, &n), HUB_REPLAY_RESET);
    assert_int_equal(n, 4);
    assert_ptr_equal(rr.m[0], a->got[1]);
    hub_position(h, L(T1), &after);
    assert_int_equal(msg_id_cmp(after.id, a->got[4]->id), 0);
    fake_sub_free(a);
    hub_free(h);
}

static void test_epochs_differ_between_hubs(void **state)
{
    struct hub *h1 = hub_new(4), *h2 = hub_new(4);
    struct cursor_pos p1, p2;

    hub_position(h1, L(T1), &p1);
    hub_position(h2, L(T1), &p2);
    assert_string_not_equal(p1.epoch, p2.epoch);
    hub_free(h2);
    hub_free(h1);
}

static void test_history_size_zero_means_one(void **state)
{
    struct hub *h = hub_new(0);
    struct fake_sub *a = publish_n(h, 2);
    struct replay_rec rr = {0};
    size_t n = 99;

    assert_int_equal(hub_replay(h, L(T1), NULL, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 1);
    assert_ptr_equal(rr.m[0], a->got[1]);
    fake_sub_free(a);
    hub_free(h);
}

/* ---- slow consumers ---- */

static void test_slow_subscriber_kicked_once(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);
    struct hub_stats st;

    a->slow_at_call = 2;
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T2)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    publish(h, T1, "0");
    assert_int_equal(a->n_kicks, 0);
    publish(h, T1, "1"); /* a's queue is full */
    assert_int_equal(a->n_calls, 2);
    assert_int_equal(a->n_delivered, 1);
    assert_int_equal(a->n_kicks, 1);
    assert_int_equal(a->why, SUB_KICK_SLOW);
    assert_int_equal(a->sub.kicked, 1);
    publish(h, T1, "2");
    publish(h, T2, "3"); /* not on another topic either */
    publish(h, T1, "4");
    assert_int_equal(a->n_calls, 2);
    assert_int_equal(a->n_kicks, 1);
    assert_int_equal(b->n_delivered, 4);
    assert_int_equal(b->n_kicks, 0);
    assert_data(b->got[3], "4");
    st = stats(h);
    assert_int_equal(st.n_slow_kicks, 1);
    assert_int_equal(st.n_delivered, 5); /* a: 1, b: 4 */
    assert_int_equal(st.n_published, 5);
    /* the transport closes it later; unsubscribing then is fine */
    fake_sub_free(a);
    assert_int_equal(stats(h).n_subscriptions, 1);
    fake_sub_free(b);
    hub_free(h);
}

/* ---- ingest ---- */

static struct msg *mk_msg(struct hub *h, const char *topic, uint64_t ms, uint64_t seq,
                          const char *data)
{
    struct cursor_pos p;
    struct msg_id id = {ms, seq};

    hub_position(h, L(topic), &p);
    return msg_new(L(topic), p.epoch, id, ms, "", 0, L(data));
}

static void test_ingest_drops_stale_and_duplicate(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);
    struct msg *m1 = mk_msg(h, T1, 100, 5, "1"), *dup = mk_msg(h, T1, 100, 5, "dup");
    struct msg *old = mk_msg(h, T1, 100, 4, "old"), *older = mk_msg(h, T1, 99, 9, "older");
    struct msg *m2 = mk_msg(h, T1, 100, 6, "2");
    struct replay_rec rr = {0};
    struct cursor_pos pos;
    size_t n;

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    hub_ingest(h, m1);
    assert_int_equal(a->n_delivered, 1);
    assert_ptr_equal(a->got[0], m1);
    assert_int_equal(m1->refs, 3); /* ours, a's, history's */
    hub_ingest(h, m1);
    hub_ingest(h, dup);
    hub_ingest(h, old);
    hub_ingest(h, older);
    assert_int_equal(a->n_calls, 1);
    assert_int_equal(dup->refs, 1); /* not kept */
    assert_int_equal(old->refs, 1);
    assert_int_equal(older->refs, 1);
    assert_int_equal(stats(h).n_published, 1);
    hub_ingest(h, m2);
    assert_int_equal(a->n_delivered, 2);
    assert_ptr_equal(a->got[1], m2);
    hub_position(h, L(T1), &pos);
    assert_true(pos.id.ms == 100 && pos.id.seq == 6);
    assert_int_equal(hub_replay(h, L(T1), NULL, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 2);
    assert_ptr_equal(rr.m[0], m1);
    assert_ptr_equal(rr.m[1], m2);
    /* a local publish after ingest continues after the ingested id */
    publish(h, T1, "3");
    assert_int_equal(a->n_delivered, 3);
    assert_int_equal(msg_id_cmp(a->got[2]->id, m2->id), 1);
    msg_unref(m1);
    msg_unref(dup);
    msg_unref(old);
    msg_unref(older);
    msg_unref(m2);
    fake_sub_free(a);
    hub_free(h);
}

static void test_ingest_without_subscribers_keeps_history(void **state)
{
    struct hub *h = hub_new(4);
    struct msg *m = mk_msg(h, T3, 7, 0, "\"x\"");
    struct replay_rec rr = {0};
    size_t n;

    hub_ingest(h, m);
    msg_unref(m);
    assert_int_equal(stats(h).n_topics, 1);
    assert_int_equal(stats(h).n_published, 1);
    assert_int_equal(stats(h).n_delivered, 0);
    assert_int_equal(hub_replay(h, L(T3), NULL, 100, on_replay, &rr, &n), HUB_REPLAY_OK);
    assert_int_equal(n, 1);
    assert_data(rr.m[0], "\"x\"");
    assert_int_equal(rr.m[0]->refs, 1); /* only the history holds it now */
    hub_free(h);
}

/* A dropped message must not leave an empty topic behind ("topics with no subscribers and no
 * history are freed"). 0-0 is never newer than a fresh topic's last id. */
static void test_ingest_dropped_on_unknown_topic_leaves_no_topic(void **state)
{
    struct hub *h = hub_new(4);
    struct msg *m = mk_msg(h, T2, 0, 0, "0");

    hub_ingest(h, m);
    assert_int_equal(m->refs, 1);
    assert_int_equal(stats(h).n_published, 0);
    assert_int_equal(stats(h).n_topics, 0);
    msg_unref(m);
    hub_free(h);
}

/* ---- backplane ---- */

static void test_backplane_sub_unsub_first_and_last(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);
    struct fake_bp bp;

    fake_bp_init(&bp, h, BP_APPEND);
    hub_set_backplane(h, &bp.bp);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(bp.n_subs, 1);
    assert_string_equal(bp.subs[0], T1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 0);
    assert_int_equal(hub_subscribe(h, &a->sub, L("Bad:1")), -1);
    assert_int_equal(bp.n_subs, 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T2)), 1);
    assert_int_equal(bp.n_subs, 2);
    assert_string_equal(bp.subs[1], T2);

    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(bp.n_unsubs, 0); /* b still there */
    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T1)), 0);
    assert_int_equal(bp.n_unsubs, 0);
    assert_int_equal(hub_unsubscribe(h, &b->sub, L(T1)), 1);
    assert_int_equal(bp.n_unsubs, 1);
    assert_string_equal(bp.unsubs[0], T1);

    /* re-subscribing after the last left subscribes the backplane again */
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(bp.n_subs, 3);
    assert_string_equal(bp.subs[2], T1);
    hub_unsubscribe_all(h, &b->sub); /* T2: last one */
    assert_int_equal(bp.n_unsubs, 2);
    assert_string_equal(bp.unsubs[1], T2);
    hub_unsubscribe_all(h, &a->sub);
    assert_int_equal(bp.n_unsubs, 3);
    assert_string_equal(bp.unsubs[2], T1);

    hub_set_backplane(h, NULL);
    fake_sub_free(a);
    fake_sub_free(b);
    assert_int_equal(bp.n_free, 0); /* borrowed */
    hub_free(h);
}

static void test_backplane_publish_forwarded(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);
    struct pub_result r = {0};
    struct fake_bp bp;

    fake_bp_init(&bp, h, BP_HOLD);
    hub_set_backplane(h, &bp.bp);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);

    /* the hub hands the publish over and appends nothing itself */
    assert_int_equal(hub_publish(h, L(T1), L("bob"), L("[1,2]"), on_published, &r), 0);
    assert_int_equal(bp.n_publish, 1);
    assert_string_equal(bp.pub_topic, T1);
    assert_string_equal(bp.pub_from, "bob");
    assert_string_equal(bp.pub_data, "[1,2]");
    assert_ptr_equal(bp.pub_cb, on_published);
    assert_ptr_equal(bp.pub_ud, &r);
    assert_int_equal(r.n_calls, 0);
    assert_int_equal(a->n_calls, 0);
    assert_int_equal(stats(h).n_published, 0);
    /* the backplane answers later */
    bp.pub_cb(bp.pub_ud, -1, NULL);
    assert_int_equal(r.n_calls, 1);
    assert_int_equal(r.status, -1);
    assert_int_equal(r.id_was_null, 1);

    /* an invalid topic never reaches it */
    assert_int_equal(hub_publish(h, L("nope"), "", 0, L("1"), on_published, &r), -1);
    assert_int_equal(bp.n_publish, 1);

    /* a backplane that appends: delivered through hub_append */
    bp.mode = BP_APPEND;
    assert_int_equal(hub_publish(h, L(T1), L("bob"), L("[3]"), on_published, &r), 0);
    assert_int_equal(bp.n_publish, 2);
    assert_int_equal(r.n_calls, 2);
    assert_int_equal(r.status, 0);
    assert_int_equal(a->n_delivered, 1);
    assert_data(a->got[0], "[3]");
    assert_non_null(strstr((const char *)a->got[0]->ws, "\"from\":\"bob\""));
    assert_int_equal(msg_id_cmp(r.id, a->got[0]->id), 0);

    hub_set_backplane(h, NULL);
    fake_sub_free(a);
    hub_free(h);
}

static void test_backplane_local(void **state)
{
    struct hub *h = hub_new(4);
    struct backplane *bp = backplane_local_new(h);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);
    struct pub_result r = {0};
    struct msg_id prev = {0, 0};

    assert_string_equal(bp->ops->name, "local");
    assert_int_equal(bp->ops->is_ready(bp), 1);
    hub_set_backplane(h, bp);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hub_publish(h, L(T1), L("carol"), L("true"), on_published, &r), 0);
        assert_int_equal(r.n_calls, i + 1);
        assert_int_equal(r.status, 0);
        assert_int_equal(msg_id_cmp(prev, r.id), -1);
        prev = r.id;
    }
    assert_int_equal(a->n_delivered, 5);
    assert_int_equal(b->n_delivered, 5);
    assert_int_equal(msg_id_cmp(a->got[4]->id, r.id), 0);
    assert_data(a->got[4], "true");
    /* no callback is fine too */
    assert_int_equal(hub_publish(h, L(T1), "", 0, L("null"), NULL, NULL), 0);
    assert_int_equal(a->n_delivered, 6);
    assert_int_equal(hub_publish(h, L("x"), "", 0, L("null"), on_published, &r), -1);
    assert_int_equal(r.n_calls, 5);
    assert_int_equal(stats(h).n_published, 6);
    fake_sub_free(a);
    fake_sub_free(b);
    hub_set_backplane(h, NULL);
    backplane_free(bp);
    backplane_free(NULL);
    hub_free(h);
}

/* ---- stats and topic lifetime ---- */

static void test_stats(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h), *c = fake_sub_new(h);
    struct hub_stats st = stats(h);

    assert_int_equal(st.n_topics, 0);
    assert_int_equal(st.n_subscriptions, 0);
    assert_int_equal(st.n_published, 0);
    assert_int_equal(st.n_delivered, 0);
    assert_int_equal(st.n_slow_kicks, 0);

    c->slow_at_call = 1;
    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T2)), 1);
    assert_int_equal(hub_subscribe(h, &b->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &c->sub, L(T1)), 1);
    publish(h, T1, "1"); /* a, b; c kicked */
    publish(h, T1, "2"); /* a, b */
    publish(h, T2, "3"); /* a */
    publish(h, T3, "4"); /* nobody */
    st = stats(h);
    assert_int_equal(st.n_topics, 3);
    assert_int_equal(st.n_subscriptions, 4);
    assert_int_equal(st.n_published, 4);
    assert_int_equal(st.n_delivered, 5);
    assert_int_equal(st.n_slow_kicks, 1);
    fake_sub_free(a);
    fake_sub_free(b);
    fake_sub_free(c);
    st = stats(h);
    assert_int_equal(st.n_subscriptions, 0);
    assert_int_equal(st.n_topics, 3); /* all three have history */
    assert_int_equal(st.n_published, 4);
    hub_free(h);
}

static void test_topics_freed_when_unused(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h), *b = fake_sub_new(h);
    char name[32];

    /* enough topics to make the table grow */
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "t:%d", i);
        assert_int_equal(hub_subscribe(h, &a->sub, L(name)), 1);
        if (i % 3 == 0)
            assert_int_equal(hub_subscribe(h, &b->sub, L(name)), 1);
    }
    assert_int_equal(stats(h).n_topics, 300);
    assert_int_equal(stats(h).n_subscriptions, 400);
    /* each topic delivers only its own messages */
    for (int i = 0; i < 300; i += 7) {
        snprintf(name, sizeof(name), "t:%d", i);
        publish(h, name, "1");
        assert_topic(a->got[a->n_delivered - 1], name);
    }
    assert_int_equal(a->n_delivered, 43);
    assert_int_equal(b->n_delivered, 15); /* multiples of 21 below 300 */
    hub_unsubscribe_all(h, &a->sub);
    assert_int_equal(stats(h).n_topics, 100 + 43 - 15); /* b's, plus those with history */
    hub_unsubscribe_all(h, &b->sub);
    assert_int_equal(stats(h).n_topics, 43);
    /* a topic with history stays resumable */
    for (int i = 0; i < 300; i += 7) {
        struct replay_rec rr = {0};
        size_t n;

        snprintf(name, sizeof(name), "t:%d", i);
        assert_int_equal(hub_replay(h, L(name), NULL, 10, on_replay, &rr, &n), HUB_REPLAY_OK);
        assert_int_equal(n, 1);
        assert_topic(rr.m[0], name);
    }
    fake_sub_free(a);
    fake_sub_free(b);
    hub_free(h);
}

static void test_topic_without_history_freed_single(void **state)
{
    struct hub *h = hub_new(4);
    struct fake_sub *a = fake_sub_new(h);

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(stats(h).n_topics, 1);
    assert_int_equal(hub_unsubscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(stats(h).n_topics, 0);
    /* position/replay/has_after on a forgotten topic do not create it */
    {
        struct cursor_pos p;
        struct replay_rec rr = {0};
        size_t n;

        hub_position(h, L(T1), &p);
        assert_int_equal(hub_replay(h, L(T1), &p, 10, on_replay, &rr, &n), HUB_REPLAY_OK);
        assert_int_equal(n, 0);
        assert_int_equal(hub_has_after(h, L(T1), &p), 0);
        assert_int_equal(stats(h).n_topics, 0);
    }
    fake_sub_free(a);
    hub_free(h);
}

static void test_hub_free_with_live_subscribers(void **state)
{
    struct hub *h = hub_new(2);
    struct fake_sub *a = fake_sub_new(h);

    assert_int_equal(hub_subscribe(h, &a->sub, L(T1)), 1);
    assert_int_equal(hub_subscribe(h, &a->sub, L(T2)), 1);
    publish(h, T1, "1");
    hub_free(h);
    /* the hub let go of the subscriber's links */
    assert_int_equal(a->sub.n_topics, 0);
    assert_true(dlist_is_empty(&a->sub.links));
    a->hub = NULL;
    fake_sub_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_return_values),
        cmocka_unit_test(test_publish_reaches_each_subscriber_once),
        cmocka_unit_test(test_publish_invalid_topic),
        cmocka_unit_test(test_delivery_in_id_order),
        cmocka_unit_test(test_unsubscribe_stops_delivery),
        cmocka_unit_test(test_unsubscribe_all),
        cmocka_unit_test(test_ids_strictly_increase),
        cmocka_unit_test(test_subscribe_inside_delivery),
        cmocka_unit_test(test_replay_from_null),
        cmocka_unit_test(test_replay_from_delivered_cursor),
        cmocka_unit_test(test_replay_max_and_stop),
        cmocka_unit_test(test_replay_from_evicted_position),
        cmocka_unit_test(test_replay_from_other_epoch),
        cmocka_unit_test(test_position),
        cmocka_unit_test(test_epochs_differ_between_hubs),
        cmocka_unit_test(test_history_size_zero_means_one),
        cmocka_unit_test(test_slow_subscriber_kicked_once),
        cmocka_unit_test(test_ingest_drops_stale_and_duplicate),
        cmocka_unit_test(test_ingest_without_subscribers_keeps_history),
        cmocka_unit_test(test_ingest_dropped_on_unknown_topic_leaves_no_topic),
        cmocka_unit_test(test_backplane_sub_unsub_first_and_last),
        cmocka_unit_test(test_backplane_publish_forwarded),
        cmocka_unit_test(test_backplane_local),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_topics_freed_when_unused),
        cmocka_unit_test(test_topic_without_history_freed_single),
        cmocka_unit_test(test_hub_free_with_live_subscribers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
