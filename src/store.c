/*
 * store.c - the key-value table in one POSIX shared-memory segment.
 *
 * Items live in chunks of size classes carved from fixed pages (memcached's
 * slab idea); a bucket array of 32-bit references heads one chain per
 * bucket, and a stripe lock guards every bucket congruent to it.  A write is
 * prepared in full in a chunk of its own, then published by one store into
 * the chain, under the stripe's undo log; the chunk it replaces is freed only
 * after that commit.  So a process killed at any instruction leaves either
 * the old item or the new one reachable, and whatever it held is put back by
 * the next process that needs it (lock.c) or by store_reap().
 *
 * Lock order: a stripe, then the alloc lock.  The users lock is taken alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "lock.h"
#include "log.h"
#include "store.h"

#define LOAD(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, o, n)	__atomic_compare_exchange_n((p), &(o), (n), 0, \
			    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#define ITEM_HDR	sizeof(struct kv_item)
#define PAGE_MIN	(64 * 1024)

void	(*store_test_hold)(void);

static inline struct kv_item *
item_at(struct store *st, uint32_t ref)
{
	return (struct kv_item *)(st->base + (size_t)ref * KV_ITEM_ALIGN);
}

static inline uint32_t
item_ref(struct store *st, const struct kv_item *it)
{
	return (uint32_t)(((const char *)it - st->base) / KV_ITEM_ALIGN);
}

static inline struct kv_stripe *
stripes(struct store *st)
{
	return (struct kv_stripe *)(st->base + st->hdr->off_stripes);
}

static inline uint32_t *
buckets(struct store *st)
{
	return (uint32_t *)(st->base + st->hdr->off_buckets);
}

static inline struct kv_user *
users(struct store *st)
{
	return (struct kv_user *)(st->base + st->hdr->off_users);
}

static inline uint32_t *
pagemap(struct store *st)
{
	return (uint32_t *)(st->base + st->hdr->off_pagemap);
}

/* klen, cls, state and pad share one 32-bit word, logged as one. */
static inline uint32_t *
item_meta(struct kv_item *it)
{
	return (uint32_t *)(void *)&it->klen;
}

static inline uint32_t
meta_word(uint8_t klen, uint8_t cls, uint8_t state)
{
	struct kv_item m;
	uint32_t w;

	memset(&m, 0, sizeof(m));
	m.klen = klen;
	m.cls = cls;
	m.state = state;
	memcpy(&w, &m.klen, sizeof(w));
	return w;
}

/*
 * A 64-bit multiplicative hash over 8-byte words, seeded with the user id
 * so that one key under many users spreads over many buckets.
 */
static uint64_t
hash_key(uint32_t user, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)user << 32) ^ len;
	uint64_t v;

	while (len >= 8) {
		memcpy(&v, p, 8);
		h = (h ^ (v * 0xff51afd7ed558ccdULL)) * 0xc4ceb9fe1a85ec53ULL;
		h ^= h >> 29;
		p += 8;
		len -= 8;
	}
	v = 0;
	memcpy(&v, p, len);
	h = (h ^ (v * 0xff51afd7ed558ccdULL)) * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 32;
	h *= 0x9e3779b97f4a7c15ULL;
	h ^= h >> 29;
	return h;
}

static inline int
expired(const struct kv_item *it, uint32_t now)
{
	return it->exptime != 0 && it->exptime <= now;
}

/* ---- geometry and the segment's life ---------------------------------- */

static uint64_t
round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

void
store_geometry_default(struct store_geometry *g, uint64_t size_mb,
    uint32_t value_max)
{
	g->size = size_mb * 1024 * 1024;
	g->value_max = value_max;
}

/* Lay out a header for the geometry; -1 when it does not fit. */
static int
plan(struct kv_header *h, const struct store_geometry *g)
{
	uint64_t off, maxpages, per_bucket = 192;
	uint32_t nb = 1024, size, i;

	memset(h, 0, sizeof(*h));
	h->magic = KV_MAGIC;
	h->version = KV_LAYOUT_VERSION;
	h->abi = KV_ABI;
	h->size = g->size;
	h->value_max = g->value_max;
	h->page_size = (uint32_t)round_up(ITEM_HDR + KV_KEY_MAX + g->value_max,
	    4096);
	if (h->page_size < PAGE_MIN)
		h->page_size = PAGE_MIN;
	while ((uint64_t)nb * 2 * per_bucket <= g->size && nb < (1U << 30))
		nb *= 2;
	h->nbuckets = nb;
	h->nstripes = nb < KV_STRIPES_MAX ? nb : KV_STRIPES_MAX;
	h->nusers = KV_USERS;
	h->nslots = KV_SLOTS;

	off = round_up(sizeof(*h), KV_CACHELINE);
	h->off_stripes = off;
	off += (uint64_t)h->nstripes * sizeof(struct kv_stripe);
	h->off_buckets = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nbuckets * sizeof(uint32_t);
	h->off_users = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nusers * sizeof(struct kv_user);
	h->off_slots = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nslots * sizeof(struct kv_slot);
	h->off_audit = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)KV_AUDIT_LINES * sizeof(struct kv_audit);
	h->off_peers = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)KV_PEERS * sizeof(struct kv_peer);
	h->off_pagemap = off = round_up(off, KV_CACHELINE);
	maxpages = g->size / h->page_size;
	off += maxpages * sizeof(uint32_t);
	h->off_arena = off = round_up(off, 4096);
	if (off >= g->size || (g->size - off) / h->page_size == 0)
		return -1;
	h->npages = (uint32_t)((g->size - off) / h->page_size);

	/* Classes grow by 1.25 from the smallest item; the last is a page. */
	size = (uint32_t)round_up(ITEM_HDR + 8, KV_ITEM_ALIGN);
	for (i = 0; i < KV_CLASSES_MAX - 1 && size < h->page_size / 2; i++) {
		h->classes[i].size = size;
		size = (uint32_t)round_up((uint64_t)size * 5 / 4, KV_ITEM_ALIGN);
	}
	h->classes[i++].size = h->page_size;
	h->nclasses = i;
	return 0;
}

