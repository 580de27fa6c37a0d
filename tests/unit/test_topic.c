/* test_topic.c: topic names "<kind>:<id>", inbox topics and backplane channel names. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/topic.h"

#include <string.h>

#define VALID(s) topic_is_valid(s, strlen(s))

/* A string of @n copies of @c followed by @tail, in @buf. */
static const char *repeat(char *buf, char c, size_t n, const char *tail)
{
    memset(buf, c, n);
    strcpy(buf + n, tail);
    return buf;
}

static void test_valid_names(void **state)
{
    assert_int_equal(VALID("a:b"), 1);
    assert_int_equal(VALID("room:1"), 1);
    assert_int_equal(VALID("user:alice"), 1);
    assert_int_equal(VALID("chat-room_2:Some.Id@x-y_z"), 1);
    assert_int_equal(VALID("z9:0"), 1);
    assert_int_equal(VALID("a-:A"), 1);
    assert_int_equal(VALID("a_:-"), 1);
}

static void test_invalid_names(void **state)
{
    assert_int_equal(topic_is_valid("", 0), 0);
    assert_int_equal(VALID("a"), 0);
    assert_int_equal(VALID("a:"), 0);  /* empty id */
    assert_int_equal(VALID(":b"), 0);  /* empty kind */
    assert_int_equal(VALID("ab"), 0);  /* no colon */
    assert_int_equal(VALID("abc"), 0); /* no colon, length 3 */
    assert_int_equal(VALID("Room:1"), 0);
    assert_int_equal(VALID("1room:1"), 0);
    assert_int_equal(VALID("_room:1"), 0);
    assert_int_equal(VALID("-room:1"), 0);
    assert_int_equal(VALID("ro.om:1"), 0);
    assert_int_equal(VALID("ro@om:1"), 0);
    assert_int_equal(VALID("room:a:b"), 0); /* second colon */
    assert_int_equal(VALID("room:a b"), 0);
    assert_int_equal(VALID("room:a/b"), 0);
    assert_int_equal(VALID("room:a\"b"), 0);
    assert_int_equal(VALID("room:\xc3\xa9"), 0);
    assert_int_equal(VALID("room:a\n"), 0);
    assert_int_equal(topic_is_valid("room:a\0b", 8), 0); /* embedded NUL */
}

static void test_length_uses_len_not_nul(void **state)
{
    /* only the first @len bytes count */
    assert_int_equal(topic_is_valid("room:1/garbage", 6), 1);
    assert_int_equal(topic_is_valid("room:1", 5), 0);
}

static void test_kind_length_limits(void **state)
{
    char buf[300];

    /* kind [a-z][a-z0-9_-]{0,31}: 32 characters at most */
    assert_int_equal(VALID(repeat(buf, 'k', TOPIC_KIND_MAX, ":x")), 1);
    assert_int_equal(VALID(repeat(buf, 'k', TOPIC_KIND_MAX + 1, ":x")), 0);
}

static void test_id_length_limits(void **state)
{
    char buf[300];

    /* id 1..128 characters */
    memcpy(buf, "k:", 2);
    repeat(buf + 2, 'i', TOPIC_ID_MAX, "");
    assert_int_equal(topic_is_valid(buf, 2 + TOPIC_ID_MAX), 1);
    repeat(buf + 2, 'i', TOPIC_ID_MAX + 1, "");
    assert_int_equal(topic_is_valid(buf, 2 + TOPIC_ID_MAX + 1), 0);

    /* the longest valid name is exactly TOPIC_MAX_LEN */
    repeat(buf, 'k', TOPIC_KIND_MAX, ":");
    repeat(buf + TOPIC_KIND_MAX + 1, 'i', TOPIC_ID_MAX, "");
    assert_int_equal(strlen(buf), TOPIC_MAX_LEN);
    assert_int_equal(topic_is_valid(buf, TOPIC_MAX_LEN), 1);
}

static void test_is_valid_id(void **state)
{
    char buf[300];

    assert_int_equal(topic_is_valid_id("alice", 5), 1);
    assert_int_equal(topic_is_valid_id("A.b-c_d@e9", 10), 1);
    assert_int_equal(topic_is_valid_id("", 0), 0);
    assert_int_equal(topic_is_valid_id("a:b", 3), 0);
    assert_int_equal(topic_is_valid_id("a b", 3), 0);
    assert_int_equal(topic_is_valid_id("a+b", 3), 0);
    assert_int_equal(topic_is_valid_id("a\0b", 3), 0);
    repeat(buf, 'x', TOPIC_ID_MAX, "");
    assert_int_equal(topic_is_valid_id(buf, TOPIC_ID_MAX), 1);
    repeat(buf, 'x', TOPIC_ID_MAX + 1, "");
    assert_int_equal(topic_is_valid_id(buf, TOPIC_ID_MAX + 1), 0);
}

