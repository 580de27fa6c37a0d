/* http_ws.c: GET /v1/ws, JSON text frames both ways (the protocol is documented in README.md).
 *
 * Requests are answered in order on the connection's send queue, the same queue that carries
 * messages, so a client sees an ack after the replay it asked for and never out of order.
 *
 * The write side is the fan-out's hot path. A delivery only queues a reference and puts the
 * connection on srv->ws_flushq; after the loop's poll phase (a uv_check handle, so a publish
 * has long returned) each queued connection gets its frames in ONE write, straight away when
 * lws holds nothing unsent for it, else from its writable callback. Asking lws for a writable
 * callback per message costs two epoll_ctl() and a wake-up per delivery; that was half of a
 * 10,000-socket broadcast's CPU. Frames already queued for a connection go out together. */
#include "http_private.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_ws_flush(uv_check_t *h);

/* @c has frames queued: write them after this poll phase. */
static void want_write(struct conn *c)
{
    struct http_server *srv = c->srv;

    if (c->flush_queued)
        return;
    if (!srv->ws_flush_live) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (dlist_is_empty(&srv->ws_flushq))
        uv_check_start(&srv->ws_flush, on_ws_flush);
    dlist_insert_tail(&srv->ws_flushq, &c->flush);
    c->flush_queued = 1;
}

/* A reply (an ack, an error, a pong) for @c: its connection goes to the head of the flush, so
 * a publisher's ack is written before the fan-out of its message, not after 10,000 writes. The
 * order on the connection itself is its queue's. */
static void want_write_first(struct conn *c)
{
    struct http_server *srv = c->srv;

    if (!srv->ws_flush_live) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (c->flush_queued)
        dlist_remove(&c->flush);
    if (dlist_is_empty(&srv->ws_flushq))
        uv_check_start(&srv->ws_flush, on_ws_flush);
    dlist_insert_tail(srv->ws_flushq.next, &c->flush); /* before the first: at the head */
    c->flush_queued = 1;
}

static int ws_deliver(struct sub *s, struct msg *m)
{
    struct conn *c = container_of(s, struct conn, sub);

    if (c->closing || sendq_push(&c->q, m) != 0)
        return SUB_SLOW;
    want_write(c);
    return 0;
}

static void ws_kick(struct sub *s, enum sub_kick why)
{
    struct conn *c = container_of(s, struct conn, sub);

    metrics_inc(M_SLOW_CONSUMERS);
    log_info("ws: cutting slow consumer '%s' (%zu messages queued)", c->id.sub, sendq_len(&c->q));
    /* write what is queued (the client resumes from the last cursor it got), then close */
    c->drain = 1;
    c->close_code = 1013;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s",
             "send queue overflow: reconnect and resume from your cursor");
    lws_callback_on_writable(c->wsi);
}

static void ws_reset(struct sub *s, const char *topic, size_t len, const char *epoch);
static void ws_ready(struct sub *s, const char *topic, size_t len, const struct cursor_pos *pos,
                     int status);

const struct sub_ops ws_sub_ops = {
    .deliver = ws_deliver, .kick = ws_kick, .reset = ws_reset, .ready = ws_ready};

void ws_close_soon(struct conn *c, uint16_t code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    lws_callback_on_writable(c->wsi);
}

/* A plain HTTP answer to a refused upgrade, so clients see 401/403/503 and not a reset. */
static int refuse_upgrade(struct lws *wsi, int status, const char *reason)
{
    unsigned char buf[LWS_PRE + 512];
    char *p = (char *)buf + LWS_PRE;
    int bl = (int)strlen(reason) + 12;
    int n = snprintf(p, 512,
                     "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                     "content-length: %d\r\nconnection: close\r\n\r\n{\"error\":\"%s\"}",
                     status,
                     status == 401   ? "Unauthorized"
                     : status == 403 ? "Forbidden"
                     : status == 429 ? "Too Many Requests"
                     : status == 404 ? "Not Found"
                                     : "Service Unavailable",
                     bl, reason);

    if (lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_HTTP_HEADERS) >= 0)
        metrics_written(MET_TR_WS, (size_t)n);
    return -1;
}

