/* fuzz_query.c: whole HTTP requests as lws hands them over (path, %-decoded query arguments,
 * headers), through the real router and transports: ?topics=, ?cursor=, ?since=, ?timeout=,
 * ?token=, Last-Event-ID, If-None-Match, Origin (CORS), methods, unknown paths; SSE streams and
 * long-polls are held, then woken by a publish and the tick, then closed.
 *
 * The input is request text: "GET /v1/poll?topics=room:1 HTTP/1.1\nAuthorization: Bearer
 * ...\n\n". With "Upgrade: websocket" it is a WebSocket handshake instead (token, Origin,
 * websocket.allowed_origins), and the body lines are its first frames. Every answer and event
 * is checked (fuzz_gateway.h). lws's own HTTP parsing is not fuzzed here (it is lws's);
 * fake_request() reads the text as lws would split it. */
#include "fuzz_gateway.h"

#include "rtgate/http_server.h"

#include <string.h>
#include <strings.h>

static struct fuzz_gw gw_now; /* the gateway of the input being run */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_gw_init();
    return 0;
}

static int is_upgrade(const struct lws *w)
{
    for (size_t i = 0; i < w->n_hdrs; i++)
        if (w->hdrs[i].token < 0 && strcmp(w->hdrs[i].name, "upgrade:") == 0)
            return strcasecmp(w->hdrs[i].val, "websocket") == 0;
    return 0;
}

/* lws hands an upgrade to the filter, then (if accepted) the established connection */
static void websocket(struct lws *w, const char *p, size_t len)
{
    const char *end = p + len;

    if (fake_call(w, LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION, NULL, 0) != 0) {
        fake_close(w, LWS_CALLBACK_CLOSED_HTTP);
        return;
    }
    w->stream = FAKE_WS;
    FUZZ_ASSERT(fake_call(w, LWS_CALLBACK_ESTABLISHED, NULL, 0) == 0);
    for (int i = 0; i < 16 && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);

        if (fake_call(w, LWS_CALLBACK_RECEIVE, (void *)p, n) != 0 ||
            fake_flush(w, LWS_CALLBACK_SERVER_WRITEABLE, LWS_CALLBACK_CLOSED, 1024) != 0)
            break;
        p += n + 1;
    }
    if (!w->closed) {
        fuzz_gw_publish(&gw_now, "room:1", "{\"late\":1}");
        fake_flush(w, LWS_CALLBACK_SERVER_WRITEABLE, LWS_CALLBACK_CLOSED, 1024);
    }
    fake_close(w, LWS_CALLBACK_CLOSED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_gw *gw = &gw_now;
    struct lws *w;
    const char *body;
    size_t body_len;
    char path[256];
    int drain = size && data[size - 1] == '!';

    fuzz_gw_start(gw);
    w = fake_wsi_new(gw->ctx);
    fake_request(w, (const char *)data, size, path, sizeof(path), &body, &body_len);
    if (is_upgrade(w)) {
        websocket(w, body, body_len);
        goto close;
    }
    if (fake_call(w, LWS_CALLBACK_HTTP, path, strlen(path)) != 0)
        goto close;
    if (lws_hdr_total_length(w, WSI_TOKEN_POST_URI) && body_len) {
        if (fake_call(w, LWS_CALLBACK_HTTP_BODY, (void *)body, body_len) != 0 ||
            fake_call(w, LWS_CALLBACK_HTTP_BODY_COMPLETION, NULL, 0) != 0)
            goto close;
    }
    if (fake_flush(w, LWS_CALLBACK_HTTP_WRITEABLE, LWS_CALLBACK_CLOSED_HTTP, 64) != 0)
        goto close;

    /* still open: a held stream. News, time passing, maybe a drain (input ending in '!') */
    fuzz_gw_publish(gw, "room:1", "{\"news\":1}");
    fuzz_gw_publish(gw, "user:alice", "{\"dm\":\"hello\\nworld\"}");
    fake_flush(w, LWS_CALLBACK_HTTP_WRITEABLE, LWS_CALLBACK_CLOSED_HTTP, 64);
    if (drain && !w->closed)
        http_server_drain(gw->srv, 0, NULL, NULL);
    for (int i = 0; i < 3 && !w->closed; i++) {
        fuzz_now_ms += 20000;
        fake_tick();
        fake_flush(w, LWS_CALLBACK_HTTP_WRITEABLE, LWS_CALLBACK_CLOSED_HTTP, 64);
    }
close:
    fake_close(w, LWS_CALLBACK_CLOSED_HTTP);
    fake_wsi_free(w);
    fuzz_gw_stop(gw);
    return 0;
}
