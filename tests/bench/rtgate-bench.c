/* rtgate-bench: a load generator for rtgate and the servers it is compared with.
 *
 * One thread, one epoll set, non-blocking sockets, never a zero timeout: when the server is
 * saturated the generator sleeps in epoll_wait() for its replies. N clients (WebSocket with
 * a real handshake and masked frames, SSE with an event-stream parser, long-poll or poll
 * loops) connect from 127.0.0.1..127.0.0.K (bound before connect, so large N does not run
 * out of ephemeral ports). A publisher on its own WebSocket sends "publish" frames whose data
 * carries the send time and a per-topic sequence number; every receiver checks its topic's
 * sequence (loss, duplicates, order) and records publish->receive latency. A progress line
 * goes to stderr each second and one JSON line with every figure to stdout at the end.
 * `rtgate-bench --help` lists modes and options. */
#define _GNU_SOURCE /* memmem, strcasestr, accept4 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { MODE_IDLE, MODE_BROADCAST, MODE_UNICAST, MODE_CHURN };
enum transport { TR_WS, TR_SSE, TR_LONGPOLL, TR_POLL };
enum proto { PROTO_RTGATE, PROTO_NCHAN };
enum state { ST_CONNECTING, ST_HEADERS, ST_OPEN, ST_CLOSED, ST_WAIT };

/* One client connection. The read buffer holds only what a read left unparsed. */
struct client {
    int fd;
    uint32_t idx; /* which client: its user is u<idx>, its address 127.0.0.(1 + idx % K) */
    uint8_t state, is_pub, ready, kept;
    uint8_t counted;   /* in n_connecting: a handshake or request in progress */
    unsigned char *in; /* unparsed bytes */
    size_t in_len;
    struct bench_out out;  /* bytes the socket did not take */
    size_t body_left;      /* poll answers: body bytes still expected (SIZE_MAX: until EOF) */
    uint64_t next_seq;     /* the next sequence number this client's topic should bring */
    uint64_t reconnect_at; /* churn: mono_us of the planned reconnect */
    char cursor[256];      /* resume position: SSE id, WS "cursor", poll "cursor" */
};

static struct {
    enum mode mode;
    enum transport tr;
    enum proto proto;
    const char *urls[8];
    int n_urls;
    uint32_t ips[8];
    uint16_t ports[8];
    uint32_t n_clients, sources, publishers;
    double rate;     /* messages/s; 0: as fast as the window allows */
    uint32_t window; /* messages published but not yet fully received */
    double seconds;  /* publishing time */
    uint64_t count;  /* stop after this many messages (0: no limit) */
    uint32_t size;   /* bytes of each message's data */
    const char *topic;
    const char *secret;
    const char *hist_path;
    int server_pids[8], n_pids;
    uint32_t churn_window_ms;
    double churn_at; /* seconds after publishing starts */
    uint32_t connect_batch;
    uint32_t poll_ms;
    uint32_t user_base;
    int settle_ms; /* wait after all are ready before publishing (-1: 1 s for long-polls) */
} o = {
    .mode = MODE_BROADCAST,
    .n_clients = 100,
    .sources = 8,
    .publishers = 1,
    .window = 2,
    .seconds = 5,
    .size = 45,
    .topic = "room:bench",
    .secret = "dev-secret-change-me-0123456789",
    .churn_window_ms = 1000,
    .churn_at = 2,
    .connect_batch = 256,
    .settle_ms = -1,
};

static struct client *clients; /* receivers, then publishers */
static int wait_dirty = 1;     /* some client may be waiting to (re)connect */
static int ep;
static struct hist lat;
static volatile sig_atomic_t interrupted;

/* Counters. "unique" counts in-sequence or ahead-of-sequence receipts. */
static uint64_t published, acked, received, unique, dups, ooo, gaps, connect_errors, closes,
    reconnects, requests, n_open, n_ready, n_connecting, bytes_in, pub_errors;
