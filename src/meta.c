/*
 * meta.c - the store's side of memcached's meta commands: a get that may
 * touch, create and hand out a recache win (mg), a delete that may only
 * mark stale (md), arithmetic that may create its item (ma).  Each is one
 * step under the key's stripe lock, like every other operation, so two
 * clients racing for a recache never both win.
 *
 * The meta state lives in the item's header (kv_item.pad, ITEM_META_*, and
 * pad2 as the last access); those two fields are written without the undo
 * log, as hints: a process that dies holding the stripe leaves at worst a
 * win flag or an access time that a replay would not have kept.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

/* A new item for key in f's chain, value val, linked and in f->item. */
static int
create(struct store *st, struct found *f, uint32_t user, const void *key,
    size_t klen, const char *val, size_t vlen, uint32_t exptime,
    uint64_t quota_keys, uint64_t quota_bytes)
{
	struct store_write q;
	size_t need = ITEM_HDR + klen + vlen;
	uint32_t ref;
	int cls, rc;

	if ((cls = class_for(st, need)) == -1)
		return ST_TOO_LARGE;
	memset(&q, 0, sizeof(q));
	q.quota_keys = quota_keys;
	q.quota_bytes = quota_bytes;
	if (over_quota(st, user, &q, 1, (int64_t)st->hdr->classes[cls].size))
		return ST_QUOTA;
	if ((rc = alloc_chunk(st, need, &ref)) != ST_OK) {
		if (rc == ST_FULL)
			f->stripe->no_memory++;
		return rc;
	}
	fill(st, ref, user, f->hash, key, klen, val, vlen, NULL, 0, 0, exptime);
	f->stripe->puts++;
	publish(st, f, user, ref);
	f->item = item_at(st, ref);
	return ST_OK;
}

static int
mget_once(struct store *st, uint32_t user, uint32_t gen,
    const void *key, size_t klen,
    struct store_mget *m, store_visit visit, void *ctx)
{
	struct found f;
	struct item_view v;
	struct kv_item *it;
	uint32_t now = (uint32_t)time(NULL), e;
	int rc, won = 0;

	m->created = m->won = m->token_sent = m->stale = 0;
	if (klen == 0 || klen > KV_KEY_MAX)
		return ST_ERROR;
	find_locked(st, user, key, klen, &f);
	/* The account acted on, checked under the stripe (see store_put). */
	if (!account_live(st, user, gen)) {
		unlock_found(st, &f);
		return ST_NO_USER;
	}
	reap_expired(st, &f, user, now);
	if (f.item == NULL) {
		f.stripe->misses++;
		if (!m->vivify) {
			unlock_found(st, &f);
			return ST_NOT_FOUND;
		}
		if ((rc = create(st, &f, user, key, klen, "", 0, m->viv_exp,
		    m->quota_keys, m->quota_bytes)) != ST_OK) {
			if (rc == ST_FULL || rc == ST_QUOTA)
				f.stripe->misses--;	/* tried again */
			unlock_found(st, &f);
			return rc;
		}
		m->created = 1;
	} else if (!m->no_bump)
		f.stripe->hits++;
	it = f.item;
	view_of(it, &v);
	/*
	 * memcached makes the stub without an expiry, its maker wins, and
	 * N and T set the expiry in the request's order.
	 */
	e = m->created ? 0 : it->exptime;
	if (m->created) {
		v.exptime = 0;
		won = 1;
	}
	if (m->touch && m->touch_first)
		e = m->touch_exp;
	if (m->recache && !(v.meta & ITEM_META_WON) && !m->created &&
	    e != 0 && e < m->recache_exp)
		won = 1;
	if (m->created && !m->viv_last)
		e = m->viv_exp;
	if (m->touch)
		e = m->touch_exp;
	if (m->created && m->viv_last)
		e = m->viv_exp;
	m->token_sent = (v.meta & ITEM_META_WON) != 0;
	m->stale = (v.meta & ITEM_META_STALE) != 0;
	if (m->stale && !m->token_sent)
		won = 1;
	m->won = won;
	m->exptime = e;
	STORE(&it->exptime, e);
	note_expiry(st, e);
	if (won)
		__atomic_or_fetch(&it->pad, ITEM_META_WON, __ATOMIC_RELAXED);
	if (visit != NULL)
		visit(ctx, &v);
	if (!m->no_bump)
		note_access(it, now);
	if (e != 0 && e <= now)
		publish(st, &f, user, 0);	/* a past expiry ends it */
	unlock_found(st, &f);
	return ST_OK;
}

