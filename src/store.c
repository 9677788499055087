/*
 * store.c - the key-value table in one POSIX shared-memory segment: the
 * segment's life (create, attach, check its geometry) and the operations of
 * store.h on items (get, put, del, touch, arith, flush).
 *
 * Items live in chunks of size classes carved from fixed pages (memcached's
 * slab idea, alloc.c); a bucket array of 32-bit references heads one chain
 * per bucket, and a stripe lock guards every bucket congruent to it
 * (items.c).  A write is prepared in full in a chunk of its own, then
 * published by one store into the chain, under the stripe's undo log; the
 * chunk it replaces is freed only after that commit.  So a process killed at
 * any instruction leaves either the old item or the new one reachable, and
 * whatever it held is put back by the next process that needs it (lock.c) or
 * by store_reap() (recover.c).
 *
 * The rest of the store: accounts.c (user slots), peers.c (per-address
 * counters, the audit ring), stats.c, check.c (the checker).  What they
 * share is in store_impl.h.
 *
 * Lock order: a stripe, then the alloc lock.  The users lock is taken alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

#define PAGE_MIN	(64 * 1024)

void	(*store_test_hold)(void);
void	(*store_test_unlocked)(void);
void	(*store_test_stripe)(uint32_t, uint32_t);

/* ---- geometry and the segment's life ---------------------------------- */

void
store_geometry_default(struct store_geometry *g, uint64_t size_mb,
    uint32_t value_max)
{
	g->size = size_mb * 1024 * 1024;
	g->value_max = value_max;
	g->cache = 0;
	g->users = KV_ACCOUNTS_DEFAULT;
}

/* The name index's entries: a power of two, at least twice the accounts. */
static uint32_t
names_for(uint32_t users)
{
	uint32_t n = 16;

	while (n < 2 * users)
		n *= 2;
	return n;
}

/* The account table and its name index, in bytes. */
static uint64_t
accounts_bytes(uint32_t users)
{
	return (uint64_t)users * sizeof(struct kv_user) +
	    (uint64_t)names_for(users) * sizeof(uint32_t);
}

/* Lay out a header for the geometry; -1 when it does not fit. */
static int
plan(struct kv_header *h, const struct store_geometry *g)
{
	uint64_t off, maxpages, per_bucket = 192, items;
	uint32_t nb = 1024;

	memset(h, 0, sizeof(*h));
	h->magic = KV_MAGIC;
	h->version = KV_LAYOUT_VERSION;
	h->abi = KV_ABI;
	h->size = g->size;
	h->value_max = g->value_max;
	h->cache_mode = g->cache != 0;
	h->page_size = (uint32_t)round_up(ITEM_HDR + KV_KEY_MAX + g->value_max,
	    4096);
	if (h->page_size < PAGE_MIN)
		h->page_size = PAGE_MIN;
	/* Buckets for the items' share: an account table larger than the
	 * default buys none (and a default segment keeps the buckets it
	 * always had). */
	items = g->size;
	if (g->users > KV_ACCOUNTS_DEFAULT && g->users <= KV_ACCOUNTS_MAX) {
		uint64_t extra = accounts_bytes(g->users) -
		    accounts_bytes(KV_ACCOUNTS_DEFAULT);

		items = extra < items ? items - extra : 0;
	}
	while ((uint64_t)nb * 2 * per_bucket <= items && nb < (1U << 30))
		nb *= 2;
	h->nbuckets = nb;
	h->nstripes = nb < KV_STRIPES_MAX ? nb : KV_STRIPES_MAX;
	if (g->users == 0 || g->users > KV_ACCOUNTS_MAX)
		return -1;
	h->nusers = g->users;
	h->names_mask = names_for(g->users) - 1;
	h->nslots = KV_SLOTS;

	off = round_up(sizeof(*h), KV_CACHELINE);
	h->off_stripes = off;
	off += (uint64_t)h->nstripes * sizeof(struct kv_stripe);
	h->off_buckets = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nbuckets * sizeof(uint32_t);
	h->off_users = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nusers * sizeof(struct kv_user);
	h->off_names = off = round_up(off, KV_CACHELINE);
	off += ((uint64_t)h->names_mask + 1) * sizeof(uint32_t);
	/* The undo log names a word by a 32-bit offset (lock.c). */
	if (off > UINT32_MAX)
		return -1;
	h->off_slots = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nslots * sizeof(struct kv_slot);
	h->off_audit = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)KV_AUDIT_LINES * sizeof(struct kv_audit);
	h->off_peers = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)KV_PEERS * sizeof(struct kv_peer);
	h->nconns = KV_CONNS;
	h->conns_reach = 1;		/* none claimed yet */
	h->off_conns = off = round_up(off, KV_CACHELINE);
	off += (uint64_t)h->nconns * sizeof(struct kv_conn);
	h->off_pagemap = off = round_up(off, KV_CACHELINE);
	maxpages = g->size / h->page_size;
	off += maxpages * sizeof(struct kv_page);
	h->off_arena = off = round_up(off, 4096);
	if (off >= g->size || (g->size - off) / h->page_size == 0)
		return -1;
	h->npages = (uint32_t)((g->size - off) / h->page_size);

	plan_classes(h);
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
	if (lock_init(&h->alloc_lock) == -1 || lock_init(&h->users_lock) == -1 ||
	    lock_init(&h->compact_lock) == -1)
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
describe(char *buf, size_t n, uint64_t size, uint32_t value_max,
    uint32_t users, int cache)
{
	snprintf(buf, n, "-m %" PRIu64 " -I %" PRIu32 " -a %" PRIu32 "%s",
	    size / (1024 * 1024), value_max, users, cache ? " -E" : "");
}

