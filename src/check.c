/*
 * check.c - the checker (kvstorectl check, the tests, the fuzzer): verify
 * every invariant of the segment and report what does not hold.
 *
 * It takes one stripe at a time, then the alloc lock alone, so a writer
 * waits for one stripe's walk at most, and a checker stopped between
 * stripes (Ctrl-Z, SIGSTOP) holds nothing.  It changes nothing, except that
 * it recovers the locks of dead holders it meets, as any process would.
 * Every chunk it meets is marked in a map of the arena, so a chunk
 * reachable twice (two chains, a chain and a free list) is found, and at
 * the end every chunk handed out must be in a chain, pending in a
 * process's slot, or left to free by a dead one.
 *
 * What a walk a stripe at a time can check while others write:
 *   - under each stripe's lock, exactly: every chain of the stripe (chunk
 *     references, item headers and lengths, hash against bucket, owner,
 *     a chain that loops back on itself), the stripe's counters against
 *     its chains, no open transaction;
 *   - under the alloc lock, exactly: the allocator (alloc.c): every page's
 *     free list (its own chunks, marked free) and, with its count of
 *     chunks handed out, all it carved; every class's
 *     list of partly-free pages (its own, linked both ways, each partly
 *     free page on it but the one being emptied) and its page and chunk
 *     counts; the pool (empty pages in no class, every one of them); no
 *     open transaction.
 * What it cannot, unless the store held still: anything that adds up
 * several stripes, or stripes and free lists, as of one moment: a chunk
 * seen twice (a writer may have freed it from a stripe already walked and
 * reused it in one not yet walked), each account's key and byte counts
 * against its items, chunks handed out against chunks found.  So those
 * findings are held back, and reported only for a walk during which the
 * store did not change: every change of a chain or a chunk goes through
 * the alloc lock (an allocation, or the bookkeeping after a commit, which
 * runs before the writer lets go of its stripe), so the alloc lock taken
 * no more often than by the checker itself between the start and the end
 * of the walk, no live writer between a commit and its bookkeeping, and
 * no stripe in an open transaction at the end mean nothing moved.  A walk
 * that saw changes is done again, up to CHECK_WALKS times; with no writers
 * the first one holds still, and the checker finds all it did when it held
 * every lock for the walk.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore.h"
#include "layout.h"
#include "lock.h"
#include "log.h"
#include "store.h"
#include "store_impl.h"

#define CHECK_WALKS	3	/* walks before giving up on a still moment */
#define CHECK_HELD	50	/* held-back findings kept to report */

struct check {
	struct store	*st;
	FILE		*out;
	unsigned	 errors;
	unsigned	 nheld;		/* findings that need a still store */
	char		 held[CHECK_HELD][160];
	uint64_t	*ukeys;		/* items found per user id */
	uint64_t	*ubytes;	/* chunk bytes found per user id */
	uint8_t		*seen;		/* a byte per 8-byte unit of arena */
	uint32_t	 max_steps;	/* more steps in one list: it loops */
	uint64_t	 live;		/* items in chains */
	uint64_t	 nfree;		/* chunks on the pages' free lists */
	uint64_t	 nfinal;	/* chunks a dead writer left to free */
	uint32_t	 held_pages;	/* pages held by classes */
	uint8_t		*listed;	/* a byte per page: met on a list */
};