static uint64_t *user_seq;   /* unicast: next sequence per user */
static uint32_t *recv_count; /* broadcast: receipts per sequence, a ring */
#define RING 65536
static uint64_t fully_done; /* broadcast: messages every ready subscriber has received */
static uint64_t t_pub_start, t_last_rx, t_first_churn, t_recovered, churn_seq_mark;
static int churn_state; /* 0 before, 1 reconnecting, 2 all reconnected, 3 recovered */

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- tokens: HS256 JWTs signed with --secret ---- */

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    size_t len = (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    while (len && out[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[len] = 0;
    return len;
}

static void make_token(uint32_t user, char *out, size_t cap)
{
    char hdr[64], pl[128], body[256], claims[96];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t n;

    b64url((const unsigned char *)"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27, hdr);
    n = (size_t)snprintf(claims, sizeof(claims), "{\"sub\":\"u%u\",\"exp\":%llu}", user,
                         (unsigned long long)(time(NULL) + 86400));
    b64url((const unsigned char *)claims, n, pl);
    n = (size_t)snprintf(body, sizeof(body), "%s.%s", hdr, pl);
    HMAC(EVP_sha256(), o.secret, (int)strlen(o.secret), (unsigned char *)body, n, mac, &maclen);
    snprintf(out, cap, "%s.", body);
    b64url(mac, maclen, out + strlen(out));
}

/* ---- sockets ---- */

static void count_connecting(struct client *c, int on)
{
    if (on && !c->counted)
        n_connecting++;
    else if (!on && c->counted)
        n_connecting--;
    c->counted = (uint8_t)on;
}

static void watch(struct client *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(struct client *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (c->state == ST_OPEN)
            n_open--;
        count_connecting(c, 0);
    }
    /* a poll client stays ready between requests: it has a cursor */
    if (c->ready && (c->is_pub || o.tr <= TR_SSE)) {
        if (!c->is_pub)
            n_ready--;
        c->ready = 0;
    }
    c->fd = -1;
    c->state = ST_CLOSED;
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    bench_out_free(&c->out);
}

static void set_wait(struct client *c, uint64_t delay_us)
{
    c->state = ST_WAIT;
    c->reconnect_at = mono_us() + delay_us;
    wait_dirty = 1;
}

static int send_bytes(struct client *c, const void *p, size_t n)
{
    int r = bench_out_send(&c->out, c->fd, p, n, c->state == ST_OPEN);

    if (r > 0 && c->state == ST_OPEN)
        watch(c, 1);
    return r < 0 ? -1 : 0;
}

/* A masked client text frame. The mask is fixed: the point is to pay the server's unmasking,
 * not to defeat a proxy cache. */
static int send_ws_text(struct client *c, const char *text, size_t n)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    unsigned char buf[2048];
    size_t hl;

    if (n > sizeof(buf) - 14)
        return -1;
    hl = ws_frame_header(buf, n, mask);
    for (size_t i = 0; i < n; i++)
        buf[hl + i] = (unsigned char)text[i] ^ mask[i & 3];
    return send_bytes(c, buf, hl + n);
}

static const char *user_topic(uint32_t idx, char *buf, size_t cap)
{
    if (o.mode == MODE_UNICAST && !clients[idx].is_pub)
        snprintf(buf, cap, o.proto == PROTO_NCHAN ? "u%u" : "user:u%u", idx + o.user_base);
    else
        snprintf(buf, cap, "%s", o.topic);
    return buf;
}

/* The request line and headers that open @c, queued for when the connect completes. */
static void queue_request(struct client *c)
{
    char req[1400], tok[400], topic[BENCH_TOPIC_MAX + 16], q[600];
    int n, url = (int)((c->idx + c->is_pub) % (uint32_t)o.n_urls);
    const char *host = o.urls[url];

    make_token(c->idx + o.user_base, tok, sizeof(tok));
    user_topic(c->idx, topic, sizeof(topic));
    if (c->is_pub || o.tr == TR_WS) {
        const char *path = "/v1/ws?token=";

        if (o.proto == PROTO_NCHAN)
            path = c->is_pub ? "/pub/" : "/sub/";
        n = snprintf(req, sizeof(req),
                     "GET %s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, o.proto == PROTO_NCHAN ? topic : tok, host);
    } else if (o.tr == TR_SSE) {
        char lei[300] = "";

        if (c->cursor[0])
            snprintf(lei, sizeof(lei), "Last-Event-ID: %s\r\n", c->cursor);
        if (o.proto == PROTO_NCHAN)
            n = snprintf(req, sizeof(req),
                         /* HTTP/1.0: Nchan then streams without chunked encoding */
                         "GET /sub/%s HTTP/1.0\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n",
                         topic, host, lei);
        else
            n = snprintf(req, sizeof(req),
                         "GET /v1/sse?topics=%s&token=%s HTTP/1.1\r\nHost: %s\r\n"
                         "Accept: text/event-stream\r\n%s\r\n",
                         topic, tok, host, lei);
    } else {
        int lp = o.tr == TR_LONGPOLL && c->cursor[0];

        snprintf(q, sizeof(q), "topics=%s%s%s%s", topic, c->cursor[0] ? "&cursor=" : "", c->cursor,
                 lp ? "&timeout=50" : "");
        n = snprintf(req, sizeof(req),
                     "GET /v1/%s?%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n",
                     lp ? "longpoll" : "poll", q, host, tok);
    }
    send_bytes(c, req, (size_t)n);
}

/* Client i uses server i % n (several nodes); publishers are shifted by one, so that with two
 * nodes every unicast message crosses from one node to the other through the backplane. */
static struct sockaddr_in source_addr(uint32_t idx)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};

    sa.sin_addr.s_addr = htonl(0x7f000001u + idx % o.sources);
    return sa;
}

static void start_connect(struct client *c)
{
    struct sockaddr_in src = source_addr(c->idx), dst = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1, url = (int)((c->idx + c->is_pub) % (uint32_t)o.n_urls);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        connect_errors++;
        set_wait(c, 100000);
        return;
    }
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
        close(fd);
        connect_errors++;
        set_wait(c, 100000);
        return;
    }
    set_nodelay(fd);
    dst.sin_addr.s_addr = o.ips[url];
    dst.sin_port = htons(o.ports[url]);
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) {
        close(fd);
        connect_errors++;
        set_wait(c, 100000);
        return;
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    count_connecting(c, 1);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    queue_request(c);
}

/* ---- what receivers do with a message ---- */

