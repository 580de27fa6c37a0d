/* http_private.h: what the http_*.c files share: the per-connection state lws allocates for
 * us, the server, and the response helpers. Not a public header: only http_*.c include it. */
#ifndef RTGATE_HTTP_PRIVATE_H
#define RTGATE_HTTP_PRIVATE_H

#include "rtgate/auth.h"
#include "rtgate/conf.h"
#include "rtgate/cursor.h"
#include "rtgate/dlist.h"
#include "rtgate/http_server.h"
#include "rtgate/hub.h"
#include "rtgate/metrics.h"
#include "rtgate/sendq.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <uv.h>

#define HTTP_HEADER_MAX 8192 /* all request headers and the URL together */

_Static_assert(LWS_PRE <= MSG_HEADROOM, "msg frames need LWS_PRE bytes of headroom");

struct conn;
struct ws_pending;
struct ip_entry;
struct http_server;

/* http_limits.c: per-address limits (off unless configured). */
struct ip_entry *limits_entry(struct http_server *srv, struct lws *wsi);
int limits_allow_request(struct http_server *srv, struct ip_entry *e);
int limits_add_stream(struct http_server *srv, struct ip_entry *e);
void limits_del_stream(struct ip_entry *e);
void limits_sweep(struct http_server *srv);
void limits_free(struct http_server *srv);

/* A publish waiting for the backplane's answer. The connection may close first: then c is
 * NULL and the answer is dropped (the message itself was or was not stored regardless). */
struct pub_req {
    struct pub_req *next;
    struct conn *c;
    json_t *rid; /* WebSocket request id */
    enum metrics_source source;
    size_t topic_len;
    char topic[];
};
struct pub_req *pub_req_new(struct conn *c, const char *topic, size_t len, json_t *rid,
                            enum metrics_source source);
/* Unlinks @p from its connection; returns the connection (NULL if it had gone). */
struct conn *pub_req_done(struct pub_req *p);
struct poll_state;
void ws_release(struct conn *c);
void poll_release(struct conn *c);

enum conn_kind { CONN_NONE, CONN_HTTP, CONN_SSE, CONN_LONGPOLL, CONN_WS };

enum http_method { HTTP_GET, HTTP_POST, HTTP_OPTIONS, HTTP_OTHER };

enum route {
    ROUTE_NONE,
    ROUTE_MESSAGES, /* POST /v1/messages */
    ROUTE_PUBLISH,  /* POST /v1/publish */
};

/* The positions a multi-topic stream has reached: its SSE ids and long-poll cursors. */
struct stream_topics {
    size_t n;
    struct cursor_pos pos[]; /* topic names are copied after the array */
};

/* lws's per-session memory for our one protocol: zeroed by lws, freed by lws. Keep it small:
 * a node holds tens of thousands. Big buffers are allocated on demand and freed after use. */
struct conn {
    enum conn_kind kind;
    struct lws *wsi;
    struct http_server *srv;
    struct dlist link;  /* srv->held (SSE, long-poll) or srv->sockets (WS) */
    struct dlist flush; /* WebSocket: on srv->ws_flushq while it has frames to write */
    struct sub sub;
    struct sendq q;
    struct auth_identity id;

    /* For the request's metrics and access line, written when it ends (conn_release). */
    uint64_t start_ns; /* metrics_mono_ns() when it arrived */
    uint16_t status;   /* the status sent; 0: none yet */
    uint8_t method;    /* enum http_method */
    uint8_t endpoint;  /* enum metrics_endpoint */
    char *path;        /* MET_EP_OTHER with log.access on: what was asked for */

    char *cors; /* "access-control-allow-origin: ..." lines when the Origin is allowed */

    /* A plain HTTP answer, built whole and written by on_writable. */
    unsigned char *resp; /* LWS_PRE bytes of headroom, then headers and body */
    size_t resp_len;

    /* POST body being received. */
    enum route route;
    char *body;
    size_t body_len;

