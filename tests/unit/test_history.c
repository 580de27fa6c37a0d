/* test_history.c: the bounded per-topic ring, its eviction mark and resume search. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/history.h"

#define MAXM 64

/* A message with id @ms-@seq (a control frame is enough: history only looks at ids). */
static struct msg *mk(uint64_t ms, uint64_t seq)
{
    struct msg *m = msg_new_frame("x", 1, NULL, 0);

    m->id.ms = ms;
    m->id.seq = seq;
    return m;
}

static struct msg_id mkid(uint64_t ms, uint64_t seq)
{
    struct msg_id id = {ms, seq};

    return id;
}

static void unref_all(struct msg **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        msg_unref(m[i]);
}

#define assert_id(got, ms_, seq_)                                                                  \
    do {                                                                                           \
        struct msg_id got_ = (got);                                                                \
        assert_true(got_.ms == (ms_));                                                             \
        assert_true(got_.seq == (seq_));                                                           \
    } while (0)

static void test_empty(void **state)
{
    struct history h;
    size_t first = 99;

    history_init(&h, 4);
    assert_int_equal(history_len(&h), 0);
    assert_id(h.evicted, 0, 0);
    assert_int_equal(history_since(&h, mkid(0, 0), &first), 1);
    assert_int_equal(first, 0);
    first = 99;
    assert_int_equal(history_since(&h, mkid(123, 4), &first), 1);
    assert_int_equal(first, 0);
    history_release(&h);
    assert_int_equal(history_len(&h), 0);
}

