/* metrics.c: the counters, gauges and histograms behind /metrics, and the process_* metrics read
 * from /proc/self at scrape time. Recording is a few increments into static arrays; all the
 * formatting happens in metrics_render(), on the scrape. Knows no sockets and no lws. */
#include "rtgate/metrics.h"

#include "rtgate/util.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MIN 100
#define STATUS_MAX 599
#define HIST_MAX   16 /* bounds of the largest histogram */

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
    [M_BACKPLANE_RECONNECTS] = {"rtgate_backplane_reconnects_total",
                                "times the backplane became ready again after losing Redis"},
};

static const char *const endpoint_names[MET_EP__COUNT] = {
    [MET_EP_SSE] = "/v1/sse",           [MET_EP_POLL] = "/v1/poll",
    [MET_EP_LONGPOLL] = "/v1/longpoll", [MET_EP_WS] = "/v1/ws",
    [MET_EP_MESSAGES] = "/v1/messages", [MET_EP_PUBLISH] = "/v1/publish",
    [MET_EP_HEALTHZ] = "/healthz",      [MET_EP_READYZ] = "/readyz",
    [MET_EP_METRICS] = "/metrics",      [MET_EP_ICE] = "/v1/ice",
    [MET_EP_PRESENCE] = "/v1/presence", [MET_EP_OTHER] = "other",
};

static const char *const transport_names[MET_TR__COUNT] = {
    [MET_TR_WS] = "ws",     [MET_TR_SSE] = "sse",
    [MET_TR_POLL] = "poll", [MET_TR_LONGPOLL] = "longpoll",
    [MET_TR_HTTP] = "http",
};

static const char *const source_names[MET_SRC__COUNT] = {
    [MET_SRC_API] = "api", [MET_SRC_MESSAGES] = "messages", [MET_SRC_WS] = "ws"};

static const char *const redis_names[MET_REDIS__COUNT] = {
    [MET_REDIS_PUBLISH] = "publish", [MET_REDIS_HISTORY] = "history"};

/* Fixed buckets. Values are kept in the unit of the clock that measured them (microseconds of
 * wall clock for deliveries, nanoseconds of monotonic clock for Redis), so observing is an
 * integer compare loop; the le labels are the same bounds written in seconds. */
struct hist_spec {
    size_t n;
    uint64_t per_second;
    const uint64_t *bound;
    const char *const *le;
};

static const uint64_t delivery_bounds[] = {1000,    2000,    5000,     10000,    25000,
                                           50000,   100000,  250000,   500000,   1000000,
                                           2500000, 5000000, 10000000, 30000000, 60000000};
static const char *const delivery_le[] = {"0.001", "0.002", "0.005", "0.01", "0.025",
                                          "0.05",  "0.1",   "0.25",  "0.5",  "1",
                                          "2.5",   "5",     "10",    "30",   "60"};
static const struct hist_spec delivery_spec = {ARRAY_LEN(delivery_bounds), 1000000, delivery_bounds,
                                               delivery_le};

static const uint64_t redis_bounds[] = {100000,    250000,    500000,     1000000,   2500000,
                                        5000000,   10000000,  25000000,   50000000,  100000000,
                                        250000000, 500000000, 1000000000, 2500000000};
static const char *const redis_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                       "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                       "0.25",   "0.5",     "1",      "2.5"};
static const struct hist_spec redis_spec = {ARRAY_LEN(redis_bounds), 1000000000, redis_bounds,
                                            redis_le};

_Static_assert(ARRAY_LEN(delivery_bounds) == ARRAY_LEN(delivery_le), "one label per bound");
_Static_assert(ARRAY_LEN(redis_bounds) == ARRAY_LEN(redis_le), "one label per bound");
_Static_assert(ARRAY_LEN(delivery_bounds) <= HIST_MAX && ARRAY_LEN(redis_bounds) <= HIST_MAX,
               "HIST_MAX");

struct hist {
    uint64_t bucket[HIST_MAX + 1]; /* not cumulative: [i] counts bound[i-1] < v <= bound[i] */
    uint64_t count, sum;
};

/* ~40 KiB of zeroes: a status code indexes its counter directly, no lookup on the way. */
static uint64_t http_responses[MET_EP__COUNT][STATUS_MAX - STATUS_MIN + 1];
static uint64_t published[MET_SRC__COUNT][2];
static int64_t connections[MET_TR__COUNT];
static uint64_t written[MET_TR__COUNT];
static struct hist delivery[MET_TR__COUNT];
static struct hist redis_rtt[MET_REDIS__COUNT];

void metrics_inc(enum metric m)
{
    counters[m]++;
}

uint64_t metrics_get(enum metric m)
{
    return counters[m];
}

const char *metrics_endpoint_name(enum metrics_endpoint ep)
{
    return endpoint_names[ep];
}