static int
init_segment(struct store *st, const struct kv_header *plan_h)
{
	struct kv_header *h = st->hdr;
	uint32_t i;

	memcpy(h, plan_h, sizeof(*h));
	h->ready = 0;
	h->created = (int64_t)time(NULL);
	if (lock_init(&h->alloc_lock) == -1 || lock_init(&h->users_lock) == -1)
		return -1;
	for (i = 0; i < h->nstripes; i++) {
		memset(&stripes(st)[i], 0, sizeof(struct kv_stripe));
		if (lock_init(&stripes(st)[i].lock) == -1)
			return -1;
	}
	/* ftruncate() gave zeroed memory: buckets, users, slots are empty. */
	STORE(&h->ready, 1);
	return 0;
}

static void
describe(char *buf, size_t n, uint64_t size, uint32_t value_max)
{
	snprintf(buf, n, "-m %" PRIu64 " -I %" PRIu32,
	    size / (1024 * 1024), value_max);
}

static int
check_header(struct store *st, const struct store_geometry *g, char *err,
    size_t errlen)
{
	struct kv_header *h = st->hdr;
	char have[64], want[64];

	if (h->magic != KV_MAGIC) {
		snprintf(err, errlen, "segment %s is not a kvstore segment",
		    st->name);
		return -1;
	}
	if (h->version != KV_LAYOUT_VERSION || h->abi != KV_ABI) {
		snprintf(err, errlen, "segment %s has layout %u/%#x, this build "
		    "uses %u/%#x; remove it with kvstored -R -s %s", st->name,
		    h->version, h->abi, KV_LAYOUT_VERSION, KV_ABI, st->name);
		return -1;
	}
	if (h->size != st->size) {
		snprintf(err, errlen, "segment %s is %zu bytes, its header says "
		    "%" PRIu64, st->name, st->size, h->size);
		return -1;
	}
	if (g != NULL && (g->size != h->size || g->value_max != h->value_max)) {
		describe(have, sizeof(have), h->size, h->value_max);
		describe(want, sizeof(want), g->size, g->value_max);
		snprintf(err, errlen, "segment %s was created with %s, not %s; "
		    "start with %s, or remove it with kvstored -R -s %s",
		    st->name, have, want, have, st->name);
		return -1;
	}
	return 0;
}

static int
map_segment(struct store *st, char *err, size_t errlen)
{
	st->base = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    st->fd, 0);
	if (st->base == MAP_FAILED) {
		st->base = NULL;
		snprintf(err, errlen, "mmap %s: %s", st->name, strerror(errno));
		return -1;
	}
	st->hdr = (struct kv_header *)(void *)st->base;
	return 0;
}

