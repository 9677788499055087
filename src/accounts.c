/*
 * accounts.c - the user slots in the segment: mechanism only (names, roles,
 * secrets' hashes, generations, counters of failed logins); what roles and
 * secrets mean is auth.c's business.  Names, roles and hashes change under
 * the users lock; a slot is published by its state word.
 *
 * The table's size is fixed when the segment is made (kvstored -a), and
 * nothing a request does walks it: a session names its account by slot id,
 * and a name is found through the name index (layout.h), an open-addressing
 * table of at least twice as many entries as slots, probed linearly from
 * the name's hash.  It holds every account that is not USER_EMPTY, so that
 * a name being deleted stays taken until its userdel is done.  Empty slots
 * are found in O(1) too: those never used lie above users_hwm, and the
 * others are on a free list through next_free.
 *
 * Every change of the index, the free list and the counts is a logged
 * write under the users lock, so a process killed in one is undone like
 * any other.  A deleted name leaves a tombstone (a backward shift could
 * move more entries than one critical section may log); once tombstones
 * are an eighth of the index, it is rebuilt in place from the slots.  The
 * rebuild is not logged: it derives everything from the slots, so one cut
 * short is simply done again, by the next holder of the users lock, who
 * sees names_gen odd.
 *
 * Lookups take no lock.  An entry only ever goes from empty to a name, from
 * a name to a tombstone, from a tombstone to a name, or back by a rollback
 * to what it was; so the probe for a name that stays an account always
 * reaches it, and a hit is verified against the slot itself.  Only a
 * rebuild empties entries: a miss seen while names_gen moved is asked again
 * under the lock, as a seqlock's reader would.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvstore.h"
#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

void	(*store_test_accounts)(const char *);

static void
test_step(const char *step)
{
	if (store_test_accounts != NULL)
		store_test_accounts(step);
}

/* ---- the name index ------------------------------------------------------ */

/* The segment's keyed hash, with a "user" that no account, throttle table
 * kind or connection count uses. */
uint64_t
name_hash(struct store *st, const char *name, size_t len)
{
	return hash_key(st, UINT32_MAX, name, len);
}

static int
slot_named(const struct kv_user *u, const char *name)
{
	return strncmp(u->name, name, sizeof(u->name)) == 0;
}

/*
 * The slot id of the account called name that is not USER_EMPTY, or 0.
 * *at, when not NULL, is set to where the name would go: the first
 * tombstone of the probe, or the empty entry that ended it (UINT32_MAX if
 * the index has neither, which its size rules out).
 */
static uint32_t
probe(struct store *st, const char *name, uint64_t h, uint32_t *at)
{
	struct kv_header *hd = st->hdr;
	uint32_t *e = names(st), mask = hd->names_mask;
	uint32_t i = (uint32_t)h & mask, tag = name_tag(h);
	uint32_t n, v, id, first = UINT32_MAX;
	struct kv_user *u;

	for (n = 0; n <= mask; n++, i = (i + 1) & mask) {
		if ((v = LOAD(&e[i])) == NAME_EMPTY)
			break;
		if (v == NAME_TOMB) {
			if (first == UINT32_MAX)
				first = i;
			continue;
		}
		id = v & NAME_ID_MASK;
		if ((v & ~NAME_ID_MASK) != tag || id == 0 || id > hd->nusers)
			continue;
		u = &users(st)[id - 1];
		if (LOAD(&u->state) != USER_EMPTY && slot_named(u, name)) {
			if (at != NULL)
				*at = i;
			return id;
		}
	}
	if (at != NULL)
		*at = first != UINT32_MAX ? first : n <= mask ? i : UINT32_MAX;
	return 0;
}

