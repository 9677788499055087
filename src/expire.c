/*
 * expire.c - expired items reclaimed: by a write about to be refused, and by
 * the crawler, so that an item past its expiry (or covered by a delayed
 * flush_all that came due) neither fills the store nor counts against its
 * store's quota.
 *
 * Without this an absent item was unlinked only when its own key was
 * touched (reap_expired(), items.c).  A pass walks the table a stripe at a
 * time, each under its stripe lock only while its buckets are walked, and
 * unlinks every absent item through publish(), the crash-safe path of every
 * other delete: a process killed in a pass leaves a lock that the next taker
 * recovers and a slot that store_reap() finishes (recover.c).
 *
 * The bound.  The header's exp_next is a lower bound on the expiry of every
 * linked item and on the time of every pending delayed flush: every write
 * of an expiry lowers it (note_expiry(): under the item's stripe lock, or
 * right after a delayed flush's time is stored), and only a pass over the
 * whole table raises it, to what it found.
 * While exp_next lies in the future nothing linked is absent, so a refused
 * write costs one load, not a walk: a refused write walks the table (O(items
 * + buckets), a stripe lock at a time) only when some expiry has come due
 * since the last pass, and only one such walk a second in the whole
 * segment (exp_sync): any client can bring an expiry due (an expiry of 0
 * seconds, an immediate flush_all), and a write refused for quota or room
 * must not buy a walk of the whole table every time.  The crawler reclaims
 * the rest within its budget.  A pass raises the bound through
 * one of the header's KV_EXP_PASSES claims: a claim's low is lowered by
 * every expiry written while the pass runs, so an item written behind the
 * pass, in a stripe it has walked, is not missed.  A pass that finds no
 * free claim still reclaims, and leaves the bound as it was.
 *
 * The crawler (kvstored's helper process, master.c) makes the same pass in
 * small steps, store_crawl(): a few stripes at a time, a tick apart, so that
 * its cost per second is bounded (kvstored(8)); it does nothing while the
 * bound lies in the future.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

#define EXP_NONE	UINT32_MAX	/* nothing known to expire */

void	(*store_test_crawl)(void);

static void
lower(uint32_t *w, uint32_t t)
{
	uint32_t cur = LOAD(w);

	while (t < cur && !CAS(w, cur, t))
		;
}

/*
 * An expiry (or a delayed flush's time) is written: lower the bound and
 * every pass's low, the lows first, so that a pass publishing its bound
 * either sees this one in its low or has its compare-and-swap beaten.
 */
void
note_expiry(struct store *st, uint32_t t)
{
	struct kv_header *h = st->hdr;
	int i;

	if (t == 0)
		return;
	for (i = 0; i < KV_EXP_PASSES; i++)
		lower(&h->exp_pass[i].low, t);
	lower(&h->exp_next, t);
}

static int
exp_due(struct store *st, uint32_t now)
{
	return LOAD(&st->hdr->exp_next) <= now;
}

/* One of the header's claims, free or its process dead; -1 if none. */
static int
pass_claim(struct store *st)
{
	struct kv_exp_pass *x = st->hdr->exp_pass;
	uint32_t p;
	int i;

	for (i = 0; i < KV_EXP_PASSES; i++) {
		p = LOAD(&x[i].pid);
		if (p != 0 && (p == st->pid || process_alive(st, p)))
			continue;
		if (CAS(&x[i].pid, p, st->pid)) {
			STORE(&x[i].low, EXP_NONE);
			return i;
		}
	}
	return -1;
}

/*
 * Start a pass: claim, then settle the delayed flushes that came due (so
 * their items are found absent from the first stripe on) and note the
 * time of those still pending, which the walk cannot see.
 */
static void
pass_begin(struct store *st, struct store_crawl *p, uint32_t now)
{
	struct kv_user *u = users(st);
	uint32_t i;
	int64_t at;

	memset(p, 0, sizeof(*p));
	p->slot = pass_claim(st);
	p->low = EXP_NONE;
	p->now = now;
	p->active = 1;
	for (i = 0; i < st->hdr->nusers; i++) {
		if ((at = LOAD(&u[i].flush_at)) == 0)
			continue;
		if (at <= (int64_t)now)
			(void)flush_mark(st, i + 1, now);
		else if (at < (int64_t)p->low)
			p->low = (uint32_t)at;
	}
}

