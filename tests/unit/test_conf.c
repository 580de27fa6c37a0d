/* test_conf.c: conf_load()/conf_load_string() through the header: defaults, a full file, each
 * class of error with its exact message, and the committed conf/rtgate.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After every system header: with UNIT_TESTING it redefines malloc() and free(). */
#include <cmocka.h>

#include "rtgate/conf.h"
#include "rtgate/log.h"

/* CMake passes the source tree so the test finds conf/ from the build directory too. */
#ifndef SOURCE_DIR
#define SOURCE_DIR "."
#endif

#define SECRET "0123456789abcdef" /* exactly 16 bytes, the minimum */
#define AUTH   "\"auth\":{\"jwt_secret\":\"" SECRET "\"}"
#define KEY16  "key-0123456789ab"

static int load(struct conf *cf, const char *json, char *err, size_t errlen)
{
    return conf_load_string(cf, "x.json", json, strlen(json), err, errlen);
}

/* Loads @json into a fresh conf, expects failure with exactly @want, and releases. */
static void expect_error(const char *json, const char *want)
{
    char err[512] = "";
    struct conf cf;

    conf_init(&cf);
    assert_int_equal(load(&cf, json, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    conf_release(&cf);
}

/* Loads @json, which must be valid, into @cf (already conf_init'ed). */
static void expect_ok(struct conf *cf, const char *json)
{
    char err[512] = "";

    if (load(cf, json, err, sizeof(err)) != 0)
        fail_msg("unexpected error: %s (for %s)", err, json);
}

/* Compares a string field that may legitimately be NULL. */
static void assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

/* The backplane.* values a file without url/username/password/... gets (type aside). */
static void assert_redis_defaults(const struct conf *cf)
{
    assert_string_equal(cf->redis_host, "127.0.0.1");
    assert_int_equal(cf->redis_port, 6379);
    assert_int_equal(cf->redis_db, 0);
    assert_null(cf->redis_username);
    assert_null(cf->redis_password);
    assert_int_equal(cf->redis_connect_timeout_ms, 2000);
    assert_int_equal(cf->redis_history_ttl_s, 86400);
    assert_int_equal(cf->redis_max_pending, 10000);
}

/* For tests of behaviour still missing from src/conf.c: every offending case is named in one
 * failure instead of only the first. */
static void note_case(char *list, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note_case(char *list, size_t size, const char *fmt, ...)
{
    size_t n = strlen(list);
    va_list ap;

    if (n + 4 >= size)
        return;
    if (n)
        n += (size_t)snprintf(list + n, size - n, "; ");
    va_start(ap, fmt);
    vsnprintf(list + n, size - n, fmt, ap);
    va_end(ap);
}

static void assert_defaults(const struct conf *cf)
{
    assert_int_equal(cf->n_stun_urls, 0);
    assert_int_equal(cf->n_turn_urls, 0);
    assert_null(cf->turn_secret);
    assert_int_equal(cf->turn_ttl_s, 86400);
    assert_string_equal(cf->listen_address, "127.0.0.1");
    assert_int_equal(cf->listen_port, 8080);
    assert_int_equal(cf->listen_http2, 0);
    assert_int_equal(cf->log_level, LOG_INFO);
    assert_int_equal(cf->log_format, LOG_FORMAT_PLAIN);
    assert_int_equal(cf->log_access, 0);
    assert_int_equal(cf->log_repeat_limit_per_s, 10);
    assert_int_equal(cf->history_size, 1000);
    assert_int_equal(cf->sse_heartbeat_ms, 15000);
    assert_int_equal(cf->sse_retry_ms, 2000);
    assert_int_equal(cf->ws_ping_interval_s, 20);
    assert_int_equal(cf->ws_idle_timeout_s, 40);
    assert_int_equal(cf->longpoll_timeout_s, 25);
    assert_int_equal(cf->longpoll_max_timeout_s, 55);
    assert_int_equal(cf->max_message_bytes, 65536);
    assert_int_equal(cf->send_queue, 1024);
    assert_int_equal(cf->max_connections, 10000);
    assert_int_equal(cf->max_topics, 32);
    assert_int_equal(cf->max_poll_messages, 500);
    assert_int_equal(cf->max_held_polls, 10000);
    assert_int_equal(cf->shutdown_timeout_ms, 5000);
    assert_string_equal(cf->backplane_type, "local");
    assert_redis_defaults(cf);
    assert_int_equal(cf->n_cors_origins, 0);
    assert_null(cf->cors_origins[0]);
}

static void test_defaults(void **state)
{
    struct conf cf;

    conf_init(&cf);
    assert_defaults(&cf);
    assert_null(cf.path);
    assert_null(cf.jwt_secret);
    assert_int_equal(cf.jwt_secret_len, 0);
    assert_int_equal(cf.n_api_keys, 0);
    conf_release(&cf);
    conf_release(&cf); /* a second release is harmless */
}

static void test_minimal_file_keeps_defaults(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, "{" AUTH "}");
    assert_defaults(&cf);
    assert_string_equal(cf.path, "x.json");
    assert_string_equal(cf.jwt_secret, SECRET);
    assert_int_equal(cf.jwt_secret_len, 16);
    assert_int_equal(cf.n_api_keys, 0);
    conf_release(&cf);
}

static const char full_json[] =
    "{\n"
    "  \"listen\": {\"address\": \"::1\", \"port\": 9090},\n"
    "  \"log_level\": \"debug\",\n"
    "  \"history\": {\"size\": 50},\n"
    "  \"sse\": {\"heartbeat_ms\": 1000, \"retry_ms\": 0},\n"
    "  \"websocket\": {\"ping_interval_s\": 5, \"idle_timeout_s\": 12},\n"
    "  \"longpoll\": {\"default_timeout_s\": 10, \"max_timeout_s\": 30},\n"
    "  \"limits\": {\"max_message_bytes\": 4096, \"send_queue\": 64, \"max_connections\": 100,\n"
    "             \"max_topics_per_request\": 8, \"max_messages_per_poll\": 20,\n"
    "             \"max_held_longpolls\": 50},\n"
    "  \"auth\": {\"jwt_secret\": \"a-much-longer-secret-than-16\",\n"
    "           \"api_keys\": [\"" KEY16 "\", \"second-api-key-0123456789\"]},\n"
    "  \"shutdown_timeout_ms\": 250,\n"
    "  \"backplane\": {\"type\": \"local\"}\n"
    "}\n";

static void test_full_file(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, full_json);
    assert_string_equal(cf.path, "x.json");
    assert_string_equal(cf.listen_address, "::1");
    assert_int_equal(cf.listen_port, 9090);
    assert_int_equal(cf.log_level, LOG_DEBUG);
    assert_int_equal(cf.history_size, 50);
    assert_int_equal(cf.sse_heartbeat_ms, 1000);
    assert_int_equal(cf.sse_retry_ms, 0);
    assert_int_equal(cf.ws_ping_interval_s, 5);
    assert_int_equal(cf.ws_idle_timeout_s, 12);
    assert_int_equal(cf.longpoll_timeout_s, 10);
    assert_int_equal(cf.longpoll_max_timeout_s, 30);
    assert_int_equal(cf.max_message_bytes, 4096);
    assert_int_equal(cf.send_queue, 64);
    assert_int_equal(cf.max_connections, 100);
    assert_int_equal(cf.max_topics, 8);
    assert_int_equal(cf.max_poll_messages, 20);
    assert_int_equal(cf.max_held_polls, 50);
    assert_string_equal(cf.jwt_secret, "a-much-longer-secret-than-16");
    assert_int_equal(cf.jwt_secret_len, strlen("a-much-longer-secret-than-16"));
    assert_int_equal(cf.n_api_keys, 2);
    assert_string_equal(cf.api_keys[0], KEY16);
    assert_string_equal(cf.api_keys[1], "second-api-key-0123456789");
    assert_int_equal(cf.shutdown_timeout_ms, 250);
    assert_string_equal(cf.backplane_type, "local");
    conf_release(&cf);
}

/* Every integer at its lowest, then its highest allowed value (cross-checks permitting). */
static void test_bounds_accepted(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, "{\"listen\":{\"port\":0},\"history\":{\"size\":1},"
                   "\"sse\":{\"heartbeat_ms\":100,\"retry_ms\":0},"
                   "\"websocket\":{\"ping_interval_s\":1,\"idle_timeout_s\":2},"
                   "\"longpoll\":{\"default_timeout_s\":1,\"max_timeout_s\":1},"
                   "\"limits\":{\"max_message_bytes\":64,\"send_queue\":1,\"max_connections\":1,"
                   "\"max_topics_per_request\":1,\"max_messages_per_poll\":1,"
                   "\"max_held_longpolls\":1},"
                   "\"shutdown_timeout_ms\":0," AUTH "}");
    assert_int_equal(cf.listen_port, 0);
    assert_int_equal(cf.history_size, 1);
    assert_int_equal(cf.sse_heartbeat_ms, 100);
    assert_int_equal(cf.ws_ping_interval_s, 1);
    assert_int_equal(cf.ws_idle_timeout_s, 2);
    assert_int_equal(cf.longpoll_timeout_s, 1);
    assert_int_equal(cf.longpoll_max_timeout_s, 1);
    assert_int_equal(cf.max_message_bytes, 64);
    assert_int_equal(cf.max_held_polls, 1);
    assert_int_equal(cf.shutdown_timeout_ms, 0);

    expect_ok(&cf, "{\"listen\":{\"port\":65535},\"history\":{\"size\":1000000},"
                   "\"sse\":{\"heartbeat_ms\":300000,\"retry_ms\":600000},"
                   "\"websocket\":{\"ping_interval_s\":3599,\"idle_timeout_s\":3600},"
                   "\"longpoll\":{\"default_timeout_s\":3600,\"max_timeout_s\":3600},"
                   "\"limits\":{\"max_message_bytes\":16777216,\"send_queue\":1000000,"
                   "\"max_connections\":1000000,\"max_topics_per_request\":1024,"
                   "\"max_messages_per_poll\":100000,\"max_held_longpolls\":1000000},"
                   "\"shutdown_timeout_ms\":600000," AUTH "}");
    assert_int_equal(cf.listen_port, 65535);
    assert_int_equal(cf.history_size, 1000000);
    assert_int_equal(cf.sse_heartbeat_ms, 300000);
    assert_int_equal(cf.sse_retry_ms, 600000);
    assert_int_equal(cf.ws_idle_timeout_s, 3600);
    assert_int_equal(cf.longpoll_timeout_s, 3600);
    assert_int_equal(cf.max_message_bytes, 16777216);
    assert_int_equal(cf.send_queue, 1000000);
    assert_int_equal(cf.max_connections, 1000000);
    assert_int_equal(cf.max_topics, 1024);
    assert_int_equal(cf.max_poll_messages, 100000);
    assert_int_equal(cf.shutdown_timeout_ms, 600000);
    conf_release(&cf);
}

