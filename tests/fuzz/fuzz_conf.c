/* fuzz_conf.c: the configuration loader (conf_load_string), which also runs on SIGHUP.
 *
 * Properties: no crash, no leak (conf_init/conf_release each time), a refused document leaves
 * the running config exactly as it was (conf.h), a loaded one keeps the documented
 * invariants, conf_keep_startup() swaps without double frees, and no secret is ever repeated
 * in an error message. *_file keys read through fopen(), which is wrapped (-Wl,--wrap=fopen)
 * to a few in-memory files under /fuzz/: the fuzzer never opens real paths (no /dev/stdin
 * hangs, no dependence on the machine). */
#include "fuzz_common.h"

#include "rtgate/conf.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);

static const struct {
    const char *path, *text;
} files[] = {
    {"/fuzz/secret", "fuzz-secret-from-a-file-0123456789\n"},
    {"/fuzz/secret-crlf", "fuzz-secret-from-a-file-0123456789\r\n\r\n"},
    {"/fuzz/short", "short\n"},
    {"/fuzz/api_keys", "# backends\n\nkey-one-0123456789abcdef\r\nkey-two-0123456789abcdef\n"},
    {"/fuzz/api_keys_short", "key-one-0123456789abcdef\nshort\n"},
    {"/fuzz/ec.pem", FUZZ_EC_PEM},
    {"/fuzz/rsa.pem", FUZZ_RSA_PEM},
};

FILE *__wrap_fopen(const char *path, const char *mode)
{
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (strcmp(path, files[i].path) == 0)
            return fmemopen((void *)(uintptr_t)files[i].text, strlen(files[i].text), "r");
    if (strcmp(path, "/fuzz/empty") == 0)
        return __real_fopen("/dev/null", "rb");
    errno = strcmp(path, "/fuzz/dir") == 0 ? EISDIR : ENOENT;
    return NULL;
}

static const char base[] = "{\"listen\":{\"port\":0},\"auth\":{\"jwt_secret\":\"" FUZZ_SECRET
                           "\",\"api_keys\":[\"" FUZZ_API_KEY "\"]},\"history\":{\"size\":7}}";

static void changed(const char *key)
{
    FUZZ_ASSERT(key && *key);
}

static void check_loaded(const struct conf *cf)
{
    FUZZ_ASSERT(cf->path && strcmp(cf->path, "fuzz.json") == 0);
    FUZZ_ASSERT(cf->listen_address && cf->backplane_type && cf->redis_host);
    FUZZ_ASSERT(strcmp(cf->backplane_type, "local") == 0 ||
                strcmp(cf->backplane_type, "redis") == 0);
    FUZZ_ASSERT(cf->listen_port >= 0 && cf->listen_port <= 65535);
    FUZZ_ASSERT(cf->ws_idle_timeout_s > cf->ws_ping_interval_s);
    FUZZ_ASSERT(cf->longpoll_timeout_s <= cf->longpoll_max_timeout_s);
    FUZZ_ASSERT(cf->history_size >= 1 && cf->send_queue >= 1 && cf->max_topics >= 1);
    FUZZ_ASSERT(cf->max_message_bytes >= 64 && cf->max_message_bytes <= 16 * 1024 * 1024);
    FUZZ_ASSERT(cf->n_api_keys <= CONF_MAX_API_KEYS && cf->n_cors_origins <= CONF_MAX_ORIGINS &&
                cf->n_ws_origins <= CONF_MAX_ORIGINS);
    FUZZ_ASSERT(!cf->redis_signing_key || cf->redis_signing_key_len >= 16);
    FUZZ_ASSERT(cf->n_keys >= 1 && cf->n_keys <= CONF_MAX_KEYS);
    FUZZ_ASSERT(!cf->jwt_secret || cf->jwt_secret_len >= 16);
    for (size_t i = 0; i < cf->n_api_keys; i++)
        FUZZ_ASSERT(cf->api_keys[i] && strlen(cf->api_keys[i]) >= 16);
    for (size_t i = 0; i < cf->n_cors_origins; i++)
        FUZZ_ASSERT(cf->cors_origins[i] && *cf->cors_origins[i]);
    FUZZ_ASSERT(!cf->redis_username || cf->redis_password);
}

/* A secret that we can look for without false alarms: long, and with a character no message
 * template has, and none of the separators fail() puts around echoed names. */
static int is_canary(const char *s)
{
    if (!s || strlen(s) < 12 || !strpbrk(s, "!$%^&~|"))
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || strchr("\"\\.: ", *s))
            return 0;
    return 1;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* Every secret of the document that appears nowhere else in it must not be in @err. */
static void check_no_secret_in(const char *err, const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL), *a, *bp, *v;
    const char *secrets[40], *url;
    char pass[256] = "", *dump;
    size_t n = 0, i;

    if (!root)
        return;
    a = json_object_get(root, "auth");
    bp = json_object_get(root, "backplane");
    secrets[n++] = json_string_value(json_object_get(a, "jwt_secret"));
    secrets[n++] = json_string_value(json_object_get(bp, "password"));
    secrets[n++] = json_string_value(json_object_get(bp, "signing_key"));
    json_array_foreach(json_object_get(a, "api_keys"), i, v)
    {
        if (n < 38)
            secrets[n++] = json_string_value(v);
    }
    json_array_foreach(json_object_get(a, "keys"), i, v)
    {
        if (n < 38)
            secrets[n++] = json_string_value(json_object_get(v, "secret"));
    }
    /* redis://user:<password>@host */
    url = json_string_value(json_object_get(bp, "url"));
    if (url && strncmp(url, "redis://", 8) == 0 && strchr(url + 8, '@')) {
        const char *at = strchr(url + 8, '@'), *c = memchr(url + 8, ':', (size_t)(at - url - 8));
        const char *from = c ? c + 1 : url + 8;

        if ((size_t)(at - from) < sizeof(pass)) {
            memcpy(pass, from, (size_t)(at - from));
            pass[at - from] = '\0';
            secrets[n++] = pass;
        }
    }
    dump = json_dumps(root, JSON_COMPACT);
    for (i = 0; dump && i < n; i++)
        if (is_canary(secrets[i]) && count(dump, secrets[i]) == 1)
            FUZZ_ASSERT(strstr(err, secrets[i]) == NULL);
    free(dump);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf cf, snap, fresh;
    char err[512];
    int r;

    conf_init(&cf);
    FUZZ_ASSERT(conf_load_string(&cf, "base.json", base, sizeof(base) - 1, err, sizeof(err)) == 0);
    snap = cf;
    memset(err, 'x', sizeof(err));
    r = conf_load_string(&cf, "fuzz.json", (const char *)data, size, err, sizeof(err));
    if (r != 0) {
        FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
        FUZZ_ASSERT(strncmp(err, "fuzz.json: ", 11) == 0);
        FUZZ_ASSERT(memcmp(&cf, &snap, sizeof(cf)) == 0); /* refused: nothing changed */
        check_no_secret_in(err, data, size);
    } else {
        check_loaded(&cf);
    }

    /* a reload: the start-up-only values of the running config move into the new one */
    conf_init(&fresh);
    conf_keep_startup(&fresh, &cf, changed);
    conf_release(&cf);
    conf_release(&fresh);
    return 0;
}