/* A refused upgrade is a whole request: counted and logged now, as nothing is left to release
 * (c->srv cleared). On HTTP/2 (a browser's WebSocket over an h2 stream, RFC 8441) the status
 * ends the stream: lws allows one write here, and the WebSocket API shows no body anyway. */
static int refuse(struct conn *c, int status, const char *reason)
{
    int rc = -1;

    c->status = (uint16_t)status;
    if (c->h2) {
        static const char head[] = "HTTP/1.1 0 x\r\ncontent-type: application/json\r\n\r\n";

        http_h2_write_head(c, head, sizeof(head) - 1, 0, 1);
    } else {
        rc = refuse_upgrade(c->wsi, status, reason);
    }
    conn_release(c);
    return rc;
}

/* The upgrade's path: the request line's on HTTP/1.1, :path on HTTP/2 (RFC 8441's CONNECT
 * with :protocol websocket, which Chromium uses once the connection speaks h2). */
static int upgrade_path(struct lws *wsi, char *buf, size_t cap)
{
    int n = lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_GET_URI);

    return n > 0 ? n : lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_COLON_PATH);
}

/* Cross-site WebSocket hijacking: a browser always sends Origin on an upgrade, so a page of an
 * origin not on websocket.allowed_origins is refused. Clients that are not browsers send none
 * and are let through (they authenticate with their token like everyone). */
static int origin_allowed(const struct conf *cf, struct lws *wsi)
{
    char origin[256];
    int n;

    if (!cf->n_ws_origins)
        return 1;
    n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return 1;
    for (size_t i = 0; i < cf->n_ws_origins; i++)
        if (strcmp(cf->ws_origins[i], "*") == 0 || strcmp(cf->ws_origins[i], origin) == 0)
            return 1;
    return 0;
}

int ws_on_filter(struct conn *c, struct lws *wsi)
{
    struct http_server *srv = lws_context_user(lws_get_context(wsi));
    char path[64], tok[AUTH_TOKEN_MAX + 16];
    const char *why = "missing token";
    int n;

    if (!c)
        return -1;
    memset(c, 0, sizeof(*c));
    dlist_init(&c->link);
    dlist_init(&c->flush);
    c->wsi = wsi;
    c->srv = srv;
    c->start_ns = metrics_mono_ns();
    c->method = HTTP_GET;
    c->endpoint = MET_EP_WS;
    c->h2 = lws_get_network_wsi(wsi) != wsi;
    metrics_inc(M_HTTP_REQUESTS);
    if (upgrade_path(wsi, path, sizeof(path)) <= 0 || strcmp(path, "/v1/ws") != 0) {
        c->endpoint = MET_EP_OTHER;
        if (srv->cf->log_access) {
            char upath[256];
            int plen = upgrade_path(wsi, upath, sizeof(upath));

            if (plen > 0)
                c->path = xstrndup(upath, (size_t)plen);
        }
        return refuse(c, 404, "not found");
    }
    {
        struct ip_entry *e = limits_entry(srv, wsi);

        if (!limits_allow_request(srv, e))
            return refuse(c, 429, "too many requests");
        if (!limits_add_stream(srv, e))
            return refuse(c, 429, "too many connections from your address");
        if (srv->cf->max_conns_per_ip)
            c->ip = e;
    }
    if (!origin_allowed(srv->cf, wsi)) {
        metrics_inc(M_FORBIDDEN);
        log_notice("ws: refused an upgrade from a page of another origin");
        return refuse(c, 403, "origin not allowed");
    }
    if (srv->refusing)
        return refuse(c, 503, "shutting down");
    if (srv->n_streams >= srv->cf->max_connections)
        return refuse(c, 503, "too many connections");
    n = http_find_token(wsi, tok, sizeof(tok)); /* a non-Bearer Authorization: "missing token" */
    if (n <= 0 || http_verify_token(srv->cf, tok, (size_t)n, &c->id, &why) != 0) {
        metrics_inc(M_AUTH_FAILURES);
        http_log_refused(c, why);
        return refuse(c, 401, why);
    }
    c->authed = 1;
    return 0;
}

