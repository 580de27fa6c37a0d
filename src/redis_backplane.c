/* redis_backplane.c: the hub's link to other nodes through Redis.
 *
 * Channel "topic:<name>" carries each message to the nodes subscribed to it; the stream
 * "{topic:<name>}:history" keeps it for replay, with the epoch of that stream in
 * "{topic:<name>}:epoch" and the newest id trimmed from it in "{topic:<name>}:trimmed". A Lua
 * script does XADD + PUBLISH atomically, so the stream id is the message id on every node. Two
 * connections: a subscribed RESP2 connection cannot send other commands (hiredis drops it if you
 * try), so commands go on their own.
 *
 * Both connections are one unit: if either drops, both are closed and reconnected together
 * with capped, fully jittered exponential backoff. Once back, every topic with local
 * subscribers is subscribed again and the hub re-reads from each stream what it missed. */
#include "rtgate/redis_backplane.h"

#include "redis_csub.h"
#include "rtgate/backplane.h"
#include "rtgate/cluster_slot.h"
#include "rtgate/conf.h"
#include "rtgate/dlist.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/presence.h"
#include "rtgate/redis_uv.h"
#include "rtgate/redis_wire.h"
#include "rtgate/ring.h"
#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define ZERO_EPOCH     "0000000000000000"

/* KEYS: stream, epoch key, trim mark. ARGV: channel, maxlen, ttl, from, data, sig. Returns
 * {id, epoch}. A new (or lost and recreated) stream gets a new epoch, so old cursors are known
 * to be stale. Trimming is exact and recorded: before the oldest entries are cut, the newest
 * of them is written to the trim mark, so a reader knows exactly what is gone. (Redis 7.0's
 * XINFO max-deleted-entry-id stays 0-0 under MAXLEN trimming: measured, so not used.) The
 * trim mark always exists with the stream ("0-0": nothing cut yet): Redis Cluster answers a
 * script whose keys are partly missing in a migrating slot with TRYAGAIN, so keeping all three
 * keys together lets a publish or history read run during a migration (on the old master
 * while the keys are there, on the new one after ASK once they moved). */
static const char publish_lua[] =
    "local maxlen = tonumber(ARGV[2])\n"
    "local epoch = redis.call('GET', KEYS[2])\n"
    "if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  local n = redis.call('INCR', 'rtgate:epoch-seq')\n"
    "  epoch = string.format('%08x%08x', tonumber(t[1]) % 4294967296,\n"
    "                        (tonumber(t[2]) * 4096 + n) % 4294967296)\n"
    "  redis.call('SET', KEYS[2], epoch)\n"
    "  redis.call('SET', KEYS[3], '0-0')\n"
    "end\n"
    "redis.call('SET', KEYS[3], '0-0', 'NX')\n"
    "local len = redis.call('XLEN', KEYS[1])\n"
    "if len >= maxlen then\n"
    "  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen + 1)\n"
    "  redis.call('SET', KEYS[3], old[#old][1])\n"
    "  redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen - 1)\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[1], '*', 'f', ARGV[4], 'd', ARGV[5], 's', ARGV[6])\n"
    "for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end\n"
    "redis.call('PUBLISH', ARGV[1], epoch .. '\\n' .. id .. '\\n' .. ARGV[6] .. '\\n' .. ARGV[4] "
    "..\n"
    "           '\\n' .. ARGV[5])\n"
    "return {id, epoch}\n";

/* KEYS: stream, epoch key, trim mark. ARGV: after id ('' = none), count, cursor epoch.
 * Returns {epoch, last id, reset (0/1), more (0/1), id1, from1, data1, sig1, id2, ...}. Messages
 * after the cursor are gone exactly when the trim mark is newer than it, or the epoch
 * differs (the stream was lost, e.g. expired, and started again). */
static const char history_lua[] =
    "local function cmp(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  if am ~= bm then return am < bm and -1 or 1 end\n"
    "  if as ~= bs then return as < bs and -1 or 1 end\n"
    "  return 0\n"
    "end\n"
    "local after, count, cepoch = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n"
    "local epoch = redis.call('GET', KEYS[2])\n"
    "if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  local lost = (after ~= '' and cepoch ~= '" ZERO_EPOCH "' and after ~= '0-0') and 1 or 0\n"
    "  return {'" ZERO_EPOCH "', '0-0', lost, 0}\n"
    "end\n"
    "local trimmed = redis.call('GET', KEYS[3]) or '0-0'\n"
    "local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
    "local last = newest[1] and newest[1][1] or '0-0'\n"
    "local reset, start = 0, '-'\n"
    "if after ~= '' then\n"
    "  if cepoch ~= epoch and cepoch ~= '" ZERO_EPOCH "' then reset = 1\n"
    "  elseif cmp(trimmed, after) > 0 then reset = 1\n"
    "  else start = '(' .. after end\n"
    "end\n"
    "local out = {epoch, last, reset, 0}\n"
    "if count > 0 then\n"
    "  local e = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', count + 1)\n"
    "  for i, x in ipairs(e) do\n"
    "    if i > count then out[4] = 1 break end\n"
    "    out[#out + 1] = x[1]\n"
    "    out[#out + 1] = x[2][2]\n"
    "    out[#out + 1] = x[2][4]\n"
    "    out[#out + 1] = x[2][6] or ''\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Presence. Keys: "rtgate:node:<node id>" exists while that node lives (SET PX ttl, refreshed
 * every ttl/3); "rtgate:nodes" lists the nodes; "rtgate:node:<id>:users" the users a node
 * holds; "rtgate:presence:<user>" maps node id -> that node's connections of the user, plus
 * "_on" while the user was last announced online. A field counts only while its node's key
 * exists, so a node killed without clean-up stops counting when its key expires; the next
 * node to refresh reaps what it left (and announces those users offline). A user's total is
 * read over live fields only, and a flip of the total between 0 and >0 against "_on" is what
 * makes a join or leave event, once, whichever node sees it. (Keys other than KEYS[] are
 * touched: fine for a standalone Redis, not for a cluster.) */
#define PRESENCE_KEEP_S   86400 /* the per-user keys' own expiry, refreshed hourly */
#define PRESENCE_RESYNC_S 3600
#define PRESENCE_LUA_COMMON                                                                        \
    "local function live(h)\n"                                                                     \
    "  local t, f = 0, redis.call('HGETALL', h)\n"                                                 \
    "  for i = 1, #f, 2 do\n"                                                                      \
    "    if f[i] ~= '_on' then\n"                                                                  \
    "      if redis.call('EXISTS', 'rtgate:node:' .. f[i]) == 1 then t = t + tonumber(f[i + 1])\n" \
    "      else redis.call('HDEL', h, f[i]) end\n"                                                 \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  return t\n"                                                                                 \
    "end\n"                                                                                        \
    "local function flip(h, t)\n"                                                                  \
    "  local on = redis.call('HEXISTS', h, '_on') == 1\n"                                          \
    "  if (t > 0) == on then return 0 end\n"                                                       \
    "  if t > 0 then redis.call('HSET', h, '_on', '1') return 1 end\n"                             \
    "  redis.call('HDEL', h, '_on') return 2\n"                                                    \
    "end\n"

/* KEYS: user hash, node's user set. ARGV: node id, user, connections, keep. Returns 0, or
 * {1 (join) | 2 (leave), user}. */
static const char presence_set_lua[] =
    PRESENCE_LUA_COMMON "local n = tonumber(ARGV[3])\n"
                        "if n > 0 then\n"
                        "  redis.call('HSET', KEYS[1], ARGV[1], n)\n"
                        "  redis.call('SADD', KEYS[2], ARGV[2])\n"
                        "else\n"
                        "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
                        "  redis.call('SREM', KEYS[2], ARGV[2])\n"
                        "end\n"
                        "local t = live(KEYS[1])\n"
                        "local r = flip(KEYS[1], t)\n"
                        "if t > 0 then\n"
                        "  redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
                        "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
                        "end\n"
                        "if r == 0 then return 0 end\n"
                        "return {r, ARGV[2]}\n";

/* KEYS: user hashes. Returns their live totals. */
static const char presence_get_lua[] =
    PRESENCE_LUA_COMMON "local out = {}\n"
                        "for i, h in ipairs(KEYS) do out[i] = live(h) end\n"
                        "return out\n";

/* KEYS: node key, node list. ARGV: ttl ms, node id. Returns 1 when this node was not
 * registered (first time, Redis lost it, or it was reaped): its counts must be written again. */
static const char presence_beat_lua[] =
    "if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'XX') then return 0 end\n"
    "redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])\n"
    "redis.call('SADD', KEYS[2], ARGV[2])\n"
    "return 1\n";

/* KEYS: node list. Removes what dead nodes left; returns the users that went offline. */
static const char presence_reap_lua[] =
    PRESENCE_LUA_COMMON "local out = {}\n"
                        "for _, nid in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
                        "  if redis.call('EXISTS', 'rtgate:node:' .. nid) == 0 then\n"
                        "    local uk = 'rtgate:node:' .. nid .. ':users'\n"
                        "    for _, u in ipairs(redis.call('SMEMBERS', uk)) do\n"
                        "      local h = 'rtgate:presence:' .. u\n"
                        "      redis.call('HDEL', h, nid)\n"
                        "      if flip(h, live(h)) == 2 then out[#out + 1] = u end\n"
                        "    end\n"
                        "    redis.call('DEL', uk)\n"
                        "    redis.call('SREM', KEYS[1], nid)\n"
                        "  end\n"
                        "end\n"
                        "return out\n";

enum rb_state { RB_DOWN, RB_CONNECTING, RB_READY, RB_CLOSED };

struct pending_op {
    int subscribe; /* 1 SUBSCRIBE, 0 UNSUBSCRIBE */
    size_t len;
    char *topic;
};