static int
create_segment(struct store *st, const struct store_geometry *g, char *err,
    size_t errlen)
{
	struct kv_header h;
	int e;

	if (plan(&h, g) == -1) {
		snprintf(err, errlen, "segment size %" PRIu64 " MiB is too small "
		    "for values of %u bytes", g->size >> 20, g->value_max);
		return -1;
	}
	st->size = g->size;
	if (ftruncate(st->fd, (off_t)g->size) == -1) {
		snprintf(err, errlen, "ftruncate %s: %s", st->name,
		    strerror(errno));
		return -1;
	}
	/* Reserve the memory now: no room in /dev/shm is an error here, not
	 * a SIGBUS in some child much later. */
	if ((e = posix_fallocate(st->fd, 0, (off_t)g->size)) != 0) {
		snprintf(err, errlen, "cannot reserve %" PRIu64 " MiB for "
		    "segment %s in /dev/shm: %s", g->size >> 20, st->name,
		    strerror(e));
		return -1;
	}
	if (map_segment(st, err, errlen) == -1)
		return -1;
	if (init_segment(st, &h) == -1) {
		snprintf(err, errlen, "sem_init: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Another process is creating it: wait until it is ready, with a deadline. */
static int
attach_segment(struct store *st, const struct store_geometry *g, char *err,
    size_t errlen)
{
	struct stat sb;
	int tries;

	for (tries = 0; tries < 500; tries++) {
		if (fstat(st->fd, &sb) == -1) {
			snprintf(err, errlen, "fstat %s: %s", st->name,
			    strerror(errno));
			return -1;
		}
		if ((size_t)sb.st_size >= sizeof(struct kv_header)) {
			if (st->base == NULL) {
				st->size = (size_t)sb.st_size;
				if (map_segment(st, err, errlen) == -1)
					return -1;
			}
			if (LOAD(&st->hdr->ready))
				return check_header(st, g, err, errlen);
		}
		usleep(10000);
	}
	snprintf(err, errlen, "segment %s was never finished (its creator "
	    "died?); remove it with kvstored -R -s %s", st->name, st->name);
	return -1;
}

int
store_open(struct store *st, const char *name, const struct store_geometry *g,
    int flags, char *err, size_t errlen)
{
	int created = 0;

	memset(st, 0, sizeof(*st));
	st->fd = -1;
	if (name[0] != '/' || strlen(name) >= sizeof(st->name) ||
	    strchr(name + 1, '/') != NULL) {
		snprintf(err, errlen, "bad segment name '%s'", name);
		return -1;
	}
	strcpy(st->name, name);
	if ((flags & STORE_CREATE) && g != NULL) {
		st->fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		created = st->fd != -1;
		if (st->fd == -1 && errno != EEXIST) {
			snprintf(err, errlen, "shm_open %s: %s", name,
			    strerror(errno));
			return -1;
		}
	}
	if (st->fd == -1 && (st->fd = shm_open(name, O_RDWR, 0)) == -1) {
		snprintf(err, errlen, "shm_open %s: %s", name, strerror(errno));
		return -1;
	}
	if (created ? create_segment(st, g, err, errlen) :
	    attach_segment(st, g, err, errlen)) {
		if (created)
			shm_unlink(name);
		store_close(st);
		return -1;
	}
	return 0;
}

void
store_close(struct store *st)
{
	if (st->slot)
		store_detach_process(st);
	if (st->base != NULL)
		munmap(st->base, st->size);
	if (st->fd != -1)
		close(st->fd);
	st->base = NULL;
	st->hdr = NULL;
	st->fd = -1;
}

int
store_remove(const char *name)
{
	return shm_unlink(name);
}

int
store_exists(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);

	if (fd == -1)
		return 0;
	close(fd);
	return 1;
}

uint32_t
store_value_max(const struct store *st)
{
	return st->hdr->value_max;
}

int
store_attach_process(struct store *st)
{
	return registry_join(st);
}

void
store_detach_process(struct store *st)
{
	registry_leave(st);
}

/* ---- the allocator (alloc lock) ---------------------------------------- */

static int
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
static int
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
static void
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
static void
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

/* ---- chains (stripe lock) ---------------------------------------------- */

struct found {
	struct kv_stripe *stripe;
	uint32_t	*link;		/* the word that points at item */
	struct kv_item	*item;		/* NULL when absent */
	uint32_t	 hash;
};

static struct kv_stripe *
stripe_for(struct store *st, uint64_t h, uint32_t **bucket)
{
	uint32_t b = (uint32_t)h & (st->hdr->nbuckets - 1);

	*bucket = &buckets(st)[b];
	return &stripes(st)[b & (st->hdr->nstripes - 1)];
}

/* Lock the key's stripe and find the key; the caller unlocks. */
static void
find_locked(struct store *st, uint32_t user, const void *key, size_t klen,
    struct found *f)
{
	uint64_t h = hash_key(user, key, klen);
	uint32_t *link, ref;

	f->stripe = stripe_for(st, h, &link);
	f->hash = (uint32_t)(h >> 32);
	lock_acquire(st, &f->stripe->lock);
	for (; (ref = *link) != 0; link = &item_at(st, ref)->next) {
		struct kv_item *it = item_at(st, ref);

		if (it->hash == f->hash && it->user == user &&
		    it->klen == klen && memcmp(it->data, key, klen) == 0) {
			f->link = link;
			f->item = it;
			return;
		}
	}
	f->link = link;
	f->item = NULL;
}

static void
unlock_found(struct store *st, struct found *f)
{
	lock_release(st, &f->stripe->lock);
}

static inline uint64_t
chunk_bytes(struct store *st, const struct kv_item *it)
{
	return st->hdr->classes[it->cls].size;
}

/*
 * Publish: replace f->item (or append when absent) with the chunk newref,
 * or unlink f->item when newref is 0.  One commit under the stripe lock.
 */
static void
publish(struct store *st, struct found *f, uint32_t user, uint32_t newref)
{
	struct kv_lock *l = &f->stripe->lock;
	struct kv_slot *me = registry_slot(st);
	struct kv_item *old = f->item, *nw = newref ? item_at(st, newref) : NULL;
	int64_t dkeys = 0, dbytes = 0;

	if (old != NULL) {
		dkeys--;
		dbytes -= (int64_t)chunk_bytes(st, old);
	}
	if (nw != NULL) {
		dkeys++;
		dbytes += (int64_t)chunk_bytes(st, nw);
		/* Private until the link below is stored: no log needed. */
		nw->next = old != NULL ? old->next : *f->link;
		tx_set32(st, l, f->link, newref);
	} else if (old != NULL)
		tx_set32(st, l, f->link, old->next);
	tx_set64(st, l, &f->stripe->items, f->stripe->items + (uint64_t)dkeys);
	tx_set64(st, l, &f->stripe->bytes, f->stripe->bytes + (uint64_t)dbytes);
	tx_set32(st, l, &me->pending, 0);
	tx_set32(st, l, &me->final_old, old != NULL ? item_ref(st, old) : 0);
	tx_set32(st, l, &me->final_user, user);
	tx_set64(st, l, (uint64_t *)&me->final_dkeys, (uint64_t)dkeys);
	tx_set64(st, l, (uint64_t *)&me->final_dbytes, (uint64_t)dbytes);
	tx_set32(st, l, &me->final_valid, 1);
	tx_commit(l);
	finish_write(st, me);
}

static void
view_of(const struct kv_item *it, struct item_view *v)
{
	v->key = it->data;
	v->klen = it->klen;
	v->value = it->data + it->klen;
	v->vlen = it->vlen;
	v->flags = it->flags;
	v->exptime = it->exptime;
	v->cas = it->cas;
}

/* An expired item is absent; unlink it while we hold its stripe. */
static void
reap_expired(struct store *st, struct found *f, uint32_t user, uint32_t now)
{
	if (f->item != NULL && expired(f->item, now)) {
		publish(st, f, user, 0);
		f->item = NULL;
	}
}

/* ---- operations --------------------------------------------------------- */

int
store_get(struct store *st, uint32_t user, const void *key, size_t klen,
    store_visit visit, void *ctx)
{
	struct found f;
	struct item_view v;
	uint32_t now = (uint32_t)time(NULL);

	find_locked(st, user, key, klen, &f);
	reap_expired(st, &f, user, now);
	if (f.item == NULL) {
		f.stripe->misses++;
		unlock_found(st, &f);
		return ST_NOT_FOUND;
	}
	f.stripe->hits++;
	view_of(f.item, &v);
	visit(ctx, &v);
	unlock_found(st, &f);
	return ST_OK;
}

static int
over_quota(struct store *st, uint32_t user, const struct store_write *w,
    int64_t dkeys, int64_t dbytes)
{
	struct kv_user *u;

	if (user == 0 || user > st->hdr->nusers)
		return 0;
	u = &users(st)[user - 1];
	if (w->quota_keys && dkeys > 0 && LOAD(&u->keys) + 1 > w->quota_keys)
		return 1;
	if (w->quota_bytes && dbytes > 0 &&
	    LOAD(&u->bytes) + (uint64_t)dbytes > w->quota_bytes)
		return 1;
	return 0;
}

/* Fill a fresh chunk: key, then the value made of up to three pieces. */
static void
fill(struct store *st, uint32_t ref, uint32_t user, uint32_t hash,
    const void *key, size_t klen, const void *a, size_t alen, const void *b,
    size_t blen, uint32_t flags, uint32_t exptime)
{
	struct kv_item *it = item_at(st, ref);

	it->next = 0;
	it->hash = hash;
	it->user = user;
	it->vlen = (uint32_t)(alen + blen);
	it->klen = (uint8_t)klen;
	it->flags = flags;
	it->exptime = exptime;
	it->cas = __atomic_add_fetch(&st->hdr->cas_seq, 1, __ATOMIC_RELAXED);
	memcpy(it->data, key, klen);
	if (alen)
		memcpy(it->data + klen, a, alen);
	if (blen)
		memcpy(it->data + klen + alen, b, blen);
}

int
store_put(struct store *st, uint32_t user, const void *key, size_t klen,
    const void *val, size_t vlen, const struct store_write *w,
    uint64_t *cas_out)
{
	struct found f;
	struct kv_item *old;
	const void *a = val, *b = NULL;
	size_t alen = vlen, blen = 0, need;
	uint32_t ref = 0, flags = w->flags, exptime = w->exptime;
	uint32_t now = (uint32_t)time(NULL);
	int cls, rc;

	if (klen == 0 || klen > KV_KEY_MAX)
		return ST_ERROR;
	if (vlen > st->hdr->value_max)
		return ST_TOO_LARGE;
	find_locked(st, user, key, klen, &f);
	reap_expired(st, &f, user, now);
	old = f.item;
	switch (w->mode) {
	case W_ADD:
		if (old != NULL) {
			rc = ST_NOT_STORED;
			goto out;
		}
		break;
	case W_REPLACE:
	case W_APPEND:
	case W_PREPEND:
		if (old == NULL) {
			rc = ST_NOT_STORED;
			goto out;
		}
		break;
	case W_CAS:
		if (old == NULL) {
			rc = ST_NOT_FOUND;
			goto out;
		}
		if (old->cas != w->cas) {
			rc = ST_EXISTS;
			goto out;
		}
		break;
	case W_SET:
		break;
	}
	if (w->mode == W_APPEND || w->mode == W_PREPEND) {
		/* The item keeps its flags and expiry, as in memcached. */
		if ((size_t)old->vlen + vlen > st->hdr->value_max) {
			rc = ST_TOO_LARGE;
			goto out;
		}
		flags = old->flags;
		exptime = old->exptime;
		if (w->mode == W_APPEND) {
			a = old->data + old->klen;
			alen = old->vlen;
			b = val;
			blen = vlen;
		} else {
			b = old->data + old->klen;
			blen = old->vlen;
		}
	}
	need = ITEM_HDR + klen + alen + blen;
	if ((cls = class_for(st, need)) == -1) {
		rc = ST_TOO_LARGE;
		goto out;
	}
	if (over_quota(st, user, w, old == NULL,
	    (int64_t)st->hdr->classes[cls].size -
	    (old ? (int64_t)chunk_bytes(st, old) : 0))) {
		rc = ST_QUOTA;
		goto out;
	}
	if ((rc = alloc_chunk(st, need, &ref)) != ST_OK)
		goto out;
	fill(st, ref, user, f.hash, key, klen, a, alen, b, blen, flags,
	    exptime);
	if (store_test_hold != NULL)
		store_test_hold();
	f.stripe->puts++;
	publish(st, &f, user, ref);
	if (cas_out != NULL)
		*cas_out = item_at(st, ref)->cas;
out:
	unlock_found(st, &f);
	return rc;
}

int
store_del(struct store *st, uint32_t user, const void *key, size_t klen)
{
	struct found f;
	uint32_t now = (uint32_t)time(NULL);
	int rc = ST_NOT_FOUND;

	find_locked(st, user, key, klen, &f);
	reap_expired(st, &f, user, now);
	if (f.item != NULL) {
		f.stripe->dels++;
		publish(st, &f, user, 0);
		rc = ST_OK;
	}
	unlock_found(st, &f);
	return rc;
}

int
store_touch(struct store *st, uint32_t user, const void *key, size_t klen,
    uint32_t exptime, store_visit visit, void *ctx)
{
	struct found f;
	struct item_view v;
	uint32_t now = (uint32_t)time(NULL);

	find_locked(st, user, key, klen, &f);
	reap_expired(st, &f, user, now);
	if (f.item == NULL) {
		unlock_found(st, &f);
		return ST_NOT_FOUND;
	}
	/* One aligned word: a reader sees the old or the new expiry. */
	STORE(&f.item->exptime, exptime);
	if (exptime != 0 && exptime <= now)
		publish(st, &f, user, 0);
	else if (visit != NULL) {
		view_of(f.item, &v);
		visit(ctx, &v);
	}
	unlock_found(st, &f);
	return ST_OK;
}

static int
parse_u64(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

int
store_arith(struct store *st, uint32_t user, const void *key, size_t klen,
    int incr, uint64_t delta, uint64_t *result)
{
	struct found f;
	struct kv_item *old;
	struct store_write w;
	char num[24];
	uint64_t v;
	uint32_t ref, now = (uint32_t)time(NULL);
	int rc, n;

	find_locked(st, user, key, klen, &f);
	reap_expired(st, &f, user, now);
	if ((old = f.item) == NULL) {
		rc = ST_NOT_FOUND;
		goto out;
	}
	if (parse_u64(old->data + old->klen, old->vlen, &v) == -1) {
		rc = ST_NOT_NUMBER;
		goto out;
	}
	/* memcached: incr wraps at 2^64, decr stops at 0. */
	v = incr ? v + delta : (delta > v ? 0 : v - delta);
	n = snprintf(num, sizeof(num), "%" PRIu64, v);
	memset(&w, 0, sizeof(w));
	rc = alloc_chunk(st, ITEM_HDR + klen + (size_t)n, &ref);
	if (rc != ST_OK)
		goto out;
	fill(st, ref, user, f.hash, key, klen, num, (size_t)n, NULL, 0,
	    old->flags, old->exptime);
	publish(st, &f, user, ref);
	*result = v;
out:
	unlock_found(st, &f);
	return rc;
}

/* Remove every item of one user, a stripe at a time. */
int
store_flush_user(struct store *st, uint32_t user)
{
	struct kv_header *h = st->hdr;
	uint32_t s, b, ref;
	struct found f;

	for (s = 0; s < h->nstripes; s++) {
		f.stripe = &stripes(st)[s];
		lock_acquire(st, &f.stripe->lock);
		for (b = s; b < h->nbuckets; b += h->nstripes) {
			f.link = &buckets(st)[b];
			while ((ref = *f.link) != 0) {
				f.item = item_at(st, ref);
				if (f.item->user == user)
					publish(st, &f, user, 0);
				else
					f.link = &f.item->next;
			}
		}
		lock_release(st, &f.stripe->lock);
	}
	return ST_OK;
}

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

/* ---- the audit ring and the per-peer counters ---------------------------- */

static inline struct kv_audit *
audit_ring(struct store *st)
{
	return (struct kv_audit *)(st->base + st->hdr->off_audit);
}

void
store_audit(struct store *st, const char *line)
{
	uint64_t seq = __atomic_add_fetch(&st->hdr->audit_seq, 1,
	    __ATOMIC_RELAXED);
	struct kv_audit *a = &audit_ring(st)[(seq - 1) % KV_AUDIT_LINES];

	STORE(&a->seq, 0);
	snprintf(a->line, sizeof(a->line), "%s", line);
	STORE(&a->seq, seq);
}

/* Visit the last lines of the ring, oldest first; torn lines are skipped. */
void
store_audit_read(struct store *st, unsigned max,
    void (*fn)(void *, const char *), void *ctx)
{
	uint64_t last = LOAD(&st->hdr->audit_seq), seq;
	char line[KV_AUDIT_LEN];

	if (max > KV_AUDIT_LINES)
		max = KV_AUDIT_LINES;
	seq = last > max ? last - max + 1 : 1;
	for (; seq <= last; seq++) {
		struct kv_audit *a = &audit_ring(st)[(seq - 1) % KV_AUDIT_LINES];

		if (LOAD(&a->seq) != seq)
			continue;
		memcpy(line, a->line, sizeof(line));
		line[sizeof(line) - 1] = '\0';
		if (LOAD(&a->seq) == seq)
			fn(ctx, line);
	}
}

static struct kv_peer *
peer_entry(struct store *st, const char *addr, int create)
{
	struct kv_peer *peers = (struct kv_peer *)(st->base +
	    st->hdr->off_peers);
	uint64_t key = hash_key(0, addr, strlen(addr)) | 1, k;
	uint32_t i, at = (uint32_t)(key % KV_PEERS), oldest = at;
	int64_t now = (int64_t)time(NULL);

	for (i = 0; i < 8; i++) {
		struct kv_peer *p = &peers[(at + i) % KV_PEERS];

		k = LOAD(&p->key);
		if (k == key)
			return p;
		if (k == 0 || (p->last_fail < now - 3600 &&
		    p->reg_window < now - 3600)) {
			oldest = (at + i) % KV_PEERS;
			break;
		}
		if (p->last_fail < peers[oldest].last_fail)
			oldest = (at + i) % KV_PEERS;
	}
	if (!create)
		return NULL;
	/* Take the empty, stale or least recent entry of the probe run. */
	peers[oldest].fails = 0;
	peers[oldest].regs = 0;
	peers[oldest].last_fail = 0;
	peers[oldest].reg_window = 0;
	STORE(&peers[oldest].key, key);
	return &peers[oldest];
}

uint32_t
store_peer_fails(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, addr, 0);

	return p == NULL ? 0 : LOAD(&p->fails);
}

void
store_peer_fail(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, addr, 1);

	__atomic_add_fetch(&p->fails, 1, __ATOMIC_RELAXED);
	STORE(&p->last_fail, (int64_t)time(NULL));
}

void
store_peer_reset(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, addr, 0);

	if (p != NULL)
		STORE(&p->fails, 0);
}

