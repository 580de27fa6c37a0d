/* redis_wire.h: what rtgate reads back from Redis, parsed without any connection state.
 *
 * Everything here sees bytes that any process able to reach Redis could have written: a
 * pub/sub payload "<epoch>\n<id>\n<sig>\n<from>\n<data>" and the history script's reply
 * {epoch, last id, reset, more, id1, sig1, from1, data1, ...}. With a signing key, entries
 * without a valid HMAC-SHA256(key, topic "\n" from "\n" data) are refused. Pure functions: the
 * Redis backplane calls them, the unit tests and tests/fuzz/fuzz_redis.c drive them directly. */
#ifndef RTGATE_REDIS_WIRE_H
#define RTGATE_REDIS_WIRE_H

#include "rtgate/hub.h"
#include "rtgate/msg.h"

#include <hiredis/hiredis.h>
#include <stddef.h>

/* The signing key of backplane.signing_key; key NULL: messages are not signed. */
struct redis_wire_key {
    const char *key;
    size_t len;
};

#define REDIS_WIRE_SIG_LEN 64                 /* lower-case hex of an HMAC-SHA256 */
#define REDIS_WIRE_TS_MAX  ((1ULL << 53) - 1) /* newest ephemeral time taken: exact in a double */

/* Writes the signature of (topic, from, data) as 64 hex digits and a NUL; "" if OpenSSL
 * failed (then nothing verifies). */
void redis_wire_sign(const struct redis_wire_key *k, const char *topic, size_t tlen,
                     const char *from, size_t flen, const char *data, size_t dlen,
                     char hex[REDIS_WIRE_SIG_LEN + 1]);

/* 1 if @sig signs (topic, from, data) under @k, or @k has no key; else 0 (constant time). */
int redis_wire_sig_ok(const struct redis_wire_key *k, const char *topic, size_t tlen,
                      const char *from, size_t flen, const char *data, size_t dlen, const char *sig,
                      size_t slen);

/* A pub/sub payload of @topic: a new message (one reference), or NULL when it is malformed
 * (*forged 0) or its signature is missing or wrong (*forged 1). A payload with id 0-0 is an
 * ephemeral message (backplane send_ephemeral: PUBLISH only), its epoch field the publish time
 * in hex (at most REDIS_WIRE_TS_MAX): a msg_new_ephemeral(). */
struct msg *redis_wire_message(const struct redis_wire_key *k, const char *topic, size_t tlen,
                               const char *p, size_t len, int *forged);

/* The history script's reply for @topic into @res (zeroed first; its msgs owned by the
 * caller, released with redis_wire_history_release). Entries that are malformed or forged are
 * skipped and counted in *forged. Returns 0, or -1 when the reply is not a history reply. */
int redis_wire_history(const struct redis_wire_key *k, const char *topic, size_t tlen,
                       const redisReply *r, struct hub_history *res, size_t *forged);
void redis_wire_history_release(struct hub_history *res);

#endif
