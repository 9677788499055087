/*
 * recover.c - finishing what dead processes left: recover the locks a dead
 * process held or was taking (lock.c replays their undo logs), complete the
 * bookkeeping of a write it had committed, and give back the chunk it had
 * taken but not published.
 */
#include <stdint.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

/*
 * Take and give back a lock the dead process may have held.  Not only when
 * it is still the recorded holder: a waiter that has just taken the lock
 * over from it may be replaying its undo log, which writes into its slot
 * (pending, final_*), and that must be done before the slot is finished.
 * lock_acquire() recovers the lock if the dead still holds it, and
 * otherwise waits for whoever holds it now.
 */
static void
take_over_if_dead(struct store *st, struct kv_lock *l, uint32_t dead)
{
	(void)dead;
	lock_acquire(st, l);
	lock_release(st, l);
}

/*
 * Finish a dead process's slot: recover every lock it held or was taking,
 * then complete its committed bookkeeping and give back its unpublished
 * chunk.  Safe to repeat; one reaper at a time per slot.
 */
void
store_finish_dead(struct store *st, struct kv_slot *s)
{
	struct kv_header *h = st->hdr;
	uint32_t dead = LOAD(&s->pid), r = LOAD(&s->reaper), want, i;

	if (dead == 0 || process_alive(st, dead))
		return;
	if (r != 0 && (r == st->pid || process_alive(st, r)))
		return;
	if (!CAS(&s->reaper, r, st->pid))
		return;
	/* The compaction lock only if it is the dead's: a live compactor may
	 * hold it for a while, and protects nothing of this slot. */
	if (LOAD(&h->compact_lock.holder) == dead)
		take_over_if_dead(st, &h->compact_lock, dead);
	take_over_if_dead(st, &h->alloc_lock, dead);
	take_over_if_dead(st, &h->users_lock, dead);
	for (i = 0; i < h->nstripes; i++)
		take_over_if_dead(st, &stripes(st)[i].lock, dead);
	if ((want = LOAD(&s->want)) != 0 && want < h->off_buckets) {
		/* It may have died in the entry window; acquiring finds out. */
		struct kv_lock *l = (struct kv_lock *)(void *)(st->base + want);

		lock_acquire(st, l);
		lock_release(st, l);
		STORE(&s->want, 0);
	}
	finish_write(st, s);
	drop_pending(st, s);
	drain_dead(st, dead);
	STORE(&s->conns, 0);
	STORE(&s->pid, 0);
}

/*
 * The master saw pid die abnormally: finish its slot now.  pid 0 finishes
 * every dead process's slot, for a start after processes died with no
 * master of ours watching (a killed master's children, inetd mode).
 */
void
store_reap(struct store *st, uint32_t pid)
{
	struct kv_slot *slots = registry_slots(st);
	uint32_t i, p;

	for (i = 0; i < st->hdr->nslots; i++)
		if ((p = LOAD(&slots[i].pid)) != 0 && (pid == 0 || p == pid))
			store_finish_dead(st, &slots[i]);
	/* Its connections' counts; at a start, every dead process's. */
	if (pid != 0)
		store_conn_forget(st, pid);
	else
		store_conn_sweep(st);
}
