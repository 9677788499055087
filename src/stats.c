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
	}
	for (i = 0; i < h->nslots; i++)
		if (LOAD(&slots[i].pid) != 0)
			out->curr_connections++;
	out->bytes_limit = (uint64_t)h->npages * h->page_size;
	out->bytes_free = out->bytes_limit > out->bytes_used ?
	    out->bytes_limit - out->bytes_used : 0;
	out->total_connections = LOAD(&h->total_connections);
	out->auth_failures = LOAD(&h->auth_failures);
	out->value_max = h->value_max;
	out->created = h->created;
}

void
store_note_connection(struct store *st)
{
	__atomic_add_fetch(&st->hdr->total_connections, 1, __ATOMIC_RELAXED);
}

void
store_note_auth_failure(struct store *st)
{
	__atomic_add_fetch(&st->hdr->auth_failures, 1, __ATOMIC_RELAXED);
}
