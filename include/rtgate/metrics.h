/* metrics.h: process-wide counters, rendered as Prometheus text by /metrics. Single-threaded:
 * plain increments, no atomics. */
#ifndef RTGATE_METRICS_H
#define RTGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric {
    M_HTTP_REQUESTS,      /* every HTTP request routed */
    M_HTTP_ERRORS,        /* answers with status >= 400 */
    M_AUTH_FAILURES,      /* 401s and refused upgrades */
    M_FORBIDDEN,          /* 403s and refused subscriptions */
    M_PUBLISHED,          /* messages accepted by /v1/messages, /v1/publish and WebSocket */
    M_SSE_STREAMS,        /* SSE streams opened */
    M_WS_CONNECTIONS,     /* WebSocket connections opened */
    M_WS_PROTOCOL_ERRORS, /* WebSockets closed for bad frames */
    M_POLL_REQUESTS,      /* /v1/poll requests answered */
    M_LONGPOLL_REQUESTS,  /* /v1/longpoll requests */
    M_LONGPOLL_TIMEOUTS,  /* long-polls answered empty at their timeout */
    M_SLOW_CONSUMERS,     /* connections cut because their send queue was full */
    M_DEAD_PEERS,         /* held connections found closed by the peer and cleaned up */
    M__COUNT
};

void metrics_inc(enum metric m);
uint64_t metrics_get(enum metric m);

/* Appends "# HELP/# TYPE/value" lines for every counter to @buf (at most @cap bytes, including
 * NUL). Returns the length written. */
size_t metrics_render(char *buf, size_t cap);

#endif