int ws_on_established(struct conn *c, struct lws *wsi)
{
    if (!c || !c->authed)
        return -1;
    c->kind = CONN_WS;
    c->wsi = wsi;
    sub_init(&c->sub, &ws_sub_ops);
    sendq_init(&c->q, c->srv->cf->send_queue);
    sendq_limit_bytes(&c->q, c->srv->cf->send_queue_bytes, 0);
    dlist_insert_tail(&c->srv->sockets, &c->link);
    c->srv->n_streams++;
    http_count_present(c);
    c->status = 101;
    metrics_connections(MET_TR_WS, 1);
    metrics_inc(M_WS_CONNECTIONS);
    log_debug("ws: '%s' connected", c->id.sub);
    return 0;
}

/* Queues @j (taken) as a text frame. */
static void send_json(struct conn *c, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    struct msg *m = msg_new_frame(text, strlen(text), NULL, 0);

    free(text);
    json_decref(j);
    if (c->closing || sendq_push(&c->q, m) != 0) {
        if (!c->sub.kicked) {
            c->sub.kicked = 1;
            ws_kick(&c->sub, SUB_KICK_SLOW);
        }
    } else {
        want_write_first(c);
    }
    msg_unref(m);
}

static json_t *reply(const char *type, json_t *rid)
{
    json_t *j = json_pack("{s:s}", "type", type);

    if (rid)
        json_object_set(j, "rid", rid);
    return j;
}

static void send_error(struct conn *c, json_t *rid, const char *why)
{
    json_t *j = reply("error", rid);

    json_object_set_new(j, "error", json_string(why));
    send_json(c, j);
}

/* A subscribe waiting for its topic to go live; the ack is sent from ws_ready(). */
struct ws_pending {
    struct ws_pending *next;
    json_t *rid;
    int reset;
    size_t len;
    char topic[];
};

static struct ws_pending **find_pending(struct conn *c, const char *topic, size_t len)
{
    struct ws_pending **pp;

    for (pp = &c->acks; *pp; pp = &(*pp)->next)
        if ((*pp)->len == len && memcmp((*pp)->topic, topic, len) == 0)
            return pp;
    return NULL;
}

static void ws_release_one(struct conn *c, const char *topic, size_t len)
{
    struct ws_pending **pp = find_pending(c, topic, len), *p;

    if (!pp)
        return;
    p = *pp;
    *pp = p->next;
    json_decref(p->rid);
    xfree(p);
}

void ws_release(struct conn *c)
{
    if (c->flush_queued) {
        dlist_remove(&c->flush);
        c->flush_queued = 0;
    }
    while (c->acks) {
        struct ws_pending *p = c->acks;

        c->acks = p->next;
        json_decref(p->rid);
        xfree(p);
    }
}

static void ws_reset(struct sub *s, const char *topic, size_t len, const char *epoch)
{
    struct conn *c = container_of(s, struct conn, sub);
    struct ws_pending **pp = find_pending(c, topic, len);
    struct msg *m = msg_new_reset(topic, len, epoch);

    if (pp)
        (*pp)->reset = 1;
    sendq_push_control(&c->q, m);
    want_write(c);
    msg_unref(m);
}

static void ws_ready(struct sub *s, const char *topic, size_t len, const struct cursor_pos *pos,
                     int status)
{
    struct conn *c = container_of(s, struct conn, sub);
    struct ws_pending **pp = find_pending(c, topic, len), *p;
    char text[CURSOR_POS_RAW_MAX * 2];
    json_t *ack;

    if (!pp)
        return;
    p = *pp;
    *pp = p->next;
    ack = reply("ack", p->rid);
    json_object_set_new(ack, "topic", json_stringn(topic, len));
    json_object_set_new(ack, "recovered", json_boolean(!p->reset && status == 0));
    if (status == 0 && cursor_format(pos, 1, text, sizeof(text)) > 0)
        json_object_set_new(ack, "cursor", json_string(text));
    else
        json_object_set_new(ack, "warning", json_string("history unavailable"));
    send_json(c, ack);
    json_decref(p->rid);
    xfree(p);
}

