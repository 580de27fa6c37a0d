/* auth.c: HS256 JWTs and API keys. Owns the JWS parsing rules and base64url; knows nothing of
 * sockets, requests or where the secret came from. Never logs a token, key or secret: the only
 * thing that leaves on failure is one of the static reasons in auth.h. */
#include "rtgate/auth.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>

#define SHA256_LEN  32
#define SIG_B64_LEN 43 /* base64url of 32 bytes, unpadded */

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const char why_malformed[] = "malformed token";
static const char why_alg[] = "unsupported algorithm";
static const char why_sig[] = "bad signature";
static const char why_expired[] = "token expired";
static const char why_nbf[] = "token not yet valid";
static const char why_no_sub[] = "missing sub";
static const char why_bad_sub[] = "invalid sub";

int auth_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    size_t rem = len % 3, n, o = 0, i;

    if (len > (size_t)INT_MAX / 4 * 3)
        return -1;
    n = len / 3 * 4 + (rem ? rem + 1 : 0);
    if (n >= cap)
        return -1;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = b64url_chars[v >> 18 & 63];
        out[o++] = b64url_chars[v >> 12 & 63];
        out[o++] = b64url_chars[v >> 6 & 63];
        out[o++] = b64url_chars[v & 63];
    }
    if (rem) {
        uint32_t v = (uint32_t)in[i] << 16 | (rem == 2 ? (uint32_t)in[i + 1] << 8 : 0);

        out[o++] = b64url_chars[v >> 18 & 63];
        out[o++] = b64url_chars[v >> 12 & 63];
        if (rem == 2)
            out[o++] = b64url_chars[v >> 6 & 63];
    }
    out[o] = '\0';
    return (int)o;
}

