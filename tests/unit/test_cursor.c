/* test_cursor.c: the opaque resume cursor: format, strict parse, find. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/cursor.h"

#include <stdio.h>
#include <string.h>

#define EPOCH "0123456789abcdef"
/* base64url("r1|room:1|0123456789abcdef|5-2"), computed independently */
#define CUR_ROOM1_5_2 "cjF8cm9vbToxfDAxMjM0NTY3ODlhYmNkZWZ8NS0y"

/* An encoder independent of auth.c, to build cursors (good and bad) from raw text. */
static size_t b64url(const char *in, size_t len, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;

        if (i + 1 < len)
            v |= (unsigned)(unsigned char)in[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = tbl[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* Parses the cursor whose decoded text is @raw (@len bytes); returns cursor_parse()'s result. */
static int parse_raw_len(const char *raw, size_t len)
{
    char text[CURSOR_TEXT_MAX * 2];
    struct cursor c;
    size_t n;
    int rc;

    assert_true(len * 4 / 3 + 4 < sizeof(text));
    n = b64url(raw, len, text);
    rc = cursor_parse(&c, text, n);
    cursor_release(&c);
    return rc;
}

static int parse_raw(const char *raw)
{
    return parse_raw_len(raw, strlen(raw));
}

static struct cursor_pos mkpos(const char *topic, const char *epoch, uint64_t ms, uint64_t seq)
{
    struct cursor_pos p;

    p.topic = topic;
    p.topic_len = strlen(topic);
    memcpy(p.epoch, epoch, MSG_EPOCH_LEN + 1);
    p.id.ms = ms;
    p.id.seq = seq;
    return p;
}

static void assert_pos(const struct cursor_pos *p, const char *topic, const char *epoch,
                       uint64_t ms, uint64_t seq)
{
    assert_non_null(p);
    assert_int_equal(p->topic_len, strlen(topic));
    assert_memory_equal(p->topic, topic, p->topic_len);
    assert_string_equal(p->epoch, epoch);
    assert_true(p->id.ms == ms);
    assert_true(p->id.seq == seq);
}

static void test_format_one_exact(void **state)
{
    struct cursor_pos p = mkpos("room:1", EPOCH, 5, 2);
    char out[CURSOR_TEXT_MAX];

    assert_int_equal(cursor_format(&p, 1, out, sizeof(out)), strlen(CUR_ROOM1_5_2));
    assert_string_equal(out, CUR_ROOM1_5_2);
}

static void test_parse_hand_built(void **state)
{
    struct cursor c;

    assert_int_equal(cursor_parse(&c, CUR_ROOM1_5_2, strlen(CUR_ROOM1_5_2)), 0);
    assert_int_equal(c.n, 1);
    assert_pos(&c.pos[0], "room:1", EPOCH, 5, 2);
    assert_ptr_equal(cursor_find(&c, "room:1", 6), &c.pos[0]);
    cursor_release(&c);
    assert_null(c.raw);
    assert_int_equal(c.n, 0);
}

static void test_round_trip_one(void **state)
{
    struct cursor_pos p = mkpos("user:alice@example.com", "ffffffffffffffff", 1700000000123ULL, 0);
    char out[CURSOR_TEXT_MAX];
    struct cursor c;
    int n = cursor_format(&p, 1, out, sizeof(out));

    assert_true(n > 0);
    assert_int_equal(strlen(out), (size_t)n);
    /* url-safe, unpadded */
    assert_int_equal(
        strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), (size_t)n);
    assert_int_equal(cursor_parse(&c, out, (size_t)n), 0);
    assert_int_equal(c.n, 1);
    assert_pos(&c.pos[0], "user:alice@example.com", "ffffffffffffffff", 1700000000123ULL, 0);
    cursor_release(&c);
}

static void test_round_trip_several(void **state)
{
    struct cursor_pos p[3] = {
        mkpos("room:1", EPOCH, 5, 2),
        mkpos("chat:x", "00000000deadbeef", 0, 0),
        mkpos("user:bob", "abcdefabcdef0000", UINT64_MAX, UINT64_MAX),
    };
    char out[CURSOR_TEXT_MAX], raw[512];
    struct cursor c;
    int n = cursor_format(p, 3, out, sizeof(out));

    /* exactly the documented text */
    snprintf(raw, sizeof(raw),
             "r1|room:1|%s|5-2|chat:x|00000000deadbeef|0-0|user:bob|abcdefabcdef0000|"
             "18446744073709551615-18446744073709551615",
             EPOCH);
    {
        char want[1024];

        assert_int_equal(n, (int)b64url(raw, strlen(raw), want));
        assert_string_equal(out, want);
    }
    assert_int_equal(cursor_parse(&c, out, (size_t)n), 0);
    assert_int_equal(c.n, 3);
    assert_pos(&c.pos[0], "room:1", EPOCH, 5, 2);
    assert_pos(&c.pos[1], "chat:x", "00000000deadbeef", 0, 0);
    assert_pos(&c.pos[2], "user:bob", "abcdefabcdef0000", UINT64_MAX, UINT64_MAX);
    cursor_release(&c);
}

static void test_find(void **state)
{
    char raw[256], text[512];
    struct cursor c;
    size_t n;

    snprintf(raw, sizeof(raw), "r1|room:1|%s|5-2|room:12|%s|7-0|chat:x|%s|9-9", EPOCH, EPOCH,
             EPOCH);
    n = b64url(raw, strlen(raw), text);
    assert_int_equal(cursor_parse(&c, text, n), 0);
    assert_int_equal(c.n, 3);
    assert_ptr_equal(cursor_find(&c, "room:1", 6), &c.pos[0]);
    assert_ptr_equal(cursor_find(&c, "room:12", 7), &c.pos[1]);
    assert_ptr_equal(cursor_find(&c, "chat:x", 6), &c.pos[2]);
    assert_pos(cursor_find(&c, "room:12", 7), "room:12", EPOCH, 7, 0);
    assert_null(cursor_find(&c, "room:2", 6));
    assert_null(cursor_find(&c, "room:", 5));
    assert_null(cursor_find(&c, "room:123", 8));
    assert_null(cursor_find(&c, "chat:X", 6));
    /* only @len bytes count */
    assert_ptr_equal(cursor_find(&c, "room:12", 6), &c.pos[0]);
    cursor_release(&c);
    assert_null(cursor_find(&c, "room:1", 6));
}

static void test_format_cap(void **state)
{
    struct cursor_pos p = mkpos("room:1", EPOCH, 5, 2);
    size_t len = strlen(CUR_ROOM1_5_2);
    char out[CURSOR_TEXT_MAX];

    assert_int_equal(cursor_format(&p, 1, out, len + 1), (int)len);
    assert_string_equal(out, CUR_ROOM1_5_2);
    assert_int_equal(cursor_format(&p, 1, out, len), -1);
    assert_int_equal(cursor_format(&p, 1, out, 4), -1);
}

/* CURSOR_MAX_TOPICS topics of the longest names and ids fit CURSOR_TEXT_MAX and parse back. */
static void test_max_topics_longest(void **state)
{
    static char names[CURSOR_MAX_TOPICS][TOPIC_MAX_LEN + 1];
    static char out[CURSOR_TEXT_MAX];
    static struct cursor c;
    struct cursor_pos p[CURSOR_MAX_TOPICS];
    int n;

    for (size_t i = 0; i < CURSOR_MAX_TOPICS; i++) {
        memset(names[i], 'k', TOPIC_KIND_MAX);
        names[i][TOPIC_KIND_MAX] = ':';
        memset(names[i] + TOPIC_KIND_MAX + 1, 'i', TOPIC_ID_MAX);
        snprintf(names[i] + TOPIC_MAX_LEN - 2, 3, "%02zu", i);
        assert_int_equal(topic_is_valid(names[i], TOPIC_MAX_LEN), 1);
        p[i] = mkpos(names[i], "ffffffffffffffff", UINT64_MAX - i, UINT64_MAX);
    }
    n = cursor_format(p, CURSOR_MAX_TOPICS, out, sizeof(out));
    assert_true(n > 0);
    assert_true((size_t)n < CURSOR_TEXT_MAX);
    assert_int_equal(cursor_parse(&c, out, (size_t)n), 0);
    assert_int_equal(c.n, CURSOR_MAX_TOPICS);
    for (size_t i = 0; i < CURSOR_MAX_TOPICS; i++) {
        assert_pos(&c.pos[i], names[i], "ffffffffffffffff", UINT64_MAX - i, UINT64_MAX);
        assert_ptr_equal(cursor_find(&c, names[i], TOPIC_MAX_LEN), &c.pos[i]);
    }
    cursor_release(&c);
}

/* Builds "r1|t:0|E|1-0|t:1|E|1-0|..." with @n positions into @raw. */
static size_t many_topics(char *raw, size_t cap, size_t n)
{
    size_t len = (size_t)snprintf(raw, cap, "r1");

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(raw + len, cap - len, "|t:%zu|%s|1-0", i, EPOCH);
    return len;
}

static void test_topic_count_limit(void **state)
{
    static char raw[CURSOR_TEXT_MAX];

    assert_int_equal(parse_raw_len(raw, many_topics(raw, sizeof(raw), 1)), 0);
    assert_int_equal(parse_raw_len(raw, many_topics(raw, sizeof(raw), CURSOR_MAX_TOPICS)), 0);
    assert_int_equal(parse_raw_len(raw, many_topics(raw, sizeof(raw), CURSOR_MAX_TOPICS + 1)), -1);
    assert_int_equal(parse_raw_len(raw, many_topics(raw, sizeof(raw), 200)), -1);
}

static void test_reject_empty(void **state)
{
    struct cursor c;

    assert_int_equal(cursor_parse(&c, "", 0), -1);
    assert_null(c.raw);
    assert_int_equal(c.n, 0);
    cursor_release(&c);
    assert_int_equal(parse_raw(""), -1);
}

static void test_reject_not_base64(void **state)
{
    static const char *const bad[] = {
        "@@@@",
        "cjF8cm9vbToxfDAxMjM0NTY3ODlhYmNkZWZ8NS0y!",
        "cjF8cm9vbToxfDAx MjM0NTY3ODlhYmNkZWZ8NS0y",
        "cjF8cm9vbToxfDAx.MjM0NTY3ODlhYmNkZWZ8NS0y",
        "cjF8cm9vbToxfDAx\nMjM0NTY3ODlhYmNkZWZ8NS0y",
        "cjF8cm9vbToxfDAxMjM0NTY3ODlhYmNkZWZ8NS0yX", /* 41 chars: a dangling 6 bits */
        "r1|room:1|0123456789abcdef|5-2",            /* raw text, not encoded */
    };
    struct cursor c;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cursor_parse(&c, bad[i], strlen(bad[i])) != -1)
            fail_msg("cursor_parse accepted \"%s\"", bad[i]);
        cursor_release(&c);
    }
    /* non-canonical: the unused low bits of the last character are not zero */
    {
        const char *raw = "r1|room:1|" EPOCH "|5-20";
        char text[64];
        size_t n = b64url(raw, strlen(raw), text);

        assert_int_equal(strlen(raw) % 3, 1); /* the last character carries 4 unused bits */
        assert_int_equal(cursor_parse(&c, text, n), 0);
        cursor_release(&c);
        assert_non_null(strchr("AQgw", text[n - 1])); /* low 4 bits are 0 */
        text[n - 1]++;                                /* B, R, h or x: not 0 any more */
        assert_int_equal(cursor_parse(&c, text, n), -1);
        cursor_release(&c);
    }
    /* an embedded NUL in the text */
    assert_int_equal(cursor_parse(&c, "cjF8cm9v\0bToxfDAxMjM0", 21), -1);
    cursor_release(&c);
}

