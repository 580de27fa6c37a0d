/* http_server.c: the lws context on our libuv loop, the one protocol that receives every HTTP
 * request and WebSocket upgrade, routing to the transports, answer helpers, and the tick that
 * sends heartbeats, finds dead peers and times out long-polls.
 *
 * libwebsockets 4.1.6 busy-loops when the client of a held request leaves, and only notices
 * when a write fails (FACTS.md). So held requests keep rx flow control off, turn it on only
 * around a write, and the tick peeks at each held socket for EOF. */
#include "rtgate/http_server.h"

#include "http_private.h"
#include "rtgate/backplane.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/presence.h"
#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS          250
#define SWEEP_MS         2000
#define RESP_HEADERS_MAX 1024

uint64_t http_now_ms(void)
{
    return util_now_ms();
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 409: return "Conflict";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* We format the status line and headers ourselves for HTTP/1.1, as one buffer with the body,
 * so an answer is a single write and lws keeps no per-answer state. */
int http_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                 const char *extra)
{
    size_t hmax = RESP_HEADERS_MAX + (extra ? strlen(extra) : 0) + (c->cors ? strlen(c->cors) : 0);
    unsigned char *buf = xmalloc(LWS_PRE + hmax + len);
    int n;

    if (status >= 400)
        metrics_inc(M_HTTP_ERRORS);
    c->status = (uint16_t)status;
    n = snprintf(
        (char *)buf + LWS_PRE, hmax,
        "HTTP/1.1 %d %s\r\n"
        "content-type: %s\r\n"
        "content-length: %zu\r\n"
        "%s%s%s%s"
        "\r\n",
        status, status_text(status), ctype ? ctype : "application/json", len,
        extra && strncmp(extra, "cache-control:", 14) == 0 ? "" : "cache-control: no-store\r\n",
        c->keep_alive ? "" : "connection: close\r\n", extra ? extra : "", c->cors ? c->cors : "");
    memcpy(buf + LWS_PRE + n, body, len);
    xfree(c->resp);
    c->resp = buf;
    c->resp_len = (size_t)n + len;
    http_request_writable(c);
    return 0;
}

int http_error(struct conn *c, int status, const char *reason)
{
    /* a reason that is not valid UTF-8 cannot be a JSON string: jansson refuses it, and the
     * answer must not depend on client bytes being well formed (found by fuzz_query) */
    json_t *j = json_pack("{s:s}", "error", reason);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = body ? http_respond(c, status, NULL, body, strlen(body), NULL)
                  : http_respond(c, status, NULL, "{\"error\":\"bad request\"}", 23, NULL);

    free(body);
    json_decref(j);
    return rc;
}

/* lws_get_urlarg_by_name() copies each argument into the buffer while it searches and gives
 * up at the first one that does not fit, hiding every later argument: search with a buffer
 * as big as any query can be, then copy out. A value longer than @cap comes back truncated
 * (its length is then cap - 1), so the caller's parse fails rather than the argument vanishing. */
static int urlarg(struct lws *wsi, const char *name, char *buf, size_t cap)
{
    static char scratch[HTTP_HEADER_MAX + 1];
    const char *v = lws_get_urlarg_by_name(wsi, name, scratch, (int)sizeof(scratch));
    size_t n;

    if (!v)
        return -1;
    n = strlen(v);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return (int)n;
}

int http_arg(struct conn *c, const char *name, char *buf, size_t cap)
{
    return urlarg(c->wsi, name, buf, cap);
}

int http_find_token(struct lws *wsi, char *buf, size_t cap)
{
    int n = lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION);

    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        memmove(buf, buf + 7, (size_t)n - 7 + 1);
        return n - 7;
    }
    if (n > 0)
        return -1;
    n = urlarg(wsi, "token=", buf, cap);
    return n > 0 ? n : 0;
}

int http_authenticate(struct conn *c)
{
    char tok[AUTH_TOKEN_MAX + 16];
    int n = http_find_token(c->wsi, tok, sizeof(tok));
    const char *why = n < 0 ? "authorization must be a Bearer token" : "missing token";

    if (n > 0 && http_verify_token(c->srv->cf, tok, (size_t)n, &c->id, &why) == 0) {
        c->authed = 1;
        return 0;
    }
    metrics_inc(M_AUTH_FAILURES);
    http_log_refused(c, why);
    http_error(c, 401, why);
    return -1;
}

void http_log_refused(const struct conn *c, const char *why)
{
    log_notice("http: %s refused: %s", metrics_endpoint_name(c->endpoint), why);
}

int http_verify_token(const struct conf *cf, const char *tok, size_t len, struct auth_identity *id,
                      const char **why)
{
    struct auth_verifier v = {
        .keys = cf->keys,
        .n_keys = cf->n_keys,
        .leeway_s = cf->jwt_leeway_s,
        .iss = cf->jwt_issuer,
        .aud = cf->jwt_audience,
    };

    auth_identity_release(id);
    return auth_verify(&v, tok, len, (int64_t)(http_now_ms() / 1000), id, why);
}