/* The walk is done: raise the bound to what it found, give the claim back. */
static void
pass_end(struct store *st, struct store_crawl *p)
{
	struct kv_header *h = st->hdr;
	uint32_t cur, low, nw;

	p->active = 0;
	if (p->slot < 0)
		return;
	for (;;) {
		cur = LOAD(&h->exp_next);
		low = LOAD(&h->exp_pass[p->slot].low);
		nw = p->low < low ? p->low : low;
		if (nw <= cur || CAS(&h->exp_next, cur, nw))
			break;
	}
	STORE(&h->exp_pass[p->slot].pid, 0);
	p->slot = -1;
}

/*
 * Walk one stripe under its lock: unlink the absent items, note the
 * earliest expiry of those left.  Returns the items looked at.
 */
static uint32_t
reclaim_stripe(struct store *st, uint32_t s, struct store_crawl *p, int crawler)
{
	struct kv_header *h = st->hdr;
	struct kv_item *it;
	struct found f;
	uint32_t b, ref, n = 0, owner;
	int gone;

	f.stripe = &stripes(st)[s];
	lock_acquire(st, &f.stripe->lock);
	for (b = s; b < h->nbuckets; b += h->nstripes) {
		f.link = &buckets(st)[b];
		while ((ref = *f.link) != 0) {
			it = item_at(st, ref);
			n++;
			gone = expired(it, p->now);
			if (!gone && it->cas > flush_mark(st, it->user, p->now)) {
				if (it->exptime != 0 && it->exptime < p->low)
					p->low = it->exptime;
				f.link = &it->next;
				continue;
			}
			f.stripe->reclaimed++;
			if (crawler)
				f.stripe->crawler_reclaimed++;
			if (gone && !(LOAD(&it->pad) & ITEM_META_FETCHED))
				f.stripe->expired_unfetched++;
			owner = it->user;
			if (owner == p->user)
				p->freed_user++;
			p->freed++;
			f.item = it;
			publish(st, &f, owner, 0);
			if (crawler && store_test_crawl != NULL)
				store_test_crawl();
		}
	}
	if (crawler)
		f.stripe->crawler_checked += n;
	lock_release(st, &f.stripe->lock);
	return n;
}

/*
 * Before a write is refused (room.c): if anything may have come due, one
 * pass over the whole table.  Returns the items reclaimed; *mine those of
 * user (0: none).
 */
uint64_t
reclaim_expired(struct store *st, uint32_t user, uint64_t *mine)
{
	struct store_crawl p;
	uint32_t s, now = (uint32_t)time(NULL);

	uint32_t last;

	*mine = 0;
	if (!exp_due(st, now))
		return 0;
	/* One refused write's pass a second, whoever refused it. */
	last = LOAD(&st->hdr->exp_sync);
	if (last >= now || !CAS(&st->hdr->exp_sync, last, now))
		return 0;
	pass_begin(st, &p, now);
	p.user = user;
	for (s = 0; s < st->hdr->nstripes; s++)
		(void)reclaim_stripe(st, s, &p, 0);
	pass_end(st, &p);
	*mine = p.freed_user;
	return p.freed;
}

void
store_crawl_init(struct store_crawl *c)
{
	memset(c, 0, sizeof(*c));
	c->slot = -1;
}

/*
 * One step of the crawler's pass: from where the last step stopped, walk
 * stripes until max_stripes are walked or max_items looked at, whichever
 * comes first (a stripe is walked whole).  A pass starts only when the
 * bound says something came due.  Returns the stripes walked, 0 when
 * there was nothing to do.
 */
uint32_t
store_crawl(struct store *st, struct store_crawl *c, uint32_t max_stripes,
    uint32_t max_items)
{
	uint32_t now = (uint32_t)time(NULL), done = 0, seen = 0;
	uint32_t cursor;

	if (!c->active) {
		if (!exp_due(st, now))
			return 0;
		pass_begin(st, c, now);
	}
	c->now = now;
	c->user = 0;
	cursor = c->cursor;
	while (cursor < st->hdr->nstripes && done < max_stripes &&
	    seen < max_items) {
		seen += reclaim_stripe(st, cursor++, c, 1);
		done++;
	}
	c->cursor = cursor;
	if (cursor >= st->hdr->nstripes)
		pass_end(st, c);
	return done;
}

/* The crawler is stopping: give its claim back. */
void
store_crawl_end(struct store *st, struct store_crawl *c)
{
	if (c->active && c->slot >= 0)
		STORE(&st->hdr->exp_pass[c->slot].pid, 0);
	store_crawl_init(c);
}
