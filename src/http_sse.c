/* http_sse.c: GET /v1/sse, a text/event-stream of the caller's topics.
 *
 * Each event's "id:" is the resume cursor of the whole stream, so a browser's EventSource
 * sends it back as Last-Event-ID and resumes every topic at once. For a one-topic stream that
 * id is the message's own cursor and the shared, pre-rendered frame is written as it is; a
 * multi-topic stream composes "id: <cursor of all its topics>" in front of the shared data. */
#include "http_private.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int sse_deliver(struct sub *s, struct msg *m)
{
    struct conn *c = container_of(s, struct conn, sub);

    if (sendq_push(&c->q, m) != 0)
        return SUB_SLOW;
    http_request_writable(c);
    return 0;
}

static void sse_kick(struct sub *s, enum sub_kick why)
{
    struct conn *c = container_of(s, struct conn, sub);

    metrics_inc(M_SLOW_CONSUMERS);
    log_info("sse: cutting slow consumer '%s' (%zu messages queued)", c->id.sub,
             sendq_len(&c->q));
    c->closing = 1;
    http_request_writable(c);
}

const struct sub_ops sse_sub_ops = {.deliver = sse_deliver, .kick = sse_kick};

static int queue_replayed(void *ud, struct msg *m)
{
    struct conn *c = ud;

    if (sendq_push(&c->q, m) == 0)
        return 0;
    /* More history than the send queue holds: send what fits, then end the stream; the
     * browser reconnects with the last id it got and the next connection sends the rest. */
    c->truncated = 1;
    return -1;
}

static void queue_reset(struct conn *c, const struct cursor_pos *pos)
{
    char frame[TOPIC_MAX_LEN + 64];
    int n = snprintf(frame, sizeof(frame), "event: reset\ndata: {\"topic\":\"%.*s\"}\n\n",
                     (int)pos->topic_len, pos->topic);
    struct msg *m = msg_new_frame(NULL, 0, frame, (size_t)n);

    sendq_push(&c->q, m);
    msg_unref(m);
}

/* Queues the retry hint, then per topic the reset event (if history was lost) and the replay,
 * then subscribes. All in one loop turn, so no live message can slip in between. */
static void start_stream(struct conn *c, int resuming)
{
    char retry[48];
    int n = snprintf(retry, sizeof(retry), "retry: %u\n\n", c->srv->cf->sse_retry_ms);
    struct msg *m = msg_new_frame(NULL, 0, retry, (size_t)n);

    sendq_push(&c->q, m);
    msg_unref(m);
    for (size_t i = 0; resuming && i < c->topics->n; i++) {
        struct cursor_pos *pos = &c->topics->pos[i];
        int rc = hub_replay(c->srv->hub, pos->topic, pos->topic_len, pos, 0, queue_replayed, c,
                            NULL);

        if (rc == HUB_REPLAY_RESET) {
            queue_reset(c, pos);
            hub_position(c->srv->hub, pos->topic, pos->topic_len, pos);
            pos->id = (struct msg_id){0, 0};
        }
        if (!c->truncated)
            hub_replay(c->srv->hub, pos->topic, pos->topic_len, pos, SIZE_MAX, queue_replayed, c,
                       NULL);
    }
    for (size_t i = 0; i < c->topics->n; i++)
        hub_subscribe(c->srv->hub, &c->sub, c->topics->pos[i].topic,
                      c->topics->pos[i].topic_len);
}

static int write_headers(struct conn *c)
{
    static const char hdr[] = "HTTP/1.1 200 OK\r\n"
                              "content-type: text/event-stream\r\n"
                              "cache-control: no-cache\r\n"
                              "x-accel-buffering: no\r\n"
                              "connection: close\r\n"
                              "\r\n";
    unsigned char buf[LWS_PRE + sizeof(hdr)];

    memcpy(buf + LWS_PRE, hdr, sizeof(hdr) - 1);
    if (lws_write(c->wsi, buf + LWS_PRE, sizeof(hdr) - 1, LWS_WRITE_HTTP_HEADERS) < 0)
        return -1;
    lws_http_mark_sse(c->wsi); /* no more lws timeout; raw event-stream bytes from here */
    return 0;
}

int sse_on_request(struct conn *c)
{
    char last[CURSOR_TEXT_MAX];
    struct cursor cur;
    int n, rc;

    if (http_authenticate(c) != 0 || http_parse_topics(c) != 0)
        return 0;
    n = lws_hdr_custom_copy(c->wsi, last, sizeof(last), "last-event-id:", 14);
    if (n <= 0)
        n = http_arg(c, "lastEventId=", last, sizeof(last));
    if (n <= 0)
        n = http_arg(c, "cursor=", last, sizeof(last));
    if (http_apply_cursor(c, n > 0 ? last : NULL, n > 0 ? (size_t)n : 0, 0, &cur) != 0)
        return 0;
    cursor_release(&cur);
    if (c->srv->n_streams >= c->srv->cf->max_connections) {
        c->keep_alive = 0;
        return http_error(c, 503, "too many connections");
    }
    metrics_inc(M_SSE_STREAMS);
    sub_init(&c->sub, &sse_sub_ops);
    sendq_init(&c->q, c->srv->cf->send_queue);
    rc = write_headers(c);
    http_hold(c, CONN_SSE);
    if (rc != 0)
        return -1;
    start_stream(c, n > 0);
    http_request_writable(c);
    return 0;
}

void sse_on_heartbeat(struct conn *c)
{
    if (sendq_len(&c->q) == 0 && sendq_push(&c->q, c->srv->heartbeat) == 0)
        http_request_writable(c);
}

/* Builds the frame for @m on a multi-topic stream: "id: <stream cursor>\n" + shared data. */
static struct msg *compose(struct conn *c, struct msg *m)
{
    char id[CURSOR_TEXT_MAX + 8];
    int n;

    stream_advance(c->topics, m);
    memcpy(id, "id: ", 4);
    n = stream_cursor(c->topics, id + 4, sizeof(id) - 5);
    if (n < 0)
        return NULL;
    id[4 + n] = '\n';
    return msg_new_sse_parts(id, (size_t)n + 5, m->sse_data, m->sse_data_len);
}

int sse_on_writable(struct conn *c)
{
    struct msg *m, *f;

    if (c->closing)
        return -1; /* ends the stream: EventSource reconnects after retry: ms */
    m = sendq_peek(&c->q);
    if (!m) {
        if (c->truncated || c->drain)
            return -1;
        lws_rx_flow_control(c->wsi, 0);
        return 0;
    }
    f = m;
    if (m->topic && c->topics->n > 1) {
        f = compose(c, m);
        if (!f)
            return -1;
    }
    if (lws_write(c->wsi, f->sse, f->sse_len, LWS_WRITE_HTTP) < 0) {
        if (f != m)
            msg_unref(f);
        return -1;
    }
    if (f != m)
        msg_unref(f);
    sendq_pop(&c->q);
    lws_rx_flow_control(c->wsi, 0);
    if (sendq_len(&c->q) || c->truncated || c->drain)
        http_request_writable(c);
    return 0;
}