struct rb_req { /* a history read in flight */
    struct shard *sh;
    hub_history_fn *fn; /* NULL once cancelled */
    void *ud;
    uint64_t sent_ns;
    char *cmd; /* redis-cluster: the command as sent, kept to follow a MOVED/ASK once */
    size_t cmd_len;
    unsigned redirected : 1; /* it was sent again on the node a MOVED/ASK named */
    size_t len;
    char topic[TOPIC_MAX_LEN + 1];
};

struct rb_pub { /* a publish in flight */
    struct shard *sh;
    hub_publish_fn *cb;
    void *ud;
    uint64_t sent_ns;
    char *cmd; /* redis-cluster: as in rb_req */
    size_t cmd_len;
    unsigned redirected : 1, first_hop : 1; /* first_hop: counted in rb->pub_n[slot] */
    unsigned slot;
};

/* One Redis server and its two connections; a topic lives on exactly one shard. */
struct shard {
    struct redis_backplane *rb;
    char *host, *username, *password;
    int port, db;
    char label[300]; /* "host:port/db": its name on the ring, in logs and metrics */
    redisAsyncContext *sub, *cmd;
    enum rb_state state;
    int sub_setup, cmd_setup; /* setup replies each connection still expects */
    unsigned sub_fresh : 1;   /* a new subscriber connection: subscribe everything again */
    unsigned was_ready : 1;   /* a later READY is a reconnect */
    unsigned backoff_ms;
    uv_timer_t retry, timeout, later;
    struct pending_op *ops;
    size_t n_ops, cap_ops;
    char publish_sha[48], history_sha[48];
    char pset_sha[48], pget_sha[48], pbeat_sha[48], preap_sha[48];
    size_t n_inflight;
    uint64_t n_published, n_refused, n_reconnects; /* per-shard metrics */
    /* backplane.sentinel: the primary's address comes from a Sentinel, asked again before
     * every (re)connect; a connection that finds a replica is dropped and asks again */
    struct csub *csub;       /* redis-cluster: the SSUBSCRIBE connection (instead of sub) */
    unsigned pending_unsubs; /* redis-cluster: SUNSUBSCRIBEs we sent, not yet confirmed */
    redisAsyncContext *sq;   /* SENTINEL get-master-addr-by-name in flight */
    size_t sq_next;          /* the Sentinel to ask next (round robin) */
    unsigned need_master : 1;
};

struct redis_backplane {
    struct backplane bp;
    struct hub *hub;
    uv_loop_t *loop;
    const struct conf *cf;
    struct shard *shards;
    size_t n_shards;
    struct ring *ring;                  /* topic -> shard; NULL with one shard */
    char node_id[17];                   /* presence: this process, random hex */
    uv_timer_t pres_tick;               /* presence: refresh, reap, hourly resync (every shard) */
    uint64_t pres_sync_ms;              /* when the counts were last all written */
    unsigned n_handles;                 /* timers not yet closed */
    int cluster;                        /* backplane.type "redis-cluster" */
    int presence_on;                    /* presence kept in Redis (not with a cluster, yet) */
    char *publish_script;               /* publish_lua, or its cluster form (SPUBLISH) */
    unsigned char slots[CLUSTER_SLOTS]; /* redis-cluster: shard index of each slot, 0xff none */
    /* redis-cluster: publishes of a slot sent to shard pub_at[slot] and not answered yet
     * (see "Publishes during a slot migration") */
    uint32_t pub_n[CLUSTER_SLOTS];
    unsigned char pub_at[CLUSTER_SLOTS];
    unsigned map_known : 1, map_refreshing : 1;
    redisAsyncContext *ssub; /* sentinel: subscribed to +switch-master */
    size_t ssub_next;
    uv_timer_t ssub_retry;
    uint64_t n_bad_sig, n_bad_sig_logged, bad_sig_logged_ms;
};

static struct redis_backplane *top(struct backplane *bp)
{
    return container_of(bp, struct redis_backplane, bp);
}

/* The shard of @topic: the same on every node given the same shards (ring.h); in a cluster
 * the master of the channel's slot (until the slot map is known, shard 0 holds the requests:
 * nothing is sent before the map comes). */
static struct shard *shard_of(struct redis_backplane *rb, const char *topic, size_t len)
{
    if (rb->cluster) {
        char chan[TOPIC_MAX_LEN + 8];
        int n = topic_format_channel(chan, sizeof(chan), topic, len);
        unsigned owner = n > 0 ? rb->slots[cluster_key_slot(chan, (size_t)n)] : 0xff;

        return owner < rb->n_shards ? &rb->shards[owner] : &rb->shards[0];
    }
    return rb->ring ? &rb->shards[ring_lookup(rb->ring, topic, len)] : &rb->shards[0];
}

/* A user's presence lives with its inbox, user:<id>. */
static struct shard *shard_of_user(struct redis_backplane *rb, const char *user, size_t len)
{
    char t[TOPIC_MAX_LEN + 1];
    int n = topic_format_user(t, sizeof(t), user, len);

    return shard_of(rb, t, n > 0 ? (size_t)n : 0);
}

static void connect_missing(struct shard *sh);
static void flush_ops(struct shard *sh);
static void presence_beat(struct shard *sh);
static void resync(struct shard *sh);
static void refresh_slots(struct redis_backplane *rb);

static void free_ctx(redisAsyncContext **acp)
{
    redisAsyncContext *ac = *acp;

    *acp = NULL;
    if (ac) {
        ac->data = NULL; /* its callbacks now know it is being dropped */
        redisAsyncFree(ac);
    }
}

static void on_retry(uv_timer_t *t)
{
    connect_missing(t->data);
}

/* The two connections fail and come back separately: a dropped subscriber connection does
 * not cut the command connection, whose publishes in flight still get their answers. */
static void drop(struct shard *sh, int sub, int cmd, const char *why)
{
    unsigned r = 0;

    if (sh->state == RB_CLOSED)
        return;
    /* one line per state change, not one per retry */
    if (sh->state == RB_READY || (!sh->was_ready && sh->backoff_ms == 0))
        log_warn("backplane: redis %s:%d unavailable (%s); retrying", sh->host, sh->port, why);
    sh->state = RB_DOWN;
    uv_timer_stop(&sh->timeout);
    if (sh->sq) {
        sh->sq_next++; /* it did not answer in time: ask another */
        free_ctx(&sh->sq);
    }
    if (sh->rb->cf->n_sentinels) {
        sub = cmd = 1; /* both go to whichever server Sentinel names next */
        sh->need_master = 1;
    }
    if (sub) {
        free_ctx(&sh->sub);
        csub_close(sh->csub);
        sh->csub = NULL;
        sh->sub_setup = -1;
    }
    if (cmd) {
        free_ctx(&sh->cmd);
        sh->cmd_setup = -1;
    }
    sh->backoff_ms = sh->backoff_ms ? sh->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (sh->backoff_ms > BACKOFF_MAX_MS)
        sh->backoff_ms = BACKOFF_MAX_MS;
    util_random(&r, sizeof(r));
    uv_timer_start(&sh->retry, on_retry, r % (sh->backoff_ms + 1), 0); /* full jitter */
}

static int is_bad(const redisAsyncContext *ac, int setup)
{
    return !ac || ac->err || setup < 0;
}

static void on_later(uv_timer_t *t)
{
    struct shard *sh = t->data;
    int bad_sub, bad_cmd;

    if (sh->state == RB_CLOSED)
        return;
    bad_sub = sh->state != RB_DOWN &&
              (sh->rb->cluster ? !sh->csub || sh->sub_setup < 0 : is_bad(sh->sub, sh->sub_setup));
    bad_cmd = sh->state != RB_DOWN && is_bad(sh->cmd, sh->cmd_setup);
    if (bad_sub || bad_cmd)
        drop(sh, bad_sub, bad_cmd, "connection lost or refused");
    else if (sh->state == RB_READY && sh->n_ops)
        flush_ops(sh);
}

