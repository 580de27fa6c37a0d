/* test_msg.c: message ids, the frames rendered once per message, control frames, reset events,
 * refcounts. */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/msg.h"

#include "rtgate/cursor.h"
#include "rtgate/topic.h"

#include <stdio.h>
#include <string.h>

#define EPOCH "0123456789abcdef"
/* base64url("r1|room:1|0123456789abcdef|5-2"), computed independently */
#define CUR_ROOM1_5_2 "cjF8cm9vbToxfDAxMjM0NTY3ODlhYmNkZWZ8NS0y"
#define ENV_ROOM1_5_2                                                                              \
    "{\"id\":\"5-2\",\"topic\":\"room:1\",\"from\":\"alice\",\"ts\":1700000000123,"                \
    "\"data\":{\"x\":[1,\"two\"]}}"
#define DATA "{\"x\":[1,\"two\"]}"

static struct msg_id mkid(uint64_t ms, uint64_t seq)
{
    struct msg_id id = {ms, seq};

    return id;
}

static int parse_str(const char *s, struct msg_id *id)
{
    return msg_id_parse(s, strlen(s), id);
}

static struct msg *known_msg(void)
{
    return msg_new("room:1", 6, EPOCH, mkid(5, 2), 1700000000123ULL, "alice", 5, DATA,
                   strlen(DATA));
}

/* ---- ids ---- */

static void test_id_parse_valid(void **state)
{
    struct msg_id id;

    assert_int_equal(parse_str("0-0", &id), 0);
    assert_true(id.ms == 0 && id.seq == 0);
    assert_int_equal(parse_str("5-2", &id), 0);
    assert_true(id.ms == 5 && id.seq == 2);
    assert_int_equal(parse_str("1700000000123-42", &id), 0);
    assert_true(id.ms == 1700000000123ULL && id.seq == 42);
    assert_int_equal(parse_str("18446744073709551615-18446744073709551615", &id), 0);
    assert_true(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
    assert_int_equal(parse_str("18446744073709551615-0", &id), 0);
    assert_true(id.ms == UINT64_MAX && id.seq == 0);
    /* 20 digits, small value */
    assert_int_equal(parse_str("00000000000000000009-1", &id), 0);
    assert_true(id.ms == 9 && id.seq == 1);
}

static void test_id_parse_respects_len(void **state)
{
    struct msg_id id;

    assert_int_equal(msg_id_parse("5-23", 3, &id), 0);
    assert_true(id.ms == 5 && id.seq == 2);
    assert_int_equal(msg_id_parse("5-2", 2, &id), -1); /* "5-" */
    assert_int_equal(msg_id_parse("5-2", 1, &id), -1); /* "5" */
    assert_int_equal(msg_id_parse("5-2", 0, &id), -1);
}

static void test_id_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "-",
        "5",
        "5-",
        "-2",
        "5-2-1",
        "5--2",
        "+5-2",
        "5-+2",
        "-5-2",
        " 5-2",
        "5 -2",
        "5- 2",
        "5-2 ",
        "5_2",
        "5.0-2",
        "a-1",
        "1-a",
        "0x5-2",
        "5-2\n",
        "18446744073709551616-0",                    /* ms = 2^64 */
        "0-18446744073709551616",                    /* seq = 2^64 */
        "18446744073709551620-0",                    /* last digit pushes over */
        "99999999999999999999-0",                    /* 20 digits, too big */
        "000000000000000000001-0",                   /* 21 digits */
        "0-000000000000000000001",                   /* 21 digits */
        "184467440737095516150-0",                   /* 21 digits */
        "18446744073709551615-18446744073709551616", /* max ms, seq overflows */
    };
    struct msg_id id;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_str(bad[i], &id) != -1)
            fail_msg("msg_id_parse accepted \"%s\"", bad[i]);
    }
    {
        static const char nul[] = {'5', '-', '\0', '2'};

        assert_int_equal(msg_id_parse(nul, sizeof(nul), &id), -1);
    }
}