    /* Streams. */
    struct stream_topics *topics;
    uint64_t deadline_ms;    /* long-poll: answer empty at this time */
    uint64_t drain_at;       /* shutting down: when to tell this client to reconnect */
    struct msg *scratch;     /* SSE frame composed for a multi-topic stream, being written */
    size_t pending;          /* SSE: topics not yet live (writing waits); poll: fetches running */
    struct ws_pending *acks; /* WebSocket: subscribes waiting for their topic to go live */
    struct poll_state *poll; /* poll/long-poll: fetched results */
    struct pub_req *pubs;    /* publishes waiting for the backplane; detached on close */
    struct ip_entry *ip;     /* counted against its address's stream limit while open */
    struct presence_req *presence_req; /* GET /v1/presence waiting for the backplane */
    void *presence_q;                  /* its users (api_presence() owns the layout) */
    uint64_t bucket, bucket_ms;        /* WebSocket publish token bucket (thousandths) */
    uint32_t floods;                   /* publishes refused in a row */
    uint8_t api_key;                   /* POST /v1/publish: 1 + index of the key used, 0 none */

    /* WebSocket receive. */
    unsigned char *rx;
    size_t rx_len;
    uint16_t close_code;
    char close_reason[64];

    unsigned authed : 1;
    unsigned closing : 1;       /* close at the next writable callback */
    unsigned drain : 1;         /* shutting down: write what is queued, then close */
    unsigned close_sent : 1;    /* WebSocket: our close frame is out, waiting for the peer's */
    unsigned refresh_asked : 1; /* WebSocket: token expired, {"type":"refresh"} sent; the
                                 * connection closes at deadline_ms without a new token */
    unsigned keep_alive : 1;    /* after resp: lws_http_transaction_completed(), else close */
    unsigned body_too_big : 1;
    unsigned truncated : 1;    /* a replay did not fit the send queue */
    unsigned present : 1;      /* counted in presence as a connection of id.sub */
    unsigned h2 : 1;           /* an HTTP/2 stream (TLS with ALPN h2): headers go through lws's
                                * encoder, one write per writable callback, no rx flow control */
    unsigned head_sent : 1;    /* HTTP/2: resp's headers are out, its body is next */
    unsigned hb_event : 1;     /* SSE ?hello=1: heartbeats as "event: hb" (EventSource sees them) */
    unsigned stats : 1;        /* SSE: GET /v1/stats/stream, no topics, a snapshot every interval */
    unsigned flush_queued : 1; /* WebSocket: on srv->ws_flushq */
};

struct http_server {
    struct lws_context *ctx;
    uv_loop_t *loop;
    const struct conf *cf;
    struct hub *hub;
    struct backplane *bp;
    struct presence *presence; /* NULL: off */
    uv_timer_t tick;           /* heartbeats, dead-peer sweep, long-poll timeouts, drain */
    struct dlist held;         /* SSE and long-poll connections */
    struct dlist sockets;      /* WebSocket connections */
    uv_check_t ws_flush;       /* after each poll phase: write what deliveries queued (http_ws.c) */
    struct dlist ws_flushq;
    int ws_flush_live; /* ws_flush initialised and not closed */
    size_t n_streams;  /* held + sockets */
    size_t n_held_polls;
    uint64_t next_heartbeat_ms, next_sweep_ms;
    struct msg *heartbeat;              /* ": hb\n\n", shared by every SSE stream */
    struct msg *heartbeat_ev;           /* "event: hb", for streams opened with ?hello=1 */
    struct static_files *files;         /* the embedded client and static_dir (http_static.c) */
    char node_id[CONF_NODE_ID_MAX + 1]; /* node_id, or "<hostname>-<port>" */
    size_t n_stats;                     /* open /v1/stats/stream streams (among the SSE ones) */
    uint64_t next_stats_ms;
    struct ip_entry **ips; /* per-address limits, allocated when configured */
    int draining;          /* since SIGTERM: /readyz says 503 */
    int refusing;          /* grace over: new clients get 503 */
    int drain_code;        /* WebSocket close code: 1012 (restart, SIGTERM) or 1001 (SIGINT) */
    uint64_t refuse_at_ms, drain_spread_ms;
    uint64_t drain_deadline_ms;
    http_server_stopped_fn *on_stopped;
    void *on_stopped_ud;
    int listen_fd;         /* listen.reuse_port: our own listener (http_listen.c), else -1 */
    int listen_port;       /* the port it is bound to */
    uv_poll_t listen_poll; /* watches listen_fd */
    lws_retry_bo_t retry;
    struct lws_protocols protocols[2];
};

