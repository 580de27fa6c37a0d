/* redis_backplane.h: the Redis Pub/Sub + Streams backplane (backplane.type "redis"). */
#ifndef RTGATE_REDIS_BACKPLANE_H
#define RTGATE_REDIS_BACKPLANE_H

#include <stddef.h>

struct backplane;
struct conf;
struct hub;
typedef struct uv_loop_s uv_loop_t;

/* Starts connecting (it does not wait: until Redis answers, is_ready() is 0, publishes are
 * refused and subscriptions wait). Borrows @loop, @cf and @h. Returns NULL with @err set only
 * for a configuration it cannot use. */
struct backplane *redis_backplane_new(uv_loop_t *loop, const struct conf *cf, struct hub *h,
                                      char *err, size_t errlen);

#endif
