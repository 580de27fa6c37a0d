/* http_poll.c: GET /v1/poll (answer at once) and GET /v1/longpoll (hold until news or the
 * timeout). Both read the same history and speak the same cursor as SSE and WebSocket, so a
 * client can fall back between transports without losing or repeating a message.
 *
 * A held long-poll subscribes like any stream but queues nothing: a delivery only marks it
 * ready, and the answer is read from history when the socket is writable, so messages
 * published between two long-polls and during one are answered the same way. */
#include "http_private.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *p;
    size_t len, cap;
};

static void out_put(struct out *o, const void *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2;
        o->p = xrealloc(o->p, o->cap);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

struct collect {
    struct conn *c;
    struct out *o;
    size_t n, max;
};

static int collect_one(void *ud, struct msg *m)
{
    struct collect *k = ud;

    if (k->n == k->max)
        return -1;
    if (k->n++)
        out_put(k->o, ",", 1);
    out_put(k->o, m->env, m->env_len);
    stream_advance(k->c->topics, m);
    return 0;
}

/* Appends every retained message after the stream's positions, at most max_poll_messages.
 * Returns the count; *@recovered is cleared when some topic lost history since its position. */
static size_t collect(struct conn *c, struct out *o, int *recovered, int *more)
{
    struct collect k = {c, o, 0, c->srv->cf->max_poll_messages};

    *recovered = 1;
    *more = 0;
    for (size_t i = 0; i < c->topics->n; i++) {
        struct cursor_pos *pos = &c->topics->pos[i];
        size_t got;
        int rc = hub_replay(c->srv->hub, pos->topic, pos->topic_len, pos, 0, collect_one, &k,
                            NULL);

        if (rc == HUB_REPLAY_RESET) {
            *recovered = 0;
            hub_position(c->srv->hub, pos->topic, pos->topic_len, pos);
            pos->id = (struct msg_id){0, 0};
        }
        if (k.n == k.max) {
            *more |= hub_has_after(c->srv->hub, pos->topic, pos->topic_len, pos);
            continue;
        }
        hub_replay(c->srv->hub, pos->topic, pos->topic_len, pos, SIZE_MAX, collect_one, &k, &got);
        if (k.n == k.max)
            *more |= hub_has_after(c->srv->hub, pos->topic, pos->topic_len, pos);
    }
    return k.n;
}

/* Writes the answer {"messages":[...],"cursor":"..","recovered":..} (or a 304). */
static int answer(struct conn *c, const char *if_none_match)
{
    char cursor[CURSOR_TEXT_MAX], etag[CURSOR_TEXT_MAX + 16];
    struct out o = {0};
    int recovered, more, rc;
    size_t n;

    out_put(&o, "{\"messages\":[", 13);
    n = collect(c, &o, &recovered, &more);
    if (stream_cursor(c->topics, cursor, sizeof(cursor)) < 0) {
        xfree(o.p);
        return http_error(c, 400, "cursor too long");
    }
    snprintf(etag, sizeof(etag), "etag: \"%s\"\r\n", cursor);
    if (n == 0 && recovered && if_none_match) {
        size_t l = strlen(if_none_match);

        if (l >= 2 && if_none_match[0] == '"' && if_none_match[l - 1] == '"' &&
            l - 2 == strlen(cursor) && memcmp(if_none_match + 1, cursor, l - 2) == 0) {
            xfree(o.p);
            return http_respond(c, 304, NULL, "", 0, etag);
        }
    }
    out_put(&o, "],\"cursor\":\"", 12);
    out_put(&o, cursor, strlen(cursor));
    out_put(&o, "\",\"recovered\":", 14);
    out_put(&o, recovered ? "true" : "false", recovered ? 4 : 5);
    if (more)
        out_put(&o, ",\"more\":true", 12);
    out_put(&o, "}", 1);
    rc = http_respond(c, 200, NULL, o.p, o.len, etag);
    xfree(o.p);
    return rc;
}

static int poll_deliver(struct sub *s, struct msg *m)
{
    struct conn *c = container_of(s, struct conn, sub);

    if (!c->resp && !c->closing)
        http_request_writable(c); /* the answer is read from history when writable */
    return 0;
}

static void poll_kick(struct sub *s, enum sub_kick why)
{
}

const struct sub_ops poll_sub_ops = {.deliver = poll_deliver, .kick = poll_kick};

/* ?timeout= in whole seconds, default and cap from the config. Returns -1 if invalid. */
static long parse_timeout(struct conn *c)
{
    char buf[16], *end;
    long t;

    if (http_arg(c, "timeout=", buf, sizeof(buf)) < 0)
        return (long)c->srv->cf->longpoll_timeout_s;
    t = strtol(buf, &end, 10);
    if (end == buf || *end || t < 0)
        return -1;
    return t > (long)c->srv->cf->longpoll_max_timeout_s ? (long)c->srv->cf->longpoll_max_timeout_s
                                                        : t;
}

int poll_on_request(struct conn *c, int hold)
{
    char cur_text[CURSOR_TEXT_MAX], since[16], inm[CURSOR_TEXT_MAX + 4];
    int n, earliest, has_inm;
    struct cursor cur;
    long timeout = 0;
    int recovered = 1, more = 0;
    struct out probe = {0};

    metrics_inc(hold ? M_LONGPOLL_REQUESTS : M_POLL_REQUESTS);
    if (http_authenticate(c) != 0 || http_parse_topics(c) != 0)
        return 0;
    n = http_arg(c, "cursor=", cur_text, sizeof(cur_text));
    earliest = http_arg(c, "since=", since, sizeof(since)) > 0 && strcmp(since, "earliest") == 0;
    if (hold && (timeout = parse_timeout(c)) < 0)
        return http_error(c, 400, "timeout must be a whole number of seconds");
    if (http_apply_cursor(c, n > 0 ? cur_text : NULL, n > 0 ? (size_t)n : 0, earliest, &cur) !=
        0)
        return 0;
    cursor_release(&cur);
    has_inm = lws_hdr_copy(c->wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0;
    if (!hold || timeout == 0)
        return answer(c, has_inm ? inm : NULL);

    /* Is there anything to answer at once? (cheap: binary searches in the rings) */
    for (size_t i = 0; i < c->topics->n && recovered && !more; i++) {
        struct cursor_pos *pos = &c->topics->pos[i];

        more = hub_has_after(c->srv->hub, pos->topic, pos->topic_len, pos);
        recovered = hub_replay(c->srv->hub, pos->topic, pos->topic_len, pos, 0, NULL, NULL,
                               NULL) == HUB_REPLAY_OK;
    }
    xfree(probe.p);
    c->keep_alive = 0; /* FACTS.md: an answered long-poll closes; reuse of a held request hung */
    if (more || !recovered)
        return answer(c, NULL);
    if (c->srv->n_held_polls >= c->srv->cf->max_held_polls ||
        c->srv->n_streams >= c->srv->cf->max_connections)
        return http_respond(c, 503, NULL, "{\"error\":\"too many held long-polls\"}", 36,
                            "retry-after: 1\r\n");
    sub_init(&c->sub, &poll_sub_ops);
    sendq_init(&c->q, 1);
    http_hold(c, CONN_LONGPOLL);
    c->srv->n_held_polls++;
    c->deadline_ms = http_now_ms() + (uint64_t)timeout * 1000;
    for (size_t i = 0; i < c->topics->n; i++)
        hub_subscribe(c->srv->hub, &c->sub, c->topics->pos[i].topic,
                      c->topics->pos[i].topic_len);
    return 0;
}

void poll_on_tick(struct conn *c, uint64_t now)
{
    if (c->resp || c->closing || now < c->deadline_ms)
        return;
    if (now != UINT64_MAX)
        metrics_inc(M_LONGPOLL_TIMEOUTS);
    c->deadline_ms = 0;
    http_request_writable(c);
}

int poll_on_writable(struct conn *c)
{
    if (!c->resp && !c->closing) {
        /* Woken by a delivery, the timeout or a drain: read what is there now. An early
         * wake-up with nothing new (another topic's position) answers only at the timeout. */
        int recovered = 1, more = 0;

        for (size_t i = 0; i < c->topics->n && recovered && !more; i++) {
            struct cursor_pos *pos = &c->topics->pos[i];

            more = hub_has_after(c->srv->hub, pos->topic, pos->topic_len, pos);
        }
        if (!more && c->deadline_ms != 0 && !c->srv->draining) {
            lws_rx_flow_control(c->wsi, 0);
            return 0;
        }
        hub_unsubscribe_all(c->srv->hub, &c->sub);
        answer(c, NULL);
    }
    return http_write_response(c);
}
