/*
 * accounts.c - the user slots in the segment: mechanism only (names, roles,
 * secrets' hashes, generations, counters of failed logins); what roles and
 * secrets mean is auth.c's business.  Names, roles and hashes change under
 * the users lock; a slot is published by its state word.
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

	for (i = 1; i <= st->hdr->nusers; i++)
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
	uint32_t i;

	for (i = *cursor; i < st->hdr->nusers && max > 0; i++, max--)
		if (store_user_get(st, i + 1, &v) == ST_OK)
			fn(ctx, &v);
	*cursor = i < st->hdr->nusers ? i : 0;
	return i < st->hdr->nusers;
}

/* ---- users -------------------------------------------------------------- */

uint32_t
store_user_find(struct store *st, const char *name)
{
	struct kv_user *u = users(st);
	uint32_t i;

	for (i = 0; i < st->hdr->nusers; i++)
		if (LOAD(&u[i].state) == USER_ACTIVE &&
		    strncmp(u[i].name, name, sizeof(u[i].name)) == 0)
			return i + 1;
	return 0;
}

uint32_t
store_user_count(struct store *st)
{
	uint32_t i, n = 0;

	for (i = 0; i < st->hdr->nusers; i++)
		if (LOAD(&users(st)[i].state) == USER_ACTIVE)
			n++;
	return n;
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
	struct kv_lock *l = &st->hdr->users_lock;
	struct kv_user *u = users(st);
	uint32_t i, free_slot = 0;

	if (strlen(name) == 0 || strlen(name) > KV_USER_MAX ||
	    strlen(hash) >= KV_HASH_MAX)
		return ST_ERROR;
	lock_acquire(st, l);
	for (i = 0; i < st->hdr->nusers; i++) {
		if (u[i].state == USER_EMPTY) {
			if (free_slot == 0)
				free_slot = i + 1;
		} else if (strncmp(u[i].name, name, sizeof(u[i].name)) == 0) {
			/* Being deleted: taken until its userdel is done. */
			lock_release(st, l);
			return u[i].state == USER_DELETING ? ST_DELETING :
			    ST_EXISTS;
		}
	}
	if (free_slot == 0) {
		lock_release(st, l);
		return ST_FULL;
	}
	u = &u[free_slot - 1];
	/* Unpublished until state says so: a death here leaves it empty. */
	memset(u->name, 0, sizeof(u->name));
	memcpy(u->name, name, strlen(name));
	u->role = (uint32_t)role;
	u->quota_keys = u->quota_bytes = 0;
	/* A delayed flush of the slot's last owner is not this one's, nor
	 * its evictions. */
	STORE(&u->flush_at, 0);
	STORE(&u->evictions, 0);
	set_hash(st, u, hash);
	tx_set32(st, l, &u->state, USER_ACTIVE);
	tx_commit(l);
	lock_release(st, l);
	*id = free_slot;
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

	for (i = 1; i <= st->hdr->nusers; i++) {
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
	struct kv_user *u = users(st);
	uint32_t i;

	for (i = 0; i < st->hdr->nusers; i++)
		if (LOAD(&u[i].state) == USER_DELETING &&
		    strncmp(u[i].name, name, sizeof(u[i].name)) == 0)
			return i + 1;
	return 0;
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
	lock_acquire(st, l);
	if (u->state == USER_DELETING && u->gen == gen) {
		tx_set32(st, l, &u->state, USER_EMPTY);
		tx_set32(st, l, &u->deleter, 0);
	}
	tx_commit(l);
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
