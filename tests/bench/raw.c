/* raw.c: `rtgate-bench raw-server`, the raw-write ceiling. It speaks just enough of rtgate's
 * WebSocket protocol for the load generator (upgrade, "subscribe" -> ack, "publish" -> ack) and
 * on each publish writes ONE pre-encoded frame to every subscriber with plain write(2) from a
 * single epoll thread, TCP_NODELAY on. Nothing a gateway could do on this machine sends one
 * frame per message to N sockets for less, so rtgate's broadcast figures are quoted against it.
 * No auth, no topics beyond "everyone who subscribed", no history. */
#define _GNU_SOURCE /* memmem, strcasestr, accept4 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct rconn {
    int fd;
    unsigned upgraded : 1, sub : 1, want_out : 1;
    unsigned char *in;
    size_t in_len;
    struct bench_out out; /* what the socket did not take: sent when EPOLLOUT */
};

static struct rconn **conns; /* by fd */
static int *subs;            /* fds of subscribers */
static size_t n_subs, cap_subs, max_fd;
static int ep;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void rc_close(struct rconn *c)
{
    if (c->sub) {
        for (size_t i = 0; i < n_subs; i++)
            if (subs[i] == c->fd) {
                subs[i] = subs[--n_subs];
                break;
            }
    }
    conns[c->fd] = NULL;
    close(c->fd);
    free(c->in);
    bench_out_free(&c->out);
    free(c);
}

/* Writes @p, keeping what the socket refuses; returns -1 if the connection failed. */
static int rc_send(struct rconn *c, const unsigned char *p, size_t n)
{
    int r = bench_out_send(&c->out, c->fd, p, n, 1);

    if (r > 0 && !c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};

        c->want_out = 1;
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return r < 0 ? -1 : 0;
}

static int rc_flush(struct rconn *c)
{
    int r = bench_out_flush(&c->out, c->fd);

    if (r == 0 && c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fd};

        c->want_out = 0;
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return r < 0 ? -1 : 0;
}

static int send_text(struct rconn *c, const char *text, size_t len)
{
    unsigned char buf[512];
    size_t hl;

    if (len > sizeof(buf) - 14)
        return -1;
    hl = ws_frame_header(buf, len, NULL);
    memcpy(buf + hl, text, len);
    return rc_send(c, buf, hl + len);
}

static int handshake(struct rconn *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4), *k, resp[256], acc[29];
    size_t klen, used;
    int n;

    if (!end)
        return c->in_len > 8192 ? -1 : 0;
    c->in[end - (char *)c->in] = 0;
    k = strcasestr((char *)c->in, "sec-websocket-key:");
    if (!k)
        return -1;
    k += 18;
    while (*k == ' ')
        k++;
    klen = strcspn(k, "\r\n");
    ws_accept_key(k, klen, acc);
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 acc);
    used = (size_t)(end + 4 - (char *)c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->upgraded = 1;
    return rc_send(c, (unsigned char *)resp, (size_t)n);
}

/* The frame every subscriber gets, shaped and sized like rtgate's "message" frame. */
static void fan_out(const unsigned char *data, size_t dlen)
{
    static unsigned char frame[1024];
    char body[900];
    uint64_t ms = now_us() / 1000;
    int n;
    size_t hl;

    if (dlen > 600)
        return;
    n = snprintf(body, sizeof(body),
                 "{\"type\":\"message\",\"id\":\"%llu-0\",\"topic\":\"room:bench\",\"from\":"
                 "\"bench\",\"ts\":%llu,\"data\":%.*s,\"cursor\":"
                 "\"cjF8cm9vbTpiZW5jaHw3MzExY2M1MmJiMWFkMWEzfDE3OTYxMjEwMTc4MDgtMA\"}",
                 (unsigned long long)ms, (unsigned long long)ms, (int)dlen, (const char *)data);
    hl = ws_frame_header(frame, (size_t)n, NULL);
    memcpy(frame + hl, body, (size_t)n);
    for (size_t i = 0; i < n_subs;) {
        struct rconn *s = conns[subs[i]];

        if (rc_send(s, frame, hl + (size_t)n) != 0) {
            rc_close(s); /* moves the last subscriber into slot i */
            continue;
        }
        i++;
    }
}

