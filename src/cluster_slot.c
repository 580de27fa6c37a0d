/* cluster_slot.c: CRC16 (XMODEM), hash tags and MOVED/ASK parsing for Redis Cluster. Written
 * from the cluster specification; bitwise CRC rather than a table: the backplane hashes one
 * short channel name per publish, so 8 shifts a byte cost nothing worth 512 bytes of table. */
#include "rtgate/cluster_slot.h"

#include <stdlib.h>
#include <string.h>

uint16_t cluster_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;

    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;

        close = memchr(open + 1, '}', rest);
        /* "{}" is no tag: then the whole key is hashed */
        if (close && close > open + 1)
            return cluster_crc16(open + 1, (size_t)(close - open - 1)) & (CLUSTER_SLOTS - 1);
    }
    return cluster_crc16(key, len) & (CLUSTER_SLOTS - 1);
}

static int parse_uint(const char **p, const char *end, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    const char *s = *p;

    if (s == end || *s < '0' || *s > '9')
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    *p = s;
    *out = v;
    return 0;
}

int cluster_parse_redirect(const char *s, size_t len, struct cluster_redirect *out)
{
    const char *end = s + len, *p, *colon;
    unsigned long slot, port;
    size_t hlen;

    if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        out->ask = 0;
        p = s + 6;
    } else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
        out->ask = 1;
        p = s + 4;
    } else {
        return -1;
    }
    if (parse_uint(&p, end, CLUSTER_SLOTS - 1, &slot) != 0 || p == end || *p++ != ' ')
        return -1;
    /* the host may be an IPv6 address: the port follows the last ':' */
    for (colon = end; colon > p && colon[-1] != ':'; colon--)
        ;
    if (colon <= p + 1)
        return -1;
    colon--;
    hlen = (size_t)(colon - p);
    if (hlen >= sizeof(out->host) || memchr(p, ' ', hlen))
        return -1;
    colon++;
    if (parse_uint(&colon, end, 65535, &port) != 0 || colon != end || port == 0)
        return -1;
    memcpy(out->host, p, hlen);
    out->host[hlen] = '\0';
    out->slot = (unsigned)slot;
    out->port = (int)port;
    return 0;
}
