/* fake_lws.c: see fake_lws.h. Calls that only the real server's start-up and shutdown make
 * (vhosts, logging, the context itself) are accepted and do nothing; the rest behave as lws
 * 4.1.6 does for a single, well-behaved connection. */
#include "fake_lws.h"

#include "fuzz_common.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static struct lws_context *last_ctx;
static uv_timer_t *tick_timer;
static uv_timer_cb tick_cb;
static int peer_fd = -1; /* a socket whose peer stays open: held connections look alive */

struct lws_context *fake_context(void)
{
    return last_ctx;
}

/* ---- the context and the loop ---- */

struct lws_context *lws_create_context(const struct lws_context_creation_info *info)
{
    struct lws_context *ctx = calloc(1, sizeof(*ctx));

    FUZZ_ASSERT(ctx != NULL);
    ctx->protocols = info->protocols;
    ctx->user = info->user;
    last_ctx = ctx;
    return ctx;
}

void lws_context_destroy(struct lws_context *ctx)
{
    if (ctx == last_ctx)
        last_ctx = NULL;
    free(ctx);
}

void *lws_context_user(struct lws_context *ctx)
{
    return ctx->user;
}

struct lws_context *lws_get_context(const struct lws *wsi)
{
    return wsi->ctx;
}

void lws_set_log_level(int level, void (*log_emit_function)(int level, const char *line))
{
}

struct lws_vhost *lws_get_vhost_by_name(struct lws_context *context, const char *name)
{
    return NULL;
}

/* The harnesses configure no TLS, so a reload never reaches this. */
int lws_tls_cert_updated(struct lws_context *context, const char *certpath, const char *keypath,
                         const char *mem_cert, size_t len_mem_cert, const char *mem_privkey,
                         size_t len_mem_privkey)
{
    return 0;
}

int lws_get_vhost_listen_port(struct lws_vhost *vhost)
{
    return -1;
}

int lws_callback_http_dummy(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len)
{
    return 0;
}

int uv_timer_init(uv_loop_t *loop, uv_timer_t *handle)
{
    memset(handle, 0, sizeof(*handle));
    return 0;
}

int uv_timer_start(uv_timer_t *handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
    tick_timer = handle;
    tick_cb = cb;
    return 0;
}

int uv_timer_stop(uv_timer_t *handle)
{
    if (handle == tick_timer)
        tick_cb = NULL;
    return 0;
}

/* http_ws.c's flush after the poll phase: run by fake_check(), as the loop would after the
 * callbacks of one poll phase. */
static uv_check_t *check_handle;
static uv_check_cb check_cb;

int uv_check_init(uv_loop_t *loop, uv_check_t *handle)
{
    memset(handle, 0, sizeof(*handle));
    return 0;
}

int uv_check_start(uv_check_t *handle, uv_check_cb cb)
{
    check_handle = handle;
    check_cb = cb;
    return 0;
}

int uv_check_stop(uv_check_t *handle)
{
    if (handle == check_handle)
        check_cb = NULL;
    return 0;
}

void fake_check(void)
{
    if (check_cb && check_handle)
        check_cb(check_handle);
}

void uv_close(uv_handle_t *handle, uv_close_cb close_cb)
{
    if ((void *)handle == (void *)tick_timer)
        tick_timer = NULL, tick_cb = NULL;
    if ((void *)handle == (void *)check_handle)
        check_handle = NULL, check_cb = NULL;
    if (close_cb)
        close_cb(handle);
}

/* listen.reuse_port's own listener (http_listen.c): the harness config never sets it */
int uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd)
{
    memset(handle, 0, sizeof(*handle));
    return 0;
}

int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb)
{
    return 0;
}

int uv_poll_stop(uv_poll_t *handle)
{
    return 0;
}

int uv_is_closing(const uv_handle_t *handle)
{
    return 0;
}

int uv_run(uv_loop_t *loop, uv_run_mode mode)
{
    return 0;
}

