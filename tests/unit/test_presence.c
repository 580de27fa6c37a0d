/* test_presence.c: the per-node counts, lookups (answered locally, or held by a fake store
 * backplane and answered or cancelled later) and the join/leave events on presence:<user>. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/presence.h"

#include "rtgate/backplane.h"
#include "rtgate/hub.h"
#include "rtgate/util.h"

#include <stdio.h>
#include <string.h>

#define L(s) s, strlen(s)

/* ---- a subscriber that keeps the data of what it gets ---- */

struct rec_sub {
    struct sub sub;
    char got[8][128];
    size_t n;
};

static int rec_deliver(struct sub *s, struct msg *m)
{
    struct rec_sub *r = container_of(s, struct rec_sub, sub);
    const char *d = strstr((const char *)m->env, "\"data\":");

    assert_non_null(d);
    assert_true(r->n < 8);
    snprintf(r->got[r->n++], sizeof(r->got[0]), "%.*s",
             (int)(m->env_len - (size_t)(d - (const char *)m->env) - 8), d + 7);
    return 0;
}

static void rec_kick(struct sub *s, enum sub_kick why)
{
}

static void rec_reset(struct sub *s, const char *t, size_t l, const char *e)
{
}

static void rec_ready(struct sub *s, const char *t, size_t l, const struct cursor_pos *p, int st)
{
}

static const struct sub_ops rec_ops = {rec_deliver, rec_kick, rec_reset, rec_ready};

/* ---- a backplane that stores counts: records presence_set, holds presence_get ---- */

struct store_bp {
    struct backplane bp;
    char last_user[64];
    unsigned last_conns;
    size_t n_sets, n_cancels;
    backplane_presence_fn *fn;
    void *ud;
    size_t n_asked;
    int sync_fail; /* answer -1 at once */
};

static void store_set(struct backplane *bp, const char *user, size_t len, unsigned conns)
{
    struct store_bp *s = container_of(bp, struct store_bp, bp);

    snprintf(s->last_user, sizeof(s->last_user), "%.*s", (int)len, user);
    s->last_conns = conns;
    s->n_sets++;
}

static void *store_get(struct backplane *bp, const char *const *users, const size_t *lens, size_t n,
                       backplane_presence_fn *fn, void *ud)
{
    struct store_bp *s = container_of(bp, struct store_bp, bp);

    if (s->sync_fail) {
        fn(ud, -1, NULL);
        return NULL;
    }
    s->fn = fn;
    s->ud = ud;
    s->n_asked = n;
    return s;
}

static void store_cancel(struct backplane *bp, void *req)
{
    struct store_bp *s = container_of(bp, struct store_bp, bp);

    assert_ptr_equal(req, s);
    s->fn = NULL;
    s->n_cancels++;
}

static const struct backplane_ops store_ops = {
    .name = "store",
    .presence_set = store_set,
    .presence_get = store_get,
    .presence_cancel = store_cancel,
};

/* ---- lookup answers ---- */

struct answer {
    int n_calls, status;
    unsigned conns[PRESENCE_MAX_USERS];
    char users[PRESENCE_MAX_USERS][32];
    size_t n;
};

static void on_lookup(void *ud, int status, const struct presence_result *res, size_t n)
{
    struct answer *a = ud;

    a->n_calls++;
    a->status = status;
    a->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(a->users[i], sizeof(a->users[i]), "%.*s", (int)res[i].len, res[i].user);
        a->conns[i] = res[i].conns;
    }
}

static void on_online(void *ud, int status, unsigned conns)
{
    struct answer *a = ud;

    a->n_calls++;
    a->status = status;
    a->conns[0] = conns;
}

static void test_local_counts_and_lookup(void **state)
{
    struct hub *h = hub_new(10);
    struct backplane *bp = backplane_local_new(h);
    struct presence *p;
    const char *users[] = {"alice", "bob", "carol"};
    size_t lens[] = {5, 3, 5};
    struct answer a = {0};

    hub_set_backplane(h, bp);
    p = presence_new(h, bp, 0);
    presence_join(p, L("alice"));
    presence_join(p, L("alice"));
    presence_join(p, L("bob"));
    presence_join(p, L("bad:id")); /* not a user id: ignored */
    assert_int_equal(presence_local(p, L("alice")), 2);
    assert_int_equal(presence_local(p, L("bob")), 1);
    assert_int_equal(presence_local_users(p), 2);
    assert_null(presence_lookup(p, users, lens, 3, on_lookup, &a)); /* answered at once */
    assert_int_equal(a.n_calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.n, 3);
    assert_string_equal(a.users[0], "alice");
    assert_int_equal(a.conns[0], 2);
    assert_int_equal(a.conns[1], 1);
    assert_int_equal(a.conns[2], 0);
    presence_leave(p, L("alice"));
    presence_leave(p, L("bob"));
    presence_leave(p, L("bob")); /* one leave too many: stays at 0 */
    presence_leave(p, L("nobody"));
    assert_int_equal(presence_local(p, L("alice")), 1);
    assert_int_equal(presence_local(p, L("bob")), 0);
    assert_int_equal(presence_local_users(p), 1);
    memset(&a, 0, sizeof(a));
    assert_null(presence_is_online(p, L("alice"), on_online, &a));
    assert_int_equal(a.n_calls, 1);
    assert_int_equal(a.conns[0], 1);
    /* 0 users or too many: -1 at once */
    memset(&a, 0, sizeof(a));
    assert_null(presence_lookup(p, users, lens, 0, on_lookup, &a));
    assert_int_equal(a.status, -1);
    presence_free(p);
    hub_free(h);
    backplane_free(bp);
}