/* A second load replaces every string (the leak checker catches the old ones), and a failed
 * load leaves the previous values untouched. */
static void test_reload_and_failed_reload(void **state)
{
    char err[256];
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, full_json);
    expect_ok(&cf, "{\"listen\":{\"address\":\"0.0.0.0\"},"
                   "\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":[\"" KEY16 "\"]}}");
    assert_string_equal(cf.listen_address, "0.0.0.0");
    assert_int_equal(cf.listen_port, 8080);
    assert_string_equal(cf.jwt_secret, SECRET);
    assert_int_equal(cf.n_api_keys, 1);
    assert_null(cf.api_keys[1]);

    assert_int_equal(
        load(&cf, "{\"listen\":{\"address\":\"::\",\"port\":-1}," AUTH "}", err, sizeof(err)), -1);
    assert_string_equal(err, "x.json: listen.port: must be an integer from 0 to 65535");
    assert_string_equal(cf.listen_address, "0.0.0.0");
    assert_int_equal(cf.n_api_keys, 1);
    assert_string_equal(cf.path, "x.json");
    conf_release(&cf);
}

static void test_unknown_keys(void **state)
{
    expect_error("{\"listne\":{}," AUTH "}", "x.json: listne: unknown key");
    expect_error("{\"listen\":{\"prot\":80}," AUTH "}", "x.json: listen.prot: unknown key");
    expect_error("{\"limits\":{\"send_queue\":5,\"max_topics\":3}," AUTH "}",
                 "x.json: limits.max_topics: unknown key");
    expect_error("{\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_key\":[]}}",
                 "x.json: auth.api_key: unknown key");
    expect_error("{\"backplane\":{\"type\":\"local\",\"redis\":{}}," AUTH "}",
                 "x.json: backplane.redis: unknown key");
}

static void test_wrong_types(void **state)
{
    expect_error("{\"listen\":{\"http2\":1}," AUTH "}",
                 "x.json: listen.http2: must be true or false, not an integer");
    expect_error("{\"listen\":{\"http2\":true}," AUTH "}",
                 "x.json: listen.http2: needs tls_cert_file and tls_key_file (browsers negotiate "
                 "h2 by TLS ALPN)");
    expect_error("{\"listen\":{\"port\":\"8080\"}," AUTH "}",
                 "x.json: listen.port: must be an integer from 0 to 65535, not a string");
    expect_error("{\"listen\":{\"port\":8080.0}," AUTH "}",
                 "x.json: listen.port: must be an integer from 0 to 65535, "
                 "not a floating-point number");
    expect_error("{\"history\":{\"size\":null}," AUTH "}",
                 "x.json: history.size: must be an integer from 1 to 1000000, not null");
    expect_error("{\"shutdown_timeout_ms\":true," AUTH "}",
                 "x.json: shutdown_timeout_ms: must be an integer from 0 to 600000, "
                 "not a boolean");
    expect_error("{\"listen\":{\"address\":127}," AUTH "}",
                 "x.json: listen.address: must be a string, not an integer");
    expect_error("{\"log_level\":[\"info\"]," AUTH "}",
                 "x.json: log_level: must be a string, not an array");
    expect_error("{\"listen\":8080," AUTH "}", "x.json: listen: must be an object, not an integer");
    expect_error("{\"auth\":\"" SECRET "\"}", "x.json: auth: must be an object, not a string");
    expect_error("{\"backplane\":\"local\"," AUTH "}",
                 "x.json: backplane: must be an object, not a string");
    expect_error("{\"backplane\":{\"type\":{}}," AUTH "}",
                 "x.json: backplane.type: must be a string, not an object");
    expect_error("{\"auth\":{\"jwt_secret\":1234567890123456}}",
                 "x.json: auth.jwt_secret: must be a string, not an integer");
    expect_error("[]", "x.json: must be a JSON object, not an array");
}

struct range_case {
    const char *sec; /* NULL for a top-level key */
    const char *key;
    long long min, max;
};

static const struct range_case ranges[] = {
    {"listen", "port", 0, 65535},
    {"history", "size", 1, 1000000},
    {"sse", "heartbeat_ms", 100, 300000},
    {"sse", "retry_ms", 0, 600000},
    {"websocket", "ping_interval_s", 1, 3600},
    {"websocket", "idle_timeout_s", 1, 3600},
    {"longpoll", "default_timeout_s", 1, 3600},
    {"longpoll", "max_timeout_s", 1, 3600},
    {"limits", "max_message_bytes", 64, 16777216},
    {"limits", "send_queue", 1, 1000000},
    {"limits", "max_connections", 1, 1000000},
    {"limits", "max_topics_per_request", 1, 1024},
    {"limits", "max_messages_per_poll", 1, 100000},
    {"limits", "max_held_longpolls", 1, 1000000},
    {NULL, "shutdown_timeout_ms", 0, 600000},
};

/* One below the minimum and one above the maximum of every integer key. */
static void test_out_of_range(void **state)
{
    char json[256], want[256];

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        const struct range_case *c = &ranges[i];
        long long bad[2] = {c->min - 1, c->max + 1};

        for (int j = 0; j < 2; j++) {
            if (c->sec) {
                snprintf(json, sizeof(json), "{\"%s\":{\"%s\":%lld}," AUTH "}", c->sec, c->key,
                         bad[j]);
                snprintf(want, sizeof(want), "x.json: %s.%s: must be an integer from %lld to %lld",
                         c->sec, c->key, c->min, c->max);
            } else {
                snprintf(json, sizeof(json), "{\"%s\":%lld," AUTH "}", c->key, bad[j]);
                snprintf(want, sizeof(want), "x.json: %s: must be an integer from %lld to %lld",
                         c->key, c->min, c->max);
            }
            expect_error(json, want);
        }
    }
    /* Far outside any width we store, and beyond what jansson can hold at all. */
    expect_error("{\"limits\":{\"send_queue\":4294967297}," AUTH "}",
                 "x.json: limits.send_queue: must be an integer from 1 to 1000000");
    expect_error("{\"limits\":{\"send_queue\":99999999999999999999}," AUTH "}",
                 "x.json: line 1 column 44: too big integer near '99999999999999999999'");
}

static void test_jwt_secret(void **state)
{
    struct conf cf;

    expect_error("{}", "x.json: auth.jwt_secret: required (or auth.keys)");
    expect_error("{\"auth\":{}}", "x.json: auth.jwt_secret: required (or auth.keys)");
    expect_error("{\"auth\":{\"api_keys\":[\"" KEY16 "\"]}}",
                 "x.json: auth.jwt_secret: required (or auth.keys)");
    expect_error("{\"auth\":{\"jwt_secret\":\"0123456789abcde\"}}",
                 "x.json: auth.jwt_secret: must be at least 16 bytes");
    expect_error("{\"auth\":{\"jwt_secret\":\"\"}}",
                 "x.json: auth.jwt_secret: must be at least 16 bytes");

    /* Length is in bytes: 8 two-byte characters are enough. */
    conf_init(&cf);
    expect_ok(&cf, "{\"auth\":{\"jwt_secret\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                   "\\u00e9\\u00e9\"}}");
    assert_int_equal(cf.jwt_secret_len, 16);
    conf_release(&cf);
}

static void test_api_keys(void **state)
{
    char json[2048];
    struct conf cf;
    size_t n;

    expect_error("{\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":\"" KEY16 "\"}}",
                 "x.json: auth.api_keys: must be an array of strings, not a string");
    expect_error("{\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":[\"" KEY16
                 "\",\"short\"]}}",
                 "x.json: auth.api_keys[1]: must be at least 16 bytes");
    expect_error("{\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":[42]}}",
                 "x.json: auth.api_keys[0]: must be a string, not an integer");

    /* Exactly CONF_MAX_API_KEYS is fine; one more is not. */
    n = (size_t)snprintf(json, sizeof(json),
                         "{"
                         "\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":[");
    for (int i = 0; i < CONF_MAX_API_KEYS; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"api-key-%02d-0123456789\"",
                              i ? "," : "", i);
    snprintf(json + n, sizeof(json) - n, "]}}");
    conf_init(&cf);
    expect_ok(&cf, json);
    assert_int_equal(cf.n_api_keys, CONF_MAX_API_KEYS);
    assert_string_equal(cf.api_keys[0], "api-key-00-0123456789");
    assert_string_equal(cf.api_keys[CONF_MAX_API_KEYS - 1], "api-key-15-0123456789");
    conf_release(&cf);

    snprintf(json + n, sizeof(json) - n, ",\"api-key-16-0123456789\"]}}");
    expect_error(json, "x.json: auth.api_keys: at most 16 keys, not 17");

    conf_init(&cf);
    expect_ok(&cf, "{\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":[]}}");
    assert_int_equal(cf.n_api_keys, 0);
    conf_release(&cf);
}

static void test_log_level(void **state)
{
    static const char *const names[] = {"err", "warn", "notice", "info", "debug"};
    char json[128];
    struct conf cf;

    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof(json), "{\"log_level\":\"%s\"," AUTH "}", names[i]);
        conf_init(&cf);
        expect_ok(&cf, json);
        assert_int_equal(cf.log_level, i);
        conf_release(&cf);
    }
    expect_error("{\"log_level\":\"verbose\"," AUTH "}",
                 "x.json: log_level: unknown level \"verbose\" "
                 "(err, warn, notice, info or debug)");
    expect_error("{\"log_level\":\"INFO\"," AUTH "}",
                 "x.json: log_level: unknown level \"INFO\" (err, warn, notice, info or debug)");
}

