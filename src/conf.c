/* conf.c: reads the JSON config once at startup and checks all of it, so a bad file stops rtgate
 * with one "<file>: <key>: <reason>" line instead of misbehaving later. Knows jansson and the key
 * layout (docs/configuration.md); knows nothing of sockets or of what the values drive. */
#include "rtgate/conf.h"

#include "rtgate/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "rtgate/log.h"
#include "rtgate/util.h"

/* A config file is a few hundred bytes; the cap keeps "--config /dev/zero" from eating memory. */
#define CONF_FILE_MAX   (1024 * 1024)
#define CONF_SECRET_MIN 16

/* Where messages go while one document is checked. */
struct parse {
    const char *name;
    char *err;
    size_t errlen;
};

static const char *const top_keys[] = {"listen",
                                       "log_level",
                                       "history",
                                       "sse",
                                       "websocket",
                                       "longpoll",
                                       "limits",
                                       "auth",
                                       "shutdown_timeout_ms",
                                       "backplane",
                                       "cors",
                                       "shutdown_grace_ms",
                                       "shutdown_spread_ms",
                                       "log",
                                       "ready_without_backplane",
                                       "presence",
                                       "static_dir",
                                       "node_id",
                                       "stats",
                                       "webrtc",
                                       NULL};
static const char *const listen_keys[] = {
    "address", "port", "tls_cert_file", "tls_key_file", "http2", "reuse_port", NULL};
static const char *const history_keys[] = {"size", NULL};
static const char *const sse_keys[] = {"heartbeat_ms", "retry_ms", NULL};
static const char *const websocket_keys[] = {"ping_interval_s", "idle_timeout_s", "allowed_origins",
                                             NULL};
static const char *const longpoll_keys[] = {"default_timeout_s", "max_timeout_s", NULL};
static const char *const limits_keys[] = {"max_message_bytes",
                                          "send_queue",
                                          "max_connections",
                                          "max_topics_per_request",
                                          "max_messages_per_poll",
                                          "max_held_longpolls",
                                          "publish_rate",
                                          "send_queue_bytes",
                                          "publish_burst",
                                          "max_connections_per_ip",
                                          "requests_per_ip_per_s",
                                          "request_timeout_s",
                                          NULL};
static const char *const auth_keys[] = {
    "jwt_secret", "jwt_secret_file", "api_keys",        "api_keys_file",
    "keys",       "leeway_s",        "refresh_grace_s", "issuer",
    "audience",   "default_topics",  "default_publish", NULL};
static const char *const key_keys[] = {
    "kid", "alg", "secret", "secret_file", "public_key", "public_key_file", NULL};
static const char *const backplane_keys[] = {
    "type",          "url",         "username",    "password",         "connect_timeout_ms",
    "history_ttl_s", "max_pending", "signing_key", "signing_key_file", "shards",
    "sentinel",      "seeds",       NULL};
static const char *const sentinel_keys[] = {"master", "addresses", NULL};
static const char *const cors_keys[] = {"allowed_origins", NULL};
static const char *const stats_keys[] = {"access", "interval_ms", NULL};
static const char *const webrtc_keys[] = {"stun_urls",        "turn_urls",  "turn_secret",
                                          "turn_secret_file", "turn_ttl_s", NULL};
static const char *const log_keys[] = {"format", "access", "repeat_limit_per_s", NULL};
static const char *const presence_keys[] = {"enabled", "ttl_s", "events", NULL};

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Writes "<file>: [<sec>.]<key>: <reason>" and returns -1, so callers can "return fail(...)". */
static int fail(struct parse *p, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parse *p, const char *sec, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (sec)
        n = snprintf(p->err, p->errlen, "%s: %s.%s: ", p->name, sec, key);
    else
        n = snprintf(p->err, p->errlen, "%s: %s: ", p->name, key);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1; /* truncated: the prefix already filled the buffer */
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a floating-point number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown type";
}

static int is_known(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (strcmp(key, *keys) == 0)
            return 1;
    return 0;
}

/* A misspelt key would otherwise be silently ignored and its default used: reject it. */
static int check_keys(struct parse *p, json_t *obj, const char *sec, const char *const *keys)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        if (!is_known(key, keys))
            return fail(p, sec, key, "unknown key");
    }
    return 0;
}

/* Sets *@out to the object @sec of @root (NULL when absent, which means "all defaults"). */
static int get_section(struct parse *p, json_t *root, const char *sec, const char *const *keys,
                       json_t **out)
{
    json_t *v = json_object_get(root, sec);

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return fail(p, NULL, sec, "must be an object, not %s", type_name(v));
    if (check_keys(p, v, sec, keys) < 0)
        return -1;
    *out = v;
    return 0;
}

/* Returns 1 and sets *@out if @key is present in @obj (which may be NULL), 0 if absent, -1 on a
 * wrong type or a value outside @min..@max. */
static int get_int(struct parse *p, json_t *obj, const char *sec, const char *key, json_int_t min,
                   json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(obj, key);
    json_int_t n;

    *out = 0; /* gcc -O2 cannot tell that callers only read it after a 1 */
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fail(p, sec, key,
                    "must be an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT
                    ", not %s",
                    min, max, type_name(v));
    n = json_integer_value(v);
    if (n < min || n > max)
        return fail(p, sec, key,
                    "must be an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT,
                    min, max);
    *out = n;
    return 1;
}

/* The three widths the struct uses; ranges are checked first, so the casts cannot truncate. */
static int get_i(struct parse *p, json_t *obj, const char *sec, const char *key, json_int_t min,
                 json_int_t max, int *out)
{
    json_int_t n;
    int r = get_int(p, obj, sec, key, min, max, &n);

    if (r > 0)
        *out = (int)n;
    return r < 0 ? -1 : 0;
}

static int get_u32(struct parse *p, json_t *obj, const char *sec, const char *key, json_int_t min,
                   json_int_t max, uint32_t *out)
{
    json_int_t n;
    int r = get_int(p, obj, sec, key, min, max, &n);

    if (r > 0)
        *out = (uint32_t)n;
    return r < 0 ? -1 : 0;
}

static int get_size(struct parse *p, json_t *obj, const char *sec, const char *key, json_int_t min,
                    json_int_t max, size_t *out)
{
    json_int_t n;
    int r = get_int(p, obj, sec, key, min, max, &n);

    if (r > 0)
        *out = (size_t)n;
    return r < 0 ? -1 : 0;
}

