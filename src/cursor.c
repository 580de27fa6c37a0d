/* cursor.c: encode and decode the opaque resume cursor (format in cursor.h). Strict parsing:
 * a cursor is untrusted client input and anything unexpected is a malformed cursor. */
#include "rtgate/cursor.h"

#include "rtgate/auth.h"
#include "rtgate/util.h"

#include <string.h>

static int is_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Cuts the next '|'-separated field off [*p, end). */
static int next_field(const char **p, const char *end, const char **f, size_t *flen)
{
    const char *bar;

    if (*p > end)
        return -1;
    bar = memchr(*p, '|', (size_t)(end - *p));
    *f = *p;
    *flen = (size_t)((bar ? bar : end) - *p);
    *p = (bar ? bar : end) + 1;
    return 0;
}

int cursor_parse(struct cursor *c, const char *s, size_t len)
{
    const char *p, *end, *f;
    size_t flen;
    int n;

    c->raw = NULL;
    c->n = 0;
    if (len == 0 || len > CURSOR_TEXT_MAX)
        return -1;
    c->raw = xmalloc(len);
    n = auth_b64url_decode(s, len, (unsigned char *)c->raw, len);
    if (n < 3 || memcmp(c->raw, "r1|", 3) != 0)
        return -1;
    p = c->raw + 3;
    end = c->raw + n;
    while (p <= end) {
        struct cursor_pos *pos;

        if (c->n == CURSOR_MAX_TOPICS)
            return -1;
        pos = &c->pos[c->n];
        if (next_field(&p, end, &f, &flen) != 0 || !topic_is_valid(f, flen))
            return -1;
        if (cursor_find(c, f, flen))
            return -1;
        pos->topic = f;
        pos->topic_len = flen;
        if (next_field(&p, end, &f, &flen) != 0 || flen != MSG_EPOCH_LEN || !is_hex(f, flen))
            return -1;
        memcpy(pos->epoch, f, MSG_EPOCH_LEN);
        pos->epoch[MSG_EPOCH_LEN] = '\0';
        if (next_field(&p, end, &f, &flen) != 0 || msg_id_parse(f, flen, &pos->id) != 0)
            return -1;
        c->n++;
        if (p == end + 1)
            break;
    }
    return c->n ? 0 : -1;
}

void cursor_release(struct cursor *c)
{
    xfree(c->raw);
    c->raw = NULL;
    c->n = 0;
}

const struct cursor_pos *cursor_find(const struct cursor *c, const char *topic, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->pos[i].topic_len == len && memcmp(c->pos[i].topic, topic, len) == 0)
            return &c->pos[i];
    return NULL;
}

int cursor_format(const struct cursor_pos *pos, size_t n, char *out, size_t cap)
{
    char stackbuf[4 * CURSOR_POS_RAW_MAX], *raw = stackbuf;
    size_t need = 3 + n * (CURSOR_POS_RAW_MAX + 1), len;
    int r;

    if (need > sizeof(stackbuf))
        raw = xmalloc(need);
    memcpy(raw, "r1", 2);
    len = 2;
    for (size_t i = 0; i < n; i++) {
        raw[len++] = '|';
        memcpy(raw + len, pos[i].topic, pos[i].topic_len);
        len += pos[i].topic_len;
        raw[len++] = '|';
        memcpy(raw + len, pos[i].epoch, MSG_EPOCH_LEN);
        len += MSG_EPOCH_LEN;
        raw[len++] = '|';
        len += (size_t)msg_id_format(pos[i].id, raw + len);
    }
    r = auth_b64url_encode((const unsigned char *)raw, len, out, cap);
    if (raw != stackbuf)
        xfree(raw);
    return r;
}
