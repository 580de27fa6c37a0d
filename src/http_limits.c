/* http_limits.c: per-client-address limits, checked before a request costs anything: open
 * streams per address (SSE, WebSocket, held long-polls) and HTTP requests per second per
 * address (a token bucket). One small entry per address seen recently, in a hash table;
 * entries with nothing open and a full bucket are forgotten by the sweep.
 *
 * Behind an L4 balancer every client has the balancer's address: set these limits there, or
 * not at all (they default to off). */
#include "http_private.h"
#include "rtgate/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

struct ip_entry {
    struct ip_entry *next;
    unsigned char addr[16]; /* IPv6, or IPv4-mapped */
    size_t n_streams;
    uint64_t tokens;  /* requests allowed now, times 1000 */
    uint64_t last_ms; /* last refill */
};

#define IP_BUCKETS 1024

static uint32_t hash_addr(const unsigned char *a)
{
    uint32_t h = 2166136261u;

    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    return h & (IP_BUCKETS - 1);
}

static int peer_addr(struct lws *wsi, unsigned char out[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = lws_get_socket_fd(wsi);

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6) {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 0;
    }
    return -1;
}

struct ip_entry *limits_entry(struct http_server *srv, struct lws *wsi)
{
    unsigned char a[16];
    struct ip_entry *e;
    uint32_t h;

    if (!srv->cf->max_conns_per_ip && !srv->cf->requests_per_ip)
        return NULL;
    if (peer_addr(wsi, a) != 0)
        return NULL;
    if (!srv->ips)
        srv->ips = xcalloc(IP_BUCKETS, sizeof(*srv->ips));
    h = hash_addr(a);
    for (e = srv->ips[h]; e; e = e->next)
        if (memcmp(e->addr, a, 16) == 0)
            return e;
    e = xcalloc(1, sizeof(*e));
    memcpy(e->addr, a, 16);
    e->tokens = (uint64_t)srv->cf->requests_per_ip * 1000;
    e->last_ms = http_now_ms();
    e->next = srv->ips[h];
    srv->ips[h] = e;
    return e;
}

int limits_allow_request(struct http_server *srv, struct ip_entry *e)
{
    uint64_t now = http_now_ms(), rate = srv->cf->requests_per_ip, cap = rate * 1000;

    if (!e || !rate)
        return 1;
    /* refill: rate per second is rate per 1000 ms, tokens are kept in thousandths */
    e->tokens += (now - e->last_ms) * rate;
    if (e->tokens > cap)
        e->tokens = cap;
    e->last_ms = now;
    if (e->tokens < 1000)
        return 0;
    e->tokens -= 1000;
    return 1;
}

int limits_add_stream(struct http_server *srv, struct ip_entry *e)
{
    if (!e || !srv->cf->max_conns_per_ip)
        return 1;
    if (e->n_streams >= srv->cf->max_conns_per_ip)
        return 0;
    e->n_streams++;
    return 1;
}

void limits_del_stream(struct ip_entry *e)
{
    if (e && e->n_streams)
        e->n_streams--;
}

void limits_sweep(struct http_server *srv)
{
    uint64_t now = http_now_ms(), cap = (uint64_t)srv->cf->requests_per_ip * 1000;

    if (!srv->ips)
        return;
    for (size_t i = 0; i < IP_BUCKETS; i++) {
        struct ip_entry **pp = &srv->ips[i];

        while (*pp) {
            struct ip_entry *e = *pp;
            uint64_t full = e->tokens + (now - e->last_ms) * srv->cf->requests_per_ip;

            if (!e->n_streams && full >= cap) {
                *pp = e->next;
                xfree(e);
                continue;
            }
            pp = &e->next;
        }
    }
}

void limits_free(struct http_server *srv)
{
    if (!srv->ips)
        return;
    for (size_t i = 0; i < IP_BUCKETS; i++) {
        struct ip_entry *e = srv->ips[i], *next;

        for (; e; e = next) {
            next = e->next;
            xfree(e);
        }
    }
    xfree(srv->ips);
    srv->ips = NULL;
}