static void test_id_format(void **state)
{
    char buf[MSG_ID_STR_MAX];

    assert_int_equal(msg_id_format(mkid(0, 0), buf), 3);
    assert_string_equal(buf, "0-0");
    assert_int_equal(msg_id_format(mkid(5, 2), buf), 3);
    assert_string_equal(buf, "5-2");
    assert_int_equal(msg_id_format(mkid(1700000000123ULL, 7), buf), 15);
    assert_string_equal(buf, "1700000000123-7");
    assert_int_equal(msg_id_format(mkid(UINT64_MAX, UINT64_MAX), buf), MSG_ID_STR_MAX - 1);
    assert_string_equal(buf, "18446744073709551615-18446744073709551615");
}

static void test_id_format_parse_round_trip(void **state)
{
    static const uint64_t v[] = {0, 1, 9, 10, 1700000000123ULL, UINT64_MAX - 1, UINT64_MAX};
    char buf[MSG_ID_STR_MAX];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (size_t j = 0; j < sizeof(v) / sizeof(v[0]); j++) {
            struct msg_id id = mkid(v[i], v[j]), back = {77, 77};
            int n = msg_id_format(id, buf);

            assert_int_equal(n, (int)strlen(buf));
            assert_int_equal(msg_id_parse(buf, (size_t)n, &back), 0);
            assert_true(back.ms == id.ms && back.seq == id.seq);
        }
    }
}

static void test_id_cmp(void **state)
{
    assert_int_equal(msg_id_cmp(mkid(5, 2), mkid(5, 2)), 0);
    assert_int_equal(msg_id_cmp(mkid(5, 1), mkid(5, 2)), -1);
    assert_int_equal(msg_id_cmp(mkid(5, 3), mkid(5, 2)), 1);
    /* ms dominates seq */
    assert_int_equal(msg_id_cmp(mkid(4, 999), mkid(5, 0)), -1);
    assert_int_equal(msg_id_cmp(mkid(6, 0), mkid(5, 999)), 1);
    /* no signed-difference tricks on big values */
    assert_int_equal(msg_id_cmp(mkid(0, 0), mkid(UINT64_MAX, 0)), -1);
    assert_int_equal(msg_id_cmp(mkid(UINT64_MAX, 0), mkid(0, 0)), 1);
    assert_int_equal(msg_id_cmp(mkid(1, 0), mkid(1, UINT64_MAX)), -1);
    assert_int_equal(msg_id_cmp(mkid(1, UINT64_MAX), mkid(1, 0)), 1);
    assert_int_equal(msg_id_cmp(mkid(UINT64_MAX, UINT64_MAX), mkid(UINT64_MAX, UINT64_MAX)), 0);
    assert_int_equal(msg_id_is_zero(mkid(0, 0)), 1);
    assert_int_equal(msg_id_is_zero(mkid(0, 1)), 0);
    assert_int_equal(msg_id_is_zero(mkid(1, 0)), 0);
}

static void test_id_next(void **state)
{
    struct msg_id n;

    /* clock moved forward: (now, 0) */
    n = msg_id_next(mkid(0, 0), 1000);
    assert_true(n.ms == 1000 && n.seq == 0);
    n = msg_id_next(mkid(1000, 7), 1001);
    assert_true(n.ms == 1001 && n.seq == 0);
    /* same millisecond: seq + 1 */
    n = msg_id_next(mkid(1000, 7), 1000);
    assert_true(n.ms == 1000 && n.seq == 8);
    /* clock went backwards: keep last.ms, seq + 1 */
    n = msg_id_next(mkid(1000, 7), 10);
    assert_true(n.ms == 1000 && n.seq == 8);
    n = msg_id_next(mkid(1000, 7), 0);
    assert_true(n.ms == 1000 && n.seq == 8);
    /* clock at 0 with no previous id */
    n = msg_id_next(mkid(0, 0), 0);
    assert_true(n.ms == 0 && n.seq == 1);
}

