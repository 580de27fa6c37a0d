/* test_auth.c: JWT verification and signing, API keys, base64url. The known vectors were made
 * outside this code (Python's hmac/base64, jwt.io, RFC 7515 A.1) so a shared bug in our encoder
 * and verifier cannot hide. jansson allocates through xmalloc here, so cmocka sees its leaks. */
#include "rtgate/auth.h"
#include "rtgate/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* Last, and in this order: with UNIT_TESTING cmocka.h redefines malloc() and friends (which
 * breaks a later <stdlib.h>), and it needs these four headers before it. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#define SECRET     "rtgate-test-secret"
#define SECRET_LEN (sizeof(SECRET) - 1)
#define NOW        1700000100

/* python3 -c 'import hmac,hashlib,base64; ...' over
 * {"alg":"HS256","typ":"JWT"} . {"sub":"alice@example.com","iat":1700000000,"exp":1700003600} */
static const char vector_token[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ."
    "PxxQuzoinjS-pETFWYAqRenvd_8JH59tsSaSjUj1Mz4";

/* Verifies a NUL-terminated token with SECRET at NOW; returns the reason, or NULL on success. */
static const char *verify_str(const char *token, struct auth_identity *id)
{
    const char *why = NULL;
    int rc = auth_verify_jwt(SECRET, SECRET_LEN, token, strlen(token), NOW, id, &why);

    if (rc == 0)
        return NULL;
    assert_int_equal(rc, -1);
    assert_non_null(why);
    return why;
}

/* Builds "b64(header).b64(payload).b64(HMAC)" with OpenSSL directly, so tests can sign any
 * header and payload, including ones auth_sign_jwt() would never produce. */
static void make_token(const char *header, const char *payload, char *out, size_t cap)
{
    unsigned char mac[32];
    unsigned int mac_len = 0;
    int n;
    size_t o;

    n = auth_b64url_encode((const unsigned char *)header, strlen(header), out, cap);
    assert_true(n >= 0);
    o = (size_t)n;
    out[o++] = '.';
    n = auth_b64url_encode((const unsigned char *)payload, strlen(payload), out + o, cap - o);
    assert_true(n >= 0);
    o += (size_t)n;
    assert_non_null(
        HMAC(EVP_sha256(), SECRET, (int)SECRET_LEN, (const unsigned char *)out, o, mac, &mac_len));
    assert_int_equal(mac_len, 32);
    out[o++] = '.';
    assert_int_equal(auth_b64url_encode(mac, sizeof(mac), out + o, cap - o), 43);
}

static const char *verify_claims(const char *payload, struct auth_identity *id)
{
    char tok[AUTH_TOKEN_MAX + 1];

    make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, tok, sizeof(tok));
    return verify_str(tok, id);
}

static const char *verify_header(const char *header)
{
    char tok[AUTH_TOKEN_MAX + 1];
    struct auth_identity id;

    make_token(header, "{\"sub\":\"bob\"}", tok, sizeof(tok));
    return verify_str(tok, &id);
}

static void test_sign_verify_round_trip(void **state)
{
    char tok[512];
    struct auth_identity id;
    int n = auth_sign_jwt(SECRET, SECRET_LEN, "user_7.x@y-z", NOW - 10, NOW + 60, tok, sizeof(tok));

    (void)state;
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(tok));
    assert_null(verify_str(tok, &id));
    assert_string_equal(id.sub, "user_7.x@y-z");
    assert_int_equal(id.sub_len, 12);
    assert_int_equal(id.exp, NOW + 60);
}

static void test_sign_matches_known_vector(void **state)
{
    char tok[512];
    int n = auth_sign_jwt(SECRET, SECRET_LEN, "alice@example.com", 1700000000, 1700003600, tok,
                          sizeof(tok));

    (void)state;
    assert_int_equal(n, (int)strlen(vector_token));
    assert_string_equal(tok, vector_token);
}

static void test_verify_known_vector(void **state)
{
    struct auth_identity id;

    (void)state;
    assert_null(verify_str(vector_token, &id));
    assert_string_equal(id.sub, "alice@example.com");
    assert_int_equal(id.sub_len, 17);
    assert_int_equal(id.exp, 1700003600);
}