static void on_subscribe(struct conn *c, json_t *req, json_t *rid)
{
    json_t *jt = json_object_get(req, "topic"), *jc = json_object_get(req, "cursor");
    const char *topic = json_string_value(jt);
    size_t len = json_string_length(jt);
    const struct cursor_pos *from = NULL;
    struct cursor cur = {0};
    struct ws_pending *p;

    if (!topic || !topic_is_valid(topic, len))
        return send_error(c, rid, "invalid topic");
    if (!http_may_read(c, topic, len)) {
        metrics_inc(M_FORBIDDEN);
        log_notice("ws: user '%s' refused topic '%s'", c->id.sub, topic);
        return send_error(c, rid, "forbidden topic");
    }
    if (c->sub.n_topics >= c->srv->cf->max_topics)
        return send_error(c, rid, "too many subscriptions");
    if (jc && (!json_is_string(jc) ||
               cursor_parse(&cur, json_string_value(jc), json_string_length(jc)) != 0)) {
        cursor_release(&cur);
        return send_error(c, rid, "malformed cursor");
    }
    if (jc)
        from = cursor_find(&cur, topic, len);
    if (find_pending(c, topic, len)) {
        cursor_release(&cur);
        return send_error(c, rid, "subscribe already in progress");
    }
    /* before subscribing: with the local backplane, ws_ready() runs inside the call */
    p = xcalloc(1, sizeof(*p) + len);
    p->rid = rid ? json_incref(rid) : NULL;
    p->len = len;
    memcpy(p->topic, topic, len);
    p->next = c->acks;
    c->acks = p;
    if (hub_subscribe_from(c->srv->hub, &c->sub, topic, len, from) != 1) {
        json_t *ack = reply("ack", rid);

        /* already subscribed: nothing to replay, it is live */
        ws_release_one(c, topic, len);
        json_object_set_new(ack, "topic", json_stringn(topic, len));
        send_json(c, ack);
    }
    cursor_release(&cur);
}

static void on_ws_published(void *ud, int status, const struct msg_id *id)
{
    struct pub_req *p = ud;
    struct conn *c = pub_req_done(p);
    char idstr[MSG_ID_STR_MAX];
    json_t *ack;

    if (status == 0)
        metrics_inc(M_PUBLISHED);
    metrics_published(MET_SRC_WS, status == 0);
    if (c && status == HUB_OFFLINE) {
        send_error(c, p->rid, "recipient offline");
    } else if (c && status != 0) {
        send_error(c, p->rid, "backplane unavailable");
    } else if (c) {
        ack = reply("ack", p->rid);
        if (id) {
            msg_id_format(*id, idstr);
            json_object_set_new(ack, "id", json_string(idstr));
        }
        json_object_set_new(ack, "topic", json_stringn(p->topic, p->topic_len));
        if (!id)
            json_object_set_new(ack, "ephemeral", json_true());
        send_json(c, ack);
    }
    json_decref(p->rid);
    xfree(p);
}

/* limits.publish_rate per second, bursts up to limits.publish_burst: a token bucket kept in
 * thousandths of a publish. */
static int take_token(struct conn *c)
{
    const struct conf *cf = c->srv->cf;
    uint64_t now = http_now_ms(), cap = (uint64_t)cf->publish_burst * 1000;

    if (!cf->publish_rate)
        return 1;
    if (!c->bucket_ms) {
        c->bucket = cap;
        c->bucket_ms = now;
    }
    c->bucket += (now - c->bucket_ms) * cf->publish_rate;
    if (c->bucket > cap)
        c->bucket = cap;
    c->bucket_ms = now;
    if (c->bucket < 1000) {
        c->floods++;
        return 0;
    }
    c->bucket -= 1000;
    c->floods = 0;
    return 1;
}

