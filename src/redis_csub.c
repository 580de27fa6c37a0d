/* redis_csub.c: see redis_csub.h. One non-blocking hiredis context (its parser and output
 * buffer), one uv_poll_t on its socket: writable until the output buffer is empty (the first
 * writable event also tells a connect finished), readable always. */
#include "redis_csub.h"

#include "rtgate/util.h"

#include <errno.h>
#include <hiredis/sds.h>
#include <string.h>
#include <sys/socket.h>

struct csub {
    uv_poll_t poll;
    redisContext *c;
    csub_reply_fn *on_reply;
    csub_gone_fn *on_gone;
    void *ud;
    unsigned connected : 1, closing : 1;
};

static void on_poll_closed(uv_handle_t *h)
{
    struct csub *s = h->data;

    redisFree(s->c);
    xfree(s);
}

void csub_close(struct csub *s)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->ud = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}

static void gone(struct csub *s, const char *why)
{
    csub_gone_fn *fn = s->on_gone;
    void *ud = s->ud;

    csub_close(s);
    if (ud)
        fn(ud, why);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void arm(struct csub *s)
{
    int ev = UV_READABLE;

    if (!s->connected || sdslen(s->c->obuf) > 0)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct csub *s = h->data;
    void *reply;

    if (s->closing)
        return;
    if (status < 0)
        return gone(s, uv_strerror(status));
    if (!s->connected && (events & UV_WRITABLE)) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(s->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)
            return gone(s, strerror(err ? err : errno));
        s->connected = 1;
        s->c->flags |= REDIS_CONNECTED;
    }
    if (events & UV_WRITABLE) {
        int done = 0;

        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            return gone(s, s->c->errstr);
    }
    if (events & UV_READABLE) {
        if (redisBufferRead(s->c) != REDIS_OK)
            return gone(s, s->c->errstr[0] ? s->c->errstr : "connection closed");
        for (;;) {
            if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK)
                return gone(s, "protocol error");
            if (!reply)
                break;
            s->on_reply(s->ud, reply);
            freeReplyObject(reply);
            if (s->closing)
                return; /* closed from inside the callback */
        }
    }
    arm(s);
}

struct csub *csub_open(uv_loop_t *loop, const char *host, int port, csub_reply_fn *on_reply,
                       csub_gone_fn *on_gone, void *ud)
{
    redisContext *c = redisConnectNonBlock(host, port);
    struct csub *s;

    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->on_reply = on_reply;
    s->on_gone = on_gone;
    s->ud = ud;
    uv_poll_init(loop, &s->poll, c->fd);
    s->poll.data = s;
    arm(s);
    return s;
}

int csub_send(struct csub *s, int argc, const char **argv, const size_t *lens)
{
    if (!s || s->closing || redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
        return -1;
    arm(s);
    return 0;
}