static void test_id_next_clock_steps_back_sequence(void **state)
{
    static const uint64_t clock[] = {100, 100, 101, 50, 50, 99, 101, 102, 0, 103, 103};
    static const struct msg_id want[] = {{100, 0}, {100, 1}, {101, 0}, {101, 1}, {101, 2}, {101, 3},
                                         {101, 4}, {102, 0}, {102, 1}, {103, 0}, {103, 1}};
    struct msg_id last = {0, 0};

    for (size_t i = 0; i < sizeof(clock) / sizeof(clock[0]); i++) {
        struct msg_id n = msg_id_next(last, clock[i]);

        assert_true(n.ms == want[i].ms && n.seq == want[i].seq);
        assert_int_equal(msg_id_cmp(n, last), 1);
        last = n;
    }
}

/* The header promises ids are monotonic whatever the clock does. With seq already at its
 * maximum, seq + 1 wraps to 0 and the "next" id would sort before @last. */
static void test_id_next_seq_overflow_stays_monotonic(void **state)
{
    struct msg_id last = {1000, UINT64_MAX}, n;

    n = msg_id_next(last, 1000);
    assert_int_equal(msg_id_cmp(n, last), 1);
    n = msg_id_next(last, 5);
    assert_int_equal(msg_id_cmp(n, last), 1);
    /* a later clock is still fine */
    n = msg_id_next(last, 1001);
    assert_true(n.ms == 1001 && n.seq == 0);
}

static void test_id_prev(void **state)
{
    struct msg_id p;

    p = msg_id_prev(mkid(5, 2));
    assert_true(p.ms == 5 && p.seq == 1);
    p = msg_id_prev(mkid(5, 1));
    assert_true(p.ms == 5 && p.seq == 0);
    /* seq 0: the last seq of the previous millisecond */
    p = msg_id_prev(mkid(5, 0));
    assert_true(p.ms == 4 && p.seq == UINT64_MAX);
    p = msg_id_prev(mkid(1, 0));
    assert_true(p.ms == 0 && p.seq == UINT64_MAX);
    p = msg_id_prev(mkid(0, 1));
    assert_true(p.ms == 0 && p.seq == 0);
    /* 0-0 stays 0-0 */
    p = msg_id_prev(mkid(0, 0));
    assert_true(p.ms == 0 && p.seq == 0);
    p = msg_id_prev(mkid(UINT64_MAX, UINT64_MAX));
    assert_true(p.ms == UINT64_MAX && p.seq == UINT64_MAX - 1);
    p = msg_id_prev(mkid(UINT64_MAX, 0));
    assert_true(p.ms == UINT64_MAX - 1 && p.seq == UINT64_MAX);
    p = msg_id_prev(mkid(1700000000123ULL, 0));
    assert_true(p.ms == 1700000000122ULL && p.seq == UINT64_MAX);
}

/* prev(id) is the greatest id before id: nothing lies between them, so the id that follows it
 * (whatever the clock says) is id again, and prev undoes next. */
static void test_id_prev_is_next_inverse(void **state)
{
    static const uint64_t v[] = {0, 1, 2, 9, 1700000000123ULL, UINT64_MAX - 1, UINT64_MAX};

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (size_t j = 0; j < sizeof(v) / sizeof(v[0]); j++) {
            struct msg_id id = mkid(v[i], v[j]), p = msg_id_prev(id), n;

            if (msg_id_is_zero(id))
                continue;
            assert_int_equal(msg_id_cmp(p, id), -1);
            n = msg_id_next(p, 0);
            assert_true(n.ms == id.ms && n.seq == id.seq);
            if (id.ms == UINT64_MAX && id.seq == UINT64_MAX)
                continue; /* no id follows the greatest */
            n = msg_id_next(id, 0);
            p = msg_id_prev(n);
            assert_true(p.ms == id.ms && p.seq == id.seq);
        }
    }
}

/* ---- rendered messages ---- */

static void test_msg_fields(void **state)
{
    struct msg *m = known_msg();

    assert_int_equal(m->refs, 1);
    assert_true(m->id.ms == 5 && m->id.seq == 2);
    assert_int_equal(m->ts, 1700000000123ULL);
    assert_int_equal(m->topic_len, 6);
    assert_string_equal(m->topic, "room:1"); /* NUL-terminated copy */
    assert_int_equal(m->cursor_len, strlen(CUR_ROOM1_5_2));
    assert_memory_equal(m->cursor, CUR_ROOM1_5_2, m->cursor_len);
    assert_string_equal(m->epoch, EPOCH);
    assert_int_equal(m->is_reset, 0);
    msg_unref(m);
}