/* From inside a hiredis callback we may not free its context: let the loop do it. */
static void soon(struct shard *sh)
{
    if (sh->state != RB_CLOSED)
        uv_timer_start(&sh->later, on_later, 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct shard *sh = t->data;

    if (sh->state == RB_CONNECTING)
        drop(sh, sh->sub_setup != 0, sh->cmd_setup != 0, "connect timed out");
}

static void forget(struct shard *sh, const redisAsyncContext *ac)
{
    /* hiredis frees the context after this callback */
    if (ac == sh->sub) {
        sh->sub = NULL;
        sh->sub_setup = -1;
    } else if (ac == sh->cmd) {
        sh->cmd = NULL;
        sh->cmd_setup = -1;
    }
    soon(sh);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (ac->data)
        forget(ac->data, ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    /* a failed connect is freed by hiredis after this, with no disconnect callback */
    if (ac->data && status != REDIS_OK)
        forget(ac->data, ac);
}

static void push_op(struct shard *sh, const char *topic, size_t len)
{
    if (sh->n_ops == sh->cap_ops) {
        sh->cap_ops = sh->cap_ops ? sh->cap_ops * 2 : 16;
        sh->ops = xrealloc(sh->ops, sh->cap_ops * sizeof(*sh->ops));
    }
    sh->ops[sh->n_ops++] = (struct pending_op){1, len, xstrndup(topic, len)};
}

static void resubscribe_one(void *ud, const char *topic, size_t len)
{
    struct shard *sh = ud;

    if (shard_of(sh->rb, topic, len) == sh) /* the hub lists every shard's topics */
        push_op(sh, topic, len);
}

static void become_ready(struct shard *sh)
{
    sh->state = RB_READY;
    sh->backoff_ms = 0;
    uv_timer_stop(&sh->timeout);
    log_notice("backplane: redis %s:%d ready%s", sh->host, sh->port,
               sh->was_ready ? " again: resubscribing and catching up" : "");
    if (sh->was_ready) {
        metrics_inc(M_BACKPLANE_RECONNECTS);
        sh->n_reconnects++;
    }
    sh->was_ready = 1;
    if (sh->sub_fresh) {
        /* A new subscriber connection has no subscriptions: every topic with local
         * subscribers, again (the hub re-reads what it missed once each is confirmed). What
         * was pending is superseded, unsubscribes included: there is nothing to undo. */
        sh->sub_fresh = 0;
        for (size_t i = 0; i < sh->n_ops; i++)
            xfree(sh->ops[i].topic);
        sh->n_ops = 0;
        hub_for_each_topic(sh->rb->hub, resubscribe_one, sh);
    }
    flush_ops(sh);
    if (sh->rb->cluster && !sh->rb->map_known)
        refresh_slots(sh->rb);
    /* register the node, then write every count: changes made while Redis was away were
     * not sent (a script runs after the one before it on this connection) */
    presence_beat(sh);
    resync(sh);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;
    int *left;

    if (!sh || sh->state == RB_CLOSED)
        return;
    left = ac == sh->sub ? &sh->sub_setup : &sh->cmd_setup;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            log_err("backplane: redis %s:%d refused setup: %s", sh->host, sh->port, r->str);
        *left = -1;
        soon(sh);
        return;
    }
    if (priv && r->type == REDIS_REPLY_STRING)
        snprintf(priv, sizeof(sh->publish_sha), "%s", r->str); /* a SCRIPT LOAD sha */
    if (*left > 0 && --*left == 0 && sh->sub_setup == 0 && sh->cmd_setup == 0)
        become_ready(sh);
}

/* Sentinel's answer may be stale (a failover under way): only a primary will do. */
static void on_role_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;

    if (sh && r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") != 0) {
        log_warn("backplane: redis %s:%d is a %s, not the primary: asking Sentinel again", sh->host,
                 sh->port, r->element[0]->str);
        sh->cmd_setup = -1;
        soon(sh);
        return;
    }
    on_setup_reply(ac, reply, NULL);
}

/* ---- Sentinel ---- */

static void forget_query(redisAsyncContext *ac, const char *why)
{
    struct shard *sh = ac->data;

    if (!sh)
        return;
    ac->data = NULL;
    sh->sq = NULL;
    sh->sq_next++;
    drop(sh, 0, 0, why); /* retries (and asks the next Sentinel) after the backoff */
}

static void on_sq_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        forget_query((redisAsyncContext *)ac, "sentinel unreachable"); /* hiredis frees it */
}

static void on_sq_disconnect(const redisAsyncContext *ac, int status)
{
    forget_query((redisAsyncContext *)ac, "sentinel connection lost");
}

static void on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;
    const struct conf *cf;

    if (!sh)
        return;
    cf = sh->rb->cf;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        atoi(r->element[1]->str) <= 0) {
        if (r && r->type == REDIS_REPLY_NIL)
            log_err("backplane: sentinel %s:%d does not know master '%s'",
                    cf->sentinel_hosts[sh->sq_next % cf->n_sentinels],
                    cf->sentinel_ports[sh->sq_next % cf->n_sentinels], cf->sentinel_master);
        redisAsyncDisconnect(ac); /* after this callback; on_sq_disconnect then retries */
        return;
    }
    if (strcmp(sh->host, r->element[0]->str) != 0 || sh->port != atoi(r->element[1]->str))
        log_notice("backplane: sentinel names %s:%s as the primary of '%s'", r->element[0]->str,
                   r->element[1]->str, cf->sentinel_master);
    xfree(sh->host);
    sh->host = xstrndup(r->element[0]->str, r->element[0]->len);
    sh->port = atoi(r->element[1]->str);
    snprintf(sh->label, sizeof(sh->label), "%s:%d/%d", sh->host, sh->port, sh->db);
    sh->need_master = 0;
    ac->data = NULL; /* done with it: no retry when it closes */
    sh->sq = NULL;
    redisAsyncDisconnect(ac);
    uv_timer_start(&sh->retry, on_retry, 0, 0); /* now connect to it */
}

