/* redis_wire.c: parsing what Redis hands back (see redis_wire.h). Nothing from Redis is
 * rendered to clients unchecked: the topic, the sender and the data must be what a publishing
 * node writes (valid names, one JSON value without raw line breaks), or a forged entry could
 * break the JSON envelope or inject SSE events even without a signing key. */
#include "rtgate/redis_wire.h"

#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void redis_wire_sign(const struct redis_wire_key *k, const char *topic, size_t tlen,
                     const char *from, size_t flen, const char *data, size_t dlen,
                     char hex[REDIS_WIRE_SIG_LEN + 1])
{
    unsigned char mac[32];
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t out = 0;

    hex[0] = '\0';
    if (ctx && EVP_MAC_init(ctx, (const unsigned char *)k->key, k->len, params) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)topic, tlen) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)from, flen) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)data, dlen) == 1 &&
        EVP_MAC_final(ctx, mac, &out, sizeof(mac)) == 1 && out == sizeof(mac)) {
        for (size_t i = 0; i < sizeof(mac); i++)
            snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
}

int redis_wire_sig_ok(const struct redis_wire_key *k, const char *topic, size_t tlen,
                      const char *from, size_t flen, const char *data, size_t dlen, const char *sig,
                      size_t slen)
{
    char want[REDIS_WIRE_SIG_LEN + 1];

    if (!k->key)
        return 1;
    redis_wire_sign(k, topic, tlen, from, flen, data, dlen, want);
    return slen == REDIS_WIRE_SIG_LEN && want[0] &&
           CRYPTO_memcmp(want, sig, REDIS_WIRE_SIG_LEN) == 0;
}

static int is_epoch(const char *s, size_t n)
{
    if (n != MSG_EPOCH_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* An id a client can read back: its milliseconds are the envelope's "ts", which JSON parsers
 * (and JavaScript's numbers) hold exactly only up to 2^53 - 1. Publishing nodes write the
 * clock's milliseconds; a larger value was written by hand. */
static int id_ok(const char *s, size_t n, struct msg_id *id)
{
    return msg_id_parse(s, n, id) == 0 && id->ms <= (1ULL << 53) - 1;
}

/* What msg_new() may render: a sender id (or none) and one JSON value on one line. */
static int renderable(const char *from, size_t flen, const char *data, size_t dlen)
{
    json_t *j;

    if ((flen && !topic_is_valid_id(from, flen)) || dlen == 0 || memchr(data, '\n', dlen) ||
        memchr(data, '\r', dlen))
        return 0;
    j = json_loadb(data, dlen, JSON_DECODE_ANY, NULL);
    json_decref(j);
    return j != NULL;
}

struct msg *redis_wire_message(const struct redis_wire_key *k, const char *topic, size_t tlen,
                               const char *p, size_t len, int *forged)
{
    const char *end = p + len, *nl1, *nl2, *nl3, *from, *data;
    size_t flen, dlen;
    struct msg_id id;

    *forged = 0;
    if (!topic_is_valid(topic, tlen) || len < MSG_EPOCH_LEN + 1 || p[MSG_EPOCH_LEN] != '\n' ||
        !is_epoch(p, MSG_EPOCH_LEN))
        return NULL;
    nl1 = memchr(p + MSG_EPOCH_LEN + 1, '\n', (size_t)(end - p - MSG_EPOCH_LEN - 1));
    if (!nl1 || !id_ok(p + MSG_EPOCH_LEN + 1, (size_t)(nl1 - p - MSG_EPOCH_LEN - 1), &id))
        return NULL;
    nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    if (!nl2)
        return NULL;
    nl3 = memchr(nl2 + 1, '\n', (size_t)(end - nl2 - 1));
    if (!nl3)
        return NULL;
    from = nl2 + 1;
    flen = (size_t)(nl3 - from);
    data = nl3 + 1;
    dlen = (size_t)(end - data);
    if (!redis_wire_sig_ok(k, topic, tlen, from, flen, data, dlen, nl1 + 1,
                           (size_t)(nl2 - nl1 - 1))) {
        *forged = 1;
        return NULL;
    }
    if (!renderable(from, flen, data, dlen))
        return NULL;
    if (msg_id_is_zero(id)) { /* ephemeral (no stored message has 0-0): the epoch is its time */
        uint64_t ts = strtoull(p, NULL, 16);

        if (ts > REDIS_WIRE_TS_MAX)
            return NULL; /* clients (JSON parsers, JavaScript) could not read it */
        return msg_new_ephemeral(topic, tlen, ts, from, flen, data, dlen);
    }
    return msg_new(topic, tlen, p, id, id.ms, from, flen, data, dlen);
}

static int str_at(const redisReply *r, size_t i)
{
    return r->element[i]->type == REDIS_REPLY_STRING;
}

static int int_at(const redisReply *r, size_t i)
{
    return r->element[i]->type == REDIS_REPLY_INTEGER;
}

int redis_wire_history(const struct redis_wire_key *k, const char *topic, size_t tlen,
                       const redisReply *r, struct hub_history *res, size_t *forged)
{
    size_t n;

    memset(res, 0, sizeof(*res));
    *forged = 0;
    if (!topic_is_valid(topic, tlen) || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
        (r->elements - 4) % 4 || !str_at(r, 0) ||
        !is_epoch(r->element[0]->str, r->element[0]->len) || !str_at(r, 1) || !int_at(r, 2) ||
        !int_at(r, 3) || msg_id_parse(r->element[1]->str, r->element[1]->len, &res->last))
        return -1;
    memcpy(res->epoch, r->element[0]->str, MSG_EPOCH_LEN);
    res->reset = r->element[2]->integer ? HUB_REPLAY_RESET : HUB_REPLAY_OK;
    res->more = r->element[3]->integer != 0;
    n = (r->elements - 4) / 4;
    res->msgs = xmalloc((n ? n : 1) * sizeof(*res->msgs));
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + 4 + 4 * i;
        struct msg_id id;

        if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING ||
            e[2]->type != REDIS_REPLY_STRING || e[3]->type != REDIS_REPLY_STRING ||
            !id_ok(e[0]->str, e[0]->len, &id))
            continue;
        /* each entry is id, from, data, sig */
        if (!redis_wire_sig_ok(k, topic, tlen, e[1]->str, e[1]->len, e[2]->str, e[2]->len,
                               e[3]->str, e[3]->len)) {
            (*forged)++; /* an injected history entry is skipped like a live one */
            continue;
        }
        if (!renderable(e[1]->str, e[1]->len, e[2]->str, e[2]->len))
            continue;
        res->msgs[res->n++] =
            msg_new(topic, tlen, res->epoch, id, id.ms, e[1]->str, e[1]->len, e[2]->str, e[2]->len);
    }
    return 0;
}

void redis_wire_history_release(struct hub_history *res)
{
    for (size_t i = 0; i < res->n; i++)
        msg_unref(res->msgs[i]);
    xfree(res->msgs);
    res->msgs = NULL;
    res->n = 0;
}