static void test_msg_exact_envelope(void **state)
{
    struct msg *m = known_msg();
    const char *want = ENV_ROOM1_5_2;

    assert_int_equal(m->env_len, strlen(want));
    assert_memory_equal(m->env, want, m->env_len);
    msg_unref(m);
}

static void test_msg_exact_ws_frame(void **state)
{
    struct msg *m = known_msg();
    const char *want =
        "{\"type\":\"message\",\"id\":\"5-2\",\"topic\":\"room:1\",\"from\":\"alice\","
        "\"ts\":1700000000123,\"data\":{\"x\":[1,\"two\"]},"
        "\"cursor\":\"" CUR_ROOM1_5_2 "\"}";

    assert_int_equal(m->ws_len, strlen(want));
    assert_memory_equal(m->ws, want, m->ws_len);
    msg_unref(m);
}

static void test_msg_exact_sse_frame(void **state)
{
    struct msg *m = known_msg();
    const char *want = "id: " CUR_ROOM1_5_2 "\ndata: " ENV_ROOM1_5_2 "\n\n";

    assert_int_equal(m->sse_len, strlen(want));
    assert_memory_equal(m->sse, want, m->sse_len);
    msg_unref(m);
}

static void test_msg_sse_data_is_tail_of_sse(void **state)
{
    struct msg *m = known_msg();
    const char *want = "data: " ENV_ROOM1_5_2 "\n\n";

    assert_int_equal(m->sse_data_len, strlen(want));
    assert_memory_equal(m->sse_data, want, m->sse_data_len);
    assert_ptr_equal(m->sse_data + m->sse_data_len, m->sse + m->sse_len);
    assert_true(m->sse_data > m->sse);
    /* the envelope is the middle of the SSE frame */
    assert_ptr_equal(m->env, m->sse_data + 6);
    assert_ptr_equal(m->env + m->env_len + 2, m->sse + m->sse_len);
    msg_unref(m);
}

static void test_msg_empty_from_is_null(void **state)
{
    struct msg *m = msg_new("user:bob", 8, "ffffffffffffffff", mkid(1700000000000ULL, 0),
                            1700000000001ULL, "", 0, "\"hi\"", 4);
    const char *env = "{\"id\":\"1700000000000-0\",\"topic\":\"user:bob\",\"from\":null,"
                      "\"ts\":1700000000001,\"data\":\"hi\"}";
    char ws[512], sse[512];

    snprintf(ws, sizeof(ws),
             "{\"type\":\"message\",\"id\":\"1700000000000-0\",\"topic\":\"user:bob\","
             "\"from\":null,\"ts\":1700000000001,\"data\":\"hi\",\"cursor\":\"%.*s\"}",
             (int)m->cursor_len, m->cursor);
    snprintf(sse, sizeof(sse), "id: %.*s\ndata: %s\n\n", (int)m->cursor_len, m->cursor, env);
    assert_int_equal(m->env_len, strlen(env));
    assert_memory_equal(m->env, env, m->env_len);
    assert_int_equal(m->ws_len, strlen(ws));
    assert_memory_equal(m->ws, ws, m->ws_len);
    assert_int_equal(m->sse_len, strlen(sse));
    assert_memory_equal(m->sse, sse, m->sse_len);
    msg_unref(m);
}

static void test_msg_cursor_decodes_to_its_position(void **state)
{
    struct msg *m = msg_new("chat:general", 12, "00000000deadbeef", mkid(1700000000999ULL, 3), 1,
                            "u1", 2, "null", 4);
    struct cursor c;

    assert_int_equal(cursor_parse(&c, m->cursor, m->cursor_len), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.pos[0].topic_len, 12);
    assert_memory_equal(c.pos[0].topic, "chat:general", 12);
    assert_string_equal(c.pos[0].epoch, "00000000deadbeef");
    assert_true(c.pos[0].id.ms == 1700000000999ULL && c.pos[0].id.seq == 3);
    cursor_release(&c);
    msg_unref(m);
}

