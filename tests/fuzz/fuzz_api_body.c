/* fuzz_api_body.c: the JSON body of POST /v1/messages (as a signed-in user) and of
 * POST /v1/publish (with an API key), through the real src/http_api.c (api_on_post,
 * api_on_body, api_on_body_done, api_target_topic) and the hub on fake_lws.
 *
 * Each input is posted to both endpoints: once whole, once in two chunks. The answer must be a
 * well-formed HTTP response with a JSON body (fuzz_gateway.h), a 200 must name a valid id and
 * topic, and the message it published is checked in every wire form (msg_new is wrapped). */
#include "fuzz_gateway.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_gw_init();
    return 0;
}

static void post(struct fuzz_gw *gw, const char *path, int with_key, const uint8_t *data,
                 size_t size, int chunked)
{
    struct lws *w = fake_wsi_new(gw->ctx);
    char auth[AUTH_TOKEN_MAX + 16], len[32];

    fake_header(w, WSI_TOKEN_POST_URI, path, strlen(path));
    if (with_key) {
        fake_custom_header(w, "x-api-key:", FUZZ_API_KEY, strlen(FUZZ_API_KEY));
    } else {
        snprintf(auth, sizeof(auth), "Bearer %s", fuzz_token);
        fake_header(w, WSI_TOKEN_HTTP_AUTHORIZATION, auth, strlen(auth));
    }
    snprintf(len, sizeof(len), "%zu", size);
    fake_header(w, WSI_TOKEN_HTTP_CONTENT_LENGTH, len, strlen(len));
    fake_header(w, WSI_TOKEN_HTTP_CONTENT_TYPE, "application/json", 16);

    if (fake_call(w, LWS_CALLBACK_HTTP, (void *)path, strlen(path)) != 0)
        goto close;
    /* lws reads the body it announced, whatever the answer so far */
    if (size && chunked && size > 1) {
        if (fake_call(w, LWS_CALLBACK_HTTP_BODY, (void *)data, size / 2) != 0 ||
            fake_call(w, LWS_CALLBACK_HTTP_BODY, (void *)(data + size / 2), size - size / 2) != 0)
            goto close;
    } else if (size && fake_call(w, LWS_CALLBACK_HTTP_BODY, (void *)data, size) != 0) {
        goto close;
    }
    if (size && fake_call(w, LWS_CALLBACK_HTTP_BODY_COMPLETION, NULL, 0) != 0)
        goto close;
    fake_flush(w, LWS_CALLBACK_HTTP_WRITEABLE, LWS_CALLBACK_CLOSED_HTTP, 16);
    FUZZ_ASSERT(w->status != 0); /* every request is answered */
close:
    fake_close(w, LWS_CALLBACK_CLOSED_HTTP);
    fake_wsi_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_gw gw;

    fuzz_gw_start(&gw);
    post(&gw, "/v1/messages", 0, data, size, 0);
    post(&gw, "/v1/publish", 1, data, size, 1);
    fuzz_gw_stop(&gw);
    return 0;
}
