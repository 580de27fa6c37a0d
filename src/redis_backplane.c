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

#include "rtgate/backplane.h"
#include "rtgate/conf.h"
#include "rtgate/dlist.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/redis_uv.h"
#include "rtgate/redis_wire.h"
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
 * XINFO max-deleted-entry-id stays 0-0 under MAXLEN trimming: measured, so not used.) */
static const char publish_lua[] =
    "local maxlen = tonumber(ARGV[2])\n"
    "local epoch = redis.call('GET', KEYS[2])\n"
    "if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  local n = redis.call('INCR', 'rtgate:epoch-seq')\n"
    "  epoch = string.format('%08x%08x', tonumber(t[1]) % 4294967296,\n"
    "                        (tonumber(t[2]) * 4096 + n) % 4294967296)\n"
    "  redis.call('SET', KEYS[2], epoch)\n"
    "  redis.call('DEL', KEYS[3])\n"
    "end\n"
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

enum rb_state { RB_DOWN, RB_CONNECTING, RB_READY, RB_CLOSED };

struct pending_op {
    int subscribe; /* 1 SUBSCRIBE, 0 UNSUBSCRIBE */
    size_t len;
    char *topic;
};

struct rb_req { /* a history read in flight */
    struct redis_backplane *rb;
    hub_history_fn *fn; /* NULL once cancelled */
    void *ud;
    uint64_t sent_ns;
    size_t len;
    char topic[TOPIC_MAX_LEN + 1];
};

struct rb_pub { /* a publish in flight */
    struct redis_backplane *rb;
    hub_publish_fn *cb;
    void *ud;
    uint64_t sent_ns;
};

struct redis_backplane {
    struct backplane bp;
    struct hub *hub;
    uv_loop_t *loop;
    const struct conf *cf;
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
    size_t n_inflight;
    unsigned n_handles; /* timers not yet closed */
    uint64_t n_bad_sig, n_bad_sig_logged, bad_sig_logged_ms;
};

static void connect_missing(struct redis_backplane *rb);
static void flush_ops(struct redis_backplane *rb);

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
static void drop(struct redis_backplane *rb, int sub, int cmd, const char *why)
{
    unsigned r = 0;

    if (rb->state == RB_CLOSED)
        return;
    /* one line per state change, not one per retry */
    if (rb->state == RB_READY || (!rb->was_ready && rb->backoff_ms == 0))
        log_warn("backplane: redis %s:%d unavailable (%s); retrying", rb->cf->redis_host,
                 rb->cf->redis_port, why);
    rb->state = RB_DOWN;
    uv_timer_stop(&rb->timeout);
    if (sub) {
        free_ctx(&rb->sub);
        rb->sub_setup = -1;
    }
    if (cmd) {
        free_ctx(&rb->cmd);
        rb->cmd_setup = -1;
    }
    rb->backoff_ms = rb->backoff_ms ? rb->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (rb->backoff_ms > BACKOFF_MAX_MS)
        rb->backoff_ms = BACKOFF_MAX_MS;
    util_random(&r, sizeof(r));
    uv_timer_start(&rb->retry, on_retry, r % (rb->backoff_ms + 1), 0); /* full jitter */
}

static int is_bad(const redisAsyncContext *ac, int setup)
{
    return !ac || ac->err || setup < 0;
}

static void on_later(uv_timer_t *t)
{
    struct redis_backplane *rb = t->data;
    int bad_sub, bad_cmd;

    if (rb->state == RB_CLOSED)
        return;
    bad_sub = rb->state != RB_DOWN && is_bad(rb->sub, rb->sub_setup);
    bad_cmd = rb->state != RB_DOWN && is_bad(rb->cmd, rb->cmd_setup);
    if (bad_sub || bad_cmd)
        drop(rb, bad_sub, bad_cmd, "connection lost or refused");
    else if (rb->state == RB_READY && rb->n_ops)
        flush_ops(rb);
}