static void test_msg_copies_its_inputs(void **state)
{
    char topic[] = "room:1", epoch[] = EPOCH, from[] = "alice", data[] = DATA;
    struct msg *m =
        msg_new(topic, 6, epoch, mkid(5, 2), 1700000000123ULL, from, 5, data, strlen(data));

    memset(topic, 'X', 6);
    memset(epoch, 'X', 16);
    memset(from, 'X', 5);
    memset(data, 'X', strlen(data));
    assert_ptr_not_equal(m->topic, topic);
    assert_string_equal(m->topic, "room:1");
    assert_memory_equal(m->env, ENV_ROOM1_5_2, m->env_len);
    assert_memory_equal(m->cursor, CUR_ROOM1_5_2, m->cursor_len);
    msg_unref(m);
}

static void test_msg_headroom_is_writable_and_separate(void **state)
{
    struct msg *m = known_msg();
    const char *want_ws = "{\"type\":\"message\",\"id\":\"5-2\",\"topic\":\"room:1\","
                          "\"from\":\"alice\",\"ts\":1700000000123,\"data\":{\"x\":[1,\"two\"]},"
                          "\"cursor\":\"" CUR_ROOM1_5_2 "\"}";
    const char *want_sse = "id: " CUR_ROOM1_5_2 "\ndata: " ENV_ROOM1_5_2 "\n\n";

    /* a transport writes its frame header into the headroom: nothing else may change */
    memset(m->ws - MSG_HEADROOM, 0xAA, MSG_HEADROOM);
    memset(m->sse - MSG_HEADROOM, 0xBB, MSG_HEADROOM);
    assert_string_equal(m->topic, "room:1");
    assert_memory_equal(m->cursor, CUR_ROOM1_5_2, m->cursor_len);
    assert_memory_equal(m->ws, want_ws, m->ws_len);
    assert_memory_equal(m->sse, want_sse, m->sse_len);
    assert_true(m->sse - MSG_HEADROOM >= m->ws + m->ws_len);
    msg_unref(m); /* cmocka checks its guard bytes here */
}

static void test_msg_largest_inputs(void **state)
{
    char topic[TOPIC_MAX_LEN + 1], from[TOPIC_ID_MAX], env[1024];
    struct msg *m;
    struct cursor c;
    int n;

    memset(topic, 'k', TOPIC_KIND_MAX);
    topic[TOPIC_KIND_MAX] = ':';
    memset(topic + TOPIC_KIND_MAX + 1, 'i', TOPIC_ID_MAX);
    topic[TOPIC_MAX_LEN] = '\0';
    memset(from, 'f', sizeof(from));
    m = msg_new(topic, TOPIC_MAX_LEN, "ffffffffffffffff", mkid(UINT64_MAX, UINT64_MAX), UINT64_MAX,
                from, sizeof(from), "[]", 2);
    n = snprintf(env, sizeof(env),
                 "{\"id\":\"18446744073709551615-18446744073709551615\",\"topic\":\"%s\","
                 "\"from\":\"%.*s\",\"ts\":18446744073709551615,\"data\":[]}",
                 topic, (int)sizeof(from), from);
    assert_int_equal(m->env_len, (size_t)n);
    assert_memory_equal(m->env, env, m->env_len);
    assert_int_equal(m->sse_len, 4 + m->cursor_len + 7 + m->env_len + 2);
    assert_int_equal(m->ws_len, 18 + (m->env_len - 2) + 11 + m->cursor_len + 2);
    assert_int_equal(cursor_parse(&c, m->cursor, m->cursor_len), 0);
    assert_int_equal(c.pos[0].topic_len, TOPIC_MAX_LEN);
    assert_true(c.pos[0].id.ms == UINT64_MAX && c.pos[0].id.seq == UINT64_MAX);
    cursor_release(&c);
    msg_unref(m);
}

/* ---- control frames ---- */