static uint64_t num_after(const unsigned char *p, const unsigned char *end, const char *key,
                          size_t klen, const unsigned char **next)
{
    const unsigned char *s = memmem(p, (size_t)(end - p), key, klen);
    uint64_t v = 0;

    if (!s) {
        *next = NULL;
        return 0;
    }
    for (s += klen; s < end && *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    *next = s;
    return v;
}

/* Records one message found in @p..@end (the bench's data object {"t":..,"s":..}); returns a
 * pointer past it, or NULL if there is none. */
static const unsigned char *on_message(struct client *c, const unsigned char *p,
                                       const unsigned char *end)
{
    const unsigned char *q;
    uint64_t t = num_after(p, end, "{\"t\":", 5, &q), s, now;

    if (!q)
        return NULL;
    s = num_after(q, end, ",\"s\":", 5, &q);
    if (!q)
        return NULL;
    now = now_us();
    received++;
    t_last_rx = mono_us();
    hist_add(&lat, now > t ? now - t : 0);
    if (s == c->next_seq) {
        unique++;
        c->next_seq = s + 1;
    } else if (s > c->next_seq) {
        unique++;
        ooo++;
        gaps += s - c->next_seq;
        c->next_seq = s + 1;
    } else {
        dups++;
    }
    if (o.mode == MODE_BROADCAST || o.mode == MODE_CHURN)
        recv_count[s % RING]++;
    return q;
}

static void copy_string_after(const unsigned char *p, size_t n, const char *key, char *out,
                              size_t cap)
{
    size_t klen = strlen(key);
    const unsigned char *s = memmem(p, n, key, klen), *e;

    if (!s)
        return;
    s += klen;
    e = memchr(s, '"', n - (size_t)(s - p));
    if (!e || (size_t)(e - s) >= cap)
        return;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = 0;
}

static void mark_ready(struct client *c)
{
    if (c->ready)
        return;
    c->ready = 1;
    if (!c->is_pub)
        n_ready++;
}

static void on_ws_text(struct client *c, unsigned char *p, size_t n)
{
    if (c->is_pub) {
        if (memmem(p, n, "\"type\":\"ack\"", 12))
            acked++;
        else if (memmem(p, n, "\"type\":\"error\"", 14) && pub_errors++ < 5)
            fprintf(stderr, "rtgate-bench: publish refused: %.*s\n", (int)n, p);
        return;
    }
    if (o.proto == PROTO_NCHAN) {
        on_message(c, p, p + n);
        return;
    }
    if (memmem(p, n, "\"type\":\"message\"", 16)) {
        on_message(c, p, p + n);
        if (o.mode == MODE_CHURN)
            copy_string_after(p, n, "\"cursor\":\"", c->cursor, sizeof(c->cursor));
    } else if (memmem(p, n, "\"type\":\"ack\"", 12)) {
        if (!c->cursor[0] || !c->ready)
            copy_string_after(p, n, "\"cursor\":\"", c->cursor, sizeof(c->cursor));
        mark_ready(c);
    } else if (memmem(p, n, "\"type\":\"error\"", 14)) {
        fprintf(stderr, "rtgate-bench: client %u: %.*s\n", c->idx, (int)n, p);
    }
}

static size_t parse_ws(struct client *c, unsigned char *p, size_t n)
{
    size_t off = 0;

    for (;;) {
        unsigned char *pl;
        size_t plen;
        int op;
        long fl = ws_parse_frame(p + off, n - off, &op, &pl, &plen);

        if (fl <= 0)
            return fl < 0 ? SIZE_MAX : off;
        if (op == 1)
            on_ws_text(c, pl, plen);
        else if (op == 8)
            return SIZE_MAX; /* server close */
        else if (op == 9) {
            unsigned char pong[2 + 4 + 125], mask[4] = {0, 0, 0, 0};
            size_t hl = ws_frame_header(pong, plen, mask);

            pong[0] = 0x8a;
            memcpy(pong + hl, pl, plen < 125 ? plen : 125);
            send_bytes(c, pong, hl + (plen < 125 ? plen : 125));
        }
        off += (size_t)fl;
    }
}

/* Event stream: events end at a blank line; "id:" keeps the resume cursor. */
static size_t parse_sse(struct client *c, unsigned char *p, size_t n)
{
    size_t off = 0;

    for (;;) {
        unsigned char *e = memmem(p + off, n - off, "\n\n", 2), *id;

        if (!e)
            return off;
        if (p[off] != ':') {
            id = memmem(p + off, (size_t)(e - (p + off)), "id: ", 4);
            if (id && (id == p + off || id[-1] == '\n')) {
                unsigned char *le = memchr(id, '\n', (size_t)(e + 1 - id));
                size_t l = (size_t)(le - id) - 4;

                if (l < sizeof(c->cursor)) {
                    memcpy(c->cursor, id + 4, l);
                    c->cursor[l] = 0;
                }
            }
            if (memmem(p + off, (size_t)(e - (p + off)), "event: reset", 12))
                fprintf(stderr, "rtgate-bench: client %u: reset\n", c->idx);
            else
                on_message(c, p + off, e);
        }
        off = (size_t)(e + 2 - p);
    }
}

/* A poll or long-poll answer: every message in it, then the next cursor. */
static void on_poll_body(struct client *c, const unsigned char *p, size_t n)
{
    const unsigned char *q = p, *end = p + n;

    requests++;
    while (q && q < end)
        q = on_message(c, q, end);
    copy_string_after(p, n, "\"cursor\":\"", c->cursor, sizeof(c->cursor));
    mark_ready(c);
}

static size_t parse_headers(struct client *c, unsigned char *p, size_t n)
{
    unsigned char *e = memmem(p, n, "\r\n\r\n", 4);
    size_t hl;
    int status;

    if (!e)
        return n > 16384 ? SIZE_MAX : 0;
    hl = (size_t)(e + 4 - p);
    status = n > 12 ? atoi((const char *)p + 9) : 0;
    if (c->is_pub || o.tr == TR_WS) {
        if (status != 101) {
            fprintf(stderr, "rtgate-bench: upgrade refused: %.*s\n", (int)(hl < 200 ? hl : 200), p);
            return SIZE_MAX;
        }
        c->state = ST_OPEN;
        count_connecting(c, 0);
        n_open++;
        if (c->is_pub || o.proto == PROTO_NCHAN) {
            mark_ready(c);
        } else {
            char f[600], topic[BENCH_TOPIC_MAX + 16];
            int fl = c->cursor[0]
                         ? snprintf(f, sizeof(f),
                                    "{\"type\":\"subscribe\",\"topic\":\"%s\","
                                    "\"cursor\":\"%s\"}",
                                    user_topic(c->idx, topic, sizeof(topic)), c->cursor)
                         : snprintf(f, sizeof(f), "{\"type\":\"subscribe\",\"topic\":\"%s\"}",
                                    user_topic(c->idx, topic, sizeof(topic)));
            if (send_ws_text(c, f, (size_t)fl) != 0)
                return SIZE_MAX;
        }
        return hl;
    }
    if (status != 200 && status != 304) {
        fprintf(stderr, "rtgate-bench: status %d: %.*s\n", status, (int)(n < 300 ? n : 300), p);
        return SIZE_MAX;
    }
    c->state = ST_OPEN;
    count_connecting(c, 0);
    n_open++;
    if (o.tr == TR_SSE) {
        mark_ready(c);
    } else {
        unsigned char *cl = memmem(p, hl, "content-length: ", 16);

        if (!cl)
            cl = memmem(p, hl, "Content-Length: ", 16);
        c->body_left = cl ? (size_t)strtoul((const char *)cl + 16, NULL, 10) : SIZE_MAX;
        c->kept = memmem(p, hl, "onnection: close", 16) == NULL;
    }
    return hl;
}

static void schedule_next_poll(struct client *c)
{
    if (o.tr == TR_POLL && c->kept && c->fd >= 0) {
        c->state = ST_HEADERS; /* same socket, next request */
        n_open--;
        count_connecting(c, 1);
        queue_request(c);
        watch(c, 1);
        return;
    }
    drop(c);
    set_wait(c, (uint64_t)o.poll_ms * 1000);
}

/* Parses what is buffered; returns -1 when the connection is finished. */
static int parse(struct client *c, unsigned char *p, size_t n, size_t *used)
{
    size_t off = 0, r;

    while (off < n ||
           (o.tr >= TR_LONGPOLL && !c->is_pub && c->state == ST_OPEN && c->body_left == 0)) {
        if (c->state == ST_HEADERS) {
            r = parse_headers(c, p + off, n - off);
            if (r == SIZE_MAX)
                return -1;
            if (r == 0)
                break;
            off += r;
            continue;
        }
        if (c->is_pub || o.tr == TR_WS)
            r = parse_ws(c, p + off, n - off);
        else if (o.tr == TR_SSE)
            r = parse_sse(c, p + off, n - off);
        else {
            if (c->body_left != SIZE_MAX && n - off < c->body_left)
                break;
            if (c->body_left == SIZE_MAX)
                break; /* until EOF */
            on_poll_body(c, p + off, c->body_left);
            off += c->body_left;
            *used = off;
            schedule_next_poll(c);
            return c->fd >= 0 ? 0 : -2;
        }
        if (r == SIZE_MAX)
            return -1;
        off += r;
        break;
    }
    *used = off;
    return 0;
}

static void on_readable(struct client *c)
{
    static unsigned char buf[1 << 18];
    size_t used = 0, n;
    ssize_t r;
    int rc;

    for (int rounds = 0; rounds < 4; rounds++) {
        unsigned char *p = buf;

        r = recv(c->fd, buf + c->in_len, sizeof(buf) - c->in_len, 0);
        if (r == 0 && o.tr >= TR_LONGPOLL && !c->is_pub && c->state == ST_OPEN &&
            c->body_left == SIZE_MAX) {
            on_poll_body(c, c->in, c->in_len);
            schedule_next_poll(c);
            return;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            if (!interrupted && c->state == ST_OPEN && o.mode != MODE_CHURN)
                closes++;
            drop(c);
            if (o.mode == MODE_CHURN || o.tr >= TR_LONGPOLL) {
                set_wait(c, 200000);
            }
            return;
        }
        if (r < 0)
            return;
        bytes_in += (uint64_t)r;
        if (c->in_len)
            memcpy(buf, c->in, c->in_len);
        n = c->in_len + (size_t)r;
        rc = parse(c, p, n, &used);
        if (rc == -2)
            return;
        if (rc < 0) {
            closes++;
            drop(c);
            return;
        }
        if (c->fd < 0)
            return;
        c->in_len = n - used;
        if (c->in_len) {
            c->in = realloc(c->in, c->in_len);
            memcpy(c->in, buf + used, c->in_len);
        }
        if ((size_t)r < sizeof(buf) / 2)
            return;
    }
}

static void on_writable(struct client *c)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);

        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            connect_errors++;
            drop(c);
            set_wait(c, 200000);
            return;
        }
        c->state = ST_HEADERS;
        /* a long-poll with a cursor is held until news: it no longer holds up connecting */
        if (o.tr == TR_LONGPOLL && !c->is_pub && c->cursor[0])
            count_connecting(c, 0);
    }
    switch (bench_out_flush(&c->out, c->fd)) {
    case 1: return; /* more when the socket takes it */
    case -1: drop(c); return;
    }
    watch(c, 0);
}