static redisAsyncContext *open_plain(const char *host, int port, uv_loop_t *loop, void *data)
{
    redisAsyncContext *ac = redisAsyncConnect(host, port);

    if (!ac)
        return NULL;
    if (ac->err || redis_uv_attach(ac, loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    return ac;
}

static void ask_sentinel(struct shard *sh)
{
    const struct conf *cf = sh->rb->cf;
    size_t i = sh->sq_next % cf->n_sentinels;

    if (sh->sq)
        return;
    sh->state = RB_CONNECTING;
    sh->sq = open_plain(cf->sentinel_hosts[i], cf->sentinel_ports[i], sh->rb->loop, sh);
    if (!sh->sq) {
        sh->sq_next++;
        return drop(sh, 0, 0, "cannot create sentinel connection");
    }
    redisAsyncSetConnectCallback(sh->sq, on_sq_connect);
    redisAsyncSetDisconnectCallback(sh->sq, on_sq_disconnect);
    redisAsyncCommand(sh->sq, on_master_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                      cf->sentinel_master);
    uv_timer_start(&sh->timeout, on_timeout, cf->redis_connect_timeout_ms, 0);
}

static void ssub_open(struct redis_backplane *rb);

static void on_ssub_retry(uv_timer_t *t)
{
    ssub_open(t->data);
}

/* The +switch-master subscription is a hint only (every reconnect asks a Sentinel anyway):
 * when it is lost, try the next Sentinel in a second. */
static void on_ssub_gone(const redisAsyncContext *ac, int status)
{
    struct redis_backplane *rb = ac->data;

    if (!rb || ac != rb->ssub)
        return;
    rb->ssub = NULL;
    rb->ssub_next++;
    if (!uv_is_closing((uv_handle_t *)&rb->ssub_retry))
        uv_timer_start(&rb->ssub_retry, on_ssub_retry, 1000, 0);
}

static void on_ssub_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_ssub_gone(ac, status);
}

/* "<name> <old ip> <old port> <new ip> <new port>" on +switch-master: reconnect now rather
 * than when the old primary's connections time out. */
static void on_switch(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_backplane *rb = ac->data;
    redisReply *r = reply;
    const char *msg;
    size_t n;

    if (!rb || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    msg = r->element[2]->str;
    n = strlen(rb->cf->sentinel_master);
    if (strncmp(msg, rb->cf->sentinel_master, n) != 0 || msg[n] != ' ')
        return;
    log_notice("backplane: sentinel: +switch-master %s", msg);
    drop(&rb->shards[0], 1, 1, "the primary was switched");
}

static void ssub_open(struct redis_backplane *rb)
{
    const struct conf *cf = rb->cf;
    size_t i = rb->ssub_next % cf->n_sentinels;

    if (rb->ssub || uv_is_closing((uv_handle_t *)&rb->ssub_retry))
        return;
    rb->ssub = open_plain(cf->sentinel_hosts[i], cf->sentinel_ports[i], rb->loop, rb);
    if (!rb->ssub) {
        rb->ssub_next++;
        uv_timer_start(&rb->ssub_retry, on_ssub_retry, 1000, 0);
        return;
    }
    redisAsyncSetConnectCallback(rb->ssub, on_ssub_connect);
    redisAsyncSetDisconnectCallback(rb->ssub, on_ssub_gone);
    redisAsyncCommand(rb->ssub, on_switch, NULL, "SUBSCRIBE +switch-master");
}

static int send_auth(struct shard *sh, redisAsyncContext *ac)
{
    if (!sh->password)
        return 0;
    if (sh->username)
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", sh->username, sh->password);
    else
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", sh->password);
    return 1;
}

static redisAsyncContext *open_ctx(struct shard *sh)
{
    redisAsyncContext *ac = redisAsyncConnect(sh->host, sh->port);

    if (!ac)
        return NULL;
    if (ac->err || redis_uv_attach(ac, sh->rb->loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = sh;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv);
static struct csub *open_csub(struct shard *sh);

/* (Re)opens whichever connection is missing and sends its set-up: the subscriber gets AUTH
 * (or a PING, to learn it is connected); the command connection AUTH, SELECT, the scripts. */
static void ask_sentinel(struct shard *sh);

static void connect_missing(struct shard *sh)
{
    if (sh->state == RB_CLOSED)
        return;
    if (sh->need_master)
        return ask_sentinel(sh);
    sh->state = RB_CONNECTING;
    if (sh->rb->cluster && !sh->csub) {
        if (!(sh->csub = open_csub(sh)))
            return drop(sh, 1, 0, "cannot create connection");
    } else if (!sh->rb->cluster && !sh->sub) {
        if (!(sh->sub = open_ctx(sh)))
            return drop(sh, 1, 0, "cannot create connection");
        sh->sub_fresh = 1;
        sh->sub_setup = send_auth(sh, sh->sub);
        if (!sh->password) {
            redisAsyncCommand(sh->sub, on_setup_reply, NULL, "PING");
            sh->sub_setup++;
        }
    }
    if (!sh->cmd) {
        if (!(sh->cmd = open_ctx(sh)))
            return drop(sh, 0, 1, "cannot create connection");
        sh->cmd_setup = send_auth(sh, sh->cmd);
        if (sh->db) {
            redisAsyncCommand(sh->cmd, on_setup_reply, NULL, "SELECT %d", sh->db);
            sh->cmd_setup++;
        }
        if (sh->rb->cf->n_sentinels) {
            redisAsyncCommand(sh->cmd, on_role_reply, NULL, "ROLE");
            sh->cmd_setup++;
        }
        redisAsyncCommand(sh->cmd, on_setup_reply, sh->publish_sha, "SCRIPT LOAD %s",
                          sh->rb->publish_script);
        redisAsyncCommand(sh->cmd, on_setup_reply, sh->history_sha, "SCRIPT LOAD %s", history_lua);
        sh->cmd_setup += 2;
        if (sh->rb->presence_on) {
            redisAsyncCommand(sh->cmd, on_setup_reply, sh->pset_sha, "SCRIPT LOAD %s",
                              presence_set_lua);
            redisAsyncCommand(sh->cmd, on_setup_reply, sh->pget_sha, "SCRIPT LOAD %s",
                              presence_get_lua);
            redisAsyncCommand(sh->cmd, on_setup_reply, sh->pbeat_sha, "SCRIPT LOAD %s",
                              presence_beat_lua);
            redisAsyncCommand(sh->cmd, on_setup_reply, sh->preap_sha, "SCRIPT LOAD %s",
                              presence_reap_lua);
            sh->cmd_setup += 4;
        }
    }
    if (sh->sub_setup == 0 && sh->cmd_setup == 0)
        return become_ready(sh); /* nothing was missing after all */
    uv_timer_start(&sh->timeout, on_timeout, sh->rb->cf->redis_connect_timeout_ms, 0);
}

/* ---- subscriptions ---- */

static void add_op(struct shard *sh, int subscribe, const char *topic, size_t len)
{
    /* Within one loop turn the last word wins: a leave and a join of the same topic cancel.
     * NEEDSWORK: linear in the pending ops; fine for bursts of hundreds, not of 100,000. */
    for (size_t i = 0; i < sh->n_ops; i++) {
        struct pending_op *op = &sh->ops[i];

        if (op->len == len && memcmp(op->topic, topic, len) == 0) {
            if (op->subscribe == subscribe)
                return;
            xfree(op->topic);
            sh->ops[i] = sh->ops[--sh->n_ops];
            if (subscribe && sh->state == RB_READY)
                hub_on_backplane_subscribed(sh->rb->hub, topic, len, 0); /* never left Redis */
            return;
        }
    }
    push_op(sh, topic, len);
    sh->ops[sh->n_ops - 1].subscribe = subscribe;
    if (sh->state == RB_READY)
        uv_timer_start(&sh->later, on_later, 0, 0); /* batch: flush once this turn ends */
}

static void send_batch(struct shard *sh, int subscribe)
{
    size_t n = 0, k = 1;
    const char **argv;
    size_t *lens;
    char **chans;

    for (size_t i = 0; i < sh->n_ops; i++)
        n += sh->ops[i].subscribe == subscribe;
    if (!n)
        return;
    argv = xmalloc((n + 1) * sizeof(*argv));
    lens = xmalloc((n + 1) * sizeof(*lens));
    chans = xmalloc(n * sizeof(*chans));
    argv[0] = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
    lens[0] = strlen(argv[0]);
    for (size_t i = 0; i < sh->n_ops; i++) {
        struct pending_op *op = &sh->ops[i];

        if (op->subscribe != subscribe)
            continue;
        chans[k - 1] = xmalloc(op->len + 7);
        lens[k] = (size_t)topic_format_channel(chans[k - 1], op->len + 7, op->topic, op->len);
        argv[k] = chans[k - 1];
        k++;
    }
    /* UNSUBSCRIBE replies go to each channel's SUBSCRIBE callback (FACTS.md) */
    redisAsyncCommandArgv(sh->sub, subscribe ? on_sub_reply : NULL, sh, (int)k, argv, lens);
    for (size_t i = 0; i < n; i++)
        xfree(chans[i]);
    xfree(chans);
    xfree(lens);
    xfree(argv);
}

/* A cluster node takes SSUBSCRIBE for channels of its own slots only, and one slot per
 * command: one command per channel. */
static void send_cluster_ops(struct shard *sh)
{
    for (size_t i = 0; i < sh->n_ops; i++) {
        struct pending_op *op = &sh->ops[i];
        char chan[TOPIC_MAX_LEN + 8];
        int n = topic_format_channel(chan, sizeof(chan), op->topic, op->len);
        const char *argv[2] = {op->subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", chan};
        size_t lens[2] = {strlen(argv[0]), (size_t)n};

        if (n > 0 && csub_send(sh->csub, 2, argv, lens) == 0 && !op->subscribe)
            sh->pending_unsubs++;
    }
}

static void flush_ops(struct shard *sh)
{
    if (sh->state != RB_READY || (sh->rb->cluster ? !sh->csub || !sh->rb->map_known : !sh->sub))
        return;
    if (sh->rb->cluster) {
        send_cluster_ops(sh);
    } else {
        send_batch(sh, 1);
        send_batch(sh, 0);
    }
    for (size_t i = 0; i < sh->n_ops; i++)
        xfree(sh->ops[i].topic);
    sh->n_ops = 0;
}

static void rb_subscribe(struct backplane *bp, const char *topic, size_t len)
{
    add_op(shard_of(top(bp), topic, len), 1, topic, len);
}

static void rb_unsubscribe(struct backplane *bp, const char *topic, size_t len)
{
    add_op(shard_of(top(bp), topic, len), 0, topic, len);
}

/* With backplane.signing_key every message carries HMAC-SHA256(key, topic\nfrom\ndata) in
 * hex (redis_wire.c), so a process that can reach Redis but not the key cannot inject
 * messages to users. One HMAC per publish and one check per receiving node, never per
 * subscriber. The id is not covered (Redis assigns it); a replayed copy of a genuine message
 * is the residual risk. Drops are counted and logged once per interval, not per message. */
/* backplane.signing_key as configured now (SIGHUP may replace the config) */
static struct redis_wire_key key_of(const struct redis_backplane *rb)
{
    return (struct redis_wire_key){rb->cf->redis_signing_key, rb->cf->redis_signing_key_len};
}

static void count_forged(struct redis_backplane *rb, const char *topic, size_t tlen, size_t n)
{
    uint64_t now;

    if (!n)
        return;
    rb->n_bad_sig += n;
    now = util_now_ms();
    if (now >= rb->bad_sig_logged_ms + 10000) {
        log_warn("backplane: dropped %llu message(s) with a missing or wrong signature "
                 "(last on '%.*s')",
                 (unsigned long long)(rb->n_bad_sig - rb->n_bad_sig_logged), (int)tlen, topic);
        rb->n_bad_sig_logged = rb->n_bad_sig;
        rb->bad_sig_logged_ms = now;
    }
}

/* A message on @topic's channel: one msg for every local subscriber. */
static void deliver(struct shard *sh, const char *topic, size_t tlen, const redisReply *payload)
{
    struct redis_wire_key key = key_of(sh->rb);
    int forged;
    struct msg *m = redis_wire_message(&key, topic, tlen, payload->str, payload->len, &forged);

    if (!m) {
        if (forged)
            count_forged(sh->rb, topic, tlen, 1);
        else
            log_warn("backplane: ignored a malformed message on 'topic:%.*s'", (int)tlen, topic);
        return;
    }
    hub_ingest(sh->rb->hub, m);
    msg_unref(m);
}

/* The kind and topic of a Pub/Sub push ["<kind>", "topic:<name>", ...]; 0, or -1. */
static int push_of(const redisReply *r, const char **kind, const char **topic, size_t *tlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[1]->len < 7)
        return -1;
    *kind = r->element[0]->str;
    *topic = r->element[1]->str + 6; /* "topic:" */
    *tlen = r->element[1]->len - 6;
    return 0;
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;
    const char *kind, *topic;
    size_t tlen;

    if (!sh || push_of(r, &kind, &topic, &tlen) != 0)
        return;
    if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
        deliver(sh, topic, tlen, r->element[2]);
    else if (strcmp(kind, "subscribe") == 0)
        /* resync: after a reconnect the hub re-reads what it missed (a no-op for new topics) */
        hub_on_backplane_subscribed(sh->rb->hub, topic, tlen, 1);
}

/* ---- Redis Cluster: slot map, sharded Pub/Sub ---- */

static void refresh_slots(struct redis_backplane *rb);

static void on_csub_reply(void *ud, redisReply *r)
{
    struct shard *sh = ud;
    const char *kind, *topic;
    size_t tlen;

    if (sh->sub_setup > 0) { /* PING or AUTH */
        if (r->type == REDIS_REPLY_ERROR) {
            log_err("backplane: redis %s:%d refused setup: %s", sh->host, sh->port, r->str);
            sh->sub_setup = -1;
            soon(sh);
        } else if (--sh->sub_setup == 0 && sh->cmd_setup == 0) {
            become_ready(sh);
        }
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* an SSUBSCRIBE sent to a node that no longer owns the slot (MOVED): the map is
         * refreshed, and every topic whose owner changed moves there */
        log_notice("backplane: redis %s:%d: %s; refreshing the slot map", sh->host, sh->port,
                   r->str);
        refresh_slots(sh->rb);
        return;
    }
    if (push_of(r, &kind, &topic, &tlen) != 0)
        return;
    if (strcmp(kind, "smessage") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        deliver(sh, topic, tlen, r->element[2]);
    } else if (strcmp(kind, "ssubscribe") == 0) {
        hub_on_backplane_subscribed(sh->rb->hub, topic, tlen, 1);
    } else if (strcmp(kind, "sunsubscribe") == 0) {
        if (sh->pending_unsubs) {
            sh->pending_unsubs--; /* ours */
            return;
        }
        /* the server dropped us: the slot is migrating away */
        log_notice("backplane: redis %s:%d unsubscribed 'topic:%.*s' (slot moved); refreshing "
                   "the slot map",
                   sh->host, sh->port, (int)tlen, topic);
        refresh_slots(sh->rb);
    }
}

static void on_csub_gone(void *ud, const char *why)
{
    struct shard *sh = ud;

    sh->csub = NULL;
    sh->sub_setup = -1;
    soon(sh);
}

static struct csub *open_csub(struct shard *sh)
{
    struct csub *c = csub_open(sh->rb->loop, sh->host, sh->port, on_csub_reply, on_csub_gone, sh);
    const char *argv[3];
    size_t lens[3];
    int argc = 0;

    if (!c)
        return NULL;
    sh->sub_fresh = 1;
    sh->pending_unsubs = 0;
    if (sh->password) {
        argv[argc++] = "AUTH";
        if (sh->username)
            argv[argc++] = sh->username;
        argv[argc++] = sh->password;
    } else {
        argv[argc++] = "PING";
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    csub_send(c, argc, argv, lens);
    sh->sub_setup = 1;
    return c;
}

static struct shard *shard_at(struct redis_backplane *rb, const char *host, size_t hlen, int port)
{
    for (size_t i = 0; i < rb->n_shards; i++)
        if (rb->shards[i].port == port && strlen(rb->shards[i].host) == hlen &&
            memcmp(rb->shards[i].host, host, hlen) == 0)
            return &rb->shards[i];
    return NULL;
}

struct rehome {
    struct redis_backplane *rb;
    const unsigned char *old;
};

/* A topic whose channel's slot changed master: leave the old one, join the new (its
 * confirmation makes the hub re-read the stream, which moved with the slot). */
static void rehome_one(void *ud, const char *topic, size_t len)
{
    struct rehome *h = ud;
    struct redis_backplane *rb = h->rb;
    char chan[TOPIC_MAX_LEN + 8];
    int n = topic_format_channel(chan, sizeof(chan), topic, len);
    unsigned slot = n > 0 ? cluster_key_slot(chan, (size_t)n) : 0;

    if (n <= 0 || h->old[slot] == rb->slots[slot])
        return;
    if (h->old[slot] < rb->n_shards)
        add_op(&rb->shards[h->old[slot]], 0, topic, len);
    if (rb->slots[slot] < rb->n_shards)
        add_op(&rb->shards[rb->slots[slot]], 1, topic, len);
}

/* CLUSTER SLOTS: [[start, end, [ip, port, id], replicas...], ...]. */
static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    struct redis_backplane *rb;
    redisReply *r = reply;
    static unsigned char old[CLUSTER_SLOTS];
    int was_known;

    if (!sh)
        return;
    rb = sh->rb;
    rb->map_refreshing = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        log_warn("backplane: CLUSTER SLOTS failed on %s:%d: %s", sh->host, sh->port,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
        return;
    }
    memcpy(old, rb->slots, sizeof(old));
    memset(rb->slots, 0xff, sizeof(rb->slots));
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i], *m;
        struct shard *owner;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        owner = shard_at(rb, m->element[0]->str, m->element[0]->len, (int)m->element[1]->integer);
        if (!owner) {
            log_warn("backplane: master %s:%lld is not among backplane.seeds: its slots "
                     "%lld-%lld are refused",
                     m->element[0]->str, m->element[1]->integer, e->element[0]->integer,
                     e->element[1]->integer);
            continue;
        }
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            if (s >= 0 && s < CLUSTER_SLOTS)
                rb->slots[s] = (unsigned char)(owner - rb->shards);
    }
    was_known = rb->map_known;
    rb->map_known = 1;
    if (!was_known) {
        /* what waited on shard 0 goes to its owner now */
        struct shard *s0 = &rb->shards[0];
        size_t k = 0;

        for (size_t i = 0; i < s0->n_ops; i++) {
            struct pending_op op = s0->ops[i];
            struct shard *to = shard_of(rb, op.topic, op.len);

            if (to == s0) {
                s0->ops[k++] = op;
                continue;
            }
            add_op(to, op.subscribe, op.topic, op.len);
            xfree(op.topic);
        }
        s0->n_ops = k;
        log_notice("backplane: redis cluster slot map loaded (%zu ranges)", r->elements);
    } else {
        struct rehome h = {rb, old};

        hub_for_each_topic(rb->hub, rehome_one, &h);
    }
    for (size_t i = 0; i < rb->n_shards; i++)
        if (rb->shards[i].state == RB_READY)
            uv_timer_start(&rb->shards[i].later, on_later, 0, 0);
}

static void refresh_slots(struct redis_backplane *rb)
{
    if (!rb->cluster || rb->map_refreshing)
        return;
    for (size_t i = 0; i < rb->n_shards; i++) {
        struct shard *sh = &rb->shards[i];

        if (sh->state == RB_READY && sh->cmd) {
            rb->map_refreshing = 1;
            redisAsyncCommand(sh->cmd, on_slots, NULL, "CLUSTER SLOTS");
            return;
        }
    }
}

/* A MOVED or ASK answer to a publish or history read. MOVED: the slot's owner is known at
 * once (and the map reloaded); ASK: the slot is being migrated, the map stays. Returns the
 * shard the answer named when a request may be sent there now (it is one of
 * backplane.seeds, ready), else NULL; *@ask tells which redirection it was. */
static struct shard *note_redirect(struct shard *sh, const redisReply *r, int *ask)
{
    struct cluster_redirect d;
    struct shard *to;

    if (!sh->rb->cluster || !r || r->type != REDIS_REPLY_ERROR ||
        cluster_parse_redirect(r->str, r->len, &d) != 0)
        return NULL;
    to = shard_at(sh->rb, d.host, strlen(d.host), d.port);
    if (!d.ask && to)
        sh->rb->slots[d.slot] = (unsigned char)(to - sh->rb->shards);
    refresh_slots(sh->rb);
    *ask = d.ask;
    if (!to || to->state != RB_READY || !to->cmd) {
        log_warn("backplane: redis %s:%d redirected a request to %s:%d, %s", sh->host, sh->port,
                 d.host, d.port, to ? "not connected" : "not among backplane.seeds");
        return NULL;
    }
    return to;
}

/* Sends @cmd (formatted) again on @to, after ASKING for an ASK redirection: both go on one
 * connection, so ASKING applies to that command only. */
static int resend(struct shard *to, int ask, redisCallbackFn *fn, void *priv, const char *cmd,
                  size_t len)
{
    if (ask && redisAsyncCommand(to->cmd, NULL, NULL, "ASKING") != REDIS_OK)
        return -1;
    if (redisAsyncFormattedCommand(to->cmd, fn, priv, cmd, len) != REDIS_OK)
        return -1;
    to->n_inflight++;
    return 0;
}

/* ---- publish and history ---- */

static int stream_keys(const char *topic, size_t len, char *stream, char *epoch, char *trim,
                       char *chan)
{
    snprintf(stream, TOPIC_MAX_LEN + 32, "{topic:%.*s}:history", (int)len, topic);
    snprintf(epoch, TOPIC_MAX_LEN + 32, "{topic:%.*s}:epoch", (int)len, topic);
    snprintf(trim, TOPIC_MAX_LEN + 32, "{topic:%.*s}:trimmed", (int)len, topic);
    return chan ? topic_format_channel(chan, TOPIC_MAX_LEN + 8, topic, len) : 0;
}

static void check_noscript(struct shard *sh, const redisReply *r)
{
    /* the script cache was flushed (SCRIPT FLUSH, a Redis without persistence restarted
     * under us): this request fails, the reload makes the next one work */
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && sh->cmd) {
        log_warn("backplane: redis lost our scripts, reloading them");
        redisAsyncCommand(sh->cmd, NULL, NULL, "SCRIPT LOAD %s", sh->rb->publish_script);
        redisAsyncCommand(sh->cmd, NULL, NULL, "SCRIPT LOAD %s", history_lua);
        if (sh->rb->presence_on) {
            redisAsyncCommand(sh->cmd, NULL, NULL, "SCRIPT LOAD %s", presence_set_lua);
            redisAsyncCommand(sh->cmd, NULL, NULL, "SCRIPT LOAD %s", presence_get_lua);
            redisAsyncCommand(sh->cmd, NULL, NULL, "SCRIPT LOAD %s", presence_beat_lua);
            redisAsyncCommand(sh->cmd, NULL, NULL, "SCRIPT LOAD %s", presence_reap_lua);
        }
    }
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rb_pub *p = priv;
    struct shard *sh = p->sh;
    redisReply *r = reply;
    struct msg_id id;

    sh->n_inflight--;
    if (p->first_hop) {
        sh->rb->pub_n[p->slot]--; /* answered by the shard it was first sent to */
        p->first_hop = 0;
    }
    if (r)
        metrics_redis_done(MET_REDIS_PUBLISH, p->sent_ns); /* a reply, not a dropped link */
    if (r && r->type == REDIS_REPLY_ERROR && p->cmd && !p->redirected) {
        int ask = 0;
        struct shard *to = note_redirect(sh, r, &ask);

        /* once: a second redirection, or a node we cannot reach, is a 503 */
        if (to && resend(to, ask, on_published, p, p->cmd, p->cmd_len) == 0) {
            p->sh = to;
            p->redirected = 1;
            return;
        }
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        msg_id_parse(r->element[0]->str, r->element[0]->len, &id) == 0) {
        sh->n_published++;
        p->cb(p->ud, 0, &id);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR) {
            int ask;

            check_noscript(sh, r);
            if (p->redirected || !p->cmd)
                note_redirect(sh, r, &ask); /* a second one: this publish fails (503) */
            log_warn("backplane: publish refused by redis: %s", r->str);
        }
        sh->n_refused++;
        p->cb(p->ud, -1, NULL);
    }
    free(p->cmd); /* redisFormatCommandArgv's, plain malloc */
    xfree(p);
}

