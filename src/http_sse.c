/* http_sse.c: GET /v1/sse, a text/event-stream of the caller's topics.
 *
 * Each event's "id:" is the resume cursor of the whole stream, so a browser's EventSource
 * sends it back as Last-Event-ID and resumes every topic at once. For a one-topic stream that
 * id is the message's own cursor and the shared, pre-rendered frame is written as it is; a
 * multi-topic stream composes "id: <cursor of all its topics>" in front of the shared data.
 * Positions advance only as events are written, so an id never claims more than was sent. */
#include "http_private.h"
#include "rtgate/backplane.h"
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
    if (!c->pending)
        http_request_writable(c);
    return 0;
}

/* Slow, or a resume with more history than the send queue holds: send what is queued, then
 * end the stream; the browser reconnects with the last id it got and continues from there. */
static void sse_kick(struct sub *s, enum sub_kick why)
{
    struct conn *c = container_of(s, struct conn, sub);

    metrics_inc(M_SLOW_CONSUMERS);
    log_info("sse: ending stream of '%s' after %zu queued messages (slow or long replay)",
             c->id.sub, sendq_len(&c->q));
    c->truncated = 1;
    c->pending = 0; /* no more ready() will come: write what is queued */
    http_request_writable(c);
}

static void sse_reset(struct sub *s, const char *topic, size_t len, const char *epoch)
{
    struct conn *c = container_of(s, struct conn, sub);
    struct msg *m = msg_new_reset(topic, len, epoch);

    sendq_push_control(&c->q, m);
    msg_unref(m);
}

/* A topic went live. One the client gave no position for starts at @pos, or just before the
 * first of its messages still queued, so the stream's ids never skip a queued message. */
static void sse_ready(struct sub *s, const char *topic, size_t len, const struct cursor_pos *pos,
                      int status)
{
    struct conn *c = container_of(s, struct conn, sub);
    struct cursor_pos *p = stream_find(c->topics, topic, len);

    if (p && !pos_is_set(p)) {
        memcpy(p->epoch, pos->epoch, sizeof(p->epoch));
        p->id = pos->id;
        for (size_t i = 0; i < sendq_len(&c->q); i++) {
            struct msg *m = sendq_at(&c->q, i);

            if (m->topic && !m->is_reset && !m->is_ephemeral && m->topic_len == len &&
                memcmp(m->topic, topic, len) == 0) {
                p->id = msg_id_prev(m->id);
                break;
            }
        }
    }
    if (c->pending && --c->pending == 0)
        http_request_writable(c);
}

const struct sub_ops sse_sub_ops = {
    .deliver = sse_deliver, .kick = sse_kick, .reset = sse_reset, .ready = sse_ready};

static int write_headers(struct conn *c)
{
    static const char hdr[] = "HTTP/1.1 200 OK\r\n"
                              "content-type: text/event-stream\r\n"
                              "cache-control: no-cache\r\n"
                              "x-accel-buffering: no\r\n"
                              "connection: close\r\n";
    unsigned char buf[LWS_PRE + sizeof(hdr) + 512];
    size_t n = sizeof(hdr) - 1, extra = c->cors ? strlen(c->cors) : 0;

    memcpy(buf + LWS_PRE, hdr, n);
    if (extra && extra < 500) {
        memcpy(buf + LWS_PRE + n, c->cors, extra);
        n += extra;
    }
    memcpy(buf + LWS_PRE + n, "\r\n", 2);
    n += 2;
    c->status = 200;
    if (c->h2) {
        if (http_h2_write_head(c, (const char *)buf + LWS_PRE, n, 0, 0) < 0)
            return -1;
    } else if (lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_HEADERS) < 0) {
        return -1;
    }
    metrics_written(MET_TR_SSE, n);
    /* http_hold() cancels the stream's timeout (on HTTP/2 with lws_http_mark_sse(), which on
     * HTTP/1.1 only logs an error, "not h2 substream"); raw event-stream bytes follow. */
    return 0;
}

