/* conf.h: the configuration, read once from a JSON file at startup and checked whole.
 * Every key is documented in README.md ("Configuration"); unknown keys are an error. */
#ifndef RTGATE_CONF_H
#define RTGATE_CONF_H

#include "rtgate/auth.h"

#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_API_KEYS 16
#define CONF_MAX_ORIGINS  16
#define CONF_MAX_KEYS     17 /* auth.keys (16) + jwt_secret */
#define CONF_MAX_PATTERNS 64
#define CONF_MAX_SHARDS   16

/* One Redis server: "redis://[[user]:password@]host[:port][/db]". */
struct conf_redis_addr {
    char *host;
    int port, db;
    char *username, *password;
};
#define CONF_MAX_ICE_URLS 8

#define CONF_NODE_ID_MAX 64

/* "stats.access": an API key (X-API-Key or ?key=), anyone, or nobody. */
enum conf_stats_access { CONF_STATS_API_KEY, CONF_STATS_PUBLIC, CONF_STATS_OFF };

struct conf {
    char *path;            /* the file it was read from (for messages) */
    char *listen_address;  /* "listen.address", default "127.0.0.1" */
    int listen_port;       /* "listen.port", default 8080, 1..65535 (0 = any free port) */
    char *tls_cert_file;   /* "listen.tls_cert_file": PEM certificate chain; with tls_key_file, the
                            * listener speaks https/wss (TLS 1.2+); default none (plain) */
    char *tls_key_file;    /* "listen.tls_key_file": its PEM private key */
    int listen_http2;      /* "listen.http2": offer h2 by ALPN (TLS only), default false */
    int log_level;         /* "log_level": enum log_level, default "info" */
    int log_format;        /* "log.format": enum log_format, "plain" (default) or "json" */
    int log_access;        /* "log.access": one line per HTTP request / WebSocket session, default
                            * false */
    int listen_reuse_port; /* "listen.reuse_port": SO_REUSEPORT, so several processes share the
                            * port (the kernel spreads connections); default false */
    uint32_t log_repeat_limit_per_s; /* "log.repeat_limit_per_s": lines per second one message
                                      * may log before the rest are suppressed (and summed up),
                                      * default 10, 0..1000000, 0: no limit */

    size_t history_size; /* "history.size": messages kept per topic, default 1000, 1..1000000 */

    uint32_t
        sse_heartbeat_ms;  /* "sse.heartbeat_ms": comment heartbeat, default 15000, 100..300000 */
    uint32_t sse_retry_ms; /* "sse.retry_ms": the retry: hint, default 2000, 0..600000 */

    uint32_t ws_ping_interval_s; /* "websocket.ping_interval_s": idle before a ping, default
                                    20, 1..3600 */
    uint32_t ws_idle_timeout_s;  /* "websocket.idle_timeout_s": idle before hang-up, default 40,
                                  * must be > ping_interval_s, ..3600 */

    uint32_t longpoll_timeout_s;     /* "longpoll.default_timeout_s": default 25, 1..max */
    uint32_t longpoll_max_timeout_s; /* "longpoll.max_timeout_s": cap on ?timeout=, default
                                        55, 1..3600 */

