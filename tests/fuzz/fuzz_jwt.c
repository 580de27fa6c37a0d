/* fuzz_jwt.c: JSON Web Token verification, base64url, the sub of a minted token and topic
 * grant patterns: everything auth.c does with bytes a client sent.
 *
 * A random input almost never carries a valid signature, so the claims would stay out of
 * reach. The input is therefore also used as "<header JSON>\n<payload JSON>" (no newline:
 * the payload under {"alg":"HS256"}) and signed here with the key its "kid" selects, so the
 * fuzzer explores the claim checks as an issuer's signed token would reach them. */
#include "fuzz_common.h"

#include "rtgate/auth.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdlib.h>
#include <string.h>

#define NOW_S ((int64_t)(FUZZ_NOW_MS / 1000))

static const char ec_pem[] = FUZZ_EC_PEM;
static const char rsa_pem[] = FUZZ_RSA_PEM;

/* kid "" is the plain jwt_secret of a config; the others as auth.keys would give them */
static struct auth_key keys[5];
static struct auth_verifier plain, strict;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[200];

    if (auth_key_init_secret(&keys[0], "", AUTH_HS256, FUZZ_SECRET, FUZZ_SECRET_LEN, err,
                             sizeof(err)) != 0 ||
        auth_key_init_secret(&keys[1], "k384", AUTH_HS384, "fuzz-hs384-secret-0123456789", 28, err,
                             sizeof(err)) != 0 ||
        auth_key_init_secret(&keys[2], "k512", AUTH_HS512, "fuzz-hs512-secret-0123456789", 28, err,
                             sizeof(err)) != 0 ||
        auth_key_init_pem(&keys[3], "ec", AUTH_ES256, ec_pem, sizeof(ec_pem) - 1, err,
                          sizeof(err)) != 0 ||
        auth_key_init_pem(&keys[4], "rsa", AUTH_RS256, rsa_pem, sizeof(rsa_pem) - 1, err,
                          sizeof(err)) != 0)
        fuzz_fail(__FILE__, __LINE__, err);
    plain = (struct auth_verifier){.keys = keys, .n_keys = 5};
    strict = (struct auth_verifier){.keys = keys,
                                    .n_keys = 5,
                                    .leeway_s = 3600,
                                    .iss = "https://issuer.example",
                                    .aud = "rtgate"};
    return 0;
}

static int ref_is_sub(const char *s, size_t len)
{
    if (len < 1 || len > AUTH_SUB_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || (s[i] && strchr("_.@-", s[i]))))
            return 0;
    return 1;
}

/* A refusal reason goes to the client in a 401 body: a short printable static string. */
static void check_why(const char *why)
{
    size_t n;

    FUZZ_ASSERT(why != NULL);
    n = strlen(why);
    FUZZ_ASSERT(n > 0 && n < 64);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(why[i] >= ' ' && why[i] <= '~' && why[i] != '"' && why[i] != '\\');
}

static void check_identity(struct auth_identity *id)
{
    char inbox[AUTH_SUB_MAX + 6];

    FUZZ_ASSERT(ref_is_sub(id->sub, id->sub_len) && id->sub[id->sub_len] == '\0');
    FUZZ_ASSERT((id->has_topics || id->has_publish) == (id->grants != NULL));
    memcpy(inbox, "user:", 5);
    memcpy(inbox + 5, id->sub, id->sub_len);
    FUZZ_ASSERT(auth_may(id, 'r', inbox, id->sub_len + 5, NULL, 0) == 1);
    (void)auth_may(id, 'p', inbox, id->sub_len + 5, NULL, 0);
    (void)auth_may(id, 'r', "room:1", 6, NULL, 0);
    (void)auth_may(id, 'p', "user:other", 10, NULL, 0);
}

static void verify(const struct auth_verifier *v, const char *tok, size_t len)
{
    struct auth_identity id;
    const char *why = NULL;

    memset(&id, 0xa5, sizeof(id)); /* auth_verify must not read what it did not write */
    if (auth_verify(v, tok, len, NOW_S, &id, &why) == 0) {
        check_identity(&id);
        auth_identity_release(&id);
    } else {
        check_why(why);
        FUZZ_ASSERT(id.grants == NULL);
    }
}

static char *b64(const void *in, size_t len, char *out)
{
    int n = auth_b64url_encode(in, len, out, len / 3 * 4 + 5);

    FUZZ_ASSERT(n >= 0);
    return out + n;
}