/* The stream ends (drain, replay cut short, token expired, slow consumer): EventSource
 * reconnects after retry: ms. On HTTP/2 only the stream ends, cleanly. */
static int end_stream(struct conn *c)
{
    if (c->h2)
        http_h2_end(c);
    return -1;
}

/* ?hello=1 (the browser client): the stream names its node and heartbeat interval first, and
 * its heartbeats are events, since EventSource hides comments from the page. */
static void push_hello(struct conn *c)
{
    char ev[CONF_NODE_ID_MAX + 96];
    int n =
        snprintf(ev, sizeof(ev), "event: hello\ndata: {\"node\":\"%s\",\"heartbeat_ms\":%u}\n\n",
                 c->srv->node_id, c->srv->cf->sse_heartbeat_ms);
    struct msg *m = msg_new_frame(NULL, 0, ev, (size_t)n);

    sendq_push_control(&c->q, m);
    msg_unref(m);
    c->hb_event = 1;
}

int sse_on_request(struct conn *c)
{
    char last[CURSOR_TEXT_MAX], retry[48];
    struct cursor cur;
    struct msg *m;
    int n, rc, hello;

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
    if (http_admit_stream(c) != 0)
        return 0;
    metrics_inc(M_SSE_STREAMS);
    sub_init(&c->sub, &sse_sub_ops);
    sendq_init(&c->q, c->srv->cf->send_queue);
    sendq_limit_bytes(&c->q, c->srv->cf->send_queue_bytes, 1);
    /* the last look at the request: http_hold() lets go of its headers and arguments */
    hello = http_arg(c, "hello=", last, sizeof(last)) == 1 && last[0] == '1';
    rc = write_headers(c);
    http_hold(c, CONN_SSE);
    if (rc != 0)
        return -1;
    n = snprintf(retry, sizeof(retry), "retry: %u\n\n", c->srv->cf->sse_retry_ms);
    m = msg_new_frame(NULL, 0, retry, (size_t)n);
    sendq_push_control(&c->q, m);
    msg_unref(m);
    if (hello)
        push_hello(c);
    /* Writing waits until every topic has replayed and gone live (pending reaches 0). */
    c->pending = c->topics->n;
    for (size_t i = 0; i < c->topics->n; i++) {
        struct cursor_pos *pos = &c->topics->pos[i];

        hub_subscribe_from(c->srv->hub, &c->sub, pos->topic, pos->topic_len,
                           pos_is_set(pos) ? pos : NULL);
    }
    return 0;
}

void sse_on_expired(struct conn *c)
{
    static const char ev[] = "event: expired\ndata: {\"error\":\"token expired\"}\n\n";
    struct msg *m = msg_new_frame(NULL, 0, ev, sizeof(ev) - 1);

    sendq_push_control(&c->q, m);
    msg_unref(m);
    c->drain = 1; /* write what is queued, then end */
    c->pending = 0;
    http_request_writable(c);
}

void sse_on_heartbeat(struct conn *c)
{
    if (!c->pending && sendq_len(&c->q) == 0) {
        sendq_push_control(&c->q, c->hb_event ? c->srv->heartbeat_ev : c->srv->heartbeat);
        http_request_writable(c);
    }
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
        return -1;
    m = c->pending ? NULL : sendq_peek(&c->q);
    if (!m) {
        if (!c->pending && (c->truncated || c->drain))
            return end_stream(c); /* EventSource reconnects after retry: ms */
        http_rx_flow(c, 0);
        return 0;
    }
    f = m;
    if (m->is_reset)
        stream_advance(c->topics, m);
    else if (m->topic && !m->is_ephemeral && c->topics->n > 1 && !(f = compose(c, m)))
        return -1;
    if (lws_write(c->wsi, f->sse, f->sse_len, LWS_WRITE_HTTP) < 0) {
        if (f != m)
            msg_unref(f);
        return -1;
    }
    metrics_written(MET_TR_SSE, f->sse_len);
    if (m->topic && !m->is_reset)
        metrics_delivered(MET_TR_SSE, m->ts, metrics_wall_us());
    if (f != m)
        msg_unref(f);
    sendq_pop(&c->q);
    http_rx_flow(c, 0);
    /* lws keeps what the socket did not take and sends it at the next writable callback:
     * ask for one, or the tail of this event waits for the next heartbeat */
    if (sendq_len(&c->q) || c->truncated || c->drain || lws_partial_buffered(c->wsi))
        http_request_writable(c);
    return 0;
}