/* Count a registration; 0 when the peer is over limit per window. */
int
store_peer_register(struct store *st, const char *addr, uint32_t limit,
    int window)
{
	struct kv_peer *p = peer_entry(st, addr, 1);
	int64_t now = (int64_t)time(NULL);

	if (LOAD(&p->reg_window) + window <= now) {
		STORE(&p->reg_window, now);
		STORE(&p->regs, 0);
	}
	return __atomic_add_fetch(&p->regs, 1, __ATOMIC_RELAXED) <= limit;
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

	for (i = 1; i <= st->hdr->nusers; i++)
		if (store_user_get(st, i, &v) == ST_OK)
			fn(ctx, &v);
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
			lock_release(st, l);
			return ST_EXISTS;
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
	set_hash(st, u, hash);
	tx_set32(st, l, &u->state, USER_ACTIVE);
	tx_commit(l);
	lock_release(st, l);
	*id = free_slot;
	return ST_OK;
}

int
store_user_get(struct store *st, uint32_t id, struct user_view *v)
{
	struct kv_lock *l = &st->hdr->users_lock;
	struct kv_user *u;
	int rc = ST_NO_USER;

	if (id == 0 || id > st->hdr->nusers)
		return ST_NO_USER;
	u = &users(st)[id - 1];
	lock_acquire(st, l);
	if (u->state == USER_ACTIVE) {
		v->id = id;
		memcpy(v->name, u->name, sizeof(v->name) - 1);
		v->name[sizeof(v->name) - 1] = '\0';
		v->role = (int)u->role;
		v->gen = u->gen;
		v->keys = LOAD(&u->keys);
		v->bytes = LOAD(&u->bytes);
		v->quota_keys = u->quota_keys;
		v->quota_bytes = u->quota_bytes;
		v->fails = LOAD(&u->fails);
		memcpy(v->hash, u->hash[u->hash_sel & 1], sizeof(v->hash));
		v->hash[sizeof(v->hash) - 1] = '\0';
		rc = ST_OK;
	}
	lock_release(st, l);
	return rc;
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
 * Delete an account: mark it deleted (its sessions stop at their next
 * request), remove its items, then free the slot for reuse.
 */
int
store_user_delete(struct store *st, uint32_t id)
{
	struct kv_lock *l = &st->hdr->users_lock;
	struct kv_user *u;

	if (id == 0 || id > st->hdr->nusers)
		return ST_NO_USER;
	u = &users(st)[id - 1];
	lock_acquire(st, l);
	if (u->state != USER_ACTIVE) {
		lock_release(st, l);
		return ST_NO_USER;
	}
	tx_set32(st, l, &u->gen, u->gen + 1);
	tx_set32(st, l, &u->state, USER_DELETED);
	tx_commit(l);
	lock_release(st, l);
	store_flush_user(st, id);
	lock_acquire(st, l);
	tx_set32(st, l, &u->state, USER_EMPTY);
	tx_commit(l);
	lock_release(st, l);
	return ST_OK;
}

/* The live role of a session's user, or -1 when the account is gone. */
int
store_user_role(struct store *st, uint32_t id, uint32_t gen)
{
	struct kv_user *u;

	if (id == 0 || id > st->hdr->nusers)
		return -1;
	u = &users(st)[id - 1];
	if (LOAD(&u->state) != USER_ACTIVE ||
	    (gen != USER_ANY_GEN && LOAD(&u->gen) != gen))
		return -1;
	return (int)LOAD(&u->role);
}

/* ---- finishing what the dead left -------------------------------------- */

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
}

