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
struct presence;

struct gateway {
    uv_loop_t loop;
    struct conf *cf; /* borrowed from main; a reload rewrites it in place */
    struct hub *hub;
    struct backplane *bp;
    struct http_server *http;
    struct presence *presence; /* NULL with presence.enabled false */
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t status; /* systemd: READY=1 once the backplane is up, then STATUS= changes */
    int notified_ready, last_up;
    size_t last_streams;
    int stopping;
};

/* Starts everything and listens. Returns 0, or -1 with a reason in @err (nothing left open). */
int gateway_start(struct gateway *gw, struct conf *cf, char *err, size_t errlen);

/* SIGHUP: re-reads the config file and applies what can change at run time (log level,
 * limits, timeouts, JWT secret, API keys, CORS, shutdown timings); a bad file is refused with
 * a log line and the running config stays. */
void gateway_reload(struct gateway *gw);

/* Runs the loop until a signal has drained the gateway. */
void gateway_run(struct gateway *gw);

/* Frees what gateway_start() made; call after gateway_run() returns. */
void gateway_release(struct gateway *gw);

#endif
