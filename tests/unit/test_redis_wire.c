/* test_redis_wire.c: what rtgate accepts from Redis. Replies are built by hiredis's own RESP
 * reader from wire bytes, as the backplane receives them; signatures are checked against
 * HMAC-SHA256 values computed independently (Python's hmac). */
/* hiredis includes stdlib.h, which must come before cmocka's allocator macros */
#include <hiredis/hiredis.h>
#include <stdlib.h>
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rtgate/redis_wire.h"

#include <stdio.h>
#include <string.h>

#define EPOCH "0123456789abcdef"
#define KEY   "signing-key-0123456789"
/* hmac.new(KEY, b"room:1\nalice\n{\"a\":1}", sha256).hexdigest() */
#define SIG_ALICE "f9f1b4a675333125b893ef4447ddfba943590f9b3057568570eb541bc2d9a0ad"

static const struct redis_wire_key NOKEY = {NULL, 0};
static const struct redis_wire_key WITHKEY = {KEY, sizeof(KEY) - 1};

static const char real_sig[] = SIG_ALICE;

static struct msg *msg_of(const struct redis_wire_key *k, const char *payload, int *forged)
{
    return redis_wire_message(k, "room:1", 6, payload, strlen(payload), forged);
}

static redisReply *reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static void test_sign_matches_independent_hmac(void **state)
{
    char hex[REDIS_WIRE_SIG_LEN + 1];

    (void)state;
    redis_wire_sign(&WITHKEY, "room:1", 6, "alice", 5, "{\"a\":1}", 7, hex);
    assert_string_equal(hex, SIG_ALICE);
    /* the same inputs give the same MAC; any byte changed gives another */
    assert_true(redis_wire_sig_ok(&WITHKEY, "room:1", 6, "alice", 5, "{\"a\":1}", 7, hex, 64));
    assert_false(redis_wire_sig_ok(&WITHKEY, "room:1", 6, "alicf", 5, "{\"a\":1}", 7, hex, 64));
    assert_false(redis_wire_sig_ok(&WITHKEY, "room:2", 6, "alice", 5, "{\"a\":1}", 7, hex, 64));
    assert_false(redis_wire_sig_ok(&WITHKEY, "room:1", 6, "alice", 5, "{\"a\":2}", 7, hex, 64));
    assert_false(redis_wire_sig_ok(&WITHKEY, "room:1", 6, "alice", 5, "{\"a\":1}", 7, hex, 63));
    assert_true(redis_wire_sig_ok(&NOKEY, "room:1", 6, "alice", 5, "{\"a\":1}", 7, "", 0));
}

static void test_message_unsigned(void **state)
{
    int forged = -1;
    struct msg *m = msg_of(&NOKEY, EPOCH "\n5-2\n\nalice\n{\"a\":1}", &forged);

    (void)state;
    assert_non_null(m);
    assert_int_equal(forged, 0);
    assert_int_equal(m->id.ms, 5);
    assert_int_equal(m->id.seq, 2);
    assert_string_equal(m->epoch, EPOCH);
    assert_memory_equal(m->env,
                        "{\"id\":\"5-2\",\"topic\":\"room:1\",\"from\":\"alice\",\"ts\":5,"
                        "\"data\":{\"a\":1}}",
                        m->env_len);
    msg_unref(m);
    /* no sender: from is null */
    m = msg_of(&NOKEY, EPOCH "\n5-3\n\n\n[1,2]", &forged);
    assert_non_null(m);
    assert_non_null(strstr((const char *)m->env, "\"from\":null"));
    msg_unref(m);
}

static void test_message_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        EPOCH,
        EPOCH "\n",
        EPOCH "\n5-2",
        EPOCH "\n5-2\n",
        EPOCH "\n5-2\n\nalice",              /* no data line */
        EPOCH "\nx-2\n\nalice\n1",           /* bad id */
        "0123456789ABCDEF\n5-2\n\nalice\n1", /* epoch is lower-case hex */
        "0123456789abcde\n5-2\n\nalice\n1",  /* short epoch */
        EPOCH "\n5-2\n\nal\"ice\n1",         /* a sender that would break the envelope */
        EPOCH "\n5-2\n\nalice\n",            /* empty data */
        EPOCH "\n5-2\n\nalice\n{\"a\":\n1}", /* a raw newline would inject SSE lines */
        EPOCH "\n5-2\n\nalice\n1\r",         /* and a CR */
        EPOCH "\n5-2\n\nalice\n{\"a\":1",    /* not JSON */
        EPOCH "\n5-2\n\nalice\n1 2",         /* two values */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int forged = -1;

        assert_null(msg_of(&NOKEY, bad[i], &forged));
        assert_int_equal(forged, 0);
    }
    {
        int forged = -1;

        assert_null(
            redis_wire_message(&NOKEY, "Room:1", 6, EPOCH "\n5-2\n\nalice\n1", 23, &forged));
    }
}

static void test_message_signed(void **state)
{
    char good[256], bad[256];
    int forged = -1;
    struct msg *m;

    (void)state;
    snprintf(good, sizeof(good), EPOCH "\n5-2\n%s\nalice\n{\"a\":1}", real_sig);
    m = msg_of(&WITHKEY, good, &forged);
    assert_non_null(m);
    assert_int_equal(forged, 0);
    msg_unref(m);

    snprintf(bad, sizeof(bad), EPOCH "\n5-2\n%s\nmallory\n{\"a\":1}", real_sig);
    assert_null(msg_of(&WITHKEY, bad, &forged));
    assert_int_equal(forged, 1);
    assert_null(msg_of(&WITHKEY, EPOCH "\n5-2\n\nalice\n{\"a\":1}", &forged)); /* unsigned */
    assert_int_equal(forged, 1);
    /* without a key configured, a signature is ignored */
    m = msg_of(&NOKEY, bad, &forged);
    assert_non_null(m);
    msg_unref(m);
}