static void rb_publish(struct backplane *bp, const char *topic, size_t len, const char *from,
                       size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                       void *ud)
{
    struct redis_backplane *rb = top(bp);
    struct shard *sh;
    char stream[TOPIC_MAX_LEN + 32], epoch[TOPIC_MAX_LEN + 32], trim[TOPIC_MAX_LEN + 32];
    char chan[TOPIC_MAX_LEN + 8], maxlen[24], ttl[24], sig[65] = "";
    const char *argv[12];
    size_t lens[12];
    struct rb_pub *p;
    unsigned slot = 0;
    int n = stream_keys(topic, len, stream, epoch, trim, chan);

    sh = shard_of(rb, topic, len);
    if (rb->cluster && n > 0) {
        /* Publishes during a slot migration. A topic's publishes go out on one connection in
         * the order they were made and the node answers them in that order, so while the
         * slot is MIGRATING (ASK; the map does not change) their retries reach the importing
         * node in order too. After a MOVED the map names the new master, but publishes made
         * before still wait for their MOVED on the old one: a new publish sent straight to
         * the new master would overtake their retries (its message would get the smaller
         * id). So while any of the slot's publishes is unanswered on the shard it was sent
         * to, the next goes there as well (and follows the redirection, one hop more); the
         * new master is used once that shard has answered them all, and every retry is then
         * already written ahead (under a steady overlap of the slot's publishes the extra
         * hop lasts until the first gap). Thus a topic's publishes keep the order they were
         * made in, through ASK and MOVED. A redirection that cannot be followed (a second one, a
         * master not among backplane.seeds or not connected) fails that publish (503): the
         * later ones still keep their order. */
        slot = cluster_key_slot(chan, (size_t)n);
        if (rb->pub_n[slot] && rb->pub_at[slot] < rb->n_shards)
            sh = &rb->shards[rb->pub_at[slot]];
    }
    /* refused, never accepted and dropped: not connected, or too much already in flight */
    if (sh->state != RB_READY || !sh->cmd || sh->n_inflight >= rb->cf->redis_max_pending) {
        sh->n_refused++;
        cb(ud, -1, NULL);
        return;
    }
    snprintf(maxlen, sizeof(maxlen), "%zu", sh->rb->cf->history_size);
    snprintf(ttl, sizeof(ttl), "%u", sh->rb->cf->redis_history_ttl_s);
    argv[0] = "EVALSHA", argv[1] = sh->publish_sha, argv[2] = "3", argv[3] = stream,
    argv[4] = epoch, argv[5] = trim, argv[6] = chan, argv[7] = maxlen, argv[8] = ttl,
    argv[9] = from, argv[10] = data, argv[11] = sig;
    if (sh->rb->cf->redis_signing_key) {
        struct redis_wire_key key = key_of(sh->rb);

        redis_wire_sign(&key, topic, len, from, from_len, data, data_len, sig);
    }
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    lens[9] = from_len;
    lens[10] = data_len;
    lens[11] = strlen(sig);
    p = xcalloc(1, sizeof(*p));
    p->sh = sh;
    p->cb = cb;
    p->ud = ud;
    p->sent_ns = metrics_mono_ns();
    if (rb->cluster && n > 0) {
        /* formatted once, as redisAsyncCommandArgv would, but kept for a retry */
        int clen = redisFormatCommandArgv(&p->cmd, 12, argv, lens);

        if (clen < 0 || redisAsyncFormattedCommand(sh->cmd, on_published, p, p->cmd,
                                                   (size_t)clen) != REDIS_OK) {
            free(p->cmd);
            xfree(p);
            cb(ud, -1, NULL);
            return;
        }
        p->cmd_len = (size_t)clen;
        p->slot = slot;
        p->first_hop = 1;
        rb->pub_n[slot]++;
        rb->pub_at[slot] = (unsigned char)(sh - rb->shards);
        sh->n_inflight++;
        return;
    }
    sh->n_inflight++;
    if (redisAsyncCommandArgv(sh->cmd, on_published, p, 12, argv, lens) != REDIS_OK) {
        sh->n_inflight--;
        xfree(p);
        cb(ud, -1, NULL);
    }
}