/* http_server.c */
/* Builds a complete answer and asks for a writable callback. @ctype may be NULL (JSON).
 * @extra is raw "name: value\r\n" lines or NULL. Returns 0 (the connection lives on). */
int http_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                 const char *extra);
/* {"error":"<reason>"} with @status. */
int http_error(struct conn *c, int status, const char *reason);
/* Fills c->id from "Authorization: Bearer" or ?token=. Returns 0, or -1 after answering 401. */
int http_authenticate(struct conn *c);
/* 1 if the caller may read @topic: its own inbox, or what its grants (or the configured
 * defaults) allow. */
int http_may_read(const struct conn *c, const char *topic, size_t len);
/* 1 if the caller may publish to @topic: any inbox (a send), or what its grants allow. */
int http_may_publish(const struct conn *c, const char *topic, size_t len);
/* Verifies a JWT with the configured keys into @id (released first). 0, or -1 and @why. */
int http_verify_token(const struct conf *cf, const char *tok, size_t len, struct auth_identity *id,
                      const char **why);
/* Parses ?topics= (default: the caller's inbox) into c->topics, checking names and access.
 * Returns 0, or -1 after answering 400/403. */
int http_parse_topics(struct conn *c);
/* Applies the cursor text @s (may be NULL) to c->topics: positions from it where present, else
 * "now" (or the oldest retained when @earliest). Returns 0 or -1 after answering 400. */
int http_apply_cursor(struct conn *c, const char *s, size_t len, int earliest, struct cursor *cur);
static inline int pos_is_set(const struct cursor_pos *p)
{
    return p->epoch[0] != '\0';
}
/* The stream's position of @topic, or NULL. */
struct cursor_pos *stream_find(struct stream_topics *st, const char *topic, size_t len);
void http_hold(struct conn *c, enum conn_kind kind);
/* Counts an authenticated stream in presence (undone by conn_release). */
void http_count_present(struct conn *c);
/* Counts a new stream against its address; 0, or -1 after answering 429. */
int http_admit_stream(struct conn *c);
/* Writes c->resp; returns what the lws callback must return (c may be freed after). */
int http_write_response(struct conn *c);
/* Allow/forbid reading while a request is held (the lws 4.1.6 busy-loop workaround). */
void http_request_writable(struct conn *c);
/* lws_rx_flow_control() for a held HTTP/1.1 request; nothing on an HTTP/2 stream, where it
 * would stop reading the connection that every other stream of the browser shares. */
void http_rx_flow(struct conn *c, int on);
/* HTTP/2: writes the header block given as HTTP/1.1 text @h (status line, "name: value" lines,
 * blank line; "connection:" lines are dropped, "content-length:" becomes @body_len), ending
 * the stream when @end. Returns 0 or -1. */
int http_h2_write_head(struct conn *c, const char *h, size_t len, size_t body_len, int end);
/* HTTP/2: ends a stream that has no length (SSE) with an empty final DATA frame. */
void http_h2_end(struct conn *c);
/* The request is over (for a stream: the stream): counts it by endpoint and status and writes
 * its access line; then frees what the connection holds and zeroes it. Idempotent. */
