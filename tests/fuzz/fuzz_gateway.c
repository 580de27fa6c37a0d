/* fuzz_gateway.c: see fuzz_gateway.h. Linked with -Wl,--wrap= for util_now_ms, util_random,
 * log_write (formatted, then dropped: the fuzzer stays quiet but format bugs still show) and
 * msg_new (every rendered message is checked). */
#define _GNU_SOURCE /* memmem */
#include "fuzz_gateway.h"

#include "rtgate/auth.h"
#include "rtgate/backplane.h"
#include "rtgate/cursor.h"
#include "rtgate/http_server.h"
#include "rtgate/hub.h"
#include "rtgate/log.h"
#include "rtgate/msg.h"
#include "rtgate/topic.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct conf fuzz_conf;
uint64_t fuzz_now_ms = FUZZ_NOW_MS;
char fuzz_token[AUTH_TOKEN_MAX];

/* ---- the wrapped seams ---- */

uint64_t __wrap_util_now_ms(void);
int __wrap_util_random(void *buf, size_t n);
void __wrap_log_write(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct msg *__real_msg_new(const char *topic, size_t topic_len, const char *epoch, struct msg_id id,
                           uint64_t ts, const char *from, size_t from_len, const char *data,
                           size_t data_len);
struct msg *__wrap_msg_new(const char *topic, size_t topic_len, const char *epoch, struct msg_id id,
                           uint64_t ts, const char *from, size_t from_len, const char *data,
                           size_t data_len);
struct msg *__real_msg_new_ephemeral(const char *topic, size_t topic_len, uint64_t ts,
                                     const char *from, size_t from_len, const char *data,
                                     size_t data_len);
struct msg *__wrap_msg_new_ephemeral(const char *topic, size_t topic_len, uint64_t ts,
                                     const char *from, size_t from_len, const char *data,
                                     size_t data_len);

uint64_t __wrap_util_now_ms(void)
{
    return fuzz_now_ms;
}

int __wrap_util_random(void *buf, size_t n)
{
    static const unsigned char pattern[] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

    for (size_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] = pattern[i % sizeof(pattern)];
    return 0;
}

void __wrap_log_write(enum log_level lvl, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    FUZZ_ASSERT(lvl >= LOG_ERR && lvl <= LOG_DEBUG);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
}

/* ---- checks ---- */

static int has_prefix(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);

    return len >= n && memcmp(s, p, n) == 0;
}

static void check_cursor_text(const char *s, size_t len, size_t min_topics)
{
    struct cursor c;

    FUZZ_ASSERT(cursor_parse(&c, s, len) == 0);
    FUZZ_ASSERT(c.n >= min_topics);
    cursor_release(&c);
}

static void check_id_string(json_t *v, struct msg_id *out)
{
    struct msg_id id;

    FUZZ_ASSERT(json_is_string(v));
    FUZZ_ASSERT(msg_id_parse(json_string_value(v), json_string_length(v), &id) == 0);
    if (out)
        *out = id;
}