static void test_frame_copies_bytes(void **state)
{
    char ws[] = "{\"type\":\"ack\",\"ok\":true}";
    char sse[] = "event: reset\ndata: {}\n\n";
    struct msg *m = msg_new_frame(ws, strlen(ws), sse, strlen(sse));

    assert_int_equal(m->refs, 1);
    assert_null(m->topic);
    assert_int_equal(m->is_reset, 0);
    assert_int_equal(m->ws_len, strlen(ws));
    assert_int_equal(m->sse_len, strlen(sse));
    assert_ptr_not_equal(m->ws, (unsigned char *)ws);
    assert_ptr_not_equal(m->sse, (unsigned char *)sse);
    memset(ws, 'X', strlen(ws));
    memset(sse, 'X', strlen(sse));
    assert_memory_equal(m->ws, "{\"type\":\"ack\",\"ok\":true}", m->ws_len);
    assert_memory_equal(m->sse, "event: reset\ndata: {}\n\n", m->sse_len);

    /* headroom before each frame, not overlapping the other */
    memset(m->ws - MSG_HEADROOM, 0xAA, MSG_HEADROOM);
    memset(m->sse - MSG_HEADROOM, 0xBB, MSG_HEADROOM);
    assert_memory_equal(m->ws, "{\"type\":\"ack\",\"ok\":true}", m->ws_len);
    assert_memory_equal(m->sse, "event: reset\ndata: {}\n\n", m->sse_len);
    msg_unref(m);
}

static void test_frame_binary_bytes(void **state)
{
    static const char ws[] = {'a', '\0', 'b', '\n', '\xff'};
    struct msg *m = msg_new_frame(ws, sizeof(ws), ": hb\n\n", 6);

    assert_int_equal(m->ws_len, 5);
    assert_memory_equal(m->ws, ws, 5);
    assert_int_equal(m->sse_len, 6);
    assert_memory_equal(m->sse, ": hb\n\n", 6);
    msg_unref(m);
}

static void test_frame_ws_only_and_sse_only(void **state)
{
    struct msg *w = msg_new_frame("{\"type\":\"pong\"}", 15, NULL, 0);
    struct msg *s = msg_new_frame(NULL, 0, "retry: 2000\n\n", 13);

    assert_non_null(w->ws);
    assert_int_equal(w->ws_len, 15);
    assert_memory_equal(w->ws, "{\"type\":\"pong\"}", 15);
    assert_null(w->sse);
    assert_int_equal(w->sse_len, 0);
    memset(w->ws - MSG_HEADROOM, 0, MSG_HEADROOM);

    assert_null(s->ws);
    assert_int_equal(s->ws_len, 0);
    assert_non_null(s->sse);
    assert_int_equal(s->sse_len, 13);
    assert_memory_equal(s->sse, "retry: 2000\n\n", 13);
    memset(s->sse - MSG_HEADROOM, 0, MSG_HEADROOM);
    msg_unref(w);
    msg_unref(s);
}

/* ---- reset events ---- */

#define RESET_WS  "{\"type\":\"reset\",\"topic\":\"room:1\"}"
#define RESET_SSE "event: reset\ndata: {\"topic\":\"room:1\"}\n\n"

static void test_reset_exact_frames(void **state)
{
    struct msg *m = msg_new_reset("room:1", 6, EPOCH);

    assert_int_equal(m->refs, 1);
    assert_int_equal(m->is_reset, 1);
    assert_int_equal(m->ws_len, strlen(RESET_WS));
    assert_memory_equal(m->ws, RESET_WS, m->ws_len);
    assert_int_equal(m->sse_len, strlen(RESET_SSE));
    assert_memory_equal(m->sse, RESET_SSE, m->sse_len);
    /* its topic and the epoch the topic's history now has */
    assert_non_null(m->topic);
    assert_int_equal(m->topic_len, 6);
    assert_string_equal(m->topic, "room:1"); /* NUL-terminated */
    assert_string_equal(m->epoch, EPOCH);
    /* the history restarts: a reset is not itself a position in it */
    assert_true(msg_id_is_zero(m->id));
    msg_unref(m);
}