static void test_verify_jwt_io_vector(void **state)
{
    static const char tok[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    static const char secret[] = "your-256-bit-secret";
    struct auth_identity id;
    const char *why = NULL;

    (void)state;
    assert_int_equal(
        auth_verify_jwt(secret, sizeof(secret) - 1, tok, sizeof(tok) - 1, NOW, &id, &why), 0);
    assert_string_equal(id.sub, "1234567890");
    assert_int_equal(id.exp, 0); /* no exp claim */
}

/* RFC 7515 A.1: a valid HS256 signature (header with CRLF whitespace, binary key) whose claims
 * have no "sub" and expired in 2011. */
static void test_verify_rfc7515_vector(void **state)
{
    static const char key_b64[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    static const char tok[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                              "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
                              "LmNvbS9pc19yb290Ijp0cnVlfQ."
                              "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    unsigned char key[64];
    struct auth_identity id;
    const char *why = NULL;

    (void)state;
    assert_int_equal(auth_b64url_decode(key_b64, sizeof(key_b64) - 1, key, sizeof(key)), 64);
    assert_int_equal(auth_verify_jwt((const char *)key, sizeof(key), tok, sizeof(tok) - 1,
                                     1300819379, &id, &why),
                     -1);
    assert_string_equal(why, "missing sub"); /* signature and exp passed */
    assert_int_equal(auth_verify_jwt((const char *)key, sizeof(key), tok, sizeof(tok) - 1,
                                     1300819380, &id, &why),
                     -1);
    assert_string_equal(why, "token expired");
    assert_int_equal(
        auth_verify_jwt((const char *)key, 63, tok, sizeof(tok) - 1, 1300819379, &id, &why), -1);
    assert_string_equal(why, "bad signature");
}

static void test_bad_signature(void **state)
{
    char tok[sizeof(vector_token)];
    struct auth_identity id;
    const char *why = NULL;
    size_t len = sizeof(vector_token) - 1;

    (void)state;
    assert_int_equal(auth_verify_jwt("other-secret", 12, vector_token, len, NOW, &id, &why), -1);
    assert_string_equal(why, "bad signature");

    memcpy(tok, vector_token, sizeof(tok));
    tok[len - 5] = tok[len - 5] == 'A' ? 'B' : 'A'; /* flip bits inside the MAC */
    assert_string_equal(verify_str(tok, &id), "bad signature");

    /* truncated signature, and an empty one */
    memcpy(tok, vector_token, sizeof(tok));
    tok[len - 4] = '\0';
    assert_string_equal(verify_str(tok, &id), "bad signature");
    tok[strchr(strchr(tok, '.') + 1, '.') - tok + 1] = '\0';
    assert_string_equal(verify_str(tok, &id), "bad signature");

    /* an empty secret never verifies, even a token MACed with the empty key */
    assert_int_equal(auth_verify_jwt("", 0, vector_token, len, NOW, &id, &why), -1);
    assert_string_equal(why, "bad signature");
}

static void test_signature_noncanonical_b64(void **state)
{
    char tok[sizeof(vector_token)];
    struct auth_identity id;
    size_t len = sizeof(vector_token) - 1;

    (void)state;
    /* "...Mz4" ends in 0b111000 with 2 unused bits; "...Mz5" decodes to the same MAC. */
    memcpy(tok, vector_token, sizeof(tok));
    assert_int_equal(tok[len - 1], '4');
    tok[len - 1] = '5';
    assert_string_equal(verify_str(tok, &id), "malformed token");
}

static void test_tampered_payload(void **state)
{
    char good[512], evil[512], tok[1024];
    struct auth_identity id;
    const char *sig;

    (void)state;
    assert_true(auth_sign_jwt(SECRET, SECRET_LEN, "alice", NOW, NOW + 60, good, sizeof(good)) > 0);
    assert_true(auth_sign_jwt(SECRET, SECRET_LEN, "admin", NOW, NOW + 60, evil, sizeof(evil)) > 0);
    /* admin's header and payload, alice's signature */
    sig = strrchr(good, '.');
    *strrchr(evil, '.') = '\0';
    snprintf(tok, sizeof(tok), "%s%s", evil, sig);
    assert_string_equal(verify_str(tok, &id), "bad signature");
}

static void test_expired(void **state)
{
    struct auth_identity id;
    char tok[512];

    (void)state;
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":1700000000}", &id), "token expired");
    /* now == exp is already expired; one second before is not */
    assert_true(auth_sign_jwt(SECRET, SECRET_LEN, "a", NOW - 5, NOW, tok, sizeof(tok)) > 0);
    assert_string_equal(verify_str(tok, &id), "token expired");
    assert_true(auth_sign_jwt(SECRET, SECRET_LEN, "a", NOW - 5, NOW + 1, tok, sizeof(tok)) > 0);
    assert_null(verify_str(tok, &id));
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":0}", &id), "token expired");
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":-1}", &id), "token expired");
}

