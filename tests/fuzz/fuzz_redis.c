#define _GNU_SOURCE /* memmem */
/* fuzz_redis.c: what a node reads back from Redis (redis_wire.c), which anything able to reach
 * Redis can write. The input is RESP bytes, parsed by hiredis's own reader as the backplane's
 * connections do; every reply is tried as a pub/sub message (["message", channel, payload])
 * and as a history script reply, without a signing key and with FUZZ_SECRET as the key.
 *
 * Properties: whatever is accepted renders to frames a client can trust: the envelope is one
 * JSON object with the five fields, the WebSocket frame is a JSON object, the SSE frame has
 * exactly one blank line (at its end: no injected events); with a key, nothing unsigned gets
 * through; no leaks. */
#include "fuzz_common.h"

#include "rtgate/redis_wire.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <string.h>

static const struct redis_wire_key keys[2] = {{NULL, 0}, {FUZZ_SECRET, FUZZ_SECRET_LEN}};

static void check_msg(const struct msg *m)
{
    json_t *env = json_loadb((const char *)m->env, m->env_len, 0, NULL);
    const unsigned char *blank;

    FUZZ_ASSERT(env && json_is_object(env) && json_object_size(env) == 5);
    /* an ephemeral message (id 0-0 on the wire) has no id and no cursor */
    FUZZ_ASSERT(json_is_string(json_object_get(env, "id")) == !m->is_ephemeral);
    FUZZ_ASSERT(json_is_true(json_object_get(env, "ephemeral")) == m->is_ephemeral);
    FUZZ_ASSERT(json_is_string(json_object_get(env, "topic")));
    FUZZ_ASSERT(json_object_get(env, "data"));
    json_decref(env);
    env = json_loadb((const char *)m->ws, m->ws_len, 0, NULL);
    FUZZ_ASSERT(env && json_is_object(env));
    FUZZ_ASSERT(json_is_string(json_object_get(env, "cursor")) == !m->is_ephemeral);
    json_decref(env);
    FUZZ_ASSERT(m->sse_len >= 2 && memcmp(m->sse + m->sse_len - 2, "\n\n", 2) == 0);
    blank = memmem(m->sse, m->sse_len, "\n\n", 2);
    FUZZ_ASSERT(blank == m->sse + m->sse_len - 2);
}

static void try_reply(const redisReply *r)
{
    for (int k = 0; k < 2; k++) {
        struct hub_history res;
        size_t forged;

        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[2]->type == REDIS_REPLY_STRING && r->element[1]->len > 6) {
            int f;
            struct msg *m =
                redis_wire_message(&keys[k], r->element[1]->str + 6, r->element[1]->len - 6,
                                   r->element[2]->str, r->element[2]->len, &f);

            FUZZ_ASSERT(!(m && f));
            if (m) {
                check_msg(m);
                msg_unref(m);
            }
        }
        if (redis_wire_history(&keys[k], "room:1", 6, r, &res, &forged) == 0) {
            FUZZ_ASSERT(res.n + forged <= (r->elements - 4) / 4);
            for (size_t i = 0; i < res.n; i++)
                check_msg(res.msgs[i]);
            redis_wire_history_release(&res);
        } else {
            FUZZ_ASSERT(res.msgs == NULL && res.n == 0);
        }
    }
}

/* hiredis 0.14 allocates an array reply's element table as soon as it reads "*<count>", so a
 * server that is not Redis can make any client allocate gigabytes: hiredis's limit, not
 * rtgate's (noted in the README). Inputs declaring more than 4096 elements anywhere are
 * skipped, so the fuzzer spends its time on our code. */
static int huge_aggregate(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned long v = 0;
        size_t j = i + 1;

        if (d[i] != '*')
            continue;
        while (j < n && d[j] >= '0' && d[j] <= '9' && v <= 4096)
            v = v * 10 + (unsigned long)(d[j++] - '0');
        if (v > 4096)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd;
    void *r;

    if (huge_aggregate(data, size) || !(rd = redisReaderCreate()))
        return 0;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        /* a reader error (bad RESP) ends the input, as it ends a connection */
        for (int n = 0; n < 64 && redisReaderGetReply(rd, &r) == REDIS_OK && r; n++) {
            try_reply(r);
            freeReplyObject(r);
        }
    }
    redisReaderFree(rd);
    return 0;
}
