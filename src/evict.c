/*
 * evict.c - cache mode (kvstored -E, a property of the segment): a write
 * that finds no room evicts, fairly between tenants, instead of being
 * refused.  Outside cache mode nothing here runs and nothing acknowledged
 * is ever lost.
 *
 * Whom: a store's fair share is the arena divided by the stores that hold
 * items.  A write that needs a chunk evicts from the store furthest over
 * its share, then the next; from the writer's own store only when no store
 * is over its share; never from a store below its share.  A write refused
 * for its store's quota evicts that store's own items.
 *
 * Which: a clock per size class (second chance, as good as LRU for this and
 * with no list to keep in each item).  A read sets the item's ACTIVE bit;
 * the hand, sweeping the class's pages in order, clears a set bit and
 * passes on, and evicts the first item of the chosen store whose bit is
 * clear: an item read since the hand last passed outlives one that was
 * not.  A write needs a chunk of its own class, so the hand sweeps that
 * class; a quota needs bytes of any class, so it sweeps every page.
 *
 * How: the item's key is copied without a lock, then the item is found
 * again under its stripe lock by that key and unlinked only if it is the
 * very chunk the hand saw: the unlink is an ordinary delete (publish()),
 * with the same crash safety.
 *
 * When the store to evict from holds no item of the write's class, a
 * page's worth of its items of any class go, and compaction (alloc.c)
 * empties a page for the write's class.
 *
 * Worst case: one eviction sweeps a class's pages twice (the second pass
 * finds the bits the first cleared); a quota's, and one for a class the
 * store does not hold, every page twice.  Who is over its share is counted
 * over the accounts in use at most every CENSUS_MS in each process.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

/* The stores over their share, furthest first, at most this many tried. */
#define VICTIMS_MAX	8

struct victims {
	uint32_t	id[VICTIMS_MAX];
	uint32_t	n;
};

/*
 * The largest stores, as a process last counted them: a count reads every
 * slot in use, so a process counts at most every CENSUS_MS, and between
 * counts the bytes of those largest are read again.  How many stores hold
 * items the header keeps exactly (finish_write(), alloc.c).
 */
#define CENSUS_MS	100

static struct census {
	const struct store *st;
	uint64_t	 at;		/* ms, CLOCK_MONOTONIC */
	uint32_t	 n;
	uint32_t	 id[VICTIMS_MAX];	/* the largest, largest first */
} census;

static void
count_stores(struct store *st)
{
	struct kv_header *h = st->hdr;
	struct kv_user *u = users(st);
	uint64_t big[VICTIMS_MAX], b;
	uint32_t i, j, k, end = LOAD(&h->users_hwm);

	if (end > h->nusers)
		end = h->nusers;
	census.st = st;
	census.at = mono_ms();
	census.n = 0;
	for (i = 0; i < end; i++) {
		if (LOAD(&u[i].keys) == 0)
			continue;
		b = LOAD(&u[i].bytes);
		for (j = 0; j < census.n && big[j] >= b; j++)
			;
		if (j == VICTIMS_MAX)
			continue;
		k = census.n < VICTIMS_MAX ? census.n++ : VICTIMS_MAX - 1;
		for (; k > j; k--) {
			census.id[k] = census.id[k - 1];
			big[k] = big[k - 1];
		}
		census.id[j] = i + 1;
		big[j] = b;
	}
}

/*
 * Stores over their fair share of the arena, furthest over first; the
 * writer counts as a store in use, items or not, so that a newcomer to a
 * full cache gets its share.
 */
static void
over_share(struct store *st, uint32_t writer, struct victims *v)
{
	struct kv_header *h = st->hdr;
	struct kv_user *u = users(st);
	uint64_t limit = (uint64_t)h->npages * h->page_size, share;
	uint32_t i, id, inuse;

	if (census.st != st || mono_ms() - census.at >= CENSUS_MS)
		count_stores(st);
	inuse = LOAD(&h->stores_inuse) + (LOAD(&u[writer - 1].keys) == 0);
	v->n = 0;
	if (inuse == 0)
		return;
	share = limit / inuse;
	for (i = 0; i < census.n; i++) {
		id = census.id[i];
		if (LOAD(&u[id - 1].keys) != 0 && LOAD(&u[id - 1].bytes) > share)
			v->id[v->n++] = id;
	}
}

/*
 * Unlink the item at ref if it is still there and still user's; its bytes
 * on success, else 0.
 */