/* One rendered message: every wire form must say the same thing as what was published. */
static void check_msg(const struct msg *m, const char *from, size_t from_len, const char *data,
                      size_t data_len, uint64_t ts)
{
    json_t *ws, *env, *want;
    struct cursor cur;
    struct msg_id id;
    const unsigned char *p;

    FUZZ_ASSERT(topic_is_valid(m->topic, m->topic_len) && m->topic[m->topic_len] == '\0');
    want = json_loadb(data, data_len, JSON_DECODE_ANY, NULL);
    FUZZ_ASSERT(want != NULL); /* callers give one JSON value */

    ws = json_loadb((const char *)m->ws, m->ws_len, 0, NULL);
    env = json_loadb((const char *)m->env, m->env_len, 0, NULL);
    FUZZ_ASSERT(ws && env);
    FUZZ_ASSERT(strcmp(json_string_value(json_object_get(ws, "type")), "message") == 0);
    FUZZ_ASSERT(json_object_size(ws) == 7 && json_object_size(env) == 5);
    check_id_string(json_object_get(env, "id"), &id);
    FUZZ_ASSERT(msg_id_cmp(id, m->id) == 0);
    FUZZ_ASSERT(json_equal(json_object_get(ws, "id"), json_object_get(env, "id")));
    FUZZ_ASSERT(json_string_length(json_object_get(env, "topic")) == m->topic_len &&
                memcmp(json_string_value(json_object_get(env, "topic")), m->topic, m->topic_len) ==
                    0);
    FUZZ_ASSERT(json_equal(json_object_get(ws, "topic"), json_object_get(env, "topic")));
    if (from_len)
        FUZZ_ASSERT(json_string_length(json_object_get(env, "from")) == from_len &&
                    memcmp(json_string_value(json_object_get(env, "from")), from, from_len) == 0);
    else
        FUZZ_ASSERT(json_is_null(json_object_get(env, "from")));
    FUZZ_ASSERT(json_equal(json_object_get(ws, "from"), json_object_get(env, "from")));
    FUZZ_ASSERT(json_integer_value(json_object_get(env, "ts")) == (json_int_t)ts);
    FUZZ_ASSERT(json_equal(json_object_get(env, "data"), want));
    FUZZ_ASSERT(json_equal(json_object_get(ws, "data"), want));
    FUZZ_ASSERT(
        json_string_length(json_object_get(ws, "cursor")) == m->cursor_len &&
        memcmp(json_string_value(json_object_get(ws, "cursor")), m->cursor, m->cursor_len) == 0);

    /* the cursor resumes this topic just after this message */
    FUZZ_ASSERT(cursor_parse(&cur, m->cursor, m->cursor_len) == 0 && cur.n == 1);
    FUZZ_ASSERT(cur.pos[0].topic_len == m->topic_len &&
                memcmp(cur.pos[0].topic, m->topic, m->topic_len) == 0);
    FUZZ_ASSERT(strcmp(cur.pos[0].epoch, m->epoch) == 0 && msg_id_cmp(cur.pos[0].id, m->id) == 0);
    cursor_release(&cur);

    /* "id: <cursor>\ndata: <envelope>\n\n": the only newlines are the framing ones */
    p = m->sse;
    FUZZ_ASSERT(m->sse_len == 4 + m->cursor_len + 7 + m->env_len + 2);
    FUZZ_ASSERT(memcmp(p, "id: ", 4) == 0 && memcmp(p + 4, m->cursor, m->cursor_len) == 0);
    FUZZ_ASSERT(memcmp(p + 4 + m->cursor_len, "\ndata: ", 7) == 0);
    FUZZ_ASSERT(p + 4 + m->cursor_len + 7 == m->env);
    FUZZ_ASSERT(memcmp(m->env + m->env_len, "\n\n", 2) == 0);
    FUZZ_ASSERT(!memchr(m->env, '\n', m->env_len) && !memchr(m->env, '\r', m->env_len));
    FUZZ_ASSERT(!memchr(m->cursor, '\n', m->cursor_len) && !memchr(m->cursor, '\r', m->cursor_len));
    FUZZ_ASSERT(m->sse_data == p + 4 + m->cursor_len + 1 &&
                m->sse_data_len == m->sse_len - 4 - m->cursor_len - 1);
    json_decref(want);
    json_decref(ws);
    json_decref(env);
}

struct msg *__wrap_msg_new(const char *topic, size_t topic_len, const char *epoch, struct msg_id id,
                           uint64_t ts, const char *from, size_t from_len, const char *data,
                           size_t data_len)
{
    struct msg *m = __real_msg_new(topic, topic_len, epoch, id, ts, from, from_len, data, data_len);

    check_msg(m, from, from_len, data, data_len, ts);
    return m;
}

