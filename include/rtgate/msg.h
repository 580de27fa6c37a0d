/* msg.h: one published message, rendered once per wire format and shared by reference.
 *
 * Redis message or local publish -> ONE msg -> frames rendered ONCE -> a ref per subscriber
 * queue -> written -> unref. No lws here: each frame simply has MSG_HEADROOM spare bytes before
 * it, which covers LWS_PRE (checked where lws is included). */
#ifndef RTGATE_MSG_H
#define RTGATE_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_HEADROOM   32
#define MSG_ID_STR_MAX 42 /* "<20 digits>-<20 digits>" + NUL */
#define MSG_EPOCH_LEN  16 /* hex digits of a history epoch */

/* A per-topic id, "<ms>-<seq>" like a Redis stream id: ordered by (ms, seq). */
struct msg_id {
    uint64_t ms, seq;
};

int msg_id_cmp(struct msg_id a, struct msg_id b);
static inline int msg_id_is_zero(struct msg_id a)
{
    return a.ms == 0 && a.seq == 0;
}
/* Parses "<ms>-<seq>" (exactly, decimal, no sign, no spaces). Returns 0, or -1. */
int msg_id_parse(const char *s, size_t len, struct msg_id *id);
/* Writes "<ms>-<seq>" NUL-terminated; returns its length. @buf has MSG_ID_STR_MAX bytes. */
int msg_id_format(struct msg_id id, char *buf);
/* The id that follows @last for a message published at @now_ms: (now, 0) if now is later,
 * else (last.ms, last.seq + 1). Monotonic even if the clock steps back. */
struct msg_id msg_id_next(struct msg_id last, uint64_t now_ms);
/* The greatest id before @id (0-0 stays 0-0): "everything up to, not including, @id". */
struct msg_id msg_id_prev(struct msg_id id);

struct msg {
    uint32_t refs;
    struct msg_id id;
    uint64_t ts;
    char epoch[MSG_EPOCH_LEN + 1]; /* the history epoch of id; empty for a control frame */
    const char *topic;             /* NUL-terminated, inside buf; NULL for most control frames */
    size_t topic_len;
    const char *cursor; /* opaque resume position just after this message, for its topic */
    size_t cursor_len;
    const unsigned char *env; /* the envelope JSON: {"id","topic","from","ts","data"} */
    size_t env_len;
    unsigned char *ws; /* WebSocket text frame payload; MSG_HEADROOM writable bytes before it */
    size_t ws_len;
    unsigned char *sse; /* "id: <cursor>\ndata: <envelope>\n\n"; headroom before it */
    size_t sse_len;
    const unsigned char *sse_data; /* the "data: ...\n\n" tail of sse, for multi-topic streams */
    size_t sse_data_len;
    unsigned is_reset : 1;     /* a reset event for topic: history restarts in epoch, from 0-0 */
    unsigned is_ephemeral : 1; /* live only: no id (0-0), no cursor, never in history */
    unsigned char buf[];
};

/* Renders a message of @topic with @id in history epoch @epoch (MSG_EPOCH_LEN hex chars).
 * @from is a user id (may be empty: rendered as null), @data is one compact JSON value (no raw
 * newlines: what json_dumpb(JSON_COMPACT|JSON_ENCODE_ANY) writes). Returns a new reference. */
struct msg *msg_new(const char *topic, size_t topic_len, const char *epoch, struct msg_id id,
                    uint64_t ts, const char *from, size_t from_len, const char *data,
                    size_t data_len);

/* An ephemeral message of @topic (WebRTC signaling and the like): delivered live, never stored,
 * so it has no id and no cursor, and resuming never replays it. Its envelope has no "id" and
 * carries "ephemeral":true; its SSE frame has no "id:" line (EventSource keeps its last one),
 * its WebSocket frame no "cursor". Arguments as for msg_new(). Returns a new reference. */
struct msg *msg_new_ephemeral(const char *topic, size_t topic_len, uint64_t ts, const char *from,
                              size_t from_len, const char *data, size_t data_len);

/* A control frame (ack, error, reset event...): @ws and/or @sse bytes copied as given (either may
 * be NULL). Returns a new reference. */
struct msg *msg_new_frame(const char *ws, size_t ws_len, const char *sse, size_t sse_len);

/* The reset event of @topic, now in history @epoch, for SSE and WebSocket. New reference. */
struct msg *msg_new_reset(const char *topic, size_t len, const char *epoch);

/* An SSE-only frame made of two parts (@a then @b), copied once. Returns a new reference. */
struct msg *msg_new_sse_parts(const char *a, size_t alen, const unsigned char *b, size_t blen);

static inline struct msg *msg_ref(struct msg *m)
{
    m->refs++;
    return m;
}
void msg_unref(struct msg *m);

#endif