    size_t max_message_bytes; /* "limits.max_message_bytes": body / WS frame, default 65536, 64..16
                                 MiB */
    size_t send_queue;        /* "limits.send_queue": messages queued per connection before it is
                               * cut as a slow consumer, default 1024, 1..1000000 */
    size_t max_connections;   /* "limits.max_connections": default 10000, 1..1000000 */
    size_t max_topics;        /* "limits.max_topics_per_request": default 32, 1..1024 */
    size_t max_poll_messages; /* "limits.max_messages_per_poll": default 500, 1..100000 */
    size_t max_held_polls;    /* "limits.max_held_longpolls": default 10000, 1..1000000 */
    uint32_t request_timeout_s; /* "limits.request_timeout_s": a request's headers (and body)
                                 * must arrive within it (slowloris), default 10, 1..3600 */
    size_t send_queue_bytes;    /* "limits.send_queue_bytes": frame bytes queued per connection
                                 * before it is cut as a slow consumer, default 8 MiB, 0 = none */
    uint32_t publish_rate;      /* "limits.publish_rate": publishes/s one WebSocket may make (token
                                 * bucket), default 1000, 0 = no limit */
    uint32_t publish_burst;     /* "limits.publish_burst": the bucket's size, default 2000 */
    size_t max_conns_per_ip;    /* "limits.max_connections_per_ip": streams (SSE, WS, held
                                 * long-polls) per client address, default 0 = no limit */
    uint32_t requests_per_ip;   /* "limits.requests_per_ip_per_s": HTTP requests per second per
                                 * client address (429 beyond), default 0 = no limit */

    char *jwt_secret; /* "auth.jwt_secret": HS256 secret, required, >= 16 bytes */
    size_t jwt_secret_len;
    char *api_keys[CONF_MAX_API_KEYS]; /* "auth.api_keys": array of strings, each >= 16 bytes */
    char *api_key_topics[CONF_MAX_API_KEYS]; /* patterns "p1\0p2\0\0" a key may publish to, or
                                              * NULL: any topic */
    /* "auth.keys": [{"kid","alg","secret"|"secret_file"|"public_key"|"public_key_file"}], plus
     * jwt_secret as the HS256 key without a kid; selected by a token's "kid" header. */
    struct auth_key keys[CONF_MAX_KEYS];
    size_t n_keys;
    uint32_t refresh_grace_s; /* "auth.refresh_grace_s": a WebSocket whose token expired has this
                               * long to send a fresh one; default 30, 1..3600 */
    uint32_t jwt_leeway_s;    /* "auth.leeway_s": clock skew allowed, default 0, ..3600 */
    char *jwt_issuer;         /* "auth.issuer": required "iss", default none */
    char *jwt_audience;       /* "auth.audience": required in "aud", default none */
    char *default_topics[CONF_MAX_PATTERNS];  /* "auth.default_topics": what a token without a */
    size_t n_default_topics;                  /* "topics" claim may read, beyond its inbox */
    char *default_publish[CONF_MAX_PATTERNS]; /* "auth.default_publish": where a token without */
    size_t n_default_publish;                 /* a "publish" claim may publish */
    size_t n_api_keys;

    uint32_t
        shutdown_timeout_ms; /* "shutdown_timeout_ms": drain deadline, default 5000, 0..600000 */
    int ready_without_backplane; /* "ready_without_backplane": systemd READY=1 as soon as we
                                  * listen, not once the backplane is up; default false */
    uint32_t shutdown_grace_ms;  /* "shutdown_grace_ms": after SIGTERM, /readyz is 503 but new
                                  * clients are still served this long, so the balancer's health
                                  * check takes the node out first; default 0, 0..600000 */
    uint32_t shutdown_spread_ms; /* "shutdown_spread_ms": then clients are told to reconnect at
                                  * random times over this window (no reconnect storm); default
                                  * 1000; both are cut to fit shutdown_timeout_ms */