/* The value of "data" in a publish frame: the bench's flat JSON object. */
static int find_data(const unsigned char *p, size_t n, const unsigned char **d, size_t *dlen)
{
    const unsigned char *s = memmem(p, n, "\"data\":{", 8), *e;

    if (!s)
        return -1;
    s += 7;
    e = memchr(s, '}', n - (size_t)(s - p));
    if (!e)
        return -1;
    *d = s;
    *dlen = (size_t)(e - s) + 1;
    return 0;
}

static int on_frame(struct rconn *c, int op, unsigned char *p, size_t n)
{
    const unsigned char *d;
    size_t dlen;

    if (op == 8)
        return -1;
    if (op != 1)
        return 0;
    if (memmem(p, n, "\"type\":\"subscribe\"", 18)) {
        static const char ack[] = "{\"type\":\"ack\",\"topic\":\"room:bench\",\"recovered\":true,"
                                  "\"cursor\":\"raw\"}";
        if (!c->sub) {
            if (n_subs == cap_subs) {
                cap_subs = cap_subs ? cap_subs * 2 : 1024;
                subs = realloc(subs, cap_subs * sizeof(*subs));
            }
            subs[n_subs++] = c->fd;
            c->sub = 1;
        }
        return send_text(c, ack, sizeof(ack) - 1);
    }
    if (memmem(p, n, "\"type\":\"publish\"", 16) && find_data(p, n, &d, &dlen) == 0) {
        static const char ack[] = "{\"type\":\"ack\",\"id\":\"0-0\",\"topic\":\"room:bench\"}";
        int fd = c->fd;

        fan_out(d, dlen);
        if (!conns[fd])
            return 1; /* the publisher was a subscriber and failed */
        return send_text(c, ack, sizeof(ack) - 1);
    }
    return 0;
}

static int on_readable(struct rconn *c)
{
    unsigned char buf[65536];
    ssize_t r = read(c->fd, buf, sizeof(buf));
    size_t off = 0;

    if (r == 0 || (r < 0 && errno != EAGAIN))
        return -1;
    if (r < 0)
        return 0;
    c->in = realloc(c->in, c->in_len + (size_t)r);
    memcpy(c->in + c->in_len, buf, (size_t)r);
    c->in_len += (size_t)r;
    if (!c->upgraded && handshake(c) != 0)
        return -1;
    if (!c->upgraded)
        return 0;
    for (;;) {
        unsigned char *pl;
        size_t plen;
        int op, rc;
        long fl = ws_parse_frame(c->in + off, c->in_len - off, &op, &pl, &plen);

        if (fl < 0)
            return -1;
        if (fl == 0)
            break;
        rc = on_frame(c, op, pl, plen);
        if (rc == 1)
            return 1;
        if (rc < 0)
            return -1;
        off += (size_t)fl;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN};
        struct rconn *c;

        if (fd < 0)
            return;
        if ((size_t)fd >= max_fd) {
            size_t nmax = (size_t)fd * 2 + 64;

            conns = realloc(conns, nmax * sizeof(*conns));
            memset(conns + max_fd, 0, (nmax - max_fd) * sizeof(*conns));
            max_fd = nmax;
        }
        set_nodelay(fd);
        c = calloc(1, sizeof(*c));
        c->fd = fd;
        conns[fd] = c;
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

int raw_server_main(const char *listen_on)
{
    uint32_t ip;
    uint16_t port;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int one = 1, lfd;
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];

    if (parse_hostport(listen_on, &ip, &port) != 0)
        die("raw-server: --listen wants host:port, got '%s'", listen_on);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    sa.sin_addr.s_addr = ip;
    sa.sin_port = htons(port);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0)
        die("raw-server: cannot listen on %s: %s", listen_on, strerror(errno));
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    fprintf(stderr, "raw-server: listening on http://127.0.0.1:%u\n", ntohs(sa.sin_port));
    printf("%u\n", ntohs(sa.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 1000);

        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            struct rconn *c;
            int rc = 0;

            if (fd == lfd) {
                accept_all(lfd);
                continue;
            }
            c = (size_t)fd < max_fd ? conns[fd] : NULL;
            if (!c)
                continue;
            if (evs[i].events & EPOLLOUT)
                rc = rc_flush(c);
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = on_readable(c);
            if (rc < 0 && conns[fd])
                rc_close(c);
        }
    }
    return 0;
}