struct lws *lws_adopt_socket_vhost(struct lws_vhost *vh, lws_sockfd_type accept_fd)
{
    return NULL;
}

void fake_tick(void)
{
    if (tick_cb && tick_timer)
        tick_cb(tick_timer);
    fake_check();
}

/* ---- one connection ---- */

struct lws *fake_wsi_new(struct lws_context *ctx)
{
    struct lws *w = calloc(1, sizeof(*w));

    FUZZ_ASSERT(w != NULL && ctx != NULL);
    w->ctx = ctx;
    w->user = calloc(1, ctx->protocols[0].per_session_data_size);
    FUZZ_ASSERT(w->user != NULL);
    w->first = w->final = 1;
    if (peer_fd < 0) {
        int sv[2];

        FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        peer_fd = sv[0]; /* sv[1] stays open for the life of the process */
    }
    return w;
}

void fake_wsi_free(struct lws *w)
{
    for (size_t i = 0; i < w->n_hdrs; i++)
        free(w->hdrs[i].val);
    for (size_t i = 0; i < w->n_args; i++)
        free(w->args[i]);
    free(w->user);
    free(w);
}

static char *copy(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    FUZZ_ASSERT(p != NULL);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void fake_header(struct lws *w, enum lws_token_indexes t, const char *v, size_t len)
{
    if (w->n_hdrs == FAKE_MAX_HDRS)
        return;
    w->hdrs[w->n_hdrs].token = (int)t;
    w->hdrs[w->n_hdrs].val = copy(v, len);
    w->hdrs[w->n_hdrs++].len = len;
}

void fake_custom_header(struct lws *w, const char *name, const char *v, size_t len)
{
    struct fake_hdr *h;

    if (w->n_hdrs == FAKE_MAX_HDRS || strlen(name) >= sizeof(h->name))
        return;
    h = &w->hdrs[w->n_hdrs++];
    h->token = -1;
    strcpy(h->name, name);
    h->val = copy(v, len);
    h->len = len;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void fake_query(struct lws *w, const char *q, size_t len)
{
    const char *p = q, *end = q + len;

    while (p < end && w->n_args < FAKE_MAX_ARGS) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t n = (size_t)((amp ? amp : end) - p), o = 0;
        char *a = malloc(n + 1);

        FUZZ_ASSERT(a != NULL);
        for (size_t i = 0; i < n; i++) {
            /* lws decodes %XX in arguments; %00 stays as it is (no NUL inside a fragment) */
            if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0 &&
                (hexval(p[i + 1]) | hexval(p[i + 2])) != 0) {
                a[o++] = (char)(hexval(p[i + 1]) << 4 | hexval(p[i + 2]));
                i += 2;
            } else if (p[i] != '\0') {
                a[o++] = p[i];
            }
        }
        a[o] = '\0';
        w->args[w->n_args] = a;
        w->arg_len[w->n_args++] = o;
        p += n + 1;
    }
}

static const struct {
    const char *name;
    enum lws_token_indexes token;
} known[] = {
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
    {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
    {"transfer-encoding", WSI_TOKEN_HTTP_TRANSFER_ENCODING},
    {"if-none-match", WSI_TOKEN_HTTP_IF_NONE_MATCH},
    {"origin", WSI_TOKEN_ORIGIN},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"host", WSI_TOKEN_HOST},
};