/* GET /v1/stats/stream: this node's numbers as one "data:" event every stats.interval_ms, for
 * dashboards. stats.access "api_key" wants an API key (X-API-Key, or ?key= for EventSource),
 * "public" anyone, "off" makes the path unknown. */
int sse_on_stats(struct conn *c)
{
    const struct conf *cf = c->srv->cf;
    char key[512];
    struct msg *m;
    int n;

    if (cf->stats_access == CONF_STATS_OFF)
        return http_error(c, 404, "not found");
    if (cf->stats_access == CONF_STATS_API_KEY) {
        n = lws_hdr_custom_copy(c->wsi, key, sizeof(key), "x-api-key:", 10);
        if (n <= 0)
            n = http_arg(c, "key=", key, sizeof(key));
        if (n <= 0 || auth_api_key_find(cf->api_keys, cf->n_api_keys, key, (size_t)n) < 0) {
            metrics_inc(M_AUTH_FAILURES);
            http_log_refused(c, n > 0 ? "bad API key" : "missing API key");
            return http_error(c, 401, n > 0 ? "bad API key" : "missing API key");
        }
    }
    if (c->srv->n_streams >= cf->max_connections) {
        c->keep_alive = 0;
        return http_error(c, 503, "too many connections");
    }
    if (http_admit_stream(c) != 0)
        return 0;
    sub_init(&c->sub, &sse_sub_ops);
    sendq_init(&c->q, 16);
    c->stats = 1;
    c->hb_event = 1;
    n = write_headers(c);
    http_hold(c, CONN_SSE);
    c->srv->n_stats++;
    if (n != 0)
        return -1;
    push_hello(c);
    if ((m = sse_stats_frame(c->srv))) {
        sse_on_stats_tick(c, m);
        msg_unref(m);
    }
    return 0;
}

struct msg *sse_stats_frame(struct http_server *srv)
{
    const struct conf *cf = srv->cf;
    struct hub_stats st;
    char buf[1024];
    int n;

    hub_get_stats(srv->hub, &st);
    /* the dashboards' own streams are not client connections */
    n = snprintf(buf, sizeof(buf),
                 "data: {\"node\":\"%s\",\"ts\":%llu,\"backplane\":{\"type\":\"%s\",\"up\":%s},"
                 "\"draining\":%s,\"connections\":{\"websocket\":%lld,\"sse\":%lld,"
                 "\"longpoll\":%lld},\"published\":%llu,\"delivered\":%llu,\"topics\":%zu,"
                 "\"interval_ms\":%u}\n\n",
                 srv->node_id, (unsigned long long)http_now_ms(), cf->backplane_type,
                 !srv->bp || srv->bp->ops->is_ready(srv->bp) ? "true" : "false",
                 srv->draining ? "true" : "false", (long long)metrics_connections_get(MET_TR_WS),
                 (long long)metrics_connections_get(MET_TR_SSE) - (long long)srv->n_stats,
                 (long long)metrics_connections_get(MET_TR_LONGPOLL),
                 (unsigned long long)metrics_get(M_PUBLISHED), (unsigned long long)st.n_delivered,
                 st.n_topics, cf->stats_interval_ms);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return NULL;
    return msg_new_frame(NULL, 0, buf, (size_t)n);
}

void sse_on_stats_tick(struct conn *c, struct msg *frame)
{
    if (c->closing || c->drain)
        return;
    if (sendq_len(&c->q) >= 8)
        return; /* a reader that does not keep up misses snapshots, it does not queue them */
    sendq_push_control(&c->q, frame);
    http_request_writable(c);
}