static void
complain(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
complain(struct check *c, const char *fmt, ...)
{
	va_list ap;

	c->errors++;
	if (c->out == NULL || c->errors > 50)
		return;
	va_start(ap, fmt);
	fputs("check: ", c->out);
	vfprintf(c->out, fmt, ap);
	fputc('\n', c->out);
	va_end(ap);
}

/* A finding that holds only if the store did not change during the walk. */
static void
hold(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hold(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->nheld < CHECK_HELD) {
		va_start(ap, fmt);
		vsnprintf(c->held[c->nheld], sizeof(c->held[0]), fmt, ap);
		va_end(ap);
	}
	c->nheld++;
}

/* The walk held still: what was held back is so. */
static void
report_held(struct check *c)
{
	unsigned i;

	for (i = 0; i < c->nheld; i++) {
		if (i < CHECK_HELD)
			complain(c, "%s", c->held[i]);
		else
			complain(c, "(and more of the same kind)");
	}
	c->nheld = 0;
}

/* Is ref the start of a chunk carved in a page of a class?  Its class or
 * -1. */
static int
chunk_class(struct store *st, uint32_t ref)
{
	struct kv_header *h = st->hdr;
	uint64_t off = (uint64_t)ref * KV_ITEM_ALIGN, in;
	uint32_t page, cls, size;

	if (off < h->off_arena)
		return -1;
	page = (uint32_t)((off - h->off_arena) / h->page_size);
	if (page >= h->next_page || page >= h->npages)
		return -1;
	cls = LOAD(&pagemap(st)[page].cls);
	if (cls == 0 || cls > h->nclasses)
		return -1;
	cls--;
	size = h->classes[cls].size;
	in = (off - h->off_arena) % h->page_size;
	if (in % size != 0 || in + size > h->page_size ||
	    in / size >= LOAD(&pagemap(st)[page].carved))
		return -1;
	return (int)cls;
}

static uint32_t
chunk_index(struct store *st, uint32_t ref)
{
	return (uint32_t)(((uint64_t)ref * KV_ITEM_ALIGN - st->hdr->off_arena) /
	    KV_ITEM_ALIGN);
}

/*
 * Mark a chunk met on a list as seen: 0, or -1 when the list is longer
 * than the arena can hold (it loops), or 1 when the chunk was met before.
 */
static int
mark_seen(struct check *c, uint32_t ref, uint32_t *steps)
{
	uint32_t at = chunk_index(c->st, ref);

	if (++*steps > c->max_steps)
		return -1;
	if (c->seen[at])
		return 1;
	c->seen[at] = 1;
	return 0;
}

/* Is ref among the first n links of the chain at head?  (A loop.) */
static int
check_in_chain(struct store *st, uint32_t head, uint32_t ref, uint32_t n)
{
	for (; head != 0 && n > 0; head = item_at(st, head)->next, n--)
		if (head == ref)
			return 1;
	return 0;
}

/* Mark a chunk as accounted for once; 1 when it had not been seen. */
static int
mark_once(struct check *c, uint32_t ref)
{
	uint32_t at;

	if (chunk_class(c->st, ref) == -1)
		return 0;
	at = chunk_index(c->st, ref);
	if (c->seen[at])
		return 0;
	c->seen[at] = 1;
	return 1;
}

/*
 * One item in bucket b's chain: its header, lengths, hash and owner.
 * Returns 1 when it counts towards its stripe, 0 when its lengths are too
 * broken to read it further.
 */
static int
check_item(struct check *c, uint32_t b, uint32_t ref, int cls)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	struct kv_item *it = item_at(st, ref);
	uint64_t hv;

	if (it->state != ITEM_USED || it->cls != cls)
		complain(c, "item %u: state %#x class %u, expected used "
		    "class %d", ref, it->state, it->cls, cls);
	if (it->klen == 0 || it->klen > KV_KEY_MAX ||
	    it->vlen > h->value_max ||
	    ITEM_HDR + it->klen + (uint64_t)it->vlen > h->classes[cls].size) {
		complain(c, "item %u: lengths %u+%u do not fit", ref,
		    it->klen, it->vlen);
		return 0;
	}
	hv = hash_key(st, it->user, it->data, it->klen);
	if ((uint32_t)(hv >> 32) != it->hash ||
	    ((uint32_t)hv & (h->nbuckets - 1)) != b)
		complain(c, "item %u: hash does not match bucket %u", ref, b);
	if (it->user == 0 || it->user > h->nusers)
		complain(c, "item %u: bad user %u", ref, it->user);
	else {
		c->ukeys[it->user]++;
		c->ubytes[it->user] += h->classes[cls].size;
	}
	return 1;
}

/*
 * Walk bucket b's chain, adding what it holds to items and bytes.  Returns
 * 1 when it stopped at a chunk met before in another list: then the sums
 * are short, and worth comparing only if the store held still.
 */
