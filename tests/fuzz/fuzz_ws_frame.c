/* fuzz_ws_frame.c: WebSocket text frames from a signed-in client, through the real
 * src/http_ws.c (handle_frame and everything behind it: subscribe with cursors and replay,
 * unsubscribe, send/publish, ping) on fake_lws.
 *
 * The input is a session: one frame per line. A line starting with \x01 is sent as a binary
 * frame, \x02 as two fragments, \x03 as one frame in two pieces (lws "remaining payload"). After
 * each frame the connection writes what it queued, and every byte is checked (fuzz_gateway.h);
 * once the server closes, the rest is ignored. The hub has history in room:1 and user:alice,
 * and its epoch is FUZZ_EPOCH, so cursors in the corpus resume for real. */
#include "fuzz_gateway.h"

#include <string.h>

#define MAX_FRAMES 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_gw_init();
    return 0;
}

static int receive(struct lws *w, const char *p, size_t n)
{
    int mode = n ? (unsigned char)p[0] : 0;

    w->binary = mode == 1;
    w->first = w->final = 1;
    w->remaining = 0;
    if (mode >= 1 && mode <= 3) {
        p++;
        n--;
    }
    if ((mode == 2 || mode == 3) && n >= 2) {
        size_t half = n / 2;

        w->final = mode == 3;
        w->remaining = mode == 3 ? n - half : 0;
        if (fake_call(w, LWS_CALLBACK_RECEIVE, (void *)p, half) != 0)
            return -1;
        w->first = mode == 3;
        w->final = 1;
        w->remaining = 0;
        p += half;
        n -= half;
    }
    return fake_call(w, LWS_CALLBACK_RECEIVE, (void *)p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    struct fuzz_gw gw;
    struct lws *w;
    char auth[AUTH_TOKEN_MAX + 16];
    int frames = 0;

    fuzz_gw_start(&gw);
    w = fake_wsi_new(gw.ctx);
    fake_header(w, WSI_TOKEN_GET_URI, "/v1/ws", 6);
    snprintf(auth, sizeof(auth), "Bearer %s", fuzz_token);
    fake_header(w, WSI_TOKEN_HTTP_AUTHORIZATION, auth, strlen(auth));
    FUZZ_ASSERT(fake_call(w, LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION, NULL, 0) == 0);
    w->stream = FAKE_WS;
    FUZZ_ASSERT(fake_call(w, LWS_CALLBACK_ESTABLISHED, NULL, 0) == 0);

    while (p <= end && frames++ < MAX_FRAMES) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);

        if (receive(w, p, n) != 0) {
            fake_close(w, LWS_CALLBACK_CLOSED);
            break;
        }
        if (fake_flush(w, LWS_CALLBACK_SERVER_WRITEABLE, LWS_CALLBACK_CLOSED, 4096) != 0)
            break;
        if (!nl)
            break;
        p = nl + 1;
    }
    /* news on the topics it may have subscribed, then the client goes away */
    if (!w->closed) {
        fuzz_now_ms += 1000;
        fuzz_gw_publish(&gw, "room:1", "{\"late\":true}");
        fuzz_gw_publish(&gw, "user:alice", "null");
        fake_flush(w, LWS_CALLBACK_SERVER_WRITEABLE, LWS_CALLBACK_CLOSED, 4096);
    }
    fake_close(w, LWS_CALLBACK_CLOSED);
    fake_wsi_free(w);
    fuzz_gw_stop(&gw);
    return 0;
}
