/* cursor.h: the opaque resume cursor shared by every transport.
 *
 * A cursor lists, per topic, the history epoch and the last id the client has seen. Its text is
 * base64url (no padding) of "r1|<topic>|<epoch>|<ms>-<seq>[|<topic>|<epoch>|<ms>-<seq>]...",
 * so it is safe in a URL, a header (Last-Event-ID) and JSON without escaping. Clients must treat
 * it as opaque. */
#ifndef RTGATE_CURSOR_H
#define RTGATE_CURSOR_H

#include "rtgate/msg.h"
#include "rtgate/topic.h"

#include <stddef.h>

#define CURSOR_MAX_TOPICS 64
/* Longest text cursor_format() may write for CURSOR_MAX_TOPICS topics, plus NUL. */
#define CURSOR_POS_RAW_MAX (TOPIC_MAX_LEN + 1 + MSG_EPOCH_LEN + 1 + MSG_ID_STR_MAX)
#define CURSOR_TEXT_MAX    (((3 + CURSOR_MAX_TOPICS * (CURSOR_POS_RAW_MAX + 1)) * 4) / 3 + 4)

struct cursor_pos {
    const char *topic; /* not NUL-terminated */
    size_t topic_len;
    char epoch[MSG_EPOCH_LEN + 1];
    struct msg_id id;
};

struct cursor {
    char *raw; /* decoded text; the topics point into it */
    size_t n;
    struct cursor_pos pos[CURSOR_MAX_TOPICS];
};

/* Parses cursor text @s. Returns 0, or -1 if it is malformed (bad base64, bad version, bad
 * topic, epoch or id, a topic twice, too many topics). cursor_release() it after either. */
int cursor_parse(struct cursor *c, const char *s, size_t len);
void cursor_release(struct cursor *c);

/* Returns the position of @topic in @c, or NULL. */
const struct cursor_pos *cursor_find(const struct cursor *c, const char *topic, size_t len);

/* Writes the cursor text for @n positions into @out (NUL-terminated). Returns its length or -1
 * if @cap is too small. */
int cursor_format(const struct cursor_pos *pos, size_t n, char *out, size_t cap);

#endif