static void on_ephemeral_sent(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rb_pub *p = priv;
    struct shard *sh = p->sh;
    redisReply *r = reply;

    sh->n_inflight--;
    if (r)
        metrics_redis_done(MET_REDIS_PUBLISH, p->sent_ns);
    if (r && r->type == REDIS_REPLY_INTEGER) {
        p->cb(p->ud, r->integer > 0 ? 0 : HUB_OFFLINE, NULL);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR) {
            int ask;

            note_redirect(sh, r, &ask); /* not retried: it is not stored, a 503 says so */
            log_warn("backplane: ephemeral publish refused by redis: %s", r->str);
        }
        p->cb(p->ud, -1, NULL);
    }
    xfree(p);
}

/* A plain PUBLISH, no XADD: nothing is stored, so no history read can return it. PUBLISH
 * answers how many subscribers (nodes) got it; a node subscribes topic:<name> exactly while it
 * has a local subscriber of <name>, so 0 means nobody anywhere listens: the user is offline. */
static void rb_send_ephemeral(struct backplane *bp, const char *topic, size_t len, const char *from,
                              size_t from_len, const char *data, size_t data_len,
                              hub_publish_fn *cb, void *ud)
{
    struct redis_backplane *rb = top(bp);
    struct shard *sh = shard_of(rb, topic, len);
    char chan[TOPIC_MAX_LEN + 8], head[MSG_EPOCH_LEN + 8], sig[65] = "";
    size_t hlen, slen, total;
    const char *argv[3];
    size_t lens[3];
    struct rb_pub *p;
    char *payload;

    if (sh->state != RB_READY || !sh->cmd || sh->n_inflight >= rb->cf->redis_max_pending) {
        cb(ud, -1, NULL);
        return;
    }
    topic_format_channel(chan, sizeof(chan), topic, len);
    hlen =
        (size_t)snprintf(head, sizeof(head), "%016llx\n0-0\n", (unsigned long long)util_now_ms());
    if (rb->cf->redis_signing_key) {
        struct redis_wire_key key = key_of(rb);

        redis_wire_sign(&key, topic, len, from, from_len, data, data_len, sig);
    }
    slen = strlen(sig);
    total = hlen + slen + 1 + from_len + 1 + data_len;
    payload = xmalloc(total);
    memcpy(payload, head, hlen);
    memcpy(payload + hlen, sig, slen);
    payload[hlen + slen] = '\n';
    memcpy(payload + hlen + slen + 1, from, from_len);
    payload[hlen + slen + 1 + from_len] = '\n';
    memcpy(payload + hlen + slen + 2 + from_len, data, data_len);
    /* a cluster node counts the subscribers of its own shard channels: the slot's master */
    argv[0] = rb->cluster ? "SPUBLISH" : "PUBLISH", argv[1] = chan, argv[2] = payload;
    lens[0] = strlen(argv[0]), lens[1] = strlen(chan), lens[2] = total;
    p = xcalloc(1, sizeof(*p));
    p->sh = sh;
    p->cb = cb;
    p->ud = ud;
    p->sent_ns = metrics_mono_ns();
    sh->n_inflight++;
    if (redisAsyncCommandArgv(sh->cmd, on_ephemeral_sent, p, 3, argv, lens) != REDIS_OK) {
        sh->n_inflight--;
        xfree(p);
        cb(ud, -1, NULL);
    }
    xfree(payload);
}

static void fail_history(hub_history_fn *fn, void *ud)
{
    struct hub_history res;

    memset(&res, 0, sizeof(res));
    res.status = -1;
    memcpy(res.epoch, ZERO_EPOCH, sizeof(res.epoch));
    fn(ud, &res);
}

static void on_history(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rb_req *q = priv;
    struct shard *sh = q->sh;
    redisReply *r = reply;
    struct hub_history res;
    struct redis_wire_key key;
    size_t forged;

    sh->n_inflight--;
    if (r)
        metrics_redis_done(MET_REDIS_HISTORY, q->sent_ns);
    if (!q->fn) {
        free(q->cmd);
        xfree(q); /* cancelled */
        return;
    }
    if (r && r->type == REDIS_REPLY_ERROR && q->cmd && !q->redirected) {
        int ask = 0;
        struct shard *to = note_redirect(sh, r, &ask);

        /* the stream is on the node named (MOVED), or being moved there (ASK): read it there,
         * once; the request (and rb_cancel's handle) stays the same */
        if (to && resend(to, ask, on_history, q, q->cmd, q->cmd_len) == 0) {
            q->sh = to;
            q->redirected = 1;
            return;
        }
    }
    key = key_of(sh->rb);
    if (redis_wire_history(&key, q->topic, q->len, r, &res, &forged) != 0) {
        int ask;

        check_noscript(sh, r);
        if (q->redirected || !q->cmd)
            note_redirect(sh, r, &ask);
        if (r && r->type == REDIS_REPLY_ERROR)
            log_warn("backplane: history read refused by redis: %s", r->str);
        else if (r)
            log_warn("backplane: ignored a malformed history reply for '%s'", q->topic);
        fail_history(q->fn, q->ud);
        free(q->cmd);
        xfree(q);
        return;
    }
    count_forged(sh->rb, q->topic, q->len, forged);
    q->fn(q->ud, &res);
    redis_wire_history_release(&res);
    free(q->cmd);
    xfree(q);
}

