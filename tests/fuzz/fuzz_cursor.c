/* fuzz_cursor.c: the resume cursor, which every transport accepts from clients (Last-Event-ID,
 * ?cursor=, a WebSocket subscribe).
 *
 * The input is tried twice: as cursor text, and base64url-encoded, so the fuzzer also mutates
 * the decoded "r1|<topic>|<epoch>|<ms>-<seq>..." form directly. A cursor that parses must
 * re-format and re-parse to the same positions (abort if not). */
#include "fuzz_common.h"

#include "rtgate/auth.h"
#include "rtgate/cursor.h"
#include "rtgate/topic.h"

#include <stdlib.h>
#include <string.h>

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void check_cursor(const char *s, size_t len)
{
    struct cursor c, again;
    char *text;
    int n;

    if (cursor_parse(&c, s, len) != 0) {
        cursor_release(&c);
        return;
    }
    FUZZ_ASSERT(c.n >= 1 && c.n <= CURSOR_MAX_TOPICS);
    for (size_t i = 0; i < c.n; i++) {
        const struct cursor_pos *p = &c.pos[i];

        FUZZ_ASSERT(topic_is_valid(p->topic, p->topic_len));
        FUZZ_ASSERT(strlen(p->epoch) == MSG_EPOCH_LEN && is_lower_hex(p->epoch, MSG_EPOCH_LEN));
        FUZZ_ASSERT(cursor_find(&c, p->topic, p->topic_len) == p); /* and so no topic twice */
    }

    text = malloc(CURSOR_TEXT_MAX);
    n = cursor_format(c.pos, c.n, text, CURSOR_TEXT_MAX);
    FUZZ_ASSERT(n > 0 && (size_t)n < CURSOR_TEXT_MAX && text[n] == '\0');
    FUZZ_ASSERT((size_t)n <= len); /* ids lose their leading zeros, nothing grows */
    FUZZ_ASSERT(cursor_parse(&again, text, (size_t)n) == 0);
    FUZZ_ASSERT(again.n == c.n);
    for (size_t i = 0; i < c.n; i++) {
        const struct cursor_pos *a = &c.pos[i], *b = &again.pos[i];

        FUZZ_ASSERT(a->topic_len == b->topic_len && memcmp(a->topic, b->topic, a->topic_len) == 0);
        FUZZ_ASSERT(memcmp(a->epoch, b->epoch, sizeof(a->epoch)) == 0);
        FUZZ_ASSERT(msg_id_cmp(a->id, b->id) == 0);
    }
    cursor_release(&again);
    free(text);

    /* exactly n + 1 bytes is enough; n is not */
    text = malloc((size_t)n + 1);
    FUZZ_ASSERT(cursor_format(c.pos, c.n, text, (size_t)n + 1) == n);
    FUZZ_ASSERT(cursor_format(c.pos, c.n, text, (size_t)n) == -1);
    free(text);
    cursor_release(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *b64;
    int n;

    check_cursor((const char *)data, size);
    if (size > CURSOR_TEXT_MAX)
        return 0;
    b64 = malloc(size / 3 * 4 + 5);
    n = auth_b64url_encode(data, size, b64, size / 3 * 4 + 5);
    FUZZ_ASSERT(n >= 0);
    check_cursor(b64, (size_t)n);
    free(b64);
    return 0;
}