int http_may_read(const struct conn *c, const char *topic, size_t len)
{
    const struct conf *cf = c->srv->cf;

    return auth_may(&c->id, 'r', topic, len, cf->default_topics, cf->n_default_topics);
}

int http_may_publish(const struct conn *c, const char *topic, size_t len)
{
    const struct conf *cf = c->srv->cf;

    /* a message to a user's inbox is a "send": every signed-in user may send */
    if (topic_is_user(topic, len, NULL, NULL))
        return 1;
    return auth_may(&c->id, 'p', topic, len, cf->default_publish, cf->n_default_publish);
}

int http_parse_topics(struct conn *c)
{
    char buf[4096], msgbuf[TOPIC_MAX_LEN + 64];
    int n = http_arg(c, "topics=", buf, sizeof(buf));
    const char *p, *end;
    size_t count = 1, names = 0;
    struct stream_topics *st;
    char *dst;

    if (n < 0) {
        n = topic_format_user(buf, sizeof(buf), c->id.sub, c->id.sub_len);
    }
    for (int i = 0; i < n; i++)
        count += buf[i] == ',';
    if (n == 0 || count > c->srv->cf->max_topics) {
        snprintf(msgbuf, sizeof(msgbuf), n == 0 ? "no topics" : "too many topics (limit %zu)",
                 c->srv->cf->max_topics);
        return http_error(c, 400, msgbuf), -1;
    }
    st = xcalloc(1, sizeof(*st) + count * sizeof(st->pos[0]) + (size_t)n + count);
    dst = (char *)&st->pos[count];
    for (p = buf, end = buf + n; p <= end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = (size_t)((comma ? comma : end) - p);

        if (!topic_is_valid(p, len)) {
            size_t shown = len > TOPIC_MAX_LEN ? TOPIC_MAX_LEN : len, o;

            /* echo the name back with anything but printable ASCII as '?' */
            o = (size_t)snprintf(msgbuf, sizeof(msgbuf), "invalid topic \"");
            for (size_t k = 0; k < shown && o + 3 < sizeof(msgbuf); k++)
                msgbuf[o++] =
                    (p[k] >= 0x20 && p[k] < 0x7f && p[k] != '"' && p[k] != '\\') ? p[k] : '?';
            msgbuf[o++] = '"';
            msgbuf[o] = '\0';
            xfree(st);
            return http_error(c, 400, msgbuf), -1;
        }
        if (!http_may_read(c, p, len)) {
            metrics_inc(M_FORBIDDEN);
            log_notice("http: user '%s' refused topic '%.*s'", c->id.sub, (int)len, p);
            xfree(st);
            return http_error(c, 403, "forbidden topic"), -1;
        }
        for (size_t i = 0; i < st->n; i++)
            if (st->pos[i].topic_len == len && memcmp(st->pos[i].topic, p, len) == 0)
                goto next; /* a topic named twice is read once */
        memcpy(dst, p, len);
        dst[len] = '\0';
        st->pos[st->n].topic = dst;
        st->pos[st->n].topic_len = len;
        st->n++;
        dst += len + 1;
        names++;
    next:
        p += len + 1;
    }
    c->topics = st;
    return 0;
}

int http_apply_cursor(struct conn *c, const char *s, size_t len, int earliest, struct cursor *cur)
{
    cur->raw = NULL;
    cur->n = 0;
    if (s && cursor_parse(cur, s, len) != 0) {
        cursor_release(cur);
        return http_error(c, 400, "malformed cursor"), -1;
    }
    for (size_t i = 0; i < c->topics->n; i++) {
        struct cursor_pos *pos = &c->topics->pos[i];
        const struct cursor_pos *from = s ? cursor_find(cur, pos->topic, pos->topic_len) : NULL;

        if (from) {
            memcpy(pos->epoch, from->epoch, sizeof(pos->epoch));
            pos->id = from->id;
        } else {
            pos->epoch[0] = '\0'; /* no position yet: "now" (or the oldest, if earliest) */
            pos->id = (struct msg_id){0, 0};
        }
    }
    return 0;
}

struct pub_req *pub_req_new(struct conn *c, const char *topic, size_t len, json_t *rid,
                            enum metrics_source source)
{
    struct pub_req *p = xcalloc(1, sizeof(*p) + len + 1);

    p->c = c;
    p->source = source;
    p->rid = rid ? json_incref(rid) : NULL;
    p->topic_len = len;
    memcpy(p->topic, topic, len);
    p->next = c->pubs;
    c->pubs = p;
    return p;
}

struct conn *pub_req_done(struct pub_req *p)
{
    struct conn *c = p->c;

    if (c) {
        struct pub_req **pp;

        for (pp = &c->pubs; *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
    }
    return c;
}

int stream_cursor(const struct stream_topics *st, char *out, size_t cap)
{
    return cursor_format(st->pos, st->n, out, cap);
}

struct cursor_pos *stream_find(struct stream_topics *st, const char *topic, size_t len)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->pos[i].topic_len == len && memcmp(st->pos[i].topic, topic, len) == 0)
            return &st->pos[i];
    return NULL;
}

