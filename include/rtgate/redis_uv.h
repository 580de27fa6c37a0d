/* redis_uv.h: attaches a hiredis async context to a libuv loop.
 *
 * Ours, not hiredis's adapters/libuv.h: the stock adapter of 0.14.1 ignores a poll error, so a
 * connect to a Redis that is down is never reported and the context hangs for ever (FACTS.md).
 * This one hands every poll event, errors included, to hiredis, which then fails the connect
 * and calls the disconnect callback. */
#ifndef RTGATE_REDIS_UV_H
#define RTGATE_REDIS_UV_H

struct redisAsyncContext;
typedef struct uv_loop_s uv_loop_t;

/* Returns 0, or -1 if @ac already has an adapter. Attach before setting the connect callback:
 * redisAsyncSetConnectCallback arms a write event. The adapter frees itself when hiredis
 * cleans the context up. */
int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);

#endif