static void test_reset_copies_its_inputs(void **state)
{
    char topic[] = "room:1", epoch[] = EPOCH;
    struct msg *m = msg_new_reset(topic, 6, epoch);

    memset(topic, 'X', 6);
    memset(epoch, 'X', 16);
    assert_ptr_not_equal(m->topic, topic);
    assert_string_equal(m->topic, "room:1");
    assert_string_equal(m->epoch, EPOCH);
    assert_memory_equal(m->ws, RESET_WS, m->ws_len);
    assert_memory_equal(m->sse, RESET_SSE, m->sse_len);
    msg_unref(m);
}

static void test_reset_respects_lengths(void **state)
{
    /* only @len bytes of the topic; only MSG_EPOCH_LEN chars of the epoch */
    struct msg *m = msg_new_reset("room:1x", 6, EPOCH "ffff");

    assert_int_equal(m->topic_len, 6);
    assert_string_equal(m->topic, "room:1");
    assert_string_equal(m->epoch, EPOCH);
    assert_memory_equal(m->ws, RESET_WS, m->ws_len);
    assert_int_equal(m->ws_len, strlen(RESET_WS));
    assert_memory_equal(m->sse, RESET_SSE, m->sse_len);
    assert_int_equal(m->sse_len, strlen(RESET_SSE));
    msg_unref(m);
}

static void test_reset_headroom_and_longest_topic(void **state)
{
    char topic[TOPIC_MAX_LEN + 1], ws[TOPIC_MAX_LEN + 64], sse[TOPIC_MAX_LEN + 64];
    struct msg *m;
    int wn, sn;

    memset(topic, 'k', TOPIC_KIND_MAX);
    topic[TOPIC_KIND_MAX] = ':';
    memset(topic + TOPIC_KIND_MAX + 1, 'i', TOPIC_ID_MAX);
    topic[TOPIC_MAX_LEN] = '\0';
    m = msg_new_reset(topic, TOPIC_MAX_LEN, "ffffffffffffffff");
    wn = snprintf(ws, sizeof(ws), "{\"type\":\"reset\",\"topic\":\"%s\"}", topic);
    sn = snprintf(sse, sizeof(sse), "event: reset\ndata: {\"topic\":\"%s\"}\n\n", topic);
    /* a transport writes its frame header into the headroom: nothing else may change */
    memset(m->ws - MSG_HEADROOM, 0xAA, MSG_HEADROOM);
    memset(m->sse - MSG_HEADROOM, 0xBB, MSG_HEADROOM);
    assert_int_equal(m->ws_len, (size_t)wn);
    assert_memory_equal(m->ws, ws, m->ws_len);
    assert_int_equal(m->sse_len, (size_t)sn);
    assert_memory_equal(m->sse, sse, m->sse_len);
    assert_int_equal(m->topic_len, TOPIC_MAX_LEN);
    assert_string_equal(m->topic, topic);
    assert_string_equal(m->epoch, "ffffffffffffffff");
    assert_true(m->sse - MSG_HEADROOM >= m->ws + m->ws_len);
    msg_ref(m);
    assert_int_equal(m->refs, 2);
    msg_unref(m);
    msg_unref(m); /* cmocka checks its guard bytes here */
}

/* ---- references ---- */

static void test_refcount(void **state)
{
    struct msg *m = known_msg();

    assert_int_equal(m->refs, 1);
    assert_ptr_equal(msg_ref(m), m);
    assert_int_equal(m->refs, 2);
    msg_ref(m);
    assert_int_equal(m->refs, 3);
    msg_unref(m);
    assert_int_equal(m->refs, 2);
    msg_unref(m);
    assert_int_equal(m->refs, 1);
    assert_memory_equal(m->env, ENV_ROOM1_5_2, m->env_len); /* still alive */
    msg_unref(m);                                           /* freed: a leak would fail this test */
    msg_unref(NULL);
}

static void test_refcount_frame(void **state)
{
    struct msg *m = msg_new_frame("x", 1, "y", 1);

    msg_ref(m);
    assert_int_equal(m->refs, 2);
    msg_unref(m);
    assert_int_equal(m->refs, 1);
    msg_unref(m);
}