int auth_turn_credentials(const char *secret, size_t secret_len, int64_t expiry, const char *user,
                          size_t user_len, char *username, size_t cap,
                          char cred[AUTH_TURN_CRED_MAX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int n = snprintf(username, cap, "%" PRId64 ":%.*s", expiry, (int)user_len, user);

    if (n < 0 || (size_t)n >= cap || user_len > INT_MAX)
        return -1;
    if (!HMAC(EVP_sha1(), secret, (int)secret_len, (const unsigned char *)username, (size_t)n, mac,
              &mac_len) ||
        mac_len != 20)
        return -1;
    /* standard, padded base64: what coturn compares against (not the JWT's base64url) */
    EVP_EncodeBlock((unsigned char *)cred, mac, (int)mac_len);
    return 0;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1; /* includes '=', '+', '/', whitespace, NUL */
}

int auth_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t rem = len % 4, n, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    /* One leftover character carries 6 bits, not a whole byte: no encoder produces it. */
    if (rem == 1)
        return -1;
    n = len / 4 * 3 + (rem ? rem - 1 : 0);
    if (n > cap || n > INT_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The unused low bits of the last character must be zero (RFC 4648 §3.5 lets us insist).
     * Otherwise "...Mz4" and "...Mz5" would both be the same signature: a token would have
     * several spellings, which breaks anyone who dedups or revokes tokens by their text. */
    if (acc != 0)
        return -1;
    return (int)o;
}

/* [A-Za-z0-9_.@-]{1,AUTH_SUB_MAX}: the sub becomes part of a topic id, so must already be one. */
static int is_valid_sub(const char *s, size_t len)
{
    if (len == 0 || len > AUTH_SUB_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

static const char why_kid[] = "unknown key";
static const char why_iss[] = "wrong issuer";
static const char why_aud[] = "wrong audience";
static const char why_grants[] = "bad grants";

static const struct {
    const char *name;
    size_t sig_len; /* the raw signature; ES256 is r||s (RFC 7518 §3.4), not DER */
} algs[] = {
    [AUTH_HS256] = {"HS256", 32}, [AUTH_HS384] = {"HS384", 48}, [AUTH_HS512] = {"HS512", 64},
    [AUTH_RS256] = {"RS256", 0},  [AUTH_ES256] = {"ES256", 64},
};

int auth_alg_parse(const char *name, enum auth_alg *alg)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(name, algs[i].name) == 0) {
            *alg = (enum auth_alg)i;
            return 0;
        }
    return -1;
}

const char *auth_alg_name(enum auth_alg alg)
{
    return algs[alg].name;
}

static const EVP_MD *alg_md(enum auth_alg alg)
{
    switch (alg) {
    case AUTH_HS384: return EVP_sha384();
    case AUTH_HS512: return EVP_sha512();
    default: return EVP_sha256();
    }
}

static int is_hmac(enum auth_alg alg)
{
    return alg == AUTH_HS256 || alg == AUTH_HS384 || alg == AUTH_HS512;
}

static void set_kid(struct auth_key *k, const char *kid)
{
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
}

int auth_key_init_secret(struct auth_key *k, const char *kid, enum auth_alg alg, const void *secret,
                         size_t len, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    if (!is_hmac(alg)) {
        snprintf(err, errlen, "%s needs a public key, not a secret", algs[alg].name);
        return -1;
    }
    if (len < 16 || len > INT_MAX) {
        snprintf(err, errlen, "a secret must be at least 16 bytes");
        return -1;
    }
    set_kid(k, kid);
    k->alg = alg;
    k->secret = OPENSSL_malloc(len);
    if (!k->secret) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    return 0;
}

int auth_key_init_pem(struct auth_key *k, const char *kid, enum auth_alg alg, const char *pem,
                      size_t len, char *err, size_t errlen)
{
    BIO *bio;
    EVP_PKEY *pkey;

    memset(k, 0, sizeof(*k));
    if (is_hmac(alg)) {
        snprintf(err, errlen, "%s needs a secret, not a public key", algs[alg].name);
        return -1;
    }
    if (len > INT_MAX || !(bio = BIO_new_mem_buf(pem, (int)len))) {
        snprintf(err, errlen, "cannot read the key");
        return -1;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pkey) {
        snprintf(err, errlen, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
        return -1;
    }
    if (alg == AUTH_RS256 && (!EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_get_bits(pkey) < 2048)) {
        snprintf(err, errlen, "RS256 needs an RSA public key of at least 2048 bits");
        EVP_PKEY_free(pkey);
        return -1;
    }
    if (alg == AUTH_ES256) {
        char group[32] = "";
        size_t glen = 0;

        if (!EVP_PKEY_is_a(pkey, "EC") ||
            !EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof(group), &glen) ||
            strcmp(group, "prime256v1") != 0) {
            snprintf(err, errlen, "ES256 needs an EC P-256 public key");
            EVP_PKEY_free(pkey);
            return -1;
        }
    }
    set_kid(k, kid);
    k->alg = alg;
    k->pkey = pkey;
    return 0;
}

void auth_key_release(struct auth_key *k)
{
    if (k->secret)
        OPENSSL_clear_free(k->secret, k->secret_len);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof(*k));
}

void auth_identity_release(struct auth_identity *id)
{
    free(id->grants);
    id->grants = NULL;
    id->has_topics = id->has_publish = id->may_presence = 0;
}

static int hmac(const struct auth_key *k, const char *data, size_t len, unsigned char *mac,
                unsigned int *mac_len)
{
    /* An empty key is legal HMAC but means an unconfigured gateway: anyone could mint tokens. */
    if (!k->secret || k->secret_len == 0 || k->secret_len > INT_MAX)
        return -1;
    return HMAC(alg_md(k->alg), k->secret, (int)k->secret_len, (const unsigned char *)data, len,
                mac, mac_len)
               ? 0
               : -1;
}

static int hs256(const char *secret, size_t secret_len, const char *data, size_t len,
                 unsigned char mac[SHA256_LEN])
{
    struct auth_key k = {
        .alg = AUTH_HS256, .secret = (unsigned char *)(uintptr_t)secret, .secret_len = secret_len};
    unsigned int mac_len = 0;

    return hmac(&k, data, len, mac, &mac_len) == 0 && mac_len == SHA256_LEN ? 0 : -1;
}

/* ES256 signatures travel as r||s; OpenSSL verifies DER. */
static int es256_to_der(const unsigned char *rs, unsigned char **der, int *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);

    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return -1;
    }
    *der = NULL;
    *der_len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    return *der_len > 0 ? 0 : -1;
}