const char *metrics_transport_name(enum metrics_transport t)
{
    return transport_names[t];
}

void metrics_http_response(enum metrics_endpoint ep, int status)
{
    if (status < STATUS_MIN || status > STATUS_MAX)
        status = 500;
    http_responses[ep][status - STATUS_MIN]++;
}

void metrics_published(enum metrics_source src, int ok)
{
    published[src][ok != 0]++;
}

void metrics_connections(enum metrics_transport t, int delta)
{
    connections[t] += delta;
}

int64_t metrics_connections_get(enum metrics_transport t)
{
    return connections[t];
}

void metrics_written(enum metrics_transport t, size_t n)
{
    written[t] += n;
}

static void observe(struct hist *h, const struct hist_spec *sp, uint64_t v)
{
    size_t i = 0;

    while (i < sp->n && v > sp->bound[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += v;
}

void metrics_delivered(enum metrics_transport t, uint64_t ts_ms, uint64_t now_us)
{
    uint64_t ts_us = ts_ms * 1000;

    /* another node's clock (a Redis id) may be ahead of ours: count that as no delay */
    observe(&delivery[t], &delivery_spec, now_us > ts_us ? now_us - ts_us : 0);
}

void metrics_redis_done(enum metrics_redis_cmd cmd, uint64_t start_ns)
{
    uint64_t now = metrics_mono_ns();

    observe(&redis_rtt[cmd], &redis_spec, now > start_ns ? now - start_ns : 0);
}

uint64_t metrics_wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t metrics_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* ---- rendering ---- */

void metrics_buf_release(struct metrics_buf *b)
{
    xfree(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap ? b->cap * 2 : 16384;
        if (b->cap < b->len + (size_t)n + 1)
            b->cap = b->len + (size_t)n + 1;
        b->p = xrealloc(b->p, b->cap);
    }
}

static void header(struct metrics_buf *b, const char *type, const char *name, const char *help)
{
    metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_put(struct metrics_buf *b, const char *type, const char *name, const char *help,
                 uint64_t value)
{
    header(b, type, name, help);
    metrics_printf(b, "%s %" PRIu64 "\n", name, value);
}

/* One histogram series labelled @lname="@lval"; the sum in seconds, exactly. */
static void put_hist(struct metrics_buf *b, const char *name, const char *lname, const char *lval,
                     const struct hist *h, const struct hist_spec *sp)
{
    uint64_t cum = 0;
    int digits = sp->per_second == 1000000 ? 6 : 9;

    for (size_t i = 0; i < sp->n; i++) {
        cum += h->bucket[i];
        metrics_printf(b, "%s_bucket{%s=\"%s\",le=\"%s\"} %" PRIu64 "\n", name, lname, lval,
                       sp->le[i], cum);
    }
    metrics_printf(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, lname, lval,
                   h->count);
    metrics_printf(b, "%s_sum{%s=\"%s\"} %" PRIu64 ".%0*" PRIu64 "\n", name, lname, lval,
                   h->sum / sp->per_second, digits, h->sum % sp->per_second);
    metrics_printf(b, "%s_count{%s=\"%s\"} %" PRIu64 "\n", name, lname, lval, h->count);
}

/* Message transports: the ones that carry messages (not plain HTTP answers). */
static int carries_messages(int t)
{
    return t != MET_TR_HTTP;
}

static void render_transport_families(struct metrics_buf *b)
{
    header(b, "gauge", "rtgate_connections",
           "Open client connections by transport (SSE streams, held long-polls, WebSockets)");
    for (int t = 0; t < MET_TR__COUNT; t++)
        if (t == MET_TR_WS || t == MET_TR_SSE || t == MET_TR_LONGPOLL)
            metrics_printf(b, "rtgate_connections{transport=\"%s\"} %" PRId64 "\n",
                           transport_names[t], connections[t]);

    header(b, "counter", "rtgate_messages_delivered_total",
           "Messages written to clients, by transport (replays of history included)");
    for (int t = 0; t < MET_TR__COUNT; t++)
        if (carries_messages(t))
            metrics_printf(b, "rtgate_messages_delivered_total{transport=\"%s\"} %" PRIu64 "\n",
                           transport_names[t], delivery[t].count);

    header(b, "histogram", "rtgate_delivery_latency_seconds",
           "Time from a message's publish timestamp to its write to a client, by transport");
    for (int t = 0; t < MET_TR__COUNT; t++)
        if (carries_messages(t))
            put_hist(b, "rtgate_delivery_latency_seconds", "transport", transport_names[t],
                     &delivery[t], &delivery_spec);

    header(b, "counter", "rtgate_client_written_bytes_total",
           "Bytes handed to client sockets (HTTP answers with headers, SSE bytes, WebSocket "
           "payloads), by transport");
    for (int t = 0; t < MET_TR__COUNT; t++)
        metrics_printf(b, "rtgate_client_written_bytes_total{transport=\"%s\"} %" PRIu64 "\n",
                       transport_names[t], written[t]);
}

static void render_http(struct metrics_buf *b)
{
    header(b, "counter", "rtgate_http_responses_total",
           "HTTP requests ended, by endpoint and status code (a WebSocket session counts as "
           "101 when it ends; 499: the client left before an answer)");
    for (int ep = 0; ep < MET_EP__COUNT; ep++)
        for (int s = 0; s <= STATUS_MAX - STATUS_MIN; s++)
            if (http_responses[ep][s])
                metrics_printf(
                    b, "rtgate_http_responses_total{endpoint=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                    endpoint_names[ep], s + STATUS_MIN, http_responses[ep][s]);
}

static void render_publish(struct metrics_buf *b)
{
    header(b, "counter", "rtgate_messages_published_total",
           "Messages stored by the backplane, by source (api: /v1/publish, messages: "
           "/v1/messages, ws: WebSocket)");
    for (int s = 0; s < MET_SRC__COUNT; s++)
        metrics_printf(b, "rtgate_messages_published_total{source=\"%s\"} %" PRIu64 "\n",
                       source_names[s], published[s][1]);
    header(b, "counter", "rtgate_messages_publish_refused_total",
           "Publishes refused because the backplane was unavailable or overloaded, by source");
    for (int s = 0; s < MET_SRC__COUNT; s++)
        metrics_printf(b, "rtgate_messages_publish_refused_total{source=\"%s\"} %" PRIu64 "\n",
                       source_names[s], published[s][0]);

    header(b, "histogram", "rtgate_redis_command_duration_seconds",
           "Round trip of Redis commands: publish (EVALSHA of the publish script) and history "
           "reads");
    for (int c = 0; c < MET_REDIS__COUNT; c++)
        put_hist(b, "rtgate_redis_command_duration_seconds", "command", redis_names[c],
                 &redis_rtt[c], &redis_spec);
}

/* ---- process_* (the names every Prometheus client library exports) ---- */

static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return -1;
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

static uint64_t boot_time_s(void)
{
    static uint64_t btime;
    char line[256];
    FILE *f;

    if (btime || !(f = fopen("/proc/stat", "r")))
        return btime;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return btime;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory being read is an fd too */
}

static void render_process(struct metrics_buf *b)
{
    char stat[1024], *p;
    unsigned long long f[21];
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds = count_fds();
    struct rlimit rl;
    int i;

    /* /proc/self/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses */
    if (read_small("/proc/self/stat", stat, sizeof(stat)) > 0 && (p = strrchr(stat, ')')) &&
        p[1] == ' ' && p[2] && tck > 0 && page > 0) {
        p += 3; /* past field 3, the state letter: f[0] is field 4 */
        for (i = 0; i < 21 && *p == ' '; i++)
            f[i] = strtoull(p + 1, &p, 10);
        if (i == 21) {
            /* fields 14, 15 (utime, stime) and 22, 23, 24 (starttime, vsize, rss) */
            unsigned long long cpu = f[10] + f[11], hz = (unsigned long long)tck;

            header(b, "counter", "process_cpu_seconds_total",
                   "Total user and system CPU time spent in seconds");
            metrics_printf(b, "process_cpu_seconds_total %llu.%02llu\n", cpu / hz,
                           (cpu % hz) * 100 / hz);
            metrics_put(b, "gauge", "process_resident_memory_bytes",
                        "Resident memory size in bytes", f[20] * (unsigned long long)page);
            metrics_put(b, "gauge", "process_virtual_memory_bytes", "Virtual memory size in bytes",
                        f[19]);
            if (boot_time_s())
                metrics_put(b, "gauge", "process_start_time_seconds",
                            "Start time of the process since unix epoch in seconds",
                            boot_time_s() + f[18] / hz);
        }
    }
    if (fds >= 0)
        metrics_put(b, "gauge", "process_open_fds", "Number of open file descriptors",
                    (uint64_t)fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        metrics_put(b, "gauge", "process_max_fds", "Maximum number of open file descriptors",
                    (uint64_t)rl.rlim_cur);
}

void metrics_render(struct metrics_buf *b)
{
    metrics_printf(b,
                   "# HELP rtgate_build_info rtgate's version\n# TYPE rtgate_build_info gauge\n"
                   "rtgate_build_info{version=\"%s\"} 1\n",
                   RTGATE_VERSION);
    for (int i = 0; i < M__COUNT; i++)
        metrics_put(b, "counter", meta[i].name, meta[i].help, counters[i]);
    render_http(b);
    render_publish(b);
    render_transport_families(b);
    render_process(b);
}