void fake_request(struct lws *w, const char *text, size_t len, char *path, size_t cap,
                  const char **body, size_t *body_len)
{
    const char *p = text, *end = text + len, *eol, *sp, *target, *tend, *qm;
    size_t n;

    *body = end;
    *body_len = 0;
    path[0] = '\0';
    eol = memchr(p, '\n', len);
    if (!eol)
        eol = end;
    /* request line: METHOD SP target [SP version] */
    sp = memchr(p, ' ', (size_t)(eol - p));
    target = sp ? sp + 1 : eol;
    tend = memchr(target, ' ', (size_t)(eol - target));
    if (!tend)
        tend = eol > target && eol[-1] == '\r' ? eol - 1 : eol;
    qm = memchr(target, '?', (size_t)(tend - target));
    n = (size_t)((qm ? qm : tend) - target);
    if (n >= cap)
        n = cap - 1;
    memcpy(path, target, n);
    path[n] = '\0';
    if (sp) {
        enum lws_token_indexes t = WSI_TOKEN_GET_URI;

        if ((size_t)(sp - p) == 4 && memcmp(p, "POST", 4) == 0)
            t = WSI_TOKEN_POST_URI;
        else if ((size_t)(sp - p) == 7 && memcmp(p, "OPTIONS", 7) == 0)
            t = WSI_TOKEN_OPTIONS_URI;
        else if (!((size_t)(sp - p) == 3 && memcmp(p, "GET", 3) == 0))
            t = WSI_TOKEN_PUT_URI; /* some other method */
        fake_header(w, t, path, strlen(path));
    }
    if (qm)
        fake_query(w, qm + 1, (size_t)(tend - qm - 1));

    /* headers until an empty line; lws ends a value at CR or LF and trims the leading blanks */
    for (p = eol + 1; p < end; p = eol + 1) {
        const char *colon, *v, *vend;
        char name[48];
        size_t nl;

        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        vend = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (vend == p) {
            *body = eol + 1 <= end ? eol + 1 : end;
            *body_len = (size_t)(end - *body);
            return;
        }
        colon = memchr(p, ':', (size_t)(vend - p));
        if (!colon || (size_t)(colon - p) + 2 > sizeof(name))
            continue;
        nl = (size_t)(colon - p);
        for (size_t i = 0; i < nl; i++)
            name[i] = (char)tolower((unsigned char)p[i]);
        name[nl] = '\0';
        for (v = colon + 1; v < vend && (*v == ' ' || *v == '\t'); v++)
            ;
        if (memchr(v, '\r', (size_t)(vend - v)) || memchr(v, '\0', (size_t)(vend - v)))
            continue; /* lws would have ended or refused the header there */
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(name, known[i].name) == 0) {
                fake_header(w, known[i].token, v, (size_t)(vend - v));
                goto next;
            }
        name[nl] = ':';
        name[nl + 1] = '\0';
        fake_custom_header(w, name, v, (size_t)(vend - v));
    next:;
    }
}

static const struct fake_hdr *find(const struct lws *w, int token, const char *name, int nlen)
{
    for (size_t i = 0; i < w->n_hdrs; i++) {
        const struct fake_hdr *h = &w->hdrs[i];

        if (h->token == token &&
            (token >= 0 || ((int)strlen(h->name) == nlen && memcmp(h->name, name, nlen) == 0)))
            return h;
    }
    return NULL;
}

int lws_hdr_total_length(struct lws *wsi, enum lws_token_indexes h)
{
    const struct fake_hdr *f = find(wsi, (int)h, NULL, 0);

    return f ? (int)f->len : 0;
}

int lws_hdr_copy(struct lws *wsi, char *dst, int len, enum lws_token_indexes h)
{
    const struct fake_hdr *f = find(wsi, (int)h, NULL, 0);

    *dst = '\0';
    if (!f || f->len == 0)
        return 0;
    if ((int)f->len >= len)
        return -1;
    memcpy(dst, f->val, f->len);
    dst[f->len] = '\0';
    return (int)f->len;
}

int lws_hdr_custom_length(struct lws *wsi, const char *name, int nlen)
{
    const struct fake_hdr *f = find(wsi, -1, name, nlen);

    return f ? (int)f->len : -1;
}

int lws_hdr_custom_copy(struct lws *wsi, char *dst, int len, const char *name, int nlen)
{
    const struct fake_hdr *f = find(wsi, -1, name, nlen);

    if (len > 0)
        *dst = '\0';
    if (!f || (int)f->len + 1 > len)
        return -1;
    memcpy(dst, f->val, f->len);
    dst[f->len] = '\0';
    return (int)f->len;
}

