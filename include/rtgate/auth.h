/* auth.h: identity from JSON Web Tokens (HS256 through OpenSSL's HMAC) and API-key checks.
 * No sockets, no lws: safe to unit-test. Nothing here logs a token or key. */
#ifndef RTGATE_AUTH_H
#define RTGATE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_SUB_MAX   128 /* longest user id (a topic id: [A-Za-z0-9_.@-]) */
#define AUTH_TOKEN_MAX 4096

struct auth_identity {
    char sub[AUTH_SUB_MAX + 1]; /* NUL-terminated user id */
    size_t sub_len;
    int64_t exp; /* seconds since the epoch; 0 if the token has none */
    /* The token's "topics" and "publish" claims (patterns), or NULL when it had none: new
     * memory, "r<pattern>\0...p<pattern>\0...\0". auth_identity_release() frees it. */
    char *grants;
    unsigned has_topics : 1, has_publish : 1;
    unsigned may_presence : 1; /* the "presence": true claim: GET /v1/presence allowed */
};

enum auth_alg { AUTH_HS256, AUTH_HS384, AUTH_HS512, AUTH_RS256, AUTH_ES256 };

/* One verification key. Its algorithm is fixed here, never taken from a token: a token whose
 * header names another algorithm is refused ("unsupported algorithm"), which is what stops
 * "alg":"none" and HS256-signed-with-the-RSA-public-key confusion. */
struct auth_key {
    char kid[64]; /* "" matches tokens without a "kid" header */
    enum auth_alg alg;
    unsigned char *secret; /* HS*: new memory */
    size_t secret_len;
    void *pkey; /* RS256/ES256: an EVP_PKEY (public key) */
};

struct auth_verifier {
    const struct auth_key *keys;
    size_t n_keys;
    int64_t leeway_s; /* allowed clock skew for exp, nbf and iat */
    const char *iss;  /* required "iss", or NULL */
    const char *aud;  /* required in "aud" (a string or an array), or NULL */
};

/* Parses "HS256".."ES256". Returns 0 and sets *@alg, or -1. */
int auth_alg_parse(const char *name, enum auth_alg *alg);
const char *auth_alg_name(enum auth_alg alg);

/* An HMAC key (@len >= 16). Returns 0, or -1 with @err set. */
int auth_key_init_secret(struct auth_key *k, const char *kid, enum auth_alg alg, const void *secret,
                         size_t len, char *err, size_t errlen);
/* A public key in PEM (SubjectPublicKeyInfo); RS256 needs RSA (>= 2048 bits), ES256 EC P-256.
 * Returns 0, or -1 with @err set. */
int auth_key_init_pem(struct auth_key *k, const char *kid, enum auth_alg alg, const char *pem,
                      size_t len, char *err, size_t errlen);
void auth_key_release(struct auth_key *k);

/* Verifies @token with the key its "kid" selects (or the key without a kid). Claims: "sub"
 * (required, a topic id), "exp"/"nbf"/"iat" with @v->leeway_s, "iss"/"aud" when configured,
 * "topics"/"publish" (arrays of topic patterns, optional), "presence" (a boolean, optional). On
 * success fills @id (release it); on failure returns -1 and sets @why to a static client-safe
 * reason (those of auth_verify_jwt, plus "unknown key", "wrong issuer", "wrong audience", "bad
 * grants"). */
int auth_verify(const struct auth_verifier *v, const char *token, size_t len, int64_t now,
                struct auth_identity *id, const char **why);

void auth_identity_release(struct auth_identity *id);

/* Does @pattern match @topic? A pattern is a topic name, or a prefix ending in '*'
 * ("room:*", "room:team-*"), or "*" for every topic that is not a user's inbox. */
int auth_pattern_match(const char *pattern, size_t plen, const char *topic, size_t len);

/* May @id read (kind 'r') or publish to (kind 'p') @topic? Its own inbox can always be read.
 * Without the claim, @defaults (NULL-terminated patterns, from the config) apply. */
int auth_may(const struct auth_identity *id, char kind, const char *topic, size_t len,
             char *const *defaults, size_t n_defaults);

/* Verifies @token (@len bytes, compact JWS "h.p.s") signed with HS256 and @secret. @now is seconds
 * since the epoch. On success fills @id and returns 0. On failure returns -1 and sets @why to a
 * static, client-safe reason: "malformed token", "unsupported algorithm", "bad signature",
 * "token expired", "token not yet valid", "missing sub", "invalid sub". The header's "alg" must be
 * "HS256" (never "none"). "sub" must be a string of 1..AUTH_SUB_MAX characters from
 * [A-Za-z0-9_.@-] (so it is a valid topic id). "exp"/"nbf" are enforced when present. */
int auth_verify_jwt(const char *secret, size_t secret_len, const char *token, size_t len,
                    int64_t now, struct auth_identity *id, const char **why);

/* Writes an HS256 JWT with {"sub":@sub,"iat":@iat,"exp":@exp} into @out (NUL-terminated).
 * Returns its length, or -1 if @cap is too small or @sub is invalid. */
int auth_sign_jwt(const char *secret, size_t secret_len, const char *sub, int64_t iat, int64_t exp,
                  char *out, size_t cap);

/* Returns 1 if @key (@len bytes) equals one of @keys (NUL-terminated), comparing in constant
 * time per key; 0 otherwise. */
int auth_api_key_ok(char *const *keys, size_t n_keys, const char *key, size_t len);
/* The index of the key @key equals (compared as auth_api_key_ok() does), or -1. */
int auth_api_key_find(char *const *keys, size_t n_keys, const char *key, size_t len);

/* base64url without padding (RFC 4648 §5). encode returns the length written (NUL-terminated),
 * or -1 if @cap is too small; decode returns the decoded length or -1 on bad input/space. */
int auth_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);

#define AUTH_TURN_CRED_MAX 29 /* base64 (padded) of a 20-byte HMAC-SHA1, + NUL */

/* TURN REST API credentials (what coturn's use-auth-secret checks) for @user until @expiry
 * (unix seconds): writes the username "<expiry>:<user>" into @username (@cap bytes) and the
 * password base64(HMAC-SHA1(@secret, username)) into @cred. Returns 0, or -1 if @username is
 * too small or the HMAC failed. */
int auth_turn_credentials(const char *secret, size_t secret_len, int64_t expiry, const char *user,
                          size_t user_len, char *username, size_t cap,
                          char cred[AUTH_TURN_CRED_MAX]);
int auth_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