static void test_push_within_capacity(void **state)
{
    struct history h;
    struct msg *m[4];

    history_init(&h, 4);
    for (size_t i = 0; i < 4; i++) {
        m[i] = mk(100 + i, 0);
        history_push(&h, m[i]);
        assert_int_equal(history_len(&h), i + 1);
        assert_int_equal(m[i]->refs, 2); /* ours + the ring's */
    }
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(history_at(&h, i), m[i]);
    assert_id(h.evicted, 0, 0);
    history_release(&h);
    assert_int_equal(history_len(&h), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(m[i]->refs, 1);
    unref_all(m, 4);
}

static void test_eviction_and_evicted_mark(void **state)
{
    struct history h;
    struct msg *m[7];

    history_init(&h, 3);
    for (size_t i = 0; i < 7; i++) {
        m[i] = mk(10 * (i + 1), i);
        history_push(&h, m[i]);
        assert_int_equal(history_len(&h), i < 3 ? i + 1 : 3);
        if (i < 3) {
            assert_id(h.evicted, 0, 0);
        } else {
            /* the newest pushed-out message is m[i - 3] */
            assert_id(h.evicted, m[i - 3]->id.ms, m[i - 3]->id.seq);
            assert_int_equal(m[i - 3]->refs, 1); /* the ring dropped its reference */
        }
        /* oldest first, always the last three pushed */
        for (size_t j = 0; j < history_len(&h); j++)
            assert_ptr_equal(history_at(&h, j), m[i + 1 - history_len(&h) + j]);
    }
    assert_id(h.evicted, 40, 3);
    assert_int_equal(m[4]->refs, 2);
    assert_int_equal(m[5]->refs, 2);
    assert_int_equal(m[6]->refs, 2);
    history_release(&h);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(m[i]->refs, 1);
    unref_all(m, 7);
}

static void test_capacity_one(void **state)
{
    struct history h;
    struct msg *a = mk(1, 0), *b = mk(2, 0);
    size_t first;

    history_init(&h, 1);
    history_push(&h, a);
    assert_int_equal(history_len(&h), 1);
    assert_ptr_equal(history_at(&h, 0), a);
    history_push(&h, b);
    assert_int_equal(history_len(&h), 1);
    assert_ptr_equal(history_at(&h, 0), b);
    assert_id(h.evicted, 1, 0);
    assert_int_equal(a->refs, 1);
    assert_int_equal(history_since(&h, mkid(1, 0), &first), 1);
    assert_int_equal(first, 0);
    assert_int_equal(history_since(&h, mkid(0, 9), &first), 0);
    assert_int_equal(first, 0);
    assert_int_equal(history_since(&h, mkid(2, 0), &first), 1);
    assert_int_equal(first, 1);
    history_release(&h);
    msg_unref(a);
    msg_unref(b);
}

/* ids 10-0 .. 50-0 pushed into a ring of 3: 30, 40, 50 retained, 20-0 evicted. */
static void test_since_gap_boundary(void **state)
{
    struct history h;
    struct msg *m[5];
    size_t first;

    history_init(&h, 3);
    for (size_t i = 0; i < 5; i++) {
        m[i] = mk(10 * (i + 1), 0);
        history_push(&h, m[i]);
    }
    assert_id(h.evicted, 20, 0);

    /* exactly the evicted id: the client saw it, nothing newer was lost */
    first = 99;
    assert_int_equal(history_since(&h, mkid(20, 0), &first), 1);
    assert_int_equal(first, 0);
    /* one step before it: the evicted 20-0 was missed */
    first = 99;
    assert_int_equal(history_since(&h, mkid(19, UINT64_MAX), &first), 0);
    assert_int_equal(first, 0);
    assert_int_equal(history_since(&h, mkid(10, 0), &first), 0);
    assert_int_equal(first, 0);
    assert_int_equal(history_since(&h, mkid(0, 0), &first), 0);
    assert_int_equal(first, 0);
    /* between the evicted id and the oldest retained one */
    assert_int_equal(history_since(&h, mkid(20, 1), &first), 1);
    assert_int_equal(first, 0);
    assert_int_equal(history_since(&h, mkid(29, 7), &first), 1);
    assert_int_equal(first, 0);
    /* inside the ring */
    assert_int_equal(history_since(&h, mkid(30, 0), &first), 1);
    assert_int_equal(first, 1);
    assert_int_equal(history_since(&h, mkid(35, 0), &first), 1);
    assert_int_equal(first, 1);
    assert_int_equal(history_since(&h, mkid(40, 0), &first), 1);
    assert_int_equal(first, 2);
    assert_int_equal(history_since(&h, mkid(49, UINT64_MAX), &first), 1);
    assert_int_equal(first, 2);
    /* at or past the newest: nothing to replay */
    assert_int_equal(history_since(&h, mkid(50, 0), &first), 1);
    assert_int_equal(first, 3);
    assert_int_equal(history_since(&h, mkid(UINT64_MAX, UINT64_MAX), &first), 1);
    assert_int_equal(first, 3);

    history_release(&h);
    unref_all(m, 5);
}

/* The binary search agrees with a linear scan for every probe, on a ring that has wrapped. */
static void test_since_binary_search_position(void **state)
{
    static const size_t caps[] = {1, 2, 3, 7, 8, 16};
    struct msg *m[MAXM];

    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        for (size_t pushed = 0; pushed <= 2 * caps[c] + 3; pushed++) {
            struct history h;

            history_init(&h, caps[c]);
            /* ids 5-0, 5-2, 5-4, 6-0, 6-2, 6-4, ... (gaps so probes can fall between) */
            for (size_t i = 0; i < pushed; i++) {
                m[i] = mk(5 + i / 3, 2 * (i % 3));
                history_push(&h, m[i]);
            }
            assert_int_equal(history_len(&h), pushed < caps[c] ? pushed : caps[c]);
            for (uint64_t ms = 4; ms <= 5 + pushed / 3 + 1; ms++) {
                for (uint64_t seq = 0; seq <= 5; seq++) {
                    size_t first = 999, want = 0, n_evicted = pushed - history_len(&h);
                    struct msg_id after = {ms, seq};
                    int complete = 1;

                    while (want < history_len(&h) &&
                           msg_id_cmp(history_at(&h, want)->id, after) <= 0)
                        want++;
                    /* a gap: some message pushed out of the ring is newer than @after */
                    for (size_t i = 0; i < n_evicted; i++)
                        if (msg_id_cmp(m[i]->id, after) > 0)
                            complete = 0;
                    assert_int_equal(history_since(&h, after, &first), complete);
                    assert_int_equal(first, want);
                }
            }
            history_release(&h);
            unref_all(m, pushed);
        }
    }
}

static void test_release_then_reuse(void **state)
{
    struct history h;
    struct msg *a = mk(1, 0), *b = mk(2, 0);

    history_init(&h, 2);
    history_push(&h, a);
    history_push(&h, b);
    history_push(&h, a); /* same message twice is just two references */
    assert_int_equal(a->refs, 2);
    assert_int_equal(b->refs, 2);
    history_release(&h);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);
    assert_int_equal(history_len(&h), 0);
    /* a released ring can be pushed to again */
    history_push(&h, b);
    assert_int_equal(history_len(&h), 1);
    assert_ptr_equal(history_at(&h, 0), b);
    history_release(&h);
    assert_int_equal(b->refs, 1);
    msg_unref(a);
    msg_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_push_within_capacity),
        cmocka_unit_test(test_eviction_and_evicted_mark),
        cmocka_unit_test(test_capacity_one),
        cmocka_unit_test(test_since_gap_boundary),
        cmocka_unit_test(test_since_binary_search_position),
        cmocka_unit_test(test_release_then_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