void stream_advance(struct stream_topics *st, const struct msg *m)
{
    if (m->is_ephemeral)
        return; /* outside the sequence: a resume position never points at one */
    for (size_t i = 0; i < st->n; i++) {
        struct cursor_pos *pos = &st->pos[i];

        if (pos->topic_len == m->topic_len && memcmp(pos->topic, m->topic, m->topic_len) == 0) {
            pos->id = m->is_reset ? (struct msg_id){0, 0} : m->id;
            memcpy(pos->epoch, m->epoch, sizeof(pos->epoch)); /* after a reset: the new epoch */
            return;
        }
    }
}

int http_admit_stream(struct conn *c)
{
    struct ip_entry *e = limits_entry(c->srv, c->wsi);

    if (!limits_add_stream(c->srv, e)) {
        c->keep_alive = 0;
        static const char body[] = "{\"error\":\"too many connections from your address\"}";

        http_respond(c, 429, NULL, body, sizeof(body) - 1, "retry-after: 5\r\n");
        return -1;
    }
    if (c->srv->cf->max_conns_per_ip)
        c->ip = e;
    return 0;
}

void http_count_present(struct conn *c)
{
    if (c->authed && !c->present && c->srv->presence) {
        c->present = 1;
        presence_join(c->srv->presence, c->id.sub, c->id.sub_len);
    }
}

void http_hold(struct conn *c, enum conn_kind kind)
{
    c->kind = kind;
    metrics_connections(kind == CONN_SSE ? MET_TR_SSE : MET_TR_LONGPOLL, 1);
    dlist_insert_tail(&c->srv->held, &c->link);
    c->srv->n_streams++;
    if (kind == CONN_SSE)
        http_count_present(c);
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    /* The request has been read: its header table (lws's ah, ~9 KB) goes back to lws, the
     * biggest part of what a held stream cost (7.5 KB -> see docs/BENCHMARKS.md). On h2 the
     * connection's own idle timeout would also end every stream on it: lws_http_mark_sse()
     * detaches and marks the stream immortal. */
    if (c->h2)
        lws_http_mark_sse(c->wsi);
    else
        lws_http_headers_detach(c->wsi);
    http_rx_flow(c, 0);
}

void http_rx_flow(struct conn *c, int on)
{
    if (!c->h2)
        lws_rx_flow_control(c->wsi, on);
}

void http_request_writable(struct conn *c)
{
    if (c->kind == CONN_SSE || c->kind == CONN_LONGPOLL)
        http_rx_flow(c, 1);
    lws_callback_on_writable(c->wsi);
}

enum metrics_transport http_transport(const struct conn *c)
{
    switch (c->endpoint) {
    case MET_EP_SSE: return MET_TR_SSE;
    case MET_EP_POLL: return MET_TR_POLL;
    case MET_EP_LONGPOLL: return MET_TR_LONGPOLL;
    case MET_EP_WS: return MET_TR_WS;
    default: return MET_TR_HTTP;
    }
}

static const char *const method_names[] = {"GET", "POST", "OPTIONS", "OTHER"};

static void end_request(struct conn *c)
{
    /* 499 (nginx's code): the client went away before it was answered */
    int status = c->status ? c->status : 499;
    struct log_access a;

    metrics_http_response(c->endpoint, status);
    if (!c->srv->cf->log_access)
        return;
    a.method = method_names[c->method];
    a.path = c->path ? c->path : metrics_endpoint_name(c->endpoint);
    a.path_len = strlen(a.path);
    a.status = status;
    a.duration_us = (metrics_mono_ns() - c->start_ns) / 1000;
    a.transport = metrics_transport_name(http_transport(c));
    log_access(&a);
}

void conn_release(struct conn *c)
{
    if (!c || !c->srv)
        return;
    end_request(c);
    if (c->kind == CONN_SSE || c->kind == CONN_LONGPOLL || c->kind == CONN_WS) {
        metrics_connections(c->kind == CONN_SSE        ? MET_TR_SSE
                            : c->kind == CONN_LONGPOLL ? MET_TR_LONGPOLL
                                                       : MET_TR_WS,
                            -1);
        hub_unsubscribe_all(c->srv->hub, &c->sub);
        sendq_release(&c->q);
        dlist_remove(&c->link);
        c->srv->n_streams--;
        if (c->stats)
            c->srv->n_stats--;
        if (c->kind == CONN_LONGPOLL)
            c->srv->n_held_polls--;
    }
    if (c->present)
        presence_leave(c->srv->presence, c->id.sub, c->id.sub_len);
    api_presence_release(c);
    msg_unref(c->scratch);
    while (c->pubs) {
        struct pub_req *p = c->pubs;

        c->pubs = p->next;
        p->c = NULL;
        p->next = NULL;
    }
    ws_release(c);
    poll_release(c);
    xfree(c->resp);
    xfree(c->body);
    xfree(c->topics);
    xfree(c->rx);
    xfree(c->cors);
    xfree(c->path);
    auth_identity_release(&c->id);
    limits_del_stream(c->ip);
    memset(c, 0, sizeof(*c));
}

