/* http_listen.c: our own listening socket for listen.reuse_port. lws 4.1.6 never sets
 * SO_REUSEPORT (strace: ALLOW_LISTEN_SHARE only sets SO_REUSEADDR here), so with reuse_port
 * the vhost listens nowhere and we accept on a socket of our own, watched by the loop, handing
 * each connection to lws as if its listener had accepted it. Several processes can then bind
 * the same address and port, and the kernel spreads new connections over them. */
#define _GNU_SOURCE /* accept4 */
#include "http_private.h"
#include "rtgate/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKE 64 /* then let the loop serve the others */

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    struct http_server *srv = h->data;
    struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "default");

    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_warn("http: accept failed: %s", strerror(errno));
            return;
        }
        if (!vh || !lws_adopt_socket_vhost(vh, fd))
            close(fd); /* lws closes it on its own failures; NULL means it did not take it */
    }
}

/* A socket bound to listen.address:port (SO_REUSEPORT with @reuse), or -1 with @err set. */
static int bind_socket(const struct conf *cf, int reuse, int *port, char *err, size_t errlen)
{
    const char *addr =
        strcmp(cf->listen_address, "localhost") == 0 ? "127.0.0.1" : cf->listen_address;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, one = 1, v6 = strchr(addr, ':') != NULL;

    memset(&ss, 0, sizeof(ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cf->listen_port);
        sl = sizeof(*a);
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
            goto bad_addr;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cf->listen_port);
        sl = sizeof(*a);
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1)
            goto bad_addr;
    }
    /* SO_REUSEADDR as lws sets it, so the probe fails exactly when lws's bind would */
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        snprintf(err, errlen, "http: cannot listen on %s:%d%s: %s", cf->listen_address,
                 cf->listen_port, reuse ? " with SO_REUSEPORT" : "", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                         : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;

bad_addr:
    snprintf(err, errlen, "http: cannot listen on '%s'", cf->listen_address);
    return -1;
}

int http_listen_probe(const struct conf *cf, char *err, size_t errlen)
{
    int port, fd = bind_socket(cf, 0, &port, err, errlen);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int http_listen_open(struct http_server *srv, char *err, size_t errlen)
{
    int fd = bind_socket(srv->cf, 1, &srv->listen_port, err, errlen);

    if (fd < 0)
        return -1;
    if (listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "http: cannot listen on %s:%d: %s", srv->cf->listen_address,
                 srv->cf->listen_port, strerror(errno));
        close(fd);
        return -1;
    }
    srv->listen_fd = fd;
    uv_poll_init(srv->loop, &srv->listen_poll, fd);
    srv->listen_poll.data = srv;
    uv_poll_start(&srv->listen_poll, UV_READABLE, on_acceptable);
    return 0;
}

static void on_listen_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;

    close(srv->listen_fd);
    srv->listen_fd = -1;
}

void http_listen_close(struct http_server *srv)
{
    if (srv->listen_fd < 0 || uv_is_closing((uv_handle_t *)&srv->listen_poll))
        return;
    uv_poll_stop(&srv->listen_poll);
    uv_close((uv_handle_t *)&srv->listen_poll, on_listen_closed);
}
