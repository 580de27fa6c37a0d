/* http_api.c: the write path (POST /v1/messages with a JWT, POST /v1/publish with an API key)
 * and the operator endpoints (/healthz, /readyz, /metrics). */
#include "http_private.h"
#include "rtgate/backplane.h"
#include "rtgate/log.h"
#include "rtgate/metrics.h"
#include "rtgate/presence.h"
#include "rtgate/topic.h"
#include "rtgate/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_metrics(struct http_server *srv, struct metrics_buf *b)
{
    struct hub_stats st;

    hub_get_stats(srv->hub, &st);
    metrics_render(b);
    metrics_put(b, "gauge", "rtgate_streams", "Open SSE, long-poll and WebSocket connections",
                srv->n_streams);
    metrics_put(b, "gauge", "rtgate_longpolls_held", "Long-poll requests being held",
                srv->n_held_polls);
    metrics_put(b, "gauge", "rtgate_topics", "Topics with subscribers or history", st.n_topics);
    metrics_put(b, "gauge", "rtgate_subscriptions", "Local subscriptions", st.n_subscriptions);
    metrics_put(b, "counter", "rtgate_deliveries_total", "Messages queued to subscribers",
                st.n_delivered);
    metrics_put(b, "counter", "rtgate_deliveries_dropped_total",
                "Deliveries not made because the subscriber's queue was full or it was being cut",
                st.n_dropped);
    metrics_put(b, "gauge", "rtgate_draining", "1 while shutting down", (uint64_t)srv->draining);
    metrics_put(b, "gauge", "rtgate_backplane_up",
                "1 while the backplane accepts publishes (always 1 for the local one)",
                (uint64_t)(!srv->bp || srv->bp->ops->is_ready(srv->bp)));
    if (srv->bp && srv->bp->ops->metrics)
        srv->bp->ops->metrics(srv->bp, b);
    metrics_put(b, "counter", "rtgate_log_lines_suppressed_total",
                "Log lines left out by log.repeat_limit_per_s (each run is summed up in one line)",
                log_suppressed_total());
}

static int check_api_key(struct conn *c);
static int api_key_may(const struct conn *c, const char *topic, size_t len);
static int api_presence(struct conn *c);
static json_t *url_list(char *const *urls, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(urls[i]));
    return a;
}

/* GET /v1/ice: the RTCConfiguration.iceServers a caller should use. TURN gets credentials of
 * the TURN REST API scheme for this user, valid webrtc.turn_ttl_s, so no long-lived TURN
 * password ships to browsers and a leaked one expires on its own. */
static int api_on_ice(struct conn *c)
{
    const struct conf *cf = c->srv->cf;
    char user[TOPIC_ID_MAX + 32], cred[AUTH_TURN_CRED_MAX], *body;
    json_t *servers, *j;
    int rc;

    if (http_authenticate(c) != 0)
        return 0;
    servers = json_array();
    if (cf->n_stun_urls)
        json_array_append_new(servers,
                              json_pack("{s:o}", "urls", url_list(cf->stun_urls, cf->n_stun_urls)));
    if (cf->n_turn_urls) {
        int64_t expiry = (int64_t)(http_now_ms() / 1000) + cf->turn_ttl_s;

        if (auth_turn_credentials(cf->turn_secret, cf->turn_secret_len, expiry, c->id.sub,
                                  c->id.sub_len, user, sizeof(user), cred) != 0) {
            json_decref(servers);
            return http_error(c, 500, "cannot make TURN credentials");
        }
        json_array_append_new(servers, json_pack("{s:o,s:s,s:s}", "urls",
                                                 url_list(cf->turn_urls, cf->n_turn_urls),
                                                 "username", user, "credential", cred));
    }
    j = json_pack("{s:o,s:I}", "iceServers", servers, "ttl", (json_int_t)cf->turn_ttl_s);
    body = json_dumps(j, JSON_COMPACT);
    rc = http_respond(c, 200, NULL, body, strlen(body), NULL); /* no-store, like every answer */
    free(body);
    json_decref(j);
    return rc;
}

