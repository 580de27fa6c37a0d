/* fuzz_gateway.h: a whole gateway (hub, local backplane, the real HTTP/SSE/WebSocket code on
 * fake_lws) for the harnesses that fuzz what clients send, with a frozen clock and a fixed
 * hub epoch so inputs replay exactly. Every byte written to a client is checked:
 *   HTTP answers   status line, header lines without CR/LF inside, content-length equal to the
 *                  body, a JSON body that parses (and its cursor, messages, ...);
 *   SSE            each write is whole events: id:/data:/event:/retry:/comment lines only, no
 *                  CR, data: JSON that parses, id: a cursor that parses;
 *   WebSocket      text frames are JSON objects with a known "type"; close frames <= 125 bytes;
 *   every message  msg_new() is wrapped: its WebSocket frame, envelope and SSE frame are checked
 *                  against what was published (a hostile "data" never breaks the framing). */
#ifndef RTGATE_FUZZ_GATEWAY_H
#define RTGATE_FUZZ_GATEWAY_H

#include "fake_lws.h"
#include "fuzz_common.h"

#include "rtgate/conf.h"

#include <stdint.h>

struct fuzz_gw {
    struct hub *hub;
    struct backplane *bp;
    struct http_server *srv;
    struct lws_context *ctx;
};

extern struct conf fuzz_conf;
extern uint64_t fuzz_now_ms; /* what util_now_ms() returns */
extern char fuzz_token[];    /* a valid JWT for "alice" */

/* Once per process: the config (history 16, send queue 8, CORS, ...) and the token. */
void fuzz_gw_init(void);
/* Per input: a fresh gateway, with a little history in room:1 and user:alice. */
void fuzz_gw_start(struct fuzz_gw *gw);
void fuzz_gw_stop(struct fuzz_gw *gw);
/* A backend publish, as POST /v1/publish would make it. */
void fuzz_gw_publish(struct fuzz_gw *gw, const char *topic, const char *data);

#endif
