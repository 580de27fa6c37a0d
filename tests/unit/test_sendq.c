/* test_sendq.c: a connection's bounded, growable FIFO of message references. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/sendq.h"

#define NMSG 64

static struct msg *mk(uint64_t seq)
{
    struct msg *m = msg_new_frame("x", 1, "y", 1);

    m->id.ms = 1;
    m->id.seq = seq;
    return m;
}

static void mk_all(struct msg **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        m[i] = mk(i);
}

static void unref_all(struct msg **m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i]->refs, 1); /* the queue holds nothing any more */
        msg_unref(m[i]);
    }
}

static void test_empty(void **state)
{
    struct sendq q;

    sendq_init(&q, 8);
    assert_int_equal(sendq_len(&q), 0);
    assert_null(sendq_peek(&q));
    sendq_pop(&q); /* harmless */
    assert_int_equal(sendq_len(&q), 0);
    sendq_release(&q);
    assert_int_equal(sendq_len(&q), 0);
}

static void test_fifo_order_and_refs(void **state)
{
    struct sendq q;
    struct msg *m[5];

    mk_all(m, 5);
    sendq_init(&q, 10);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sendq_push(&q, m[i]), 0);
        assert_int_equal(sendq_len(&q), i + 1);
        assert_int_equal(m[i]->refs, 2);
    }
    for (size_t i = 0; i < 5; i++) {
        assert_ptr_equal(sendq_peek(&q), m[i]);
        assert_ptr_equal(sendq_peek(&q), m[i]); /* peek does not consume */
        assert_int_equal(m[i]->refs, 2);
        sendq_pop(&q);
        assert_int_equal(m[i]->refs, 1);
        assert_int_equal(sendq_len(&q), 4 - i);
    }
    assert_null(sendq_peek(&q));
    sendq_release(&q);
    unref_all(m, 5);
}

static void test_cap_refusal_takes_no_ref(void **state)
{
    struct sendq q;
    struct msg *m[4];

    mk_all(m, 4);
    sendq_init(&q, 3);
    assert_int_equal(sendq_push(&q, m[0]), 0);
    assert_int_equal(sendq_push(&q, m[1]), 0);
    assert_int_equal(sendq_push(&q, m[2]), 0);
    assert_int_equal(sendq_push(&q, m[3]), -1);
    assert_int_equal(m[3]->refs, 1);
    assert_int_equal(sendq_len(&q), 3);
    assert_int_equal(sendq_push(&q, m[3]), -1);
    assert_int_equal(m[3]->refs, 1);
    assert_true(q.cap <= 3);
    /* room again after a pop; the refused message was never queued */
    sendq_pop(&q);
    assert_int_equal(sendq_push(&q, m[3]), 0);
    assert_int_equal(m[3]->refs, 2);
    assert_ptr_equal(sendq_peek(&q), m[1]);
    sendq_pop(&q);
    assert_ptr_equal(sendq_peek(&q), m[2]);
    sendq_pop(&q);
    assert_ptr_equal(sendq_peek(&q), m[3]);
    sendq_pop(&q);
    assert_null(sendq_peek(&q));
    sendq_release(&q);
    unref_all(m, 4);
}

static void test_max_zero_refuses_everything(void **state)
{
    struct sendq q;
    struct msg *m = mk(0);

    sendq_init(&q, 0);
    assert_int_equal(sendq_push(&q, m), -1);
    assert_int_equal(m->refs, 1);
    assert_int_equal(sendq_len(&q), 0);
    sendq_release(&q);
    msg_unref(m);
}

static void test_growth_keeps_order_across_wrap(void **state)
{
    struct sendq q;
    struct msg *m[10];

    mk_all(m, 10);
    sendq_init(&q, 100);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(sendq_push(&q, m[i]), 0);
    assert_int_equal(q.cap, 4);
    sendq_pop(&q);
    sendq_pop(&q);
    /* m[4], m[5] go into slots 0 and 1: the ring now wraps (head 2) */
    assert_int_equal(sendq_push(&q, m[4]), 0);
    assert_int_equal(sendq_push(&q, m[5]), 0);
    assert_int_equal(q.cap, 4);
    assert_int_equal(q.head, 2);
    /* full and wrapped: this push grows the ring */
    assert_int_equal(sendq_push(&q, m[6]), 0);
    assert_true(q.cap > 4);
    for (size_t i = 7; i < 10; i++)
        assert_int_equal(sendq_push(&q, m[i]), 0);
    assert_int_equal(sendq_len(&q), 8);
    for (size_t i = 2; i < 10; i++) {
        assert_ptr_equal(sendq_peek(&q), m[i]);
        assert_int_equal(m[i]->refs, 2);
        sendq_pop(&q);
    }
    assert_int_equal(sendq_len(&q), 0);
    sendq_release(&q);
    unref_all(m, 10);
}

