/*
 * alloc.c - the allocator: size classes, pages and chunks, under the alloc
 * lock; and compaction, which empties a page by moving its items.
 *
 * The arena is cut into pages of one size (room for the largest item).  A
 * page belongs to one size class while any of its chunks is handed out, and
 * goes back to a common pool of empty pages, which any class may take, when
 * its last chunk is freed.  Its descriptor in the page map (struct
 * kv_page) holds its class, its count of chunks handed out, its own list of
 * free chunks (threaded through the freed items), how far it has been
 * carved, and its links on its class's list of partly-free pages.  So:
 *
 *   alloc: the class's first partly-free page gives a free chunk, or carves
 *	one; with none, a page from the pool, else a never-used page.
 *   free: the chunk goes on its page's list; a page that was full joins its
 *	class's list; a page with nothing handed out leaves it for the pool.
 *
 * Each is O(1) and one critical section of the alloc lock whose every
 * change goes through the undo log, so a process killed inside one is
 * rolled back by the next lock taker (lock.c).  A chunk taken for a write
 * is recorded as the process's pending chunk in the same commit, so a death
 * before it is published gives it back; the chunk a committed write
 * replaced is freed by finish_write(), exactly once, by the writer or
 * whoever finishes its slot (recover.c).
 *
 * Compaction: a write that finds no chunk of its class and no empty page
 * calls compact() (through make_room(), with no stripe held).  A class
 * whose free chunks add up to a page's worth (chunks_per_page) can always
 * give a page: the items of any of its pages fit in the free chunks of the
 * others.  compact() takes the emptiest such page out of allocation (the
 * header's draining), then moves each of its items as a write would: under
 * the item's stripe lock a chunk of another page of the class is taken
 * (pending), the item copied into it, the copy published in place of the
 * original, and the original freed by finish_write().  A process killed
 * mid-move leaves the original (the copy is a pending chunk, given back) or
 * the copy (the original is its final_old, freed): one reachable copy
 * either way.  The last item moved sends the page to the pool.  A dead
 * compactor's page is put back into allocation by whoever finishes its slot
 * (drain_dead()).  One compaction runs at a time (compact_lock).
 *
 * What is guaranteed: a write of a chunk of class C is refused only when C
 * has no free chunk, the pool is empty, and no other class has a page's
 * worth of free chunks.  Worst case: then up to (classes - 1) pages less
 * one chunk each are free but unusable for C, besides the rounding of items
 * up to their class (at most 25%) and the tail of each page; and one write
 * that compacts moves up to a page's worth of items (a page of the smallest
 * class: page size / 48 moves, each a stripe lock and two alloc locks).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

void	(*store_test_move)(void);

/* Classes grow by 1.25 from the smallest item; the last is a page. */
void
plan_classes(struct kv_header *h)
{
	uint32_t size, i;

	size = (uint32_t)round_up(ITEM_HDR + 8, KV_ITEM_ALIGN);
	for (i = 0; i < KV_CLASSES_MAX - 1 && size < h->page_size / 2; i++) {
		h->classes[i].size = size;
		size = (uint32_t)round_up((uint64_t)size * 5 / 4, KV_ITEM_ALIGN);
	}
	h->classes[i++].size = h->page_size;
	h->nclasses = i;
}

int
class_for(struct store *st, size_t bytes)
{
	uint32_t i;

	for (i = 0; i < st->hdr->nclasses; i++)
		if (st->hdr->classes[i].size >= bytes)
			return (int)i;
	return -1;
}

static uint32_t
per_page(struct store *st, const struct kv_class *c)
{
	return st->hdr->page_size / c->size;
}

/* Free chunks of a class, carved or not, in the pages that hand them out. */
static uint32_t
class_free(struct store *st, const struct kv_class *c)
{
	return c->pages * per_page(st, c) - c->used;
}

/* Is page p (0-based) on its class's list?  Partly free, not draining. */
static int
listed(struct store *st, uint32_t p)
{
	struct kv_page *pg = &pagemap(st)[p];
	struct kv_class *c;

	if (pg->cls == 0 || st->hdr->draining == p + 1)
		return 0;
	c = &st->hdr->classes[pg->cls - 1];
	return pg->used < per_page(st, c);
}

static void
list_push(struct store *st, struct kv_lock *l, struct kv_class *c, uint32_t p)
{
	struct kv_page *pg = &pagemap(st)[p];

	tx_set32(st, l, &pg->prev, 0);
	tx_set32(st, l, &pg->next, c->partial);
	if (c->partial != 0)
		tx_set32(st, l, &pagemap(st)[c->partial - 1].prev, p + 1);
	tx_set32(st, l, &c->partial, p + 1);
}