static void test_nbf_in_future(void **state)
{
    struct auth_identity id;
    char payload[128];

    (void)state;
    snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"nbf\":%d}", NOW + 1);
    assert_string_equal(verify_claims(payload, &id), "token not yet valid");
    snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"nbf\":%d}", NOW); /* now >= nbf */
    assert_null(verify_claims(payload, &id));
    snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"nbf\":%d,\"exp\":%d}", NOW - 1, NOW + 1);
    assert_null(verify_claims(payload, &id));
    assert_int_equal(id.exp, NOW + 1);
}

static void test_exp_nbf_not_integer(void **state)
{
    struct auth_identity id;

    (void)state;
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":\"9999999999\"}", &id),
                        "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":null}", &id), "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":true}", &id), "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"exp\":9999999999.5}", &id),
                        "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"nbf\":\"0\"}", &id), "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\",\"nbf\":[0]}", &id), "malformed token");
}

static void test_alg_none(void **state)
{
    struct auth_identity id;

    (void)state;
    /* {"alg":"none"}.{"sub":"bob"}. with an empty signature, as an attacker sends it */
    assert_string_equal(verify_str("eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ.", &id),
                        "unsupported algorithm");
    /* and with a signature that is valid HS256 over those bytes */
    assert_string_equal(verify_header("{\"alg\":\"none\"}"), "unsupported algorithm");
    assert_string_equal(verify_header("{\"alg\":\"None\",\"typ\":\"JWT\"}"),
                        "unsupported algorithm");
}

static void test_alg_other_refused(void **state)
{
    (void)state;
    assert_string_equal(verify_header("{\"alg\":\"HS512\",\"typ\":\"JWT\"}"),
                        "unsupported algorithm");
    assert_string_equal(verify_header("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"),
                        "unsupported algorithm");
    assert_string_equal(verify_header("{\"alg\":\"hs256\"}"), "unsupported algorithm");
    assert_string_equal(verify_header("{\"alg\":\"HS256 \"}"), "unsupported algorithm");
    assert_string_equal(verify_header("{\"typ\":\"JWT\"}"), "unsupported algorithm");
    assert_string_equal(verify_header("{\"alg\":256}"), "unsupported algorithm");
    assert_string_equal(verify_header("{\"alg\":[\"HS256\"]}"), "unsupported algorithm");
    /* accepted: typ is ignored, whatever it says */
    assert_null(verify_header("{\"alg\":\"HS256\"}"));
    assert_null(verify_header("{\"typ\":\"at+jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}"));
}

static void test_header_crit_and_duplicates(void **state)
{
    struct auth_identity id;

    (void)state;
    assert_string_equal(verify_header("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}"),
                        "malformed token");
    assert_string_equal(verify_header("{\"alg\":\"HS256\",\"alg\":\"none\"}"), "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"alice\",\"sub\":\"admin\"}", &id),
                        "malformed token");
}

static void test_malformed_structure(void **state)
{
    struct auth_identity id;
    const char *why = NULL;
    char tok[sizeof(vector_token) + 8];
    const char *dot2 = strrchr(vector_token, '.');

    (void)state;
    assert_string_equal(verify_str("", &id), "malformed token");
    assert_string_equal(verify_str(".", &id), "malformed token");
    assert_string_equal(verify_str("..", &id), "malformed token");
    assert_string_equal(verify_str("...", &id), "malformed token");
    assert_string_equal(verify_str("eyJhbGciOiJIUzI1NiJ9", &id), "malformed token");
    /* two parts: drop the signature and its dot */
    snprintf(tok, sizeof(tok), "%.*s", (int)(dot2 - vector_token), vector_token);
    assert_string_equal(verify_str(tok, &id), "malformed token");
    /* four parts */
    snprintf(tok, sizeof(tok), "%s.AAAA", vector_token);
    assert_string_equal(verify_str(tok, &id), "malformed token");
    snprintf(tok, sizeof(tok), "%s.", vector_token);
    assert_string_equal(verify_str(tok, &id), "malformed token");
    /* a NULL token */
    assert_int_equal(auth_verify_jwt(SECRET, SECRET_LEN, NULL, 0, NOW, &id, &why), -1);
    assert_string_equal(why, "malformed token");
    /* the length is honoured: a valid token with one byte cut off the end */
    assert_int_equal(
        auth_verify_jwt(SECRET, SECRET_LEN, vector_token, sizeof(vector_token) - 2, NOW, &id, &why),
        -1);
    assert_string_equal(why, "bad signature");
}

