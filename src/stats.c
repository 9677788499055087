/*
 * stats.c - the store's figures: items and bytes summed over the stripes,
 * hits and misses, connections.  Read without locks: each counter is one
 * aligned word, and a sum that is a moment stale is good enough.
 */
#include <stdint.h>
#include <string.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

void
store_stats(struct store *st, struct store_stats *out)
{
	struct kv_header *h = st->hdr;
	struct kv_slot *slots = registry_slots(st);
	uint32_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < h->nstripes; i++) {
		struct kv_stripe *s = &stripes(st)[i];

		out->items += LOAD(&s->items);
		out->bytes_used += LOAD(&s->bytes);
		out->hits += s->hits;
		out->misses += s->misses;
		out->puts += s->puts;
		out->dels += s->dels;
		out->delete_misses += s->delete_misses;
		out->touch_hits += s->touch_hits;
		out->touch_misses += s->touch_misses;
		out->incr_hits += s->incr_hits;
		out->incr_misses += s->incr_misses;
		out->decr_hits += s->decr_hits;
		out->decr_misses += s->decr_misses;
		out->cas_hits += s->cas_hits;
		out->cas_misses += s->cas_misses;
		out->cas_badval += s->cas_badval;
		out->reclaimed += s->reclaimed;
		out->no_memory += s->no_memory;
		out->evictions += s->evictions;
		out->crawler_reclaimed += s->crawler_reclaimed;
		out->crawler_checked += s->crawler_checked;
		out->expired_unfetched += s->expired_unfetched;
	}
	out->cache_mode = h->cache_mode != 0;
	/* A process that died serving (SIGKILL, or exit 1 from fatal(), whose
	 * slot nobody finishes) counts nothing; the liveness check costs a
	 * syscall, and only for slots with connections. */
	for (i = 0; i < h->nslots; i++) {
		uint32_t pid = LOAD(&slots[i].pid), n;

		if (pid != 0 && (n = LOAD(&slots[i].conns)) != 0 &&
		    process_alive(st, pid))
			out->curr_connections += n;
	}
	out->bytes_limit = (uint64_t)h->npages * h->page_size;
	out->bytes_free = out->bytes_limit > out->bytes_used ?
	    out->bytes_limit - out->bytes_used : 0;
	out->total_connections = LOAD(&h->total_connections);
	out->auth_failures = LOAD(&h->auth_failures);
	out->rejected_connections = LOAD(&h->rejected);
	out->items_moved = LOAD(&h->moves);
	out->pages_moved = LOAD(&h->pages_moved);
	out->value_max = h->value_max;
	out->created = h->created;
}

/*
 * A connection taken, and one ended: total_connections, and the count in
 * this process's slot that curr_connections adds up.  Only the slot's
 * process writes it; store_stats() leaves a dead process's count out.
 */
void
store_note_connection(struct store *st)
{
	struct kv_slot *s;

	__atomic_add_fetch(&st->hdr->total_connections, 1, __ATOMIC_RELAXED);
	if (st->slot == 0)
		return;
	s = registry_slot(st);
	STORE(&s->conns, LOAD(&s->conns) + 1);
}

void
store_note_closed(struct store *st)
{
	struct kv_slot *s;

	if (st->slot == 0)
		return;
	s = registry_slot(st);
	if (LOAD(&s->conns) > 0)
		STORE(&s->conns, LOAD(&s->conns) - 1);
}

void
store_note_auth_failure(struct store *st)
{
	__atomic_add_fetch(&st->hdr->auth_failures, 1, __ATOMIC_RELAXED);
}

/* A connection turned away at a limit (-c, -H, -U). */
void
store_note_rejected(struct store *st)
{
	__atomic_add_fetch(&st->hdr->rejected, 1, __ATOMIC_RELAXED);
}

/*
 * The size classes, for memcached's "stats slabs": chunk size, the pages
 * the class holds now, its chunks freed and on its pages' lists, and those
 * not carved yet (memcached's free_chunks_end).  Under the alloc lock, so
 * the figures are of one moment; a walk of the page map.
 */
uint32_t
store_classes(struct store *st, struct store_class *out, uint32_t max)
{
	struct kv_header *h = st->hdr;
	uint32_t i, n = h->nclasses < max ? h->nclasses : max, p, cls;

	lock_acquire(st, &h->alloc_lock);
	for (i = 0; i < n; i++) {
		struct kv_class *c = &h->classes[i];

		out[i].size = c->size;
		out[i].chunks_per_page = h->page_size / c->size;
		out[i].pages = c->pages;
		out[i].used = c->used;
		out[i].free = 0;
		out[i].unused = 0;
		out[i].evicted = LOAD(&h->evicted[i]);
	}
	for (p = 0; p < h->next_page && p < h->npages; p++) {
		struct kv_page *pg = &pagemap(st)[p];

		if ((cls = pg->cls) < 1 || cls > n)
			continue;
		out[cls - 1].free += pg->carved - pg->used;
		out[cls - 1].unused += out[cls - 1].chunks_per_page -
		    pg->carved;
	}
	lock_release(st, &h->alloc_lock);
	return n;
}