static void on_publish(struct conn *c, json_t *req, json_t *rid)
{
    char topic[TOPIC_MAX_LEN + 1];
    const char *why = NULL;
    json_t *data = json_object_get(req, "data"), *jeph = json_object_get(req, "ephemeral");
    int tlen = api_target_topic(req, topic, sizeof(topic), &why);
    struct pub_req *p;
    char *text;

    if (!take_token(c)) {
        /* told once per refusal; a client that keeps going for a whole burst is cut */
        if (c->floods >= c->srv->cf->publish_burst) {
            metrics_inc(M_WS_PROTOCOL_ERRORS);
            log_notice("ws: closing '%s': publish flood", c->id.sub);
            /* the replies already queued go first, then the close */
            c->drain = 1;
            c->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
            snprintf(c->close_reason, sizeof(c->close_reason), "publish flood");
            lws_callback_on_writable(c->wsi);
            return;
        }
        return send_error(c, rid, "rate limited");
    }
    if (tlen < 0)
        return send_error(c, rid, why);
    if (!http_may_publish(c, topic, (size_t)tlen)) {
        metrics_inc(M_FORBIDDEN);
        log_notice("ws: user '%s' refused publishing to '%s'", c->id.sub, topic);
        return send_error(c, rid, "forbidden topic");
    }
    if (!data)
        return send_error(c, rid, "missing \"data\"");
    if (jeph && !json_is_boolean(jeph))
        return send_error(c, rid, "\"ephemeral\" must be a boolean");
    text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    p = pub_req_new(c, topic, (size_t)tlen, rid, MET_SRC_WS);
    if (json_is_true(jeph))
        hub_send_ephemeral(c->srv->hub, topic, (size_t)tlen, c->id.sub, c->id.sub_len, text,
                           strlen(text), on_ws_published, p);
    else
        hub_publish(c->srv->hub, topic, (size_t)tlen, c->id.sub, c->id.sub_len, text, strlen(text),
                    on_ws_published, p);
    free(text);
}

void ws_on_tick(struct conn *c, uint64_t now)
{
    json_t *j;

    if (c->closing || c->drain || !c->id.exp)
        return;
    if (c->refresh_asked) {
        if (now >= c->deadline_ms)
            ws_close_soon(c, 4001, "token expired");
        return;
    }
    if (now / 1000 < (uint64_t)c->id.exp)
        return;
    c->refresh_asked = 1;
    c->deadline_ms = now + (uint64_t)c->srv->cf->refresh_grace_s * 1000;
    j = json_pack("{s:s,s:I}", "type", "refresh", "grace_s",
                  (json_int_t)c->srv->cf->refresh_grace_s);
    send_json(c, j);
}

/* {"type":"refresh","token":"..."}: a fresh token for the same user keeps the connection. */
static void on_refresh(struct conn *c, json_t *req, json_t *rid)
{
    json_t *jt = json_object_get(req, "token");
    struct auth_identity id = {0};
    const char *why = "missing token";

    if (!json_is_string(jt) || http_verify_token(c->srv->cf, json_string_value(jt),
                                                 json_string_length(jt), &id, &why) != 0)
        return send_error(c, rid, why);
    if (id.sub_len != c->id.sub_len || memcmp(id.sub, c->id.sub, id.sub_len) != 0) {
        auth_identity_release(&id);
        return send_error(c, rid, "token is for another user");
    }
    /* NEEDSWORK: grants that shrank are applied to new subscriptions only */
    auth_identity_release(&c->id);
    c->id = id;
    c->refresh_asked = 0;
    send_json(c, reply("ack", rid));
}