static int
check_header(struct store *st, const struct store_geometry *g, char *err,
    size_t errlen)
{
	struct kv_header *h = st->hdr;
	char have[80], want[80];

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
	if (g != NULL && (g->size != h->size || g->value_max != h->value_max ||
	    g->users != h->nusers || (g->cache != 0) != (h->cache_mode != 0))) {
		describe(have, sizeof(have), h->size, h->value_max, h->nusers,
		    h->cache_mode != 0);
		describe(want, sizeof(want), g->size, g->value_max, g->users,
		    g->cache != 0);
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
	/*
	 * Huge pages where the kernel gives them to the segment's file (a
	 * /dev/shm mounted huge=advise or huge=always, or shmem_enabled
	 * "force"): a large table then costs far fewer TLB misses, and each
	 * new process far fewer page faults.  Elsewhere this is a no-op.
	 */
	(void)madvise(st->base, st->size, MADV_HUGEPAGE);
	st->hdr = (struct kv_header *)(void *)st->base;
	return 0;
}

/*
 * The segment's memory, allocated now; an errno value when there is no
 * room.  Room is looked at first, as posix_fallocate() does: filling
 * memory page by page up to a limit as large as the machine's memory
 * would wake the OOM killer before it failed.  (A tmpfs mounted with no
 * size limit has no room to look at; then, as with posix_fallocate(),
 * the memory is the limit.)  A failed populate gives back what it took,
 * the file keeping its size: a process attaching meanwhile reads zeros
 * (not ready), never past the end of the file (SIGBUS).
 */
static int
reserve(struct store *st)
{
	struct statvfs sv;
	int e;

	if (fstatvfs(st->fd, &sv) == 0 && sv.f_blocks > 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < st->size)
		return ENOSPC;
#ifdef MADV_POPULATE_WRITE
	if (madvise(st->base, st->size, MADV_POPULATE_WRITE) == 0) {
		/*
		 * The memory stays the segment's; this process only stops
		 * mapping all of it, so that its resident size does not
		 * make it the OOM killer's first choice: killing it would
		 * free nothing.  What it touches later is mapped again.
		 */
		(void)madvise(st->base, st->size, MADV_DONTNEED);
		return 0;
	}
	if ((e = errno) != EINVAL) {
		(void)fallocate(st->fd, FALLOC_FL_PUNCH_HOLE |
		    FALLOC_FL_KEEP_SIZE, 0, (off_t)st->size);
		return e == EFAULT ? ENOSPC : e;  /* EFAULT: the tmpfs is full */
	}
#endif
	(void)e;
	return posix_fallocate(st->fd, 0, (off_t)st->size);	/* Linux < 5.14 */
}

/* Why plan() refused: say what would fit, as flags. */
static void
too_small(const struct store_geometry *g, char *err, size_t errlen)
{
	struct store_geometry t = *g;
	struct kv_header h;
	uint64_t mb;

	if (g->users == 0 || g->users > KV_ACCOUNTS_MAX) {
		snprintf(err, errlen, "-a %u: a segment holds 1 to %u accounts",
		    g->users, KV_ACCOUNTS_MAX);
		return;
	}
	for (mb = (g->size >> 20) + 1; mb <= KV_MAX_SIZE_MB; mb++) {
		t.size = mb << 20;
		if (plan(&h, &t) == 0)
			break;
	}
	if (mb > KV_MAX_SIZE_MB)
		snprintf(err, errlen, "-a %u with -I %u does not fit in any "
		    "segment (-m %u at most)", g->users, g->value_max,
		    KV_MAX_SIZE_MB);
	else
		snprintf(err, errlen, "segment size %" PRIu64 " MiB (-m) is too "
		    "small for values of %u bytes (-I) and %u accounts (-a, "
		    "%" PRIu64 " bytes each, in the segment): give -m %" PRIu64
		    " or more", g->size >> 20, g->value_max, g->users,
		    (uint64_t)sizeof(struct kv_user) +
		    (names_for(g->users) * sizeof(uint32_t)) / g->users, mb);
}

/*
 * The hash key of a new segment: 16 bytes from the kernel's random pool
 * (getrandom(2) waits only until the pool is first seeded).  There is no
 * fallback to something guessable: no key, no segment.
 */
static int
random_hash_key(struct kv_header *h, char *err, size_t errlen)
{
	unsigned char b[SIP_KEY_LEN];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(b)) {
		n = getrandom(b + got, sizeof(b) - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "getrandom: %s",
			    n == -1 ? strerror(errno) : "no bytes");
			return -1;
		}
		got += (size_t)n;
	}
	sipkey_from_bytes(&h->hash_key, b);
	return 0;
}