/* From inside a hiredis callback we may not free its context: let the loop do it. */
static void soon(struct redis_backplane *rb)
{
    if (rb->state != RB_CLOSED)
        uv_timer_start(&rb->later, on_later, 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct redis_backplane *rb = t->data;

    if (rb->state == RB_CONNECTING)
        drop(rb, rb->sub_setup != 0, rb->cmd_setup != 0, "connect timed out");
}

static void forget(struct redis_backplane *rb, const redisAsyncContext *ac)
{
    /* hiredis frees the context after this callback */
    if (ac == rb->sub) {
        rb->sub = NULL;
        rb->sub_setup = -1;
    } else if (ac == rb->cmd) {
        rb->cmd = NULL;
        rb->cmd_setup = -1;
    }
    soon(rb);
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

static void resubscribe_one(void *ud, const char *topic, size_t len)
{
    struct redis_backplane *rb = ud;

    if (rb->n_ops == rb->cap_ops) {
        rb->cap_ops = rb->cap_ops ? rb->cap_ops * 2 : 16;
        rb->ops = xrealloc(rb->ops, rb->cap_ops * sizeof(*rb->ops));
    }
    rb->ops[rb->n_ops++] = (struct pending_op){1, len, xstrndup(topic, len)};
}

static void become_ready(struct redis_backplane *rb)
{
    rb->state = RB_READY;
    rb->backoff_ms = 0;
    uv_timer_stop(&rb->timeout);
    log_notice("backplane: redis %s:%d ready%s", rb->cf->redis_host, rb->cf->redis_port,
               rb->was_ready ? " again: resubscribing and catching up" : "");
    if (rb->was_ready)
        metrics_inc(M_BACKPLANE_RECONNECTS);
    rb->was_ready = 1;
    if (rb->sub_fresh) {
        /* A new subscriber connection has no subscriptions: every topic with local
         * subscribers, again (the hub re-reads what it missed once each is confirmed). What
         * was pending is superseded, unsubscribes included: there is nothing to undo. */
        rb->sub_fresh = 0;
        for (size_t i = 0; i < rb->n_ops; i++)
            xfree(rb->ops[i].topic);
        rb->n_ops = 0;
        hub_for_each_topic(rb->hub, resubscribe_one, rb);
    }
    flush_ops(rb);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_backplane *rb = ac->data;
    redisReply *r = reply;
    int *left;

    if (!rb || rb->state == RB_CLOSED)
        return;
    left = ac == rb->sub ? &rb->sub_setup : &rb->cmd_setup;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            log_err("backplane: redis %s:%d refused setup: %s", rb->cf->redis_host,
                    rb->cf->redis_port, r->str);
        *left = -1;
        soon(rb);
        return;
    }
    if (priv && r->type == REDIS_REPLY_STRING)
        snprintf(priv, sizeof(rb->publish_sha), "%s", r->str); /* a SCRIPT LOAD sha */
    if (*left > 0 && --*left == 0 && rb->sub_setup == 0 && rb->cmd_setup == 0)
        become_ready(rb);
}

static int send_auth(struct redis_backplane *rb, redisAsyncContext *ac)
{
    const struct conf *cf = rb->cf;

    if (!cf->redis_password)
        return 0;
    if (cf->redis_username)
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", cf->redis_username,
                          cf->redis_password);
    else
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", cf->redis_password);
    return 1;
}