static void test_log_section(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf,
              "{\"log\":{\"format\":\"json\",\"access\":true,\"repeat_limit_per_s\":0}," AUTH "}");
    assert_int_equal(cf.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cf.log_access, 1);
    assert_int_equal(cf.log_repeat_limit_per_s, 0);
    assert_int_equal(cf.log_level, LOG_INFO); /* log_level stays a top-level key */
    conf_release(&cf);

    conf_init(&cf);
    expect_ok(&cf, "{\"log\":{\"format\":\"plain\",\"access\":false,"
                   "\"repeat_limit_per_s\":1000000}," AUTH "}");
    assert_int_equal(cf.log_format, LOG_FORMAT_PLAIN);
    assert_int_equal(cf.log_access, 0);
    assert_int_equal(cf.log_repeat_limit_per_s, 1000000);
    conf_release(&cf);

    conf_init(&cf);
    expect_ok(&cf, "{\"log\":{}," AUTH "}"); /* an empty section: all defaults */
    assert_defaults(&cf);
    conf_release(&cf);

    expect_error("{\"log\":{\"format\":\"text\"}," AUTH "}",
                 "x.json: log.format: unknown format \"text\" (plain or json)");
    expect_error("{\"log\":{\"format\":\"JSON\"}," AUTH "}",
                 "x.json: log.format: unknown format \"JSON\" (plain or json)");
    expect_error("{\"log\":{\"format\":1}," AUTH "}",
                 "x.json: log.format: must be a string, not an integer");
    expect_error("{\"log\":{\"access\":\"yes\"}," AUTH "}",
                 "x.json: log.access: must be true or false, not a string");
    expect_error("{\"log\":{\"access\":1}," AUTH "}",
                 "x.json: log.access: must be true or false, not an integer");
    expect_error("{\"log\":{\"repeat_limit_per_s\":-1}," AUTH "}",
                 "x.json: log.repeat_limit_per_s: must be an integer from 0 to 1000000");
    expect_error("{\"log\":{\"repeat_limit_per_s\":1000001}," AUTH "}",
                 "x.json: log.repeat_limit_per_s: must be an integer from 0 to 1000000");
    expect_error("{\"log\":{\"repeat_limit_per_s\":1.5}," AUTH "}",
                 "x.json: log.repeat_limit_per_s: must be an integer from 0 to 1000000, not a "
                 "floating-point number");
    expect_error("{\"log\":{\"level\":\"info\"}," AUTH "}", "x.json: log.level: unknown key");
    expect_error("{\"log\":\"json\"," AUTH "}", "x.json: log: must be an object, not a string");
}

static void test_presence_section(void **state)
{
    struct conf cf;

    conf_init(&cf);
    assert_int_equal(cf.presence_enabled, 1);
    assert_int_equal(cf.presence_ttl_s, 30);
    assert_int_equal(cf.presence_events, 0);
    expect_ok(&cf, "{\"presence\":{\"enabled\":false,\"ttl_s\":3,\"events\":true}," AUTH "}");
    assert_int_equal(cf.presence_enabled, 0);
    assert_int_equal(cf.presence_ttl_s, 3);
    assert_int_equal(cf.presence_events, 1);
    conf_release(&cf);

    conf_init(&cf);
    expect_ok(&cf, "{\"presence\":{\"ttl_s\":3600}," AUTH "}");
    assert_int_equal(cf.presence_enabled, 1);
    assert_int_equal(cf.presence_ttl_s, 3600);
    conf_release(&cf);

    expect_error("{\"presence\":{\"ttl_s\":2}," AUTH "}",
                 "x.json: presence.ttl_s: must be an integer from 3 to 3600");
    expect_error("{\"presence\":{\"ttl_s\":3601}," AUTH "}",
                 "x.json: presence.ttl_s: must be an integer from 3 to 3600");
    expect_error("{\"presence\":{\"events\":1}," AUTH "}",
                 "x.json: presence.events: must be true or false, not an integer");
    expect_error("{\"presence\":{\"enabled\":\"no\"}," AUTH "}",
                 "x.json: presence.enabled: must be true or false, not a string");
    expect_error("{\"presence\":{\"users\":1}," AUTH "}", "x.json: presence.users: unknown key");
    expect_error("{\"presence\":true," AUTH "}",
                 "x.json: presence: must be an object, not a boolean");
}

static void test_listen_reuse_port(void **state)
{
    struct conf cf;

    conf_init(&cf);
    assert_int_equal(cf.listen_reuse_port, 0);
    expect_ok(&cf, "{\"listen\":{\"port\":8081,\"reuse_port\":true}," AUTH "}");
    assert_int_equal(cf.listen_reuse_port, 1);
    conf_release(&cf);
    expect_error("{\"listen\":{\"reuse_port\":1}," AUTH "}",
                 "x.json: listen.reuse_port: must be true or false, not an integer");
}

static void test_listen_address(void **state)
{
    static const char *const good[] = {"127.0.0.1", "0.0.0.0", "::1", "::", "fe80::1", "localhost"};
    static const char *const bad[] = {"example.com", "",          "127.0.0.1:8080",
                                      "[::1]",       "256.0.0.1", " 127.0.0.1"};
    char json[128], want[160];
    struct conf cf;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(json, sizeof(json), "{\"listen\":{\"address\":\"%s\"}," AUTH "}", good[i]);
        conf_init(&cf);
        expect_ok(&cf, json);
        assert_string_equal(cf.listen_address, good[i]);
        conf_release(&cf);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"listen\":{\"address\":\"%s\"}," AUTH "}", bad[i]);
        snprintf(want, sizeof(want),
                 "x.json: listen.address: \"%s\" is not an IPv4 or IPv6 address or \"localhost\"",
                 bad[i]);
        expect_error(json, want);
    }
}

static void test_longpoll_default_over_max(void **state)
{
    struct conf cf;

    expect_error("{\"longpoll\":{\"default_timeout_s\":31,\"max_timeout_s\":30}," AUTH "}",
                 "x.json: longpoll.default_timeout_s: must not be greater than "
                 "longpoll.max_timeout_s (30)");
    /* Against the other key's default. */
    expect_error("{\"longpoll\":{\"default_timeout_s\":60}," AUTH "}",
                 "x.json: longpoll.default_timeout_s: must not be greater than "
                 "longpoll.max_timeout_s (55)");
    expect_error("{\"longpoll\":{\"max_timeout_s\":10}," AUTH "}",
                 "x.json: longpoll.default_timeout_s: must not be greater than "
                 "longpoll.max_timeout_s (10)");
    conf_init(&cf);
    expect_ok(&cf, "{\"longpoll\":{\"default_timeout_s\":30,\"max_timeout_s\":30}," AUTH "}");
    assert_int_equal(cf.longpoll_timeout_s, 30);
    conf_release(&cf);
}

static void test_ws_idle_not_over_ping(void **state)
{
    expect_error("{\"websocket\":{\"ping_interval_s\":30,\"idle_timeout_s\":30}," AUTH "}",
                 "x.json: websocket.idle_timeout_s: must be greater than "
                 "websocket.ping_interval_s (30)");
    expect_error("{\"websocket\":{\"ping_interval_s\":30,\"idle_timeout_s\":10}," AUTH "}",
                 "x.json: websocket.idle_timeout_s: must be greater than "
                 "websocket.ping_interval_s (30)");
    expect_error("{\"websocket\":{\"ping_interval_s\":60}," AUTH "}",
                 "x.json: websocket.idle_timeout_s: must be greater than "
                 "websocket.ping_interval_s (60)");
}

/* static_dir must name a directory (kept as its real path); node_id is short and printable;
 * stats.access is one of three words. */
static void test_web_keys(void **state)
{
    struct conf cf;

    conf_init(&cf);
    assert_null(cf.static_dir);
    assert_null(cf.node_id);
    assert_int_equal(cf.stats_access, CONF_STATS_API_KEY);
    assert_int_equal(cf.stats_interval_ms, 1000);
    expect_ok(&cf,
              "{\"static_dir\":\"" SOURCE_DIR "/docker/../docker/demo\",\"node_id\":\"n-1.a:b_c\","
              "\"stats\":{\"access\":\"public\",\"interval_ms\":250}," AUTH "}");
    assert_non_null(cf.static_dir);
    assert_null(strstr(cf.static_dir, ".."));
    assert_non_null(strstr(cf.static_dir, "/docker/demo"));
    assert_string_equal(cf.node_id, "n-1.a:b_c");
    assert_int_equal(cf.stats_access, CONF_STATS_PUBLIC);
    assert_int_equal(cf.stats_interval_ms, 250);
    conf_release(&cf);

    expect_error("{\"static_dir\":\"/nonexistent-dir-xyz\"," AUTH "}",
                 "x.json: static_dir: \"/nonexistent-dir-xyz\" is not a directory");
    expect_error("{\"static_dir\":\"" SOURCE_DIR "/README.md\"," AUTH "}",
                 "x.json: static_dir: \"" SOURCE_DIR "/README.md\" is not a directory");
    expect_error("{\"static_dir\":\"\"," AUTH "}", "x.json: static_dir: must be a directory path");
    expect_error("{\"static_dir\":7," AUTH "}",
                 "x.json: static_dir: must be a string, not an integer");
    expect_error("{\"node_id\":\"\"," AUTH "}", "x.json: node_id: must be 1 to 64 characters");
    expect_error("{\"node_id\":\"a b\"," AUTH "}",
                 "x.json: node_id: may hold only letters, digits and _.:-");
    expect_error("{\"node_id\":\"<script>\"," AUTH "}",
                 "x.json: node_id: may hold only letters, digits and _.:-");
    expect_error("{\"stats\":{\"access\":\"all\"}," AUTH "}",
                 "x.json: stats.access: must be \"api_key\", \"public\" or \"off\"");
    expect_error("{\"stats\":{\"interval_ms\":50}," AUTH "}",
                 "x.json: stats.interval_ms: must be an integer from 100 to 60000");
    expect_error("{\"stats\":{\"every\":1}," AUTH "}", "x.json: stats.every: unknown key");

    {
        char err[256] = "";

        conf_init(&cf);
        assert_int_equal(conf_set_static_dir(&cf, SOURCE_DIR "/docker/demo", err, sizeof(err)), 0);
        assert_non_null(strstr(cf.static_dir, "/docker/demo"));
        assert_int_equal(conf_set_static_dir(&cf, "/nonexistent-dir-xyz", err, sizeof(err)), -1);
        assert_string_equal(
            err, "--static-dir: static_dir: \"/nonexistent-dir-xyz\" is not a directory");
        conf_release(&cf);
    }
}

