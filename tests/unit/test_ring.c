/* test_ring.c: balance and movement of the consistent-hash ring (the figures the README
 * promises), stability across orders of the shard list, and the one-shard case. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/ring.h"

#include "rtgate/util.h"

#include <stdio.h>
#include <string.h>

#define N_TOPICS 100000

static const char *const shards4[] = {"10.0.0.1:6379/0", "10.0.0.2:6379/0", "10.0.0.3:6379/0",
                                      "10.0.0.4:6379/0"};

static size_t topic(char *buf, size_t cap, int i)
{
    return (size_t)snprintf(buf, cap, "user:u%d", i);
}

static void test_balance_over_three(void **state)
{
    struct ring *r = ring_new(shards4, 3, RING_VNODES);
    size_t count[3] = {0}, lo = N_TOPICS, hi = 0;
    char buf[64];

    for (int i = 0; i < N_TOPICS; i++) {
        size_t n = topic(buf, sizeof(buf), i);

        count[ring_lookup(r, buf, n)]++;
    }
    for (int s = 0; s < 3; s++) {
        lo = count[s] < lo ? count[s] : lo;
        hi = count[s] > hi ? count[s] : hi;
    }
    printf("3 shards: %zu %zu %zu, most/least %.3f\n", count[0], count[1], count[2],
           (double)hi / (double)lo);
    assert_true((double)hi <= 1.15 * (double)lo);
    ring_free(r);
}

static void test_adding_a_fourth_moves_little(void **state)
{
    struct ring *r3 = ring_new(shards4, 3, RING_VNODES), *r4 = ring_new(shards4, 4, RING_VNODES);
    size_t moved = 0, moved_not_to_new = 0;
    char buf[64];

    for (int i = 0; i < N_TOPICS; i++) {
        size_t n = topic(buf, sizeof(buf), i), a = ring_lookup(r3, buf, n),
               b = ring_lookup(r4, buf, n);

        if (a != b) {
            moved++;
            moved_not_to_new += b != 3; /* a key only ever moves to the new shard */
        }
    }
    printf("3 -> 4 shards: %.1f %% moved\n", 100.0 * (double)moved / N_TOPICS);
    assert_true(moved <= N_TOPICS * 30 / 100);
    assert_true(moved >= N_TOPICS * 15 / 100); /* about 1/4 */
    assert_int_equal(moved_not_to_new, 0);
    ring_free(r3);
    ring_free(r4);
}

static void test_order_of_names_does_not_matter(void **state)
{
    const char *const rev[] = {shards4[2], shards4[1], shards4[0]};
    struct ring *a = ring_new(shards4, 3, RING_VNODES), *b = ring_new(rev, 3, RING_VNODES);
    char buf[64];

    for (int i = 0; i < 10000; i++) {
        size_t n = topic(buf, sizeof(buf), i);

        assert_string_equal(shards4[ring_lookup(a, buf, n)], rev[ring_lookup(b, buf, n)]);
    }
    ring_free(a);
    ring_free(b);
}

static void test_one_shard_and_edges(void **state)
{
    struct ring *r = ring_new(shards4, 1, 4);

    assert_null(ring_new(shards4, 0, RING_VNODES));
    assert_int_equal(ring_lookup(r, "room:1", 6), 0);
    assert_int_equal(ring_lookup(r, "", 0), 0);
    ring_free(r);
    ring_free(NULL);
    /* the hash is fixed: placement must not change between versions */
    assert_true(ring_hash("user:bob", 8) == ring_hash("user:bob", 8));
    assert_true(ring_hash("user:bob", 8) != ring_hash("user:bod", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance_over_three),
        cmocka_unit_test(test_adding_a_fourth_moves_little),
        cmocka_unit_test(test_order_of_names_does_not_matter),
        cmocka_unit_test(test_one_shard_and_edges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