int http_h2_write_head(struct conn *c, const char *h, size_t len, size_t body_len, int end)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start;
    unsigned char *e = buf + sizeof(buf) - 1;
    const char *line = memchr(h, '\n', len), *stop = h + len;
    char name[64];

    if (!line || lws_add_http_header_status(c->wsi, c->status | LWSAHH_FLAG_NO_SERVER_NAME, &p, e))
        return -1;
    for (line++; line < stop;) {
        const char *eol = memchr(line, '\n', (size_t)(stop - line)), *colon, *v;
        size_t n, vn;

        if (!eol)
            break;
        n = (size_t)(eol - line) - (eol > line && eol[-1] == '\r');
        if (n == 0)
            break;
        colon = memchr(line, ':', n);
        if (!colon || (size_t)(colon - line) + 2 > sizeof(name))
            return -1;
        for (size_t i = 0; i <= (size_t)(colon - line); i++) /* h2 names are lower case */
            name[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
        name[colon - line + 1] = '\0';
        for (v = colon + 1; v < line + n && *v == ' '; v++)
            ;
        vn = (size_t)(line + n - v);
        if (strcmp(name, "content-length:") == 0) {
            if (lws_add_http_header_content_length(c->wsi, body_len, &p, e))
                return -1;
        } else if (strcmp(name, "connection:") != 0 &&
                   lws_add_http_header_by_name(c->wsi, (const unsigned char *)name,
                                               (const unsigned char *)v, (int)vn, &p, e)) {
            return -1;
        }
        line = eol + 1;
    }
    if (lws_finalize_http_header(c->wsi, &p, e))
        return -1;
    return lws_write(c->wsi, start, (size_t)(p - start),
                     LWS_WRITE_HTTP_HEADERS | (end ? LWS_WRITE_H2_STREAM_END : 0)) < 0
               ? -1
               : 0;
}

void http_h2_end(struct conn *c)
{
    unsigned char buf[LWS_PRE + 1];

    lws_write(c->wsi, buf + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL);
}

/* HTTP/2: the prepared answer goes out as a HEADERS frame, then (from the next writable
 * callback: lws allows one write per stream per callback) its body with END_STREAM. The
 * stream ends; the connection, shared with the browser's other streams, stays. */