/* Like get_int() for strings: *@s is borrowed from @obj, *@len excludes the NUL. */
static int get_str(struct parse *p, json_t *obj, const char *sec, const char *key, const char **s,
                   size_t *len)
{
    json_t *v = json_object_get(obj, key);

    *s = NULL; /* as in get_int() */
    *len = 0;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return fail(p, sec, key, "must be a string, not %s", type_name(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

static int get_bool(struct parse *p, json_t *obj, const char *sec, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(p, sec, key, "must be true or false, not %s", type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int parse_listen(struct parse *p, json_t *root, struct conf *nc)
{
    unsigned char addr[sizeof(struct in6_addr)];
    json_t *sec;
    const char *s;
    size_t len;
    int r;

    if (get_section(p, root, "listen", listen_keys, &sec) < 0)
        return -1;
    r = get_str(p, sec, "listen", "address", &s, &len);
    if (r < 0)
        return -1;
    if (r > 0) {
        /* Literals only: resolving names at startup would make the bind depend on DNS. */
        if (strlen(s) != len || (strcmp(s, "localhost") != 0 && inet_pton(AF_INET, s, addr) != 1 &&
                                 inet_pton(AF_INET6, s, addr) != 1))
            return fail(p, "listen", "address",
                        "\"%s\" is not an IPv4 or IPv6 address or \"localhost\"", s);
        xfree(nc->listen_address);
        nc->listen_address = xstrndup(s, len);
    }
    if (get_bool(p, sec, "listen", "reuse_port", &nc->listen_reuse_port) < 0)
        return -1;
    if (get_i(p, sec, "listen", "port", 0, 65535, &nc->listen_port) < 0)
        return -1;
    /* TLS: both files or neither; they must be readable now, not at the first handshake */
    for (int i = 0; i < 2; i++) {
        const char *key = i ? "tls_key_file" : "tls_cert_file";
        char **out = i ? &nc->tls_key_file : &nc->tls_cert_file;
        FILE *f;

        r = get_str(p, sec, "listen", key, &s, &len);
        if (r < 0)
            return -1;
        if (!r)
            continue;
        if (!(f = fopen(s, "r")))
            return fail(p, "listen", key, "cannot read \"%s\": %s", s, strerror(errno));
        fclose(f);
        *out = xstrndup(s, len);
    }
    if (!nc->tls_cert_file != !nc->tls_key_file)
        return fail(p, "listen", nc->tls_cert_file ? "tls_key_file" : "tls_cert_file",
                    "TLS needs both tls_cert_file and tls_key_file");
    if (nc->listen_reuse_port && nc->tls_cert_file)
        return fail(p, "listen", "reuse_port",
                    "not with TLS: terminate TLS in front of the "
                    "processes, or run one process per port");
    if (get_bool(p, sec, "listen", "http2", &nc->listen_http2) < 0)
        return -1;
    if (nc->listen_http2 && !nc->tls_cert_file)
        return fail(p, "listen", "http2",
                    "needs tls_cert_file and tls_key_file (browsers negotiate h2 by TLS ALPN)");
    return 0;
}

static int parse_log_level(struct parse *p, json_t *root, struct conf *nc)
{
    const char *s;
    size_t len;
    int r, lvl;

    r = get_str(p, root, NULL, "log_level", &s, &len);
    if (r <= 0)
        return r;
    lvl = log_level_parse(s);
    if (lvl < 0)
        return fail(p, NULL, "log_level", "unknown level \"%s\" (err, warn, notice, info or debug)",
                    s);
    nc->log_level = lvl;
    return 0;
}

/* Like get_int() for booleans: strictly true or false. */
static int parse_log(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec;
    const char *s;
    size_t len;
    int r, fmt;

    if (get_section(p, root, "log", log_keys, &sec) < 0)
        return -1;
    r = get_str(p, sec, "log", "format", &s, &len);
    if (r < 0)
        return -1;
    if (r > 0) {
        fmt = strlen(s) == len ? log_format_parse(s) : -1;
        if (fmt < 0)
            return fail(p, "log", "format", "unknown format \"%s\" (plain or json)", s);
        nc->log_format = fmt;
    }
    if (get_bool(p, sec, "log", "access", &nc->log_access) < 0 ||
        get_u32(p, sec, "log", "repeat_limit_per_s", 0, 1000000, &nc->log_repeat_limit_per_s) < 0)
        return -1;
    return 0;
}

static int parse_presence(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec;

    if (get_section(p, root, "presence", presence_keys, &sec) < 0 ||
        get_bool(p, sec, "presence", "enabled", &nc->presence_enabled) < 0 ||
        get_u32(p, sec, "presence", "ttl_s", 3, 3600, &nc->presence_ttl_s) < 0 ||
        get_bool(p, sec, "presence", "events", &nc->presence_events) < 0)
        return -1;
    return 0;
}

static int parse_numbers(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec;

    if (get_section(p, root, "history", history_keys, &sec) < 0 ||
        get_size(p, sec, "history", "size", 1, 1000000, &nc->history_size) < 0)
        return -1;

    if (get_section(p, root, "sse", sse_keys, &sec) < 0 ||
        get_u32(p, sec, "sse", "heartbeat_ms", 100, 300000, &nc->sse_heartbeat_ms) < 0 ||
        get_u32(p, sec, "sse", "retry_ms", 0, 600000, &nc->sse_retry_ms) < 0)
        return -1;

    if (get_section(p, root, "websocket", websocket_keys, &sec) < 0 ||
        get_u32(p, sec, "websocket", "ping_interval_s", 1, 3600, &nc->ws_ping_interval_s) < 0 ||
        get_u32(p, sec, "websocket", "idle_timeout_s", 1, 3600, &nc->ws_idle_timeout_s) < 0)
        return -1;
    /* A peer must get at least one ping before it counts as idle, or a quiet but healthy
     * connection is hung up on. */
    if (nc->ws_idle_timeout_s <= nc->ws_ping_interval_s)
        return fail(p, "websocket", "idle_timeout_s",
                    "must be greater than websocket.ping_interval_s (%" PRIu32 ")",
                    nc->ws_ping_interval_s);

    if (get_section(p, root, "longpoll", longpoll_keys, &sec) < 0 ||
        get_u32(p, sec, "longpoll", "default_timeout_s", 1, 3600, &nc->longpoll_timeout_s) < 0 ||
        get_u32(p, sec, "longpoll", "max_timeout_s", 1, 3600, &nc->longpoll_max_timeout_s) < 0)
        return -1;
    if (nc->longpoll_timeout_s > nc->longpoll_max_timeout_s)
        return fail(p, "longpoll", "default_timeout_s",
                    "must not be greater than longpoll.max_timeout_s (%" PRIu32 ")",
                    nc->longpoll_max_timeout_s);

    if (get_section(p, root, "limits", limits_keys, &sec) < 0)
        return -1;
    if (get_size(p, sec, "limits", "max_message_bytes", 64, 16 * 1024 * 1024,
                 &nc->max_message_bytes) < 0)
        return -1;
    if (get_size(p, sec, "limits", "send_queue", 1, 1000000, &nc->send_queue) < 0)
        return -1;
    if (get_size(p, sec, "limits", "max_connections", 1, 1000000, &nc->max_connections) < 0)
        return -1;
    if (get_size(p, sec, "limits", "max_topics_per_request", 1, 1024, &nc->max_topics) < 0)
        return -1;
    if (get_size(p, sec, "limits", "max_messages_per_poll", 1, 100000, &nc->max_poll_messages) < 0)
        return -1;
    if (get_size(p, sec, "limits", "send_queue_bytes", 0, 1073741824, &nc->send_queue_bytes) < 0 ||
        get_u32(p, sec, "limits", "request_timeout_s", 1, 3600, &nc->request_timeout_s) < 0 ||
        get_u32(p, sec, "limits", "publish_rate", 0, 1000000, &nc->publish_rate) < 0 ||
        get_u32(p, sec, "limits", "publish_burst", 1, 1000000, &nc->publish_burst) < 0 ||
        get_size(p, sec, "limits", "max_connections_per_ip", 0, 1000000, &nc->max_conns_per_ip) <
            0 ||
        get_u32(p, sec, "limits", "requests_per_ip_per_s", 0, 1000000, &nc->requests_per_ip) < 0)
        return -1;
    if (get_size(p, sec, "limits", "max_held_longpolls", 1, 1000000, &nc->max_held_polls) < 0)
        return -1;

    {
        json_t *rw = json_object_get(root, "ready_without_backplane");

        if (rw && !json_is_boolean(rw))
            return fail(p, NULL, "ready_without_backplane", "must be true or false, not %s",
                        type_name(rw));
        nc->ready_without_backplane = rw && json_is_true(rw);
    }
    if (get_u32(p, root, NULL, "shutdown_timeout_ms", 0, 600000, &nc->shutdown_timeout_ms) < 0 ||
        get_u32(p, root, NULL, "shutdown_grace_ms", 0, 600000, &nc->shutdown_grace_ms) < 0 ||
        get_u32(p, root, NULL, "shutdown_spread_ms", 0, 600000, &nc->shutdown_spread_ms) < 0)
        return -1;
    return 0;
}

static char *read_file(const char *path, size_t *lenp, char *err, size_t errlen);

/* A secret from "<key>" or from the file named by "<key>_file" (trailing newline dropped), so
 * secrets can stay out of the config and of `ps`. Returns 1 (found), 0 (neither), -1. */
static int get_secret(struct parse *p, json_t *obj, const char *sec, const char *key, char **out,
                      size_t *out_len)
{
    char fkey[48], ferr[300];
    const char *s, *path;
    size_t len, plen;
    int r = get_str(p, obj, sec, key, &s, &len), rf;

    snprintf(fkey, sizeof(fkey), "%s_file", key);
    rf = get_str(p, obj, sec, fkey, &path, &plen);
    if (r < 0 || rf < 0)
        return -1;
    if (r && rf)
        return fail(p, sec, fkey, "give %s or %s, not both", key, fkey);
    if (rf) {
        char *buf = read_file(path, &len, ferr, sizeof(ferr));

        if (!buf)
            return fail(p, sec, fkey, "%s", ferr);
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        *out = xstrndup(buf, len);
        *out_len = len;
        xfree(buf);
        return 1;
    }
    if (!r)
        return 0;
    *out = xstrndup(s, len);
    *out_len = len;
    return 1;
}

static int get_patterns(struct parse *p, json_t *sec, const char *key, char **out, size_t *n)
{
    json_t *list = json_object_get(sec, key), *v;
    char k[48];
    size_t i;

    if (!list)
        return 0;
    if (!json_is_array(list))
        return fail(p, "auth", key, "must be an array of topic patterns, not %s", type_name(list));
    if (json_array_size(list) > CONF_MAX_PATTERNS)
        return fail(p, "auth", key, "at most %d patterns", CONF_MAX_PATTERNS);
    json_array_foreach(list, i, v)
    {
        snprintf(k, sizeof(k), "%s[%zu]", key, i);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 200)
            return fail(p, "auth", k, "must be a topic, a prefix ending in '*', or \"*\"");
        out[(*n)++] = xstrndup(json_string_value(v), json_string_length(v));
    }
    return 0;
}

static int parse_key(struct parse *p, json_t *v, size_t i, struct conf *nc)
{
    char where[32], kerr[200], *secret = NULL, *pem = NULL;
    const char *kid = "", *algname = NULL;
    size_t len = 0, plen = 0;
    enum auth_alg alg;
    int rs, rp, rc;

    snprintf(where, sizeof(where), "auth.keys[%zu]", i);
    if (!json_is_object(v))
        return fail(p, NULL, where, "must be an object, not %s", type_name(v));
    if (check_keys(p, v, where, key_keys) < 0)
        return -1;
    if (json_object_get(v, "kid") && !(kid = json_string_value(json_object_get(v, "kid"))))
        return fail(p, where, "kid", "must be a string");
    if (strlen(kid) >= sizeof(nc->keys[0].kid))
        return fail(p, where, "kid", "too long");
    algname = json_string_value(json_object_get(v, "alg"));
    if (!algname || auth_alg_parse(algname, &alg) != 0)
        return fail(p, where, "alg", "must be one of HS256, HS384, HS512, RS256, ES256");
    if ((rs = get_secret(p, v, where, "secret", &secret, &len)) < 0)
        return -1;
    if ((rp = get_secret(p, v, where, "public_key", &pem, &plen)) < 0) {
        xfree(secret);
        return -1;
    }
    if (rs == rp) {
        xfree(secret);
        xfree(pem);
        return fail(p, NULL, where, "needs exactly one of secret(_file) or public_key(_file)");
    }
    rc = rs ? auth_key_init_secret(&nc->keys[nc->n_keys], kid, alg, secret, len, kerr, sizeof(kerr))
            : auth_key_init_pem(&nc->keys[nc->n_keys], kid, alg, pem, plen, kerr, sizeof(kerr));
    if (secret) {
        explicit_bzero(secret, len);
        xfree(secret);
    }
    xfree(pem);
    if (rc != 0)
        return fail(p, NULL, where, "%s", kerr);
    for (size_t j = 0; j < nc->n_keys; j++)
        if (strcmp(nc->keys[j].kid, nc->keys[nc->n_keys].kid) == 0) {
            auth_key_release(&nc->keys[nc->n_keys]);
            return fail(p, where, "kid", "\"%s\" is used twice", kid);
        }
    nc->n_keys++;
    return 0;
}

static int parse_auth(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec, *keys, *v;
    const char *s;
    size_t len, i;
    char key[32], kerr[200];
    int r;

    if (get_section(p, root, "auth", auth_keys, &sec) < 0)
        return -1;
    if ((keys = json_object_get(sec, "keys"))) {
        if (!json_is_array(keys))
            return fail(p, "auth", "keys", "must be an array of keys, not %s", type_name(keys));
        if (json_array_size(keys) >= CONF_MAX_KEYS)
            return fail(p, "auth", "keys", "at most %d keys", CONF_MAX_KEYS - 1);
        json_array_foreach(keys, i, v)
        {
            if (parse_key(p, v, i, nc) < 0)
                return -1;
        }
    }
    r = get_secret(p, sec, "auth", "jwt_secret", &nc->jwt_secret, &nc->jwt_secret_len);
    if (r < 0)
        return -1;
    /* No default: a secret shipped in the binary would let anyone mint tokens. */
    if (r == 0 && nc->n_keys == 0)
        return fail(p, "auth", "jwt_secret", "required (or auth.keys)");
    if (r && nc->jwt_secret_len < CONF_SECRET_MIN)
        return fail(p, "auth", "jwt_secret", "must be at least %d bytes", CONF_SECRET_MIN);
    if (r) {
        /* the plain secret is the HS256 key without a kid */
        for (size_t j = 0; j < nc->n_keys; j++)
            if (nc->keys[j].kid[0] == '\0')
                return fail(p, "auth", "keys", "a key without kid clashes with jwt_secret");
        if (auth_key_init_secret(&nc->keys[nc->n_keys], "", AUTH_HS256, nc->jwt_secret,
                                 nc->jwt_secret_len, kerr, sizeof(kerr)) != 0)
            return fail(p, "auth", "jwt_secret", "%s", kerr);
        nc->n_keys++;
    }
    if (get_u32(p, sec, "auth", "leeway_s", 0, 3600, &nc->jwt_leeway_s) < 0 ||
        get_u32(p, sec, "auth", "refresh_grace_s", 1, 3600, &nc->refresh_grace_s) < 0)
        return -1;
    r = get_str(p, sec, "auth", "issuer", &s, &len);
    if (r < 0)
        return -1;
    if (r)
        nc->jwt_issuer = xstrndup(s, len);
    r = get_str(p, sec, "auth", "audience", &s, &len);
    if (r < 0)
        return -1;
    if (r)
        nc->jwt_audience = xstrndup(s, len);
    if (get_patterns(p, sec, "default_topics", nc->default_topics, &nc->n_default_topics) < 0 ||
        get_patterns(p, sec, "default_publish", nc->default_publish, &nc->n_default_publish) < 0)
        return -1;

    keys = json_object_get(sec, "api_keys");
    if (keys) {
        if (!json_is_array(keys))
            return fail(p, "auth", "api_keys", "must be an array of strings, not %s",
                        type_name(keys));
        if (json_array_size(keys) > CONF_MAX_API_KEYS)
            return fail(p, "auth", "api_keys", "at most %d keys, not %zu", CONF_MAX_API_KEYS,
                        json_array_size(keys));
        json_array_foreach(keys, i, v)
        {
            json_t *jk = v, *topics = NULL;

            snprintf(key, sizeof(key), "api_keys[%zu]", i);
            /* "key", or {"key": "...", "topics": ["room:*", ...]} to limit where it publishes */
            if (json_is_object(v)) {
                static const char *const api_key_keys[] = {"key", "topics", NULL};

                if (check_keys(p, v, "auth", api_key_keys) < 0)
                    return -1;
                jk = json_object_get(v, "key");
                topics = json_object_get(v, "topics");
            }
            if (!json_is_string(jk))
                return fail(p, "auth", key, "must be a string, not %s", type_name(jk));
            if (json_string_length(jk) < CONF_SECRET_MIN)
                return fail(p, "auth", key, "must be at least %d bytes", CONF_SECRET_MIN);
            if (topics) {
                size_t total = 1, j;
                json_t *t;
                char *out;

                if (!json_is_array(topics) || json_array_size(topics) > CONF_MAX_PATTERNS)
                    return fail(p, "auth", key, "topics must be an array of patterns");
                json_array_foreach(topics, j, t)
                {
                    if (!json_is_string(t) || json_string_length(t) == 0)
                        return fail(p, "auth", key, "topics must be an array of patterns");
                    total += json_string_length(t) + 1;
                }
                out = nc->api_key_topics[nc->n_api_keys] = xmalloc(total);
                json_array_foreach(topics, j, t)
                {
                    memcpy(out, json_string_value(t), json_string_length(t) + 1);
                    out += json_string_length(t) + 1;
                }
                *out = '\0';
            }
            nc->api_keys[nc->n_api_keys++] =
                xstrndup(json_string_value(jk), json_string_length(jk));
        }
    }
    r = get_str(p, sec, "auth", "api_keys_file", &s, &len);
    if (r < 0)
        return -1;
    if (r) {
        /* one key per line; blank lines and lines starting with # are skipped */
        char ferr[300], *buf = read_file(s, &len, ferr, sizeof(ferr)), *line, *save = NULL;

        if (!buf)
            return fail(p, "auth", "api_keys_file", "%s", ferr);
        buf = xrealloc(buf, len + 1);
        buf[len] = '\0';
        for (line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
            if (!*line || *line == '#')
                continue;
            if (nc->n_api_keys == CONF_MAX_API_KEYS || strlen(line) < CONF_SECRET_MIN) {
                explicit_bzero(buf, len);
                xfree(buf);
                return fail(p, "auth", "api_keys_file", "at most %d keys of at least %d bytes",
                            CONF_MAX_API_KEYS, CONF_SECRET_MIN);
            }
            nc->api_keys[nc->n_api_keys++] = xstrndup(line, strlen(line));
        }
        explicit_bzero(buf, len);
        xfree(buf);
    }
    return 0;
}

/* "redis://[[user]:password@]host[:port][/db]" into @a (whose host is replaced; port and db
 * keep their values when the URL has none). @key names the key in messages. */
static int parse_redis_url(struct parse *p, const char *key, const char *url,
                           struct conf_redis_addr *a)
{
    const char *h = url + 8, *at, *slash, *colon, *end;
    char *endp;
    long v;

    if (strncmp(url, "redis://", 8) != 0)
        return fail(p, "backplane", key,
                    "must start with redis:// (TLS to Redis is not supported)");
    slash = strchr(h, '/');
    end = slash ? slash : h + strlen(h);
    at = memchr(h, '@', (size_t)(end - h));
    if (at) {
        const char *c = memchr(h, ':', (size_t)(at - h));

        if (c) {
            if (c > h)
                a->username = xstrndup(h, (size_t)(c - h));
            a->password = xstrndup(c + 1, (size_t)(at - c - 1));
        } else {
            a->password = xstrndup(h, (size_t)(at - h));
        }
        h = at + 1;
    }
    /* messages never repeat the URL: it may hold the password */
    colon = memchr(h, ':', (size_t)(end - h));
    if ((colon ? colon : end) == h)
        return fail(p, "backplane", key, "no host");
    xfree(a->host);
    a->host = xstrndup(h, (size_t)((colon ? colon : end) - h));
    if (colon) {
        v = (colon[1] >= '0' && colon[1] <= '9') ? strtol(colon + 1, &endp, 10) : -1;
        if (v < 1 || v > 65535 || endp != end)
            return fail(p, "backplane", key, "bad port (1 to 65535)");
        a->port = (int)v;
    }
    if (slash && slash[1]) {
        v = (slash[1] >= '0' && slash[1] <= '9') ? strtol(slash + 1, &endp, 10) : -1;
        if (v < 0 || v > 1000000 || *endp)
            return fail(p, "backplane", key, "bad database number (0 to 1000000)");
        a->db = (int)v;
    }
    return 0;
}

/* backplane.url into the redis_* fields. */
static int parse_main_url(struct parse *p, const char *url, struct conf *nc)
{
    struct conf_redis_addr a = {nc->redis_host, nc->redis_port, nc->redis_db, NULL, NULL};
    int r = parse_redis_url(p, "url", url, &a);

    nc->redis_host = a.host;
    nc->redis_port = a.port;
    nc->redis_db = a.db;
    nc->redis_username = a.username;
    nc->redis_password = a.password;
    return r;
}

/* backplane.shards, or backplane.seeds (the masters of a cluster): @name says which. */
static int parse_shards(struct parse *p, json_t *sec, struct conf *nc, const char *name)
{
    json_t *v = json_object_get(sec, name), *x;
    size_t i;
    char key[32];

    if (!v)
        return 0;
    if (json_object_get(sec, "url"))
        return fail(p, "backplane", name, "give \"url\" or \"%s\", not both", name);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(p, "backplane", name, "must be a non-empty array of redis:// URLs");
    if (json_array_size(v) > CONF_MAX_SHARDS)
        return fail(p, "backplane", name, "at most %d shards, not %zu", CONF_MAX_SHARDS,
                    json_array_size(v));
    json_array_foreach(v, i, x)
    {
        struct conf_redis_addr *a = &nc->redis_shards[i];

        snprintf(key, sizeof(key), "%s[%zu]", name, i);
        if (!json_is_string(x))
            return fail(p, "backplane", key, "must be a string, not %s", type_name(x));
        a->port = 6379;
        nc->n_redis_shards = i + 1; /* released from here on */
        if (parse_redis_url(p, key, json_string_value(x), a) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (strcmp(nc->redis_shards[k].host, a->host) == 0 &&
                nc->redis_shards[k].port == a->port && nc->redis_shards[k].db == a->db)
                return fail(p, "backplane", key, "the same server as %s[%zu]", name, k);
    }
    return 0;
}

/* "host:port" (an IP literal or name, port 1..65535) into *@host, *@port. */
static int parse_host_port(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long v;

    if (!colon || colon == s || !colon[1] || colon[1] < '0' || colon[1] > '9')
        return -1;
    v = strtol(colon + 1, &end, 10);
    if (*end || v < 1 || v > 65535)
        return -1;
    *host = xstrndup(s, (size_t)(colon - s));
    *port = (int)v;
    return 0;
}

static int parse_sentinel(struct parse *p, json_t *sec, struct conf *nc)
{
    json_t *v = json_object_get(sec, "sentinel"), *m, *a, *x;
    size_t i;
    char key[48];

    if (!v)
        return 0;
    if (!json_is_object(v))
        return fail(p, "backplane", "sentinel", "must be an object, not %s", type_name(v));
    if (check_keys(p, v, "backplane.sentinel", sentinel_keys) < 0)
        return -1;
    if (json_object_get(sec, "shards"))
        return fail(p, "backplane", "sentinel", "give \"shards\" or \"sentinel\", not both");
    m = json_object_get(v, "master");
    if (!json_is_string(m) || json_string_length(m) == 0 ||
        strlen(json_string_value(m)) != json_string_length(m))
        return fail(p, "backplane", "sentinel.master", "must be the name Sentinel monitors");
    a = json_object_get(v, "addresses");
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > CONF_MAX_SHARDS)
        return fail(p, "backplane", "sentinel.addresses",
                    "must be an array of 1 to %d \"host:port\" strings", CONF_MAX_SHARDS);
    nc->sentinel_master = xstrndup(json_string_value(m), json_string_length(m));
    json_array_foreach(a, i, x)
    {
        snprintf(key, sizeof(key), "sentinel.addresses[%zu]", i);
        if (!json_is_string(x) || parse_host_port(json_string_value(x), &nc->sentinel_hosts[i],
                                                  &nc->sentinel_ports[i]) < 0)
            return fail(p, "backplane", key, "must be \"host:port\"");
        nc->n_sentinels = i + 1;
    }
    return 0;
}

/* backplane.username/password for each shard whose URL gave none. */
static void inherit_credentials(struct conf *nc)
{
    for (size_t i = 0; i < nc->n_redis_shards; i++) {
        struct conf_redis_addr *a = &nc->redis_shards[i];

        if (!a->password && nc->redis_password) {
            a->password = xstrndup(nc->redis_password, strlen(nc->redis_password));
            if (!a->username && nc->redis_username)
                a->username = xstrndup(nc->redis_username, strlen(nc->redis_username));
        }
    }
}

static int parse_redis(struct parse *p, json_t *sec, struct conf *nc)
{
    const char *s;
    size_t len;
    int r;

    r = get_str(p, sec, "backplane", "url", &s, &len);
    if (r < 0 || (r == 1 && parse_main_url(p, s, nc) < 0) ||
        parse_shards(p, sec, nc, "shards") < 0 || parse_shards(p, sec, nc, "seeds") < 0 ||
        parse_sentinel(p, sec, nc) < 0)
        return -1;
    r = get_str(p, sec, "backplane", "username", &s, &len);
    if (r < 0)
        return -1;
    if (r) {
        xfree(nc->redis_username);
        nc->redis_username = xstrndup(s, len);
    }
    r = get_str(p, sec, "backplane", "password", &s, &len);
    if (r < 0)
        return -1;
    if (r) {
        xfree(nc->redis_password);
        nc->redis_password = xstrndup(s, len);
    }
    if (nc->redis_username && !nc->redis_password)
        return fail(p, "backplane", "username", "needs a password");
    inherit_credentials(nc);
    if (get_u32(p, sec, "backplane", "connect_timeout_ms", 100, 60000,
                &nc->redis_connect_timeout_ms) < 0 ||
        get_u32(p, sec, "backplane", "history_ttl_s", 1, 31536000, &nc->redis_history_ttl_s) < 0 ||
        get_size(p, sec, "backplane", "max_pending", 1, 10000000, &nc->redis_max_pending) < 0)
        return -1;
    if ((r = get_secret(p, sec, "backplane", "signing_key", &nc->redis_signing_key,
                        &nc->redis_signing_key_len)) < 0)
        return -1;
    if (r && nc->redis_signing_key_len < CONF_SECRET_MIN)
        return fail(p, "backplane", "signing_key", "must be at least %d bytes", CONF_SECRET_MIN);
    return 0;
}

static int parse_backplane(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec;
    const char *s;
    size_t len;
    int r;

    if (get_section(p, root, "backplane", backplane_keys, &sec) < 0)
        return -1;
    r = get_str(p, sec, "backplane", "type", &s, &len);
    if (r < 0)
        return r;
    if (r == 0) {
        s = "local"; /* the default: the redis keys make no sense without "type": "redis" */
        len = 5;
    }
    if (strcmp(s, "local") != 0 && strcmp(s, "redis") != 0 && strcmp(s, "redis-cluster") != 0)
        return fail(p, "backplane", "type",
                    "unsupported backplane type \"%s\" (\"local\", \"redis\" or "
                    "\"redis-cluster\")",
                    s);
    xfree(nc->backplane_type);
    nc->backplane_type = xstrndup(s, len);
    if (strcmp(s, "local") == 0) {
        for (const char *const *k = backplane_keys + 1; *k; k++)
            if (json_object_get(sec, *k))
                return fail(p, "backplane", *k, "only for \"type\": \"redis\"");
        return 0;
    }
    if (strcmp(s, "redis-cluster") == 0) {
        static const char *const not_here[] = {"url", "shards", "sentinel", NULL};

        for (const char *const *k = not_here; *k; k++)
            if (json_object_get(sec, *k))
                return fail(p, "backplane", *k,
                            "not with \"type\": \"redis-cluster\" (list its masters in "
                            "\"seeds\")");
        if (!json_object_get(sec, "seeds"))
            return fail(p, "backplane", "seeds",
                        "\"type\": \"redis-cluster\" needs the cluster's masters, e.g. "
                        "[\"redis://10.0.0.1:7000\"]");
    } else if (json_object_get(sec, "seeds")) {
        return fail(p, "backplane", "seeds", "only for \"type\": \"redis-cluster\"");
    }
    return parse_redis(p, sec, nc);
}

/* An origin as browsers send it: "*", or scheme://host[:port] with no path. */
static int is_origin(const char *s, size_t len)
{
    const char *host;

    if (len == 1 && s[0] == '*')
        return 1;
    if (len > 7 && strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else if (len > 8 && strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else
        return 0;
    const char *end = s + len, *port = NULL;

    if (host < end && *host == '[') { /* [v6]:port */
        const char *rb = memchr(host, ']', (size_t)(end - host));

        if (!rb || rb == host + 1)
            return 0;
        if (rb + 1 < end && rb[1] != ':')
            return 0;
        port = rb + 1 < end ? rb + 2 : NULL;
        if (port && port == end)
            return 0;
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));

        if (colon == host || host == end)
            return 0;
        if (colon) {
            port = colon + 1;
            if (port == end || memchr(port, ':', (size_t)(end - port)))
                return 0;
        }
    }
    for (const char *q = host; q < end; q++)
        if (*q == '/' || *q == ' ' || *q == ',' || *q == '@' || *q == '?' || *q == '#')
            return 0;
    if (port) {
        long v = 0;

        for (const char *q = port; q < end; q++) {
            if (*q < '0' || *q > '9' || v > 65535)
                return 0;
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            return 0;
    }
    return 1;
}

static int parse_origin_list(struct parse *p, const char *secname, json_t *sec, char **out,
                             size_t *n)
{
    json_t *list, *v;
    char key[40];
    size_t i;

    if (!sec || !(list = json_object_get(sec, "allowed_origins")))
        return 0;
    if (!json_is_array(list))
        return fail(p, secname, "allowed_origins", "must be an array of strings, not %s",
                    type_name(list));
    if (json_array_size(list) > CONF_MAX_ORIGINS)
        return fail(p, secname, "allowed_origins", "at most %d origins, not %zu", CONF_MAX_ORIGINS,
                    json_array_size(list));
    json_array_foreach(list, i, v)
    {
        snprintf(key, sizeof(key), "allowed_origins[%zu]", i);
        if (!json_is_string(v))
            return fail(p, secname, key, "must be a string, not %s", type_name(v));
        if (!is_origin(json_string_value(v), json_string_length(v)))
            return fail(p, secname, key,
                        "\"%s\" is not \"*\" or an origin like \"https://app.example.com\"",
                        json_string_value(v));
        out[(*n)++] = xstrndup(json_string_value(v), json_string_length(v));
    }
    return 0;
}

static int parse_cors(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec;

    if (get_section(p, root, "cors", cors_keys, &sec) < 0 ||
        parse_origin_list(p, "cors", sec, nc->cors_origins, &nc->n_cors_origins) < 0)
        return -1;
    /* the websocket section's keys were checked by parse_numbers() */
    return parse_origin_list(p, "websocket", json_object_get(root, "websocket"), nc->ws_origins,
                             &nc->n_ws_origins);
}

/* "static_dir": a directory that exists now, kept as its real path (http_static.c serves only
 * what resolves inside it); "node_id": a short printable name shown to clients and dashboards;
 * "stats": who may read GET /v1/stats/stream and how often it speaks. */
static int set_static_dir(struct parse *p, const char *s, size_t len, struct conf *nc)
{
    char real[PATH_MAX];
    struct stat st;

    if (len == 0 || strlen(s) != len)
        return fail(p, NULL, "static_dir", "must be a directory path");
    if (!realpath(s, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(p, NULL, "static_dir", "\"%s\" is not a directory", s);
    xfree(nc->static_dir);
    nc->static_dir = xstrdup(real);
    return 0;
}

int conf_set_static_dir(struct conf *cf, const char *dir, char *err, size_t errlen)
{
    struct parse p = {"--static-dir", err, errlen};

    return set_static_dir(&p, dir, strlen(dir), cf);
}

static int parse_web(struct parse *p, json_t *root, struct conf *nc)
{
    static const char *const access[] = {"api_key", "public", "off"};
    const char *s;
    size_t len;
    json_t *sec;
    int r;

    r = get_str(p, root, NULL, "static_dir", &s, &len);
    if (r < 0 || (r > 0 && set_static_dir(p, s, len, nc) < 0))
        return -1;
    r = get_str(p, root, NULL, "node_id", &s, &len);
    if (r < 0)
        return -1;
    if (r > 0) {
        if (len == 0 || len > CONF_NODE_ID_MAX)
            return fail(p, NULL, "node_id", "must be 1 to %d characters", CONF_NODE_ID_MAX);
        for (size_t i = 0; i < len; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                  (s[i] >= '0' && s[i] <= '9') || strchr("_.:-", s[i])))
                return fail(p, NULL, "node_id", "may hold only letters, digits and _.:-");
        nc->node_id = xstrndup(s, len);
    }
    if (get_section(p, root, "stats", stats_keys, &sec) < 0)
        return -1;
    r = get_str(p, sec, "stats", "access", &s, &len);
    if (r < 0)
        return -1;
    if (r > 0) {
        int found = -1;

        for (int i = 0; i < 3; i++)
            if (strcmp(s, access[i]) == 0)
                found = i;
        if (found < 0)
            return fail(p, "stats", "access", "must be \"api_key\", \"public\" or \"off\"");
        nc->stats_access = (enum conf_stats_access)found;
    }
    return get_u32(p, sec, "stats", "interval_ms", 100, 60000, &nc->stats_interval_ms);
}

/* An ICE server URL (RFC 7064/7065): @scheme then a host, no spaces, quotes or controls. */
static int is_ice_url(const char *s, size_t len, const char *scheme, const char *scheme_s)
{
    size_t n = strlen(scheme), ns = strlen(scheme_s);

    if (len > 256)
        return 0;
    if (len > ns && strncmp(s, scheme_s, ns) == 0)
        n = ns;
    else if (!(len > n && strncmp(s, scheme, n) == 0))
        return 0;
    for (size_t i = n; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)
            return 0;
    return s[n] != ':' && s[n] != '?' && s[n] != '/';
}

static int get_ice_urls(struct parse *p, json_t *sec, const char *key, const char *scheme,
                        const char *scheme_s, char **out, size_t *n)
{
    json_t *list = json_object_get(sec, key), *v;
    char k[40];
    size_t i;

    if (!list)
        return 0;
    if (!json_is_array(list))
        return fail(p, "webrtc", key, "must be an array of strings, not %s", type_name(list));
    if (json_array_size(list) > CONF_MAX_ICE_URLS)
        return fail(p, "webrtc", key, "at most %d URLs", CONF_MAX_ICE_URLS);
    json_array_foreach(list, i, v)
    {
        snprintf(k, sizeof(k), "%s[%zu]", key, i);
        if (!json_is_string(v))
            return fail(p, "webrtc", k, "must be a string, not %s", type_name(v));
        if (!is_ice_url(json_string_value(v), json_string_length(v), scheme, scheme_s))
            return fail(p, "webrtc", k, "must be a %shost[:port][?transport=udp|tcp] URL", scheme);
        out[(*n)++] = xstrndup(json_string_value(v), json_string_length(v));
    }
    return 0;
}

static int parse_webrtc(struct parse *p, json_t *root, struct conf *nc)
{
    json_t *sec;
    int r;

    if (get_section(p, root, "webrtc", webrtc_keys, &sec) < 0)
        return -1;
    if (!sec)
        return 0;
    if (get_ice_urls(p, sec, "stun_urls", "stun:", "stuns:", nc->stun_urls, &nc->n_stun_urls) < 0 ||
        get_ice_urls(p, sec, "turn_urls", "turn:", "turns:", nc->turn_urls, &nc->n_turn_urls) < 0 ||
        get_u32(p, sec, "webrtc", "turn_ttl_s", 60, 604800, &nc->turn_ttl_s) < 0)
        return -1;
    if ((r = get_secret(p, sec, "webrtc", "turn_secret", &nc->turn_secret, &nc->turn_secret_len)) <
        0)
        return -1;
    if (r && nc->turn_secret_len < CONF_SECRET_MIN)
        return fail(p, "webrtc", "turn_secret", "must be at least %d bytes", CONF_SECRET_MIN);
    if (nc->n_turn_urls && !r)
        return fail(p, "webrtc", "turn_urls", "needs webrtc.turn_secret (or turn_secret_file)");
    if (r && !nc->n_turn_urls)
        return fail(p, "webrtc", "turn_secret", "is only used with webrtc.turn_urls");
    return 0;
}

static int parse_root(struct parse *p, json_t *root, struct conf *nc)
{
    if (!json_is_object(root)) {
        snprintf(p->err, p->errlen, "%s: must be a JSON object, not %s", p->name, type_name(root));
        return -1;
    }
    if (check_keys(p, root, NULL, top_keys) < 0 || parse_listen(p, root, nc) < 0 ||
        parse_log_level(p, root, nc) < 0 || parse_log(p, root, nc) < 0 ||
        parse_numbers(p, root, nc) < 0 || parse_auth(p, root, nc) < 0 ||
        parse_backplane(p, root, nc) < 0 || parse_cors(p, root, nc) < 0 ||
        parse_presence(p, root, nc) < 0 || parse_web(p, root, nc) < 0 ||
        parse_webrtc(p, root, nc) < 0)
        return -1;
    return 0;
}

void conf_init(struct conf *cf)
{
    memset(cf, 0, sizeof(*cf));
    cf->listen_address = xstrdup("127.0.0.1");
    cf->listen_port = 8080;
    cf->log_level = LOG_INFO;
    cf->log_format = LOG_FORMAT_PLAIN;
    cf->log_access = 0;
    cf->log_repeat_limit_per_s = 10;
    cf->history_size = 1000;
    cf->sse_heartbeat_ms = 15000;
    cf->sse_retry_ms = 2000;
    cf->ws_ping_interval_s = 20;
    cf->ws_idle_timeout_s = 40;
    cf->longpoll_timeout_s = 25;
    cf->longpoll_max_timeout_s = 55;
    cf->max_message_bytes = 65536;
    cf->send_queue = 1024;
    cf->max_connections = 10000;
    cf->max_topics = 32;
    cf->max_poll_messages = 500;
    cf->max_held_polls = 10000;
    cf->shutdown_timeout_ms = 5000;
    cf->refresh_grace_s = 30;
    cf->publish_rate = 1000;
    cf->send_queue_bytes = 8 << 20;
    cf->request_timeout_s = 10;
    cf->publish_burst = 2000;
    cf->max_conns_per_ip = 0;
    cf->requests_per_ip = 0;
    cf->shutdown_grace_ms = 0;
    cf->shutdown_spread_ms = 1000;
    cf->backplane_type = xstrdup("local");
    cf->redis_host = xstrdup("127.0.0.1");
    cf->redis_port = 6379;
    cf->redis_connect_timeout_ms = 2000;
    cf->redis_history_ttl_s = 86400;
    cf->redis_max_pending = 10000;
    cf->presence_enabled = 1;
    cf->presence_ttl_s = 30;
    cf->presence_events = 0;
    cf->stats_access = CONF_STATS_API_KEY;
    cf->stats_interval_ms = 1000;
    cf->turn_ttl_s = 86400;
}

int conf_load_string(struct conf *cf, const char *name, const char *json, size_t len, char *err,
                     size_t errlen)
{
    struct parse p = {name, err, errlen};
    json_error_t jerr;
    struct conf nc;
    json_t *root;

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: line %d column %d: %s", name, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    /* Fill a fresh struct and swap it in only when all of it checks out, so a failed load
     * leaves @cf exactly as it was (still releasable, never half old and half new). */
    conf_init(&nc);
    if (parse_root(&p, root, &nc) < 0)
        goto release_new;
    json_decref(root);
    nc.path = xstrdup(name);
    conf_release(cf);
    *cf = nc;
    return 0;

release_new:
    conf_release(&nc);
    json_decref(root);
    return -1;
}

/* Reads all of @path into a new buffer (xfree() it). We read it ourselves rather than through
 * json_load_file() so that open and read failures keep their errno ("Is a directory", ...). */
static char *read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
    size_t cap = 4096, len = 0;
    char *buf;
    FILE *f;

    if (!(f = fopen(path, "rb"))) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    buf = xmalloc(cap);
    for (;;) {
        len += fread(buf + len, 1, cap - len, f);
        if (ferror(f)) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            goto free_buf;
        }
        if (feof(f))
            break;
        if (len == cap) {
            if (cap >= CONF_FILE_MAX) {
                snprintf(err, errlen, "%s: cannot read: larger than %d bytes", path, CONF_FILE_MAX);
                goto free_buf;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
    fclose(f);
    *lenp = len;
    return buf;

free_buf:
    xfree(buf);
    fclose(f);
    return NULL;
}

int conf_load(struct conf *cf, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf;
    int r;

    if (!(buf = read_file(path, &len, err, errlen)))
        return -1;
    r = conf_load_string(cf, path, buf, len, err, errlen);
    xfree(buf);
    return r;
}

/* Wipes a secret before freeing it, so it does not linger in freed heap for a core dump. */
static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        xfree(s);
    }
}

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

#define KEEP_STR(field, key)                                                                       \
    do {                                                                                           \
        char *t_ = next->field;                                                                    \
        if (str_differs(next->field, cur->field))                                                  \
            changed(key);                                                                          \
        next->field = cur->field;                                                                  \
        cur->field = t_;                                                                           \
    } while (0)
#define KEEP_NUM(field, key)                                                                       \
    do {                                                                                           \
        if (next->field != cur->field)                                                             \
            changed(key);                                                                          \
        next->field = cur->field;                                                                  \
    } while (0)

void conf_keep_startup(struct conf *next, struct conf *cur, void (*changed)(const char *key))
{
    KEEP_STR(listen_address, "listen.address");
    KEEP_NUM(listen_port, "listen.port");
    KEEP_NUM(listen_reuse_port, "listen.reuse_port");
    KEEP_STR(tls_cert_file, "listen.tls_cert_file");
    KEEP_STR(tls_key_file, "listen.tls_key_file");
    KEEP_NUM(listen_http2, "listen.http2");
    KEEP_NUM(history_size, "history.size");
    KEEP_NUM(ws_ping_interval_s, "websocket.ping_interval_s");
    KEEP_NUM(ws_idle_timeout_s, "websocket.idle_timeout_s");
    KEEP_STR(backplane_type, "backplane.type");
    KEEP_STR(redis_host, "backplane.url");
    KEEP_NUM(redis_port, "backplane.url");
    KEEP_NUM(redis_db, "backplane.url");
    KEEP_STR(redis_username, "backplane.username");
    KEEP_STR(redis_password, "backplane.password");
    if (next->n_redis_shards != cur->n_redis_shards ||
        memcmp(next->redis_shards, cur->redis_shards, sizeof(cur->redis_shards)) != 0) {
        struct conf_redis_addr t[CONF_MAX_SHARDS];
        size_t n = next->n_redis_shards;
        int same = n == cur->n_redis_shards;

        for (size_t i = 0; same && i < n; i++)
            same = !str_differs(next->redis_shards[i].host, cur->redis_shards[i].host) &&
                   next->redis_shards[i].port == cur->redis_shards[i].port &&
                   next->redis_shards[i].db == cur->redis_shards[i].db &&
                   !str_differs(next->redis_shards[i].username, cur->redis_shards[i].username) &&
                   !str_differs(next->redis_shards[i].password, cur->redis_shards[i].password);
        if (!same)
            changed("backplane.shards");
        memcpy(t, next->redis_shards, sizeof(t));
        memcpy(next->redis_shards, cur->redis_shards, sizeof(t));
        memcpy(cur->redis_shards, t, sizeof(t));
        next->n_redis_shards = cur->n_redis_shards;
        cur->n_redis_shards = n;
    }
    {
        int same = !str_differs(next->sentinel_master, cur->sentinel_master) &&
                   next->n_sentinels == cur->n_sentinels;
        char *h[CONF_MAX_SHARDS];
        int pt[CONF_MAX_SHARDS];
        size_t n = next->n_sentinels;

        for (size_t i = 0; same && i < n; i++)
            same = !str_differs(next->sentinel_hosts[i], cur->sentinel_hosts[i]) &&
                   next->sentinel_ports[i] == cur->sentinel_ports[i];
        if (!same)
            changed("backplane.sentinel");
        h[0] = next->sentinel_master;
        next->sentinel_master = cur->sentinel_master;
        cur->sentinel_master = h[0];
        memcpy(h, next->sentinel_hosts, sizeof(h));
        memcpy(pt, next->sentinel_ports, sizeof(pt));
        memcpy(next->sentinel_hosts, cur->sentinel_hosts, sizeof(h));
        memcpy(next->sentinel_ports, cur->sentinel_ports, sizeof(pt));
        memcpy(cur->sentinel_hosts, h, sizeof(h));
        memcpy(cur->sentinel_ports, pt, sizeof(pt));
        next->n_sentinels = cur->n_sentinels;
        cur->n_sentinels = n;
    }
    KEEP_NUM(redis_connect_timeout_ms, "backplane.connect_timeout_ms");
    KEEP_NUM(redis_history_ttl_s, "backplane.history_ttl_s");
    KEEP_NUM(redis_max_pending, "backplane.max_pending");
    KEEP_STR(redis_signing_key, "backplane.signing_key");
    KEEP_STR(static_dir, "static_dir");
    KEEP_STR(node_id, "node_id");
    KEEP_NUM(redis_signing_key_len, "backplane.signing_key");
    KEEP_NUM(presence_enabled, "presence.enabled");
    KEEP_NUM(presence_ttl_s, "presence.ttl_s");
    KEEP_NUM(presence_events, "presence.events");
}

void conf_release(struct conf *cf)
{
    xfree(cf->path);
    cf->path = NULL;
    xfree(cf->listen_address);
    cf->listen_address = NULL;
    xfree(cf->tls_cert_file);
    xfree(cf->tls_key_file);
    cf->tls_cert_file = cf->tls_key_file = NULL;
    free_secret(cf->jwt_secret);
    cf->jwt_secret = NULL;
    cf->jwt_secret_len = 0;
    for (size_t i = 0; i < cf->n_keys; i++)
        auth_key_release(&cf->keys[i]);
    cf->n_keys = 0;
    xfree(cf->jwt_issuer);
    xfree(cf->jwt_audience);
    cf->jwt_issuer = cf->jwt_audience = NULL;
    for (size_t i = 0; i < cf->n_default_topics; i++)
        xfree(cf->default_topics[i]);
    for (size_t i = 0; i < cf->n_default_publish; i++)
        xfree(cf->default_publish[i]);
    cf->n_default_topics = cf->n_default_publish = 0;
    for (size_t i = 0; i < cf->n_api_keys; i++) {
        free_secret(cf->api_keys[i]);
        cf->api_keys[i] = NULL;
        xfree(cf->api_key_topics[i]);
        cf->api_key_topics[i] = NULL;
    }
    cf->n_api_keys = 0;
    for (size_t i = 0; i < cf->n_cors_origins; i++) {
        xfree(cf->cors_origins[i]);
        cf->cors_origins[i] = NULL;
    }
    cf->n_cors_origins = 0;
    for (size_t i = 0; i < cf->n_ws_origins; i++) {
        xfree(cf->ws_origins[i]);
        cf->ws_origins[i] = NULL;
    }
    cf->n_ws_origins = 0;
    xfree(cf->backplane_type);
    cf->backplane_type = NULL;
    xfree(cf->redis_host);
    cf->redis_host = NULL;
    xfree(cf->redis_username);
    cf->redis_username = NULL;
    free_secret(cf->redis_password);
    cf->redis_password = NULL;
    for (size_t i = 0; i < cf->n_redis_shards; i++) {
        struct conf_redis_addr *a = &cf->redis_shards[i];

        xfree(a->host);
        xfree(a->username);
        free_secret(a->password);
        memset(a, 0, sizeof(*a));
    }
    cf->n_redis_shards = 0;
    xfree(cf->sentinel_master);
    cf->sentinel_master = NULL;
    for (size_t i = 0; i < cf->n_sentinels; i++) {
        xfree(cf->sentinel_hosts[i]);
        cf->sentinel_hosts[i] = NULL;
    }
    cf->n_sentinels = 0;
    free_secret(cf->redis_signing_key);
    cf->redis_signing_key = NULL;
    cf->redis_signing_key_len = 0;
    xfree(cf->static_dir);
    cf->static_dir = NULL;
    xfree(cf->node_id);
    cf->node_id = NULL;
    for (size_t i = 0; i < cf->n_stun_urls; i++)
        xfree(cf->stun_urls[i]);
    for (size_t i = 0; i < cf->n_turn_urls; i++)
        xfree(cf->turn_urls[i]);
    cf->n_stun_urls = cf->n_turn_urls = 0;
    free_secret(cf->turn_secret);
    cf->turn_secret = NULL;
    cf->turn_secret_len = 0;
}