static void handle_frame(struct conn *c, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr), *rid;
    const char *type;

    if (!req) {
        metrics_inc(M_WS_PROTOCOL_ERRORS);
        ws_close_soon(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "malformed JSON");
        return;
    }
    if (!json_is_object(req)) {
        send_error(c, NULL, "frame must be a JSON object");
        json_decref(req);
        return;
    }
    rid = json_object_get(req, "rid");
    type = json_string_value(json_object_get(req, "type"));
    if (!type) {
        send_error(c, rid, "missing \"type\"");
    } else if (strcmp(type, "subscribe") == 0) {
        on_subscribe(c, req, rid);
    } else if (strcmp(type, "unsubscribe") == 0) {
        json_t *jt = json_object_get(req, "topic"), *ack;

        if (!json_is_string(jt)) {
            send_error(c, rid, "invalid topic");
        } else {
            hub_unsubscribe(c->srv->hub, &c->sub, json_string_value(jt), json_string_length(jt));
            ws_release_one(c, json_string_value(jt), json_string_length(jt));
            ack = reply("ack", rid);
            json_object_set(ack, "topic", jt);
            send_json(c, ack);
        }
    } else if (strcmp(type, "send") == 0 || strcmp(type, "publish") == 0) {
        on_publish(c, req, rid);
    } else if (strcmp(type, "refresh") == 0) {
        on_refresh(c, req, rid);
    } else if (strcmp(type, "ping") == 0) {
        send_json(c, reply("pong", rid));
    } else if (strcmp(type, "hello") == 0) {
        json_t *h = reply("hello", rid); /* the browser client: which node, how often we ping */

        json_object_set_new(h, "node", json_string(c->srv->node_id));
        json_object_set_new(h, "ping_interval_s", json_integer(c->srv->cf->ws_ping_interval_s));
        send_json(c, h);
    } else {
        send_error(c, rid, "unknown type");
    }
    json_decref(req);
}