static void test_reject_too_long_text(void **state)
{
    static char text[CURSOR_TEXT_MAX + 8];
    struct cursor c;

    memset(text, 'A', sizeof(text));
    assert_int_equal(cursor_parse(&c, text, CURSOR_TEXT_MAX + 4), -1);
    cursor_release(&c);
}

static void test_reject_version(void **state)
{
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2"), 0); /* control */
    assert_int_equal(parse_raw("r2|room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("R1|room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r10|room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r|room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("|r1|room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw(" r1|room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1xroom:1|" EPOCH "|5-2"), -1); /* "r1" then not '|' */
    assert_int_equal(parse_raw("r1:room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1"), -1);
    assert_int_equal(parse_raw("r1|"), -1);
    assert_int_equal(parse_raw("r"), -1);
}

static void test_reject_bad_topic(void **state)
{
    assert_int_equal(parse_raw("r1|Room:1|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1|room|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1|room:|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1||" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1|room:a b|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw("r1|room:1:2|" EPOCH "|5-2"), -1);
    assert_int_equal(parse_raw_len("r1|room:\0|" EPOCH "|5-2", 29), -1);
    /* a bad second position spoils the whole cursor */
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|Bad:1|" EPOCH "|1-0"), -1);
}

static void test_reject_bad_epoch(void **state)
{
    assert_int_equal(parse_raw("r1|room:1|0123456789abcde|5-2"), -1);   /* 15 */
    assert_int_equal(parse_raw("r1|room:1|0123456789abcdef0|5-2"), -1); /* 17 */
    assert_int_equal(parse_raw("r1|room:1||5-2"), -1);
    assert_int_equal(parse_raw("r1|room:1|0123456789ABCDEF|5-2"), -1); /* upper case */
    assert_int_equal(parse_raw("r1|room:1|0123456789abcdeF|5-2"), -1);
    assert_int_equal(parse_raw("r1|room:1|0123456789abcdeg|5-2"), -1); /* not hex */
    assert_int_equal(parse_raw("r1|room:1|0123456789abcde-|5-2"), -1);
    assert_int_equal(parse_raw("r1|room:1|0x23456789abcdef|5-2"), -1);
    assert_int_equal(parse_raw("r1|room:1| 123456789abcdef|5-2"), -1);
    assert_int_equal(parse_raw_len("r1|room:1|0123456789abcde\0|5-2", 30), -1);
}

static void test_reject_bad_id(void **state)
{
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|-2"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|x-1"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2-1"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2 "), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|18446744073709551616-0"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|0-18446744073709551616"), -1);
    assert_int_equal(parse_raw_len("r1|room:1|" EPOCH "|5-2\0", 31), -1);
}

static void test_reject_missing_fields(void **state)
{
    assert_int_equal(parse_raw("r1|room:1"), -1);
    assert_int_equal(parse_raw("r1|room:1|"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|chat:x"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|chat:x|" EPOCH), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|chat:x|" EPOCH "|"), -1);
}

static void test_reject_trailing_bar(void **state)
{
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2||"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|chat:x|" EPOCH "|1-0|"), -1);
}

static void test_reject_duplicate_topic(void **state)
{
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|room:1|" EPOCH "|6-0"), -1);
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|chat:x|" EPOCH "|1-0|room:1|" EPOCH "|5-2"),
                     -1);
    /* a topic that is a prefix of another is not a duplicate */
    assert_int_equal(parse_raw("r1|room:1|" EPOCH "|5-2|room:11|" EPOCH "|6-0"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_one_exact),
        cmocka_unit_test(test_parse_hand_built),
        cmocka_unit_test(test_round_trip_one),
        cmocka_unit_test(test_round_trip_several),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_format_cap),
        cmocka_unit_test(test_max_topics_longest),
        cmocka_unit_test(test_topic_count_limit),
        cmocka_unit_test(test_reject_empty),
        cmocka_unit_test(test_reject_not_base64),
        cmocka_unit_test(test_reject_too_long_text),
        cmocka_unit_test(test_reject_version),
        cmocka_unit_test(test_reject_bad_topic),
        cmocka_unit_test(test_reject_bad_epoch),
        cmocka_unit_test(test_reject_bad_id),
        cmocka_unit_test(test_reject_missing_fields),
        cmocka_unit_test(test_reject_trailing_bar),
        cmocka_unit_test(test_reject_duplicate_topic),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
