/* metrics.c: the counters behind /metrics. */
#include "rtgate/metrics.h"

#include <inttypes.h>
#include <stdio.h>

static uint64_t counters[M__COUNT];

static const struct {
    const char *name, *help;
} meta[M__COUNT] = {
    [M_HTTP_REQUESTS] = {"rtgate_http_requests_total", "HTTP requests routed"},
    [M_HTTP_ERRORS] = {"rtgate_http_errors_total", "HTTP answers with status >= 400"},
    [M_AUTH_FAILURES] = {"rtgate_auth_failures_total",
                         "requests refused for a missing or bad credential"},
    [M_FORBIDDEN] = {"rtgate_forbidden_total", "requests refused for a forbidden topic"},
    [M_PUBLISHED] = {"rtgate_published_total", "messages accepted for publishing"},
    [M_SSE_STREAMS] = {"rtgate_sse_streams_total", "SSE streams opened"},
    [M_WS_CONNECTIONS] = {"rtgate_ws_connections_total", "WebSocket connections opened"},
    [M_WS_PROTOCOL_ERRORS] = {"rtgate_ws_protocol_errors_total",
                              "WebSockets closed for invalid frames"},
    [M_POLL_REQUESTS] = {"rtgate_poll_requests_total", "simple poll requests answered"},
    [M_LONGPOLL_REQUESTS] = {"rtgate_longpoll_requests_total", "long-poll requests"},
    [M_LONGPOLL_TIMEOUTS] = {"rtgate_longpoll_timeouts_total",
                             "long-polls answered empty at their timeout"},
    [M_SLOW_CONSUMERS] = {"rtgate_slow_consumers_total",
                          "connections cut because their send queue was full"},
    [M_DEAD_PEERS] = {"rtgate_dead_peers_total", "held connections found closed by the peer"},
};

void metrics_inc(enum metric m)
{
    counters[m]++;
}

uint64_t metrics_get(enum metric m)
{
    return counters[m];
}

size_t metrics_render(char *buf, size_t cap)
{
    size_t len = 0;

    for (int i = 0; i < M__COUNT && len < cap; i++) {
        int n = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
                         meta[i].name, meta[i].help, meta[i].name, meta[i].name, counters[i]);

        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
    return len;
}
