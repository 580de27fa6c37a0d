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
};

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

/* base64url without padding (RFC 4648 §5). encode returns the length written (NUL-terminated),
 * or -1 if @cap is too small; decode returns the decoded length or -1 on bad input/space. */
int auth_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);
int auth_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
