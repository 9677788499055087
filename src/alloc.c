/*
 * alloc.c - the allocator: size classes, pages and chunks, under the alloc
 * lock.
 *
 * The arena is cut into pages of one size; a page, once carved for a size
 * class, stays with it (the page map records whose it is).  A class hands
 * out chunks from its free list first, then from the rest of its current
 * page, then from a fresh page.  A chunk taken for a write is recorded as
 * the process's pending chunk in the same commit, so a death before it is
 * published gives it back; the chunk a committed write replaced is freed
 * by finish_write(), exactly once, by the writer or whoever finishes its
 * slot (recover.c).
 */
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

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

static void
free_chunk(struct store *st, struct kv_lock *l, uint32_t ref)
{
	struct kv_item *it = item_at(st, ref);
	struct kv_class *c = &st->hdr->classes[it->cls];

	tx_set32(st, l, item_meta(it), meta_word(0, it->cls, ITEM_FREE));
	tx_set32(st, l, &it->next, c->free_head);
	tx_set32(st, l, &c->free_head, ref);
}

/*
 * Take a chunk for an item of the given size.  It is recorded as this
 * process's pending chunk in the same commit, so a death before it is
 * published gives it back (store_finish_dead()).
 */
int
alloc_chunk(struct store *st, size_t bytes, uint32_t *refp)
{
	struct kv_header *h = st->hdr;
	struct kv_lock *l = &h->alloc_lock;
	struct kv_slot *me = registry_slot(st);
	struct kv_class *c;
	uint32_t ref, step, p;
	int cls;

	if ((cls = class_for(st, bytes)) == -1)
		return ST_TOO_LARGE;
	c = &h->classes[cls];
	step = c->size / KV_ITEM_ALIGN;
	lock_acquire(st, l);
	if ((ref = c->free_head) != 0) {
		tx_set32(st, l, &c->free_head, item_at(st, ref)->next);
	} else if (c->bump != 0 && c->bump + step <= c->bump_end) {
		ref = c->bump;
		tx_set32(st, l, &c->bump, ref + step);
	} else if ((p = h->next_page) < h->npages) {
		ref = (uint32_t)((h->off_arena + (uint64_t)p * h->page_size) /
		    KV_ITEM_ALIGN);
		tx_set32(st, l, &h->next_page, p + 1);
		tx_set32(st, l, &pagemap(st)[p], (uint32_t)cls + 1);
		tx_set32(st, l, &c->bump, ref + step);
		tx_set32(st, l, &c->bump_end, ref + h->page_size /
		    KV_ITEM_ALIGN);
	} else {
		lock_release(st, l);
		return ST_FULL;
	}
	tx_set32(st, l, item_meta(item_at(st, ref)),
	    meta_word(0, (uint8_t)cls, ITEM_USED));
	tx_set32(st, l, &me->pending, ref);
	tx_commit(l);
	lock_release(st, l);
	*refp = ref;
	return ST_OK;
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