static void *rb_history(struct backplane *bp, const char *topic, size_t len,
                        const struct cursor_pos *from, size_t max, hub_history_fn *fn, void *ud)
{
    struct shard *sh = shard_of(top(bp), topic, len);
    char stream[TOPIC_MAX_LEN + 32], epoch[TOPIC_MAX_LEN + 32], trim[TOPIC_MAX_LEN + 32];
    char after[MSG_ID_STR_MAX], count[24], cepoch[MSG_EPOCH_LEN + 1];
    size_t cap = sh->rb->cf->history_size + 1; /* a page; the hub reads on when there is more */
    const char *argv[9];
    size_t lens[9];
    struct rb_req *q;

    if (sh->state != RB_READY || !sh->cmd || len > TOPIC_MAX_LEN) {
        fail_history(fn, ud);
        return NULL;
    }
    stream_keys(topic, len, stream, epoch, trim, NULL);
    after[0] = '\0';
    memcpy(cepoch, ZERO_EPOCH, sizeof(cepoch));
    if (from) {
        msg_id_format(from->id, after);
        memcpy(cepoch, from->epoch, MSG_EPOCH_LEN);
    }
    snprintf(count, sizeof(count), "%zu", max < cap ? max : cap);
    argv[0] = "EVALSHA", argv[1] = sh->history_sha, argv[2] = "3", argv[3] = stream,
    argv[4] = epoch, argv[5] = trim, argv[6] = after, argv[7] = count, argv[8] = cepoch;
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    q = xcalloc(1, sizeof(*q));
    q->sh = sh;
    q->fn = fn;
    q->ud = ud;
    q->len = len;
    q->sent_ns = metrics_mono_ns();
    memcpy(q->topic, topic, len);
    if (sh->rb->cluster) {
        /* formatted once and kept, to follow a MOVED/ASK */
        int clen = redisFormatCommandArgv(&q->cmd, 9, argv, lens);

        if (clen < 0 ||
            redisAsyncFormattedCommand(sh->cmd, on_history, q, q->cmd, (size_t)clen) != REDIS_OK) {
            free(q->cmd);
            xfree(q);
            fail_history(fn, ud);
            return NULL;
        }
        q->cmd_len = (size_t)clen;
        sh->n_inflight++;
        return q;
    }
    sh->n_inflight++;
    if (redisAsyncCommandArgv(sh->cmd, on_history, q, 9, argv, lens) != REDIS_OK) {
        sh->n_inflight--;
        xfree(q);
        fail_history(fn, ud);
        return NULL;
    }
    return q;
}

static void rb_cancel(struct backplane *bp, void *req)
{
    struct rb_req *q = req;

    if (q)
        q->fn = NULL; /* freed when its reply (or the disconnect) arrives */
}

/* ---- presence ---- */

/* 1 if @r is an error reply to a presence script (logged; the script reloaded if Redis lost
 * it), so the caller has nothing more to do. */
static int presence_refused(struct shard *sh, const redisReply *r, const char *what)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    check_noscript(sh, r);
    log_warn("backplane: presence %s refused by redis: %s", what, r->str);
    return 1;
}

static void on_presence_set(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;

    if (!sh || !r || presence_refused(sh, r, "update"))
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING)
        presence_changed(sh->rb->bp.presence, r->element[1]->str, r->element[1]->len,
                         r->element[0]->integer == 1);
}

static void send_presence(struct shard *sh, const char *user, size_t len, unsigned conns)
{
    if (sh->state != RB_READY || !sh->cmd || !sh->rb->presence_on)
        return; /* written again, all of it, once Redis is back (presence_beat) */
    redisAsyncCommand(sh->cmd, on_presence_set, NULL,
                      "EVALSHA %s 2 rtgate:presence:%b rtgate:node:%s:users %s %b %u %u",
                      sh->pset_sha, user, len, sh->rb->node_id, sh->rb->node_id, user, len, conns,
                      (unsigned)PRESENCE_KEEP_S);
}

static void resync_one(void *ud, const char *user, size_t len, unsigned conns)
{
    struct shard *sh = ud;

    if (shard_of_user(sh->rb, user, len) == sh)
        send_presence(sh, user, len, conns);
}

/* Writes every count this node holds for the users placed on @sh. */
static void resync(struct shard *sh)
{
    if (sh->rb->bp.presence)
        presence_for_each(sh->rb->bp.presence, resync_one, sh);
}

static void on_beat(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;

    if (!sh || !r || presence_refused(sh, r, "refresh"))
        return;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        resync(sh); /* Redis did not know this node (any more) */
}

static void on_reap(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;

    if (!sh || !r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            presence_changed(sh->rb->bp.presence, r->element[i]->str, r->element[i]->len, 0);
}

static void presence_beat(struct shard *sh)
{
    uint64_t ttl_ms = (uint64_t)sh->rb->cf->presence_ttl_s * 1000;

    if (sh->state != RB_READY || !sh->cmd || !sh->rb->presence_on)
        return;
    redisAsyncCommand(sh->cmd, on_beat, NULL, "EVALSHA %s 2 rtgate:node:%s rtgate:nodes %llu %s",
                      sh->pbeat_sha, sh->rb->node_id, (unsigned long long)ttl_ms, sh->rb->node_id);
    redisAsyncCommand(sh->cmd, on_reap, NULL, "EVALSHA %s 1 rtgate:nodes", sh->preap_sha);
}

/* Every shard keeps its own liveness key of this node, and reaps its own dead nodes. */
static void on_pres_tick(uv_timer_t *t)
{
    struct redis_backplane *rb = t->data;
    int all = util_now_ms() >= rb->pres_sync_ms + PRESENCE_RESYNC_S * 1000ULL;

    if (all)
        rb->pres_sync_ms = util_now_ms(); /* per-user keys expire after PRESENCE_KEEP_S */
    for (size_t i = 0; i < rb->n_shards; i++) {
        presence_beat(&rb->shards[i]);
        if (all)
            resync(&rb->shards[i]);
    }
}

static void rb_presence_set(struct backplane *bp, const char *user, size_t len, unsigned conns)
{
    struct redis_backplane *rb = top(bp);

    send_presence(shard_of_user(rb, user, len), user, len, conns);
}

/* A lookup over several shards: one read per shard that holds some of the users, answered
 * once all are back (any failure fails the whole lookup). */
struct rb_pres {
    backplane_presence_fn *fn; /* NULL once cancelled */
    void *ud;
    size_t n, parts_left;
    int failed;
    unsigned conns[PRESENCE_MAX_USERS];
};

struct rb_pres_part {
    struct rb_pres *q;
    struct shard *sh;
    size_t n;
    unsigned char idx[PRESENCE_MAX_USERS]; /* where each answer goes in q->conns */
};

static void pres_part_done(struct rb_pres *q)
{
    if (--q->parts_left)
        return;
    if (q->fn)
        q->fn(q->ud, q->failed ? -1 : 0, q->failed ? NULL : q->conns);
    xfree(q);
}

static void on_presence_get(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rb_pres_part *part = priv;
    struct rb_pres *q = part->q;
    redisReply *r = reply;

    part->sh->n_inflight--;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != part->n) {
        if (r && r->type == REDIS_REPLY_ERROR) {
            check_noscript(part->sh, r);
            log_warn("backplane: presence read refused by redis: %s", r->str);
        }
        q->failed = 1;
    } else {
        for (size_t i = 0; i < part->n; i++)
            q->conns[part->idx[i]] =
                r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer > 0
                    ? (unsigned)r->element[i]->integer
                    : 0;
    }
    xfree(part);
    pres_part_done(q);
}

static int send_part(struct rb_pres_part *part, const char *const *users, const size_t *lens)
{
    struct shard *sh = part->sh;
    const char *argv[3 + PRESENCE_MAX_USERS];
    size_t alens[3 + PRESENCE_MAX_USERS];
    char keys[PRESENCE_MAX_USERS][TOPIC_ID_MAX + 17], nkeys[16];

    snprintf(nkeys, sizeof(nkeys), "%zu", part->n);
    argv[0] = "EVALSHA", argv[1] = sh->pget_sha, argv[2] = nkeys;
    for (int i = 0; i < 3; i++)
        alens[i] = strlen(argv[i]);
    for (size_t i = 0; i < part->n; i++) {
        size_t u = part->idx[i];
        int k = snprintf(keys[i], sizeof(keys[i]), "rtgate:presence:%.*s", (int)lens[u], users[u]);

        argv[3 + i] = keys[i];
        alens[3 + i] = (size_t)k;
    }
    sh->n_inflight++;
    if (redisAsyncCommandArgv(sh->cmd, on_presence_get, part, (int)(3 + part->n), argv, alens) !=
        REDIS_OK) {
        sh->n_inflight--;
        return -1;
    }
    return 0;
}

static void *rb_presence_get(struct backplane *bp, const char *const *users, const size_t *lens,
                             size_t n, backplane_presence_fn *fn, void *ud)
{
    struct redis_backplane *rb = top(bp);
    struct rb_pres_part *parts[CONF_MAX_SHARDS] = {0};
    unsigned char where[PRESENCE_MAX_USERS];
    struct rb_pres *q;

    if (n == 0 || n > PRESENCE_MAX_USERS)
        goto refuse;
    for (size_t i = 0; i < n; i++) {
        struct shard *sh = shard_of_user(rb, users[i], lens[i]);

        if (sh->state != RB_READY || !sh->cmd || sh->n_inflight >= rb->cf->redis_max_pending)
            goto refuse; /* nothing sent yet: refuse the whole lookup at once */
        where[i] = (unsigned char)(sh - rb->shards);
    }
    q = xcalloc(1, sizeof(*q));
    q->fn = fn;
    q->ud = ud;
    q->n = n;
    for (size_t i = 0; i < n; i++) {
        struct rb_pres_part **pp = &parts[where[i]];

        if (!*pp) {
            *pp = xcalloc(1, sizeof(**pp));
            (*pp)->q = q;
            (*pp)->sh = &rb->shards[where[i]];
            q->parts_left++;
        }
        (*pp)->idx[(*pp)->n++] = (unsigned char)i;
    }
    q->parts_left++; /* held while sending, so a failure below cannot free q under us */
    for (size_t s = 0; s < rb->n_shards; s++) {
        if (parts[s] && send_part(parts[s], users, lens) != 0) {
            xfree(parts[s]);
            q->failed = 1;
            q->parts_left--;
        }
    }
    if (q->parts_left == 1 && q->failed) {
        xfree(q);
        goto refuse;
    }
    pres_part_done(q); /* drops the hold; the replies answer */
    return q;

refuse:
    fn(ud, -1, NULL);
    return NULL;
}