void conn_release(struct conn *c);
/* The transport label of @c's bytes and access line, from its endpoint. */
enum metrics_transport http_transport(const struct conn *c);
/* One rate-limited notice per refused credential: which endpoint, why (never the credential). */
void http_log_refused(const struct conn *c, const char *why);
/* The request's token, from "Authorization: Bearer" or ?token= (browsers cannot set headers
 * on EventSource or WebSocket), copied into @buf. Returns its length, 0 when there is none,
 * or -1 when Authorization holds something other than a Bearer token. */
int http_find_token(struct lws *wsi, char *buf, size_t cap);
/* The topic of a send/publish body: "topic", or "to" for user:<to> (http_api.c). */
int api_target_topic(json_t *req, char *buf, size_t cap, const char **why);
/* Copies a query argument into @buf; returns its length or -1 when absent. */
int http_arg(struct conn *c, const char *name, char *buf, size_t cap);
uint64_t http_now_ms(void);

/* http_listen.c: listen.reuse_port. 0, or -1 with @err set. */
int http_listen_open(struct http_server *srv, char *err, size_t errlen);
/* Without reuse_port: fails (with @err) when lws's bind would; binds and closes a socket. */
int http_listen_probe(const struct conf *cf, char *err, size_t errlen);
void http_listen_close(struct http_server *srv);

/* http_api.c */
int api_on_get(struct conn *c, const char *path);
/* Ends a GET /v1/presence still waiting (the connection closes). */
void api_presence_release(struct conn *c);
int api_on_post(struct conn *c, const char *path);
int api_on_body(struct conn *c, const void *in, size_t len);
int api_on_body_done(struct conn *c);
/* Renders every metric of the server into @b. */
void api_metrics(struct http_server *srv, struct metrics_buf *b);

/* http_static.c */
#define STATIC_NOT_MINE (-2)
struct static_files;
/* The embedded client and the files of static_dir, read now (startup). NULL and @err. */
struct static_files *static_load(const struct conf *cf, char *err, size_t errlen);
void static_free(struct static_files *sf);
/* Answers the paths it serves (and GET /v1/stats/stream); STATIC_NOT_MINE for others. */
int static_on_request(struct conn *c, const char *path, int method);

/* http_sse.c */
/* GET /v1/stats/stream: who may read it is stats.access. */
int sse_on_stats(struct conn *c);
/* The snapshot every stats stream gets now (a new reference), or NULL without streams. */
struct msg *sse_stats_frame(struct http_server *srv);
void sse_on_stats_tick(struct conn *c, struct msg *frame);
int sse_on_request(struct conn *c);
int sse_on_writable(struct conn *c);
void sse_on_heartbeat(struct conn *c);
/* The token expired: "event: expired", then the end of the stream. */
void sse_on_expired(struct conn *c);
extern const struct sub_ops sse_sub_ops;

/* http_poll.c */
int poll_on_request(struct conn *c, int hold);
int poll_on_writable(struct conn *c);
void poll_on_tick(struct conn *c, uint64_t now);
extern const struct sub_ops poll_sub_ops;

/* http_ws.c */
int ws_on_filter(struct conn *c, struct lws *wsi);
int ws_on_established(struct conn *c, struct lws *wsi);
int ws_on_receive(struct conn *c, const void *in, size_t len);
int ws_on_writable(struct conn *c);
/* The fan-out writer's loop handle: init with the server, close with it (before the context). */
void ws_server_init(struct http_server *srv);
void ws_server_close(struct http_server *srv);
void ws_close_soon(struct conn *c, uint16_t code, const char *reason);
/* Token expiry on a WebSocket: ask for a fresh token, close after auth.refresh_grace_s. */
void ws_on_tick(struct conn *c, uint64_t now);
extern const struct sub_ops ws_sub_ops;

/* Streams share this: copy the stream's topic positions into cursor text. */
int stream_cursor(const struct stream_topics *st, char *out, size_t cap);
/* Updates the stream's position for @m's topic. */
void stream_advance(struct stream_topics *st, const struct msg *m);

#endif