int
store_mdel(struct store *st, uint32_t user, uint32_t gen,
    const void *key, size_t klen,
    const struct store_mdel *d)
{
	struct found f;
	struct kv_item *it;
	uint32_t now = (uint32_t)time(NULL);
	int rc = ST_OK;

	if (klen == 0 || klen > KV_KEY_MAX)
		return ST_ERROR;
	find_locked(st, user, key, klen, &f);
	/* The account acted on, checked under the stripe (see store_put). */
	if (!account_live(st, user, gen)) {
		unlock_found(st, &f);
		return ST_NO_USER;
	}
	reap_expired(st, &f, user, now);
	if ((it = f.item) == NULL) {
		f.stripe->delete_misses++;
		rc = ST_NOT_FOUND;
	} else if (d->cas_check && it->cas != d->cas) {
		f.stripe->delete_misses++;
		rc = ST_EXISTS;
	} else if (d->stale) {
		/* Kept, stale, with a new cas; the next reader may win. */
		if (d->touch) {
			STORE(&it->exptime, d->touch_exp);
			note_expiry(st, d->touch_exp);
		}
		__atomic_and_fetch(&it->pad, (uint8_t)~ITEM_META_WON,
		    __ATOMIC_RELAXED);
		__atomic_or_fetch(&it->pad, ITEM_META_STALE, __ATOMIC_RELAXED);
		STORE(&it->cas, __atomic_add_fetch(&st->hdr->cas_seq, 1,
		    __ATOMIC_RELAXED));
		if (d->touch && d->touch_exp != 0 && d->touch_exp <= now)
			publish(st, &f, user, 0);
	} else {
		f.stripe->dels++;
		publish(st, &f, user, 0);
	}
	unlock_found(st, &f);
	return rc;
}

static int
parse_num(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' ||
		    v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* The expiry after ma's T and N, applied in the request's order. */
static uint32_t
arith_exptime(const struct store_marith *a, uint32_t e)
{
	if (a->created && !a->viv_last)
		e = a->viv_exp;
	if (a->touch)
		e = a->touch_exp;
	if (a->created && a->viv_last)
		e = a->viv_exp;
	return e;
}

static int
marith_once(struct store *st, uint32_t user, uint32_t gen,
    const void *key, size_t klen,
    struct store_marith *a)
{
	struct found f;
	struct kv_item *old;
	char num[24];
	uint64_t v;
	uint32_t ref, now = (uint32_t)time(NULL);
	uint8_t meta;
	int rc, n;

	a->created = 0;
	if (klen == 0 || klen > KV_KEY_MAX)
		return ST_ERROR;
	find_locked(st, user, key, klen, &f);
	/* The account acted on, checked under the stripe (see store_put). */
	if (!account_live(st, user, gen)) {
		unlock_found(st, &f);
		return ST_NO_USER;
	}
	reap_expired(st, &f, user, now);
	if ((old = f.item) == NULL) {
		if (!a->vivify) {
			if (a->incr)
				f.stripe->incr_misses++;
			else
				f.stripe->decr_misses++;
			rc = ST_NOT_FOUND;
			goto out;
		}
		a->created = 1;
		a->exp_before = 0;
		a->value = a->initial;
		n = snprintf(num, sizeof(num), "%" PRIu64, a->initial);
		rc = create(st, &f, user, key, klen, num, (size_t)n,
		    arith_exptime(a, 0), a->quota_keys, a->quota_bytes);
		if (rc == ST_OK)
			a->new_cas = f.item->cas;
		goto out;
	}
	if (a->cas_check && old->cas != a->cas) {
		rc = ST_EXISTS;
		goto out;
	}
	if (parse_num(old->data + old->klen, old->vlen, &v) == -1) {
		rc = ST_NOT_NUMBER;
		goto out;
	}
	if (a->incr)
		f.stripe->incr_hits++;
	else
		f.stripe->decr_hits++;
	/* memcached: incr wraps at 2^64, decr stops at 0. */
	v = a->incr ? v + a->delta : (a->delta > v ? 0 : v - a->delta);
	n = snprintf(num, sizeof(num), "%" PRIu64, v);
	if ((rc = alloc_chunk(st, ITEM_HDR + klen + (size_t)n, &ref)) !=
	    ST_OK) {
		if (rc == ST_FULL) {
			f.stripe->no_memory++;
			/* tried again */
			if (a->incr)
				f.stripe->incr_hits--;
			else
				f.stripe->decr_hits--;
		}
		goto out;
	}
	a->exp_before = old->exptime;
	meta = old->pad;
	fill(st, ref, user, f.hash, key, klen, num, (size_t)n, NULL, 0,
	    old->flags, arith_exptime(a, old->exptime));
	item_at(st, ref)->pad = meta;
	a->new_cas = item_at(st, ref)->cas;
	a->value = v;
	publish(st, &f, user, ref);
out:
	unlock_found(st, &f);
	return rc;
}

/*
 * A create (mg N, ma N) or an arithmetic that found no room, or its store
 * at its quota, is tried again while make_room() frees something, as a
 * store_put() is: with no stripe held, so that reclaim, compaction and a
 * cache's eviction can take stripes of their own.
 */
int
store_mget(struct store *st, uint32_t user, uint32_t gen,
    const void *key, size_t klen,
    struct store_mget *m, store_visit visit, void *ctx)
{
	int rc, tries;

	rc = mget_once(st, user, gen, key, klen, m, visit, ctx);
	for (tries = 1; (rc == ST_FULL || rc == ST_QUOTA) &&
	    tries <= ROOM_TRIES && make_room(st, user, ITEM_HDR + klen, rc);
	    tries++)
		rc = mget_once(st, user, gen, key, klen, m, visit, ctx);
	return rc;
}

int
store_marith(struct store *st, uint32_t user, uint32_t gen,
    const void *key, size_t klen,
    struct store_marith *a)
{
	int rc, tries;

	rc = marith_once(st, user, gen, key, klen, a);
	for (tries = 1; (rc == ST_FULL || rc == ST_QUOTA) &&
	    tries <= ROOM_TRIES && make_room(st, user, ITEM_HDR + klen + 20,
	    rc); tries++)
		rc = marith_once(st, user, gen, key, klen, a);
	return rc;
}
