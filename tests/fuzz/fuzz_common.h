/* fuzz_common.h: what every libFuzzer harness in tests/fuzz/ shares. A failed property is a
 * crash: FUZZ_ASSERT prints what broke and aborts, so libFuzzer saves the input. */
#ifndef RTGATE_FUZZ_COMMON_H
#define RTGATE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* The secret every harness signs and verifies tokens with (the one in the seed corpora). */
#define FUZZ_SECRET     "fuzz-secret-0123456789abcdef"
#define FUZZ_SECRET_LEN (sizeof(FUZZ_SECRET) - 1)
#define FUZZ_API_KEY    "fuzz-api-key-0123456789abcdef"
/* The frozen clock of the harnesses that run the gateway (util_now_ms is wrapped), and the
 * epoch util_random gives every hub ("0123456789abcdef"), so seeds can carry live cursors. */
#define FUZZ_NOW_MS 1796121017808ULL
#define FUZZ_EPOCH  "0123456789abcdef"

/* The public keys of the seeds' RS256 and ES256 tokens (fuzz_jwt verifies with them, fuzz_conf
 * reads them as auth.keys files). */
#define FUZZ_EC_PEM                                                                                \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcJiEqAnji6Ivk731zhQWge3xIOnO\n"                           \
    "cXA2mMsKxjrse5PmVph6oAeeanYNpOXqq7oQ2FMoQzbDhwNhR0F4F55VuA==\n"                               \
    "-----END PUBLIC KEY-----\n"
#define FUZZ_RSA_PEM                                                                               \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8pB3VRjoy+DsCIU54UXV\n"                           \
    "G0glx133hBe/C0Y4L0aL7mtGwYP2A4VftpRMDAxzpBAmV6eHeYT/ZpcIHnt1gx8U\n"                           \
    "tSGraA9CkbhelsXe+7R76+JucVDUnsSXYD4qcf3LbPeWE6V6ckQHJDNKUONzMQft\n"                           \
    "SBdXSNhYsMPHK/pcPSRHT0X9sg0GHEURbjebh0qORT1wNvV1GX5rBeLjGswMoK2z\n"                           \
    "7IsNJY0icZSi//km1ofm89PVXEMU2EMunmqMVF/4J7haP9+Tm5HPtpbgoC+pJ037\n"                           \
    "jj9kPzd4+XkdYTwZTT8yO9axZlyF/o02moi1HgH6kDpCE6jNVOWE61sFTgMtrkUX\n"                           \
    "HQIDAQAB\n"                                                                                   \
    "-----END PUBLIC KEY-----\n"

#endif