static int
check_chain(struct check *c, uint32_t b, uint64_t *items, uint64_t *bytes)
{
	struct store *st = c->st;
	uint32_t ref, steps = 0;
	int cls;

	for (ref = buckets(st)[b]; ref != 0; ref = item_at(st, ref)->next) {
		if ((cls = chunk_class(st, ref)) == -1) {
			complain(c, "bucket %u: ref %u is not a chunk", b, ref);
			break;
		}
		switch (mark_seen(c, ref, &steps)) {
		case 0:
			break;
		case 1:
			/* In this chain: under our lock, it loops.  Elsewhere:
			 * maybe moved there since, if others wrote. */
			if (check_in_chain(st, buckets(st)[b], ref,
			    steps - 1)) {
				complain(c, "bucket %u: chain loops or shares "
				    "ref %u", b, ref);
				return 0;
			}
			hold(c, "bucket %u: chain loops or shares ref %u", b,
			    ref);
			return 1;
		default:
			complain(c, "bucket %u: chain loops or shares ref %u",
			    b, ref);
			return 0;
		}
		if (check_item(c, b, ref, cls)) {
			(*items)++;
			*bytes += st->hdr->classes[cls].size;
		}
	}
	return 0;
}

/* One stripe's chains against its counters, under its lock. */
static void
check_stripe(struct check *c, uint32_t s)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	struct kv_stripe *sp = &stripes(st)[s];
	uint64_t items = 0, bytes = 0;
	uint32_t b;
	int cut = 0;

	lock_acquire(st, &sp->lock);
	for (b = s; b < h->nbuckets; b += h->nstripes)
		cut |= check_chain(c, b, &items, &bytes);
	if (items != sp->items || bytes != sp->bytes)
		(cut ? hold : complain)(c, "stripe %u: counts %" PRIu64 "/%"
		    PRIu64 " items/bytes, found %" PRIu64 "/%" PRIu64, s,
		    sp->items, sp->bytes, items, bytes);
	if (sp->lock.nlog != 0)
		complain(c, "stripe %u: open transaction", s);
	lock_release(st, &sp->lock);
	c->live += items;
}

/* Every stripe, one at a time. */
static void
check_stripes(struct check *c)
{
	uint32_t s, n = c->st->hdr->nstripes;

	for (s = 0; s < n; s++) {
		check_stripe(c, s);
		if (store_test_stripe != NULL)
			store_test_stripe(s + 1, n);
	}
}

/*
 * Page p's free list, under the alloc lock: its own chunks, marked free,
 * met once; with its chunks handed out, all it has carved.  (The chunks
 * handed out are not read here: that would hold the alloc lock for a walk
 * of the whole arena.  Those in chains are checked under their stripes.)
 */
static void
check_page_chunks(struct check *c, uint32_t p, uint32_t cls)
{
	struct store *st = c->st;
	struct kv_page *pg = &pagemap(st)[p];
	uint32_t size = st->hdr->classes[cls].size;
	uint32_t head = pg->free_head, ref, steps = 0, n = 0;

	for (ref = head; ref != 0; ref = item_at(st, ref)->next) {
		if (chunk_class(st, ref) != (int)cls || page_of(st, ref) != p) {
			complain(c, "page %u: free ref %u is not its chunk", p,
			    ref);
			return;
		}
		switch (mark_seen(c, ref, &steps)) {
		case 0:
			break;
		case 1:
			/* Twice in this list: it loops.  In a chain too:
			 * maybe freed from a stripe walked before, if others
			 * wrote. */
			if (check_in_chain(st, head, ref, steps - 1))
				complain(c, "page %u: free chunk %u is also "
				    "in use or listed twice", p, ref);
			else
				hold(c, "page %u: free chunk %u is also in "
				    "use or listed twice", p, ref);
			return;
		default:
			complain(c, "page %u: free chunk %u is also in use or "
			    "listed twice", p, ref);
			return;
		}
		if (item_at(st, ref)->state != ITEM_FREE)
			complain(c, "page %u: free chunk %u not marked free",
			    p, ref);
		n++;
	}
	c->nfree += n;
	if (pg->carved > st->hdr->page_size / size ||
	    pg->used + n != pg->carved)
		complain(c, "page %u: %u chunks handed out and %u free, %u "
		    "carved", p, pg->used, n, pg->carved);
}