int ws_on_receive(struct conn *c, const void *in, size_t len)
{
    struct lws *wsi = c->wsi;
    size_t max = c->srv->cf->max_message_bytes;

    if (c->closing || (c->drain && c->close_code))
        return 0; /* a close is decided: what the client still sends is ignored */
    if (lws_frame_is_binary(wsi)) {
        metrics_inc(M_WS_PROTOCOL_ERRORS);
        ws_close_soon(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary frames are not supported");
        return 0;
    }
    if (c->rx_len + len > max) {
        metrics_inc(M_WS_PROTOCOL_ERRORS);
        xfree(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
        ws_close_soon(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    if (!c->rx && lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
        !lws_remaining_packet_payload(wsi)) {
        handle_frame(c, in, len); /* the common case: one piece, no copy */
        return 0;
    }
    c->rx = xrealloc(c->rx, c->rx_len + len);
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        unsigned char *rx = c->rx;

        c->rx = NULL;
        handle_frame(c, (const char *)rx, c->rx_len);
        c->rx_len = 0;
        xfree(rx);
    }
    return 0;
}

/* lws 4.1.6 on libuv closes a second time from inside its close path ("uv repeat test") and
 * drops the close frame that lws_close_reason() had prepared, so clients saw 1006 instead of
 * our code. We write the close frame ourselves, then let lws kill the connection. */
static int send_close(struct conn *c, uint16_t code, const char *reason)
{
    unsigned char buf[LWS_PRE + 125];
    size_t n = strlen(reason);

    if (n > 123)
        n = 123;
    if (c->h2) {
        lws_close_reason(c->wsi, (enum lws_close_status)code, (unsigned char *)reason, n);
        return -1;
    }
    buf[LWS_PRE] = (unsigned char)(code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    memcpy(buf + LWS_PRE + 2, reason, n);
    /* 4 is LWS_WRITE_CLOSE, which lws 4.1 keeps out of its public enum */
    if (lws_write(c->wsi, buf + LWS_PRE, n + 2, (enum lws_write_protocol)4) < 0)
        return -1;
    metrics_written(MET_TR_WS, n + 2);
    /* Wait for the peer's close (lws ends the connection then), reading and dropping what it
     * still sends: closing with unread input would reset the connection, and a peer that
     * was still sending would lose our close frame. A peer that never answers is cut. */
    c->closing = 1;
    c->close_sent = 1;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
    return 0;
}

/* Up to WS_BATCH_BYTES of queued frames are copied behind their headers into one buffer and
 * go out in one lws_write(): k frames for one send(). One frame alone is written in place (lws
 * puts its header in the LWS_PRE headroom), with no copy. */
#define WS_BATCH_BYTES 16384

static size_t put_header(unsigned char *p, size_t len)
{
    p[0] = 0x81; /* FIN, text: every queued frame is a whole text message */
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    p[1] = 126; /* a batch never holds a frame of 64 KB or more */
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    return 4;
}

/* Writes what is queued (one batch). Returns -1 if the connection failed. */
static int write_queued(struct conn *c)
{
    static unsigned char batch[LWS_PRE + WS_BATCH_BYTES];
    size_t n = 0, len = 0, q = sendq_len(&c->q);
    unsigned char *p = batch + LWS_PRE;
    uint64_t now = metrics_wall_us();

    while (n < q) {
        size_t fl = sendq_at(&c->q, n)->ws_len;

        if (len + fl + 4 > WS_BATCH_BYTES)
            break;
        len += fl + 4;
        n++;
    }
    /* An h2 stream (RFC 8441) frames its own DATA: raw bytes would corrupt the connection,
     * so it gets one message per write. */
    if (n <= 1 || c->h2) {
        struct msg *m = sendq_peek(&c->q);

        if (lws_write(c->wsi, m->ws, m->ws_len, LWS_WRITE_TEXT) < 0)
            return -1;
        n = 1;
        len = m->ws_len;
    } else {
        for (size_t i = 0; i < n; i++) {
            struct msg *m = sendq_at(&c->q, i);

            p += put_header(p, m->ws_len);
            memcpy(p, m->ws, m->ws_len);
            p += m->ws_len;
        }
        len = (size_t)(p - (batch + LWS_PRE));
        /* the frames are complete: lws sends the bytes as they are (and keeps what the socket
         * does not take, writing it before anything else) */
        if (lws_write(c->wsi, batch + LWS_PRE, len, LWS_WRITE_RAW) < 0)
            return -1;
    }
    metrics_written(MET_TR_WS, len);
    for (size_t i = 0; i < n; i++) {
        struct msg *m = sendq_peek(&c->q);

        if (m->topic && !m->is_reset)
            metrics_delivered(MET_TR_WS, m->ts, now);
        sendq_pop(&c->q);
    }
    return 0;
}

/* The deliveries of this poll phase: each connection's queue in one write while lws has
 * nothing unsent for it; otherwise (and for closes) its writable callback takes over. */
static void on_ws_flush(uv_check_t *h)
{
    struct http_server *srv = container_of(h, struct http_server, ws_flush);

    while (!dlist_is_empty(&srv->ws_flushq)) {
        struct conn *c = dlist_entry(srv->ws_flushq.next, struct conn, flush);

        dlist_remove(&c->flush);
        c->flush_queued = 0;
        if (c->close_sent)
            continue;
        /* h2 streams write only from their writable callback (lws's per-stream rule) */
        if (c->closing || c->drain || c->h2 || lws_partial_buffered(c->wsi)) {
            lws_callback_on_writable(c->wsi);
            continue;
        }
        if (sendq_len(&c->q) && write_queued(c) != 0) {
            /* not inside an lws callback: it cannot be closed from here */
            c->closing = c->close_sent = 1;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (sendq_len(&c->q))
            lws_callback_on_writable(c->wsi); /* a batch was full, or the socket is */
    }
    uv_check_stop(h);
}

void ws_server_init(struct http_server *srv)
{
    dlist_init(&srv->ws_flushq);
    uv_check_init(srv->loop, &srv->ws_flush);
    srv->ws_flush_live = 1;
}

static void on_flush_closed(uv_handle_t *h)
{
}

void ws_server_close(struct http_server *srv)
{
    if (!srv->ws_flush_live)
        return;
    srv->ws_flush_live = 0;
    uv_close((uv_handle_t *)&srv->ws_flush, on_flush_closed);
}

int ws_on_writable(struct conn *c)
{
    if (c->close_sent)
        return 0;

    if (c->closing)
        return send_close(c, c->close_code, c->close_reason);
    if (!sendq_len(&c->q)) {
        if (c->drain && c->close_code)
            return send_close(c, c->close_code, c->close_reason);
        if (c->drain)
            return send_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        return 0;
    }
    if (write_queued(c) != 0)
        return -1;
    if (sendq_len(&c->q) || c->drain)
        lws_callback_on_writable(c->wsi);
    return 0;
}
