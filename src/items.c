/*
 * items.c - items and their chains: the keyed hash, finding a key under its
 * stripe lock, filling a fresh chunk, and publishing a write into the chain
 * in one commit.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "lock.h"
#include "siphash.h"
#include "store.h"
#include "store_impl.h"

/*
 * The hash of a user's key: SipHash (siphash.h) under the segment's random
 * key, of the key bytes then the user id, so that one key under many users
 * spreads over many buckets and a client who knows the function still
 * cannot tell which keys share a chain.  The low bits choose the bucket,
 * the high half is kept in the item to skip most key compares.  The peers
 * table hashes its addresses and names through here too (user = kind 0
 * and 1), and conns.c the addresses it counts (kind 2).
 */
uint64_t
hash_key(const struct store *st, uint32_t user, const void *key, size_t len)
{
	return siphash_word(&st->hdr->hash_key, key, len, user);
}

/* ---- chains (stripe lock) ---------------------------------------------- */

static struct kv_stripe *
stripe_for(struct store *st, uint64_t h, uint32_t **bucket)
{
	uint32_t b = (uint32_t)h & (st->hdr->nbuckets - 1);

	*bucket = &buckets(st)[b];
	return &stripes(st)[b & (st->hdr->nstripes - 1)];
}

/* Lock the key's stripe and find the key; the caller unlocks. */
void
find_locked(struct store *st, uint32_t user, const void *key, size_t klen,
    struct found *f)
{
	uint64_t h = hash_key(st, user, key, klen);
	uint32_t *link, ref;

	f->stripe = stripe_for(st, h, &link);
	f->hash = (uint32_t)(h >> 32);
	lock_acquire(st, &f->stripe->lock);
	for (; (ref = *link) != 0; link = &item_at(st, ref)->next) {
		struct kv_item *it = item_at(st, ref);

		if (it->hash == f->hash && it->user == user &&
		    it->klen == klen && memcmp(it->data, key, klen) == 0) {
			f->link = link;
			f->item = it;
			return;
		}
	}
	f->link = link;
	f->item = NULL;
}

/*
 * store_prefetch: every key's bucket and stripe lock first, then the first
 * item of each chain, which is the key's item in all but a collision.  The
 * bucket is read without its lock: a chain changed meanwhile costs only a
 * wasted prefetch, and a ref is bounded before it is made an address.
 */
void
store_prefetch(struct store *st, uint32_t user, const struct store_key *k,
    unsigned n)
{
	uint32_t *bucket[STORE_PREFETCH_MAX], ref;
	unsigned i;

	if (n > STORE_PREFETCH_MAX)
		n = STORE_PREFETCH_MAX;
	for (i = 0; i < n; i++) {
		struct kv_stripe *s = stripe_for(st,
		    hash_key(st, user, k[i].key, k[i].len), &bucket[i]);

		__builtin_prefetch(bucket[i], 0);
		__builtin_prefetch(&s->lock, 1);
	}
	for (i = 0; i < n; i++) {
		ref = __atomic_load_n(bucket[i], __ATOMIC_RELAXED);
		if (ref == 0 || (size_t)ref * KV_ITEM_ALIGN + 2 * KV_CACHELINE >
		    st->size)
			continue;
		/* header and key, then the value that follows them */
		__builtin_prefetch(item_at(st, ref), 1);
		__builtin_prefetch((char *)item_at(st, ref) + KV_CACHELINE, 0);
	}
}

void
unlock_found(struct store *st, struct found *f)
{
	lock_release(st, &f->stripe->lock);
}

/*
 * Publish: replace f->item (or append when absent) with the chunk newref,
 * or unlink f->item when newref is 0.  One commit under the stripe lock.
 */
void
publish(struct store *st, struct found *f, uint32_t user, uint32_t newref)
{
	struct kv_lock *l = &f->stripe->lock;
	struct kv_slot *me = registry_slot(st);
	struct kv_item *old = f->item, *nw = newref ? item_at(st, newref) : NULL;
	int64_t dkeys = 0, dbytes = 0;

	if (old != NULL) {
		dkeys--;
		dbytes -= (int64_t)chunk_bytes(st, old);
	}
	if (nw != NULL) {
		dkeys++;
		dbytes += (int64_t)chunk_bytes(st, nw);
		/* Private until the link below is stored: no log needed. */
		nw->next = old != NULL ? old->next : *f->link;
		tx_set32(st, l, f->link, newref);
	} else if (old != NULL)
		tx_set32(st, l, f->link, old->next);
	tx_set64(st, l, &f->stripe->items, f->stripe->items + (uint64_t)dkeys);
	tx_set64(st, l, &f->stripe->bytes, f->stripe->bytes + (uint64_t)dbytes);
	tx_set32(st, l, &me->pending, 0);
	tx_set32(st, l, &me->final_old, old != NULL ? item_ref(st, old) : 0);
	tx_set32(st, l, &me->final_user, user);
	tx_set64(st, l, (uint64_t *)&me->final_dkeys, (uint64_t)dkeys);
	tx_set64(st, l, (uint64_t *)&me->final_dbytes, (uint64_t)dbytes);
	tx_set32(st, l, &me->final_valid, 1);
	tx_commit(l);
	finish_write(st, me);
}

