/* redis_uv.c: the libuv event hooks for a hiredis async context (see redis_uv.h for why we do
 * not use the stock adapter). One uv_poll_t per context; freed from its close callback, never
 * from inside a hiredis callback. */
#include "rtgate/redis_uv.h"

#include "rtgate/util.h"

#include <hiredis/async.h>
#include <uv.h>

struct redis_uv {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
};

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct redis_uv *r = handle->data;
    redisAsyncContext *ac = r->ac;

    if (!ac)
        return;
    if (status < 0) {
        /* The stock adapter returns here and the context never hears of it. Let hiredis try
         * the operation it was waiting for: the syscall fails and hiredis reports it. */
        if (r->events & UV_WRITABLE)
            redisAsyncHandleWrite(ac);
        else
            redisAsyncHandleRead(ac);
        return;
    }
    /* r may be cleaned up by the first call (a disconnect), so re-read it */
    if (events & UV_READABLE)
        redisAsyncHandleRead(ac);
    if ((events & UV_WRITABLE) && r->ac)
        redisAsyncHandleWrite(ac);
}

static void update(struct redis_uv *r, int events)
{
    if (events == r->events)
        return;
    r->events = events;
    if (events)
        uv_poll_start(&r->poll, events, on_poll);
    else
        uv_poll_stop(&r->poll);
}

static void add_read(void *p)
{
    struct redis_uv *r = p;

    update(r, r->events | UV_READABLE);
}

static void del_read(void *p)
{
    struct redis_uv *r = p;

    update(r, r->events & ~UV_READABLE);
}

static void add_write(void *p)
{
    struct redis_uv *r = p;

    update(r, r->events | UV_WRITABLE);
}

static void del_write(void *p)
{
    struct redis_uv *r = p;

    update(r, r->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    xfree(h->data);
}

static void cleanup(void *p)
{
    struct redis_uv *r = p;

    r->ac = NULL;
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, on_closed);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct redis_uv *r;

    if (ac->ev.data)
        return -1;
    r = xcalloc(1, sizeof(*r));
    if (uv_poll_init(loop, &r->poll, ac->c.fd) != 0) {
        xfree(r);
        return -1;
    }
    r->ac = ac;
    r->poll.data = r;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = r;
    return 0;
}