static void test_backplane_type(void **state)
{
    struct conf cf;

    expect_error("{\"backplane\":{\"type\":\"x\"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"x\" "
                 "(\"local\", \"redis\" or \"redis-cluster\")");
    expect_error("{\"backplane\":{\"type\":\"\"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"\" (\"local\", \"redis\" or "
                 "\"redis-cluster\")");
    expect_error("{\"backplane\":{\"type\":\"Redis\"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"Redis\" "
                 "(\"local\", \"redis\" or \"redis-cluster\")");
    expect_error("{\"backplane\":{\"type\":\"redis \"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"redis \" "
                 "(\"local\", \"redis\" or \"redis-cluster\")");
    /* The type is checked before any other key of the section. */
    expect_error("{\"backplane\":{\"type\":\"x\",\"url\":\"redis://h\"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"x\" "
                 "(\"local\", \"redis\" or \"redis-cluster\")");
    expect_error("{\"backplane\":{\"type\":null}," AUTH "}",
                 "x.json: backplane.type: must be a string, not null");

    conf_init(&cf);
    expect_ok(&cf, "{\"backplane\":{}," AUTH "}");
    assert_string_equal(cf.backplane_type, "local");
    assert_redis_defaults(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"local\"}," AUTH "}");
    assert_string_equal(cf.backplane_type, "local");
    assert_redis_defaults(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\"}," AUTH "}");
    assert_string_equal(cf.backplane_type, "redis");
    conf_release(&cf);
}

/* "type": "redis" alone: every other backplane.* key keeps its documented default. */
static void test_redis_defaults(void **state)
{
    struct conf cf;

    conf_init(&cf);
    assert_redis_defaults(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\"}," AUTH "}");
    assert_string_equal(cf.backplane_type, "redis");
    assert_redis_defaults(&cf);
    /* The rest of the file is untouched by the backplane choice. */
    assert_int_equal(cf.listen_port, 8080);
    assert_int_equal(cf.history_size, 1000);
    conf_release(&cf);
}

/* Loads {"backplane":{"type":"redis","url":@url}} into @cf; @extra (may be "") is spliced in
 * after the url, e.g. ",\"username\":\"u\"". */
static int load_redis_url(struct conf *cf, const char *url, const char *extra, char *err,
                          size_t errlen)
{
    char json[512];

    snprintf(json, sizeof(json), "{\"backplane\":{\"type\":\"redis\",\"url\":\"%s\"%s}," AUTH "}",
             url, extra);
    return load(cf, json, err, errlen);
}

struct url_case {
    const char *url;
    const char *host;
    int port, db;
    const char *user, *password;
};

static const struct url_case good_urls[] = {
    {"redis://myhost", "myhost", 6379, 0, NULL, NULL},
    {"redis://myhost:6380", "myhost", 6380, 0, NULL, NULL},
    {"redis://myhost/3", "myhost", 6379, 3, NULL, NULL},
    {"redis://myhost/", "myhost", 6379, 0, NULL, NULL},
    {"redis://myhost:6380/15", "myhost", 6380, 15, NULL, NULL},
    {"redis://10.1.2.3:1/0", "10.1.2.3", 1, 0, NULL, NULL},
    {"redis://redis.internal.example:65535/1000000", "redis.internal.example", 65535, 1000000, NULL,
     NULL},
    {"redis://s3cret@myhost", "myhost", 6379, 0, NULL, "s3cret"},
    {"redis://s3cret@myhost:7000/2", "myhost", 7000, 2, NULL, "s3cret"},
    {"redis://alice:s3cret@myhost", "myhost", 6379, 0, "alice", "s3cret"},
    {"redis://alice:s3cret@myhost:7000/2", "myhost", 7000, 2, "alice", "s3cret"},
    {"redis://:s3cret@myhost", "myhost", 6379, 0, NULL, "s3cret"},
    {"redis://:s3cret@myhost:6390/4", "myhost", 6390, 4, NULL, "s3cret"},
    /* Only the first ':' of the user info separates user from password. */
    {"redis://alice:pa:ss@myhost", "myhost", 6379, 0, "alice", "pa:ss"},
};

static void test_redis_url_forms(void **state)
{
    char err[512] = "";
    struct conf cf;

    for (size_t i = 0; i < sizeof(good_urls) / sizeof(good_urls[0]); i++) {
        const struct url_case *c = &good_urls[i];

        conf_init(&cf);
        if (load_redis_url(&cf, c->url, "", err, sizeof(err)) != 0)
            fail_msg("unexpected error: %s (for %s)", err, c->url);
        assert_string_equal(cf.backplane_type, "redis");
        assert_string_equal(cf.redis_host, c->host);
        assert_int_equal(cf.redis_port, c->port);
        assert_int_equal(cf.redis_db, c->db);
        assert_str_or_null(cf.redis_username, c->user);
        assert_str_or_null(cf.redis_password, c->password);
        /* The url sets none of the other keys. */
        assert_int_equal(cf.redis_connect_timeout_ms, 2000);
        assert_int_equal(cf.redis_history_ttl_s, 86400);
        assert_int_equal(cf.redis_max_pending, 10000);
        conf_release(&cf);
    }
}

struct bad_url {
    const char *url;
    const char *reason; /* after "x.json: backplane.url: " */
};

#define NOT_REDIS "must start with redis:// (TLS to Redis is not supported)"

static const struct bad_url bad_urls[] = {
    {"rediss://myhost", NOT_REDIS},
    {"rediss://myhost:6380/0", NOT_REDIS},
    {"", NOT_REDIS},
    {"myhost:6379", NOT_REDIS},
    {"http://myhost", NOT_REDIS},
    {"redis:/myhost", NOT_REDIS},
    {"REDIS://myhost", NOT_REDIS},
    {"unix:///run/redis.sock", NOT_REDIS},
    /* No host. */
    {"redis://", "no host"},
    {"redis://:6379", "no host"},
    {"redis:///0", "no host"},
    {"redis://:6379/0", "no host"},
    /* Bad port. */
    {"redis://myhost:0", "bad port (1 to 65535)"},
    {"redis://myhost:65536", "bad port (1 to 65535)"},
    {"redis://myhost:70000", "bad port (1 to 65535)"},
    {"redis://myhost:-1", "bad port (1 to 65535)"},
    {"redis://myhost:abc", "bad port (1 to 65535)"},
    {"redis://myhost:6379x", "bad port (1 to 65535)"},
    {"redis://myhost:", "bad port (1 to 65535)"},
    {"redis://myhost:/0", "bad port (1 to 65535)"},
    {"redis://myhost:63:79", "bad port (1 to 65535)"},
    {"redis://myhost:99999999999999999999", "bad port (1 to 65535)"},
    /* Bad database number. */
    {"redis://myhost/abc", "bad database number (0 to 1000000)"},
    {"redis://myhost/-1", "bad database number (0 to 1000000)"},
    {"redis://myhost/1000001", "bad database number (0 to 1000000)"},
    {"redis://myhost/1x", "bad database number (0 to 1000000)"},
    {"redis://myhost/1/2", "bad database number (0 to 1000000)"},
    {"redis://myhost:6379/0/", "bad database number (0 to 1000000)"},
};

static void test_redis_url_errors(void **state)
{
    char err[512] = "", want[512];
    struct conf cf;

    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        snprintf(want, sizeof(want), "x.json: backplane.url: %s", bad_urls[i].reason);
        conf_init(&cf);
        assert_int_equal(load_redis_url(&cf, bad_urls[i].url, "", err, sizeof(err)), -1);
        assert_string_equal(err, want);
        /* A failed load leaves the conf as conf_init() made it. */
        assert_string_equal(cf.backplane_type, "local");
        assert_redis_defaults(&cf);
        conf_release(&cf);
    }
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":6379}," AUTH "}",
                 "x.json: backplane.url: must be a string, not an integer");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":null}," AUTH "}",
                 "x.json: backplane.url: must be a string, not null");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":[\"redis://h\"]}," AUTH "}",
                 "x.json: backplane.url: must be a string, not an array");
}

static char last_changed[64];

static void test_redis_cluster(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis-cluster\",\"password\":\"pw\",\"seeds\":["
                   "\"redis://10.0.0.1:7000\",\"redis://10.0.0.2:7001\"]}," AUTH "}");
    assert_string_equal(cf.backplane_type, "redis-cluster");
    assert_int_equal(cf.n_redis_shards, 2);
    assert_int_equal(cf.redis_shards[1].port, 7001);
    assert_string_equal(cf.redis_shards[1].password, "pw");
    conf_release(&cf);

    expect_error("{\"backplane\":{\"type\":\"redis-cluster\"}," AUTH "}",
                 "x.json: backplane.seeds: \"type\": \"redis-cluster\" needs the cluster's "
                 "masters, e.g. [\"redis://10.0.0.1:7000\"]");
    expect_error("{\"backplane\":{\"type\":\"redis-cluster\",\"url\":\"redis://a\","
                 "\"seeds\":[\"redis://b\"]}," AUTH "}",
                 "x.json: backplane.url: not with \"type\": \"redis-cluster\" (list its masters "
                 "in \"seeds\")");
    expect_error("{\"backplane\":{\"type\":\"redis-cluster\",\"shards\":[\"redis://a\"],"
                 "\"seeds\":[\"redis://b\"]}," AUTH "}",
                 "x.json: backplane.shards: not with \"type\": \"redis-cluster\" (list its "
                 "masters in \"seeds\")");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"seeds\":[\"redis://b\"]}," AUTH "}",
                 "x.json: backplane.seeds: only for \"type\": \"redis-cluster\"");
    expect_error("{\"backplane\":{\"type\":\"redis-cluster\",\"seeds\":[\"redis://b\","
                 "\"redis://b:6379\"]}," AUTH "}",
                 "x.json: backplane.seeds[1]: the same server as seeds[0]");
}

