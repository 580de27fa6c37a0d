/* redis_csub.h: a Redis connection for sharded Pub/Sub (SSUBSCRIBE), on hiredis's reply
 * parser and a libuv poll of our own. hiredis 0.14's async API cannot carry it: the first
 * "smessage" push trips an assertion unless the context is in (plain) subscribed mode, and then
 * it is dropped, because hiredis looks callbacks up by channels it saw SUBSCRIBEd (measured).
 * Here every reply, pushes included, goes to one callback in arrival order. */
#ifndef RTGATE_REDIS_CSUB_H
#define RTGATE_REDIS_CSUB_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

struct csub;

/* Every reply, in order (borrowed for the call). */
typedef void csub_reply_fn(void *ud, redisReply *r);
/* The connection failed or was closed by the peer; @s is then closing by itself: forget it.
 * Not called after csub_close(). */
typedef void csub_gone_fn(void *ud, const char *why);

/* Starts connecting (non-blocking). NULL if the socket cannot even be made. */
struct csub *csub_open(uv_loop_t *loop, const char *host, int port, csub_reply_fn *on_reply,
                       csub_gone_fn *on_gone, void *ud);
/* Queues a command; 0, or -1 when the connection is already going. */
int csub_send(struct csub *s, int argc, const char **argv, const size_t *lens);
/* No more callbacks; the socket and memory go once the loop has closed the poll handle. */
void csub_close(struct csub *s);

#endif