static void
list_unlink(struct store *st, struct kv_lock *l, struct kv_class *c,
    uint32_t p)
{
	struct kv_page *pg = &pagemap(st)[p];

	if (pg->prev != 0)
		tx_set32(st, l, &pagemap(st)[pg->prev - 1].next, pg->next);
	else
		tx_set32(st, l, &c->partial, pg->next);
	if (pg->next != 0)
		tx_set32(st, l, &pagemap(st)[pg->next - 1].prev, pg->prev);
	tx_set32(st, l, &pg->prev, 0);
	tx_set32(st, l, &pg->next, 0);
}

/* An empty page from the pool, else a never-used one; -1 when none. */
static int64_t
take_page(struct store *st, struct kv_lock *l, uint32_t cls)
{
	struct kv_header *h = st->hdr;
	struct kv_page *pg;
	uint32_t p;

	if (h->pool != 0) {
		p = h->pool - 1;
		tx_set32(st, l, &h->pool, pagemap(st)[p].next);
	} else if (h->next_page < h->npages) {
		p = h->next_page;
		tx_set32(st, l, &h->next_page, p + 1);
	} else
		return -1;
	pg = &pagemap(st)[p];
	tx_set32(st, l, &pg->cls, cls + 1);
	tx_set32(st, l, &pg->used, 0);
	tx_set32(st, l, &pg->free_head, 0);
	tx_set32(st, l, &pg->carved, 0);
	tx_set32(st, l, &pg->next, 0);
	tx_set32(st, l, &h->classes[cls].pages, h->classes[cls].pages + 1);
	return p;
}

/*
 * Hand out a chunk of class cls, in the alloc lock's open transaction; 0
 * when there is none (with new_page, not even an empty page to take).
 */
static uint32_t
take_chunk(struct store *st, struct kv_lock *l, uint32_t cls, int new_page)
{
	struct kv_class *c = &st->hdr->classes[cls];
	struct kv_page *pg;
	uint32_t ref, p;
	int64_t np;
	int was_listed = 1;

	if (c->partial != 0)
		p = c->partial - 1;
	else if (!new_page || (np = take_page(st, l, cls)) == -1)
		return 0;
	else {
		p = (uint32_t)np;
		was_listed = 0;
	}
	pg = &pagemap(st)[p];
	if ((ref = pg->free_head) != 0)
		tx_set32(st, l, &pg->free_head, item_at(st, ref)->next);
	else {
		ref = page_ref(st, p) + pg->carved * (c->size / KV_ITEM_ALIGN);
		tx_set32(st, l, &pg->carved, pg->carved + 1);
	}
	tx_set32(st, l, &pg->used, pg->used + 1);
	tx_set32(st, l, &c->used, c->used + 1);
	if (was_listed && !listed(st, p))
		list_unlink(st, l, c, p);
	else if (!was_listed && listed(st, p))
		list_push(st, l, c, p);
	tx_set32(st, l, item_meta(item_at(st, ref)),
	    meta_word(0, (uint8_t)cls, ITEM_USED));
	return ref;
}

/* Give a chunk back to its page; a page left with nothing goes to the pool. */
static void
free_chunk(struct store *st, struct kv_lock *l, uint32_t ref)
{
	struct kv_header *h = st->hdr;
	struct kv_item *it = item_at(st, ref);
	uint32_t p = page_of(st, ref);
	struct kv_page *pg = &pagemap(st)[p];
	struct kv_class *c = &h->classes[pg->cls - 1];
	int was_listed = listed(st, p);

	tx_set32(st, l, item_meta(it), meta_word(0, (uint8_t)(pg->cls - 1),
	    ITEM_FREE));
	tx_set32(st, l, &it->next, pg->free_head);
	tx_set32(st, l, &pg->free_head, ref);
	tx_set32(st, l, &pg->used, pg->used - 1);
	tx_set32(st, l, &c->used, c->used - 1);
	if (pg->used == 0) {
		if (was_listed)
			list_unlink(st, l, c, p);
		if (h->draining == p + 1) {
			tx_set32(st, l, &h->draining, 0);
			tx_set32(st, l, &h->drainer, 0);
			tx_set64(st, l, &h->pages_moved, h->pages_moved + 1);
		}
		tx_set32(st, l, &pg->cls, 0);
		tx_set32(st, l, &pg->next, h->pool);
		tx_set32(st, l, &h->pool, p + 1);
		tx_set32(st, l, &c->pages, c->pages - 1);
	} else if (!was_listed && listed(st, p))
		list_push(st, l, c, p);
}

/*
 * Take a chunk for an item of the given size.  It is recorded as this
 * process's pending chunk in the same commit, so a death before it is
 * published gives it back (store_finish_dead()).  A move (new_page 0)
 * takes only a chunk of a page its class already has.
 */
