/* metrics.h: process-wide counters, gauges and histograms, rendered as Prometheus text (format
 * 0.0.4) by /metrics. Single-threaded: plain increments into fixed arrays, no atomics, and
 * nothing on the recording side allocates, formats or logs, so hot paths may call it freely. */
#ifndef RTGATE_METRICS_H
#define RTGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric {
    M_HTTP_REQUESTS,        /* every HTTP request routed */
    M_HTTP_ERRORS,          /* answers with status >= 400 */
    M_AUTH_FAILURES,        /* 401s and refused upgrades */
    M_FORBIDDEN,            /* 403s and refused subscriptions */
    M_PUBLISHED,            /* messages accepted by /v1/messages, /v1/publish and WebSocket */
    M_SSE_STREAMS,          /* SSE streams opened */
    M_WS_CONNECTIONS,       /* WebSocket connections opened */
    M_WS_PROTOCOL_ERRORS,   /* WebSockets closed for bad frames */
    M_POLL_REQUESTS,        /* /v1/poll requests answered */
    M_LONGPOLL_REQUESTS,    /* /v1/longpoll requests */
    M_LONGPOLL_TIMEOUTS,    /* long-polls answered empty at their timeout */
    M_SLOW_CONSUMERS,       /* connections cut because their send queue was full */
    M_DEAD_PEERS,           /* held connections found closed by the peer and cleaned up */
    M_BACKPLANE_RECONNECTS, /* the Redis backplane became ready again after losing Redis */
    M__COUNT
};

/* The endpoint label of rtgate_http_responses_total: the routes, and everything else. */
enum metrics_endpoint {
    MET_EP_SSE,
    MET_EP_POLL,
    MET_EP_LONGPOLL,
    MET_EP_WS,
    MET_EP_MESSAGES,
    MET_EP_PUBLISH,
    MET_EP_HEALTHZ,
    MET_EP_READYZ,
    MET_EP_METRICS,
    MET_EP_PRESENCE,
    MET_EP_ICE,
    MET_EP_OTHER,
    MET_EP__COUNT
};

/* The transport label. MET_TR_HTTP: plain answers of the API and operator endpoints. */
enum metrics_transport {
    MET_TR_WS,
    MET_TR_SSE,
    MET_TR_POLL,
    MET_TR_LONGPOLL,
    MET_TR_HTTP,
    MET_TR__COUNT
};

/* Where a publish came from: POST /v1/publish (API key), POST /v1/messages (JWT), WebSocket. */
enum metrics_source { MET_SRC_API, MET_SRC_MESSAGES, MET_SRC_WS, MET_SRC__COUNT };

/* Redis round trips timed by rtgate_redis_command_duration_seconds. */
enum metrics_redis_cmd { MET_REDIS_PUBLISH, MET_REDIS_HISTORY, MET_REDIS__COUNT };

void metrics_inc(enum metric m);
uint64_t metrics_get(enum metric m);

/* The path of endpoint @ep ("/v1/poll"; "other" for MET_EP_OTHER). */
const char *metrics_endpoint_name(enum metrics_endpoint ep);
/* "ws", "sse", "poll", "longpoll", "http". */
const char *metrics_transport_name(enum metrics_transport t);

/* A request to @ep ended with @status (100..599; anything else counts as 500). */
void metrics_http_response(enum metrics_endpoint ep, int status);
/* A publish from @src was stored (@ok 1) or refused by the backplane (@ok 0). */
void metrics_published(enum metrics_source src, int ok);
/* A connection of transport @t was opened (@delta 1) or closed (-1). */
void metrics_connections(enum metrics_transport t, int delta);
/* Open connections of transport @t now. */
int64_t metrics_connections_get(enum metrics_transport t);
/* @n bytes were handed to a client socket over @t. */
void metrics_written(enum metrics_transport t, size_t n);
/* One message published at @ts_ms (wall clock, ms) was written to a client over @t at @now_us
 * (metrics_wall_us(): read the clock once per write, not per message). */
void metrics_delivered(enum metrics_transport t, uint64_t ts_ms, uint64_t now_us);
/* A Redis command sent at @start_ns (metrics_mono_ns()) got its reply now. */
void metrics_redis_done(enum metrics_redis_cmd cmd, uint64_t start_ns);

/* Clocks: wall time in microseconds since the epoch; monotonic nanoseconds. */
uint64_t metrics_wall_us(void);
uint64_t metrics_mono_ns(void);

/* Scrape-time rendering (allocates; never on a hot path). */
struct metrics_buf {
    char *p;
    size_t len, cap;
};

void metrics_buf_release(struct metrics_buf *b);
void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP", "# TYPE" (@type "counter" or "gauge") and one unlabelled sample. */
void metrics_put(struct metrics_buf *b, const char *type, const char *name, const char *help,
                 uint64_t value);

/* Appends every metric this module holds, the connection gauges by transport included, then
 * the standard process_* metrics read from /proc/self. */
void metrics_render(struct metrics_buf *b);

#endif