/* An ephemeral message: no id, no cursor, no SSE "id:" line (EventSource keeps its last one),
 * "ephemeral":true in the envelope, headroom before each frame. */
static void test_ephemeral_frames(void **state)
{
    static const char env[] =
        "{\"topic\":\"user:bob\",\"from\":\"alice\",\"ts\":7,\"ephemeral\":true,"
        "\"data\":{\"t\":\"offer\"}}";
    static const char ws[] =
        "{\"type\":\"message\",\"topic\":\"user:bob\",\"from\":\"alice\",\"ts\":7,"
        "\"ephemeral\":true,\"data\":{\"t\":\"offer\"}}";
    struct msg *m = msg_new_ephemeral("user:bobX", 8, 7, "alice", 5, "{\"t\":\"offer\"}", 13);
    struct msg *n = msg_new_ephemeral("room:1", 6, 8, "", 0, "1", 1);

    assert_true(m->is_ephemeral);
    assert_false(m->is_reset);
    assert_true(msg_id_is_zero(m->id));
    assert_int_equal(m->cursor_len, 0);
    assert_string_equal(m->cursor, "");
    assert_string_equal(m->topic, "user:bob");
    assert_int_equal(m->ts, 7);
    assert_int_equal(m->env_len, sizeof(env) - 1);
    assert_memory_equal(m->env, env, sizeof(env) - 1);
    assert_int_equal(m->ws_len, sizeof(ws) - 1);
    assert_memory_equal(m->ws, ws, sizeof(ws) - 1);
    assert_int_equal(m->sse_len, 6 + sizeof(env) - 1 + 2);
    assert_memory_equal(m->sse, "data: ", 6);
    assert_memory_equal(m->sse + 6, env, sizeof(env) - 1);
    assert_memory_equal(m->sse + m->sse_len - 2, "\n\n", 2);
    assert_ptr_equal(m->sse_data, m->sse);
    assert_int_equal(m->sse_data_len, m->sse_len);
    assert_true(m->ws - m->buf >= MSG_HEADROOM && m->sse - (m->ws + m->ws_len) >= MSG_HEADROOM);
    assert_non_null(strstr((const char *)n->ws, "\"from\":null,\"ts\":8,\"ephemeral\":true"));
    msg_unref(m);
    msg_unref(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_parse_valid),
        cmocka_unit_test(test_id_parse_respects_len),
        cmocka_unit_test(test_id_parse_rejects),
        cmocka_unit_test(test_id_format),
        cmocka_unit_test(test_id_format_parse_round_trip),
        cmocka_unit_test(test_id_cmp),
        cmocka_unit_test(test_id_next),
        cmocka_unit_test(test_id_next_clock_steps_back_sequence),
        cmocka_unit_test(test_id_next_seq_overflow_stays_monotonic),
        cmocka_unit_test(test_id_prev),
        cmocka_unit_test(test_id_prev_is_next_inverse),
        cmocka_unit_test(test_msg_fields),
        cmocka_unit_test(test_msg_exact_envelope),
        cmocka_unit_test(test_msg_exact_ws_frame),
        cmocka_unit_test(test_msg_exact_sse_frame),
        cmocka_unit_test(test_msg_sse_data_is_tail_of_sse),
        cmocka_unit_test(test_msg_empty_from_is_null),
        cmocka_unit_test(test_msg_cursor_decodes_to_its_position),
        cmocka_unit_test(test_msg_copies_its_inputs),
        cmocka_unit_test(test_msg_headroom_is_writable_and_separate),
        cmocka_unit_test(test_msg_largest_inputs),
        cmocka_unit_test(test_frame_copies_bytes),
        cmocka_unit_test(test_frame_binary_bytes),
        cmocka_unit_test(test_frame_ws_only_and_sse_only),
        cmocka_unit_test(test_reset_exact_frames),
        cmocka_unit_test(test_reset_copies_its_inputs),
        cmocka_unit_test(test_reset_respects_lengths),
        cmocka_unit_test(test_reset_headroom_and_longest_topic),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_refcount_frame),
        cmocka_unit_test(test_ephemeral_frames),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