/* ---- the publisher ---- */

static void publish_one(void)
{
    char data[1024], f[1400], topic[BENCH_TOPIC_MAX + 16];
    uint32_t user = 0;
    uint64_t seq;
    struct client *p = &clients[o.n_clients + published % o.publishers];
    int dn, fn;

    if (o.mode == MODE_UNICAST) {
        user = (uint32_t)(((uint64_t)rand() * (uint64_t)o.n_clients) / ((uint64_t)RAND_MAX + 1));
        seq = user_seq[user]++;
        /* one publisher per user: two connections (two nodes) racing to one topic would make
         * its order theirs, not the gateway's */
        p = &clients[o.n_clients + user % o.publishers];
        snprintf(topic, sizeof(topic), "user:u%u", user + o.user_base);
    } else {
        seq = published;
        snprintf(topic, sizeof(topic), "%s", o.topic);
    }
    dn = snprintf(data, sizeof(data), "{\"t\":%llu,\"s\":%llu,\"p\":\"",
                  (unsigned long long)now_us(), (unsigned long long)seq);
    while ((uint32_t)dn + 2 < o.size && dn < (int)sizeof(data) - 3)
        data[dn++] = 'x';
    data[dn++] = '"';
    data[dn++] = '}';
    data[dn] = 0;
    if (o.proto == PROTO_NCHAN)
        fn = snprintf(f, sizeof(f), "%s", data);
    else
        fn = snprintf(f, sizeof(f), "{\"type\":\"publish\",\"topic\":\"%s\",\"data\":%s}", topic,
                      data);
    if (o.mode == MODE_BROADCAST || o.mode == MODE_CHURN)
        recv_count[seq % RING] = 0;
    send_ws_text(p, f, (size_t)fn);
    published++;
}

