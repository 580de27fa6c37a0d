/* http_poll.c: GET /v1/poll (answer at once) and GET /v1/longpoll (hold until news or the
 * timeout). Both read the same history and speak the same cursor as SSE and WebSocket, so a
 * client can fall back between transports without losing or repeating a message.
 *
 * A request first reads each topic's history after its cursor (hub_fetch, one per topic, maybe
 * asynchronous). A poll answers with that; a long-poll with nothing to say subscribes from the
 * positions it reached, so a message published between the read and the subscription is
 * replayed to it, and answers with the first delivery. */
#include "http_private.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct poll_topic {
    struct conn *c;
    struct hub_fetch *f;
    int status, reset, more;
    char epoch[MSG_EPOCH_LEN + 1];
    struct msg_id last;
    struct msg **msgs;
    size_t n;
};

struct poll_state {
    int hold, earliest, recovered;
    long timeout_s;
    char *inm; /* If-None-Match of the request */
    size_t n;
    struct poll_topic t[];
};

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

void poll_release(struct conn *c)
{
    struct poll_state *ps = c->poll;

    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        hub_fetch_cancel(ps->t[i].f);
        for (size_t j = 0; j < ps->t[i].n; j++)
            msg_unref(ps->t[i].msgs[j]);
        xfree(ps->t[i].msgs);
    }
    xfree(ps->inm);
    xfree(ps);
    c->poll = NULL;
}

/* Answers {"messages":[...],"cursor":"..","recovered":..} from @v, advancing the positions;
 * or 304 when nothing is new and the client already has this cursor. */
static int respond(struct conn *c, struct msg **v, size_t n, int recovered, int more)
{
    char cursor[CURSOR_TEXT_MAX], etag[CURSOR_TEXT_MAX + CONF_NODE_ID_MAX + 40];
    struct poll_state *ps = c->poll;
    struct out o = {0};
    int rc;

    out_put(&o, "{\"messages\":[", 13);
    for (size_t i = 0; i < n; i++) {
        if (i)
            out_put(&o, ",", 1);
        out_put(&o, v[i]->env, v[i]->env_len);
        stream_advance(c->topics, v[i]);
    }
    if (stream_cursor(c->topics, cursor, sizeof(cursor)) < 0) {
        xfree(o.p);
        return http_error(c, 400, "cursor too long");
    }
    snprintf(etag, sizeof(etag), "etag: \"%s\"\r\nx-rtgate-node: %s\r\n", cursor, c->srv->node_id);
    if (n == 0 && recovered && ps->inm) {
        size_t l = strlen(ps->inm);

        if (l >= 2 && ps->inm[0] == '"' && ps->inm[l - 1] == '"' && l - 2 == strlen(cursor) &&
            memcmp(ps->inm + 1, cursor, l - 2) == 0) {
            xfree(o.p);
            return http_respond(c, 304, NULL, "", 0, etag);
        }
    }
    out_put(&o, "],\"cursor\":\"", 12);
    out_put(&o, cursor, strlen(cursor));
    out_put(&o, "\",\"recovered\":", 14);
    out_put(&o, recovered ? "true" : "false", recovered ? 4 : 5);
    if (!recovered) {
        /* which topics lost history (names are plain JSON-safe characters: topic.c) */
        int first = 1;

        out_put(&o, ",\"reset\":[", 10);
        for (size_t i = 0; i < ps->n; i++) {
            const struct cursor_pos *p = &c->topics->pos[i];

            if (!ps->t[i].reset)
                continue;
            out_put(&o, first ? "\"" : ",\"", first ? 1 : 2);
            out_put(&o, p->topic, p->topic_len);
            out_put(&o, "\"", 1);
            first = 0;
        }
        out_put(&o, "]", 1);
    }
    if (more)
        out_put(&o, ",\"more\":true", 12);
    out_put(&o, "}", 1);
    /* counted as the answer is made: it is written whole at the next writable callback */
    if (n) {
        enum metrics_transport t = http_transport(c);
        uint64_t now = metrics_wall_us();

        for (size_t i = 0; i < n; i++)
            metrics_delivered(t, v[i]->ts, now);
    }
    rc = http_respond(c, 200, NULL, o.p, o.len, etag);
    xfree(o.p);
    return rc;
}