/* Refill the index from the slots; the caller holds the users lock. */
static void
rebuild(struct store *st)
{
	struct kv_header *h = st->hdr;
	uint32_t *e = names(st), i, at, mask = h->names_mask;
	struct kv_user *u;
	uint64_t hv;

	STORE(&h->names_gen, h->names_gen | 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (i = 0; i <= mask; i++)
		__atomic_store_n(&e[i], NAME_EMPTY, __ATOMIC_RELAXED);
	test_step("rebuild");
	for (i = 1; i <= h->users_hwm && i <= h->nusers; i++) {
		u = &users(st)[i - 1];
		if (u->state == USER_EMPTY)
			continue;
		hv = name_hash(st, u->name, strnlen(u->name, KV_USER_MAX));
		for (at = (uint32_t)hv & mask; e[at] != NAME_EMPTY;
		    at = (at + 1) & mask)
			;
		STORE(&e[at], name_tag(hv) | i);
	}
	h->names_tombs = 0;
	STORE(&h->names_gen, h->names_gen + 1);
}

/* Take the users lock, and finish a rebuild that a death cut short. */
static struct kv_lock *
users_lock(struct store *st)
{
	struct kv_lock *l = &st->hdr->users_lock;

	lock_acquire(st, l);
	if (LOAD(&st->hdr->names_gen) & 1)
		rebuild(st);
	return l;
}

/* The slot of the account called name, whatever its state; 0 = none. */
static uint32_t
lookup(struct store *st, const char *name)
{
	size_t len = strlen(name);
	struct kv_lock *l;
	uint32_t g, id;
	uint64_t h;

	if (len == 0 || len > KV_USER_MAX)
		return 0;
	h = name_hash(st, name, len);
	g = LOAD(&st->hdr->names_gen);
	if ((g & 1) == 0) {
		id = probe(st, name, h, NULL);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (id != 0 || LOAD(&st->hdr->names_gen) == g)
			return id;
	}
	l = users_lock(st);
	id = probe(st, name, h, NULL);
	lock_release(st, l);
	return id;
}

static void
name_insert(struct store *st, struct kv_lock *l, uint32_t at, uint64_t h,
    uint32_t id)
{
	uint32_t *e = &names(st)[at];

	if (*e == NAME_TOMB)
		tx_set32(st, l, &st->hdr->names_tombs,
		    st->hdr->names_tombs - 1);
	tx_set32(st, l, e, name_tag(h) | id);
}

/* Leave a tombstone where slot id's name is. */
static void
name_remove(struct store *st, struct kv_lock *l, uint32_t id)
{
	struct kv_header *hd = st->hdr;
	struct kv_user *u = &users(st)[id - 1];
	uint32_t *e = names(st), mask = hd->names_mask, i, n;
	uint64_t h = name_hash(st, u->name, strnlen(u->name, KV_USER_MAX));

	for (n = 0, i = (uint32_t)h & mask; n <= mask && e[i] != NAME_EMPTY;
	    n++, i = (i + 1) & mask)
		if (e[i] == (name_tag(h) | id)) {
			tx_set32(st, l, &e[i], NAME_TOMB);
			tx_set32(st, l, &hd->names_tombs, hd->names_tombs + 1);
			return;
		}
}

/* An empty slot: a freed one, else one never used; 0 when none is left. */
static uint32_t
take_slot(struct store *st, struct kv_lock *l)
{
	struct kv_header *h = st->hdr;
	uint32_t id = h->users_free;

	if (id != 0 && id <= h->nusers) {
		tx_set32(st, l, &h->users_free, users(st)[id - 1].next_free);
		return id;
	}
	if (h->users_hwm < h->nusers) {
		tx_set32(st, l, &h->users_hwm, h->users_hwm + 1);
		return h->users_hwm;
	}
	return 0;
}

static void
give_slot(struct store *st, struct kv_lock *l, uint32_t id)
{
	struct kv_header *h = st->hdr;

	tx_set32(st, l, &users(st)[id - 1].next_free, h->users_free);
	tx_set32(st, l, &h->users_free, id);
}

/* Failed logins in a row for a user: add one, or reset to 0. */
uint32_t
store_user_fail(struct store *st, uint32_t id, int reset)
{
	struct kv_user *u;

	if (id == 0 || id > st->hdr->nusers)
		return 0;
	u = &users(st)[id - 1];
	if (reset) {
		STORE(&u->fails, 0);
		return 0;
	}
	STORE(&u->last_fail, (int64_t)time(NULL));
	return __atomic_add_fetch(&u->fails, 1, __ATOMIC_RELAXED);
}

void
store_set_users_file(struct store *st, const char *path)
{
	snprintf(st->hdr->users_file, sizeof(st->hdr->users_file), "%s",
	    path != NULL ? path : "");
}

const char *
store_users_file(struct store *st)
{
	return st->hdr->users_file[0] ? st->hdr->users_file : NULL;
}

/* Visit every active account (a snapshot of each, taken under its lock). */
void
store_user_list(struct store *st, void (*fn)(void *, const struct user_view *),
    void *ctx)
{
	struct user_view v;
	uint32_t i;

	for (i = 1; i <= LOAD(&st->hdr->users_hwm); i++)
		if (store_user_get(st, i, &v) == ST_OK)
			fn(ctx, &v);
}

/*
 * Visit the active accounts among at most max slots from *cursor (a slot
 * index, 0 to begin), so that a table of many accounts is listed in
 * pieces.  Returns 1 with *cursor where the next call goes on, 0 at the end.
 */
int
store_user_scan(struct store *st, uint32_t *cursor, uint32_t max,
    void (*fn)(void *, const struct user_view *), void *ctx)
{
	struct user_view v;
	uint32_t i, end = LOAD(&st->hdr->users_hwm);

	for (i = *cursor; i < end && max > 0; i++, max--)
		if (store_user_get(st, i + 1, &v) == ST_OK)
			fn(ctx, &v);
	*cursor = i < end ? i : 0;
	return i < end;
}

/* ---- users -------------------------------------------------------------- */

uint32_t
store_user_find(struct store *st, const char *name)
{
	uint32_t id = lookup(st, name);

	return id != 0 && LOAD(&users(st)[id - 1].state) == USER_ACTIVE ?
	    id : 0;
}

/* Accounts in use, as -N counts them (those being deleted are not). */
uint32_t
store_user_count(struct store *st)
{
	return LOAD(&st->hdr->users_live);
}

/* Write the inactive hash copy, then select it with one logged store. */
static void
set_hash(struct store *st, struct kv_user *u, const char *hash)
{
	uint32_t other = !u->hash_sel;

	snprintf(u->hash[other], sizeof(u->hash[other]), "%s", hash);
	tx_set32(st, &st->hdr->users_lock, &u->hash_sel, other);
}

int
store_user_create(struct store *st, const char *name, int role,
    const char *hash, uint32_t *id)
{
	struct kv_header *h = st->hdr;
	struct kv_lock *l;
	struct kv_user *u;
	size_t len = strlen(name);
	uint32_t at, slot;
	uint64_t hv;

	if (len == 0 || len > KV_USER_MAX || strlen(hash) >= KV_HASH_MAX)
		return ST_ERROR;
	hv = name_hash(st, name, len);
	l = users_lock(st);
	if ((slot = probe(st, name, hv, &at)) != 0) {
		/* Being deleted: taken until its userdel is done. */
		lock_release(st, l);
		return users(st)[slot - 1].state == USER_DELETING ?
		    ST_DELETING : ST_EXISTS;
	}
	if (at == UINT32_MAX || (slot = take_slot(st, l)) == 0) {
		tx_commit(l);
		lock_release(st, l);
		return ST_FULL;
	}
	u = &users(st)[slot - 1];
	/* Unpublished until state says so: a death here leaves it empty,
	 * and puts back the free list and the index. */
	memset(u->name, 0, sizeof(u->name));
	memcpy(u->name, name, len);
	u->role = (uint32_t)role;
	u->quota_keys = u->quota_bytes = 0;
	/* A delayed flush of the slot's last owner is not this one's, nor
	 * its evictions. */
	STORE(&u->flush_at, 0);
	STORE(&u->evictions, 0);
	set_hash(st, u, hash);
	name_insert(st, l, at, hv, slot);
	tx_set32(st, l, &h->users_live, h->users_live + 1);
	tx_set32(st, l, &u->state, USER_ACTIVE);
	test_step("create");
	tx_commit(l);
	lock_release(st, l);
	*id = slot;
	return ST_OK;
}

/* A snapshot of slot id, under the users lock. */
static void
view_user(struct store *st, uint32_t id, struct user_view *v)
{
	struct kv_user *u = &users(st)[id - 1];

	memset(v, 0, sizeof(*v));
	v->id = id;
	memcpy(v->name, u->name, sizeof(v->name) - 1);
	v->name[sizeof(v->name) - 1] = '\0';
	v->role = (int)u->role;
	v->gen = u->gen;
	v->keys = LOAD(&u->keys);
	v->bytes = LOAD(&u->bytes);
	v->evictions = LOAD(&u->evictions);
	v->quota_keys = u->quota_keys;
	v->quota_bytes = u->quota_bytes;
	v->fails = LOAD(&u->fails);
	memcpy(v->hash, u->hash[u->hash_sel & 1], sizeof(v->hash));
	v->hash[sizeof(v->hash) - 1] = '\0';
	if (u->state == USER_DELETING) {
		v->deleting = 1;
		v->deleter = u->deleter;
		v->deleter_alive = process_alive(st, u->deleter);
	}
}

int
store_user_get(struct store *st, uint32_t id, struct user_view *v)
{
	struct kv_lock *l = &st->hdr->users_lock;
	int rc = ST_NO_USER;

	if (id == 0 || id > st->hdr->nusers)
		return ST_NO_USER;
	lock_acquire(st, l);
	if (users(st)[id - 1].state == USER_ACTIVE) {
		view_user(st, id, v);
		rc = ST_OK;
	}
	lock_release(st, l);
	return rc;
}

/* Visit every account being deleted, as store_user_list() the active. */
void
store_user_list_deleting(struct store *st,
    void (*fn)(void *, const struct user_view *), void *ctx)
{
	struct kv_lock *l = &st->hdr->users_lock;
	struct user_view v;
	uint32_t i;
	int found;

	for (i = 1; i <= LOAD(&st->hdr->users_hwm); i++) {
		lock_acquire(st, l);
		if ((found = users(st)[i - 1].state == USER_DELETING))
			view_user(st, i, &v);
		lock_release(st, l);
		if (found)
			fn(ctx, &v);
	}
}

/* The slot of the account of that name being deleted, 0 = none. */
uint32_t
store_user_find_deleting(struct store *st, const char *name)
{
	uint32_t id = lookup(st, name);

	return id != 0 && LOAD(&users(st)[id - 1].state) == USER_DELETING ?
	    id : 0;
}

/* role < 0 keeps the role, hash NULL keeps the hash. */
int
store_user_set(struct store *st, uint32_t id, int role, const char *hash)
{
	struct kv_lock *l = &st->hdr->users_lock;
	struct kv_user *u;
	int rc = ST_NO_USER;

	if (id == 0 || id > st->hdr->nusers)
		return ST_NO_USER;
	if (hash != NULL && strlen(hash) >= KV_HASH_MAX)
		return ST_ERROR;
	u = &users(st)[id - 1];
	lock_acquire(st, l);
	if (u->state == USER_ACTIVE) {
		if (role >= 0)
			tx_set32(st, l, &u->role, (uint32_t)role);
		if (hash != NULL)
			set_hash(st, u, hash);
		rc = ST_OK;
	}
	tx_commit(l);
	lock_release(st, l);
	return rc;
}

/*
 * Mark an account as being deleted, the first step of store_user_delete():
 * its generation moves (its sessions stop at their next request, and every
 * write of the old generation is refused under its stripe lock), its name
 * stays taken, and no login finds it.  On an account already being deleted
 * this process takes the job over.  kvstorectl saves the users file after
 * this step, so that an interrupted userdel is not undone by a reload.
 */
static int
mark_deleting(struct store *st, uint32_t id, uint32_t *gen)
{
	struct kv_lock *l = &st->hdr->users_lock;
	struct kv_user *u;
	int rc = ST_OK;

	if (id == 0 || id > st->hdr->nusers)
		return ST_NO_USER;
	u = &users(st)[id - 1];
	lock_acquire(st, l);
	if (u->state == USER_ACTIVE) {
		tx_set32(st, l, &u->gen, u->gen + 1);
		tx_set32(st, l, &st->hdr->users_live,
		    st->hdr->users_live - 1);
		tx_set32(st, l, &u->state, USER_DELETING);
	} else if (u->state != USER_DELETING)
		rc = ST_NO_USER;
	if (rc == ST_OK)
		tx_set32(st, l, &u->deleter, st->pid ? st->pid :
		    (uint32_t)getpid());
	*gen = u->gen;
	tx_commit(l);
	lock_release(st, l);
	return rc;
}

int
store_user_mark_deleting(struct store *st, uint32_t id)
{
	uint32_t gen;

	return mark_deleting(st, id, &gen);
}

/*
 * Remove the items of an account being deleted, a stripe at a time, each
 * only while the account is still the one marked (state and generation,
 * read under the stripe lock): another userdel may finish the job first and
 * the slot be given to a new account, whose items are not ours to remove.
 */
static int
flush_deleting(struct store *st, uint32_t id, uint32_t gen)
{
	struct kv_user *u = &users(st)[id - 1];
	uint32_t s, n = st->hdr->nstripes;
	int ours;

	for (s = 0; s < n; s++) {
		lock_acquire(st, &stripes(st)[s].lock);
		ours = LOAD(&u->state) == USER_DELETING && LOAD(&u->gen) == gen;
		if (ours)
			flush_stripe_locked(st, s, id);
		lock_release(st, &stripes(st)[s].lock);
		if (!ours)
			return ST_NO_USER;
		if (store_test_stripe != NULL)
			store_test_stripe(s + 1, n);
	}
	return ST_OK;
}

/*
 * Delete an account and its items, resumably: mark it (above), flush its
 * items, then free the slot for reuse.  Killed at any point, it leaves the
 * account marked, and the next call for the slot finishes the job.
 */
int
store_user_delete(struct store *st, uint32_t id)
{
	struct kv_lock *l = &st->hdr->users_lock;
	struct kv_user *u;
	uint32_t gen;
	int rc;

	if ((rc = mark_deleting(st, id, &gen)) != ST_OK)
		return rc;
	u = &users(st)[id - 1];
	if ((rc = flush_deleting(st, id, gen)) != ST_OK)
		return ST_OK;		/* another userdel finished it */
	l = users_lock(st);
	if (u->state == USER_DELETING && u->gen == gen) {
		/* Its name goes with the slot, in the same commit. */
		name_remove(st, l, id);
		tx_set32(st, l, &u->state, USER_EMPTY);
		tx_set32(st, l, &u->deleter, 0);
		give_slot(st, l, id);
		test_step("delete");
	}
	tx_commit(l);
	if (st->hdr->names_tombs > (st->hdr->names_mask + 1) / 8)
		rebuild(st);
	lock_release(st, l);
	return ST_OK;
}

/*
 * Is the account active and of generation gen (any, for USER_ANY_GEN)?  A
 * write asks under its stripe lock: store_user_delete() moves the state and
 * the generation before it takes the first stripe to flush, so a write
 * either sees the change or is flushed after it.
 */
int
account_live(struct store *st, uint32_t id, uint32_t gen)
{
	struct kv_user *u;

	if (id == 0 || id > st->hdr->nusers)
		return 0;
	u = &users(st)[id - 1];
	return LOAD(&u->state) == USER_ACTIVE &&
	    (gen == USER_ANY_GEN || LOAD(&u->gen) == gen);
}

/* The live role of a session's user, or -1 when the account is gone. */
int
store_user_role(struct store *st, uint32_t id, uint32_t gen)
{
	if (!account_live(st, id, gen))
		return -1;
	return (int)LOAD(&users(st)[id - 1].role);
}