/* An ephemeral message: the same fields, "ephemeral":true, no id, no cursor, no SSE id: line. */
static void check_ephemeral(const struct msg *m, const char *from, size_t from_len,
                            const char *data, size_t data_len, uint64_t ts)
{
    json_t *ws, *env, *want = json_loadb(data, data_len, JSON_DECODE_ANY, NULL);

    FUZZ_ASSERT(want != NULL && m->is_ephemeral && msg_id_is_zero(m->id) && m->cursor_len == 0);
    FUZZ_ASSERT(topic_is_valid(m->topic, m->topic_len) && m->topic[m->topic_len] == '\0');
    ws = json_loadb((const char *)m->ws, m->ws_len, 0, NULL);
    env = json_loadb((const char *)m->env, m->env_len, 0, NULL);
    FUZZ_ASSERT(ws && env);
    FUZZ_ASSERT(json_object_size(ws) == 6 && json_object_size(env) == 5);
    FUZZ_ASSERT(!json_object_get(env, "id") && !json_object_get(ws, "cursor"));
    FUZZ_ASSERT(json_is_true(json_object_get(env, "ephemeral")) &&
                json_is_true(json_object_get(ws, "ephemeral")));
    FUZZ_ASSERT(json_string_length(json_object_get(env, "topic")) == m->topic_len &&
                memcmp(json_string_value(json_object_get(env, "topic")), m->topic, m->topic_len) ==
                    0);
    if (from_len)
        FUZZ_ASSERT(json_string_length(json_object_get(env, "from")) == from_len &&
                    memcmp(json_string_value(json_object_get(env, "from")), from, from_len) == 0);
    else
        FUZZ_ASSERT(json_is_null(json_object_get(env, "from")));
    FUZZ_ASSERT(json_integer_value(json_object_get(env, "ts")) == (json_int_t)ts);
    FUZZ_ASSERT(json_equal(json_object_get(env, "data"), want) &&
                json_equal(json_object_get(ws, "data"), want));
    FUZZ_ASSERT(m->sse_len == 6 + m->env_len + 2 && memcmp(m->sse, "data: ", 6) == 0 &&
                m->sse + 6 == m->env && memcmp(m->env + m->env_len, "\n\n", 2) == 0);
    FUZZ_ASSERT(!memchr(m->env, '\n', m->env_len) && !memchr(m->env, '\r', m->env_len));
    json_decref(want);
    json_decref(ws);
    json_decref(env);
}

struct msg *__wrap_msg_new_ephemeral(const char *topic, size_t topic_len, uint64_t ts,
                                     const char *from, size_t from_len, const char *data,
                                     size_t data_len)
{
    struct msg *m = __real_msg_new_ephemeral(topic, topic_len, ts, from, from_len, data, data_len);

    check_ephemeral(m, from, from_len, data, data_len, ts);
    return m;
}

static void check_json_body(const char *body, size_t len, int status)
{
    json_t *j = json_loadb(body, len, 0, NULL), *v;
    size_t i;

    FUZZ_ASSERT(j != NULL && json_is_object(j));
    if (status >= 400)
        FUZZ_ASSERT(json_is_string(json_object_get(j, "error")) ||
                    json_is_string(json_object_get(j, "status")));
    if ((v = json_object_get(j, "cursor")))
        check_cursor_text(json_string_value(v), json_string_length(v), 1);
    json_array_foreach(json_object_get(j, "messages"), i, v)
    {
        if (!json_is_true(json_object_get(v, "ephemeral")))
            check_id_string(json_object_get(v, "id"), NULL);
        FUZZ_ASSERT(json_object_get(v, "data") != NULL);
    }
    if ((v = json_object_get(j, "id")))
        check_id_string(v, NULL);
    json_decref(j);
}

static void check_http(struct lws *w, const char *s, size_t len)
{
    const char *end = s + len, *hend, *line, *eol, *ctype = NULL, *body;
    long clen = -1;
    size_t ctype_len = 0, body_len;

    FUZZ_ASSERT(len >= 13 && memcmp(s, "HTTP/1.1 ", 9) == 0);
    FUZZ_ASSERT(s[9] >= '1' && s[9] <= '5' && s[10] >= '0' && s[10] <= '9' && s[11] >= '0' &&
                s[11] <= '9' && s[12] == ' ');
    w->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    hend = memmem(s, len, "\r\n\r\n", 4);
    FUZZ_ASSERT(hend != NULL);
    for (line = s; line < hend + 2; line = eol + 2) {
        eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        /* a header line holds no CR or LF of its own: nothing a client sent can add a header */
        FUZZ_ASSERT(!memchr(line, '\r', (size_t)(eol - line)) &&
                    !memchr(line, '\n', (size_t)(eol - line)));
        if (line == s)
            continue;
        FUZZ_ASSERT(memchr(line, ':', (size_t)(eol - line)) != NULL);
        if (has_prefix(line, (size_t)(eol - line), "content-length: "))
            clen = strtol(line + 16, NULL, 10);
        if (has_prefix(line, (size_t)(eol - line), "content-type: ")) {
            ctype = line + 14;
            ctype_len = (size_t)(eol - ctype);
        }
    }
    body = hend + 4;
    body_len = (size_t)(end - body);
    if (ctype && ctype_len == 17 && memcmp(ctype, "text/event-stream", 17) == 0) {
        FUZZ_ASSERT(body_len == 0 && w->status == 200);
        w->stream = FAKE_SSE;
        return;
    }
    FUZZ_ASSERT(clen >= 0 && (size_t)clen == body_len);
    if (body_len && ctype && ctype_len == 16 && memcmp(ctype, "application/json", 16) == 0)
        check_json_body(body, body_len, w->status);
}