static void rb_presence_cancel(struct backplane *bp, void *req)
{
    struct rb_pres *q = req;

    if (q)
        q->fn = NULL; /* freed when its last reply (or the disconnect) arrives */
}

static int rb_is_ready(struct backplane *bp)
{
    struct redis_backplane *rb = top(bp);

    /* up while any shard is: the others' topics flow (the down shard's publishes get 503) */
    if (rb->cluster && !rb->map_known)
        return 0;
    for (size_t i = 0; i < rb->n_shards; i++)
        if (rb->shards[i].state == RB_READY)
            return 1;
    return 0;
}

static size_t rb_shards(struct backplane *bp, size_t *up)
{
    struct redis_backplane *rb = top(bp);

    *up = 0;
    for (size_t i = 0; i < rb->n_shards; i++)
        *up += rb->shards[i].state == RB_READY;
    return rb->n_shards;
}

static void rb_metrics(struct backplane *bp, struct metrics_buf *b)
{
    struct redis_backplane *rb = top(bp);
    static const char *const names[] = {
        "rtgate_backplane_shard_up", "rtgate_backplane_shard_publishes_total",
        "rtgate_backplane_shard_reconnects_total", "rtgate_backplane_shard_pending"};
    static const char *const help[] = {
        "1 while the Redis shard accepts commands",
        "Publishes to the shard, by result (refused: not connected, too many pending, or an error)",
        "Times the shard became ready again after a loss", "Commands in flight to the shard"};
    static const char *const types[] = {"gauge", "counter", "counter", "gauge"};

    for (int k = 0; k < 4; k++) {
        metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", names[k], help[k], names[k], types[k]);
        for (size_t i = 0; i < rb->n_shards; i++) {
            const struct shard *sh = &rb->shards[i];

            if (k == 0)
                metrics_printf(b, "%s{shard=\"%s\"} %d\n", names[k], sh->label,
                               sh->state == RB_READY);
            else if (k == 1)
                metrics_printf(b,
                               "%s{shard=\"%s\",result=\"ok\"} "
                               "%llu\n%s{shard=\"%s\",result=\"refused\"} %llu\n",
                               names[k], sh->label, (unsigned long long)sh->n_published, names[k],
                               sh->label, (unsigned long long)sh->n_refused);
            else if (k == 2)
                metrics_printf(b, "%s{shard=\"%s\"} %llu\n", names[k], sh->label,
                               (unsigned long long)sh->n_reconnects);
            else
                metrics_printf(b, "%s{shard=\"%s\"} %zu\n", names[k], sh->label, sh->n_inflight);
        }
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct redis_backplane *rb = h->data;

    rb->n_handles--;
}

static void on_shard_timer_closed(uv_handle_t *h)
{
    struct shard *sh = h->data;

    sh->rb->n_handles--;
}

static void rb_close(struct backplane *bp)
{
    struct redis_backplane *rb = top(bp);

    if (uv_is_closing((uv_handle_t *)&rb->pres_tick))
        return;
    uv_close((uv_handle_t *)&rb->pres_tick, on_timer_closed);
    uv_close((uv_handle_t *)&rb->ssub_retry, on_timer_closed);
    free_ctx(&rb->ssub);
    for (size_t i = 0; i < rb->n_shards; i++) {
        struct shard *sh = &rb->shards[i];

        sh->state = RB_CLOSED;
        uv_close((uv_handle_t *)&sh->retry, on_shard_timer_closed);
        uv_close((uv_handle_t *)&sh->timeout, on_shard_timer_closed);
        uv_close((uv_handle_t *)&sh->later, on_shard_timer_closed);
        /* pending replies are answered (NULL) from inside: their owners were detached */
        free_ctx(&sh->sq);
        csub_close(sh->csub);
        sh->csub = NULL;
        free_ctx(&sh->sub);
        free_ctx(&sh->cmd);
    }
}

static void rb_destroy(struct backplane *bp)
{
    struct redis_backplane *rb = top(bp);

    rb_close(bp);
    for (size_t i = 0; i < rb->n_shards; i++) {
        struct shard *sh = &rb->shards[i];

        for (size_t k = 0; k < sh->n_ops; k++)
            xfree(sh->ops[k].topic);
        xfree(sh->ops);
        xfree(sh->host);
        xfree(sh->username);
        if (sh->password)
            explicit_bzero(sh->password, strlen(sh->password));
        xfree(sh->password);
    }
    if (rb->n_handles)
        log_warn("backplane: freed with %u timers still closing", rb->n_handles);
    ring_free(rb->ring);
    xfree(rb->publish_script);
    xfree(rb->shards);
    xfree(rb);
}

static const struct backplane_ops redis_ops = {
    .name = "redis",
    .subscribe = rb_subscribe,
    .unsubscribe = rb_unsubscribe,
    .publish = rb_publish,
    .send_ephemeral = rb_send_ephemeral,
    .history = rb_history,
    .cancel = rb_cancel,
    .is_ready = rb_is_ready,
    .close = rb_close,
    .destroy = rb_destroy,
    .presence_set = rb_presence_set,
    .presence_get = rb_presence_get,
    .presence_cancel = rb_presence_cancel,
    .shards = rb_shards,
    .metrics = rb_metrics,
};

/* In a cluster the script may only touch keys of its own slot, and must publish on the
 * sharded channel: the epoch sequence moves next to the epoch key ("{topic:<name>}:epoch:seq",
 * same hash tag) and PUBLISH becomes SPUBLISH. New memory. */
static char *cluster_script(const char *lua, int cluster)
{
    static const char *const from[] = {"redis.call('INCR', 'rtgate:epoch-seq')",
                                       "redis.call('PUBLISH',"};
    static const char *const to[] = {"redis.call('INCR', KEYS[2] .. ':seq')",
                                     "redis.call('SPUBLISH',"};
    size_t len = strlen(lua);
    char *out = xmalloc(len + 64);

    memcpy(out, lua, len + 1);
    for (int k = 0; cluster && k < 2; k++) {
        char *at = strstr(out, from[k]);
        size_t fl = strlen(from[k]), tl = strlen(to[k]);

        if (!at)
            continue;
        memmove(at + tl, at + fl, strlen(at + fl) + 1);
        memcpy(at, to[k], tl);
    }
    return out;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

static void shard_init(struct redis_backplane *rb, struct shard *sh, const char *host, int port,
                       int db, const char *username, const char *password)
{
    sh->rb = rb;
    sh->host = dup_or_null(host);
    sh->port = port;
    sh->db = db;
    sh->username = dup_or_null(username);
    sh->password = dup_or_null(password);
    snprintf(sh->label, sizeof(sh->label), "%s:%d/%d", host, port, db);
    uv_timer_init(rb->loop, &sh->retry);
    uv_timer_init(rb->loop, &sh->timeout);
    uv_timer_init(rb->loop, &sh->later);
    sh->retry.data = sh->timeout.data = sh->later.data = sh;
    rb->n_handles += 3;
}

struct backplane *redis_backplane_new(uv_loop_t *loop, const struct conf *cf, struct hub *h,
                                      char *err, size_t errlen)
{
    struct redis_backplane *rb = xcalloc(1, sizeof(*rb));
    unsigned char raw[8] = {0};

    rb->bp.ops = &redis_ops;
    rb->hub = h;
    rb->loop = loop;
    rb->cf = cf;
    rb->cluster = strcmp(cf->backplane_type, "redis-cluster") == 0;
    rb->presence_on = cf->presence_enabled && !rb->cluster;
    rb->publish_script = cluster_script(publish_lua, rb->cluster);
    memset(rb->slots, 0xff, sizeof(rb->slots));
    rb->n_shards = cf->n_redis_shards ? cf->n_redis_shards : 1;
    rb->shards = xcalloc(rb->n_shards, sizeof(*rb->shards));
    if (!cf->n_redis_shards) {
        shard_init(rb, &rb->shards[0], cf->redis_host, cf->redis_port, cf->redis_db,
                   cf->redis_username, cf->redis_password);
    } else {
        const char *names[CONF_MAX_SHARDS];

        for (size_t i = 0; i < rb->n_shards; i++) {
            const struct conf_redis_addr *a = &cf->redis_shards[i];

            shard_init(rb, &rb->shards[i], a->host, a->port, a->db, a->username, a->password);
            names[i] = rb->shards[i].label;
        }
        if (rb->n_shards > 1 && !rb->cluster)
            rb->ring = ring_new(names, rb->n_shards, RING_VNODES);
    }
    util_random(raw, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(rb->node_id + 2 * i, 3, "%02x", raw[i]);
    uv_timer_init(loop, &rb->pres_tick);
    uv_timer_init(loop, &rb->ssub_retry);
    rb->pres_tick.data = rb->ssub_retry.data = rb;
    rb->n_handles += 2;
    rb->pres_sync_ms = util_now_ms();
    if (rb->presence_on) {
        uint64_t every = (uint64_t)cf->presence_ttl_s * 1000 / 3;

        uv_timer_start(&rb->pres_tick, on_pres_tick, every, every);
    }
    if (cf->n_sentinels) {
        rb->shards[0].need_master = 1; /* its address comes from Sentinel */
        ssub_open(rb);
    }
    for (size_t i = 0; i < rb->n_shards; i++)
        connect_missing(&rb->shards[i]);
    return &rb->bp;
}