static int verify_sig(const struct auth_key *k, const char *data, size_t len,
                      const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mac_len = 0;
    EVP_MD_CTX *ctx;
    int ok, der_len = 0;

    if (is_hmac(k->alg))
        return hmac(k, data, len, mac, &mac_len) == 0 && mac_len == sig_len &&
                       CRYPTO_memcmp(mac, sig, sig_len) == 0
                   ? 0
                   : -1;
    if (k->alg == AUTH_ES256) {
        if (sig_len != 64 || es256_to_der(sig, &der, &der_len) != 0)
            return -1;
        sig = der;
        sig_len = (size_t)der_len;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

/* Decodes one base64url part and parses it as a JSON object; NULL if it is neither. Duplicate
 * names are refused: two "alg"s or two "sub"s invite a parser mismatch with whoever signed it. */
static json_t *load_part(const char *b64, size_t len, unsigned char *buf, size_t cap)
{
    json_t *obj;
    int n = auth_b64url_decode(b64, len, buf, cap);

    if (n < 0)
        return NULL;
    obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The key is chosen by "kid" and its algorithm pinned by the configuration: the header's
 * "alg" must name that same algorithm, so "none" and HS/RS confusion cannot get through. */
static const char *check_header(const struct auth_verifier *v, json_t *hdr,
                                const struct auth_key **key)
{
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    json_t *jkid = json_object_get(hdr, "kid");
    const char *kid = jkid ? json_string_value(jkid) : "";

    if (!alg)
        return why_alg;
    /* RFC 7515 §4.1.11: extensions listed in "crit" must be understood; we understand none. */
    if (json_object_get(hdr, "crit"))
        return why_malformed;
    if (!kid)
        return why_malformed;
    *key = NULL;
    for (size_t i = 0; i < v->n_keys; i++)
        if (strcmp(v->keys[i].kid, kid) == 0) {
            *key = &v->keys[i];
            break;
        }
    /* a kid nobody configured falls back to the key without one (the plain jwt_secret) */
    for (size_t i = 0; !*key && i < v->n_keys; i++)
        if (v->keys[i].kid[0] == '\0')
            *key = &v->keys[i];
    if (!*key)
        return jkid ? why_kid : why_alg;
    if (strcmp(alg, algs[(*key)->alg].name) != 0)
        return why_alg;
    return NULL;
}

static int aud_matches(json_t *aud, const char *want)
{
    size_t i;
    json_t *a;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return 0;
    json_array_foreach(aud, i, a)
    {
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return 1;
    }
    return 0;
}

/* "topics"/"publish": arrays of patterns, copied as "r<p>\0" / "p<p>\0" records. */
static const char *take_grants(json_t *claims, struct auth_identity *id)
{
    json_t *lists[2] = {json_object_get(claims, "topics"), json_object_get(claims, "publish")};
    const char kinds[2] = {'r', 'p'};
    size_t total = 1, o = 0, i;
    json_t *x;

    for (int k = 0; k < 2; k++) {
        if (!lists[k])
            continue;
        if (!json_is_array(lists[k]) || json_array_size(lists[k]) > 64)
            return why_grants;
        json_array_foreach(lists[k], i, x)
        {
            if (!json_is_string(x) || json_string_length(x) == 0 || json_string_length(x) > 200)
                return why_grants;
            total += json_string_length(x) + 2;
        }
    }
    if (!lists[0] && !lists[1])
        return NULL;
    id->grants = malloc(total);
    if (!id->grants)
        return why_grants;
    for (int k = 0; k < 2; k++) {
        if (!lists[k])
            continue;
        json_array_foreach(lists[k], i, x)
        {
            id->grants[o++] = kinds[k];
            memcpy(id->grants + o, json_string_value(x), json_string_length(x) + 1);
            o += json_string_length(x) + 1;
        }
    }
    id->grants[o] = '\0';
    id->has_topics = lists[0] != NULL;
    id->has_publish = lists[1] != NULL;
    return NULL;
}

/* exp/nbf/iat are checked only after the signature: before it, the claims are the
 * attacker's. Only JSON integers count; a fractional NumericDate is refused, not rounded. */
static const char *check_claims(const struct auth_verifier *v, json_t *claims, int64_t now,
                                struct auth_identity *id)
{
    json_t *sub = json_object_get(claims, "sub");
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    json_t *iat = json_object_get(claims, "iat");
    int64_t exp_v = 0, leeway = v->leeway_s;
    size_t sub_len;

    if ((exp && !json_is_integer(exp)) || (nbf && !json_is_integer(nbf)) ||
        (iat && !json_is_integer(iat)))
        return why_malformed;
    if (exp) {
        exp_v = json_integer_value(exp);
        if (now - leeway >= exp_v) /* not exp + leeway: a huge exp would overflow */
            return why_expired;
    }
    if (nbf && now + leeway < json_integer_value(nbf))
        return why_nbf;
    if (iat && now + leeway < json_integer_value(iat))
        return why_nbf; /* issued in the future: not yet valid */
    if (v->iss && !(json_is_string(json_object_get(claims, "iss")) &&
                    strcmp(json_string_value(json_object_get(claims, "iss")), v->iss) == 0))
        return why_iss;
    if (v->aud && !aud_matches(json_object_get(claims, "aud"), v->aud))
        return why_aud;
    if (!json_is_string(sub))
        return why_no_sub;
    sub_len = json_string_length(sub);
    if (!is_valid_sub(json_string_value(sub), sub_len))
        return why_bad_sub;
    memcpy(id->sub, json_string_value(sub), sub_len);
    id->sub[sub_len] = '\0';
    id->sub_len = sub_len;
    id->exp = exp_v;
    {
        json_t *pr = json_object_get(claims, "presence"); /* may look up who is online */

        if (pr && !json_is_boolean(pr))
            return why_grants;
        id->may_presence = json_is_true(pr);
    }
    return take_grants(claims, id);
}

int auth_verify(const struct auth_verifier *v, const char *token, size_t len, int64_t now,
                struct auth_identity *id, const char **why)
{
    unsigned char buf[AUTH_TOKEN_MAX]; /* one decoded part at a time */
    unsigned char sig[512];
    const char *dot1, *dot2, *p, *s, *err;
    const struct auth_key *key = NULL;
    size_t h_len, p_len, s_len, want;
    json_t *obj;
    int n;

    id->grants = NULL;
    id->has_topics = id->has_publish = id->may_presence = 0;
    if (!token || len == 0 || len > AUTH_TOKEN_MAX)
        goto malformed;
    dot1 = memchr(token, '.', len);
    if (!dot1)
        goto malformed;
    p = dot1 + 1;
    dot2 = memchr(p, '.', len - (size_t)(p - token));
    if (!dot2)
        goto malformed;
    s = dot2 + 1;
    h_len = (size_t)(dot1 - token);
    p_len = (size_t)(dot2 - p);
    s_len = len - (size_t)(s - token);
    if (memchr(s, '.', s_len))
        goto malformed; /* JWE (5 parts) or junk */

    if (!(obj = load_part(token, h_len, buf, sizeof(buf))))
        goto malformed;
    err = check_header(v, obj, &key);
    json_decref(obj);
    if (err) {
        *why = err;
        return -1;
    }
    want = algs[key->alg].sig_len;
    if (want && s_len != (want * 4 + 2) / 3) {
        *why = why_sig;
        return -1;
    }
    n = auth_b64url_decode(s, s_len, sig, sizeof(sig));
    if (n <= 0 || (want && (size_t)n != want))
        goto malformed;
    /* The signature covers the bytes "h.p" exactly as sent, not a re-encoding of them. */
    if (verify_sig(key, token, (size_t)(dot2 - token), sig, (size_t)n) != 0) {
        *why = why_sig;
        return -1;
    }

    if (!(obj = load_part(p, p_len, buf, sizeof(buf))))
        goto malformed;
    err = check_claims(v, obj, now, id);
    json_decref(obj);
    if (err) {
        auth_identity_release(id);
        *why = err;
        return -1;
    }
    return 0;

malformed:
    *why = why_malformed;
    return -1;
}

int auth_verify_jwt(const char *secret, size_t secret_len, const char *token, size_t len,
                    int64_t now, struct auth_identity *id, const char **why)
{
    struct auth_key k = {.kid = "",
                         .alg = AUTH_HS256,
                         .secret = (unsigned char *)(uintptr_t)secret,
                         .secret_len = secret_len};
    struct auth_verifier v = {.keys = &k, .n_keys = 1};
    int rc = auth_verify(&v, token, len, now, id, why);

    auth_identity_release(id); /* this older entry point reports identity only */
    return rc;
}

int auth_pattern_match(const char *pat, size_t plen, const char *topic, size_t len)
{
    if (plen == 1 && pat[0] == '*')
        return !(len >= 5 && memcmp(topic, "user:", 5) == 0);
    if (plen && pat[plen - 1] == '*')
        return len >= plen - 1 && memcmp(topic, pat, plen - 1) == 0;
    return plen == len && memcmp(pat, topic, len) == 0;
}

int auth_may(const struct auth_identity *id, char kind, const char *topic, size_t len,
             char *const *defaults, size_t n_defaults)
{
    int claimed = kind == 'r' ? id->has_topics : id->has_publish;

    if (kind == 'r' && len == id->sub_len + 5 && memcmp(topic, "user:", 5) == 0 &&
        memcmp(topic + 5, id->sub, id->sub_len) == 0)
        return 1; /* one's own inbox */
    if (claimed) {
        for (const char *g = id->grants; *g; g += strlen(g) + 1)
            if (g[0] == kind && auth_pattern_match(g + 1, strlen(g + 1), topic, len))
                return 1;
        return 0;
    }
    for (size_t i = 0; i < n_defaults; i++)
        if (auth_pattern_match(defaults[i], strlen(defaults[i]), topic, len))
            return 1;
    return 0;
}

int auth_sign_jwt(const char *secret, size_t secret_len, const char *sub, int64_t iat, int64_t exp,
                  char *out, size_t cap)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[AUTH_SUB_MAX + 96]; /* sub plus two int64s and the punctuation */
    unsigned char mac[SHA256_LEN];
    size_t sub_len, o;
    int n;

    if (!sub)
        return -1;
    sub_len = strnlen(sub, AUTH_SUB_MAX + 1);
    /* The sub alphabet needs no JSON escaping, so printing it verbatim is safe. */
    if (!is_valid_sub(sub, sub_len))
        return -1;
    if (exp)
        n = snprintf(payload, sizeof(payload),
                     "{\"sub\":\"%s\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}", sub, iat, exp);
    else
        n = snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"iat\":%" PRId64 "}", sub, iat);
    if (n < 0 || (size_t)n >= sizeof(payload))
        return -1;

    if ((n = auth_b64url_encode((const unsigned char *)header, sizeof(header) - 1, out, cap)) < 0)
        return -1;
    o = (size_t)n;
    if (o + 1 >= cap)
        return -1;
    out[o++] = '.';
    n = auth_b64url_encode((const unsigned char *)payload, strlen(payload), out + o, cap - o);
    if (n < 0)
        return -1;
    o += (size_t)n;
    if (hs256(secret, secret_len, out, o, mac) != 0)
        return -1;
    if (o + 1 >= cap)
        return -1;
    out[o++] = '.';
    if ((n = auth_b64url_encode(mac, sizeof(mac), out + o, cap - o)) < 0)
        return -1;
    return (int)(o + (size_t)n);
}

int auth_api_key_find(char *const *keys, size_t n_keys, const char *key, size_t len)
{
    int found = -1;

    /* as auth_api_key_ok(): every key is compared, whichever matches */
    for (size_t i = 0; i < n_keys; i++) {
        size_t k_len;
        int eq;

        if (!keys[i])
            continue;
        k_len = strlen(keys[i]);
        eq = k_len == len && len > 0 && CRYPTO_memcmp(keys[i], key, len) == 0;
        if (eq && found < 0)
            found = (int)i;
    }
    return found;
}

int auth_api_key_ok(char *const *keys, size_t n_keys, const char *key, size_t len)
{
    int ok = 0;

    /* No early return: the time taken depends on the key list, not on which key matched.
     * Lengths are not secret enough to hide; contents are compared only at equal length. */
    for (size_t i = 0; i < n_keys; i++) {
        size_t k_len;

        if (!keys[i])
            continue;
        k_len = strlen(keys[i]);
        if (k_len == len && len > 0)
            ok |= CRYPTO_memcmp(keys[i], key, len) == 0;
    }
    return ok;
}
