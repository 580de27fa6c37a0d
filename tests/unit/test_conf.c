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

static void assert_defaults(const struct conf *cf)
{
    assert_string_equal(cf->listen_address, "127.0.0.1");
    assert_int_equal(cf->listen_port, 8080);
    assert_int_equal(cf->log_level, LOG_INFO);
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

    expect_error("{}", "x.json: auth.jwt_secret: required");
    expect_error("{\"auth\":{}}", "x.json: auth.jwt_secret: required");
    expect_error("{\"auth\":{\"api_keys\":[\"" KEY16 "\"]}}", "x.json: auth.jwt_secret: required");
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

static void test_backplane_type(void **state)
{
    struct conf cf;

    expect_error("{\"backplane\":{\"type\":\"redis\"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"redis\" (only \"local\")");
    expect_error("{\"backplane\":{\"type\":\"\"}," AUTH "}",
                 "x.json: backplane.type: unsupported backplane type \"\" (only \"local\")");
    conf_init(&cf);
    expect_ok(&cf, "{\"backplane\":{}," AUTH "}");
    assert_string_equal(cf.backplane_type, "local");
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
        cmocka_unit_test(test_listen_address),
        cmocka_unit_test(test_longpoll_default_over_max),
        cmocka_unit_test(test_ws_idle_not_over_ping),
        cmocka_unit_test(test_backplane_type),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_committed_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