/* Broadcast: how many messages every ready subscriber has (the window closes behind them). */
static void advance_done(void)
{
    while (fully_done < published && recv_count[fully_done % RING] >= n_ready)
        fully_done++;
}

/* Messages the server took: acked ones (rtgate and raw-server ack each publish; a refused one
 * is not expected anywhere), or all sent to Nchan, which does not ack over WebSocket. */
static uint64_t accepted(void)
{
    return o.proto == PROTO_NCHAN ? published : acked;
}

static uint64_t outstanding(void)
{
    if (o.mode == MODE_CHURN)
        return 0; /* paced by --rate alone */
    if (o.mode == MODE_BROADCAST) {
        advance_done();
        return published - fully_done;
    }
    return published > unique ? published - unique : 0;
}

/* ---- /proc figures: server CPU and RSS, TCP segments ---- */

static uint64_t proc_cpu_us(void)
{
    uint64_t sum = 0;
    long hz = sysconf(_SC_CLK_TCK);

    for (int i = 0; i < o.n_pids; i++) {
        char path[64], buf[1024], *p;
        unsigned long long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", o.server_pids[i]);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            sum += (ut + st) * 1000000ull / (uint64_t)hz;
        fclose(f);
    }
    return sum;
}

static uint64_t proc_rss_kb(void)
{
    uint64_t sum = 0;

    for (int i = 0; i < o.n_pids; i++) {
        char path[64], line[256];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", o.server_pids[i]);
        f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "VmRSS:", 6) == 0)
                sum += strtoull(line + 6, NULL, 10);
        fclose(f);
    }
    return sum;
}

/* Tcp OutSegs from /proc/net/snmp (what nstat reads): all of this network namespace. */
static uint64_t tcp_out_segs(void)
{
    char names[1024], vals[1024];
    FILE *f = fopen("/proc/net/snmp", "r");
    uint64_t v = 0;

    if (!f)
        return 0;
    while (fgets(names, sizeof(names), f) && fgets(vals, sizeof(vals), f)) {
        char *sn, *sv, *n, *x;
        int col = 0, want = -1;

        if (strncmp(names, "Tcp:", 4) != 0)
            continue;
        for (n = strtok_r(names, " \n", &sn); n; n = strtok_r(NULL, " \n", &sn), col++)
            if (strcmp(n, "OutSegs") == 0)
                want = col;
        col = 0;
        for (x = strtok_r(vals, " \n", &sv); x; x = strtok_r(NULL, " \n", &sv), col++)
            if (col == want)
                v = strtoull(x, NULL, 10);
    }
    fclose(f);
    return v;
}

static uint64_t self_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* ---- the run ---- */

static void poll_events(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);

    for (int i = 0; i < n; i++) {
        struct client *c = evs[i].data.ptr;

        if (c->fd < 0)
            continue;
        if (evs[i].events & (EPOLLOUT | EPOLLERR) && c->state != ST_CLOSED)
            on_writable(c);
        if (c->fd >= 0 && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) &&
            c->state != ST_CONNECTING)
            on_readable(c);
    }
}

/* Opens every client that is due, at most connect_batch handshakes in flight. */
static void connect_due(uint64_t now)
{
    static uint64_t last_scan;
    uint32_t total = o.n_clients + o.publishers, waiting = 0;

    /* a scan costs N steps: only when someone waits, at most every 2 ms */
    if (!wait_dirty || now - last_scan < 2000)
        return;
    last_scan = now;
    wait_dirty = 0;
    for (uint32_t i = 0; i < total; i++) {
        struct client *c = &clients[i];

        if (c->state != ST_WAIT)
            continue;
        if (c->reconnect_at > now || n_connecting >= o.connect_batch) {
            waiting++;
            continue;
        }
        if (o.mode == MODE_CHURN && c->next_seq)
            reconnects++;
        start_connect(c);
    }
    if (waiting)
        wait_dirty = 1;
}