static void test_malformed_base64(void **state)
{
    struct auth_identity id;
    char tok[sizeof(vector_token) + 8];
    unsigned char mac[32];
    unsigned int mac_len = 0;
    int n;

    (void)state;
    /* bad character in the header */
    memcpy(tok, vector_token, sizeof(vector_token));
    tok[3] = '+';
    assert_string_equal(verify_str(tok, &id), "malformed token");
    /* padding on the header: {"alg":"HS256"} is 15 bytes, so a padded encoder adds '=' */
    assert_string_equal(verify_str("eyJhbGciOiJIUzI1NiJ9=.eyJzdWIiOiJib2IifQ.x", &id),
                        "malformed token");
    /* bad character in the signature (still 43 characters, so it reaches the decoder) */
    memcpy(tok, vector_token, sizeof(vector_token));
    strrchr(tok, '.')[10] = '/';
    assert_string_equal(verify_str(tok, &id), "malformed token");
    /* a payload that is not base64url ("e30!"), correctly MACed: fails after the signature */
    n = snprintf(tok, sizeof(tok), "eyJhbGciOiJIUzI1NiJ9.e30!");
    assert_non_null(HMAC(EVP_sha256(), SECRET, (int)SECRET_LEN, (const unsigned char *)tok,
                         (size_t)n, mac, &mac_len));
    tok[n++] = '.';
    assert_int_equal(auth_b64url_encode(mac, sizeof(mac), tok + n, sizeof(tok) - (size_t)n), 43);
    assert_string_equal(verify_str(tok, &id), "malformed token");
}

static void test_malformed_json(void **state)
{
    struct auth_identity id;

    (void)state;
    assert_string_equal(verify_claims("not json", &id), "malformed token");
    assert_string_equal(verify_claims("", &id), "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\"", &id), "malformed token");
    assert_string_equal(verify_claims("[\"sub\",\"a\"]", &id), "malformed token");
    assert_string_equal(verify_claims("\"a\"", &id), "malformed token");
    assert_string_equal(verify_claims("{\"sub\":\"a\"} trailing", &id), "malformed token");
    assert_string_equal(verify_header("not json"), "malformed token");
    assert_string_equal(verify_header("[\"HS256\"]"), "malformed token");
    assert_string_equal(verify_header(""), "malformed token");
}

/* A correctly signed token of 65 + ceil(4 * (20 + @pad) / 3) characters. */
static char *padded_token(size_t pad)
{
    char *payload = xmalloc(pad + 32);
    char *tok = xmalloc(AUTH_TOKEN_MAX + 64);
    int n = snprintf(payload, pad + 32, "{\"sub\":\"a\",\"pad\":\"");

    memset(payload + n, 'x', pad);
    strcpy(payload + n + pad, "\"}");
    make_token("{\"alg\":\"HS256\"}", payload, tok, AUTH_TOKEN_MAX + 64);
    xfree(payload);
    return tok;
}

static void test_token_too_long(void **state)
{
    struct auth_identity id;
    char *tok;

    (void)state;
    tok = padded_token(3003);
    assert_int_equal(strlen(tok), AUTH_TOKEN_MAX); /* the longest accepted */
    assert_null(verify_str(tok, &id));
    assert_string_equal(id.sub, "a");
    xfree(tok);

    tok = padded_token(3004);
    assert_int_equal(strlen(tok), AUTH_TOKEN_MAX + 1);
    assert_string_equal(verify_str(tok, &id), "malformed token");
    xfree(tok);
}

