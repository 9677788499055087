/*
 * store_impl.h - what the store's own files share, and nobody else.
 *
 * store.h is the store's interface; this header is its inside: the
 * accessors that turn the segment's offsets into pointers, and the calls
 * one part of the store makes into another.  Included only by store.c,
 * items.c, alloc.c, accounts.c, peers.c, recover.c, check.c and stats.c.
 *
 * Lock order: a stripe, then the alloc lock.  The users lock is taken alone.
 */
#ifndef STORE_IMPL_H
#define STORE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"
#include "store.h"

#define LOAD(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, o, n)	__atomic_compare_exchange_n((p), &(o), (n), 0, \
			    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#define ITEM_HDR	sizeof(struct kv_item)

static inline uint64_t
round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

/* ---- the segment's regions ---------------------------------------------- */

static inline struct kv_item *
item_at(struct store *st, uint32_t ref)
{
	return (struct kv_item *)(st->base + (size_t)ref * KV_ITEM_ALIGN);
}

static inline uint32_t
item_ref(struct store *st, const struct kv_item *it)
{
	return (uint32_t)(((const char *)it - st->base) / KV_ITEM_ALIGN);
}

static inline struct kv_stripe *
stripes(struct store *st)
{
	return (struct kv_stripe *)(st->base + st->hdr->off_stripes);
}

static inline uint32_t *
buckets(struct store *st)
{
	return (uint32_t *)(st->base + st->hdr->off_buckets);
}

static inline struct kv_user *
users(struct store *st)
{
	return (struct kv_user *)(st->base + st->hdr->off_users);
}

static inline uint32_t *
names(struct store *st)
{
	return (uint32_t *)(void *)(st->base + st->hdr->off_names);
}

/* The top bits of a name's hash, kept in its index entry above the id. */
static inline uint32_t
name_tag(uint64_t h)
{
	return (uint32_t)(h >> 32) & ~NAME_ID_MASK;
}

static inline struct kv_page *
pagemap(struct store *st)
{
	return (struct kv_page *)(st->base + st->hdr->off_pagemap);
}

/* The page a chunk's ref falls in, and a page's first chunk. */
static inline uint32_t
page_of(struct store *st, uint32_t ref)
{
	return (uint32_t)(((uint64_t)ref * KV_ITEM_ALIGN - st->hdr->off_arena) /
	    st->hdr->page_size);
}

static inline uint32_t
page_ref(struct store *st, uint32_t page)
{
	return (uint32_t)((st->hdr->off_arena + (uint64_t)page *
	    st->hdr->page_size) / KV_ITEM_ALIGN);
}

/* ---- one item's header --------------------------------------------------- */

/* klen, cls, state and pad share one 32-bit word, logged as one. */
static inline uint32_t *
item_meta(struct kv_item *it)
{
	return (uint32_t *)(void *)&it->klen;
}

static inline uint32_t
meta_word(uint8_t klen, uint8_t cls, uint8_t state)
{
	struct kv_item m;
	uint32_t w;

	memset(&m, 0, sizeof(m));
	m.klen = klen;
	m.cls = cls;
	m.state = state;
	memcpy(&w, &m.klen, sizeof(w));
	return w;
}

static inline int
expired(const struct kv_item *it, uint32_t now)
{
	return it->exptime != 0 && it->exptime <= now;
}

static inline uint64_t
chunk_bytes(struct store *st, const struct kv_item *it)
{
	return st->hdr->classes[it->cls].size;
}

/* ---- items and chains (items.c, under a stripe lock) -------------------- */

/* Where a key is, or would be linked, in its chain. */
struct found {
	struct kv_stripe *stripe;
	uint32_t	*link;		/* the word that points at item */
	struct kv_item	*item;		/* NULL when absent */
	uint32_t	 hash;
};

uint64_t hash_key(const struct store *, uint32_t user, const void *key,
	    size_t len);
void	 find_locked(struct store *, uint32_t user, const void *key,
	    size_t klen, struct found *);
void	 unlock_found(struct store *, struct found *);
void	 publish(struct store *, struct found *, uint32_t user,
	    uint32_t newref);
void	 view_of(const struct kv_item *, struct item_view *);
void	 note_access(struct kv_item *, uint32_t now);
int	 over_quota(struct store *, uint32_t user, const struct store_write *,
	    int64_t dkeys, int64_t dbytes);
void	 reap_expired(struct store *, struct found *, uint32_t user,
	    uint32_t now);
uint64_t flush_mark(struct store *, uint32_t user, uint32_t now);
void	 fill(struct store *, uint32_t ref, uint32_t user, uint32_t hash,
	    const void *key, size_t klen, const void *a, size_t alen,
	    const void *b, size_t blen, uint32_t flags, uint32_t exptime);
void	 flush_stripe_locked(struct store *, uint32_t stripe, uint32_t user);

/* ---- accounts (accounts.c) --------------------------------------------- */

int	 account_live(struct store *, uint32_t user, uint32_t gen);
uint64_t name_hash(struct store *, const char *name, size_t len);

/* ---- the allocator (alloc.c, under the alloc lock) ---------------------- */

void	 plan_classes(struct kv_header *);
int	 class_for(struct store *, size_t bytes);
int	 alloc_chunk(struct store *, size_t bytes, uint32_t *refp);
void	 drop_pending(struct store *, struct kv_slot *);
void	 finish_write(struct store *, struct kv_slot *);
int	 compact(struct store *, size_t need);
void	 drain_dead(struct store *, uint32_t pid);

/* room.c; a write tries again at most ROOM_TRIES times (store_put()) */
int	 make_room(struct store *, uint32_t user, size_t need, int why);
#define ROOM_TRIES	8

/* ---- expiry (expire.c) -------------------------------------------------- */

void	 note_expiry(struct store *, uint32_t t);
uint64_t reclaim_expired(struct store *, uint32_t user, uint64_t *mine);

/* evict.c: cache mode */
int	 evict_for(struct store *, uint32_t user, size_t need, int why);

#endif