/* Class i's list of partly-free pages: its own, linked both ways, once. */
static void
check_class_list(struct check *c, uint32_t i)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	uint32_t p, prev = 0, steps = 0, per = h->page_size /
	    h->classes[i].size;

	for (p = h->classes[i].partial; p != 0; p = pagemap(st)[p - 1].next) {
		struct kv_page *pg;

		if (p > h->next_page || ++steps > h->npages ||
		    c->listed[p - 1]) {
			complain(c, "class %u: page list loops or leaves the "
			    "pages in use at %u", i, p);
			return;
		}
		c->listed[p - 1] = 1;
		pg = &pagemap(st)[p - 1];
		if (pg->cls != i + 1 || pg->prev != prev ||
		    pg->used >= per || h->draining == p)
			complain(c, "class %u: page %u on its list is class %u, "
			    "after %u not %u, %u of %u chunks handed out%s", i,
			    p - 1, pg->cls, pg->prev, prev, pg->used, per,
			    h->draining == p ? ", being emptied" : "");
		prev = p;
	}
}

/* The pool: pages in no class, nothing handed out, once. */
static void
check_pool(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	uint32_t p, steps = 0;

	for (p = h->pool; p != 0; p = pagemap(st)[p - 1].next) {
		if (p > h->next_page || ++steps > h->npages ||
		    c->listed[p - 1]) {
			complain(c, "pool: list loops or leaves the pages in "
			    "use at %u", p);
			return;
		}
		c->listed[p - 1] = 1;
		if (pagemap(st)[p - 1].cls != 0)
			complain(c, "pool: page %u belongs to class %u", p - 1,
			    pagemap(st)[p - 1].cls - 1);
	}
}

/*
 * The allocator, under the alloc lock: each page's chunks, each class's
 * list and counters, the pool; every page on the list it should be on.
 */
static void
check_alloc(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	uint64_t pages[KV_CLASSES_MAX], used[KV_CLASSES_MAX];
	uint32_t i, p;

	memset(pages, 0, sizeof(pages));
	memset(used, 0, sizeof(used));
	memset(c->listed, 0, h->npages);
	c->held_pages = 0;
	for (i = 0; i < h->nclasses; i++)
		check_class_list(c, i);
	check_pool(c);
	if (h->draining != 0 && (h->draining > h->next_page ||
	    pagemap(st)[h->draining - 1].cls == 0))
		complain(c, "page %u being emptied is in no class",
		    h->draining - 1);
	for (p = 0; p < h->next_page && p < h->npages; p++) {
		struct kv_page *pg = &pagemap(st)[p];
		uint32_t per;

		if (pg->cls == 0) {
			if (!c->listed[p])
				complain(c, "page %u: empty, not in the pool",
				    p);
			continue;
		}
		if (pg->cls > h->nclasses) {
			complain(c, "page %u: bad class %u", p, pg->cls - 1);
			continue;
		}
		c->held_pages++;
		pages[pg->cls - 1]++;
		used[pg->cls - 1] += pg->used;
		per = h->page_size / h->classes[pg->cls - 1].size;
		if (pg->used == 0)
			complain(c, "page %u: class %u holds it empty", p,
			    pg->cls - 1);
		if (pg->used < per && h->draining != p + 1 && !c->listed[p])
			complain(c, "page %u: partly free, not on class %u's "
			    "list", p, pg->cls - 1);
		check_page_chunks(c, p, pg->cls - 1);
	}
	for (i = 0; i < h->nclasses; i++)
		if (h->classes[i].pages != pages[i] ||
		    h->classes[i].used != used[i])
			complain(c, "class %u: counts %u/%u pages/chunks, found "
			    "%" PRIu64 "/%" PRIu64, i, h->classes[i].pages,
			    h->classes[i].used, pages[i], used[i]);
}

/*
 * Under the alloc lock, at the end of a walk: is a writer half way through
 * a change the walk may have seen in part?  A live process between a
 * commit and its bookkeeping (it waits for our alloc lock), or any stripe
 * in an open transaction (its holder, alive or not, began after we walked
 * that stripe: we hold none now, and would have recovered a dead one).
 */
