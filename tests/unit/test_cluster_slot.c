/* test_cluster_slot.c: CRC16 and key slots against the Redis cluster specification's vectors,
 * hash tags (the rules the spec lists, and rtgate's stream keys), MOVED/ASK parsing. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/cluster_slot.h"

#include <stdio.h>
#include <string.h>

#define L(s) s, strlen(s)

static void test_crc16_vector(void **state)
{
    /* the spec: "the output of CRC16 for 123456789 is 0x31C3" (XMODEM) */
    assert_int_equal(cluster_crc16(L("123456789")), 0x31C3);
    assert_int_equal(cluster_crc16("", 0), 0);
}

static void test_key_slots(void **state)
{
    /* CLUSTER KEYSLOT answers from the Redis documentation */
    assert_int_equal(cluster_key_slot(L("foo")), 12182);
    assert_int_equal(cluster_key_slot(L("somekey")), 11058);
    assert_int_equal(cluster_key_slot(L("123456789")), 0x31C3 % 16384);
    /* measured: CLUSTER KEYSLOT on redis-server 7.0 --cluster-enabled yes */
    assert_int_equal(cluster_key_slot(L("topic:user:B")), 608);
    assert_int_equal(cluster_key_slot(L("{topic:user:B}:history")), 608);
    assert_int_equal(cluster_key_slot(L("foo{{bar}}zap")), 4015);
    for (int i = 0; i < 1000; i++) {
        char k[16];

        snprintf(k, sizeof(k), "k%d", i);
        assert_true(cluster_key_slot(k, strlen(k)) < CLUSTER_SLOTS);
    }
}

static void test_hash_tags(void **state)
{
    unsigned bar = cluster_key_slot(L("bar"));

    /* the spec's examples */
    assert_int_equal(cluster_key_slot(L("{user1000}.following")),
                     cluster_key_slot(L("{user1000}.followers")));
    assert_int_equal(cluster_key_slot(L("{user1000}.following")), cluster_key_slot(L("user1000")));
    assert_int_equal(cluster_key_slot(L("foo{}{bar}")), cluster_crc16(L("foo{}{bar}")) % 16384);
    assert_int_equal(cluster_key_slot(L("foo{{bar}}zap")), cluster_key_slot(L("{bar")));
    assert_int_equal(cluster_key_slot(L("foo{bar}{zap}")), bar);
    assert_int_equal(cluster_key_slot(L("{bar")), cluster_crc16(L("{bar")) % 16384); /* no '}' */
    /* rtgate's keys: a topic's stream, epoch and trim mark live with its channel */
    assert_int_equal(cluster_key_slot(L("{topic:user:B}:history")),
                     cluster_key_slot(L("topic:user:B")));
    assert_int_equal(cluster_key_slot(L("{topic:user:B}:epoch")),
                     cluster_key_slot(L("topic:user:B")));
    assert_int_equal(cluster_key_slot(L("{topic:room:7}:trimmed")),
                     cluster_key_slot(L("topic:room:7")));
}

static void test_redirects(void **state)
{
    struct cluster_redirect r;

    assert_int_equal(cluster_parse_redirect(L("MOVED 3999 127.0.0.1:6381"), &r), 0);
    assert_int_equal(r.ask, 0);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6381);
    assert_int_equal(cluster_parse_redirect(L("ASK 16383 ::1:7000"), &r), 0);
    assert_int_equal(r.ask, 1);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 7000);
    assert_int_equal(cluster_parse_redirect(L("MOVED 0 redis-3.internal:30001"), &r), 0);
    assert_string_equal(r.host, "redis-3.internal");

    assert_int_equal(cluster_parse_redirect(L("MOVED 16384 127.0.0.1:6381"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1 127.0.0.1"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1 127.0.0.1:"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1 :6379"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1 127.0.0.1:65536"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1 127.0.0.1:0"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED x 127.0.0.1:1"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1  127.0.0.1:1"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("ERR unknown command"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED"), &r), -1);
    assert_int_equal(cluster_parse_redirect(L("MOVED 1 127.0.0.1:1 extra"), &r), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vector),
        cmocka_unit_test(test_key_slots),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_redirects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