static int poll_deliver(struct sub *s, struct msg *m)
{
    struct conn *c = container_of(s, struct conn, sub);

    if (c->resp || c->closing)
        return 0; /* answered already: later messages are the next request's */
    if (sendq_push(&c->q, m) != 0)
        return 0; /* full: the answer is cut there, the cursor continues from it */
    http_request_writable(c);
    return 0;
}

static void poll_kick(struct sub *s, enum sub_kick why)
{
}

static void poll_reset(struct sub *s, const char *topic, size_t len, const char *epoch)
{
    struct conn *c = container_of(s, struct conn, sub);
    struct cursor_pos *p = stream_find(c->topics, topic, len);

    c->poll->recovered = 0;
    if (p) {
        c->poll->t[p - c->topics->pos].reset = 1;
        memcpy(p->epoch, epoch, sizeof(p->epoch));
        p->id = (struct msg_id){0, 0};
    }
    http_request_writable(c);
}

static void poll_ready(struct sub *s, const char *topic, size_t len, const struct cursor_pos *pos,
                       int status)
{
}

const struct sub_ops poll_sub_ops = {
    .deliver = poll_deliver, .kick = poll_kick, .reset = poll_reset, .ready = poll_ready};

/* Every fetch is back: answer, or (long-poll, nothing new) hold. */
static void finish(struct conn *c)
{
    struct poll_state *ps = c->poll;
    size_t max = c->srv->cf->max_poll_messages, n = 0;
    struct msg **v = xmalloc(max * sizeof(*v));
    int more = 0;

    ps->recovered = 1;
    for (size_t i = 0; i < ps->n; i++) {
        struct poll_topic *t = &ps->t[i];
        struct cursor_pos *p = &c->topics->pos[i];

        if (t->status != 0) {
            xfree(v);
            c->keep_alive = 0;
            http_respond(c, 503, NULL, "{\"error\":\"backplane unavailable\"}", 33,
                         "retry-after: 1\r\n");
            return;
        }
        if (t->reset)
            ps->recovered = 0;
        if (!pos_is_set(p) || t->reset) {
            memcpy(p->epoch, t->epoch, sizeof(p->epoch));
            /* No cursor: "now". After a reset or with since=earliest the messages advance it,
             * from just before the oldest retained one, so a cursor cut short by the message
             * limit resumes there and does not report the same loss again. */
            p->id = t->last;
            if ((t->reset || ps->earliest) && t->n)
                p->id = msg_id_prev(t->msgs[0]->id);
        }
        for (size_t j = 0; j < t->n; j++) {
            if (n == max) {
                more = 1;
                break;
            }
            v[n++] = t->msgs[j];
        }
        more |= t->more;
    }
    if (ps->hold && n == 0 && ps->recovered && ps->timeout_s > 0 && !c->srv->refusing) {
        xfree(v);
        if (c->srv->n_held_polls >= c->srv->cf->max_held_polls ||
            c->srv->n_streams >= c->srv->cf->max_connections) {
            http_respond(c, 503, NULL, "{\"error\":\"too many held long-polls\"}", 36,
                         "retry-after: 1\r\n");
            return;
        }
        if (http_admit_stream(c) != 0)
            return;
        sub_init(&c->sub, &poll_sub_ops);
        sendq_init(&c->q, max);
        http_hold(c, CONN_LONGPOLL);
        c->srv->n_held_polls++;
        c->deadline_ms = http_now_ms() + (uint64_t)ps->timeout_s * 1000;
        for (size_t i = 0; i < c->topics->n; i++) {
            struct cursor_pos *p = &c->topics->pos[i];

            hub_subscribe_from(c->srv->hub, &c->sub, p->topic, p->topic_len, p);
        }
        return;
    }
    respond(c, v, n, ps->recovered, more);
    xfree(v);
}