static void test_many_users_grow_the_table(void **state)
{
    struct presence *p = presence_new(NULL, NULL, 0);
    char name[32];

    for (int i = 0; i < 5000; i++) {
        int n = snprintf(name, sizeof(name), "user%d", i);

        presence_join(p, name, (size_t)n);
    }
    assert_int_equal(presence_local_users(p), 5000);
    for (int i = 0; i < 5000; i += 2) {
        int n = snprintf(name, sizeof(name), "user%d", i);

        presence_leave(p, name, (size_t)n);
    }
    assert_int_equal(presence_local_users(p), 2500);
    assert_int_equal(presence_local(p, L("user1")), 1);
    assert_int_equal(presence_local(p, L("user2")), 0);
    presence_free(p); /* frees the 2500 left: the leak check would see any */
}

static void test_local_events(void **state)
{
    struct hub *h = hub_new(10);
    struct backplane *bp = backplane_local_new(h);
    struct presence *p;
    struct rec_sub w = {0};

    hub_set_backplane(h, bp);
    p = presence_new(h, bp, 1);
    sub_init(&w.sub, &rec_ops);
    assert_int_equal(hub_subscribe(h, &w.sub, L("presence:alice")), 1);
    presence_join(p, L("alice"));
    presence_join(p, L("alice")); /* a second connection: no event */
    presence_leave(p, L("alice"));
    assert_int_equal(w.n, 1);
    presence_leave(p, L("alice"));
    assert_int_equal(w.n, 2);
    assert_string_equal(w.got[0], "{\"event\":\"join\",\"user\":\"alice\"}");
    assert_string_equal(w.got[1], "{\"event\":\"leave\",\"user\":\"alice\"}");
    hub_unsubscribe_all(h, &w.sub);
    presence_free(p);
    hub_free(h);
    backplane_free(bp);
}

static void test_store_gets_absolute_counts(void **state)
{
    struct store_bp s = {.bp = {.ops = &store_ops}};
    struct presence *p = presence_new(NULL, &s.bp, 0);

    assert_ptr_equal(s.bp.presence, p);
    presence_join(p, L("alice"));
    assert_string_equal(s.last_user, "alice");
    assert_int_equal(s.last_conns, 1);
    presence_join(p, L("alice"));
    assert_int_equal(s.last_conns, 2);
    presence_leave(p, L("alice"));
    presence_leave(p, L("alice"));
    assert_int_equal(s.last_conns, 0);
    assert_int_equal(s.n_sets, 4);
    presence_free(p);
    assert_null(s.bp.presence);
}

static void count_one(void *ud, const char *user, size_t len, unsigned conns)
{
    *(unsigned *)ud += conns;
}

static void test_store_lookup_async_and_cancel(void **state)
{
    struct store_bp s = {.bp = {.ops = &store_ops}};
    struct presence *p = presence_new(NULL, &s.bp, 0);
    const char *users[] = {"alice", "bob"};
    size_t lens[] = {5, 3};
    unsigned conns[] = {3, 0}, total = 0;
    struct answer a = {0};
    struct presence_req *r;

    presence_join(p, L("alice"));
    presence_join(p, L("bob"));
    presence_join(p, L("bob"));
    presence_for_each(p, count_one, &total);
    assert_int_equal(total, 3);

    r = presence_lookup(p, users, lens, 2, on_lookup, &a);
    assert_non_null(r);
    assert_int_equal(a.n_calls, 0);
    assert_int_equal(s.n_asked, 2);
    s.fn(s.ud, 0, conns); /* the store answers later: the request frees itself */
    assert_int_equal(a.n_calls, 1);
    assert_int_equal(a.conns[0], 3);
    assert_string_equal(a.users[1], "bob");

    memset(&a, 0, sizeof(a));
    r = presence_is_online(p, L("bob"), on_online, &a);
    assert_non_null(r);
    presence_cancel(r); /* the asker went away */
    assert_int_equal(s.n_cancels, 1);
    assert_null(s.fn);
    assert_int_equal(a.n_calls, 0);
    presence_cancel(NULL);

    s.sync_fail = 1;
    assert_null(presence_is_online(p, L("bob"), on_online, &a));
    assert_int_equal(a.n_calls, 1);
    assert_int_equal(a.status, -1);
    presence_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_counts_and_lookup),
        cmocka_unit_test(test_many_users_grow_the_table),
        cmocka_unit_test(test_local_events),
        cmocka_unit_test(test_store_gets_absolute_counts),
        cmocka_unit_test(test_store_lookup_async_and_cancel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