/* one write of an event stream: whole events, known line kinds, no CR */
static void check_sse(const char *s, size_t len)
{
    const char *p = s, *end = s + len;

    FUZZ_ASSERT(len >= 2 && s[len - 1] == '\n' && s[len - 2] == '\n');
    FUZZ_ASSERT(!memchr(s, '\r', len));
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(eol - p);

        if (n == 0) {
            p = eol + 1;
            continue;
        }
        if (has_prefix(p, n, "data: ")) {
            json_t *j = json_loadb(p + 6, n - 6, 0, NULL);

            FUZZ_ASSERT(j && json_is_object(j));
            json_decref(j);
        } else if (has_prefix(p, n, "id: ")) {
            check_cursor_text(p + 4, n - 4, 1);
        } else if (has_prefix(p, n, "retry: ")) {
            FUZZ_ASSERT(n > 7 && strspn(p + 7, "0123456789") >= n - 7);
        } else {
            FUZZ_ASSERT((n == 12 && memcmp(p, "event: reset", 12) == 0) ||
                        (n == 12 && memcmp(p, "event: hello", 12) == 0) ||
                        (n == 9 && memcmp(p, "event: hb", 9) == 0) ||
                        (n == 4 && memcmp(p, ": hb", 4) == 0));
        }
        p = eol + 1;
    }
}

static void check_ws_text(const char *s, size_t len)
{
    json_t *j = json_loadb(s, len, 0, NULL), *v;
    const char *type;

    FUZZ_ASSERT(j && json_is_object(j));
    type = json_string_value(json_object_get(j, "type"));
    FUZZ_ASSERT(type != NULL);
    if (strcmp(type, "message") == 0 && json_is_true(json_object_get(j, "ephemeral"))) {
        FUZZ_ASSERT(!json_object_get(j, "id") && !json_object_get(j, "cursor"));
    } else if (strcmp(type, "message") == 0) {
        check_id_string(json_object_get(j, "id"), NULL);
        v = json_object_get(j, "cursor");
        check_cursor_text(json_string_value(v), json_string_length(v), 1);
    } else if (strcmp(type, "error") == 0) {
        FUZZ_ASSERT(json_is_string(json_object_get(j, "error")));
    } else if (strcmp(type, "ack") == 0) {
        if ((v = json_object_get(j, "cursor")))
            check_cursor_text(json_string_value(v), json_string_length(v), 1);
        if ((v = json_object_get(j, "id")))
            check_id_string(v, NULL);
    } else if (strcmp(type, "hello") == 0) {
        FUZZ_ASSERT(json_is_string(json_object_get(j, "node")) &&
                    json_is_integer(json_object_get(j, "ping_interval_s")));
    } else {
        FUZZ_ASSERT(strcmp(type, "reset") == 0 || strcmp(type, "pong") == 0);
    }
    json_decref(j);
}

/* RTGATE_FUZZ_TRACE=1 prints every write: what a reproducer made the gateway say */
static int trace = -1;

static void trace_write(const unsigned char *buf, size_t len, int protocol)
{
    fprintf(stderr, "[write %d, %zu bytes] ", protocol, len);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, buf[i] >= ' ' && buf[i] < 127 ? "%c" : "\\x%02x", buf[i]);
    fputc('\n', stderr);
}

void fake_on_write(struct lws *w, const unsigned char *buf, size_t len,
                   enum lws_write_protocol protocol)
{
    const char *s = (const char *)buf;

    if (trace < 0)
        trace = getenv("RTGATE_FUZZ_TRACE") != NULL;
    if (trace)
        trace_write(buf, len, (int)protocol);

