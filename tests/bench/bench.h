/* bench.h: what the load generator (rtgate-bench.c) and its raw-write ceiling (raw.c) share:
 * clocks, a latency histogram, WebSocket framing helpers and socket set-up. */
#ifndef RTGATE_BENCH_H
#define RTGATE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_TOPIC_MAX 64

uint64_t now_us(void);   /* CLOCK_REALTIME: comparable between processes on one machine */
uint64_t mono_us(void);  /* CLOCK_MONOTONIC: intervals */
void raise_nofile(void); /* soft RLIMIT_NOFILE to the hard limit */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int set_nonblock(int fd);
void set_nodelay(int fd);
/* "host:port" into @ip (network order) and @port; returns 0 or -1. */
int parse_hostport(const char *s, uint32_t *ip, uint16_t *port);

/* Latency histogram in microseconds, log-linear: exact below 256 µs, then 128 sub-buckets per
 * power of two (under 0.8 % error), up to about 2^35 µs. */
#define HIST_SUB     128
#define HIST_BUCKETS (256 + 28 * HIST_SUB)
struct hist {
    uint64_t n, max, sum;
    uint32_t b[HIST_BUCKETS];
};
void hist_add(struct hist *h, uint64_t v);
uint64_t hist_pct(const struct hist *h, double p); /* value at fraction @p (0..1) */
/* Writes "latency_us fraction" lines (the CDF) for gnuplot. Returns 0 or -1. */
int hist_write_cdf(const struct hist *h, const char *path);

/* Sec-WebSocket-Accept for @key (@len bytes): 28 characters + NUL into @out. */
void ws_accept_key(const char *key, size_t len, char out[29]);
/* Writes a WebSocket frame header for a text frame of @len bytes into @hdr (at least 14 bytes);
 * @mask non-NULL writes a masked client header and masks nothing itself. Returns its length. */
size_t ws_frame_header(unsigned char *hdr, size_t len, const unsigned char *mask);

/* One complete frame at @p (@n bytes available): sets *@op, *@payload, *@plen and returns the
 * frame's total length, 0 if incomplete, -1 if malformed. Unmasks a masked frame in place. */
long ws_parse_frame(unsigned char *p, size_t n, int *op, unsigned char **payload, size_t *plen);

/* Bytes a socket did not take yet, sent before anything written after them. */
struct bench_out {
    unsigned char *buf;
    size_t len, off;
};
/* Sends @p on @fd behind what @o holds (writing to the socket at once only when @o is empty
 * and @now), keeping what the socket refuses. Returns 1 if bytes are left for EPOLLOUT, 0 if
 * all went out, -1 if the connection failed. */
int bench_out_send(struct bench_out *o, int fd, const void *p, size_t n, int now);
/* Writes what @o holds: 1 if some is still left, 0 if all went out, -1 if the connection
 * failed. */
int bench_out_flush(struct bench_out *o, int fd);
void bench_out_free(struct bench_out *o);

/* raw.c: the raw-write ceiling server; returns when SIGTERM/SIGINT arrive. */
int raw_server_main(const char *listen_on);

#endif