/* header "\n" payload, signed with the key the header's kid selects (as check_header does) */
static void check_signed(const uint8_t *data, size_t size)
{
    static const char def_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const uint8_t *nl = memchr(data, '\n', size);
    const char *hdr = nl ? (const char *)data : def_hdr;
    size_t hlen = nl ? (size_t)(nl - data) : sizeof(def_hdr) - 1;
    const uint8_t *pl = nl ? nl + 1 : data;
    size_t plen = nl ? size - hlen - 1 : size;
    char *tok = malloc(hlen / 3 * 4 + plen / 3 * 4 + 1024), *p;
    unsigned char sig[512];
    unsigned int sig_len = 0;
    const struct auth_key *k = NULL;
    json_t *h = json_loadb(hdr, hlen, 0, NULL);
    const char *kid = json_string_value(json_object_get(h, "kid"));
    struct auth_identity id;
    const char *why;

    for (size_t i = 0; kid && !k && i < 5; i++)
        if (strcmp(keys[i].kid, kid) == 0)
            k = &keys[i];
    if (!k)
        k = &keys[0];
    json_decref(h);

    p = b64(hdr, hlen, tok);
    *p++ = '.';
    p = b64(pl, plen, p);
    if (k->secret) {
        const EVP_MD *md = k->alg == AUTH_HS384   ? EVP_sha384()
                           : k->alg == AUTH_HS512 ? EVP_sha512()
                                                  : EVP_sha256();

        FUZZ_ASSERT(HMAC(md, k->secret, (int)k->secret_len, (unsigned char *)tok, (size_t)(p - tok),
                         sig, &sig_len) != NULL);
    } else {
        sig_len = k->alg == AUTH_ES256 ? 64 : 256; /* well-formed, but not a valid signature */
        memset(sig, 0x11, sig_len);
    }
    *p++ = '.';
    p = b64(sig, sig_len, p);

    verify(&plain, tok, (size_t)(p - tok));
    verify(&strict, tok, (size_t)(p - tok));
    why = NULL;
    if (auth_verify_jwt(FUZZ_SECRET, FUZZ_SECRET_LEN, tok, (size_t)(p - tok), NOW_S, &id, &why) ==
        0)
        FUZZ_ASSERT(ref_is_sub(id.sub, id.sub_len));
    else
        check_why(why);
    free(tok);
}

static void check_b64(const uint8_t *data, size_t size)
{
    unsigned char *dec = malloc(size + 1);
    char *enc = malloc(size / 3 * 4 + 5);
    int n = auth_b64url_decode((const char *)data, size, dec, size), m;

    if (n >= 0) {
        /* decoding is strict (no padding, zero spare bits), so it is one-to-one */
        m = auth_b64url_encode(dec, (size_t)n, enc, size + 1);
        FUZZ_ASSERT(m >= 0 && (size_t)m == size && memcmp(enc, data, size) == 0);
        FUZZ_ASSERT(auth_b64url_decode((const char *)data, size, dec, (size_t)n) == n);
        if (n > 0)
            FUZZ_ASSERT(auth_b64url_decode((const char *)data, size, dec, (size_t)n - 1) == -1);
    }
    m = auth_b64url_encode(data, size, enc, size / 3 * 4 + 5);
    FUZZ_ASSERT(m >= 0);
    FUZZ_ASSERT(auth_b64url_decode(enc, (size_t)m, dec, size) == (int)size);
    FUZZ_ASSERT(memcmp(dec, data, size) == 0);
    free(enc);
    free(dec);
}

/* The input as the sub of a minted token: refused unless it is a valid sub, and a minted
 * token verifies to that same sub. */
static void check_sign(const uint8_t *data, size_t size)
{
    char sub[AUTH_SUB_MAX + 8], tok[AUTH_TOKEN_MAX];
    size_t len = size < sizeof(sub) - 1 ? size : sizeof(sub) - 1;
    struct auth_identity id;
    const char *why = NULL;
    int n;

    memcpy(sub, data, len);
    sub[len] = '\0';
    n = auth_sign_jwt(FUZZ_SECRET, FUZZ_SECRET_LEN, sub, NOW_S - 10, NOW_S + 3600, tok,
                      sizeof(tok));
    FUZZ_ASSERT((n > 0) == ref_is_sub(sub, strnlen(sub, AUTH_SUB_MAX + 1)));
    if (n <= 0)
        return;
    FUZZ_ASSERT((size_t)n == strlen(tok));
    FUZZ_ASSERT(auth_verify_jwt(FUZZ_SECRET, FUZZ_SECRET_LEN, tok, (size_t)n, NOW_S, &id, &why) ==
                0);
    FUZZ_ASSERT(id.sub_len == strlen(sub) && strcmp(id.sub, sub) == 0);
    FUZZ_ASSERT(auth_sign_jwt(FUZZ_SECRET, FUZZ_SECRET_LEN, sub, NOW_S - 10, NOW_S + 3600, tok,
                              (size_t)n) == -1);
}

/* "<pattern>\n<topic>" against the rule in auth.h */
static void check_pattern(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    const char *pat = (const char *)data, *topic;
    size_t plen, tlen;
    int want;

    if (!nl)
        return;
    plen = (size_t)(nl - data);
    topic = (const char *)nl + 1;
    tlen = size - plen - 1;
    if (plen == 1 && pat[0] == '*')
        want = !(tlen >= 5 && memcmp(topic, "user:", 5) == 0);
    else if (plen && pat[plen - 1] == '*')
        want = tlen >= plen - 1 && memcmp(topic, pat, plen - 1) == 0;
    else
        want = plen == tlen && memcmp(pat, topic, tlen) == 0;
    FUZZ_ASSERT(auth_pattern_match(pat, plen, topic, tlen) == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct auth_identity id;
    const char *why = NULL;
    char *const api_keys[] = {FUZZ_API_KEY, "second-api-key-0123456789", NULL};

    /* the input as a token, as it arrives in Authorization: Bearer or ?token= */
    if (auth_verify_jwt(FUZZ_SECRET, FUZZ_SECRET_LEN, (const char *)data, size, NOW_S, &id, &why) ==
        0)
        FUZZ_ASSERT(ref_is_sub(id.sub, id.sub_len));
    else
        check_why(why);
    verify(&plain, (const char *)data, size);
    verify(&strict, (const char *)data, size);

    check_signed(data, size);
    check_b64(data, size);
    check_sign(data, size);
    check_pattern(data, size);
    FUZZ_ASSERT(auth_api_key_ok(api_keys, 2, (const char *)data, size) ==
                (size == strlen(FUZZ_API_KEY) && memcmp(data, FUZZ_API_KEY, size) == 0));
    return 0;
}