/* lws 4.1.6: copies each argument into @buf in turn, gives up at the first that does not fit */
const char *lws_get_urlarg_by_name(struct lws *wsi, const char *name, char *buf, int len)
{
    size_t sl = strlen(name);

    for (size_t i = 0; i < wsi->n_args; i++) {
        if ((int)wsi->arg_len[i] >= len)
            return NULL;
        memcpy(buf, wsi->args[i], wsi->arg_len[i] + 1);
        if (strncmp(buf, name, sl) == 0)
            return buf + sl;
    }
    return NULL;
}

int lws_callback_on_writable(struct lws *wsi)
{
    wsi->writable = 1;
    return 1;
}

int lws_rx_flow_control(struct lws *wsi, int enable)
{
    wsi->rx_flow = enable;
    return 0;
}

void lws_set_timeout(struct lws *wsi, enum pending_timeout reason, int secs)
{
}

int lws_http_transaction_completed(struct lws *wsi)
{
    return 1; /* the harness runs one request per connection: close it */
}

int lws_partial_buffered(struct lws *wsi)
{
    return 0;
}

int lws_get_socket_fd(struct lws *wsi)
{
    return peer_fd;
}

int lws_frame_is_binary(struct lws *wsi)
{
    return wsi->binary;
}

int lws_is_first_fragment(struct lws *wsi)
{
    return wsi->first;
}

int lws_is_final_fragment(struct lws *wsi)
{
    return wsi->final;
}

size_t lws_remaining_packet_payload(struct lws *wsi)
{
    return wsi->remaining;
}

int lws_http_mark_sse(struct lws *wsi)
{
    return 0;
}

int lws_http_headers_detach(struct lws *wsi)
{
    return 0; /* the fake keeps its headers: nothing reads them after a hold */
}

/* Every fake connection is HTTP/1.1: the h2 header encoder is linked but never reached. */
struct lws *lws_get_network_wsi(struct lws *wsi)
{
    return wsi;
}

int lws_add_http_header_status(struct lws *wsi, unsigned int code, unsigned char **p,
                               unsigned char *end)
{
    abort();
}

int lws_add_http_header_by_name(struct lws *wsi, const unsigned char *name,
                                const unsigned char *value, int length, unsigned char **p,
                                unsigned char *end)
{
    abort();
}

int lws_add_http_header_content_length(struct lws *wsi, lws_filepos_t content_length,
                                       unsigned char **p, unsigned char *end)
{
    abort();
}

int lws_finalize_http_header(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    abort();
}

void lws_close_reason(struct lws *wsi, enum lws_close_status status, unsigned char *buf, size_t len)
{
}

int lws_write(struct lws *wsi, unsigned char *buf, size_t len, enum lws_write_protocol protocol)
{
    FUZZ_ASSERT(!wsi->closed);
    wsi->n_writes++;
    fake_on_write(wsi, buf, len, protocol);
    return (int)len;
}

/* ---- playing lws ---- */

int fake_call(struct lws *w, enum lws_callback_reasons reason, void *in, size_t len)
{
    FUZZ_ASSERT(!w->closed);
    return w->ctx->protocols[0].callback(w, reason, w->user, in, len);
}

void fake_close(struct lws *w, enum lws_callback_reasons closed)
{
    if (w->closed)
        return;
    w->ctx->protocols[0].callback(w, closed, w->user, NULL, 0);
    w->closed = 1;
}

int fake_flush(struct lws *w, enum lws_callback_reasons writable, enum lws_callback_reasons closed,
               int max)
{
    fake_check(); /* the poll phase that delivered ended: queued frames are written */
    for (int i = 0; i < max && w->writable && !w->closed; i++) {
        w->writable = 0;
        if (fake_call(w, writable, NULL, 0) != 0) {
            fake_close(w, closed);
            return -1;
        }
    }
    return w->closed ? -1 : 0;
}