static int
alloc_in(struct store *st, size_t bytes, int new_page, uint32_t *refp)
{
	struct kv_lock *l = &st->hdr->alloc_lock;
	uint32_t ref;
	int cls;

	if ((cls = class_for(st, bytes)) == -1)
		return ST_TOO_LARGE;
	lock_acquire(st, l);
	if ((ref = take_chunk(st, l, (uint32_t)cls, new_page)) == 0) {
		tx_commit(l);
		lock_release(st, l);
		return ST_FULL;
	}
	tx_set32(st, l, &registry_slot(st)->pending, ref);
	tx_commit(l);
	lock_release(st, l);
	*refp = ref;
	return ST_OK;
}

int
alloc_chunk(struct store *st, size_t bytes, uint32_t *refp)
{
	return alloc_in(st, bytes, 1, refp);
}

/* Give back this process's pending chunk (a write that did not happen). */
void
drop_pending(struct store *st, struct kv_slot *s)
{
	struct kv_lock *l = &st->hdr->alloc_lock;

	lock_acquire(st, l);
	if (s->pending != 0) {
		free_chunk(st, l, s->pending);
		tx_set32(st, l, &s->pending, 0);
	}
	tx_commit(l);
	lock_release(st, l);
}

/*
 * The bookkeeping after a committed write: free the chunk it replaced and
 * move the owner's counters.  Recorded in the slot inside the stripe's
 * commit, cleared inside this one, so it happens exactly once even if the
 * writer dies in between.
 */
void
finish_write(struct store *st, struct kv_slot *s)
{
	struct kv_lock *l = &st->hdr->alloc_lock;
	struct kv_user *u;

	lock_acquire(st, l);
	if (s->final_valid) {
		if (s->final_old != 0)
			free_chunk(st, l, s->final_old);
		if (s->final_user >= 1 && s->final_user <= st->hdr->nusers) {
			u = &users(st)[s->final_user - 1];
			/* A store that starts or stops holding items:
			 * cache mode's fair share counts them. */
			if ((u->keys == 0) != (u->keys +
			    (uint64_t)s->final_dkeys == 0))
				tx_set32(st, l, &st->hdr->stores_inuse,
				    st->hdr->stores_inuse + (u->keys == 0 ?
				    1 : (uint32_t)-1));
			tx_set64(st, l, &u->keys,
			    u->keys + (uint64_t)s->final_dkeys);
			tx_set64(st, l, &u->bytes,
			    u->bytes + (uint64_t)s->final_dbytes);
		}
		tx_set32(st, l, &s->final_valid, 0);
	}
	tx_commit(l);
	lock_release(st, l);
}

/* ---- compaction ---------------------------------------------------------- */

/* Could class cls hand out a chunk now?  (Under the alloc lock.) */
static int
room_for(struct store *st, uint32_t cls)
{
	struct kv_header *h = st->hdr;

	return h->classes[cls].partial != 0 || h->pool != 0 ||
	    h->next_page < h->npages;
}

/*
 * The page to empty for a write of class cls: the emptiest page of a class
 * with a page's worth of free chunks (so its items fit in the class's other
 * pages); -1 when no class has that many.
 */
static int64_t
pick_page(struct store *st, uint32_t cls)
{
	struct kv_header *h = st->hdr;
	struct kv_page *pg;
	int64_t best = -1;
	uint32_t p, k, best_used = UINT32_MAX;

	for (p = 0; p < h->next_page; p++) {
		pg = &pagemap(st)[p];
		if (pg->cls == 0 || (k = pg->cls - 1) == cls ||
		    pg->used >= best_used)
			continue;
		if (class_free(st, &h->classes[k]) >= per_page(st,
		    &h->classes[k])) {
			best = p;
			best_used = pg->used;
		}
	}
	return best;
}

/* Put page p back into allocation: its move is over, or its mover dead. */
static void
undrain(struct store *st, struct kv_lock *l, uint32_t p)
{
	struct kv_header *h = st->hdr;

	tx_set32(st, l, &h->draining, 0);
	tx_set32(st, l, &h->drainer, 0);
	if (listed(st, p))
		list_push(st, l, &h->classes[pagemap(st)[p].cls - 1], p);
}

/* A compactor died: its page goes back into allocation (recover.c). */
void
drain_dead(struct store *st, uint32_t pid)
{
	struct kv_header *h = st->hdr;
	struct kv_lock *l = &h->alloc_lock;

	lock_acquire(st, l);
	if (h->draining != 0 && h->drainer == pid)
		undrain(st, l, h->draining - 1);
	tx_commit(l);
	lock_release(st, l);
}