static void test_history_reply(void **state)
{
    char resp[1024];
    struct hub_history res;
    size_t forged = 99;
    redisReply *r;

    (void)state;
    /* {epoch, last, reset, more, id, from, data, sig, id, from, data, sig(forged)} */
    snprintf(resp, sizeof(resp),
             "*12\r\n$16\r\n" EPOCH "\r\n$3\r\n9-0\r\n:0\r\n:1\r\n"
             "$3\r\n5-2\r\n$5\r\nalice\r\n$7\r\n{\"a\":1}\r\n$64\r\n%s\r\n"
             "$3\r\n6-0\r\n$7\r\nmallory\r\n$1\r\n2\r\n$64\r\n%s\r\n",
             real_sig, real_sig);
    r = reply_of(resp);
    assert_int_equal(redis_wire_history(&WITHKEY, "room:1", 6, r, &res, &forged), 0);
    assert_int_equal(forged, 1);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.more, 1);
    assert_int_equal(res.reset, HUB_REPLAY_OK);
    assert_int_equal(res.last.ms, 9);
    assert_string_equal(res.epoch, EPOCH);
    assert_int_equal(res.msgs[0]->id.ms, 5);
    redis_wire_history_release(&res);
    /* without a key both entries pass */
    assert_int_equal(redis_wire_history(&NOKEY, "room:1", 6, r, &res, &forged), 0);
    assert_int_equal(forged, 0);
    assert_int_equal(res.n, 2);
    redis_wire_history_release(&res);
    freeReplyObject(r);

    /* a lost stream: reset, nothing retained */
    r = reply_of("*4\r\n$16\r\n0000000000000000\r\n$3\r\n0-0\r\n:1\r\n:0\r\n");
    assert_int_equal(redis_wire_history(&NOKEY, "room:1", 6, r, &res, &forged), 0);
    assert_int_equal(res.reset, HUB_REPLAY_RESET);
    assert_int_equal(res.n, 0);
    redis_wire_history_release(&res);
    freeReplyObject(r);
}

static void test_history_malformed(void **state)
{
    static const char *const bad[] = {
        "-NOSCRIPT No matching script\r\n",
        ":1\r\n",
        "*3\r\n$16\r\n" EPOCH "\r\n$3\r\n9-0\r\n:0\r\n",
        "*5\r\n$16\r\n" EPOCH "\r\n$3\r\n9-0\r\n:0\r\n:0\r\n$3\r\n5-0\r\n",
        "*4\r\n$3\r\nabc\r\n$3\r\n9-0\r\n:0\r\n:0\r\n",
        "*4\r\n$16\r\n" EPOCH "\r\n$4\r\nnope\r\n:0\r\n:0\r\n",
        "*4\r\n$16\r\n" EPOCH "\r\n$3\r\n9-0\r\n$1\r\n0\r\n:0\r\n",
    };
    struct hub_history res;
    size_t forged;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = reply_of(bad[i]);

        assert_int_equal(redis_wire_history(&NOKEY, "room:1", 6, r, &res, &forged), -1);
        assert_null(res.msgs);
        freeReplyObject(r);
    }
    assert_int_equal(redis_wire_history(&NOKEY, "room:1", 6, NULL, &res, &forged), -1);
}

/* id 0-0 marks an ephemeral message (PUBLISH only); its epoch field is the publish time */
static void test_message_ephemeral(void **state)
{
    static const char env[] = "{\"topic\":\"room:1\",\"from\":\"alice\",\"ts\":7024657621,"
                              "\"ephemeral\":true,\"data\":{\"a\":1}}";
    int forged = -1;
    struct msg *m = msg_of(&NOKEY, "00000001a2b3c4d5\n0-0\n\nalice\n{\"a\":1}", &forged);

    (void)state;
    assert_non_null(m);
    assert_int_equal(forged, 0);
    assert_true(m->is_ephemeral);
    assert_int_equal(m->ts, 0x1a2b3c4d5ULL);
    assert_int_equal(m->cursor_len, 0);
    assert_int_equal(m->env_len, sizeof(env) - 1);
    assert_memory_equal(m->env, env, sizeof(env) - 1);
    msg_unref(m);
    /* signed like any message; a wrong signature is forged */
    m = msg_of(&WITHKEY, "00000001a2b3c4d5\n0-0\n" SIG_ALICE "\nalice\n{\"a\":1}", &forged);
    assert_non_null(m);
    assert_true(m->is_ephemeral);
    msg_unref(m);
    assert_null(msg_of(&WITHKEY, "00000001a2b3c4d5\n0-0\n\nalice\n{\"a\":1}", &forged));
    assert_int_equal(forged, 1);
    /* a time no client could read exactly is malformed */
    assert_null(msg_of(&NOKEY, "0020000000000000\n0-0\n\nalice\n1", &forged));
    assert_int_equal(forged, 0);
    m = msg_of(&NOKEY, "001fffffffffffff\n0-0\n\nalice\n1", &forged);
    assert_non_null(m);
    assert_int_equal(m->ts, REDIS_WIRE_TS_MAX);
    msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_matches_independent_hmac),
        cmocka_unit_test(test_message_unsigned),
        cmocka_unit_test(test_message_ephemeral),
        cmocka_unit_test(test_message_malformed),
        cmocka_unit_test(test_message_signed),
        cmocka_unit_test(test_history_reply),
        cmocka_unit_test(test_history_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
