/* topic.h: topic names "<kind>:<id>" and their Redis channel names "topic:<kind>:<id>".
 * kind is [a-z][a-z0-9_-]{0,31}; id is [A-Za-z0-9_.@-]{1,128}. "user" kind is a user's inbox. */
#ifndef RTGATE_TOPIC_H
#define RTGATE_TOPIC_H

#include <stddef.h>

#define TOPIC_KIND_MAX 32
#define TOPIC_ID_MAX   128
#define TOPIC_MAX_LEN  (TOPIC_KIND_MAX + 1 + TOPIC_ID_MAX)

/* Returns 1 if @s (@len bytes) is a valid topic name, 0 otherwise. */
int topic_is_valid(const char *s, size_t len);

/* Returns 1 if @s is a valid id (the part after "kind:"; also what a user id must look like). */
int topic_is_valid_id(const char *s, size_t len);

/* Returns 1 if valid topic @s is an inbox "user:<id>"; then @id and @id_len point into @s. */
int topic_is_user(const char *s, size_t len, const char **id, size_t *id_len);

/* Writes "user:<id>" into @buf (NUL-terminated). Returns its length, or -1 if invalid/too long. */
int topic_format_user(char *buf, size_t cap, const char *id, size_t id_len);

/* Writes the backplane channel "topic:<name>" into @buf. Returns its length, or -1. */
int topic_format_channel(char *buf, size_t cap, const char *topic, size_t len);

#endif