static void test_is_user(void **state)
{
    const char *id = NULL;
    size_t id_len = 0;
    const char *t = "user:alice";

    assert_int_equal(topic_is_user(t, strlen(t), &id, &id_len), 1);
    assert_ptr_equal(id, t + 5);
    assert_int_equal(id_len, 5);
    assert_memory_equal(id, "alice", 5);

    assert_int_equal(topic_is_user("user:x", 6, NULL, NULL), 1);
    id = NULL;
    assert_int_equal(topic_is_user("room:alice", 10, &id, &id_len), 0);
    assert_null(id);
    assert_int_equal(topic_is_user("users:alice", 11, &id, &id_len), 0);
    assert_int_equal(topic_is_user("user:", 5, &id, &id_len), 0);
    assert_int_equal(topic_is_user("use", 3, &id, &id_len), 0);
    assert_int_equal(topic_is_user("xuser:a", 7, &id, &id_len), 0);
}

static void test_format_user(void **state)
{
    char buf[TOPIC_MAX_LEN + 1], id[TOPIC_ID_MAX + 2];

    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(topic_format_user(buf, sizeof(buf), "alice", 5), 10);
    assert_string_equal(buf, "user:alice");
    assert_int_equal(topic_is_valid(buf, 10), 1);

    /* cap must hold "user:" + id + NUL */
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(topic_format_user(buf, 11, "alice", 5), 10);
    assert_string_equal(buf, "user:alice");
    assert_int_equal(topic_format_user(buf, 10, "alice", 5), -1);
    assert_int_equal(topic_format_user(buf, 0, "alice", 5), -1);

    /* invalid ids */
    assert_int_equal(topic_format_user(buf, sizeof(buf), "", 0), -1);
    assert_int_equal(topic_format_user(buf, sizeof(buf), "a:b", 3), -1);
    assert_int_equal(topic_format_user(buf, sizeof(buf), "a b", 3), -1);

    /* the longest id fits the longest topic */
    repeat(id, 'q', TOPIC_ID_MAX, "");
    assert_int_equal(topic_format_user(buf, sizeof(buf), id, TOPIC_ID_MAX), 5 + TOPIC_ID_MAX);
    assert_int_equal(strlen(buf), 5 + TOPIC_ID_MAX);
    repeat(id, 'q', TOPIC_ID_MAX + 1, "");
    assert_int_equal(topic_format_user(buf, sizeof(buf), id, TOPIC_ID_MAX + 1), -1);
}

static void test_format_channel(void **state)
{
    char buf[8 + TOPIC_MAX_LEN], name[TOPIC_MAX_LEN + 1];

    assert_int_equal(topic_format_channel(buf, sizeof(buf), "room:1", 6), 12);
    assert_string_equal(buf, "topic:room:1");
    assert_int_equal(topic_format_channel(buf, sizeof(buf), "user:7", 6), 12);
    assert_string_equal(buf, "topic:user:7");

    /* "topic:" + name + NUL */
    assert_int_equal(topic_format_channel(buf, 13, "room:1", 6), 12);
    assert_string_equal(buf, "topic:room:1");
    assert_int_equal(topic_format_channel(buf, 12, "room:1", 6), -1);

    /* only valid topic names */
    assert_int_equal(topic_format_channel(buf, sizeof(buf), "room", 4), -1);
    assert_int_equal(topic_format_channel(buf, sizeof(buf), "Room:1", 6), -1);
    assert_int_equal(topic_format_channel(buf, sizeof(buf), "", 0), -1);

    repeat(name, 'k', TOPIC_KIND_MAX, ":");
    repeat(name + TOPIC_KIND_MAX + 1, 'i', TOPIC_ID_MAX, "");
    assert_int_equal(topic_format_channel(buf, sizeof(buf), name, TOPIC_MAX_LEN),
                     6 + TOPIC_MAX_LEN);
    assert_memory_equal(buf, "topic:", 6);
    assert_memory_equal(buf + 6, name, TOPIC_MAX_LEN + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_length_uses_len_not_nul),
        cmocka_unit_test(test_kind_length_limits),
        cmocka_unit_test(test_id_length_limits),
        cmocka_unit_test(test_is_valid_id),
        cmocka_unit_test(test_is_user),
        cmocka_unit_test(test_format_user),
        cmocka_unit_test(test_format_channel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