static int write_response_h2(struct conn *c)
{
    struct lws *wsi = c->wsi;
    const char *h = (const char *)c->resp + LWS_PRE;
    size_t head = 4, body;

    while (head < c->resp_len && memcmp(h + head - 4, "\r\n\r\n", 4) != 0)
        head++; /* the blank line after our own headers: always there */
    body = c->resp_len - head;

    if (!c->head_sent) {
        if (http_h2_write_head(c, h, head, body, body == 0) < 0)
            return -1;
        metrics_written(http_transport(c), head);
        if (body) {
            c->head_sent = 1;
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else {
        /* the header text before the body is spent: it is the body's LWS_PRE headroom */
        if (lws_write(wsi, (unsigned char *)h + head, body, LWS_WRITE_HTTP_FINAL) < 0)
            return -1;
        metrics_written(http_transport(c), body);
    }
    conn_release(c);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Writes the prepared answer. Returns what the lws callback must return. */
int http_write_response(struct conn *c)
{
    struct lws *wsi = c->wsi;
    int keep = c->keep_alive;

    if (c->closing)
        return -1; /* the answer was sent by an earlier call and lws has flushed it */
    if (!c->resp)
        return 0;
    if (c->h2)
        return write_response_h2(c);
    if (lws_write(wsi, c->resp + LWS_PRE, c->resp_len, LWS_WRITE_HTTP_HEADERS) < 0)
        return -1;
    metrics_written(http_transport(c), c->resp_len);
    if (!keep) {
        c->closing = 1;
        xfree(c->resp);
        c->resp = NULL;
        if (lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        return -1;
    }
    conn_release(c); /* lws_http_transaction_completed() frees c */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int on_http_writable(struct conn *c)
{
    if (!c || !c->srv)
        return 0;
    switch (c->kind) {
    case CONN_SSE: return sse_on_writable(c);
    case CONN_LONGPOLL: return poll_on_writable(c);
    default: return http_write_response(c);
    }
}

static enum http_method get_method(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
        return HTTP_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
        return HTTP_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI))
        return HTTP_OPTIONS;
    return HTTP_OTHER;
}

static const struct {
    const char *path;
    enum http_method method;
    enum metrics_endpoint ep;
} routes[] = {
    {"/v1/sse", HTTP_GET, MET_EP_SSE},
    {"/v1/poll", HTTP_GET, MET_EP_POLL},
    {"/v1/longpoll", HTTP_GET, MET_EP_LONGPOLL},
    {"/v1/ws", HTTP_GET, MET_EP_WS},
    {"/v1/messages", HTTP_POST, MET_EP_MESSAGES},
    {"/v1/publish", HTTP_POST, MET_EP_PUBLISH},
    {"/healthz", HTTP_GET, MET_EP_HEALTHZ},
    {"/readyz", HTTP_GET, MET_EP_READYZ},
    {"/metrics", HTTP_GET, MET_EP_METRICS},
    {"/v1/presence", HTTP_GET, MET_EP_PRESENCE},
    {"/v1/ice", HTTP_GET, MET_EP_ICE},
};

/* CORS: when the request's Origin is on cors.allowed_origins, every answer names it (and
 * exposes ETag for pollers). Browsers then let pages of that origin read our answers. */
static void check_origin(struct conn *c)
{
    const struct conf *cf = c->srv->cf;
    char origin[256];
    int n = lws_hdr_copy(c->wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);

    if (n <= 0 || !cf->n_cors_origins)
        return;
    for (size_t i = 0; i < cf->n_cors_origins; i++) {
        if (strcmp(cf->cors_origins[i], "*") == 0 || strcmp(cf->cors_origins[i], origin) == 0) {
            size_t cap = (size_t)n + 160;

            c->cors = xmalloc(cap);
            snprintf(c->cors, cap,
                     "access-control-allow-origin: %s\r\nvary: origin\r\n"
                     "access-control-expose-headers: etag, retry-after, x-rtgate-node\r\n",
                     origin);
            return;
        }
    }
}

/* A preflight (OPTIONS) for a known path: what a browser may send us. */
static int answer_preflight(struct conn *c)
{
    static const char allow[] =
        "access-control-allow-methods: GET, POST, OPTIONS\r\n"
        "access-control-allow-headers: authorization, content-type, x-api-key, last-event-id, "
        "if-none-match\r\n"
        "access-control-max-age: 600\r\n";

    if (!c->cors)
        return http_respond(c, 204, "text/plain", "", 0, NULL); /* no CORS headers: refused */
    return http_respond(c, 204, "text/plain", "", 0, allow);
}

static int on_http(struct conn *c, struct lws *wsi, const char *path)
{
    enum http_method m = get_method(wsi);
    int known = -1;

    memset(c, 0, sizeof(*c));
    c->kind = CONN_HTTP;
    c->wsi = wsi;
    c->srv = lws_context_user(lws_get_context(wsi));
    c->keep_alive = 1;
    c->h2 = lws_get_network_wsi(wsi) != wsi; /* a stream of an h2 connection */
    c->start_ns = metrics_mono_ns();
    c->method = (uint8_t)m;
    c->endpoint = MET_EP_OTHER;
    dlist_init(&c->link);
    metrics_inc(M_HTTP_REQUESTS);
    for (size_t i = 0; i < ARRAY_LEN(routes); i++)
        if (strcmp(path, routes[i].path) == 0)
            known = (int)i;
    check_origin(c);
    if (!limits_allow_request(c->srv, limits_entry(c->srv, wsi))) {
        c->keep_alive = 0;
        return http_respond(c, 429, NULL, "{\"error\":\"too many requests\"}", 29,
                            "retry-after: 1\r\n");
    }
    if (known < 0 && !c->srv->refusing) {
        int rc = static_on_request(c, path, m); /* the client, static_dir, stats stream */

        if (rc != STATIC_NOT_MINE)
            return rc;
    }
    if (known < 0) {
        /* lws hands us the path without its query string (where tokens travel) */
        if (c->srv->cf->log_access)
            c->path = xstrndup(path, strnlen(path, 256));
        return http_error(c, 404, "not found");
    }
    c->endpoint = (uint8_t)routes[known].ep;
    if (m == HTTP_OPTIONS)
        return answer_preflight(c);
    if (m != routes[known].method) {
        char allow[64];

        snprintf(allow, sizeof(allow), "allow: %s\r\n",
                 routes[known].method == HTTP_GET ? "GET" : "POST");
        c->keep_alive = m != HTTP_POST; /* an unread body must not be taken for a request */
        return http_respond(c, 405, NULL, "{\"error\":\"method not allowed\"}", 30, allow);
    }
    if (c->srv->refusing && strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0) {
        c->keep_alive = 0;
        return http_error(c, 503, "shutting down");
    }
    if (strcmp(path, "/v1/sse") == 0)
        return sse_on_request(c);
    if (strcmp(path, "/v1/poll") == 0)
        return poll_on_request(c, 0);
    if (strcmp(path, "/v1/longpoll") == 0)
        return poll_on_request(c, 1);
    if (strcmp(path, "/v1/ws") == 0)
        return http_error(c, 426, "WebSocket upgrade required");
    if (m == HTTP_POST)
        return api_on_post(c, path);
    return api_on_get(c, path);
}

static int callback_rtgate(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP: return on_http(c, wsi, in);
    case LWS_CALLBACK_HTTP_BODY: return c && c->srv ? api_on_body(c, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: return c && c->srv ? api_on_body_done(c) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE: return on_http_writable(c);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* also sent when an upgraded connection leaves HTTP: the WebSocket state stays */
        if (c && c->kind != CONN_WS)
            conn_release(c);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP: conn_release(c); return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: return ws_on_filter(c, wsi);
    case LWS_CALLBACK_ESTABLISHED: return ws_on_established(c, wsi);
    case LWS_CALLBACK_RECEIVE: return c && c->srv ? ws_on_receive(c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE: return c && c->srv ? ws_on_writable(c) : -1;
    case LWS_CALLBACK_CLOSED: conn_release(c); return 0;
    default: return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* A held socket whose peer has gone: recv() peeks 0 bytes (EOF) or an error. */
static int peer_gone(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    char ch;
    ssize_t r;

    if (fd < 0)
        return 1;
    r = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Closes a held connection from its next writable callback (which returns -1 when closing),
 * with lws's async kill as a backstop. */
static void kill_conn(struct conn *c)
{
    c->closing = 1;
    http_request_writable(c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static void drain_tick(struct http_server *srv, uint64_t now);

static void on_tick(uv_timer_t *t)
{
    struct http_server *srv = container_of(t, struct http_server, tick);
    uint64_t now = http_now_ms();
    int heartbeat = now >= srv->next_heartbeat_ms, sweep = now >= srv->next_sweep_ms;
    struct dlist *pos;

    struct msg *stats = NULL;

    log_tick();
    if (srv->n_stats && now >= srv->next_stats_ms) {
        srv->next_stats_ms = now + srv->cf->stats_interval_ms;
        stats = sse_stats_frame(srv);
    }
    if (heartbeat)
        srv->next_heartbeat_ms = now + srv->cf->sse_heartbeat_ms;
    if (sweep)
        srv->next_sweep_ms = now + SWEEP_MS;
    dlist_for_each (pos, &srv->held) {
        struct conn *c = dlist_entry(pos, struct conn, link);

        if (c->closing)
            continue;
        /* h2 streams are never rx-held: lws reads the connection's EOF itself */
        if (sweep && !c->h2 && peer_gone(c->wsi)) {
            metrics_inc(M_DEAD_PEERS);
            kill_conn(c);
            continue;
        }
        if (c->id.exp && now / 1000 >= (uint64_t)c->id.exp && !c->drain) {
            /* the token expired: end the stream, so the client comes back with a fresh one */
            if (c->kind == CONN_SSE)
                sse_on_expired(c);
            else
                poll_on_tick(c, UINT64_MAX);
            continue;
        }
        if (c->stats && stats)
            sse_on_stats_tick(c, stats);
        if (c->kind == CONN_SSE && heartbeat)
            sse_on_heartbeat(c);
        else if (c->kind == CONN_LONGPOLL)
            poll_on_tick(c, now);
    }
    msg_unref(stats);
    if (sweep) {
        dlist_for_each (pos, &srv->sockets)
            ws_on_tick(dlist_entry(pos, struct conn, link), now);
        limits_sweep(srv);
    }
    if (srv->draining)
        drain_tick(srv, now);
    if (srv->draining && srv->on_stopped &&
        (srv->n_streams == 0 || now >= srv->drain_deadline_ms) &&
        (srv->refusing || now >= srv->drain_deadline_ms)) {
        http_server_stopped_fn *fn = srv->on_stopped;

        if (srv->n_streams)
            log_warn("http: shutdown deadline passed with %zu connections open", srv->n_streams);
        srv->on_stopped = NULL;
        fn(srv->on_stopped_ud);
    }
}

static void emit_lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_write(level == LLL_ERR    ? LOG_ERR
              : level == LLL_WARN ? LOG_WARN
                                  : LOG_DEBUG,
              "lws: %.*s", (int)n, line);
}

/* node_id, or "<hostname>-<port>": what clients and dashboards show as "the node". */
static void set_node_id(struct http_server *srv)
{
    char host[CONF_NODE_ID_MAX + 1] = "rtgate";
    size_t n;

    if (srv->cf->node_id) {
        snprintf(srv->node_id, sizeof(srv->node_id), "%s", srv->cf->node_id);
        return;
    }
    if (gethostname(host, sizeof(host) - 8) != 0)
        snprintf(host, sizeof(host), "rtgate");
    host[sizeof(host) - 8] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '_';
    n = strlen(host);
    snprintf(host + n, sizeof(host) - n, "-%d", http_server_port(srv));
    memcpy(srv->node_id, host, sizeof(srv->node_id));
}

struct http_server *http_server_new(uv_loop_t *loop, const struct conf *cf, struct hub *hub,
                                    struct backplane *bp, char *err, size_t errlen)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    struct lws_context_creation_info info;
    void *loops[] = {loop, NULL};

    srv->loop = loop;
    srv->cf = cf;
    srv->hub = hub;
    srv->bp = bp;
    dlist_init(&srv->held);
    dlist_init(&srv->sockets);
    srv->heartbeat = msg_new_frame(NULL, 0, ": hb\n\n", 6);
    srv->heartbeat_ev = msg_new_frame(NULL, 0, "event: hb\ndata: {}\n\n", 20);
    if (!(srv->files = static_load(cf, err, errlen))) {
        msg_unref(srv->heartbeat);
        msg_unref(srv->heartbeat_ev);
        xfree(srv);
        return NULL;
    }
    srv->protocols[0] = (struct lws_protocols){
        .name = "rtgate",
        .callback = callback_rtgate,
        .per_session_data_size = sizeof(struct conn),
        .rx_buffer_size = 512, /* FACTS.md: the biggest lever on memory per connection */
    };
    srv->retry = (lws_retry_bo_t){
        .secs_since_valid_ping = (uint16_t)cf->ws_ping_interval_s,
        .secs_since_valid_hangup = (uint16_t)cf->ws_idle_timeout_s,
    };

    lws_set_log_level(LLL_ERR | LLL_WARN * (cf->log_level >= LOG_WARN) |
                          (LLL_NOTICE | LLL_INFO) * (cf->log_level >= LOG_DEBUG),
                      emit_lws_log);
    memset(&info, 0, sizeof(info));
    info.port = cf->listen_port ? cf->listen_port : CONTEXT_PORT_NO_LISTEN_SERVER;
    info.iface = cf->listen_address;
    info.protocols = srv->protocols;
    info.user = srv;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(cf->listen_address, ':') == NULL);

    info.foreign_loops = loops;
    if (cf->tls_cert_file) {
        /* TLS 1.2 and up, forward-secret AEAD suites only. With listen.http2, ALPN offers h2
         * so a browser's streams and polls share one connection (HTTP/1.1: six per origin). */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cf->tls_cert_file;
        info.ssl_private_key_filepath = cf->tls_key_file;
        info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
        info.ssl_cipher_list = "ECDHE+AESGCM:ECDHE+CHACHA20";
        info.alpn = cf->listen_http2 ? "h2,http/1.1" : "http/1.1";
    }
    info.retry_and_idle_policy = &srv->retry;
    info.timeout_secs = cf->request_timeout_s;         /* headers and bodies must arrive by then */
    info.timeout_secs_ah_idle = cf->request_timeout_s; /* incomplete headers too */
    info.keepalive_timeout = (int)cf->request_timeout_s;
    info.max_http_header_data = HTTP_HEADER_MAX; /* long cursors: Last-Event-ID, ?cursor= */
    /* No info.fd_limit_per_thread: below the process limit it turns lws's fd lookup into a
     * linear scan (main.c caps the limit itself, see raise_nofile()). */
    if (cf->listen_port == 0)
        info.port = 0; /* 0 asks the kernel for a free port: tests read it from the log */
    srv->listen_fd = -1;
    if (cf->listen_reuse_port)
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* http_listen.c accepts */

    /* Bind first: lws 4.1.6 returns a context that listens nowhere when its bind fails, and
     * destroying that one at once crashed in its libuv glue. */
    if ((cf->listen_reuse_port && http_listen_open(srv, err, errlen) != 0) ||
        (!cf->listen_reuse_port && http_listen_probe(cf, err, errlen) != 0)) {
        msg_unref(srv->heartbeat);
        msg_unref(srv->heartbeat_ev);
        static_free(srv->files);
        xfree(srv);
        return NULL;
    }
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        if (srv->listen_fd >= 0) {
            http_listen_close(srv);
            uv_run(loop, UV_RUN_NOWAIT); /* its close callback uses srv */
        }
        snprintf(err, errlen, "http: cannot listen on %s:%d (see the lws error above)",
                 cf->listen_address, cf->listen_port);
        msg_unref(srv->heartbeat);
        msg_unref(srv->heartbeat_ev);
        static_free(srv->files);
        xfree(srv);
        return NULL;
    }
    uv_timer_init(loop, &srv->tick);
    ws_server_init(srv);
    uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
    srv->next_heartbeat_ms = http_now_ms() + cf->sse_heartbeat_ms;
    srv->next_sweep_ms = http_now_ms() + SWEEP_MS;
    set_node_id(srv);
    return srv;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = xmalloc((size_t)n + 1);
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            xfree(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

int http_server_reload_tls(struct http_server *srv, char *err, size_t errlen)
{
    const struct conf *cf = srv->cf;
    size_t cl = 0, kl = 0;
    char *cert, *key;
    int rc;

    if (!cf->tls_cert_file)
        return 0;
    /* read on SIGHUP only (a rare, operator-driven moment), then handed to lws in memory:
     * connections already open keep their session, new handshakes use the new pair */
    cert = slurp(cf->tls_cert_file, &cl);
    key = slurp(cf->tls_key_file, &kl);
    rc = cert && key ? lws_tls_cert_updated(srv->ctx, cf->tls_cert_file, cf->tls_key_file, cert, cl,
                                            key, kl)
                     : -1;
    if (key) {
        explicit_bzero(key, kl);
        xfree(key);
    }
    xfree(cert);
    if (rc != 0)
        snprintf(err, errlen, "cannot load '%s' / '%s'", cf->tls_cert_file, cf->tls_key_file);
    return rc ? -1 : 0;
}

size_t http_server_streams(const struct http_server *srv)
{
    return srv->n_streams;
}

void http_server_set_presence(struct http_server *srv, struct presence *p)
{
    srv->presence = p;
}

int http_server_port(const struct http_server *srv)
{
    if (srv->listen_fd >= 0)
        return srv->listen_port;
    struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "default");

    return vh ? lws_get_vhost_listen_port(vh) : -1;
}

/* Tells one client to go: a WebSocket gets what is queued, then the drain close code; an SSE
 * stream a retry: hint, then its end (EventSource reconnects, through the balancer, to another
 * node); a held long-poll its answer now. */
static void tell_to_reconnect(struct http_server *srv, struct conn *c)
{
    char retry[48];
    struct msg *m;
    int n;

    c->drain = 1;
    switch (c->kind) {
    case CONN_WS:
        c->close_code = (uint16_t)srv->drain_code;
        snprintf(c->close_reason, sizeof(c->close_reason), "%s",
                 srv->drain_code == 1012 ? "server restarting: reconnect" : "server shutting down");
        lws_callback_on_writable(c->wsi);
        break;
    case CONN_SSE:
        n = snprintf(retry, sizeof(retry), "retry: %u\n\n", srv->cf->sse_retry_ms);
        m = msg_new_frame(NULL, 0, retry, (size_t)n);
        sendq_push_control(&c->q, m);
        msg_unref(m);
        http_request_writable(c);
        break;
    case CONN_LONGPOLL:
        poll_on_tick(c, UINT64_MAX); /* answer now, with what it has */
        break;
    default: break;
    }
}

static void assign_drain_times(struct http_server *srv, struct dlist *list, uint64_t now,
                               uint64_t spread)
{
    struct dlist *pos;

    dlist_for_each (pos, list) {
        struct conn *c = dlist_entry(pos, struct conn, link);
        uint32_t r = 0;

        if (spread)
            util_random(&r, sizeof(r));
        c->drain_at = now + (spread ? r % spread : 0) + 1;
    }
}

static void drain_step(struct http_server *srv, struct dlist *list, uint64_t now)
{
    struct dlist *pos;

    dlist_for_each (pos, list) {
        struct conn *c = dlist_entry(pos, struct conn, link);

        if (!c->drain && c->drain_at && now >= c->drain_at)
            tell_to_reconnect(srv, c);
    }
}

/* During a drain, every tick: end the grace period (refuse new clients, give each existing one
 * a random time in the spread window), then tell those whose time has come. */
static void drain_tick(struct http_server *srv, uint64_t now)
{
    if (!srv->refusing && now >= srv->refuse_at_ms) {
        uint64_t spread = srv->drain_spread_ms;

        srv->refusing = 1;
        log_notice("http: grace over, refusing new clients; telling %zu to reconnect over %llu ms",
                   srv->n_streams, (unsigned long long)spread);
        assign_drain_times(srv, &srv->sockets, now, spread);
        assign_drain_times(srv, &srv->held, now, spread);
    }
    if (srv->refusing) {
        drain_step(srv, &srv->sockets, now);
        drain_step(srv, &srv->held, now);
    }
}

void http_server_drain(struct http_server *srv, int fast, http_server_stopped_fn *fn, void *ud)
{
    uint64_t now = http_now_ms(), deadline = srv->cf->shutdown_timeout_ms;
    uint64_t grace = fast ? 0 : srv->cf->shutdown_grace_ms;
    uint64_t spread = fast ? 0 : srv->cf->shutdown_spread_ms;

    if (srv->draining)
        return;
    /* grace and spread are cut to fit the deadline, leaving a little to flush and close */
    if (grace > deadline)
        grace = deadline;
    if (spread > (deadline - grace) * 8 / 10)
        spread = (deadline - grace) * 8 / 10;
    srv->draining = 1; /* /readyz: 503 from now on */
    srv->drain_code = fast ? 1001 : 1012;
    srv->refuse_at_ms = now + grace;
    srv->drain_spread_ms = spread;
    srv->on_stopped = fn;
    srv->on_stopped_ud = ud;
    srv->drain_deadline_ms = now + deadline;
    uv_timer_stop(&srv->tick);
    uv_timer_start(&srv->tick, on_tick, 0, 20);
}

static void on_tick_closed(uv_handle_t *h)
{
}

void http_server_close(struct http_server *srv)
{
    uv_timer_stop(&srv->tick);
    uv_close((uv_handle_t *)&srv->tick, on_tick_closed);
    ws_server_close(srv);
    http_listen_close(srv);
    lws_context_destroy(srv->ctx); /* with a foreign loop this starts the destroy */
}

void http_server_free(struct http_server *srv)
{
    if (!srv)
        return;
    lws_context_destroy(srv->ctx); /* the second call finishes it (FACTS.md) */
    msg_unref(srv->heartbeat);
    msg_unref(srv->heartbeat_ev);
    static_free(srv->files);
    limits_free(srv);
    xfree(srv);
}
