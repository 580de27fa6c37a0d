/* fake_lws.h: a link-time fake of the libwebsockets (and libuv timer) calls rtgate's
 * transports make, so the real src/http_*.c run in a fuzzer with no sockets and no loop.
 *
 * http_server_new() "creates a context" here; the harness then plays lws: it fills a wsi with
 * a request's headers and query arguments and calls the protocol callback with the reasons lws
 * would use (HTTP, HTTP_BODY, ..., RECEIVE, SERVER_WRITEABLE, CLOSED). Everything written goes
 * through fake_on_write(), which checks it (frame_check.c). Header and argument semantics follow
 * lws 4.1.6 (lws_hdr_copy, lws_get_urlarg_by_name, %XX decoding of the query). */
#ifndef RTGATE_FAKE_LWS_H
#define RTGATE_FAKE_LWS_H

#include <libwebsockets.h>
#include <stddef.h>

#define FAKE_MAX_HDRS 24
#define FAKE_MAX_ARGS 64

struct lws_context {
    const struct lws_protocols *protocols;
    void *user; /* the struct http_server */
};

struct fake_hdr {
    int token;     /* enum lws_token_indexes, or -1: a custom header */
    char name[48]; /* custom headers: lower case with the colon, "last-event-id:" */
    char *val;
    size_t len;
};

enum fake_stream { FAKE_HTTP, FAKE_SSE, FAKE_WS };

struct lws {
    struct lws_context *ctx;
    void *user; /* lws's per-session memory: a struct conn */
    struct fake_hdr hdrs[FAKE_MAX_HDRS];
    size_t n_hdrs;
    char *args[FAKE_MAX_ARGS]; /* the query, split at '&' and %-decoded */
    size_t arg_len[FAKE_MAX_ARGS], n_args;
    /* the WebSocket frame being received */
    int binary, first, final;
    size_t remaining;
    /* what the code asked of lws */
    int writable, rx_flow, closed;
    enum fake_stream stream; /* how to check what is written */
    int status;              /* of the last HTTP answer written */
    size_t n_writes;
};

/* The context the last http_server_new() created. */
struct lws_context *fake_context(void);
struct lws *fake_wsi_new(struct lws_context *ctx);
void fake_wsi_free(struct lws *w);
void fake_header(struct lws *w, enum lws_token_indexes t, const char *v, size_t len);
void fake_custom_header(struct lws *w, const char *name, const char *v, size_t len);
/* "a=1&b=2" as lws splits and decodes it */
void fake_query(struct lws *w, const char *q, size_t len);
/* Loads "METHOD /path?query HTTP/1.1\r\nName: value\r\n...\r\n\r\nbody" into @w (lenient: bare
 * \n works too). Writes the path (NUL-terminated, at most @cap) and points @body at the rest. */
void fake_request(struct lws *w, const char *text, size_t len, char *path, size_t cap,
                  const char **body, size_t *body_len);

/* Calls the protocol callback with @reason for @w. */
int fake_call(struct lws *w, enum lws_callback_reasons reason, void *in, size_t len);
/* Runs @writable callbacks while the code asks for them (at most @max); a non-zero return
 * closes the connection with @closed. Returns 0 while the connection is open. */
int fake_flush(struct lws *w, enum lws_callback_reasons writable, enum lws_callback_reasons closed,
               int max);
void fake_close(struct lws *w, enum lws_callback_reasons closed);
/* Fires the server's tick timer, if it is running. */
void fake_tick(void);
/* Runs the flush that uv_check_start() armed (http_ws.c), as the loop does after a poll phase;
 * fake_flush() and fake_tick() call it first. */
void fake_check(void);

/* Checks one lws_write() (frame_check.c). */
void fake_on_write(struct lws *w, const unsigned char *buf, size_t len,
                   enum lws_write_protocol protocol);

#endif