int api_on_get(struct conn *c, const char *path)
{
    struct http_server *srv = c->srv;

    if (strcmp(path, "/v1/presence") == 0)
        return api_presence(c);
    if (strcmp(path, "/v1/ice") == 0)
        return api_on_ice(c);
    if (strcmp(path, "/healthz") == 0)
        return http_respond(c, 200, NULL, "{\"status\":\"ok\"}", 15, NULL);
    if (strcmp(path, "/readyz") == 0) {
        if (srv->draining)
            return http_respond(c, 503, NULL, "{\"status\":\"draining\"}", 21, NULL);
        if (srv->bp && !srv->bp->ops->is_ready(srv->bp))
            return http_respond(c, 503, NULL, "{\"status\":\"backplane unavailable\"}", 34, NULL);
        if (srv->bp && srv->bp->ops->shards) {
            /* Some shards down: still ready. Every node is equally cut from those topics,
             * so taking this one out of the balancer would help nobody. */
            size_t up, n = srv->bp->ops->shards(srv->bp, &up);
            char body[96];
            int len;

            if (up < n) {
                len = snprintf(body, sizeof(body),
                               "{\"status\":\"degraded\",\"shards\":%zu,\"shards_up\":%zu}", n, up);
                return http_respond(c, 200, NULL, body, (size_t)len, NULL);
            }
        }
        return http_respond(c, 200, NULL, "{\"status\":\"ready\"}", 18, NULL);
    }
    if (strcmp(path, "/metrics") == 0) {
        struct metrics_buf b = {0};
        int rc;

        api_metrics(srv, &b);
        rc = http_respond(c, 200, "text/plain; version=0.0.4", b.p, b.len, NULL);
        metrics_buf_release(&b);
        return rc;
    }
    return http_error(c, 404, "not found");
}

/* An API key limited to topic patterns ("auth.api_keys": [{"key","topics"}]). */
static int api_key_may(const struct conn *c, const char *topic, size_t len)
{
    const char *pats = c->srv->cf->api_key_topics[c->api_key - 1];

    if (!pats)
        return 1;
    for (; *pats; pats += strlen(pats) + 1)
        if (auth_pattern_match(pats, strlen(pats), topic, len))
            return 1;
    return 0;
}

static int check_api_key(struct conn *c)
{
    char key[512];
    int n = lws_hdr_custom_copy(c->wsi, key, sizeof(key), "x-api-key:", 10);
    const char *why;
    int i = n > 0 ? auth_api_key_find(c->srv->cf->api_keys, c->srv->cf->n_api_keys, key, (size_t)n)
                  : -1;

    if (i >= 0) {
        c->api_key = (uint8_t)(i + 1);
        return 0;
    }
    metrics_inc(M_AUTH_FAILURES);
    /* lws 4.1.6 drops request headers it does not know on HTTP/2, X-API-Key among them */
    why = n > 0   ? "bad API key"
          : c->h2 ? "missing X-API-Key header (not readable over HTTP/2: use HTTP/1.1)"
                  : "missing X-API-Key header";
    http_log_refused(c, why);
    http_error(c, 401, why);
    return -1;
}