static void test_redis_sentinel(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://:pw@127.0.0.1/2\","
                   "\"sentinel\":{\"master\":\"mymaster\",\"addresses\":[\"10.0.0.1:26379\","
                   "\"sentinel.local:26380\"]}}," AUTH "}");
    assert_string_equal(cf.sentinel_master, "mymaster");
    assert_int_equal(cf.n_sentinels, 2);
    assert_string_equal(cf.sentinel_hosts[0], "10.0.0.1");
    assert_int_equal(cf.sentinel_ports[0], 26379);
    assert_string_equal(cf.sentinel_hosts[1], "sentinel.local");
    assert_int_equal(cf.sentinel_ports[1], 26380);
    assert_string_equal(cf.redis_password, "pw"); /* the data nodes' password and db */
    assert_int_equal(cf.redis_db, 2);
    conf_release(&cf);

    expect_error("{\"backplane\":{\"type\":\"redis\",\"sentinel\":[]}," AUTH "}",
                 "x.json: backplane.sentinel: must be an object, not an array");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"sentinel\":{\"addresses\":[\"a:1\"]}}," AUTH
                 "}",
                 "x.json: backplane.sentinel.master: must be the name Sentinel monitors");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"sentinel\":{\"master\":\"m\"}}," AUTH "}",
                 "x.json: backplane.sentinel.addresses: must be an array of 1 to 16 \"host:port\" "
                 "strings");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"sentinel\":{\"master\":\"m\","
                 "\"addresses\":[\"a:1\",\"b\"]}}," AUTH "}",
                 "x.json: backplane.sentinel.addresses[1]: must be \"host:port\"");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"sentinel\":{\"master\":\"m\","
                 "\"addresses\":[\"a:70000\"]}}," AUTH "}",
                 "x.json: backplane.sentinel.addresses[0]: must be \"host:port\"");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"sentinel\":{\"master\":\"m\","
                 "\"addresses\":[\"a:1\"],\"quorum\":2}}," AUTH "}",
                 "x.json: backplane.sentinel.quorum: unknown key");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"shards\":[\"redis://a\"],"
                 "\"sentinel\":{\"master\":\"m\",\"addresses\":[\"a:1\"]}}," AUTH "}",
                 "x.json: backplane.sentinel: give \"shards\" or \"sentinel\", not both");
}

static void note_changed(const char *key)
{
    snprintf(last_changed, sizeof(last_changed), "%s", key);
}

static void test_redis_shards(void **state)
{
    struct conf cf, next;

    conf_init(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\",\"password\":\"pw\",\"shards\":["
                   "\"redis://10.0.0.1\",\"redis://:own@10.0.0.2:6380/3\","
                   "\"redis://10.0.0.1:6379/1\"]}," AUTH "}");
    assert_int_equal(cf.n_redis_shards, 3);
    assert_string_equal(cf.redis_shards[0].host, "10.0.0.1");
    assert_int_equal(cf.redis_shards[0].port, 6379);
    assert_int_equal(cf.redis_shards[0].db, 0);
    assert_string_equal(cf.redis_shards[0].password, "pw"); /* backplane.password */
    assert_null(cf.redis_shards[0].username);
    assert_string_equal(cf.redis_shards[1].host, "10.0.0.2");
    assert_int_equal(cf.redis_shards[1].port, 6380);
    assert_int_equal(cf.redis_shards[1].db, 3);
    assert_string_equal(cf.redis_shards[1].password, "own"); /* its own wins */
    assert_int_equal(cf.redis_shards[2].db, 1); /* same host and port, other db: allowed */

    /* a reload keeps the shards (startup only) and says so when they changed */
    conf_init(&next);
    expect_ok(&next,
              "{\"backplane\":{\"type\":\"redis\",\"shards\":[\"redis://10.0.0.9\"]}," AUTH "}");
    conf_keep_startup(&next, &cf, note_changed);
    assert_int_equal(next.n_redis_shards, 3);
    assert_string_equal(next.redis_shards[1].host, "10.0.0.2");
    assert_int_equal(cf.n_redis_shards, 1);
    assert_string_equal(last_changed, "backplane.shards");
    conf_release(&next);
    conf_release(&cf);

    expect_error(
        "{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://a\",\"shards\":[\"redis://b\"]}," AUTH
        "}",
        "x.json: backplane.shards: give \"url\" or \"shards\", not both");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"shards\":[]}," AUTH "}",
                 "x.json: backplane.shards: must be a non-empty array of redis:// URLs");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"shards\":\"redis://a\"}," AUTH "}",
                 "x.json: backplane.shards: must be a non-empty array of redis:// URLs");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"shards\":[\"redis://a\",7]}," AUTH "}",
                 "x.json: backplane.shards[1]: must be a string, not an integer");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"shards\":[\"redis://a\",\"http://b\"]}," AUTH
                 "}",
                 "x.json: backplane.shards[1]: must start with redis:// (TLS to Redis is not "
                 "supported)");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"shards\":[\"redis://:pw@a:0\"]}," AUTH "}",
                 "x.json: backplane.shards[0]: bad port (1 to 65535)");
    expect_error(
        "{\"backplane\":{\"type\":\"redis\",\"shards\":[\"redis://a\",\"redis://a:6379/0\"]}," AUTH
        "}",
        "x.json: backplane.shards[1]: the same server as shards[0]");
    expect_error("{\"backplane\":{\"shards\":[\"redis://a\"]}," AUTH "}",
                 "x.json: backplane.shards: only for \"type\": \"redis\"");
    {
        char json[2048];
        size_t o =
            (size_t)snprintf(json, sizeof(json), "{\"backplane\":{\"type\":\"redis\",\"shards\":[");

        for (int i = 0; i < 17; i++)
            o += (size_t)snprintf(json + o, sizeof(json) - o, "%s\"redis://h%d\"", i ? "," : "", i);
        snprintf(json + o, sizeof(json) - o, "]}," AUTH "}");
        expect_error(json, "x.json: backplane.shards: at most 16 shards, not 17");
    }
}

/* Credentials in the URL were allocated before the host/port/db checks failed: the leak checker
 * proves the failed load freed them. */
static void test_redis_url_error_after_credentials(void **state)
{
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://alice:pw@\"}," AUTH "}",
                 "x.json: backplane.url: no host");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://pw@/0\"}," AUTH "}",
                 "x.json: backplane.url: no host");
}

/* The URL may carry the Redis password; an error message (printed to stderr, logged) must not
 * repeat it. The host, port or database that is wrong is enough to find the mistake. */
static void test_redis_url_error_hides_password(void **state)
{
    static const char *const urls[] = {
        "redis://alice:TOPSECRETPW@myhost:abc",
        "redis://TOPSECRETPW@myhost:0",
        "redis://:TOPSECRETPW@myhost/xyz",
        "redis://alice:TOPSECRETPW@",
    };
    char err[512], shown[2048] = "";
    struct conf cf;

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        err[0] = '\0';
        conf_init(&cf);
        assert_int_equal(load_redis_url(&cf, urls[i], "", err, sizeof(err)), -1);
        assert_int_equal(strncmp(err, "x.json: backplane.url: ", 23), 0);
        if (strstr(err, "TOPSECRETPW"))
            note_case(shown, sizeof(shown), "%s", err);
        conf_release(&cf);
    }
    if (shown[0])
        fail_msg("error messages show the password: %s", shown);
}

/* Ports and database numbers are plain decimal digits: strtol()'s leading blanks and sign are
 * not part of a URL. */
static void test_redis_url_numbers_strict(void **state)
{
    static const char *const urls[] = {
        "redis://myhost: 6379", "redis://myhost:+6379", "redis://myhost:\\t6379",
        "redis://myhost/ 1",    "redis://myhost/+1",    "redis://myhost/-0",
    };
    char err[512], accepted[1024] = "";
    struct conf cf;

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        err[0] = '\0';
        conf_init(&cf);
        if (load_redis_url(&cf, urls[i], "", err, sizeof(err)) != -1)
            note_case(accepted, sizeof(accepted), "\"%s\" (port %d, db %d)", urls[i], cf.redis_port,
                      cf.redis_db);
        else
            assert_int_equal(strncmp(err, "x.json: backplane.url: bad ", 27), 0);
        conf_release(&cf);
    }
    if (accepted[0])
        fail_msg("accepted: %s", accepted);
}

static void test_redis_credentials(void **state)
{
    char err[512] = "";
    struct conf cf;

    expect_error("{\"backplane\":{\"type\":\"redis\",\"username\":\"alice\"}," AUTH "}",
                 "x.json: backplane.username: needs a password");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://h\","
                 "\"username\":\"alice\"}," AUTH "}",
                 "x.json: backplane.username: needs a password");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"username\":7}," AUTH "}",
                 "x.json: backplane.username: must be a string, not an integer");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"password\":true}," AUTH "}",
                 "x.json: backplane.password: must be a string, not a boolean");

    /* Keys alone. */
    conf_init(&cf);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\",\"password\":\"pw\"}," AUTH "}");
    assert_null(cf.redis_username);
    assert_string_equal(cf.redis_password, "pw");
    assert_string_equal(cf.redis_host, "127.0.0.1");
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\",\"username\":\"alice\","
                   "\"password\":\"pw\"}," AUTH "}");
    assert_string_equal(cf.redis_username, "alice");
    assert_string_equal(cf.redis_password, "pw");
    conf_release(&cf);

    /* The keys override the URL's credentials (the replaced ones are freed: leak checker). */
    conf_init(&cf);
    assert_int_equal(load_redis_url(&cf, "redis://alice:old@myhost:7000/1",
                                    ",\"username\":\"bob\",\"password\":\"new\"", err, sizeof(err)),
                     0);
    assert_string_equal(cf.redis_host, "myhost");
    assert_int_equal(cf.redis_port, 7000);
    assert_int_equal(cf.redis_db, 1);
    assert_string_equal(cf.redis_username, "bob");
    assert_string_equal(cf.redis_password, "new");
    conf_release(&cf);

    /* One from the URL, the other from its key. */
    conf_init(&cf);
    assert_int_equal(
        load_redis_url(&cf, "redis://old@myhost", ",\"username\":\"bob\"", err, sizeof(err)), 0);
    assert_string_equal(cf.redis_username, "bob");
    assert_string_equal(cf.redis_password, "old");
    assert_int_equal(
        load_redis_url(&cf, "redis://alice:old@myhost", ",\"password\":\"new\"", err, sizeof(err)),
        0);
    assert_string_equal(cf.redis_username, "alice");
    assert_string_equal(cf.redis_password, "new");
    conf_release(&cf);
}

