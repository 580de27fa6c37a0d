/* topic.c: parsing and formatting of topic names; pure string code, no state. */
#include "rtgate/topic.h"

#include <stdio.h>
#include <string.h>

static int is_kind_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int is_id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == '@';
}

int topic_is_valid_id(const char *s, size_t len)
{
    if (len == 0 || len > TOPIC_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_id_char((unsigned char)s[i]))
            return 0;
    return 1;
}

int topic_is_valid(const char *s, size_t len)
{
    const char *colon;
    size_t kind_len;

    if (len < 3 || len > TOPIC_MAX_LEN)
        return 0;
    colon = memchr(s, ':', len);
    if (!colon)
        return 0;
    kind_len = (size_t)(colon - s);
    if (kind_len == 0 || kind_len > TOPIC_KIND_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (size_t i = 0; i < kind_len; i++)
        if (!is_kind_char((unsigned char)s[i]))
            return 0;
    return topic_is_valid_id(colon + 1, len - kind_len - 1);
}

int topic_is_user(const char *s, size_t len, const char **id, size_t *id_len)
{
    if (len < 6 || memcmp(s, "user:", 5) != 0)
        return 0;
    if (id) {
        *id = s + 5;
        *id_len = len - 5;
    }
    return 1;
}

int topic_format_user(char *buf, size_t cap, const char *id, size_t id_len)
{
    if (!topic_is_valid_id(id, id_len) || cap < id_len + 6)
        return -1;
    memcpy(buf, "user:", 5);
    memcpy(buf + 5, id, id_len);
    buf[5 + id_len] = '\0';
    return (int)(5 + id_len);
}

int topic_format_channel(char *buf, size_t cap, const char *topic, size_t len)
{
    if (!topic_is_valid(topic, len) || cap < len + 7)
        return -1;
    memcpy(buf, "topic:", 6);
    memcpy(buf + 6, topic, len);
    buf[6 + len] = '\0';
    return (int)(6 + len);
}