    char *backplane_type; /* "backplane.type": "local" (default) or "redis" */
    /* "backplane.url" redis://[[user]:password@]host[:port][/db], default redis://127.0.0.1:6379/0;
     * "backplane.username"/"password" override the URL's (ACL user / AUTH). */
    char *redis_host;
    int redis_port, redis_db;
    char *redis_username, *redis_password;
    /* "backplane.shards": independent Redis servers, topics spread over them by consistent
     * hashing (ring.h); none: the one server of backplane.url. username/password apply to
     * each shard whose URL has none. */
    struct conf_redis_addr redis_shards[CONF_MAX_SHARDS];
    size_t n_redis_shards;
    /* "backplane.sentinel": {"master": name, "addresses": ["host:port", ...]}: the primary is
     * found through Redis Sentinel (backplane.url then only gives password, username, db). */
    char *sentinel_master;
    char *sentinel_hosts[CONF_MAX_SHARDS];
    int sentinel_ports[CONF_MAX_SHARDS];
    size_t n_sentinels;
    uint32_t redis_connect_timeout_ms; /* "backplane.connect_timeout_ms": default 2000 */
    uint32_t redis_history_ttl_s;      /* "backplane.history_ttl_s": default 86400 */
    size_t redis_max_pending;          /* "backplane.max_pending": commands in flight, 10000 */
    char *redis_signing_key;           /* "backplane.signing_key"(_file): HMAC key for messages */
    size_t redis_signing_key_len;      /* between nodes; none by default */

    int presence_enabled;    /* "presence.enabled": count users' connections, default true */
    uint32_t presence_ttl_s; /* "presence.ttl_s": a node's entries outlive its last refresh by
                              * this long (refreshed every ttl/3), default 30, 3..3600 */
    int presence_events;     /* "presence.events": publish join/leave to presence:<user>,
                              * default false */

    char *cors_origins[CONF_MAX_ORIGINS]; /* "cors.allowed_origins": "*" or "https://host[:port]";
                                           * default none (no CORS headers) */
    size_t n_cors_origins;
    char *ws_origins[CONF_MAX_ORIGINS]; /* "websocket.allowed_origins": pages whose Origin may
                                         * open a WebSocket ("*" any); default none = no check */
    size_t n_ws_origins;

    char *static_dir; /* "static_dir": files served under / (the demo); real path; default none */
    char *node_id;    /* "node_id": this node's name for clients; default "<hostname>-<port>" */
    enum conf_stats_access stats_access; /* "stats.access": who reads /v1/stats/stream */
    uint32_t stats_interval_ms;          /* "stats.interval_ms": 100..60000, default 1000 */

    /* "webrtc": what GET /v1/ice serves (all reloadable). */
    char *stun_urls[CONF_MAX_ICE_URLS]; /* "webrtc.stun_urls": "stun:" / "stuns:" URLs */
    size_t n_stun_urls;
    char *turn_urls[CONF_MAX_ICE_URLS]; /* "webrtc.turn_urls": "turn:" / "turns:" URLs */
    size_t n_turn_urls;
    char *turn_secret; /* "webrtc.turn_secret"(_file): coturn's static-auth-secret, >= 16 bytes;
                        * required with turn_urls */
    size_t turn_secret_len;
    uint32_t turn_ttl_s; /* "webrtc.turn_ttl_s": credential lifetime, default 86400, 60..604800 */
};

/* rtgate --static-dir DIR: sets static_dir as the key would (over the file's). 0, or -1 and
 * @err. */
int conf_set_static_dir(struct conf *cf, const char *dir, char *err, size_t errlen);

/* Sets every field to its default (strings are allocated). conf_release() frees them. */
void conf_init(struct conf *cf);

/* Reads and checks @path into @cf (which conf_init() prepared). On error returns -1 and writes
 * "<file>: <key>: <reason>" into @err; @cf must still be released. */
int conf_load(struct conf *cf, const char *path, char *err, size_t errlen);

/* Same as conf_load() for JSON text already in memory (@name is used in messages). */
int conf_load_string(struct conf *cf, const char *name, const char *json, size_t len, char *err,
                     size_t errlen);

void conf_release(struct conf *cf);

/* For a reload (SIGHUP): gives @next the values of @cur that only take effect at start-up
 * (listen.*, backplane.*, history.size, websocket.*), calling @changed(key) for each that the
 * new file changed, so a reload never half-applies them. @cur gets @next's unused copies:
 * release it afterwards. */
void conf_keep_startup(struct conf *next, struct conf *cur, void (*changed)(const char *key));

#endif
