/* http_server.h: the libwebsockets context on the program's libuv loop, serving every
 * endpoint (polling, long-polling, SSE, WebSocket, the HTTP API, health) on one port. */
#ifndef RTGATE_HTTP_SERVER_H
#define RTGATE_HTTP_SERVER_H

#include <stddef.h>

struct conf;
struct hub;
struct backplane;
struct http_server;
struct presence;
typedef struct uv_loop_s uv_loop_t;

typedef void http_server_stopped_fn(void *ud);

/* Creates the server and starts listening. Borrows @loop, @cf, @hub and @bp. Returns NULL
 * with a reason in @err. */
struct http_server *http_server_new(uv_loop_t *loop, const struct conf *cf, struct hub *hub,
                                    struct backplane *bp, char *err, size_t errlen);

/* Counts authenticated SSE streams and WebSockets in @p (borrowed; NULL: presence off, and
 * GET /v1/presence answers 404). Call before the first request. */
void http_server_set_presence(struct http_server *srv, struct presence *p);

/* SIGHUP: reloads the TLS certificate and key from their files for new handshakes. Returns 0
 * (also without TLS), or -1 with @err set; the old pair then stays in use. */
int http_server_reload_tls(struct http_server *srv, char *err, size_t errlen);

/* Open SSE, long-poll and WebSocket connections. */
size_t http_server_streams(const struct http_server *srv);

/* The port actually bound (useful with listen.port 0). */
int http_server_port(const struct http_server *srv);

/* Starts draining: /readyz answers 503 at once; after shutdown_grace_ms new requests get 503;
 * then over shutdown_spread_ms each client is told to reconnect (WebSocket: queued messages,
 * then close 1012; SSE: a retry: hint, then the end; long-poll: answered). @fast (SIGINT): no
 * grace, no spread, close 1001. @fn runs once every connection is gone or the shutdown
 * deadline passed. */
void http_server_drain(struct http_server *srv, int fast, http_server_stopped_fn *fn, void *ud);

/* Closes the server's own handles and starts lws's destroy, so the loop can end. */
void http_server_close(struct http_server *srv);

/* Tears down (after the loop has stopped or drain completed). Follows the order measured in
 * FACTS.md: lws_context_destroy, run the loop, destroy again. */
void http_server_free(struct http_server *srv);

#endif
