/* cluster_slot.h: Redis Cluster key placement and redirections, as the cluster specification
 * defines them (hiredis 0.14 has no cluster support). Pure code, no sockets.
 *
 * A key's slot is CRC16(key) mod 16384, where CRC16 is the XMODEM variant (polynomial 0x1021,
 * initial value 0). If the key holds a "{...}" with at least one byte between the first '{'
 * and the first '}' after it, only those bytes are hashed (a hash tag): so the stream
 * "{topic:user:B}:history" lands in the slot of the channel "topic:user:B". */
#ifndef RTGATE_CLUSTER_SLOT_H
#define RTGATE_CLUSTER_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define CLUSTER_SLOTS 16384

uint16_t cluster_crc16(const char *buf, size_t len);

/* The slot of @key (@len bytes), hash tags honoured. */
unsigned cluster_key_slot(const char *key, size_t len);

/* A "-MOVED <slot> <host>:<port>" or "-ASK <slot> <host>:<port>" error reply. */
struct cluster_redirect {
    int ask; /* 1: ASK (send ASKING first, this once), 0: MOVED (the slot map changed) */
    unsigned slot;
    char host[256];
    int port;
};

/* Parses the error text @s (@len bytes, without the leading '-'). Returns 0 and fills @out,
 * or -1 when it is not a well-formed redirection. */
int cluster_parse_redirect(const char *s, size_t len, struct cluster_redirect *out);

#endif