struct redis_range {
    const char *key;
    long long min, max, def;
};

static const struct redis_range redis_ranges[] = {
    {"connect_timeout_ms", 100, 60000, 2000},
    {"history_ttl_s", 1, 31536000, 86400},
    {"max_pending", 1, 10000000, 10000},
};

static long long redis_value(const struct conf *cf, size_t i)
{
    if (i == 0)
        return cf->redis_connect_timeout_ms;
    if (i == 1)
        return cf->redis_history_ttl_s;
    return (long long)cf->redis_max_pending;
}

/* Each numeric key one below, at, and one above both ends of its range. */
static void test_redis_numeric_ranges(void **state)
{
    char json[256], want[256];
    struct conf cf;

    for (size_t i = 0; i < sizeof(redis_ranges) / sizeof(redis_ranges[0]); i++) {
        const struct redis_range *c = &redis_ranges[i];
        long long ok[2] = {c->min, c->max}, bad[4] = {c->min - 1, c->max + 1, 0, -1};

        snprintf(want, sizeof(want), "x.json: backplane.%s: must be an integer from %lld to %lld",
                 c->key, c->min, c->max);
        for (int j = 0; j < 4; j++) {
            snprintf(json, sizeof(json),
                     "{\"backplane\":{\"type\":\"redis\",\"%s\":%lld}," AUTH "}", c->key, bad[j]);
            if (bad[j] < c->min || bad[j] > c->max)
                expect_error(json, want);
        }
        for (int j = 0; j < 2; j++) {
            snprintf(json, sizeof(json),
                     "{\"backplane\":{\"type\":\"redis\",\"%s\":%lld}," AUTH "}", c->key, ok[j]);
            conf_init(&cf);
            expect_ok(&cf, json);
            assert_int_equal(redis_value(&cf, i), ok[j]);
            /* The other two keep their defaults. */
            for (size_t k = 0; k < sizeof(redis_ranges) / sizeof(redis_ranges[0]); k++)
                if (k != i)
                    assert_int_equal(redis_value(&cf, k), redis_ranges[k].def);
            conf_release(&cf);
        }
        snprintf(json, sizeof(json), "{\"backplane\":{\"type\":\"redis\",\"%s\":\"5\"}," AUTH "}",
                 c->key);
        snprintf(want, sizeof(want),
                 "x.json: backplane.%s: must be an integer from %lld to %lld, not a string", c->key,
                 c->min, c->max);
        expect_error(json, want);
        snprintf(json, sizeof(json), "{\"backplane\":{\"type\":\"redis\",\"%s\":1000.0}," AUTH "}",
                 c->key);
        snprintf(want, sizeof(want),
                 "x.json: backplane.%s: must be an integer from %lld to %lld, "
                 "not a floating-point number",
                 c->key, c->min, c->max);
        expect_error(json, want);
    }
    /* Wider than the uint32_t / size_t they are stored in. */
    expect_error("{\"backplane\":{\"type\":\"redis\",\"connect_timeout_ms\":4294967396}," AUTH "}",
                 "x.json: backplane.connect_timeout_ms: must be an integer from 100 to 60000");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"history_ttl_s\":4294967297}," AUTH "}",
                 "x.json: backplane.history_ttl_s: must be an integer from 1 to 31536000");
}

/* Every Redis-only key is refused under "type": "local", with the same message. */
static const char *const redis_only_keys[][2] = {
    {"url", "\"redis://myhost\""},  {"username", "\"alice\""},  {"password", "\"pw\""},
    {"connect_timeout_ms", "2000"}, {"history_ttl_s", "86400"}, {"max_pending", "10000"},
};

static void test_redis_keys_refused_for_local(void **state)
{
    char json[256], want[256];

    for (size_t i = 0; i < sizeof(redis_only_keys) / sizeof(redis_only_keys[0]); i++) {
        snprintf(json, sizeof(json), "{\"backplane\":{\"type\":\"local\",\"%s\":%s}," AUTH "}",
                 redis_only_keys[i][0], redis_only_keys[i][1]);
        snprintf(want, sizeof(want), "x.json: backplane.%s: only for \"type\": \"redis\"",
                 redis_only_keys[i][0]);
        expect_error(json, want);
    }
    /* Refused whatever the value: even an invalid one gets this message, not a range error. */
    expect_error("{\"backplane\":{\"type\":\"local\",\"max_pending\":0}," AUTH "}",
                 "x.json: backplane.max_pending: only for \"type\": \"redis\"");
    expect_error("{\"backplane\":{\"type\":\"local\",\"url\":\"rediss://h\"}," AUTH "}",
                 "x.json: backplane.url: only for \"type\": \"redis\"");
    /* An unknown key is still reported as unknown, before any of this. */
    expect_error("{\"backplane\":{\"type\":\"local\",\"url\":\"redis://h\",\"host\":\"h\"}," AUTH
                 "}",
                 "x.json: backplane.host: unknown key");
}

/* With no "type", the backplane is "local" (the default), so the Redis keys are refused just as
 * they are with "type": "local" -- not silently ignored while rtgate runs without Redis. */
static void test_redis_keys_without_type_refused(void **state)
{
    char json[256], want[256], err[512], accepted[1024] = "";
    struct conf cf;

    for (size_t i = 0; i < sizeof(redis_only_keys) / sizeof(redis_only_keys[0]); i++) {
        snprintf(json, sizeof(json), "{\"backplane\":{\"%s\":%s}," AUTH "}", redis_only_keys[i][0],
                 redis_only_keys[i][1]);
        snprintf(want, sizeof(want), "x.json: backplane.%s: only for \"type\": \"redis\"",
                 redis_only_keys[i][0]);
        err[0] = '\0';
        conf_init(&cf);
        if (load(&cf, json, err, sizeof(err)) != -1)
            note_case(accepted, sizeof(accepted), "%s (backplane_type \"%s\")", json,
                      cf.backplane_type);
        else
            assert_string_equal(err, want);
        conf_release(&cf);
    }
    if (accepted[0])
        fail_msg("accepted: %s", accepted);
}

static void test_backplane_unknown_keys(void **state)
{
    expect_error("{\"backplane\":{\"type\":\"redis\",\"host\":\"myhost\"}," AUTH "}",
                 "x.json: backplane.host: unknown key");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"URL\":\"redis://h\"}," AUTH "}",
                 "x.json: backplane.URL: unknown key");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"db\":1}," AUTH "}",
                 "x.json: backplane.db: unknown key");
    expect_error("{\"backplane\":{\"type\":\"redis\",\"connect_timeout\":100}," AUTH "}",
                 "x.json: backplane.connect_timeout: unknown key");
    /* Unknown keys are found before the type is even looked at. */
    expect_error("{\"backplane\":{\"type\":\"x\",\"tyep\":\"redis\"}," AUTH "}",
                 "x.json: backplane.tyep: unknown key");
    expect_error("{\"backplane\":{\"redis\":{\"url\":\"redis://h\"}}," AUTH "}",
                 "x.json: backplane.redis: unknown key");
}

static const char redis_full_json[] =
    "{\n"
    "  \"auth\": {\"jwt_secret\": \"" SECRET "\", \"api_keys\": [\"" KEY16 "\"]},\n"
    "  \"backplane\": {\"type\": \"redis\",\n"
    "                \"url\": \"redis://alice:from-url@redis.example:6390/7\",\n"
    "                \"username\": \"bob\", \"password\": \"from-key\",\n"
    "                \"connect_timeout_ms\": 500, \"history_ttl_s\": 3600,\n"
    "                \"max_pending\": 123},\n"
    "  \"cors\": {\"allowed_origins\": [\"https://app.example.com\", \"http://localhost:3000\"]}\n"
    "}\n";

static void test_redis_full(void **state)
{
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, redis_full_json);
    assert_string_equal(cf.backplane_type, "redis");
    assert_string_equal(cf.redis_host, "redis.example");
    assert_int_equal(cf.redis_port, 6390);
    assert_int_equal(cf.redis_db, 7);
    assert_string_equal(cf.redis_username, "bob");
    assert_string_equal(cf.redis_password, "from-key");
    assert_int_equal(cf.redis_connect_timeout_ms, 500);
    assert_int_equal(cf.redis_history_ttl_s, 3600);
    assert_int_equal(cf.redis_max_pending, 123);
    assert_int_equal(cf.n_cors_origins, 2);
    assert_string_equal(cf.cors_origins[0], "https://app.example.com");
    assert_string_equal(cf.cors_origins[1], "http://localhost:3000");
    conf_release(&cf);
}

/* Loads {"cors":{"allowed_origins":[@origin]}}. */
static int load_origin(struct conf *cf, const char *origin, char *err, size_t errlen)
{
    char json[512];

    snprintf(json, sizeof(json), "{\"cors\":{\"allowed_origins\":[\"%s\"]}," AUTH "}", origin);
    return load(cf, json, err, errlen);
}

static void test_cors_origins(void **state)
{
    static const char *const good[] = {
        "*",
        "http://localhost",
        "http://localhost:3000",
        "https://app.example.com",
        "https://app.example.com:8443",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
        "https://xn--bcher-kva.example",
    };
    char err[512] = "";
    struct conf cf;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        conf_init(&cf);
        if (load_origin(&cf, good[i], err, sizeof(err)) != 0)
            fail_msg("unexpected error: %s (for %s)", err, good[i]);
        assert_int_equal(cf.n_cors_origins, 1);
        assert_string_equal(cf.cors_origins[0], good[i]);
        assert_null(cf.cors_origins[1]);
        conf_release(&cf);
    }

    /* Several, in order; "*" may sit beside explicit origins. */
    conf_init(&cf);
    expect_ok(&cf, "{\"cors\":{\"allowed_origins\":[\"https://a.example\",\"*\","
                   "\"http://b.example:81\"]}," AUTH "}");
    assert_int_equal(cf.n_cors_origins, 3);
    assert_string_equal(cf.cors_origins[0], "https://a.example");
    assert_string_equal(cf.cors_origins[1], "*");
    assert_string_equal(cf.cors_origins[2], "http://b.example:81");
    conf_release(&cf);

    /* Empty list and empty section: no CORS. */
    conf_init(&cf);
    expect_ok(&cf, "{\"cors\":{\"allowed_origins\":[]}," AUTH "}");
    assert_int_equal(cf.n_cors_origins, 0);
    expect_ok(&cf, "{\"cors\":{}," AUTH "}");
    assert_int_equal(cf.n_cors_origins, 0);
    conf_release(&cf);
}