static void progress(uint64_t t0, uint64_t now, uint64_t *last_rx, uint64_t *last_req)
{
    fprintf(stderr,
            "[%5.1fs] open %llu ready %llu connecting %llu | published %llu acked %llu "
            "received %llu (+%llu/s) dups %llu gaps %llu | req %llu (+%llu/s) | p99 %.2f ms\n",
            (double)(now - t0) / 1e6, (unsigned long long)n_open, (unsigned long long)n_ready,
            (unsigned long long)n_connecting, (unsigned long long)published,
            (unsigned long long)acked, (unsigned long long)received,
            (unsigned long long)(received - *last_rx), (unsigned long long)dups,
            (unsigned long long)gaps, (unsigned long long)requests,
            (unsigned long long)(requests - *last_req), (double)hist_pct(&lat, 0.99) / 1000.0);
    *last_rx = received;
    *last_req = requests;
}

static void churn_step(uint64_t now, uint64_t t_start)
{
    uint64_t at = t_start + (uint64_t)(o.churn_at * 1e6);

    if (churn_state == 0 && now >= at) {
        /* everyone drops now and comes back at a random moment within the window */
        for (uint32_t i = 0; i < o.n_clients; i++) {
            struct client *c = &clients[i];

            drop(c);
            set_wait(c, (uint64_t)rand() % ((uint64_t)o.churn_window_ms * 1000 + 1));
        }
        t_first_churn = now;
        churn_state = 1;
    } else if (churn_state == 1 && n_ready == o.n_clients) {
        churn_state = 2;
        churn_seq_mark = published;
    } else if (churn_state == 2) {
        int all = 1;

        for (uint32_t i = 0; i < o.n_clients && all; i++)
            all = clients[i].next_seq >= churn_seq_mark;
        if (all) {
            churn_state = 3;
            t_recovered = now;
        }
    }
}

static void usage(void)
{
    fputs("usage: rtgate-bench MODE [options]\n"
          "modes: idle | broadcast | unicast | churn | raw-server\n"
          "  --url HOST:PORT[,HOST:PORT...]  servers (clients spread over them)\n"
          "  --transport ws|sse|longpoll|poll  (default ws)\n"
          "  --proto rtgate|nchan  paths and frames of rtgate (default) or Nchan\n"
          "  --clients N  --sources K (127.0.0.1..K)  --publishers P\n"
          "  --rate R (msg/s; 0 = saturate within --window)  --window W  --seconds S\n"
          "  --count C (stop after C messages)  --size B (data bytes, default 45)\n"
          "  --topic T  --secret S (HS256 JWT secret)  --user-base U\n"
          "  --server-pid PID (repeatable: server CPU and RSS)  --hist FILE (latency CDF)\n"
          "  --churn-at S  --churn-window-ms MS  --poll-ms MS  --connect-batch N\n"
          "  --settle-ms MS (pause between all ready and the first publish)\n"
          "  raw-server: --listen HOST:PORT (prints the port on stdout)\n",
          stderr);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {{"url", 1, 0, 'u'},
                                         {"transport", 1, 0, 't'},
                                         {"clients", 1, 0, 'n'},
                                         {"sources", 1, 0, 'k'},
                                         {"publishers", 1, 0, 'P'},
                                         {"rate", 1, 0, 'r'},
                                         {"window", 1, 0, 'w'},
                                         {"seconds", 1, 0, 's'},
                                         {"count", 1, 0, 'c'},
                                         {"size", 1, 0, 'b'},
                                         {"topic", 1, 0, 'T'},
                                         {"secret", 1, 0, 'S'},
                                         {"server-pid", 1, 0, 'p'},
                                         {"hist", 1, 0, 'H'},
                                         {"churn-at", 1, 0, 'a'},
                                         {"churn-window-ms", 1, 0, 'W'},
                                         {"poll-ms", 1, 0, 'M'},
                                         {"connect-batch", 1, 0, 'B'},
                                         {"proto", 1, 0, 'x'},
                                         {"user-base", 1, 0, 'U'},
                                         {"help", 0, 0, 'h'},
                                         {"settle-ms", 1, 0, 'E'},
                                         {0, 0, 0, 0}};
    int ch;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'u': {
            char *s = strdup(optarg), *sp, *t;

            for (t = strtok_r(s, ",", &sp); t && o.n_urls < 8; t = strtok_r(NULL, ",", &sp)) {
                if (strncmp(t, "http://", 7) == 0)
                    t += 7;
                if (parse_hostport(t, &o.ips[o.n_urls], &o.ports[o.n_urls]) != 0)
                    die("bad --url '%s'", t);
                o.urls[o.n_urls++] = t;
            }
            break;
        }
        case 't':
            o.tr = strcmp(optarg, "sse") == 0        ? TR_SSE
                   : strcmp(optarg, "longpoll") == 0 ? TR_LONGPOLL
                   : strcmp(optarg, "poll") == 0     ? TR_POLL
                                                     : TR_WS;
            break;
        case 'x': o.proto = strcmp(optarg, "nchan") == 0 ? PROTO_NCHAN : PROTO_RTGATE; break;
        case 'n': o.n_clients = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'k': o.sources = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'P': o.publishers = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': o.rate = strtod(optarg, NULL); break;
        case 'w': o.window = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': o.seconds = strtod(optarg, NULL); break;
        case 'c': o.count = strtoull(optarg, NULL, 10); break;
        case 'b': o.size = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'T': o.topic = optarg; break;
        case 'S': o.secret = optarg; break;
        case 'p':
            if (o.n_pids < 8)
                o.server_pids[o.n_pids++] = atoi(optarg);
            break;
        case 'H': o.hist_path = optarg; break;
        case 'a': o.churn_at = strtod(optarg, NULL); break;
        case 'W': o.churn_window_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'M': o.poll_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'B': o.connect_batch = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'E': o.settle_ms = atoi(optarg); break;
        case 'U': o.user_base = (uint32_t)strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (!o.n_urls)
        die("--url is required");
    if (!o.sources || o.sources > 254)
        o.sources = 1;
    if (!o.publishers)
        o.publishers = 1;
    if (!o.window)
        o.window = 1;
    if (o.settle_ms < 0)
        o.settle_ms = o.tr == TR_LONGPOLL ? 1000 : 0; /* the cursor is had, the poll not yet held */
    if (o.proto == PROTO_NCHAN && (o.mode == MODE_CHURN || o.mode == MODE_UNICAST))
        die("--proto nchan: idle and broadcast only");
}