    switch ((int)protocol) {
    case LWS_WRITE_HTTP_HEADERS: FUZZ_ASSERT(w->stream == FAKE_HTTP); return check_http(w, s, len);
    case LWS_WRITE_HTTP: FUZZ_ASSERT(w->stream == FAKE_SSE); return check_sse(s, len);
    case LWS_WRITE_TEXT: FUZZ_ASSERT(w->stream == FAKE_WS); return check_ws_text(s, len);
    case 4: { /* LWS_WRITE_CLOSE: code, then a reason that fits a control frame */
        unsigned code;

        FUZZ_ASSERT(w->stream == FAKE_WS && len >= 2 && len <= 125);
        code = (unsigned)buf[0] << 8 | buf[1];
        FUZZ_ASSERT(code == 1000 || code == 1001 || code == 1003 || code == 1007 || code == 1008 ||
                    code == 1009 || code == 1011 || code == 1012 || code == 1013);
        return;
    }
    default: fuzz_fail(__FILE__, __LINE__, "unexpected lws_write protocol");
    }
}

/* ---- the gateway ---- */

static const char conf_json[] =
    "{\"listen\":{\"port\":0},\"log_level\":\"debug\",\"history\":{\"size\":16},"
    "\"limits\":{\"send_queue\":8,\"max_topics_per_request\":8,\"max_messages_per_poll\":8,"
    "\"max_message_bytes\":4096,\"max_held_longpolls\":4,\"max_connections\":8},"
    "\"cors\":{\"allowed_origins\":[\"https://app.example.com\",\"*\"]},"
    "\"websocket\":{\"allowed_origins\":[\"https://app.example.com\"]},"
    "\"auth\":{\"jwt_secret\":\"" FUZZ_SECRET "\",\"api_keys\":[\"" FUZZ_API_KEY "\"],"
    "\"default_topics\":[\"*\"],\"default_publish\":[\"*\"]}}";

void fuzz_gw_init(void)
{
    char err[512];
    int n;

    if (fuzz_conf.listen_address)
        return;
    conf_init(&fuzz_conf);
    if (conf_load_string(&fuzz_conf, "fuzz", conf_json, sizeof(conf_json) - 1, err, sizeof(err)) !=
        0)
        fuzz_fail(__FILE__, __LINE__, err);
    n = auth_sign_jwt(FUZZ_SECRET, FUZZ_SECRET_LEN, "alice", (int64_t)(FUZZ_NOW_MS / 1000) - 10,
                      (int64_t)(FUZZ_NOW_MS / 1000) + 3600, fuzz_token, AUTH_TOKEN_MAX);
    FUZZ_ASSERT(n > 0);
}

static void published(void *ud, int status, const struct msg_id *id)
{
    FUZZ_ASSERT(status == 0 && id && !msg_id_is_zero(*id));
}

void fuzz_gw_publish(struct fuzz_gw *gw, const char *topic, const char *data)
{
    FUZZ_ASSERT(hub_publish(gw->hub, topic, strlen(topic), "backend", 7, data, strlen(data),
                            published, NULL) == 0);
}

void fuzz_gw_start(struct fuzz_gw *gw)
{
    char err[256];

    fuzz_gw_init();
    fuzz_now_ms = FUZZ_NOW_MS;
    gw->hub = hub_new(fuzz_conf.history_size);
    gw->bp = backplane_local_new(gw->hub);
    hub_set_backplane(gw->hub, gw->bp);
    gw->srv = http_server_new(NULL, &fuzz_conf, gw->hub, gw->bp, err, sizeof(err));
    FUZZ_ASSERT(gw->srv != NULL);
    gw->ctx = fake_context();
    FUZZ_ASSERT(strcmp(hub_epoch(gw->hub), FUZZ_EPOCH) == 0);
    fuzz_gw_publish(gw, "room:1", "{\"n\":1}");
    fuzz_gw_publish(gw, "room:1", "[2,\"two\"]");
    fuzz_gw_publish(gw, "user:alice", "\"hi alice\"");
    fuzz_now_ms += 1;
    fuzz_gw_publish(gw, "room:1", "3");
}

void fuzz_gw_stop(struct fuzz_gw *gw)
{
    http_server_free(gw->srv);
    backplane_close(gw->bp);
    hub_free(gw->hub);
    backplane_free(gw->bp);
}
