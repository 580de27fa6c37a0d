/* ring.h: a consistent-hash ring with virtual nodes, placing keys (topic names) on shards.
 *
 * Each shard gets @vnodes points on a 64-bit circle at hash("<name>#<i>"); a key belongs to
 * the first point at or after hash(key), wrapping. Every node that is given the same shard
 * names computes the same placement, with no coordination; adding or removing one of N shards
 * moves about 1/N of the keys (only those whose nearest point changed). Pure code. */
#ifndef RTGATE_RING_H
#define RTGATE_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_VNODES 1000 /* points per shard: 3 shards balance within a few per cent */

struct ring;

/* A ring over @n (>= 1) shards named @names[i] (NUL-terminated; only the names matter, not
 * their order). Returns NULL if @n is 0. */
struct ring *ring_new(const char *const *names, size_t n, unsigned vnodes);
void ring_free(struct ring *r);

/* The index (into the names given to ring_new) of the shard that owns @key. */
size_t ring_lookup(const struct ring *r, const char *key, size_t len);

/* The 64-bit hash the ring uses (FNV-1a, then a murmur3 finalizer for avalanche). */
uint64_t ring_hash(const char *s, size_t len);

#endif