static void on_fetched(void *ud, const struct hub_history *res)
{
    struct poll_topic *t = ud;
    struct conn *c = t->c;

    t->f = NULL;
    t->status = res->status;
    t->reset = res->reset;
    t->more = res->more;
    memcpy(t->epoch, res->epoch, sizeof(t->epoch));
    t->last = res->last;
    if (res->n) {
        t->msgs = xmalloc(res->n * sizeof(*t->msgs));
        for (size_t i = 0; i < res->n; i++)
            t->msgs[i] = msg_ref(res->msgs[i]);
        t->n = res->n;
    }
    if (--c->pending == 0)
        finish(c);
}

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
    size_t max = c->srv->cf->max_poll_messages;
    struct poll_state *ps;
    struct cursor cur;
    long timeout = 0;
    int n, earliest;

    metrics_inc(hold ? M_LONGPOLL_REQUESTS : M_POLL_REQUESTS);
    if (http_authenticate(c) != 0 || http_parse_topics(c) != 0)
        return 0;
    n = http_arg(c, "cursor=", cur_text, sizeof(cur_text));
    earliest = http_arg(c, "since=", since, sizeof(since)) > 0 && strcmp(since, "earliest") == 0;
    if (hold && (timeout = parse_timeout(c)) < 0)
        return http_error(c, 400, "timeout must be a whole number of seconds");
    if (http_apply_cursor(c, n > 0 ? cur_text : NULL, n > 0 ? (size_t)n : 0, earliest, &cur) != 0)
        return 0;
    cursor_release(&cur);
    if (hold)
        c->keep_alive = 0; /* FACTS.md: an answered long-poll closes; reusing a held one hung */
    ps = xcalloc(1, sizeof(*ps) + c->topics->n * sizeof(ps->t[0]));
    ps->hold = hold;
    ps->earliest = earliest;
    ps->timeout_s = timeout;
    ps->n = c->topics->n;
    if (lws_hdr_copy(c->wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0)
        ps->inm = xstrndup(inm, strlen(inm));
    c->poll = ps;
    c->pending = ps->n;
    for (size_t i = 0; i < ps->n; i++) {
        struct cursor_pos *p = &c->topics->pos[i];
        struct hub_fetch *f;

        ps->t[i].c = c;
        /* no cursor: only the position (max 0), or everything retained with since=earliest */
        f = hub_fetch(c->srv->hub, p->topic, p->topic_len, pos_is_set(p) ? p : NULL,
                      pos_is_set(p) || earliest ? max : 0, on_fetched, &ps->t[i]);
        if (f && c->poll == ps && c->pending)
            ps->t[i].f = f;
    }
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

/* A held long-poll woke up (a delivery, a reset, the timeout or a drain): answer with what
 * was delivered, then close. */
int poll_on_writable(struct conn *c)
{
    if (!c->resp && !c->closing) {
        size_t n = sendq_len(&c->q);
        struct msg **v;

        if (n == 0 && c->poll->recovered && c->deadline_ms != 0 && !c->srv->refusing) {
            http_rx_flow(c, 0);
            return 0; /* spurious wake-up */
        }
        hub_unsubscribe_all(c->srv->hub, &c->sub);
        v = xmalloc((n ? n : 1) * sizeof(*v));
        for (size_t i = 0; i < n; i++)
            v[i] = sendq_at(&c->q, i);
        xfree(c->poll->inm); /* a held answer is never a 304 */
        c->poll->inm = NULL;
        respond(c, v, n, c->poll->recovered, n >= c->q.max);
        xfree(v);
    }
    return http_write_response(c);
}
