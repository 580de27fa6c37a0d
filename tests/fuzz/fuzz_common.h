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

#endif
