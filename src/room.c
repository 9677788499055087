/*
 * room.c - what the store does before it refuses a write: a write that
 * found no free chunk of its size (ST_FULL), or its store at its quota
 * (ST_QUOTA), calls make_room() with no stripe held and is tried once more
 * if it says it freed something.
 */
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "store.h"
#include "store_impl.h"

/*
 * Free what may be freed for a write of need bytes by user that was
 * refused with why; 1 if anything was, so the write is worth a retry.
 */
int
make_room(struct store *st, uint32_t user, size_t need, int why)
{
	uint64_t all, mine;

	/* Expired items first (expire.c): they are absent already.  Under a
	 * quota only the writer's own count. */
	all = reclaim_expired(st, user, &mine);
	if (why == ST_QUOTA)
		return mine > 0 || (st->hdr->cache_mode &&
		    evict_for(st, user, need, why));
	/* Still no chunk of its class and no empty page: empty one
	 * (alloc.c; it says whether the class has room, whoever made it). */
	if (why == ST_FULL && compact(st, need))
		return 1;
	/* A cache evicts (evict.c) for what neither gave back. */
	if (st->hdr->cache_mode && evict_for(st, user, need, why))
		return 1;
	return all > 0;
}