void
view_of(const struct kv_item *it, struct item_view *v)
{
	v->key = it->data;
	v->klen = it->klen;
	v->value = it->data + it->klen;
	v->vlen = it->vlen;
	v->flags = it->flags;
	v->exptime = it->exptime;
	v->cas = it->cas;
	v->atime = LOAD(&it->pad2);
	v->meta = LOAD(&it->pad);
	v->fetched = (v->meta & ITEM_META_FETCHED) != 0;
	v->cls = it->cls;
	v->size = (uint32_t)(ITEM_HDR + it->klen + it->vlen);
}

/*
 * A read: the item has been fetched, now.  Two words of their own, outside
 * the undo log: a lost update only ages memcached's "l" and "h".
 */
void
note_access(struct kv_item *it, uint32_t now)
{
	STORE(&it->pad2, now);
	__atomic_or_fetch(&it->pad, ITEM_META_FETCHED | ITEM_META_ACTIVE,
	    __ATOMIC_RELAXED);
}

/*
 * The cas up to which a user's items are flushed (store_flush_items()).
 * A delayed flush that has come due is settled here, by the first access
 * to the store at or after its time, before that access writes anything:
 * the cas sequence read then is above every item stored before, and below
 * every item stored after, since each write comes through here before it
 * takes its cas.  Of two processes settling at once, the one whose
 * compare-and-swap clears flush_at records its reading, taken before the
 * swap; the other's (perhaps later) reading is dropped.
 */
uint64_t
flush_mark(struct store *st, uint32_t user, uint32_t now)
{
	struct kv_user *u;
	int64_t due;
	uint64_t seq, old;

	if (user == 0 || user > st->hdr->nusers)
		return 0;
	u = &users(st)[user - 1];
	due = LOAD(&u->flush_at);
	if (due != 0 && (int64_t)now >= due) {
		seq = LOAD(&st->hdr->cas_seq);
		if (CAS(&u->flush_at, due, 0)) {
			old = LOAD(&u->flush_cas);
			while (old < seq && !CAS(&u->flush_cas, old, seq))
				;
		}
	}
	return LOAD(&u->flush_cas);
}

/* An expired or flushed item is absent; unlink it while we hold its
 * stripe. */
void
reap_expired(struct store *st, struct found *f, uint32_t user, uint32_t now)
{
	uint64_t mark = flush_mark(st, user, now);

	if (f->item != NULL && (expired(f->item, now) ||
	    f->item->cas <= mark)) {
		f->stripe->reclaimed++;
		if (expired(f->item, now) &&
		    !(LOAD(&f->item->pad) & ITEM_META_FETCHED))
			f->stripe->expired_unfetched++;
		publish(st, f, user, 0);
		f->item = NULL;
	}
}

/* Fill a fresh chunk: key, then the value made of up to three pieces. */
void
fill(struct store *st, uint32_t ref, uint32_t user, uint32_t hash,
    const void *key, size_t klen, const void *a, size_t alen, const void *b,
    size_t blen, uint32_t flags, uint32_t exptime)
{
	struct kv_item *it = item_at(st, ref);

	it->next = 0;
	it->hash = hash;
	it->user = user;
	it->vlen = (uint32_t)(alen + blen);
	it->klen = (uint8_t)klen;
	it->flags = flags;
	it->exptime = exptime;
	note_expiry(st, exptime);	/* under the stripe lock: expire.c */
	it->pad = 0;
	it->pad2 = (uint32_t)time(NULL);
	it->cas = __atomic_add_fetch(&st->hdr->cas_seq, 1, __ATOMIC_RELAXED);
	memcpy(it->data, key, klen);
	if (alen)
		memcpy(it->data + klen, a, alen);
	if (blen)
		memcpy(it->data + klen + alen, b, blen);
}
