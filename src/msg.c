/* msg.c: renders a message's wire frames once, into one allocation, and counts references.
 * Knows nothing of sockets: the frames leave MSG_HEADROOM bytes in front for the transport. */
#include "rtgate/msg.h"

#include "rtgate/cursor.h"
#include "rtgate/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int msg_id_cmp(struct msg_id a, struct msg_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int msg_id_parse(const char *s, size_t len, struct msg_id *id)
{
    const char *dash = memchr(s, '-', len);

    if (!dash)
        return -1;
    if (parse_u64(s, (size_t)(dash - s), &id->ms) != 0)
        return -1;
    return parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &id->seq);
}

int msg_id_format(struct msg_id id, char *buf)
{
    return snprintf(buf, MSG_ID_STR_MAX, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

struct msg_id msg_id_next(struct msg_id last, uint64_t now_ms)
{
    struct msg_id next;

    if (now_ms > last.ms) {
        next.ms = now_ms;
        next.seq = 0;
    } else if (last.seq == UINT64_MAX) {
        next.ms = last.ms + 1; /* seq is exhausted within this ms: borrow the next one */
        next.seq = 0;
    } else {
        next.ms = last.ms;
        next.seq = last.seq + 1;
    }
    return next;
}

/* Layout of buf: [topic\0][cursor\0][headroom][ws frame][headroom][sse frame]. The envelope
 * is not stored twice: it is the middle of the SSE frame. Rendering here, once per message, is
 * the point: a fan-out to N subscribers then costs N writes and no formatting. */
/* Writes "data: {<head><data>}\n\n" at @p, the tail of m->sse (which starts at or before
 * @p, m->sse_data at its "data: "), and points m->env at the envelope inside it. */
static void put_sse_data(struct msg *m, unsigned char *p, const char *head, size_t head_len,
                         const char *data, size_t data_len)
{
    memcpy(p, "data: ", 6), p += 6;
    m->env = p;
    *p++ = '{';
    memcpy(p, head, head_len), p += head_len;
    memcpy(p, data, data_len), p += data_len;
    *p++ = '}';
    m->env_len = (size_t)(p - m->env);
    memcpy(p, "\n\n", 2), p += 2;
    m->sse_len = (size_t)(p - m->sse);
    m->sse_data_len = (size_t)(p - m->sse_data);
}

struct msg *msg_new(const char *topic, size_t topic_len, const char *epoch, struct msg_id id,
                    uint64_t ts, const char *from, size_t from_len, const char *data,
                    size_t data_len)
{
    char idstr[MSG_ID_STR_MAX], head[512], cur[CURSOR_POS_RAW_MAX * 2];
    struct cursor_pos pos;
    int head_len, cur_len;
    size_t env_len, ws_len, sse_len, total;
    struct msg *m;
    unsigned char *p;

    /* callers pass validated names (hub_publish checks them); keep head[] in bounds anyway */
    if (topic_len > TOPIC_MAX_LEN)
        topic_len = TOPIC_MAX_LEN;
    if (from_len > TOPIC_ID_MAX)
        from_len = 0;
    msg_id_format(id, idstr);
    pos.topic = topic;
    pos.topic_len = topic_len;
    memcpy(pos.epoch, epoch, MSG_EPOCH_LEN);
    pos.epoch[MSG_EPOCH_LEN] = '\0';
    pos.id = id;
    cur_len = cursor_format(&pos, 1, cur, sizeof(cur));
    /* topic and from are validated ids ([A-Za-z0-9_.@:-]): no JSON escaping needed. */
    if (from_len)
        head_len = snprintf(head, sizeof(head),
                            "\"id\":\"%s\",\"topic\":\"%.*s\",\"from\":\"%.*s\","
                            "\"ts\":%" PRIu64 ",\"data\":",
                            idstr, (int)topic_len, topic, (int)from_len, from, ts);
    else
        head_len = snprintf(
            head, sizeof(head),
            "\"id\":\"%s\",\"topic\":\"%.*s\",\"from\":null,\"ts\":%" PRIu64 ",\"data\":", idstr,
            (int)topic_len, topic, ts);
    env_len = 1 + (size_t)head_len + data_len + 1;                        /* {head data} */
    ws_len = 18 + (size_t)head_len + data_len + 11 + (size_t)cur_len + 2; /* see below */
    sse_len = 4 + (size_t)cur_len + 7 + env_len + 2;
    total = sizeof(*m) + topic_len + 1 + (size_t)cur_len + 1 + MSG_HEADROOM + ws_len +
            MSG_HEADROOM + sse_len;
    m = xmalloc(total);
    m->refs = 1;
    m->is_reset = 0;
    m->is_ephemeral = 0;
    m->id = id;
    m->ts = ts;
    memcpy(m->epoch, pos.epoch, sizeof(m->epoch));
    p = m->buf;
    memcpy(p, topic, topic_len);
    p[topic_len] = '\0';
    m->topic = (const char *)p;
    m->topic_len = topic_len;
    p += topic_len + 1;
    memcpy(p, cur, (size_t)cur_len + 1);
    m->cursor = (const char *)p;
    m->cursor_len = (size_t)cur_len;
    p += cur_len + 1 + MSG_HEADROOM;

    /* {"type":"message",<envelope fields>,"cursor":"<cursor>"} */
    m->ws = p;
    memcpy(p, "{\"type\":\"message\",", 18), p += 18;
    memcpy(p, head, (size_t)head_len), p += head_len;
    memcpy(p, data, data_len), p += data_len;
    memcpy(p, ",\"cursor\":\"", 11), p += 11;
    memcpy(p, cur, (size_t)cur_len), p += cur_len;
    memcpy(p, "\"}", 2), p += 2;
    m->ws_len = (size_t)(p - m->ws);
    p += MSG_HEADROOM;

    /* id: <cursor>\ndata: <envelope>\n\n -- one data: line, since compact JSON has no newline */
    m->sse = p;
    memcpy(p, "id: ", 4), p += 4;
    memcpy(p, cur, (size_t)cur_len), p += cur_len;
    m->sse_data = p + 1;
    *p++ = '\n';
    put_sse_data(m, p, head, (size_t)head_len, data, data_len);
    return m;
}

/* Layout of buf: [topic\0][headroom][ws frame][headroom][sse frame], the envelope inside the
 * SSE frame as for msg_new(). No id and no cursor: the message is not part of the topic's
 * sequence, so it can neither move a resume position nor be deduplicated by id. */
struct msg *msg_new_ephemeral(const char *topic, size_t topic_len, uint64_t ts, const char *from,
                              size_t from_len, const char *data, size_t data_len)
{
    char head[512];
    int head_len;
    size_t env_len, ws_len, sse_len;
    struct msg *m;
    unsigned char *p;

    if (topic_len > TOPIC_MAX_LEN)
        topic_len = TOPIC_MAX_LEN;
    if (from_len > TOPIC_ID_MAX)
        from_len = 0;
    if (from_len)
        head_len = snprintf(head, sizeof(head),
                            "\"topic\":\"%.*s\",\"from\":\"%.*s\",\"ts\":%" PRIu64
                            ",\"ephemeral\":true,\"data\":",
                            (int)topic_len, topic, (int)from_len, from, ts);
    else
        head_len = snprintf(head, sizeof(head),
                            "\"topic\":\"%.*s\",\"from\":null,\"ts\":%" PRIu64
                            ",\"ephemeral\":true,\"data\":",
                            (int)topic_len, topic, ts);
    env_len = 1 + (size_t)head_len + data_len + 1;
    ws_len = 18 + (size_t)head_len + data_len + 1; /* {"type":"message",<head><data>} */
    sse_len = 6 + env_len + 2;                     /* data: <envelope>\n\n */
    m = xcalloc(1, sizeof(*m) + topic_len + 1 + MSG_HEADROOM + ws_len + MSG_HEADROOM + sse_len);
    m->refs = 1;
    m->is_ephemeral = 1;
    m->ts = ts;
    p = m->buf;
    memcpy(p, topic, topic_len);
    m->topic = (const char *)p;
    m->topic_len = topic_len;
    m->cursor = (const char *)p + topic_len; /* "" */
    p += topic_len + 1 + MSG_HEADROOM;

    m->ws = p;
    memcpy(p, "{\"type\":\"message\",", 18), p += 18;
    memcpy(p, head, (size_t)head_len), p += head_len;
    memcpy(p, data, data_len), p += data_len;
    *p++ = '}';
    m->ws_len = (size_t)(p - m->ws);
    p += MSG_HEADROOM;

    m->sse = p;
    m->sse_data = p;
    put_sse_data(m, p, head, (size_t)head_len, data, data_len);
    return m;
}

struct msg_id msg_id_prev(struct msg_id id)
{
    if (id.seq)
        id.seq--;
    else if (id.ms) {
        id.ms--;
        id.seq = UINT64_MAX;
    }
    return id;
}

struct msg *msg_new_reset(const char *topic, size_t len, const char *epoch)
{
    char ws[TOPIC_MAX_LEN + 40], sse[TOPIC_MAX_LEN + 48];
    int wn, sn;
    struct msg *m;
    char *name;

    if (len > TOPIC_MAX_LEN)
        len = TOPIC_MAX_LEN;
    wn = snprintf(ws, sizeof(ws), "{\"type\":\"reset\",\"topic\":\"%.*s\"}", (int)len, topic);
    sn =
        snprintf(sse, sizeof(sse), "event: reset\ndata: {\"topic\":\"%.*s\"}\n\n", (int)len, topic);
    /* a frame with room for its own copy of the topic name after the SSE bytes */
    m = xcalloc(1, sizeof(*m) + 2 * MSG_HEADROOM + (size_t)wn + 1 + (size_t)sn + 1 + len + 1);
    m->refs = 1;
    m->ws = m->buf + MSG_HEADROOM;
    memcpy(m->ws, ws, (size_t)wn);
    m->ws_len = (size_t)wn;
    m->sse = m->ws + wn + 1 + MSG_HEADROOM;
    memcpy(m->sse, sse, (size_t)sn);
    m->sse_len = (size_t)sn;
    name = (char *)m->sse + sn + 1;
    memcpy(name, topic, len);
    m->topic = name;
    m->topic_len = len;
    m->is_reset = 1;
    memcpy(m->epoch, epoch, MSG_EPOCH_LEN);
    m->epoch[MSG_EPOCH_LEN] = '\0';
    return m;
}

struct msg *msg_new_frame(const char *ws, size_t ws_len, const char *sse, size_t sse_len)
{
    struct msg *m = xcalloc(1, sizeof(*m) + 2 * MSG_HEADROOM + ws_len + sse_len + 2);
    unsigned char *p = m->buf + MSG_HEADROOM;

    m->refs = 1;
    if (ws) {
        m->ws = p;
        memcpy(p, ws, ws_len);
        m->ws_len = ws_len;
        p += ws_len + 1;
    }
    p += MSG_HEADROOM;
    if (sse) {
        m->sse = p;
        memcpy(p, sse, sse_len);
        m->sse_len = sse_len;
    }
    return m;
}

struct msg *msg_new_sse_parts(const char *a, size_t alen, const unsigned char *b, size_t blen)
{
    struct msg *m = xcalloc(1, sizeof(*m) + MSG_HEADROOM + alen + blen);

    m->refs = 1;
    m->sse = m->buf + MSG_HEADROOM;
    memcpy(m->sse, a, alen);
    memcpy(m->sse + alen, b, blen);
    m->sse_len = alen + blen;
    return m;
}

void msg_unref(struct msg *m)
{
    if (m && --m->refs == 0)
        xfree(m);
}