static int
check_in_flight(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	struct kv_slot *slots = registry_slots(st);
	uint32_t i;

	for (i = 0; i < h->nslots; i++) {
		uint32_t pid = LOAD(&slots[i].pid);

		if (pid != 0 && pid != st->pid && LOAD(&slots[i].final_valid) &&
		    process_alive(st, pid))
			return 1;
	}
	for (i = 0; i < h->nstripes; i++)
		if (LOAD(&stripes(st)[i].lock.holder) != 0 &&
		    LOAD(&stripes(st)[i].lock.nlog) != 0)
			return 1;
	return 0;
}

/*
 * A process that died between a write's commit and its bookkeeping
 * (finish_write()) left the old chunk to free and the owner's counters to
 * move in its slot, for store_finish_dead(): count them as done.  A live
 * one in that window makes the walk not still (check_in_flight()).
 */
static void
count_unfinished(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	struct kv_slot *slots = registry_slots(st);
	uint32_t i;

	for (i = 0; i < h->nslots; i++) {
		struct kv_slot *sl = &slots[i];
		uint32_t old = sl->final_old, fu = sl->final_user;

		if (sl->pid == 0 || !sl->final_valid ||
		    process_alive(st, sl->pid))
			continue;
		if (old != 0 && mark_once(c, old))
			c->nfinal++;
		if (fu >= 1 && fu <= h->nusers) {
			c->ukeys[fu] -= (uint64_t)sl->final_dkeys;
			c->ubytes[fu] -= (uint64_t)sl->final_dbytes;
		}
	}
}

/* Every account's counters against what the chains hold. */
static void
check_users(struct check *c)
{
	struct store *st = c->st;
	uint32_t i, holding = 0;

	for (i = 1; i <= st->hdr->nusers; i++) {
		struct kv_user *u = &users(st)[i - 1];

		if (c->ukeys[i] != 0)
			holding++;
		if (u->state == USER_EMPTY && c->ukeys[i] == 0)
			continue;
		if (u->keys != c->ukeys[i] || u->bytes != c->ubytes[i])
			complain(c, "user %u (%.*s): counts %" PRIu64 "/%"
			    PRIu64 ", found %" PRIu64 "/%" PRIu64, i,
			    KV_USER_MAX, u->name, u->keys, u->bytes,
			    c->ukeys[i], c->ubytes[i]);
	}
	if (st->hdr->stores_inuse != holding)
		complain(c, "stores holding items: counted %u, found %u",
		    st->hdr->stores_inuse, holding);
}

/*
 * An account being deleted is a userdel at work, or one that was killed:
 * then its items stay, its name is taken, and only another userdel of the
 * name finishes the job.
 */
static void
check_deleting(struct check *c)
{
	struct store *st = c->st;
	uint32_t i;

	for (i = 1; i <= st->hdr->nusers; i++) {
		struct kv_user *u = &users(st)[i - 1];
		uint32_t pid = LOAD(&u->deleter);

		if (LOAD(&u->state) != USER_DELETING)
			continue;
		if (process_alive(st, pid)) {
			if (c->out != NULL)
				fprintf(c->out, "check: user %u (%.*s): being "
				    "deleted by pid %u\n", i, KV_USER_MAX,
				    u->name, pid);
			continue;
		}
		complain(c, "user %u (%.*s): left being deleted by an "
		    "interrupted userdel, %" PRIu64 " items to go: finish it "
		    "with kvstorectl userdel %.*s", i, KV_USER_MAX, u->name,
		    LOAD(&u->keys), KV_USER_MAX, u->name);
	}
}

/*
 * The accounts' own structures, under the users lock (accounts change only
 * under it, so this part is exact whatever else moves): the count for -N,
 * the slots above the high-water mark, the free list, and the name index,
 * where every account that is not empty is found by its name at its slot,
 * once, and every other entry is empty or a tombstone.
 */
