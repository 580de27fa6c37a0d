/* bench_common.c: clocks, the latency histogram, WebSocket framing (RFC 6455) and socket
 * helpers shared by the load generator and the raw-write ceiling. */
#define _GNU_SOURCE /* memmem, strcasestr, accept4 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("rtgate-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void set_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int parse_hostport(const char *s, uint32_t *ip, uint16_t *port)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    struct in_addr a;
    long p;

    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    p = strtol(colon + 1, NULL, 10);
    if (inet_pton(AF_INET, host, &a) != 1 || p < 0 || p > 65535)
        return -1;
    *ip = a.s_addr;
    *port = (uint16_t)p;
    return 0;
}

static unsigned bucket_of(uint64_t v)
{
    unsigned msb, shift;

    if (v < 256)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - 7; /* v >> shift is in [128, 256) */
    if (shift > 28)
        return HIST_BUCKETS - 1;
    return 256 + (shift - 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static uint64_t bucket_value(unsigned i)
{
    unsigned shift;

    if (i < 256)
        return i;
    shift = (i - 256) / HIST_SUB + 1;
    return ((uint64_t)((i - 256) % HIST_SUB + HIST_SUB) << shift) + ((1ull << shift) >> 1);
}

void hist_add(struct hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t)(p * (double)h->n + 0.5), seen = 0;

    if (!h->n)
        return 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want)
            return bucket_value(i) < h->max ? bucket_value(i) : h->max;
    }
    return h->max;
}

int hist_write_cdf(const struct hist *h, const char *path)
{
    FILE *f = fopen(path, "w");
    uint64_t seen = 0;

    if (!f)
        return -1;
    fprintf(f, "# latency_us fraction_at_or_below\n");
    for (unsigned i = 0; i < HIST_BUCKETS && h->n; i++) {
        if (!h->b[i])
            continue;
        seen += h->b[i];
        fprintf(f, "%llu %.6f\n", (unsigned long long)bucket_value(i), (double)seen / (double)h->n);
    }
    return fclose(f);
}

void ws_accept_key(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    char buf[128];
    unsigned mdlen = 0;

    if (len > sizeof(buf) - sizeof(guid))
        len = sizeof(buf) - sizeof(guid);
    memcpy(buf, key, len);
    memcpy(buf + len, guid, sizeof(guid) - 1);
    EVP_Digest(buf, len + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

size_t ws_frame_header(unsigned char *hdr, size_t len, const unsigned char *mask)
{
    size_t n = 2;

    hdr[0] = 0x81; /* FIN, text */
    if (len < 126) {
        hdr[1] = (unsigned char)len;
    } else if (len < 65536) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        n = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        hdr[1] |= 0x80;
        memcpy(hdr + n, mask, 4);
        n += 4;
    }
    return n;
}

long ws_parse_frame(unsigned char *p, size_t n, int *op, unsigned char **payload, size_t *plen)
{
    size_t hl = 2, len;
    int masked;

    if (n < 2)
        return 0;
    *op = p[0] & 0x0f;
    masked = p[1] & 0x80;
    len = p[1] & 0x7f;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((size_t)p[2] << 8) | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        hl = 10;
        if (len > (1u << 30))
            return -1;
    }
    if (masked)
        hl += 4;
    if (n < hl + len)
        return 0;
    if (masked) {
        const unsigned char *m = p + hl - 4;

        for (size_t i = 0; i < len; i++)
            p[hl + i] ^= m[i & 3];
    }
    *payload = p + hl;
    *plen = len;
    return (long)(hl + len);
}

int bench_out_send(struct bench_out *o, int fd, const void *p, size_t n, int now)
{
    ssize_t w = 0;

    if (o->off == o->len && now) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN)
            return -1;
        if (w < 0)
            w = 0;
        if ((size_t)w == n)
            return 0;
    }
    if (o->off && o->off == o->len)
        o->off = o->len = 0;
    o->buf = realloc(o->buf, o->len + n - (size_t)w);
    memcpy(o->buf + o->len, (const char *)p + w, n - (size_t)w);
    o->len += n - (size_t)w;
    return 1;
}

int bench_out_flush(struct bench_out *o, int fd)
{
    while (o->off < o->len) {
        ssize_t w = send(fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);

        if (w < 0)
            return errno == EAGAIN ? 1 : -1;
        o->off += (size_t)w;
    }
    o->off = o->len = 0;
    return 0;
}

void bench_out_free(struct bench_out *o)
{
    free(o->buf);
    *o = (struct bench_out){0};
}