/* ---- the checker -------------------------------------------------------- */

struct check {
	FILE		*out;
	unsigned	 errors;
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

/* Is ref the start of a chunk of a carved page?  Returns its class or -1. */
static int
chunk_class(struct store *st, uint32_t ref)
{
	struct kv_header *h = st->hdr;
	uint64_t off = (uint64_t)ref * KV_ITEM_ALIGN, in;
	uint32_t page, cls;

	if (off < h->off_arena)
		return -1;
	page = (uint32_t)((off - h->off_arena) / h->page_size);
	if (page >= h->next_page || page >= h->npages)
		return -1;
	cls = pagemap(st)[page];
	if (cls == 0 || cls > h->nclasses)
		return -1;
	cls--;
	in = (off - h->off_arena) % h->page_size;
	if (in % h->classes[cls].size != 0 ||
	    in + h->classes[cls].size > h->page_size)
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
 * Verify every invariant with all locks held in a fixed order (stripes by
 * index, then alloc): writers pause for the walk, nothing is changed, and
 * dead holders met on the way are recovered as any process would.
 */
int
store_check(struct store *st, FILE *out)
{
	struct kv_header *h = st->hdr;
	struct check c = { out, 0 };
	uint64_t *ukeys, *ubytes, arena_units, live = 0, nfree = 0;
	uint8_t *seen;
	uint32_t s, b, i, ref, steps, max_steps;

	if (h->magic != KV_MAGIC || h->version != KV_LAYOUT_VERSION ||
	    h->abi != KV_ABI || !h->ready) {
		complain(&c, "bad header");
		return 1;
	}
	if (h->next_page > h->npages)
		complain(&c, "next_page %u beyond %u pages", h->next_page,
		    h->npages);
	arena_units = (uint64_t)h->npages * h->page_size / KV_ITEM_ALIGN;
	ukeys = calloc(h->nusers + 1, sizeof(*ukeys));
	ubytes = calloc(h->nusers + 1, sizeof(*ubytes));
	seen = calloc(arena_units, 1);
	if (ukeys == NULL || ubytes == NULL || seen == NULL)
		fatal("calloc");
	max_steps = (uint32_t)(arena_units / (ITEM_HDR / KV_ITEM_ALIGN)) + 1;

	for (s = 0; s < h->nstripes; s++)
		lock_acquire(st, &stripes(st)[s].lock);
	lock_acquire(st, &h->alloc_lock);

	for (s = 0; s < h->nstripes; s++) {
		struct kv_stripe *sp = &stripes(st)[s];
		uint64_t items = 0, bytes = 0;

		for (b = s; b < h->nbuckets; b += h->nstripes) {
			steps = 0;
			for (ref = buckets(st)[b]; ref != 0; ref = item_at(st,
			    ref)->next) {
				struct kv_item *it = item_at(st, ref);
				int cls = chunk_class(st, ref);
				uint64_t hv;

				if (cls == -1) {
					complain(&c, "bucket %u: ref %u is not "
					    "a chunk", b, ref);
					break;
				}
				if (++steps > max_steps ||
				    seen[chunk_index(st, ref)]) {
					complain(&c, "bucket %u: chain loops or "
					    "shares ref %u", b, ref);
					break;
				}
				seen[chunk_index(st, ref)] = 1;
				if (it->state != ITEM_USED || it->cls != cls)
					complain(&c, "item %u: state %#x class "
					    "%u, expected used class %d", ref,
					    it->state, it->cls, cls);
				if (it->klen == 0 || it->klen > KV_KEY_MAX ||
				    it->vlen > h->value_max ||
				    ITEM_HDR + it->klen + (uint64_t)it->vlen >
				    h->classes[cls].size) {
					complain(&c, "item %u: lengths %u+%u do "
					    "not fit", ref, it->klen, it->vlen);
					continue;
				}
				hv = hash_key(it->user, it->data, it->klen);
				if ((uint32_t)(hv >> 32) != it->hash ||
				    ((uint32_t)hv & (h->nbuckets - 1)) != b)
					complain(&c, "item %u: hash does not "
					    "match bucket %u", ref, b);
				if (it->user == 0 || it->user > h->nusers)
					complain(&c, "item %u: bad user %u",
					    ref, it->user);
				else {
					ukeys[it->user]++;
					ubytes[it->user] += h->classes[cls].size;
				}
				items++;
				bytes += h->classes[cls].size;
			}
		}
		if (items != sp->items || bytes != sp->bytes)
			complain(&c, "stripe %u: counts %" PRIu64 "/%" PRIu64
			    " items/bytes, found %" PRIu64 "/%" PRIu64, s,
			    sp->items, sp->bytes, items, bytes);
		if (sp->lock.nlog != 0)
			complain(&c, "stripe %u: open transaction", s);
		live += items;
	}

	for (i = 0; i < h->nclasses; i++) {
		struct kv_class *k = &h->classes[i];

		steps = 0;
		for (ref = k->free_head; ref != 0; ref = item_at(st,
		    ref)->next) {
			if (chunk_class(st, ref) != (int)i) {
				complain(&c, "class %u: free ref %u is not "
				    "its chunk", i, ref);
				break;
			}
			if (++steps > max_steps ||
			    seen[chunk_index(st, ref)]) {
				complain(&c, "class %u: free chunk %u is also "
				    "in use or listed twice", i, ref);
				break;
			}
			seen[chunk_index(st, ref)] = 1;
			if (item_at(st, ref)->state != ITEM_FREE)
				complain(&c, "class %u: free chunk %u not "
				    "marked free", i, ref);
			nfree++;
		}
	}

	/*
	 * A process that died between a write's commit and its bookkeeping
	 * (finish_write()) left the old chunk to free and the owner's counters
	 * to move in its slot, for store_finish_dead(): count them as done.
	 * With every stripe held, no live process is in that window.
	 */
	{
		struct kv_slot *slots = registry_slots(st);

		for (i = 0; i < h->nslots; i++) {
			struct kv_slot *sl = &slots[i];
			uint32_t old = sl->final_old, fu = sl->final_user;

			if (sl->pid == 0 || !sl->final_valid)
				continue;
			if (old != 0 && chunk_class(st, old) != -1 &&
			    !seen[chunk_index(st, old)]) {
				seen[chunk_index(st, old)] = 1;
				nfree++;
			}
			if (fu >= 1 && fu <= h->nusers) {
				ukeys[fu] -= (uint64_t)sl->final_dkeys;
				ubytes[fu] -= (uint64_t)sl->final_dbytes;
			}
		}
	}

	for (i = 1; i <= h->nusers; i++) {
		struct kv_user *u = &users(st)[i - 1];

		if (u->state == USER_EMPTY && ukeys[i] == 0)
			continue;
		if (u->keys != ukeys[i] || u->bytes != ubytes[i])
			complain(&c, "user %u (%.*s): counts %" PRIu64 "/%"
			    PRIu64 ", found %" PRIu64 "/%" PRIu64, i,
			    KV_USER_MAX, u->name, u->keys, u->bytes,
			    ukeys[i], ubytes[i]);
	}
	if (h->alloc_lock.nlog != 0)
		complain(&c, "alloc: open transaction");

	/* Every chunk handed out is in a chain, on a free list, or pending. */
	{
		struct kv_slot *slots = registry_slots(st);
		uint64_t carved = 0, pending = 0;

		for (i = 0; i < h->nslots; i++) {
			uint32_t p = slots[i].pending;

			if (slots[i].pid == 0 || p == 0)
				continue;
			if (chunk_class(st, p) != -1 &&
			    !seen[chunk_index(st, p)]) {
				seen[chunk_index(st, p)] = 1;
				pending++;
			}
		}
		for (i = 0; i < h->nclasses; i++) {
			struct kv_class *k = &h->classes[i];
			uint32_t p, per = h->page_size / k->size;

			for (p = 0; p < h->next_page; p++)
				if (pagemap(st)[p] == i + 1)
					carved += per;
			if (k->bump != 0 && k->bump_end >= k->bump)
				carved -= (k->bump_end - k->bump) * 8 / k->size;
		}
		if (carved != live + nfree + pending)
			complain(&c, "%" PRIu64 " chunks handed out, %" PRIu64
			    " in use, %" PRIu64 " free, %" PRIu64 " pending: %"
			    PRId64 " lost", carved, live, nfree, pending,
			    (int64_t)(carved - live - nfree - pending));
	}

	lock_release(st, &h->alloc_lock);
	for (s = h->nstripes; s-- > 0;)
		lock_release(st, &stripes(st)[s].lock);
	if (out != NULL)
		fprintf(out, "check: segment %s: %" PRIu64 " items, %" PRIu64
		    " free chunks, %u of %u pages, %u errors\n", st->name,
		    live, nfree, h->next_page, h->npages, c.errors);
	free(ukeys);
	free(ubytes);
	free(seen);
	return c.errors ? 1 : 0;
}