static void
check_names(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	struct kv_lock *l = &h->users_lock;
	uint32_t *e, i, at, id, v, live = 0, used = 0, nfree = 0, tombs = 0;
	uint32_t mask = h->names_mask;
	uint8_t *mark;
	uint64_t hv;

	if ((mark = calloc((size_t)h->nusers + 1, 1)) == NULL)
		fatal("calloc");
	lock_acquire(st, l);
	if (h->names_gen & 1) {
		if (c->out != NULL)
			fprintf(c->out, "check: name index: a rebuild was cut "
			    "short; the next change of an account redoes it\n");
		goto out;
	}
	if (h->users_hwm > h->nusers)
		complain(c, "accounts: high-water mark %u beyond %u slots",
		    h->users_hwm, h->nusers);
	for (i = 1; i <= h->nusers; i++) {
		uint32_t state = users(st)[i - 1].state;

		if (state == USER_ACTIVE)
			live++;
		if (state != USER_EMPTY) {
			used++;
			if (i > h->users_hwm)
				complain(c, "user %u: in use above the high-water "
				    "mark %u", i, h->users_hwm);
		}
	}
	if (live != h->users_live)
		complain(c, "accounts: %u active, counted %u", live,
		    h->users_live);
	for (id = h->users_free; id != 0; id = users(st)[id - 1].next_free) {
		if (id > h->users_hwm || mark[id] ||
		    users(st)[id - 1].state != USER_EMPTY) {
			complain(c, "accounts: free list has slot %u, which is "
			    "%s", id, id > h->users_hwm ? "above the mark" :
			    mark[id] ? "listed twice" : "in use");
			break;
		}
		mark[id] = 1;
		nfree++;
	}
	if (h->users_hwm <= h->nusers && nfree != h->users_hwm - used)
		complain(c, "accounts: %u free slots listed, %u empty below "
		    "the mark", nfree, h->users_hwm - used);
	memset(mark, 0, (size_t)h->nusers + 1);
	e = names(st);
	for (i = 0; i <= mask; i++) {
		struct kv_user *u;

		if ((v = e[i]) == NAME_EMPTY)
			continue;
		if (v == NAME_TOMB) {
			tombs++;
			continue;
		}
		id = v & NAME_ID_MASK;
		if (id == 0 || id > h->nusers ||
		    (u = &users(st)[id - 1])->state == USER_EMPTY) {
			complain(c, "name index: entry %u names slot %u, which "
			    "is not an account", i, id);
			continue;
		}
		hv = name_hash(st, u->name, strnlen(u->name, KV_USER_MAX));
		if (mark[id])
			complain(c, "name index: user %u (%.*s) is in it twice",
			    id, KV_USER_MAX, u->name);
		mark[id] = 1;
		if (name_tag(hv) != (v & ~NAME_ID_MASK))
			complain(c, "name index: entry %u for user %u (%.*s) "
			    "has another name's hash", i, id, KV_USER_MAX,
			    u->name);
		/* Reachable: no empty entry between its home and it. */
		for (at = (uint32_t)hv & mask; at != i && e[at] != NAME_EMPTY;
		    at = (at + 1) & mask)
			;
		if (at != i)
			complain(c, "name index: user %u (%.*s) is beyond an "
			    "empty entry of its probe", id, KV_USER_MAX,
			    u->name);
	}
	if (tombs != h->names_tombs)
		complain(c, "name index: %u tombstones, counted %u", tombs,
		    h->names_tombs);
	for (i = 1; i <= h->nusers; i++)
		if (users(st)[i - 1].state != USER_EMPTY && !mark[i])
			complain(c, "user %u (%.*s): not in the name index", i,
			    KV_USER_MAX, users(st)[i - 1].name);
out:
	lock_release(st, l);
	free(mark);
}

/* Every chunk handed out is in a chain, on a free list, or pending. */
/* Every chunk handed out is in a chain, pending, or left to free. */
static void
check_carved(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	struct kv_slot *slots = registry_slots(st);
	uint64_t used = 0, pending = 0;
	uint32_t i;

	for (i = 0; i < h->nslots; i++) {
		uint32_t p = slots[i].pending;

		if (slots[i].pid == 0 || p == 0)
			continue;
		if (mark_once(c, p))
			pending++;
	}
	for (i = 0; i < h->nclasses; i++)
		used += h->classes[i].used;
	if (used != c->live + c->nfinal + pending)
		complain(c, "%" PRIu64 " chunks handed out, %" PRIu64
		    " in use, %" PRIu64 " to free, %" PRIu64 " pending: %"
		    PRId64 " lost", used, c->live, c->nfinal, pending,
		    (int64_t)(used - c->live - c->nfinal - pending));
}