static void test_cors_bad_origins(void **state)
{
    static const char *const bad[] = {
        "",
        "**",
        " *",
        "* ",
        "app.example.com",
        "//app.example.com",
        "ftp://app.example.com",
        "ws://app.example.com",
        "http://",
        "https://",
        "https:/app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com:8443/",
        "http://a.example http://b.example",
        "http://a.example,http://b.example",
        "null",
    };
    char json[256], want[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"cors\":{\"allowed_origins\":[\"%s\"]}," AUTH "}", bad[i]);
        snprintf(want, sizeof(want),
                 "x.json: cors.allowed_origins[0]: \"%s\" is not \"*\" or an origin like "
                 "\"https://app.example.com\"",
                 bad[i]);
        expect_error(json, want);
    }
    /* The index is that of the offending element; the good ones before it are freed. */
    expect_error("{\"cors\":{\"allowed_origins\":[\"https://a.example\",\"*\","
                 "\"https://b.example/\"]}," AUTH "}",
                 "x.json: cors.allowed_origins[2]: \"https://b.example/\" is not \"*\" or an "
                 "origin like \"https://app.example.com\"");
    expect_error("{\"cors\":{\"allowed_origins\":[\"https://a.example\",42]}," AUTH "}",
                 "x.json: cors.allowed_origins[1]: must be a string, not an integer");
    expect_error("{\"cors\":{\"allowed_origins\":[null]}," AUTH "}",
                 "x.json: cors.allowed_origins[0]: must be a string, not null");
    expect_error("{\"cors\":{\"allowed_origins\":\"https://a.example\"}," AUTH "}",
                 "x.json: cors.allowed_origins: must be an array of strings, not a string");
    expect_error("{\"cors\":{\"allowed_origins\":{}}," AUTH "}",
                 "x.json: cors.allowed_origins: must be an array of strings, not an object");
    expect_error("{\"cors\":{\"allowed_origins\":null}," AUTH "}",
                 "x.json: cors.allowed_origins: must be an array of strings, not null");
    expect_error("{\"cors\":[\"*\"]," AUTH "}", "x.json: cors: must be an object, not an array");
    expect_error("{\"cors\":{\"origins\":[\"*\"]}," AUTH "}", "x.json: cors.origins: unknown key");
    expect_error("{\"cors\":{\"allowed_origins\":[\"*\"],\"allow_credentials\":true}," AUTH "}",
                 "x.json: cors.allow_credentials: unknown key");
}

/* "host[:port]": an origin needs a host, and a port if present is 1..65535 in digits. Such a
 * value could never equal the Origin header a browser sends, so it is a typo to report. */
static void test_cors_origin_needs_host_and_valid_port(void **state)
{
    static const char *const bad[] = {
        "http://:3000",
        "https://:",
        "https://app.example.com:",
        "https://app.example.com:abc",
        "https://app.example.com:0",
        "https://app.example.com:70000",
        "http://localhost:80:80",
    };
    char err[512], accepted[1024] = "";
    struct conf cf;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        conf_init(&cf);
        if (load_origin(&cf, bad[i], err, sizeof(err)) != -1)
            note_case(accepted, sizeof(accepted), "\"%s\"", bad[i]);
        else
            assert_int_equal(strncmp(err, "x.json: cors.allowed_origins[0]: ", 33), 0);
        conf_release(&cf);
    }
    if (accepted[0])
        fail_msg("accepted origins: %s", accepted);
}

static void test_cors_too_many(void **state)
{
    char json[2048];
    struct conf cf;
    size_t n;

    n = (size_t)snprintf(json, sizeof(json), "{" AUTH ",\"cors\":{\"allowed_origins\":[");
    for (int i = 0; i < CONF_MAX_ORIGINS; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"https://app%02d.example\"",
                              i ? "," : "", i);
    snprintf(json + n, sizeof(json) - n, "]}}");
    conf_init(&cf);
    expect_ok(&cf, json);
    assert_int_equal(cf.n_cors_origins, CONF_MAX_ORIGINS);
    assert_string_equal(cf.cors_origins[0], "https://app00.example");
    assert_string_equal(cf.cors_origins[CONF_MAX_ORIGINS - 1], "https://app15.example");
    conf_release(&cf);

    snprintf(json + n, sizeof(json) - n, ",\"*\"]}}");
    expect_error(json, "x.json: cors.allowed_origins: at most 16 origins, not 17");
    /* Counted before any element is checked. */
    snprintf(json + n, sizeof(json) - n, ",42]}}");
    expect_error(json, "x.json: cors.allowed_origins: at most 16 origins, not 17");
}

/* A NUL inside a JSON string ("\u0000") would cut a url or origin short when read as a C
 * string; jansson refuses it (no JSON_ALLOW_NUL), so it never reaches the checks. */
static void test_embedded_nul_rejected(void **state)
{
    expect_error("{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://h\\u0000:1\"}}",
                 "x.json: line 1 column 54: \\u0000 is not allowed without JSON_ALLOW_NUL near "
                 "'\"redis://h\\u0000:1\"'");
    expect_error("{\"cors\":{\"allowed_origins\":[\"https://a.example\\u0000.evil\"]}}",
                 "x.json: line 1 column 58: \\u0000 is not allowed without JSON_ALLOW_NUL");
}

/* conf_release() frees every string a load can allocate (the cmocka leak checker fails the test
 * otherwise) and leaves the struct empty; a second release is harmless. */
static void test_release_frees_everything(void **state)
{
    char json[2048];
    struct conf cf;
    size_t n;

    conf_init(&cf);
    expect_ok(&cf, redis_full_json);
    conf_release(&cf);
    assert_null(cf.path);
    assert_null(cf.listen_address);
    assert_null(cf.jwt_secret);
    assert_int_equal(cf.jwt_secret_len, 0);
    assert_int_equal(cf.n_api_keys, 0);
    assert_null(cf.api_keys[0]);
    assert_null(cf.backplane_type);
    assert_null(cf.redis_host);
    assert_null(cf.redis_username);
    assert_null(cf.redis_password);
    assert_int_equal(cf.n_cors_origins, 0);
    assert_null(cf.cors_origins[0]);
    assert_null(cf.cors_origins[1]);
    conf_release(&cf);

    /* Every array full, and credentials from the URL only. */
    n = (size_t)snprintf(json, sizeof(json),
                         "{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://u:p@h:1/1\"},"
                         "\"auth\":{\"jwt_secret\":\"" SECRET "\",\"api_keys\":[");
    for (int i = 0; i < CONF_MAX_API_KEYS; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"api-key-%02d-0123456789\"",
                              i ? "," : "", i);
    n += (size_t)snprintf(json + n, sizeof(json) - n, "]},\"cors\":{\"allowed_origins\":[");
    for (int i = 0; i < CONF_MAX_ORIGINS; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"https://app%02d.example\"",
                              i ? "," : "", i);
    snprintf(json + n, sizeof(json) - n, "]}}");
    conf_init(&cf);
    expect_ok(&cf, json);
    assert_int_equal(cf.n_api_keys, CONF_MAX_API_KEYS);
    assert_int_equal(cf.n_cors_origins, CONF_MAX_ORIGINS);
    assert_string_equal(cf.redis_username, "u");
    assert_string_equal(cf.redis_password, "p");
    conf_release(&cf);
    for (int i = 0; i < CONF_MAX_ORIGINS; i++)
        assert_null(cf.cors_origins[i]);
    assert_null(cf.redis_username);
    assert_null(cf.redis_password);
}

/* Reloading replaces the Redis and CORS values (the old strings freed), a load without them goes
 * back to the defaults, and a failed load keeps the previous values. */
static void test_reload_redis_and_cors(void **state)
{
    char err[512];
    struct conf cf;

    conf_init(&cf);
    expect_ok(&cf, redis_full_json);
    expect_ok(&cf, "{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://:pw2@other\"},"
                   "\"cors\":{\"allowed_origins\":[\"*\"]}," AUTH "}");
    assert_string_equal(cf.redis_host, "other");
    assert_int_equal(cf.redis_port, 6379);
    assert_int_equal(cf.redis_db, 0);
    assert_null(cf.redis_username);
    assert_string_equal(cf.redis_password, "pw2");
    assert_int_equal(cf.redis_connect_timeout_ms, 2000);
    assert_int_equal(cf.n_cors_origins, 1);
    assert_string_equal(cf.cors_origins[0], "*");
    assert_null(cf.cors_origins[1]);

    /* Fails late (cors is checked after backplane): the new Redis strings are freed, the old
     * ones kept. */
    assert_int_equal(load(&cf,
                          "{\"backplane\":{\"type\":\"redis\",\"url\":\"redis://u:p@third:1/2\"},"
                          "\"cors\":{\"allowed_origins\":[\"bad\"]}," AUTH "}",
                          err, sizeof(err)),
                     -1);
    assert_string_equal(err, "x.json: cors.allowed_origins[0]: \"bad\" is not \"*\" or an origin "
                             "like \"https://app.example.com\"");
    assert_string_equal(cf.backplane_type, "redis");
    assert_string_equal(cf.redis_host, "other");
    assert_string_equal(cf.redis_password, "pw2");
    assert_int_equal(cf.n_cors_origins, 1);

    expect_ok(&cf, "{" AUTH "}");
    assert_defaults(&cf);
    conf_release(&cf);
}
static void test_syntax_errors(void **state)
{
    /* jansson's column is that of the token's last character. */
    expect_error("{\n  \"listen\": {\n    p: 8080\n  }\n}",
                 "x.json: line 3 column 5: string or '}' expected near 'p'");
    expect_error("{\n  \"log_level\": \"info\",\n  \"log_level\": \"debug\"\n}",
                 "x.json: line 3 column 13: duplicate object key near '\"log_level\"'");
    expect_error("{\"listen\":{}", "x.json: line 1 column 12: '}' expected near end of file");
    expect_error("", "x.json: line 1 column 0: '[' or '{' expected near end of file");
    expect_error("{} {}", "x.json: line 1 column 4: end of file expected near '{'");
}