static int
create_segment(struct store *st, const struct store_geometry *g, char *err,
    size_t errlen)
{
	struct kv_header h;
	int e;

	if (plan(&h, g) == -1) {
		too_small(g, err, errlen);
		return -1;
	}
	if (random_hash_key(&h, err, errlen) == -1)
		return -1;
	st->size = g->size;
	if (ftruncate(st->fd, (off_t)g->size) == -1) {
		snprintf(err, errlen, "ftruncate %s: %s", st->name,
		    strerror(errno));
		return -1;
	}
	if (map_segment(st, err, errlen) == -1)
		return -1;
	/*
	 * Reserve the memory now: no room in /dev/shm is an error here, not
	 * a SIGBUS in some child much later.  Through the mapping, which
	 * asked for huge pages, where the kernel can (Linux 5.14): the
	 * pages posix_fallocate() gives a file are never huge on a tmpfs
	 * mounted huge=advise, and a 2 MiB range holding one small page
	 * never becomes a huge one.
	 */
	if ((e = reserve(st)) != 0) {
		snprintf(err, errlen, "cannot reserve %" PRIu64 " MiB for "
		    "segment %s in /dev/shm: %s", g->size >> 20, st->name,
		    strerror(e));
		return -1;
	}
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

/*
 * An existing segment is trusted only if nobody but its user could have
 * written it: another local user may have created the name first (and
 * keep it open, or chmod it) to hand us accounts, roles and a header of
 * their choosing.  The rule: a regular shared-memory object of mode 0600
 * exactly, owned by the effective uid of this process; or, for root
 * attaching to a segment it does not create (kvstorectl, kvstored -C: the
 * operator working on the daemon user's segment), of any owner.  The
 * daemon itself (STORE_CREATE) takes only its own uid's segment, even as
 * root (-u root).
 */
static int
trust_segment(struct store *st, int flags, char *err, size_t errlen)
{
	const char *fix = "(remove it with kvstored -R -s";
	struct stat sb;
	uid_t me = geteuid();

	if (fstat(st->fd, &sb) == -1) {
		snprintf(err, errlen, "fstat %s: %s", st->name,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "segment %s: not a regular shared-memory "
		    "object: refusing it %s %s if it is stale)", st->name, fix,
		    st->name);
		return -1;
	}
	if (sb.st_uid != me && (me != 0 || (flags & STORE_CREATE))) {
		snprintf(err, errlen, "segment %s: owned by uid %u, not by uid "
		    "%u that this process runs as: refusing it %s %s if it is "
		    "stale)", st->name, (unsigned)sb.st_uid, (unsigned)me,
		    fix, st->name);
		return -1;
	}
	if ((sb.st_mode & 07777) != 0600) {
		snprintf(err, errlen, "segment %s: mode %04o, not 0600: anyone "
		    "else who can write it could have changed it: refusing it "
		    "%s %s if it is stale)", st->name,
		    (unsigned)(sb.st_mode & 07777), fix, st->name);
		return -1;
	}
	return 0;
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
	if (st->fd == -1 &&
	    (st->fd = shm_open(name, O_RDWR | O_NOFOLLOW, 0)) == -1) {
		snprintf(err, errlen, "shm_open %s: %s", name, strerror(errno));
		return -1;
	}
	/* Exactly 0600 whatever the umask: trust_segment() relies on it. */
	if (created && fchmod(st->fd, 0600) == -1) {
		snprintf(err, errlen, "fchmod %s: %s", name, strerror(errno));
		shm_unlink(name);
		store_close(st);
		return -1;
	}
	if ((!created && trust_segment(st, flags, err, errlen) == -1) ||
	    (created ? create_segment(st, g, err, errlen) :
	    attach_segment(st, g, err, errlen))) {
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

uint32_t
store_accounts_max(const struct store *st)
{
	return st->hdr->nusers;
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

/* ---- operations --------------------------------------------------------- */

int
store_get(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen, store_visit visit, void *ctx)
{
	struct found f;
	struct item_view v;
	uint32_t now = (uint32_t)time(NULL);

	find_locked(st, user, key, klen, &f);
	/* Under the stripe, as for writes: a slot deleted and taken by a new
	 * account since the caller's check shows nothing of the new one. */
	if (!account_live(st, user, gen)) {
		unlock_found(st, &f);
		return ST_NO_USER;
	}
	reap_expired(st, &f, user, now);
	if (f.item == NULL) {
		f.stripe->misses++;
		unlock_found(st, &f);
		return ST_NOT_FOUND;
	}
	f.stripe->hits++;
	view_of(f.item, &v);
	visit(ctx, &v);
	note_access(f.item, now);
	unlock_found(st, &f);
	return ST_OK;
}

int
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
static int
put_once(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen, const void *val, size_t vlen, const struct store_write *w,
    uint64_t *cas_out, size_t *needp, int last)
{
	struct found f;
	struct kv_item *old;
	const void *a = val, *b = NULL;
	size_t alen = vlen, blen = 0, need;
	uint32_t ref = 0, flags = w->flags, exptime = w->exptime;
	uint32_t now = (uint32_t)time(NULL);
	uint8_t meta = w->meta;
	int cls, rc;

	if (klen == 0 || klen > KV_KEY_MAX)
		return ST_ERROR;
	if (vlen > st->hdr->value_max)
		return ST_TOO_LARGE;
	if (store_test_unlocked != NULL)
		store_test_unlocked();
	find_locked(st, user, key, klen, &f);
	if (!account_live(st, user, gen)) {
		rc = ST_NO_USER;
		goto out;
	}
	reap_expired(st, &f, user, now);
	old = f.item;
	switch (w->mode) {
	case W_ADD:
		if (old != NULL) {
			rc = ST_NOT_STORED;
			goto out;
		}
		break;
	case W_APPEND:
	case W_PREPEND:
		if (old != NULL && w->cas_check && w->cas != 0 &&
		    old->cas != w->cas) {
			rc = ST_EXISTS;
			goto out;
		}
		/* FALLTHROUGH */
	case W_REPLACE:
		if (old == NULL) {
			rc = ST_NOT_STORED;
			goto out;
		}
		break;
	case W_CAS:
		if (old == NULL) {
			f.stripe->cas_misses++;
			rc = ST_NOT_FOUND;
			goto out;
		}
		if (old->cas != w->cas && !(w->stale_ok && w->cas < old->cas)) {
			f.stripe->cas_badval++;
			rc = ST_EXISTS;
			goto out;
		}
		if (old->cas != w->cas) {
			/* memcached's ms I: stored, but stale, keeping the
			 * expiry and whether a recache was already won. */
			exptime = old->exptime;
			meta |= ITEM_META_STALE | (old->pad & ITEM_META_WON);
		}
		f.stripe->cas_hits++;
		break;
	case W_SET:
		break;
	}
	if ((w->mode == W_APPEND || w->mode == W_PREPEND) && old != NULL) {
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
	*needp = need = ITEM_HDR + klen + alen + blen;
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
	if ((rc = alloc_chunk(st, need, &ref)) != ST_OK) {
		if (rc == ST_FULL && last)
			f.stripe->no_memory++;
		goto out;
	}
	fill(st, ref, user, f.hash, key, klen, a, alen, b, blen, flags,
	    exptime);
	item_at(st, ref)->pad = meta;
	if (store_test_hold != NULL)
		store_test_hold();
	/* Checked again at the commit: the stripe was held all along, but
	 * a test's hold above may have let a userdel begin. */
	if (!account_live(st, user, gen)) {
		drop_pending(st, registry_slot(st));
		rc = ST_NO_USER;
		goto out;
	}
	f.stripe->puts++;
	publish(st, &f, user, ref);
	if (cas_out != NULL)
		*cas_out = item_at(st, ref)->cas;
out:
	unlock_found(st, &f);
	return rc;
}

/*
 * A write that finds no room, or its store at its quota, is tried again
 * while make_room() (room.c) frees something, ROOM_TRIES times at most:
 * the room one writer made may go to another writer before its own try.
 * make_room() runs with no stripe held, since it takes stripes of its
 * own.  The last try of a write that found no room is made in any case,
 * so that the try that refuses it counts it (store_no_memory counts
 * writes refused, not writes that made room).
 */
int
store_put(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen, const void *val, size_t vlen, const struct store_write *w,
    uint64_t *cas_out)
{
	size_t need = 0;
	int rc, tries, made;

	rc = put_once(st, user, gen, key, klen, val, vlen, w, cas_out, &need,
	    0);
	for (tries = 1; (rc == ST_FULL || rc == ST_QUOTA) &&
	    tries <= ROOM_TRIES; tries++) {
		made = make_room(st, user, need, rc);
		if (!made && rc != ST_FULL)
			break;
		rc = put_once(st, user, gen, key, klen, val, vlen, w, cas_out,
		    &need, !made || tries == ROOM_TRIES);
		if (!made)
			break;
	}
	return rc;
}

int
store_del(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen)
{
	struct found f;
	uint32_t now = (uint32_t)time(NULL);
	int rc = ST_NOT_FOUND;

	find_locked(st, user, key, klen, &f);
	if (!account_live(st, user, gen)) {
		unlock_found(st, &f);
		return ST_NO_USER;
	}
	reap_expired(st, &f, user, now);
	if (f.item != NULL) {
		f.stripe->dels++;
		publish(st, &f, user, 0);
		rc = ST_OK;
	} else
		f.stripe->delete_misses++;
	unlock_found(st, &f);
	return rc;
}

int
store_touch(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen, uint32_t exptime, store_visit visit, void *ctx)
{
	struct found f;
	struct item_view v;
	uint32_t now = (uint32_t)time(NULL);

	find_locked(st, user, key, klen, &f);
	if (!account_live(st, user, gen)) {
		unlock_found(st, &f);
		return ST_NO_USER;
	}
	reap_expired(st, &f, user, now);
	if (f.item == NULL) {
		f.stripe->touch_misses++;
		unlock_found(st, &f);
		return ST_NOT_FOUND;
	}
	f.stripe->touch_hits++;
	/* One aligned word: a reader sees the old or the new expiry. */
	STORE(&f.item->exptime, exptime);
	note_expiry(st, exptime);
	if (exptime != 0 && exptime <= now)
		publish(st, &f, user, 0);
	else {
		if (visit != NULL) {
			view_of(f.item, &v);
			visit(ctx, &v);
		}
		note_access(f.item, now);
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

static int
arith_once(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen, int incr, uint64_t delta, uint64_t *result)
{
	struct found f;
	struct kv_item *old;
	struct store_write w;
	char num[24];
	uint64_t v;
	uint32_t ref, now = (uint32_t)time(NULL);
	int rc, n;

	find_locked(st, user, key, klen, &f);
	if (!account_live(st, user, gen)) {
		rc = ST_NO_USER;
		goto out;
	}
	reap_expired(st, &f, user, now);
	if ((old = f.item) == NULL) {
		if (incr)
			f.stripe->incr_misses++;
		else
			f.stripe->decr_misses++;
		rc = ST_NOT_FOUND;
		goto out;
	}
	if (incr)
		f.stripe->incr_hits++;
	else
		f.stripe->decr_hits++;
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

int
store_arith(struct store *st, uint32_t user, uint32_t gen, const void *key,
    size_t klen, int incr, uint64_t delta, uint64_t *result)
{
	int rc, tries;

	rc = arith_once(st, user, gen, key, klen, incr, delta, result);
	for (tries = 1; rc == ST_FULL && tries <= ROOM_TRIES &&
	    make_room(st, user, ITEM_HDR + klen + 20, rc); tries++)
		rc = arith_once(st, user, gen, key, klen, incr, delta, result);
	return rc;
}

/* Remove every item of one user from one stripe, which the caller holds. */
void
flush_stripe_locked(struct store *st, uint32_t s, uint32_t user)
{
	struct kv_header *h = st->hdr;
	uint32_t b, ref;
	struct found f;

	f.stripe = &stripes(st)[s];
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
}

/* Remove every item of one user, a stripe at a time. */

/*
 * Visit a user's live items, a few stripes a call: from stripe *cursor,
 * at most max stripes, each locked only while its buckets are walked, so a
 * large store is listed in pieces without holding up its writers.  Returns
 * 1 with *cursor set where the next call goes on, 0 when the walk is done.
 * An item that exists for the whole walk is visited exactly once; one
 * written or deleted meanwhile may or may not be.
 */
int
store_scan(struct store *st, uint32_t user, uint32_t gen, uint32_t *cursor,
    uint32_t max, store_visit visit, void *ctx)
{
	struct kv_header *h = st->hdr;
	uint32_t s, b, ref, now = (uint32_t)time(NULL);
	struct kv_stripe *sp;
	struct kv_item *it;
	struct item_view v;
	uint64_t mark = flush_mark(st, user, now);

	for (s = *cursor; s < h->nstripes && max > 0; s++, max--) {
		sp = &stripes(st)[s];
		lock_acquire(st, &sp->lock);
		if (!account_live(st, user, gen)) {
			lock_release(st, &sp->lock);
			*cursor = 0;
			return -1;	/* the account went: no more of it */
		}
		for (b = s; b < h->nbuckets; b += h->nstripes)
			for (ref = buckets(st)[b]; ref != 0; ref = it->next) {
				it = item_at(st, ref);
				if (it->user != user || expired(it, now) ||
				    it->cas <= mark)
					continue;
				view_of(it, &v);
				visit(ctx, &v);
			}
		lock_release(st, &sp->lock);
	}
	*cursor = s < h->nstripes ? s : 0;
	return s < h->nstripes;
}
int
store_flush_user(struct store *st, uint32_t user)
{
	uint32_t s;

	for (s = 0; s < st->hdr->nstripes; s++) {
		lock_acquire(st, &stripes(st)[s].lock);
		flush_stripe_locked(st, s, user);
		lock_release(st, &stripes(st)[s].lock);
	}
	return ST_OK;
}

/*
 * memcached's flush_all: the user's items stored before the time when
 * (Unix seconds; 0 or past: now) are absent from then on, and those stored
 * after stay.  A flush now reads the cas sequence at once and frees the
 * items it covers, a stripe at a time; a delayed one is settled by the
 * first access at or after its time (flush_mark()), and its items are
 * freed as they are met.  A later flush replaces one still pending, as in
 * memcached.
 */
int
store_flush_items(struct store *st, uint32_t user, int64_t when)
{
	struct kv_header *h = st->hdr;
	uint32_t s, b, ref, now = (uint32_t)time(NULL);
	uint64_t seq, old, mark;
	struct kv_user *u;
	struct found f;

	if (user == 0 || user > h->nusers)
		return ST_NO_USER;
	u = &users(st)[user - 1];
	(void)flush_mark(st, user, now);	/* settle one come due */
	if (when > (int64_t)now) {
		/* Then the bound (expire.c): a pass that began before this
		 * store either read it or has the bound lowered behind it. */
		STORE(&u->flush_at, when);
		note_expiry(st, when < UINT32_MAX ? (uint32_t)when :
		    UINT32_MAX - 1);
		return ST_OK;
	}
	STORE(&u->flush_at, 0);
	/* Due now for the passes too (expire.c): what a flush killed half
	 * way leaves linked is reclaimed by the next one. */
	note_expiry(st, now);
	seq = LOAD(&h->cas_seq);
	old = LOAD(&u->flush_cas);
	while (old < seq && !CAS(&u->flush_cas, old, seq))
		;
	mark = LOAD(&u->flush_cas);
	for (s = 0; s < h->nstripes; s++) {
		f.stripe = &stripes(st)[s];
		lock_acquire(st, &f.stripe->lock);
		for (b = s; b < h->nbuckets; b += h->nstripes) {
			f.link = &buckets(st)[b];
			while ((ref = *f.link) != 0) {
				f.item = item_at(st, ref);
				if (f.item->user == user &&
				    f.item->cas <= mark)
					publish(st, &f, user, 0);
				else
					f.link = &f.item->next;
			}
		}
		lock_release(st, &f.stripe->lock);
	}
	return ST_OK;
}

/* How many stripes store_scan() walks in all. */
uint32_t
store_stripes(const struct store *st)
{
	return st->hdr->nstripes;
}