/*
 * Move the item in chunk ref to another chunk of its class, as a write
 * would (see the top of the file).  The chunk is read without a lock at
 * first, to find its key: the item counts only if its stripe's chain
 * holds this very chunk.  Returns 0 when moved or not an item any more,
 * -1 when its class has no chunk left to take it.
 */
static int
move_one(struct store *st, uint32_t ref, uint32_t size)
{
	struct kv_item *it = item_at(st, ref), *nw;
	char key[KV_KEY_MAX];
	struct found f;
	uint32_t user, nref;
	size_t klen, need;
	int rc = 0;

	user = LOAD(&it->user);
	klen = LOAD(&it->klen);
	if (LOAD(&it->state) != ITEM_USED || klen == 0 || klen > KV_KEY_MAX ||
	    ITEM_HDR + klen > size)
		return 0;
	memcpy(key, it->data, klen);
	find_locked(st, user, key, klen, &f);
	if (f.item != it)
		goto out;		/* freed, pending, or moved since */
	need = ITEM_HDR + klen + it->vlen;
	if (alloc_in(st, need, 0, &nref) != ST_OK) {
		rc = -1;
		goto out;
	}
	nw = item_at(st, nref);
	memcpy(nw, it, need);		/* private until published */
	nw->cls = (uint8_t)class_for(st, need);
	if (store_test_move != NULL)
		store_test_move();
	publish(st, &f, user, nref);
	__atomic_add_fetch(&st->hdr->moves, 1, __ATOMIC_RELAXED);
out:
	unlock_found(st, &f);
	return rc;
}

/*
 * Move every item out of page p, which is out of allocation; stops when
 * the page went to the pool, or at -1 when the class has no room left for
 * its items.
 */
static int
drain(struct store *st, uint32_t p)
{
	struct kv_header *h = st->hdr;
	struct kv_lock *l = &h->alloc_lock;
	uint32_t i, n, size, cls, base = page_ref(st, p);

	lock_acquire(st, l);
	cls = pagemap(st)[p].cls;
	n = pagemap(st)[p].carved;
	lock_release(st, l);
	if (cls == 0)
		return 0;
	size = h->classes[cls - 1].size;
	for (i = 0; i < n; i++) {
		if (LOAD(&h->draining) != p + 1)
			return 0;	/* it went to the pool */
		if (move_one(st, base + i * (size / KV_ITEM_ALIGN), size) == -1)
			return -1;
	}
	return 0;
}

/*
 * Make room for a write of need bytes by emptying a page of another class
 * (see the top of the file).  Runs with no stripe held: it takes them one
 * at a time.  1 when the write's class can have a chunk now, and also
 * when another try may give it one, so that a write is not refused while
 * pages could still be emptied (its caller's ROOM_TRIES bound the tries):
 * the page emptied went to the pool, and a writer of another class may
 * have taken it before this one looked; or a move found its class out of
 * free chunks (taken by writers meanwhile) and another class now has a
 * page to give.
 */
int
compact(struct store *st, size_t need)
{
	struct kv_header *h = st->hdr;
	struct kv_lock *l = &h->alloc_lock;
	int64_t p;
	int cls, ok, emptied, failed = 0;

	if ((cls = class_for(st, need)) == -1)
		return 0;
	lock_acquire(st, &h->compact_lock);
	lock_acquire(st, l);
	if (room_for(st, (uint32_t)cls)) {
		lock_release(st, l);	/* another made room meanwhile */
		lock_release(st, &h->compact_lock);
		return 1;
	}
	if (h->draining != 0)		/* left by a compactor killed */
		undrain(st, l, h->draining - 1);
	if ((p = pick_page(st, (uint32_t)cls)) != -1) {
		if (listed(st, (uint32_t)p))
			list_unlink(st, l, &h->classes[pagemap(st)[p].cls - 1],
			    (uint32_t)p);
		tx_set32(st, l, &h->draining, (uint32_t)p + 1);
		tx_set32(st, l, &h->drainer, st->pid);
	}
	tx_commit(l);
	lock_release(st, l);
	if (p != -1)
		failed = drain(st, (uint32_t)p) == -1;
	lock_acquire(st, l);
	/* Only its last chunk freed clears draining while we hold the
	 * compaction: the page went to the pool (its last item perhaps
	 * deleted before drain() looked). */
	emptied = p != -1 && h->draining != (uint32_t)p + 1;
	if (p != -1 && !emptied)
		undrain(st, l, (uint32_t)p);
	tx_commit(l);
	ok = room_for(st, (uint32_t)cls) || emptied ||
	    (failed && pick_page(st, (uint32_t)cls) != -1);
	lock_release(st, l);
	lock_release(st, &h->compact_lock);
	return ok;
}