/* A small buffer truncates the message but never overruns (ASan watches). */
static void test_small_error_buffer(void **state)
{
    struct conf cf;
    char err[8];

    conf_init(&cf);
    assert_int_equal(load(&cf, "{\"listen\":{\"prot\":1}}", err, sizeof(err)), -1);
    assert_string_equal(err, "x.json:");
    assert_int_equal(load(&cf, "{", err, sizeof(err)), -1);
    assert_string_equal(err, "x.json:");
    conf_release(&cf);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
    char dir[] = "/tmp/test_conf_XXXXXX";
    char path[64], missing[64], err[256], want[256];
    struct conf cf;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/rtgate.json", dir);
    snprintf(missing, sizeof(missing), "%s/nope.json", dir);

    conf_init(&cf);
    write_file(path, full_json);
    assert_int_equal(conf_load(&cf, path, err, sizeof(err)), 0);
    assert_string_equal(cf.path, path);
    assert_int_equal(cf.listen_port, 9090);
    assert_int_equal(cf.n_api_keys, 2);

    write_file(path, "{\n  \"listen\": {\"port\": 70000},\n" AUTH "\n}\n");
    assert_int_equal(conf_load(&cf, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: listen.port: must be an integer from 0 to 65535", path);
    assert_string_equal(err, want);
    assert_int_equal(cf.listen_port, 9090); /* the failed load changed nothing */

    write_file(path, "{\n  \"listen\": {\n    \"port\": 80,\n  }\n}\n");
    assert_int_equal(conf_load(&cf, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: line 4 column 3: string or '}' expected near '}'", path);
    assert_string_equal(err, want);

    assert_int_equal(conf_load(&cf, missing, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", missing);
    assert_string_equal(err, want);

    assert_int_equal(conf_load(&cf, dir, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
    assert_string_equal(err, want);

    assert_string_equal(cf.path, path);
    conf_release(&cf);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* The shipped development config must load and hold exactly the documented defaults. */
static void test_committed_config(void **state)
{
    const char *path = SOURCE_DIR "/conf/rtgate.json";
    char err[512] = "";
    struct conf cf;

    conf_init(&cf);
    if (conf_load(&cf, path, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_defaults(&cf);
    assert_string_equal(cf.path, path);
    assert_string_equal(cf.jwt_secret, "dev-secret-change-me-0123456789");
    assert_int_equal(cf.n_api_keys, 1);
    assert_string_equal(cf.api_keys[0], "dev-api-key-change-me-0123456789");
    conf_release(&cf);
}

#define TURN_SECRET "turn-secret-0123456789"

static void test_webrtc(void **state)
{
    struct conf cf;
    char dir[] = "/tmp/rtgate-conf-XXXXXX", path[64], json[512];
    FILE *f;

    conf_init(&cf);
    expect_ok(&cf,
              "{" AUTH ",\"webrtc\":{\"stun_urls\":[\"stun:stun.example.com:3478\","
              "\"stuns:stun.example.com\"],\"turn_urls\":[\"turn:10.0.0.1:3478?transport=udp\","
              "\"turns:turn.example.com:5349?transport=tcp\"],\"turn_secret\":\"" TURN_SECRET
              "\",\"turn_ttl_s\":600}}");
    assert_int_equal(cf.n_stun_urls, 2);
    assert_string_equal(cf.stun_urls[0], "stun:stun.example.com:3478");
    assert_string_equal(cf.stun_urls[1], "stuns:stun.example.com");
    assert_int_equal(cf.n_turn_urls, 2);
    assert_string_equal(cf.turn_urls[1], "turns:turn.example.com:5349?transport=tcp");
    assert_string_equal(cf.turn_secret, TURN_SECRET);
    assert_int_equal(cf.turn_secret_len, strlen(TURN_SECRET));
    assert_int_equal(cf.turn_ttl_s, 600);
    /* STUN alone needs no secret; bounds are inclusive */
    expect_ok(&cf, "{" AUTH ",\"webrtc\":{\"stun_urls\":[\"stun:1.2.3.4\"],\"turn_ttl_s\":60}}");
    assert_int_equal(cf.n_stun_urls, 1);
    assert_int_equal(cf.n_turn_urls, 0);
    assert_null(cf.turn_secret);
    expect_ok(&cf, "{" AUTH ",\"webrtc\":{\"turn_ttl_s\":604800}}");
    assert_int_equal(cf.turn_ttl_s, 604800);

    /* the secret from a file, trailing newline dropped */
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/turn.key", dir);
    assert_non_null(f = fopen(path, "w"));
    fputs(TURN_SECRET "\n", f);
    fclose(f);
    snprintf(json, sizeof(json),
             "{" AUTH ",\"webrtc\":{\"turn_urls\":[\"turn:127.0.0.1:3478\"],"
             "\"turn_secret_file\":\"%s\"}}",
             path);
    expect_ok(&cf, json);
    assert_string_equal(cf.turn_secret, TURN_SECRET);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    conf_release(&cf);

    expect_error("{" AUTH ",\"webrtc\":[]}", "x.json: webrtc: must be an object, not an array");
    expect_error("{" AUTH ",\"webrtc\":{\"stun\":[]}}", "x.json: webrtc.stun: unknown key");
    expect_error("{" AUTH ",\"webrtc\":{\"stun_urls\":\"stun:a\"}}",
                 "x.json: webrtc.stun_urls: must be an array of strings, not a string");
    expect_error("{" AUTH ",\"webrtc\":{\"stun_urls\":[1]}}",
                 "x.json: webrtc.stun_urls[0]: must be a string, not an integer");
    expect_error("{" AUTH ",\"webrtc\":{\"stun_urls\":[\"stun:a\",\"turn:b\"]}}",
                 "x.json: webrtc.stun_urls[1]: must be a stun:host[:port][?transport=udp|tcp] URL");
    expect_error("{" AUTH ",\"webrtc\":{\"stun_urls\":[\"stun:\"]}}",
                 "x.json: webrtc.stun_urls[0]: must be a stun:host[:port][?transport=udp|tcp] URL");
    expect_error("{" AUTH ",\"webrtc\":{\"stun_urls\":[\"stun:a b\"]}}",
                 "x.json: webrtc.stun_urls[0]: must be a stun:host[:port][?transport=udp|tcp] URL");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_urls\":[\"http://x\"],\"turn_secret\":\"" TURN_SECRET
                 "\"}}",
                 "x.json: webrtc.turn_urls[0]: must be a turn:host[:port][?transport=udp|tcp] URL");
    expect_error("{" AUTH ",\"webrtc\":{\"stun_urls\":[\"stun:1\",\"stun:2\",\"stun:3\",\"stun:4\","
                 "\"stun:5\",\"stun:6\",\"stun:7\",\"stun:8\",\"stun:9\"]}}",
                 "x.json: webrtc.stun_urls: at most 8 URLs");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_urls\":[\"turn:127.0.0.1\"]}}",
                 "x.json: webrtc.turn_urls: needs webrtc.turn_secret (or turn_secret_file)");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_secret\":\"" TURN_SECRET "\"}}",
                 "x.json: webrtc.turn_secret: is only used with webrtc.turn_urls");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_urls\":[\"turn:a\"],\"turn_secret\":\"short\"}}",
                 "x.json: webrtc.turn_secret: must be at least 16 bytes");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_urls\":[\"turn:a\"],\"turn_secret\":\"" TURN_SECRET
                 "\",\"turn_secret_file\":\"/x\"}}",
                 "x.json: webrtc.turn_secret_file: give turn_secret or turn_secret_file, not both");
    expect_error(
        "{" AUTH ",\"webrtc\":{\"turn_urls\":[\"turn:a\"],"
        "\"turn_secret_file\":\"/nonexistent/turn.key\"}}",
        "x.json: webrtc.turn_secret_file: /nonexistent/turn.key: cannot read: No such file "
        "or directory");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_ttl_s\":59}}",
                 "x.json: webrtc.turn_ttl_s: must be an integer from 60 to 604800");
    expect_error("{" AUTH ",\"webrtc\":{\"turn_ttl_s\":\"60\"}}",
                 "x.json: webrtc.turn_ttl_s: must be an integer from 60 to 604800, not a string");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimal_file_keeps_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_bounds_accepted),
        cmocka_unit_test(test_reload_and_failed_reload),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_jwt_secret),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_log_section),
        cmocka_unit_test(test_presence_section),
        cmocka_unit_test(test_redis_shards),
        cmocka_unit_test(test_redis_sentinel),
        cmocka_unit_test(test_redis_cluster),
        cmocka_unit_test(test_listen_reuse_port),
        cmocka_unit_test(test_listen_address),
        cmocka_unit_test(test_longpoll_default_over_max),
        cmocka_unit_test(test_ws_idle_not_over_ping),
        cmocka_unit_test(test_backplane_type),
        cmocka_unit_test(test_redis_defaults),
        cmocka_unit_test(test_redis_url_forms),
        cmocka_unit_test(test_redis_url_errors),
        cmocka_unit_test(test_redis_url_error_after_credentials),
        cmocka_unit_test(test_web_keys),
        cmocka_unit_test(test_redis_url_error_hides_password),
        cmocka_unit_test(test_redis_url_numbers_strict),
        cmocka_unit_test(test_redis_credentials),
        cmocka_unit_test(test_redis_numeric_ranges),
        cmocka_unit_test(test_redis_keys_refused_for_local),
        cmocka_unit_test(test_redis_keys_without_type_refused),
        cmocka_unit_test(test_backplane_unknown_keys),
        cmocka_unit_test(test_redis_full),
        cmocka_unit_test(test_cors_origins),
        cmocka_unit_test(test_cors_bad_origins),
        cmocka_unit_test(test_cors_origin_needs_host_and_valid_port),
        cmocka_unit_test(test_cors_too_many),
        cmocka_unit_test(test_embedded_nul_rejected),
        cmocka_unit_test(test_release_frees_everything),
        cmocka_unit_test(test_reload_redis_and_cors),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_committed_config),
        cmocka_unit_test(test_webrtc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