/* The alloc lock's acquisitions so far (ours included). */
static uint32_t
check_alloc_seq(struct store *st)
{
	uint32_t seq;

	lock_acquire(st, &st->hdr->alloc_lock);
	seq = st->hdr->alloc_lock.seq;
	lock_release(st, &st->hdr->alloc_lock);
	return seq;
}

/*
 * One walk: the stripes one at a time, then the alloc lock's side.  Returns
 * 1 when the store held still for it (and everything was checked), 0 when
 * it changed, and what needs a still store was not reported.
 */
static int
check_walk(struct check *c)
{
	struct store *st = c->st;
	struct kv_header *h = st->hdr;
	uint32_t before;
	int still;

	before = check_alloc_seq(st);
	check_stripes(c);
	lock_acquire(st, &h->alloc_lock);
	still = h->alloc_lock.seq == before + 1 && !check_in_flight(c);
	check_alloc(c);
	if (h->alloc_lock.nlog != 0)
		complain(c, "alloc: open transaction");
	if (still) {
		count_unfinished(c);
		report_held(c);
		check_users(c);
		check_carved(c);
	}
	lock_release(st, &h->alloc_lock);
	return still;
}

/* Forget what a walk found, for the next. */
static void
check_reset(struct check *c, uint64_t arena_units)
{
	struct kv_header *h = c->st->hdr;

	memset(c->ukeys, 0, (h->nusers + 1) * sizeof(*c->ukeys));
	memset(c->ubytes, 0, (h->nusers + 1) * sizeof(*c->ubytes));
	memset(c->seen, 0, arena_units);
	c->live = c->nfree = c->nfinal = 0;
	c->nheld = 0;
}

int
store_check(struct store *st, FILE *out)
{
	struct kv_header *h = st->hdr;
	struct check c = { .st = st, .out = out };
	uint64_t arena_units;
	int walks, still = 0;

	if (h->magic != KV_MAGIC || h->version != KV_LAYOUT_VERSION ||
	    h->abi != KV_ABI || !h->ready) {
		complain(&c, "bad header");
		return 1;
	}
	if (h->next_page > h->npages)
		complain(&c, "next_page %u beyond %u pages", h->next_page,
		    h->npages);
	arena_units = (uint64_t)h->npages * h->page_size / KV_ITEM_ALIGN;
	c.ukeys = calloc(h->nusers + 1, sizeof(*c.ukeys));
	c.ubytes = calloc(h->nusers + 1, sizeof(*c.ubytes));
	c.seen = calloc(arena_units, 1);
	c.listed = calloc(h->npages, 1);
	if (c.ukeys == NULL || c.ubytes == NULL || c.seen == NULL ||
	    c.listed == NULL)
		fatal("calloc");
	c.max_steps = (uint32_t)(arena_units / (ITEM_HDR / KV_ITEM_ALIGN)) + 1;

	/* Walk again while the store moved under us and nothing is wrong
	 * yet; a certain error is reported whatever moved. */
	for (walks = 1; ; walks++) {
		still = check_walk(&c);
		if (still || c.errors != 0 || walks == CHECK_WALKS)
			break;
		check_reset(&c, arena_units);
	}
	/* The users lock first: taking it undoes what a dead holder left
	 * half done, which check_deleting() then sees as it is. */
	check_names(&c);
	check_deleting(&c);
	if (!still && out != NULL)
		fprintf(out, "check: the store changed during %s%d walk%s: "
		    "account counts and chunk totals were not compared\n",
		    walks > 1 ? "each of " : "", walks, walks > 1 ? "s" : "");

	if (out != NULL)
		fprintf(out, "check: segment %s: %" PRIu64 " items, %" PRIu64
		    " free chunks, %u of %u pages, %u errors\n", st->name,
		    c.live, c.nfree, c.held_pages, h->npages, c.errors);
	free(c.ukeys);
	free(c.ubytes);
	free(c.seen);
	free(c.listed);
	return c.errors ? 1 : 0;
}