static const char *mode_name(void)
{
    static const char *const n[] = {"idle", "broadcast", "unicast", "churn"};
    return n[o.mode];
}

static const char *tr_name(void)
{
    static const char *const n[] = {"ws", "sse", "longpoll", "poll"};
    return n[o.tr];
}

int main(int argc, char **argv)
{
    uint64_t t0, now, next_progress, last_rx = 0, last_req = 0, t_ready = 0, t_stop = 0;
    uint64_t cpu0 = 0, scpu0 = 0, segs0 = 0, rss0, rss_ready = 0, rx0 = 0, req0 = 0;
    uint64_t expected;
    uint32_t total;
    int publishing = 0, done = 0;

    if (argc < 2)
        usage();
    if (strcmp(argv[1], "raw-server") == 0) {
        const char *listen_on = "127.0.0.1:0";

        for (int i = 2; i + 1 < argc; i++)
            if (strcmp(argv[i], "--listen") == 0)
                listen_on = argv[i + 1];
        return raw_server_main(listen_on);
    }
    if (strcmp(argv[1], "idle") == 0)
        o.mode = MODE_IDLE;
    else if (strcmp(argv[1], "broadcast") == 0)
        o.mode = MODE_BROADCAST;
    else if (strcmp(argv[1], "unicast") == 0)
        o.mode = MODE_UNICAST;
    else if (strcmp(argv[1], "churn") == 0)
        o.mode = MODE_CHURN;
    else
        usage();
    parse_args(argc - 1, argv + 1);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    srand(12345);

    total = o.n_clients + (o.mode == MODE_IDLE && o.tr >= TR_LONGPOLL ? 0 : o.publishers);
    if (o.mode == MODE_IDLE)
        total = o.n_clients;
    clients = calloc(total + 1, sizeof(*clients));
    user_seq = calloc(o.n_clients + 1, sizeof(*user_seq));
    recv_count = calloc(RING, sizeof(*recv_count));
    for (uint32_t i = 0; i < total; i++) {
        clients[i].fd = -1;
        clients[i].idx = i;
        clients[i].state = ST_WAIT;
        clients[i].is_pub = i >= o.n_clients;
    }
    if (o.mode == MODE_IDLE)
        o.publishers = 0;
    ep = epoll_create1(0);
    rss0 = proc_rss_kb();
    t0 = mono_us();
    next_progress = t0 + 1000000;

    while (!done && !interrupted) {
        int timeout = 1000;

        now = mono_us();
        connect_due(now);
        if (!t_ready && n_ready == o.n_clients &&
            (o.mode == MODE_IDLE || clients[o.n_clients].ready)) {
            /* publishers are ready once their upgrade is done */
            int all = 1;

            for (uint32_t i = o.n_clients; i < total; i++)
                all = all && clients[i].ready;
            if (all) {
                t_ready = now;
                rss_ready = proc_rss_kb();
                fprintf(stderr, "rtgate-bench: %u clients ready in %.2f s\n", o.n_clients,
                        (double)(now - t0) / 1e6);
                t_pub_start = now + (uint64_t)o.settle_ms * 1000;
            }
        }
        if (t_ready && !cpu0 && now >= t_pub_start) {
            cpu0 = self_cpu_us() + 1;
            scpu0 = proc_cpu_us();
            segs0 = tcp_out_segs();
            rx0 = received;
            req0 = requests;
            t_pub_start = now;
            publishing = o.mode != MODE_IDLE;
        }
        if (!t_ready && now - t0 > 120000000)
            die("clients not ready after 120 s: %llu of %u", (unsigned long long)n_ready,
                o.n_clients);
        if (t_ready && o.mode == MODE_IDLE && now - t_ready >= (uint64_t)(o.seconds * 1e6)) {
            t_stop = now;
            done = 1;
        }
        if (publishing) {
            uint64_t el = now - t_pub_start;
            int stop = el >= (uint64_t)(o.seconds * 1e6) || (o.count && published >= o.count);

            if (stop) {
                publishing = 0;
                t_stop = now;
            } else if (o.rate > 0) {
                uint64_t due = (uint64_t)((double)el * o.rate / 1e6) + 1;

                while (published < due && outstanding() < o.window &&
                       (!o.count || published < o.count))
                    publish_one();
                timeout = 1;
            } else {
                while (outstanding() < o.window && (!o.count || published < o.count))
                    publish_one();
                timeout = 100;
            }
            if (o.mode == MODE_CHURN)
                churn_step(now, t_pub_start);
        } else if (t_stop) {
            /* draining: until everything arrived, or 3 s of silence */
            uint64_t want = o.mode == MODE_UNICAST ? accepted() : accepted() * o.n_clients;

            if (o.mode == MODE_CHURN)
                churn_step(now, t_pub_start);
            int answered = o.proto == PROTO_NCHAN || acked + pub_errors >= published;

            if ((answered && received - dups >= want &&
                 (o.mode != MODE_CHURN || churn_state >= 2)) ||
                now - (t_last_rx > t_stop ? t_last_rx : t_stop) > 3000000 ||
                now - t_stop > 30000000)
                done = 1;
            timeout = 50;
        }
        if (now >= next_progress) {
            progress(t0, now, &last_rx, &last_req);
            next_progress += 1000000;
        }
        poll_events(timeout);
    }
    now = mono_us();
    if (!t_stop)
        t_stop = now;
    {
        uint64_t cpu = self_cpu_us() + 1 - cpu0, scpu = t_ready ? proc_cpu_us() - scpu0 : 0;
        uint64_t segs = t_ready ? tcp_out_segs() - segs0 : 0, rss = proc_rss_kb();
        uint64_t end = t_last_rx > t_stop ? t_last_rx : t_stop;
        double span = t_ready ? (double)(end - t_pub_start) / 1e6 : 0;
        uint64_t deliv = received - rx0 - dups, reqs = requests - req0;
        uint64_t loss;

        expected = o.mode == MODE_UNICAST ? accepted()
                   : o.mode == MODE_IDLE  ? 0
                                          : accepted() * o.n_clients;
        if (o.tr >= TR_LONGPOLL && o.mode == MODE_IDLE)
            expected = 0;
        loss = expected > unique ? expected - unique : 0;
        if (o.hist_path && hist_write_cdf(&lat, o.hist_path) != 0)
            fprintf(stderr, "rtgate-bench: cannot write %s\n", o.hist_path);
        printf("{\"mode\":\"%s\",\"transport\":\"%s\",\"proto\":\"%s\",\"clients\":%u,"
               "\"ready\":%llu,\"connect_s\":%.3f,\"seconds\":%.3f,\"published\":%llu,"
               "\"acked\":%llu,\"publish_errors\":%llu,\"expected\":%llu,\"delivered\":%llu,"
               "\"loss\":%llu,\"dups\":%llu,"
               "\"out_of_order\":%llu,\"gaps\":%llu,\"closes\":%llu,\"connect_errors\":%llu,"
               "\"reconnects\":%llu,\"deliveries_per_s\":%.0f,\"requests\":%llu,"
               "\"requests_per_s\":%.0f,\"lat_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,"
               "\"p999\":%llu,\"max\":%llu,\"mean\":%.1f},\"client_cpu_us_per_delivery\":%.3f,"
               "\"server_cpu_us_per_delivery\":%.3f,\"server_cpu_s\":%.3f,"
               "\"tcp_segs_per_delivery\":%.3f,\"server_rss_kb\":%llu,"
               "\"server_rss_growth_per_conn_bytes\":%.0f,\"recovery_ms\":%.1f,"
               "\"rate\":%.0f,\"window\":%u,\"size\":%u}\n",
               mode_name(), tr_name(), o.proto == PROTO_NCHAN ? "nchan" : "rtgate", o.n_clients,
               (unsigned long long)n_ready, t_ready ? (double)(t_ready - t0) / 1e6 : -1.0, span,
               (unsigned long long)published, (unsigned long long)acked,
               (unsigned long long)pub_errors, (unsigned long long)expected,
               (unsigned long long)deliv, (unsigned long long)loss, (unsigned long long)dups,
               (unsigned long long)ooo, (unsigned long long)gaps, (unsigned long long)closes,
               (unsigned long long)connect_errors, (unsigned long long)reconnects,
               span > 0 ? (double)deliv / span : 0.0, (unsigned long long)reqs,
               span > 0 ? (double)reqs / span : 0.0, (unsigned long long)hist_pct(&lat, 0.5),
               (unsigned long long)hist_pct(&lat, 0.9), (unsigned long long)hist_pct(&lat, 0.99),
               (unsigned long long)hist_pct(&lat, 0.999), (unsigned long long)lat.max,
               lat.n ? (double)lat.sum / (double)lat.n : 0.0,
               deliv ? (double)cpu / (double)deliv : 0.0,
               deliv ? (double)scpu / (double)deliv : 0.0, (double)scpu / 1e6,
               deliv ? (double)segs / (double)deliv : 0.0, (unsigned long long)rss,
               o.n_pids && n_ready ? (double)(rss_ready - rss0) * 1024.0 / (double)n_ready : 0.0,
               t_recovered ? (double)(t_recovered - t_first_churn) / 1000.0 : -1.0, o.rate,
               o.window, o.size);
    }
    fflush(stdout);
    return 0;
}