static void test_missing_sub(void **state)
{
    struct auth_identity id;

    (void)state;
    assert_string_equal(verify_claims("{}", &id), "missing sub");
    assert_string_equal(verify_claims("{\"iss\":\"x\",\"exp\":9999999999}", &id), "missing sub");
    assert_string_equal(verify_claims("{\"sub\":42}", &id), "missing sub");
    assert_string_equal(verify_claims("{\"sub\":null}", &id), "missing sub");
    assert_string_equal(verify_claims("{\"sub\":[\"a\"]}", &id), "missing sub");
}

static void test_invalid_sub(void **state)
{
    struct auth_identity id;

    (void)state;
    assert_string_equal(verify_claims("{\"sub\":\"\"}", &id), "invalid sub");
    assert_string_equal(verify_claims("{\"sub\":\"a b\"}", &id), "invalid sub");
    assert_string_equal(verify_claims("{\"sub\":\"a/b\"}", &id), "invalid sub");
    assert_string_equal(verify_claims("{\"sub\":\"a:b\"}", &id), "invalid sub");
    assert_string_equal(verify_claims("{\"sub\":\"a*\"}", &id), "invalid sub");
    assert_string_equal(verify_claims("{\"sub\":\"caf\\u00e9\"}", &id), "invalid sub");
    assert_string_equal(verify_claims("{\"sub\":\"a\\nb\"}", &id), "invalid sub");
    /* an embedded NUL is refused by jansson unless JSON_ALLOW_NUL */
    assert_string_equal(verify_claims("{\"sub\":\"a\\u0000b\"}", &id), "malformed token");
    assert_null(verify_claims("{\"sub\":\"A-Za_z0.9@x\"}", &id));
    assert_string_equal(id.sub, "A-Za_z0.9@x");
}

static void test_sub_length_limit(void **state)
{
    char payload[AUTH_SUB_MAX + 32];
    char sub[AUTH_SUB_MAX + 2];
    char tok[512];
    struct auth_identity id;

    (void)state;
    memset(sub, 'u', AUTH_SUB_MAX + 1);
    sub[AUTH_SUB_MAX + 1] = '\0';
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", sub);
    assert_string_equal(verify_claims(payload, &id), "invalid sub");
    assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, sub, NOW, 0, tok, sizeof(tok)), -1);

    sub[AUTH_SUB_MAX] = '\0'; /* exactly AUTH_SUB_MAX is allowed */
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", sub);
    assert_null(verify_claims(payload, &id));
    assert_int_equal(id.sub_len, AUTH_SUB_MAX);
    assert_string_equal(id.sub, sub);
    assert_true(auth_sign_jwt(SECRET, SECRET_LEN, sub, NOW, NOW + 1, tok, sizeof(tok)) > 0);
    assert_null(verify_str(tok, &id));
    assert_string_equal(id.sub, sub);
}

static void test_sign_without_exp(void **state)
{
    char tok[512];
    unsigned char payload[256];
    struct auth_identity id;
    const char *p;
    int n;

    (void)state;
    assert_true(auth_sign_jwt(SECRET, SECRET_LEN, "bob", 1700000000, 0, tok, sizeof(tok)) > 0);
    assert_memory_equal(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37);
    p = strchr(tok, '.') + 1;
    n = auth_b64url_decode(p, (size_t)(strchr(p, '.') - p), payload, sizeof(payload));
    assert_true(n > 0);
    assert_int_equal(n, 30);
    assert_memory_equal(payload, "{\"sub\":\"bob\",\"iat\":1700000000}", 30);
    assert_null(verify_str(tok, &id));
    assert_int_equal(id.exp, 0);
}

static void test_sign_rejects(void **state)
{
    char tok[512];
    int n;

    (void)state;
    assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, "", NOW, 0, tok, sizeof(tok)), -1);
    assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, "a\"b", NOW, 0, tok, sizeof(tok)), -1);
    assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, "a b", NOW, 0, tok, sizeof(tok)), -1);
    assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, NULL, NOW, 0, tok, sizeof(tok)), -1);
    assert_int_equal(auth_sign_jwt("", 0, "a", NOW, 0, tok, sizeof(tok)), -1);

    /* the capacity includes the NUL: exactly n + 1 fits, n does not, nor anything smaller */
    n = auth_sign_jwt(SECRET, SECRET_LEN, "alice@example.com", 1700000000, 1700003600, tok,
                      sizeof(tok));
    assert_int_equal(n, (int)strlen(vector_token));
    assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, "alice@example.com", 1700000000, 1700003600,
                                   tok, (size_t)n + 1),
                     n);
    assert_string_equal(tok, vector_token);
    for (size_t cap = 0; cap <= (size_t)n; cap++)
        assert_int_equal(auth_sign_jwt(SECRET, SECRET_LEN, "alice@example.com", 1700000000,
                                       1700003600, tok, cap),
                         -1);
}