/* Interleaved pushes and pops against a model FIFO; the ring never outgrows @max. */
static void test_interleaved_against_model(void **state)
{
    enum { MAX = 37 };
    struct sendq q;
    struct msg *m[NMSG], *model[4096];
    size_t mh = 0, mt = 0, next = 0;
    unsigned rnd = 12345;

    mk_all(m, NMSG);
    sendq_init(&q, MAX);
    for (int step = 0; step < 4000; step++) {
        int push;

        rnd = rnd * 1103515245u + 12345u;
        /* phases of mostly pushes (fills, refuses) and mostly pops (drains, shrinks) */
        push = (step / 500) % 2 == 0 ? (rnd >> 16) % 3 != 0 : (rnd >> 16) % 3 == 0;
        if (push) {
            struct msg *x = m[next++ % NMSG];
            uint32_t refs = x->refs;
            int rc = sendq_push(&q, x);

            if (mt - mh == MAX) {
                assert_int_equal(rc, -1);
                assert_int_equal(x->refs, refs);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(x->refs, refs + 1);
                model[mt++ % 4096] = x;
            }
        } else if (mt > mh) {
            assert_ptr_equal(sendq_peek(&q), model[mh % 4096]);
            sendq_pop(&q);
            mh++;
        } else {
            assert_null(sendq_peek(&q));
        }
        assert_int_equal(sendq_len(&q), mt - mh);
        assert_true(q.cap <= MAX);
    }
    sendq_release(&q);
    unref_all(m, NMSG);
}

static void test_same_message_many_times(void **state)
{
    struct sendq q;
    struct msg *m = mk(0);

    sendq_init(&q, 50);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(sendq_push(&q, m), 0);
    assert_int_equal(m->refs, 51);
    assert_int_equal(sendq_push(&q, m), -1);
    assert_int_equal(m->refs, 51);
    for (size_t i = 0; i < 20; i++)
        sendq_pop(&q);
    assert_int_equal(m->refs, 31);
    sendq_release(&q);
    assert_int_equal(m->refs, 1);
    msg_unref(m);
}

static void test_release_unrefs_everything(void **state)
{
    struct sendq q;
    struct msg *m[20];

    mk_all(m, 20);
    sendq_init(&q, 1000);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(sendq_push(&q, m[i]), 0);
    sendq_pop(&q);
    sendq_pop(&q);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(m[i]->refs, 1);
    for (size_t i = 2; i < 20; i++)
        assert_int_equal(m[i]->refs, 2);
    sendq_release(&q);
    assert_int_equal(sendq_len(&q), 0);
    assert_null(sendq_peek(&q));
    unref_all(m, 20); /* asserts refs == 1, then frees: a leak would fail the test */
}

static void test_usable_after_drain_and_release(void **state)
{
    struct sendq q;
    struct msg *m[40];

    mk_all(m, 40);
    sendq_init(&q, 100);
    /* a burst past 16 slots, drained: the ring is given back */
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(sendq_push(&q, m[i]), 0);
    for (size_t i = 0; i < 40; i++) {
        assert_ptr_equal(sendq_peek(&q), m[i]);
        sendq_pop(&q);
    }
    assert_int_equal(sendq_len(&q), 0);
    assert_null(q.ring);
    assert_int_equal(q.cap, 0);
    /* and it works again, in order */
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(sendq_push(&q, m[i]), 0);
    assert_ptr_equal(sendq_peek(&q), m[0]);
    sendq_pop(&q);
    sendq_pop(&q);
    sendq_release(&q);
    /* a released queue can be pushed to again */
    assert_int_equal(sendq_push(&q, m[7]), 0);
    assert_int_equal(sendq_push(&q, m[8]), 0);
    assert_ptr_equal(sendq_peek(&q), m[7]);
    sendq_pop(&q);
    assert_ptr_equal(sendq_peek(&q), m[8]);
    sendq_release(&q);
    unref_all(m, 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_fifo_order_and_refs),
        cmocka_unit_test(test_cap_refusal_takes_no_ref),
        cmocka_unit_test(test_max_zero_refuses_everything),
        cmocka_unit_test(test_growth_keeps_order_across_wrap),
        cmocka_unit_test(test_interleaved_against_model),
        cmocka_unit_test(test_same_message_many_times),
        cmocka_unit_test(test_release_unrefs_everything),
        cmocka_unit_test(test_usable_after_drain_and_release),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