static uint64_t
evict_ref(struct store *st, uint32_t ref, uint32_t user)
{
	struct kv_item *it = item_at(st, ref);
	char key[KV_KEY_MAX];
	struct found f;
	uint64_t bytes;
	uint8_t klen, cls;

	klen = LOAD(&it->klen);
	cls = LOAD(&it->cls);
	if (klen == 0 || klen > KV_KEY_MAX || cls >= st->hdr->nclasses)
		return 0;
	memcpy(key, it->data, klen);
	if (LOAD(&it->state) != ITEM_USED || LOAD(&it->user) != user)
		return 0;
	find_locked(st, user, key, klen, &f);
	if (f.item != it) {
		unlock_found(st, &f);
		return 0;	/* changed under us: the hand goes on */
	}
	bytes = chunk_bytes(st, it);
	tx_set64(st, &f.stripe->lock, &f.stripe->evictions,
	    f.stripe->evictions + 1);
	publish(st, &f, user, 0);	/* commits the count with it */
	unlock_found(st, &f);
	__atomic_add_fetch(&users(st)[user - 1].evictions, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&st->hdr->evicted[cls], 1, __ATOMIC_RELAXED);
	return bytes;
}

/*
 * Sweep from *hand (the chunk it last stopped at) over the pages of class
 * cls (-1: every page), two rounds at most, evicting user's items whose
 * ACTIVE bit is clear until want bytes are freed; the bytes freed.  The
 * hand stays just past the last item it evicted, so that an item written
 * into a chunk behind it is the last the hand comes to, as it should be.
 */
static uint64_t
sweep(struct store *st, int cls, uint32_t *hand, uint32_t user,
    uint64_t want)
{
	struct kv_header *h = st->hdr;
	uint64_t arena = h->off_arena / KV_ITEM_ALIGN, freed = 0;
	uint32_t np = h->npages, per = h->page_size / KV_ITEM_ALIGN;
	uint32_t p, step, first, ref, end, owner, visited, at = LOAD(hand);
	struct kv_item *it;

	if (np == 0)
		return 0;
	p = at > arena ? (uint32_t)((at - arena) / per) % np : 0;
	for (visited = 0; visited <= 2 * np; visited++, p = (p + 1) % np) {
		owner = LOAD(&pagemap(st)[p].cls);
		if (owner == 0 || owner > h->nclasses ||
		    (cls >= 0 && owner != (uint32_t)cls + 1))
			continue;
		step = h->classes[owner - 1].size / KV_ITEM_ALIGN;
		first = (uint32_t)(arena + (uint64_t)p * per);
		/* Only the chunks carved: the rest may hold what another
		 * class left there. */
		end = first + LOAD(&pagemap(st)[p].carved) * step;
		ref = first;
		/* The first page from where the hand stopped in it (past
		 * its last chunk: from the next page). */
		if (visited == 0 && at > first)
			ref = at >= end ? end :
			    first + (at - first) / step * step;
		for (; ref < end; ref += step) {
			it = item_at(st, ref);
			if (LOAD(&it->state) != ITEM_USED ||
			    LOAD(&it->user) != user)
				continue;
			if (LOAD(&it->pad) & ITEM_META_ACTIVE) {
				/* Read since the hand last came: a second
				 * chance. */
				__atomic_and_fetch(&it->pad,
				    (uint8_t)~ITEM_META_ACTIVE,
				    __ATOMIC_RELAXED);
				continue;
			}
			freed += evict_ref(st, ref, user);
			if (freed >= want) {
				STORE(hand, ref + step);
				return freed;
			}
		}
	}
	return freed;
}

/*
 * Cache mode's make_room(): evict for a write of need bytes by user that
 * was refused with why (ST_FULL or ST_QUOTA); 1 if anything was evicted.
 */
int
evict_for(struct store *st, uint32_t user, size_t need, int why)
{
	struct kv_header *h = st->hdr;
	struct victims v;
	uint64_t want;
	uint32_t i, target;
	int cls;

	if (!h->cache_mode || user == 0 || user > h->nusers ||
	    (cls = class_for(st, need)) == -1)
		return 0;
	want = h->classes[cls].size;
	if (why == ST_QUOTA)
		return sweep(st, -1, &users(st)[user - 1].hand, user, want) > 0;
	if (why != ST_FULL)
		return 0;
	over_share(st, user, &v);
	for (i = 0; i < v.n; i++)
		if (sweep(st, cls, &h->hand[cls], v.id[i], 1) > 0)
			return 1;
	target = v.n > 0 ? v.id[0] : user;
	if (v.n == 0 && sweep(st, cls, &h->hand[cls], user, 1) > 0)
		return 1;
	/*
	 * The store to evict from holds nothing of this class: evict a
	 * page's worth of its items of any class, so that compaction (the
	 * caller's next try, alloc.c) can empty a page for this one.
	 */
	if (sweep(st, -1, &users(st)[target - 1].hand, target,
	    h->page_size) == 0)
		return 0;
	(void)compact(st, need);
	return 1;
}