static void test_api_key(void **state)
{
    char *keys[] = {"k-first-0123456789", "second", "third-key"};
    char *with_empty[] = {"", "x"};

    (void)state;
    assert_int_equal(auth_api_key_ok(keys, 3, "second", 6), 1);
    assert_int_equal(auth_api_key_ok(keys, 3, "k-first-0123456789", 18), 1);
    assert_int_equal(auth_api_key_ok(keys, 3, "third-key", 9), 1); /* the last one is reached */
    assert_int_equal(auth_api_key_ok(keys, 3, "secone", 6), 0);
    assert_int_equal(auth_api_key_ok(keys, 3, "Second", 6), 0);
    /* the length is what counts, not the NUL */
    assert_int_equal(auth_api_key_ok(keys, 3, "secondary", 6), 1);
    assert_int_equal(auth_api_key_ok(keys, 3, "second", 5), 0);
    assert_int_equal(auth_api_key_ok(keys, 3, "second!", 7), 0);
    assert_int_equal(auth_api_key_ok(keys, 3, "", 0), 0);
    assert_int_equal(auth_api_key_ok(keys, 2, "third-key", 9), 0); /* n_keys is honoured */
    assert_int_equal(auth_api_key_ok(NULL, 0, "second", 6), 0);
    assert_int_equal(auth_api_key_ok(keys, 0, "second", 6), 0);
    /* an empty configured key never matches an empty presented one */
    assert_int_equal(auth_api_key_ok(with_empty, 2, "", 0), 0);
    assert_int_equal(auth_api_key_ok(with_empty, 2, "x", 1), 1);
}

struct b64_vector {
    const char *plain;
    const char *encoded;
};

/* RFC 4648 §10, unpadded as in §5 / RFC 7515 §2 */
static const struct b64_vector rfc4648[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

static void test_b64url_encode_vectors(void **state)
{
    static const unsigned char url_bytes[] = {0xfb, 0xff, 0xbf, 0x3e};
    char out[32];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rfc4648); i++) {
        const char *plain = rfc4648[i].plain, *enc = rfc4648[i].encoded;

        assert_int_equal(
            auth_b64url_encode((const unsigned char *)plain, strlen(plain), out, sizeof(out)),
            (int)strlen(enc));
        assert_string_equal(out, enc);
        /* exactly enough room for the NUL, then one byte too little */
        assert_int_equal(
            auth_b64url_encode((const unsigned char *)plain, strlen(plain), out, strlen(enc) + 1),
            (int)strlen(enc));
        assert_int_equal(
            auth_b64url_encode((const unsigned char *)plain, strlen(plain), out, strlen(enc)), -1);
    }
    /* the URL-safe alphabet: '-' and '_' where standard base64 has '+' and '/' ("-_-_Pg") */
    assert_int_equal(auth_b64url_encode(url_bytes, sizeof(url_bytes), out, sizeof(out)), 6);
    assert_string_equal(out, "-_-_Pg");
}

static void test_b64url_decode_vectors(void **state)
{
    static const unsigned char url_bytes[] = {0xfb, 0xff, 0xbf, 0x3e};
    unsigned char out[32];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rfc4648); i++) {
        const char *plain = rfc4648[i].plain, *enc = rfc4648[i].encoded;
        int n = auth_b64url_decode(enc, strlen(enc), out, sizeof(out));

        assert_int_equal(n, (int)strlen(plain));
        assert_memory_equal(out, plain, strlen(plain));
        /* exact capacity suffices; one less does not */
        assert_int_equal(auth_b64url_decode(enc, strlen(enc), out, strlen(plain)), n);
        if (n > 0)
            assert_int_equal(auth_b64url_decode(enc, strlen(enc), out, strlen(plain) - 1), -1);
    }
    assert_int_equal(auth_b64url_decode("-_-_Pg", 6, out, sizeof(out)), 4);
    assert_memory_equal(out, url_bytes, 4);
    /* the length bounds the input: "Zm9vYmFy" read as 4 characters */
    assert_int_equal(auth_b64url_decode("Zm9vYmFy", 4, out, sizeof(out)), 3);
    assert_memory_equal(out, "foo", 3);
}

