/* gateway.h: owns the libuv loop and starts/stops the modules in order: hub, backplane, HTTP
 * server, signals. SIGINT/SIGTERM drain and end the loop. */
#ifndef RTGATE_GATEWAY_H
#define RTGATE_GATEWAY_H

#include <stddef.h>
#include <uv.h>

struct conf;
struct hub;
struct backplane;
struct http_server;

struct gateway {
    uv_loop_t loop;
    const struct conf *cf;
    struct hub *hub;
    struct backplane *bp;
    struct http_server *http;
    uv_signal_t sigint, sigterm;
    int stopping;
};

/* Starts everything and listens. Returns 0, or -1 with a reason in @err (nothing left open). */
int gateway_start(struct gateway *gw, const struct conf *cf, char *err, size_t errlen);

/* Runs the loop until a signal has drained the gateway. */
void gateway_run(struct gateway *gw);

/* Frees what gateway_start() made; call after gateway_run() returns. */
void gateway_release(struct gateway *gw);

#endif