int api_on_post(struct conn *c, const char *path)
{
    char cl[32];
    long long len = -1;

    /* Whatever happens below, a POST answer closes the connection unless the whole body was
     * read: an unread body must not be parsed as the next request. */
    c->keep_alive = 0;
    if (strcmp(path, "/v1/messages") == 0) {
        if (http_authenticate(c) != 0)
            return 0;
        c->route = ROUTE_MESSAGES;
    } else {
        if (check_api_key(c) != 0)
            return 0;
        c->route = ROUTE_PUBLISH;
    }
    if (lws_hdr_copy(c->wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        len = strtoll(cl, NULL, 10);
    if (len > (long long)c->srv->cf->max_message_bytes) {
        c->route = ROUTE_NONE;
        return http_error(c, 413, "body too large");
    }
    if (lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING)) {
        c->route = ROUTE_NONE; /* chunked bodies: the size must be known up front */
        return http_error(c, 411, "content-length required");
    }
    if (len < 0 && c->h2) {
        c->route = ROUTE_NONE; /* lws 4.1.6 ends no h2 body that came without a length */
        return http_error(c, 411, "content-length required");
    }
    if (len <= 0) {
        c->route = ROUTE_NONE;
        return http_error(c, 400, "missing body");
    }
    return 0; /* lws now delivers LWS_CALLBACK_HTTP_BODY chunks */
}

int api_on_body(struct conn *c, const void *in, size_t len)
{
    size_t max = c->srv->cf->max_message_bytes;

    if (c->route == ROUTE_NONE || c->body_too_big)
        return 0;
    if (c->body_len + len > max) {
        c->body_too_big = 1;
        xfree(c->body);
        c->body = NULL;
        return 0;
    }
    c->body = xrealloc(c->body, c->body_len + len);
    memcpy(c->body + c->body_len, in, len);
    c->body_len += len;
    return 0;
}

/* ---- GET /v1/presence?users=a,b ---- */

/* The users of one lookup; they must outlive it (presence.h), so they live with the
 * connection until the answer. */
struct presence_q {
    const char *users[PRESENCE_MAX_USERS];
    size_t lens[PRESENCE_MAX_USERS];
    size_t n;
    char text[HTTP_HEADER_MAX + 1];
};

void api_presence_release(struct conn *c)
{
    presence_cancel(c->presence_req);
    c->presence_req = NULL;
    xfree(c->presence_q);
    c->presence_q = NULL;
}

static void on_presence(void *ud, int status, const struct presence_result *res, size_t n)
{
    struct conn *c = ud;
    json_t *users, *j;
    char *body;

    c->presence_req = NULL;
    if (status != 0) {
        api_presence_release(c);
        http_respond(c, 503, NULL, "{\"error\":\"backplane unavailable\"}", 33,
                     "retry-after: 1\r\n");
        return;
    }
    users = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(users, res[i].user,
                            json_pack("{s:b,s:I}", "online", res[i].conns > 0, "connections",
                                      (json_int_t)res[i].conns));
    j = json_pack("{s:o}", "users", users);
    body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    api_presence_release(c);
    http_respond(c, 200, NULL, body, strlen(body), NULL);
    free(body);
    json_decref(j);
}

/* Splits ?users= into q; 0, or -1 with @why. */
static int parse_users(struct presence_q *q, int len, const char **why)
{
    char *s = q->text, *end = q->text + len;

    if (len <= 0)
        return *why = "missing users", -1;
    if (len >= HTTP_HEADER_MAX)
        return *why = "users too long", -1;
    while (s <= end) {
        char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = (size_t)((comma ? comma : end) - s);

        if (!topic_is_valid_id(s, n))
            return *why = "invalid user id", -1;
        if (q->n == PRESENCE_MAX_USERS)
            return *why = "too many users (at most 100)", -1;
        s[n] = '\0'; /* each name NUL-terminated in place, for the JSON answer */
        q->users[q->n] = s;
        q->lens[q->n++] = n;
        s += n + 1;
    }
    return 0;
}

/* Who may ask: an API key (one limited to topic patterns: for the users whose topic
 * "presence:<user>" it may publish to), or a token with the "presence": true claim. */
static int may_ask(struct conn *c, const struct presence_q *q)
{
    char topic[TOPIC_MAX_LEN + 1];

    if (!c->api_key)
        return c->id.may_presence;
    for (size_t i = 0; i < q->n; i++) {
        int n = snprintf(topic, sizeof(topic), "presence:%s", q->users[i]);

        if (!api_key_may(c, topic, (size_t)n))
            return 0;
    }
    return 1;
}

static int api_presence(struct conn *c)
{
    struct presence_q *q;
    const char *why = NULL;
    int n;

    if (!c->srv->presence)
        return http_error(c, 404, "presence is disabled");
    if (lws_hdr_custom_length(c->wsi, "x-api-key:", 10) > 0) {
        if (check_api_key(c) != 0)
            return 0;
    } else if (http_authenticate(c) != 0) {
        return 0;
    }
    q = xcalloc(1, sizeof(*q));
    n = http_arg(c, "users=", q->text, sizeof(q->text));
    if (parse_users(q, n, &why) != 0) {
        xfree(q);
        return http_error(c, 400, why);
    }
    if (!may_ask(c, q)) {
        xfree(q);
        metrics_inc(M_FORBIDDEN);
        http_log_refused(c, "presence not granted");
        return http_error(c, 403, "presence not granted");
    }
    c->presence_q = q;
    c->presence_req = presence_lookup(c->srv->presence, q->users, q->lens, q->n, on_presence, c);
    return 0;
}

static void on_published(void *ud, int status, const struct msg_id *id)
{
    struct pub_req *p = ud;
    struct conn *c = pub_req_done(p);
    char idstr[MSG_ID_STR_MAX], *body;
    json_t *j;

    if (status == 0)
        metrics_inc(M_PUBLISHED);
    metrics_published(p->source, status == 0);
    if (!c) {
        xfree(p); /* the client left before the answer */
        return;
    }
    if (status == HUB_OFFLINE) {
        http_error(c, 409, "recipient offline");
        xfree(p);
        return;
    }
    if (status != 0) {
        http_respond(c, 503, NULL, "{\"error\":\"backplane unavailable\"}", 33,
                     "retry-after: 1\r\n");
        xfree(p);
        return;
    }
    if (id) {
        msg_id_format(*id, idstr);
        j = json_pack("{s:s,s:s%}", "id", idstr, "topic", p->topic, p->topic_len);
    } else {
        j = json_pack("{s:s%,s:b}", "topic", p->topic, p->topic_len, "ephemeral", 1);
    }
    body = json_dumps(j, JSON_COMPACT);
    http_respond(c, 200, NULL, body, strlen(body), NULL);
    free(body);
    json_decref(j);
    xfree(p);
}

/* Picks the topic of a send/publish request: "topic", or "to" as shorthand for user:<to>.
 * Writes it into @buf; returns its length, or -1 with @why set. */
int api_target_topic(json_t *req, char *buf, size_t cap, const char **why)
{
    json_t *topic = json_object_get(req, "topic"), *to = json_object_get(req, "to");
    const char *s;
    size_t len;

    if (topic && to)
        return *why = "give \"topic\" or \"to\", not both", -1;
    if (to) {
        int n;

        if (!json_is_string(to))
            return *why = "\"to\" must be a string", -1;
        n = topic_format_user(buf, cap, json_string_value(to), json_string_length(to));
        if (n < 0)
            return *why = "invalid user id in \"to\"", -1;
        return n;
    }
    if (!topic)
        return *why = "missing \"topic\" or \"to\"", -1;
    if (!json_is_string(topic))
        return *why = "\"topic\" must be a string", -1;
    s = json_string_value(topic);
    len = json_string_length(topic);
    if (!topic_is_valid(s, len) || len >= cap)
        return *why = "invalid topic", -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return (int)len;
}

int api_on_body_done(struct conn *c)
{
    char topic[TOPIC_MAX_LEN + 1];
    const char *why = NULL, *from = c->id.sub;
    size_t from_len = c->id.sub_len;
    json_t *req, *data, *jfrom, *jeph;
    struct pub_req *p;
    int ephemeral = 0;
    json_error_t jerr;
    enum route route = c->route;
    char *text;
    int tlen;

    if (route == ROUTE_NONE)
        return 0;
    c->route = ROUTE_NONE;
    if (c->body_too_big)
        return http_error(c, 413, "body too large");
    c->keep_alive = 1; /* the whole body has been read */
    req = json_loadb(c->body ? c->body : "", c->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                     &jerr);
    if (!req)
        return http_error(c, 400, "malformed JSON");
    if (!json_is_object(req)) {
        json_decref(req);
        return http_error(c, 400, "body must be a JSON object");
    }
    tlen = api_target_topic(req, topic, sizeof(topic), &why);
    data = json_object_get(req, "data");
    if (tlen >= 0 && !data)
        why = "missing \"data\"";
    jeph = json_object_get(req, "ephemeral");
    if (!why && jeph && !json_is_boolean(jeph))
        why = "\"ephemeral\" must be a boolean";
    ephemeral = json_is_true(jeph);
    jfrom = json_object_get(req, "from");
    if (!why && c->authed) {
        /* from comes from the token, never from the body */
    } else if (!why && jfrom) {
        if (!json_is_string(jfrom) ||
            !topic_is_valid_id(json_string_value(jfrom), json_string_length(jfrom)))
            why = "\"from\" must be a valid user id";
        from = json_string_value(jfrom);
        from_len = json_string_length(jfrom);
    } else if (!why) {
        from = "";
        from_len = 0;
    }
    if (why) {
        json_decref(req);
        return http_error(c, 400, why);
    }
    if (c->api_key && !api_key_may(c, topic, (size_t)tlen)) {
        metrics_inc(M_FORBIDDEN);
        log_notice("http: an API key refused publishing to '%s'", topic);
        json_decref(req);
        return http_error(c, 403, "forbidden topic");
    }
    if (c->authed && !http_may_publish(c, topic, (size_t)tlen)) {
        metrics_inc(M_FORBIDDEN);
        log_notice("http: user '%s' refused publishing to '%s'", c->id.sub, topic);
        json_decref(req);
        return http_error(c, 403, "forbidden topic");
    }
    text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    xfree(c->body);
    c->body = NULL;
    c->body_len = 0;
    p = pub_req_new(c, topic, (size_t)tlen, NULL,
                    route == ROUTE_PUBLISH ? MET_SRC_API : MET_SRC_MESSAGES);
    if (ephemeral)
        hub_send_ephemeral(c->srv->hub, topic, (size_t)tlen, from, from_len, text, strlen(text),
                           on_published, p);
    else
        hub_publish(c->srv->hub, topic, (size_t)tlen, from, from_len, text, strlen(text),
                    on_published, p);
    free(text);
    json_decref(req);
    return 0;
}