static void test_b64url_round_trip_all_bytes(void **state)
{
    unsigned char in[256], back[256];
    char enc[400];

    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)i;
    for (size_t len = 0; len <= sizeof(in); len++) {
        int n = auth_b64url_encode(in, len, enc, sizeof(enc));

        assert_true(n >= 0);
        assert_null(strpbrk(enc, "+/="));
        assert_int_equal(auth_b64url_decode(enc, (size_t)n, back, sizeof(back)), (int)len);
        assert_memory_equal(back, in, len);
    }
}

static void test_b64url_decode_rejects(void **state)
{
    static const char *const bad[] = {
        "Zg==",     /* padding */
        "Zm8=",     /* padding */
        "Zg=",      /* padding, odd length */
        "Zm9v+A",   /* standard alphabet */
        "Zm9v/A",   /* standard alphabet */
        "Zm9 v",    /* whitespace */
        "Zm9v\n",   /* newline */
        "Zm9v.A",   /* separator */
        "Z",        /* len % 4 == 1 */
        "Zm9vY",    /* len % 4 == 1 */
        "Zh",       /* non-zero unused bits ("f" is "Zg") */
        "Zm9",      /* non-zero unused bits ("fo" is "Zm8") */
        "Zm9vYmF~", /* not in any alphabet */
    };
    unsigned char out[32];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(auth_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -1);
    /* an embedded NUL counts as a bad character, not as the end */
    assert_int_equal(auth_b64url_decode("Zm\0v", 4, out, sizeof(out)), -1);
    assert_int_equal(auth_b64url_decode("\xc3\xa9Zg", 4, out, sizeof(out)), -1);
}

static int setup_jansson(void **state)
{
    (void)state;
    /* jansson's blocks then go through cmocka's test_malloc: a missed json_decref fails. */
    json_set_alloc_funcs(xmalloc, xfree);
    return 0;
}

/* TURN REST API credentials, checked against an independent computation (Python's hmac):
 * base64(HMAC-SHA1("turn-secret-0123456789", "1800000000:alice")). */
static void test_turn_credentials(void **state)
{
    char user[64], cred[AUTH_TURN_CRED_MAX], small[16];

    assert_int_equal(auth_turn_credentials("turn-secret-0123456789", 22, 1800000000, "alice", 5,
                                           user, sizeof(user), cred),
                     0);
    assert_string_equal(user, "1800000000:alice");
    assert_string_equal(cred, "KpiNstapf3iO+kK51zEO3K7yCSk=");
    /* another user or another expiry: another password */
    assert_int_equal(auth_turn_credentials("turn-secret-0123456789", 22, 1800000001, "alice", 5,
                                           user, sizeof(user), cred),
                     0);
    assert_string_not_equal(cred, "KpiNstapf3iO+kK51zEO3K7yCSk=");
    /* the username must fit */
    assert_int_equal(auth_turn_credentials("turn-secret-0123456789", 22, 1800000000, "alice", 5,
                                           small, sizeof(small), cred),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_sign_matches_known_vector),
        cmocka_unit_test(test_verify_known_vector),
        cmocka_unit_test(test_verify_jwt_io_vector),
        cmocka_unit_test(test_verify_rfc7515_vector),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_signature_noncanonical_b64),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_nbf_in_future),
        cmocka_unit_test(test_exp_nbf_not_integer),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_other_refused),
        cmocka_unit_test(test_header_crit_and_duplicates),
        cmocka_unit_test(test_malformed_structure),
        cmocka_unit_test(test_malformed_base64),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_token_too_long),
        cmocka_unit_test(test_missing_sub),
        cmocka_unit_test(test_invalid_sub),
        cmocka_unit_test(test_sub_length_limit),
        cmocka_unit_test(test_sign_without_exp),
        cmocka_unit_test(test_sign_rejects),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_b64url_encode_vectors),
        cmocka_unit_test(test_b64url_decode_vectors),
        cmocka_unit_test(test_b64url_round_trip_all_bytes),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_turn_credentials),
    };

    return cmocka_run_group_tests(tests, setup_jansson, NULL);
}
