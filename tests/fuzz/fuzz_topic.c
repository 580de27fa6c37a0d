/* fuzz_topic.c: topic names and message ids, the two grammars every request names.
 *
 * Each function is compared with a plain re-statement of the README's grammar (kind
 * [a-z][a-z0-9_-]{0,31}, id [A-Za-z0-9_.@-]{1,128}; ids "<ms>-<seq>" in decimal u64), and the
 * formatters must round-trip through the parsers. Outputs go to buffers of the exact size
 * asked for, so ASan sees any write past the capacity the caller gave. */
#include "fuzz_common.h"

#include "rtgate/msg.h"
#include "rtgate/topic.h"

#include <stdlib.h>
#include <string.h>

static int ref_is_id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_.@-", c) != NULL;
}

static int ref_is_id(const uint8_t *s, size_t len)
{
    if (len < 1 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 0 || !ref_is_id_char(s[i]))
            return 0;
    return 1;
}

static int ref_is_topic(const uint8_t *s, size_t len)
{
    size_t k = 0;

    while (k < len && s[k] != ':')
        k++;
    if (k == len || k < 1 || k > 32 || !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (size_t i = 1; i < k; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return 0;
    return ref_is_id(s + k + 1, len - k - 1);
}

/* <1..20 digits>-<1..20 digits>, each at most UINT64_MAX */
static int ref_parse_u64(const uint8_t *s, size_t len, uint64_t *v)
{
    *v = 0;
    if (len < 1 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (__builtin_mul_overflow(*v, 10, v) || __builtin_add_overflow(*v, s[i] - '0', v))
            return -1;
    }
    return 0;
}

static int ref_parse_id(const uint8_t *s, size_t len, struct msg_id *id)
{
    const uint8_t *dash = memchr(s, '-', len);

    if (!dash)
        return -1;
    if (ref_parse_u64(s, (size_t)(dash - s), &id->ms) != 0)
        return -1;
    return ref_parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &id->seq);
}

static void check_topic(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *id;
    size_t id_len;
    int valid = topic_is_valid(s, size);
    char *buf;
    int n;

    FUZZ_ASSERT(valid == ref_is_topic(data, size));
    FUZZ_ASSERT(topic_is_valid_id(s, size) == ref_is_id(data, size));
    if (valid) {
        int user = topic_is_user(s, size, &id, &id_len);

        FUZZ_ASSERT(user == (size > 5 && memcmp(s, "user:", 5) == 0));
        if (user)
            FUZZ_ASSERT(id == s + 5 && id_len == size - 5 && topic_is_valid_id(id, id_len));
    }

    /* "user:<input>": needs id_len + 6 bytes, never more */
    buf = malloc(size + 6);
    n = topic_format_user(buf, size + 6, s, size);
    FUZZ_ASSERT((n >= 0) == ref_is_id(data, size));
    if (n >= 0) {
        FUZZ_ASSERT((size_t)n == size + 5 && buf[n] == '\0');
        FUZZ_ASSERT(topic_is_valid(buf, (size_t)n) && topic_is_user(buf, (size_t)n, &id, &id_len));
        FUZZ_ASSERT(id_len == size && memcmp(id, s, size) == 0);
    }
    FUZZ_ASSERT(topic_format_user(buf, size + 5, s, size) == -1);
    free(buf);

    /* "topic:<input>": len + 7 bytes */
    buf = malloc(size + 7);
    n = topic_format_channel(buf, size + 7, s, size);
    FUZZ_ASSERT((n >= 0) == valid);
    if (n >= 0)
        FUZZ_ASSERT((size_t)n == size + 6 && memcmp(buf, "topic:", 6) == 0 &&
                    memcmp(buf + 6, s, size) == 0 && buf[n] == '\0');
    FUZZ_ASSERT(topic_format_channel(buf, size + 6, s, size) == -1);
    free(buf);
}

static void check_msg_id(const uint8_t *data, size_t size)
{
    struct msg_id id = {1, 1}, ref, again, prev;
    char text[MSG_ID_STR_MAX];
    int r = msg_id_parse((const char *)data, size, &id), n;

    FUZZ_ASSERT((r == 0) == (ref_parse_id(data, size, &ref) == 0));
    if (r != 0)
        return;
    FUZZ_ASSERT(id.ms == ref.ms && id.seq == ref.seq);
    n = msg_id_format(id, text);
    FUZZ_ASSERT(n > 0 && n < MSG_ID_STR_MAX && text[n] == '\0');
    FUZZ_ASSERT(msg_id_parse(text, (size_t)n, &again) == 0 && msg_id_cmp(again, id) == 0);
    /* the formatted form is canonical: no leading zeros, so it is the shortest spelling */
    FUZZ_ASSERT((size_t)n <= size);
    prev = msg_id_prev(id);
    if (msg_id_is_zero(id))
        FUZZ_ASSERT(msg_id_is_zero(prev));
    else
        FUZZ_ASSERT(msg_id_cmp(prev, id) < 0 && msg_id_cmp(msg_id_next(prev, 0), id) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_topic(data, size);
    check_msg_id(data, size);
    return 0;
}