static redisAsyncContext *open_ctx(struct redis_backplane *rb)
{
    redisAsyncContext *ac = redisAsyncConnect(rb->cf->redis_host, rb->cf->redis_port);

    if (!ac)
        return NULL;
    if (ac->err || redis_uv_attach(ac, rb->loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = rb;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv);

/* (Re)opens whichever connection is missing and sends its set-up: the subscriber gets AUTH
 * (or a PING, to learn it is connected); the command connection AUTH, SELECT, the scripts. */
static void connect_missing(struct redis_backplane *rb)
{
    if (rb->state == RB_CLOSED)
        return;
    rb->state = RB_CONNECTING;
    if (!rb->sub) {
        if (!(rb->sub = open_ctx(rb)))
            return drop(rb, 1, 0, "cannot create connection");
        rb->sub_fresh = 1;
        rb->sub_setup = send_auth(rb, rb->sub);
        if (!rb->cf->redis_password) {
            redisAsyncCommand(rb->sub, on_setup_reply, NULL, "PING");
            rb->sub_setup++;
        }
    }
    if (!rb->cmd) {
        if (!(rb->cmd = open_ctx(rb)))
            return drop(rb, 0, 1, "cannot create connection");
        rb->cmd_setup = send_auth(rb, rb->cmd);
        if (rb->cf->redis_db) {
            redisAsyncCommand(rb->cmd, on_setup_reply, NULL, "SELECT %d", rb->cf->redis_db);
            rb->cmd_setup++;
        }
        redisAsyncCommand(rb->cmd, on_setup_reply, rb->publish_sha, "SCRIPT LOAD %s", publish_lua);
        redisAsyncCommand(rb->cmd, on_setup_reply, rb->history_sha, "SCRIPT LOAD %s", history_lua);
        rb->cmd_setup += 2;
    }
    if (rb->sub_setup == 0 && rb->cmd_setup == 0)
        return become_ready(rb); /* nothing was missing after all */
    uv_timer_start(&rb->timeout, on_timeout, rb->cf->redis_connect_timeout_ms, 0);
}

/* ---- subscriptions ---- */

static void add_op(struct redis_backplane *rb, int subscribe, const char *topic, size_t len)
{
    /* Within one loop turn the last word wins: a leave and a join of the same topic cancel.
     * NEEDSWORK: linear in the pending ops; fine for bursts of hundreds, not of 100,000. */
    for (size_t i = 0; i < rb->n_ops; i++) {
        struct pending_op *op = &rb->ops[i];

        if (op->len == len && memcmp(op->topic, topic, len) == 0) {
            if (op->subscribe == subscribe)
                return;
            xfree(op->topic);
            rb->ops[i] = rb->ops[--rb->n_ops];
            if (subscribe && rb->state == RB_READY)
                hub_on_backplane_subscribed(rb->hub, topic, len, 0); /* never left Redis */
            return;
        }
    }
    resubscribe_one(rb, topic, len);
    rb->ops[rb->n_ops - 1].subscribe = subscribe;
    if (rb->state == RB_READY)
        uv_timer_start(&rb->later, on_later, 0, 0); /* batch: flush once this turn ends */
}

static void send_batch(struct redis_backplane *rb, int subscribe)
{
    size_t n = 0, k = 1;
    const char **argv;
    size_t *lens;
    char **chans;

    for (size_t i = 0; i < rb->n_ops; i++)
        n += rb->ops[i].subscribe == subscribe;
    if (!n)
        return;
    argv = xmalloc((n + 1) * sizeof(*argv));
    lens = xmalloc((n + 1) * sizeof(*lens));
    chans = xmalloc(n * sizeof(*chans));
    argv[0] = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
    lens[0] = strlen(argv[0]);
    for (size_t i = 0; i < rb->n_ops; i++) {
        struct pending_op *op = &rb->ops[i];

        if (op->subscribe != subscribe)
            continue;
        chans[k - 1] = xmalloc(op->len + 7);
        lens[k] = (size_t)topic_format_channel(chans[k - 1], op->len + 7, op->topic, op->len);
        argv[k] = chans[k - 1];
        k++;
    }
    /* UNSUBSCRIBE replies go to each channel's SUBSCRIBE callback (FACTS.md) */
    redisAsyncCommandArgv(rb->sub, subscribe ? on_sub_reply : NULL, rb, (int)k, argv, lens);
    for (size_t i = 0; i < n; i++)
        xfree(chans[i]);
    xfree(chans);
    xfree(lens);
    xfree(argv);
}

static void flush_ops(struct redis_backplane *rb)
{
    if (rb->state != RB_READY || !rb->sub)
        return;
    send_batch(rb, 1);
    send_batch(rb, 0);
    for (size_t i = 0; i < rb->n_ops; i++)
        xfree(rb->ops[i].topic);
    rb->n_ops = 0;
}

static void rb_subscribe(struct backplane *bp, const char *topic, size_t len)
{
    add_op(container_of(bp, struct redis_backplane, bp), 1, topic, len);
}

static void rb_unsubscribe(struct backplane *bp, const char *topic, size_t len)
{
    add_op(container_of(bp, struct redis_backplane, bp), 0, topic, len);
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

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_backplane *rb = ac->data;
    redisReply *r = reply, *kind, *chan;
    const char *topic;
    size_t tlen;

    if (!rb || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    kind = r->element[0];
    chan = r->element[1];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING || chan->len < 7)
        return;
    topic = chan->str + 6; /* "topic:" */
    tlen = chan->len - 6;
    if (strcmp(kind->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        struct redis_wire_key key = key_of(rb);
        int forged;
        struct msg *m =
            redis_wire_message(&key, topic, tlen, r->element[2]->str, r->element[2]->len, &forged);

        if (!m) {
            if (forged)
                count_forged(rb, topic, tlen, 1);
            else
                log_warn("backplane: ignored a malformed message on '%s'", chan->str);
            return;
        }
        hub_ingest(rb->hub, m);
        msg_unref(m);
    } else if (strcmp(kind->str, "subscribe") == 0) {
        /* resync: after a reconnect the hub re-reads what it missed (a no-op for new topics) */
        hub_on_backplane_subscribed(rb->hub, topic, tlen, 1);
    }
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

static void check_noscript(struct redis_backplane *rb, const redisReply *r)
{
    /* the script cache was flushed (SCRIPT FLUSH, a Redis without persistence restarted
     * under us): this request fails, the reload makes the next one work */
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && rb->cmd) {
        log_warn("backplane: redis lost our scripts, reloading them");
        redisAsyncCommand(rb->cmd, NULL, NULL, "SCRIPT LOAD %s", publish_lua);
        redisAsyncCommand(rb->cmd, NULL, NULL, "SCRIPT LOAD %s", history_lua);
    }
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rb_pub *p = priv;
    struct redis_backplane *rb = p->rb;
    redisReply *r = reply;
    struct msg_id id;

    rb->n_inflight--;
    if (r)
        metrics_redis_done(MET_REDIS_PUBLISH, p->sent_ns); /* a reply, not a dropped link */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        msg_id_parse(r->element[0]->str, r->element[0]->len, &id) == 0) {
        p->cb(p->ud, 0, &id);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR) {
            check_noscript(rb, r);
            log_warn("backplane: publish refused by redis: %s", r->str);
        }
        p->cb(p->ud, -1, NULL);
    }
    xfree(p);
}

static void rb_publish(struct backplane *bp, const char *topic, size_t len, const char *from,
                       size_t from_len, const char *data, size_t data_len, hub_publish_fn *cb,
                       void *ud)
{
    struct redis_backplane *rb = container_of(bp, struct redis_backplane, bp);
    char stream[TOPIC_MAX_LEN + 32], epoch[TOPIC_MAX_LEN + 32], trim[TOPIC_MAX_LEN + 32];
    char chan[TOPIC_MAX_LEN + 8], maxlen[24], ttl[24], sig[65] = "";
    const char *argv[12];
    size_t lens[12];
    struct rb_pub *p;

    /* refused, never accepted and dropped: not connected, or too much already in flight */
    if (rb->state != RB_READY || !rb->cmd || rb->n_inflight >= rb->cf->redis_max_pending) {
        cb(ud, -1, NULL);
        return;
    }
    stream_keys(topic, len, stream, epoch, trim, chan);
    snprintf(maxlen, sizeof(maxlen), "%zu", rb->cf->history_size);
    snprintf(ttl, sizeof(ttl), "%u", rb->cf->redis_history_ttl_s);
    argv[0] = "EVALSHA", argv[1] = rb->publish_sha, argv[2] = "3", argv[3] = stream,
    argv[4] = epoch, argv[5] = trim, argv[6] = chan, argv[7] = maxlen, argv[8] = ttl,
    argv[9] = from, argv[10] = data, argv[11] = sig;
    if (rb->cf->redis_signing_key) {
        struct redis_wire_key key = key_of(rb);

        redis_wire_sign(&key, topic, len, from, from_len, data, data_len, sig);
    }
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    lens[9] = from_len;
    lens[10] = data_len;
    lens[11] = strlen(sig);
    p = xcalloc(1, sizeof(*p));
    p->rb = rb;
    p->cb = cb;
    p->ud = ud;
    p->sent_ns = metrics_mono_ns();
    rb->n_inflight++;
    if (redisAsyncCommandArgv(rb->cmd, on_published, p, 12, argv, lens) != REDIS_OK) {
        rb->n_inflight--;
        xfree(p);
        cb(ud, -1, NULL);
    }
}

static void on_ephemeral_sent(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rb_pub *p = priv;
    struct redis_backplane *rb = p->rb;
    redisReply *r = reply;

    rb->n_inflight--;
    if (r)
        metrics_redis_done(MET_REDIS_PUBLISH, p->sent_ns);
    if (r && r->type == REDIS_REPLY_INTEGER) {
        p->cb(p->ud, r->integer > 0 ? 0 : HUB_OFFLINE, NULL);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR)
            log_warn("backplane: ephemeral publish refused by redis: %s", r->str);
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
    struct redis_backplane *rb = container_of(bp, struct redis_backplane, bp);
    char chan[TOPIC_MAX_LEN + 8], head[MSG_EPOCH_LEN + 8], sig[65] = "";
    size_t hlen, slen, total;
    const char *argv[3];
    size_t lens[3];
    struct rb_pub *p;
    char *payload;

    if (rb->state != RB_READY || !rb->cmd || rb->n_inflight >= rb->cf->redis_max_pending) {
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
    argv[0] = "PUBLISH", argv[1] = chan, argv[2] = payload;
    lens[0] = 7, lens[1] = strlen(chan), lens[2] = total;
    p = xcalloc(1, sizeof(*p));
    p->rb = rb;
    p->cb = cb;
    p->ud = ud;
    p->sent_ns = metrics_mono_ns();
    rb->n_inflight++;
    if (redisAsyncCommandArgv(rb->cmd, on_ephemeral_sent, p, 3, argv, lens) != REDIS_OK) {
        rb->n_inflight--;
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
    struct redis_backplane *rb = q->rb;
    redisReply *r = reply;
    struct hub_history res;
    struct redis_wire_key key;
    size_t forged;

    rb->n_inflight--;
    if (r)
        metrics_redis_done(MET_REDIS_HISTORY, q->sent_ns);
    if (!q->fn) {
        xfree(q); /* cancelled */
        return;
    }
    key = key_of(rb);
    if (redis_wire_history(&key, q->topic, q->len, r, &res, &forged) != 0) {
        check_noscript(rb, r);
        if (r && r->type == REDIS_REPLY_ERROR)
            log_warn("backplane: history read refused by redis: %s", r->str);
        else if (r)
            log_warn("backplane: ignored a malformed history reply for '%s'", q->topic);
        fail_history(q->fn, q->ud);
        xfree(q);
        return;
    }
    count_forged(rb, q->topic, q->len, forged);
    q->fn(q->ud, &res);
    redis_wire_history_release(&res);
    xfree(q);
}

static void *rb_history(struct backplane *bp, const char *topic, size_t len,
                        const struct cursor_pos *from, size_t max, hub_history_fn *fn, void *ud)
{
    struct redis_backplane *rb = container_of(bp, struct redis_backplane, bp);
    char stream[TOPIC_MAX_LEN + 32], epoch[TOPIC_MAX_LEN + 32], trim[TOPIC_MAX_LEN + 32];
    char after[MSG_ID_STR_MAX], count[24], cepoch[MSG_EPOCH_LEN + 1];
    size_t cap = rb->cf->history_size + 1; /* a page; the hub reads on when there is more */
    const char *argv[9];
    size_t lens[9];
    struct rb_req *q;

    if (rb->state != RB_READY || !rb->cmd || len > TOPIC_MAX_LEN) {
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
    argv[0] = "EVALSHA", argv[1] = rb->history_sha, argv[2] = "3", argv[3] = stream,
    argv[4] = epoch, argv[5] = trim, argv[6] = after, argv[7] = count, argv[8] = cepoch;
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    q = xcalloc(1, sizeof(*q));
    q->rb = rb;
    q->fn = fn;
    q->ud = ud;
    q->len = len;
    q->sent_ns = metrics_mono_ns();
    memcpy(q->topic, topic, len);
    rb->n_inflight++;
    if (redisAsyncCommandArgv(rb->cmd, on_history, q, 9, argv, lens) != REDIS_OK) {
        rb->n_inflight--;
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

static int rb_is_ready(struct backplane *bp)
{
    return container_of(bp, struct redis_backplane, bp)->state == RB_READY;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct redis_backplane *rb = h->data;

    rb->n_handles--;
}

static void rb_close(struct backplane *bp)
{
    struct redis_backplane *rb = container_of(bp, struct redis_backplane, bp);

    if (rb->state == RB_CLOSED)
        return;
    rb->state = RB_CLOSED;
    uv_close((uv_handle_t *)&rb->retry, on_timer_closed);
    uv_close((uv_handle_t *)&rb->timeout, on_timer_closed);
    uv_close((uv_handle_t *)&rb->later, on_timer_closed);
    /* pending replies are answered (NULL) from inside: their owners were detached already */
    free_ctx(&rb->sub);
    free_ctx(&rb->cmd);
}

static void rb_destroy(struct backplane *bp)
{
    struct redis_backplane *rb = container_of(bp, struct redis_backplane, bp);

    rb_close(bp);
    for (size_t i = 0; i < rb->n_ops; i++)
        xfree(rb->ops[i].topic);
    xfree(rb->ops);
    if (rb->n_handles)
        log_warn("backplane: freed with %u timers still closing", rb->n_handles);
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
};

struct backplane *redis_backplane_new(uv_loop_t *loop, const struct conf *cf, struct hub *h,
                                      char *err, size_t errlen)
{
    struct redis_backplane *rb = xcalloc(1, sizeof(*rb));

    rb->bp.ops = &redis_ops;
    rb->hub = h;
    rb->loop = loop;
    rb->cf = cf;
    uv_timer_init(loop, &rb->retry);
    uv_timer_init(loop, &rb->timeout);
    uv_timer_init(loop, &rb->later);
    rb->retry.data = rb->timeout.data = rb->later.data = rb;
    rb->n_handles = 3;
    connect_missing(rb);
    return &rb->bp;
}
