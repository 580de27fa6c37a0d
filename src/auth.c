/* auth.c: HS256 JWTs and API keys. Owns the JWS parsing rules and base64url; knows nothing of
 * sockets, requests or where the secret came from. Never logs a token, key or secret: the only
 * thing that leaves on failure is one of the static reasons in auth.h. */
#include "rtgate/auth.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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

static int hs256(const char *secret, size_t secret_len, const char *data, size_t len,
                 unsigned char mac[SHA256_LEN])
{
    unsigned int mac_len = 0;

    /* An empty key is legal HMAC but means an unconfigured gateway: anyone could mint tokens. */
    if (!secret || secret_len == 0 || secret_len > INT_MAX)
        return -1;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)data, len, mac,
              &mac_len) ||
        mac_len != SHA256_LEN)
        return -1;
    return 0;
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

/* Only "alg":"HS256". Pinning the algorithm here, not trusting the header, is what stops "none"
 * and the RS256-public-key-as-HMAC-secret confusion. */
static const char *check_header(json_t *hdr)
{
    const char *alg = json_string_value(json_object_get(hdr, "alg"));

    if (!alg || strcmp(alg, "HS256") != 0)
        return why_alg;
    /* RFC 7515 §4.1.11: extensions listed in "crit" must be understood; we understand none. */
    if (json_object_get(hdr, "crit"))
        return why_malformed;
    return NULL;
}

/* exp/nbf are checked only after the signature: before it, the claims are the attacker's. Only
 * JSON integers count; a fractional NumericDate is refused rather than rounded. */
static const char *check_claims(json_t *claims, int64_t now, struct auth_identity *id)
{
    json_t *sub = json_object_get(claims, "sub");
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    int64_t exp_v = 0;
    size_t sub_len;

    if ((exp && !json_is_integer(exp)) || (nbf && !json_is_integer(nbf)))
        return why_malformed;
    if (exp) {
        exp_v = json_integer_value(exp);
        if (now >= exp_v)
            return why_expired;
    }
    if (nbf && now < json_integer_value(nbf))
        return why_nbf;
    if (!json_is_string(sub))
        return why_no_sub;
    sub_len = json_string_length(sub);
    if (!is_valid_sub(json_string_value(sub), sub_len))
        return why_bad_sub;
    memcpy(id->sub, json_string_value(sub), sub_len);
    id->sub[sub_len] = '\0';
    id->sub_len = sub_len;
    id->exp = exp_v;
    return NULL;
}

int auth_verify_jwt(const char *secret, size_t secret_len, const char *token, size_t len,
                    int64_t now, struct auth_identity *id, const char **why)
{
    unsigned char buf[AUTH_TOKEN_MAX]; /* one decoded part at a time */
    unsigned char sig[SHA256_LEN], mac[SHA256_LEN];
    const char *dot1, *dot2, *p, *s, *err;
    size_t h_len, p_len, s_len;
    json_t *obj;

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
    err = check_header(obj);
    json_decref(obj);
    if (err) {
        *why = err;
        return -1;
    }

    if (s_len != SIG_B64_LEN) {
        *why = why_sig;
        return -1;
    }
    if (auth_b64url_decode(s, s_len, sig, sizeof(sig)) != SHA256_LEN)
        goto malformed;
    /* The MAC covers the bytes "h.p" exactly as sent, not a re-encoding of what we parsed. */
    if (hs256(secret, secret_len, token, (size_t)(dot2 - token), mac) != 0 ||
        CRYPTO_memcmp(mac, sig, SHA256_LEN) != 0) {
        *why = why_sig;
        return -1;
    }

    if (!(obj = load_part(p, p_len, buf, sizeof(buf))))
        goto malformed;
    err = check_claims(obj, now, id);
    json_decref(obj);
    if (err) {
        *why = err;
        return -1;
    }
    return 0;

malformed:
    *why = why_malformed;
    return -1;
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
