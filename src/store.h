/*
 * store.h - the key-value table in POSIX shared memory.
 *
 * Keys belong to users: the same key under two user ids is two items, and no
 * call here crosses from one user's items to another's unless the caller
 * names the other user.  Who may name whom is the session's business.
 */
#ifndef STORE_H
#define STORE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct kv_header;
struct kv_lock;

struct store {
	char			*base;
	size_t			 size;
	int			 fd;
	struct kv_header	*hdr;
	uint32_t		 slot;		/* registry slot + 1, 0 = none */
	uint32_t		 pid;
	char			 name[256];
};

/* Geometry chosen when a segment is created; a later open must match. */
struct store_geometry {
	uint64_t	size;		/* bytes, the account table's included */
	uint32_t	value_max;
	int		cache;		/* cache mode: evict rather than refuse */
	uint32_t	users;		/* accounts the segment can hold */
};

enum store_result {
	ST_OK = 0,
	ST_NOT_FOUND,
	ST_EXISTS,		/* cas mismatch */
	ST_NOT_STORED,		/* add of a present key, replace of an absent one */
	ST_FULL,
	ST_QUOTA,
	ST_TOO_LARGE,
	ST_NOT_NUMBER,		/* incr/decr of a value that is not a number */
	ST_NO_USER,
	ST_ERROR,
	ST_DELETING		/* the name's account is being deleted */
};

enum store_mode {
	W_SET = 0, W_ADD, W_REPLACE, W_APPEND, W_PREPEND, W_CAS
};

struct store_write {
	enum store_mode	mode;
	uint32_t	flags;
	uint32_t	exptime;	/* absolute Unix time, 0 = never */
	uint64_t	cas;		/* for W_CAS */
	uint64_t	quota_keys;	/* 0 = unlimited */
	uint64_t	quota_bytes;
	/* memcached's meta set (ms); all 0 for the classic commands */
	uint8_t		meta;		/* ITEM_META_* bits the item starts with */
	int		stale_ok;	/* W_CAS: an older cas stores, marked stale */
	int		cas_check;	/* W_APPEND, W_PREPEND: cas must match */
};

/* memcached's per-item meta state (the item's pad byte). */
#define ITEM_META_FETCHED	0x01	/* read since it was written */
#define ITEM_META_WON		0x02	/* a recache win was handed out */
#define ITEM_META_STALE		0x04	/* marked stale (md I, ms I) */
#define ITEM_META_BINKEY	0x08	/* its key came base64-encoded */
#define ITEM_META_ACTIVE	0x10	/* read since the clock hand passed */

struct item_view {
	const char	*key;
	size_t		 klen;
	const char	*value;
	size_t		 vlen;
	uint32_t	 flags;
	uint32_t	 exptime;
	uint64_t	 cas;
	uint32_t	 atime;		/* last access (or write), Unix time */
	int		 fetched;	/* read since it was written */
	uint8_t		 meta;		/* ITEM_META_* */
	uint8_t		 cls;		/* size class, from 0 */
	uint32_t	 size;		/* header, key and value bytes */
};

/*
 * memcached's meta get (mg), one atomic step under the stripe lock.  The
 * visit sees the item as it was before the request (exptime, atime,
 * fetched), with the out fields already set.
 */
struct store_mget {
	int		 touch;		/* T: set the expiry */
	uint32_t	 touch_exp;
	int		 vivify;	/* N: a miss makes an empty item */
	uint32_t	 viv_exp;
	int		 recache;	/* R: win when exptime < recache_exp */
	uint32_t	 recache_exp;
	int		 touch_first;	/* T came before R in the request */
	int		 viv_last;	/* N came after T */
	int		 no_bump;	/* u, and me: fetched, atime unchanged */
	uint64_t	 quota_keys, quota_bytes;	/* for N's item */
	/* out */
	int		 created;	/* N made the item */
	int		 won;		/* W */
	int		 token_sent;	/* Z: another client won before */
	int		 stale;		/* X */
	uint32_t	 exptime;	/* after the request */
};

/* memcached's meta delete (md). */
struct store_mdel {
	int		 cas_check;	/* C */
	uint64_t	 cas;
	int		 stale;		/* I: mark stale, new cas, keep */
	int		 touch;		/* T, with I only */
	uint32_t	 touch_exp;
};

/* memcached's meta arithmetic (ma). */
struct store_marith {
	int		 incr;
	uint64_t	 delta;
	int		 cas_check;	/* C */
	uint64_t	 cas;
	int		 vivify;	/* N: a miss creates initial */
	uint32_t	 viv_exp;
	uint64_t	 initial;	/* J */
	int		 touch;		/* T: on success, set the expiry */
	uint32_t	 touch_exp;
	int		 viv_last;	/* N came after T: its expiry wins */
	uint64_t	 quota_keys, quota_bytes;
	/* out */
	uint64_t	 value;
	uint64_t	 new_cas;
	uint32_t	 exp_before;	/* the expiry before T and N */
	int		 created;
};

/* Called with the stripe locked: copy what is needed, do not block. */
typedef void	(*store_visit)(void *ctx, const struct item_view *);

struct store_stats {
	uint64_t	items, bytes_used, bytes_free, bytes_limit;
	uint64_t	hits, misses, puts, dels;
	uint64_t	delete_misses, touch_hits, touch_misses;
	uint64_t	incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t	cas_hits, cas_misses, cas_badval, reclaimed, no_memory;
	uint64_t	evictions;
	int		cache_mode;
	uint64_t	items_moved, pages_moved;	/* by compaction */
	uint64_t	rejected_connections;
	uint64_t	total_connections, curr_connections, auth_failures;
	uint32_t	value_max;
	int64_t		created;
	/* expire.c's: the crawler's share of reclaimed, the items it looked
	 * at, and expired items reclaimed that were never read */
	uint64_t	crawler_reclaimed, crawler_checked, expired_unfetched;
};

struct user_view {
	uint32_t	id;
	char		name[33];
	int		role;
	uint32_t	gen;
	uint64_t	keys, bytes, evictions;
	uint64_t	quota_keys, quota_bytes;
	uint32_t	fails;
	char		hash[128];
	int		deleting;	/* store_user_list_deleting()'s */
	uint32_t	deleter;	/* by this pid, 0 = unknown */
	int		deleter_alive;	/* 0: that userdel was interrupted */
};

#define STORE_CREATE	0x1	/* create when absent */
#define STORE_READONLY	0x2	/* map for reading only (checker) */

int	 store_open(struct store *, const char *name,
	    const struct store_geometry *, int flags, char *err, size_t errlen);
void	 store_close(struct store *);
int	 store_remove(const char *name);
int	 store_exists(const char *name);
void	 store_geometry_default(struct store_geometry *, uint64_t size_mb,
	    uint32_t value_max);

/* Each process that changes the store registers once, after fork(). */
int	 store_attach_process(struct store *);
void	 store_detach_process(struct store *);
void	 store_reap(struct store *, uint32_t pid);	/* 0: every dead one */

int	 store_get(struct store *, uint32_t user, uint32_t gen, const void *key,
	    size_t klen, store_visit, void *ctx);
/*
 * A hint before a batch of lookups (a pipelined batch of gets): warm the
 * caches for each key's bucket, stripe lock and first item, so that their
 * misses overlap instead of following one another.  It changes nothing,
 * takes no lock and reads nothing out; at most STORE_PREFETCH_MAX keys.
 */
#define STORE_PREFETCH_MAX	16
struct store_key {
	const void	*key;
	size_t		 len;
};
void	 store_prefetch(struct store *, uint32_t user, const struct store_key *,
	    unsigned n);
/*
 * Writes name the account generation the caller acted on (a session's,
 * as of its login or its "use"); the store checks it, with the account's
 * state, under the key's stripe lock and answers ST_NO_USER when the
 * account was deleted since, or is being deleted.  USER_ANY_GEN skips the
 * generation but still wants an active account.
 */
int	 store_put(struct store *, uint32_t user, uint32_t gen, const void *key,
	    size_t klen, const void *val, size_t vlen, const struct store_write *,
	    uint64_t *cas_out);
int	 store_del(struct store *, uint32_t user, uint32_t gen, const void *key,
	    size_t klen);
int	 store_touch(struct store *, uint32_t user, uint32_t gen,
	    const void *key, size_t klen, uint32_t exptime, store_visit,
	    void *ctx);
int	 store_arith(struct store *, uint32_t user, uint32_t gen,
	    const void *key, size_t klen, int incr, uint64_t delta,
	    uint64_t *result);
int	 store_flush_user(struct store *, uint32_t user);
int	 store_mget(struct store *, uint32_t user, uint32_t gen,
	    const void *key, size_t klen, struct store_mget *, store_visit,
	    void *ctx);
int	 store_mdel(struct store *, uint32_t user, uint32_t gen,
	    const void *key, size_t klen, const struct store_mdel *);
int	 store_marith(struct store *, uint32_t user, uint32_t gen,
	    const void *key, size_t klen, struct store_marith *);
int	 store_flush_items(struct store *, uint32_t user, int64_t when);
int	 store_scan(struct store *, uint32_t user, uint32_t gen,
	    uint32_t *cursor, uint32_t max_stripes, store_visit, void *ctx);
uint32_t store_stripes(const struct store *);
void	 store_stats(struct store *, struct store_stats *);
void	 store_note_connection(struct store *);
void	 store_note_closed(struct store *);
void	 store_note_auth_failure(struct store *);
void	 store_note_rejected(struct store *);
/* Size classes: chunk bytes, pages carved, chunks never handed out. */
/*
 * A size class, server-wide: chunk bytes, pages it holds, chunks a page,
 * chunks handed out, chunks freed on its pages, chunks not carved yet.
 */
struct store_class {
	uint32_t	size, pages, chunks_per_page, unused;
	uint64_t	evicted;
	uint32_t	used, free;
};
uint32_t store_classes(struct store *, struct store_class *, uint32_t max);
uint32_t store_value_max(const struct store *);
uint32_t store_accounts_max(const struct store *);	/* the table's size */

/* User slots: mechanism only; roles and secrets mean something in auth.c. */
uint32_t store_user_find(struct store *, const char *name);
int	 store_user_create(struct store *, const char *name, int role,
	    const char *hash, uint32_t *id);
int	 store_user_get(struct store *, uint32_t id, struct user_view *);
int	 store_user_set(struct store *, uint32_t id, int role,
	    const char *hash);
int	 store_user_mark_deleting(struct store *, uint32_t id);
int	 store_user_delete(struct store *, uint32_t id);
uint32_t store_user_find_deleting(struct store *, const char *name);
void	 store_user_list_deleting(struct store *,
	    void (*)(void *, const struct user_view *), void *);
int	 store_user_role(struct store *, uint32_t id, uint32_t gen);
#define USER_ANY_GEN	UINT32_MAX	/* any generation of a live account */
uint32_t store_user_count(struct store *);

void	 store_user_list(struct store *,
	    void (*)(void *, const struct user_view *), void *);
int	 store_user_scan(struct store *, uint32_t *cursor, uint32_t max,
	    void (*)(void *, const struct user_view *), void *);
uint32_t store_user_fail(struct store *, uint32_t id, int reset);
void	 store_set_users_file(struct store *, const char *);
const char *store_users_file(struct store *);

/* The audit ring, and counters per peer address for throttling. */
void	 store_audit(struct store *, const char *line);
void	 store_audit_read(struct store *, unsigned max,
	    void (*)(void *, const char *), void *);
uint32_t store_peer_fails(struct store *, const char *addr);
void	 store_peer_fail(struct store *, const char *addr);
uint32_t store_name_fails(struct store *, const char *name);
/* ms since the last failure of the address or the name, whichever is
 * younger */
#define STORE_AGE_NONE		UINT32_MAX		/* none counted */
#define STORE_AGE_UNKNOWN	(UINT32_MAX - 1)	/* counted, no time */
uint32_t store_login_fail_age(struct store *, const char *addr,
	    const char *name);
void	 store_name_fail(struct store *, const char *name, int reset);
int	 store_peer_login_begin(struct store *, const char *addr,
	    unsigned wait_ms, volatile sig_atomic_t *stop);
void	 store_peer_login_end(struct store *, const char *addr);
int	 store_peer_register(struct store *, const char *addr, uint32_t limit,
	    int window);

/* Connections per client address (conns.c), for kvstored -H and -U. */
#define STORE_CONN_OK		0
#define STORE_CONN_ADDR		1	/* over the limit for the address */
#define STORE_CONN_PRELOGIN	2	/* over the limit before login */
int	 store_conn_claim(struct store *, const char *addr, int logged_in,
	    unsigned per_addr, unsigned per_prelogin, uint32_t *slot);
void	 store_conn_login(struct store *, uint32_t slot);
void	 store_conn_release(struct store *, uint32_t slot);
void	 store_conn_forget(struct store *, uint32_t pid);
void	 store_conn_sweep(struct store *);

int	 store_check(struct store *, FILE *report);

/*
 * The crawler's pass over the table (expire.c), in steps: each walks up to
 * max_stripes stripes or max_items items, whichever comes first, unlinking
 * expired and flushed items; it does nothing while no expiry has come due.
 * Returns the stripes walked.  The fields are the pass's own.
 */
struct store_crawl {
	uint32_t	cursor;		/* the next stripe */
	int		slot;		/* the header's claim, -1 = none */
	int		active;		/* a pass is under way */
	uint32_t	now;
	uint32_t	low;		/* the earliest expiry left so far */
	uint32_t	user;
	uint64_t	freed, freed_user;
};
void	 store_crawl_init(struct store_crawl *);
uint32_t store_crawl(struct store *, struct store_crawl *,
	    uint32_t max_stripes, uint32_t max_items);
void	 store_crawl_end(struct store *, struct store_crawl *);

/*
 * Test builds (KV_TEST_HOOKS) set these to widen a window: store_test_hold
 * runs while a put holds its stripe, its new chunk filled and not yet
 * published; store_test_unlocked as a put begins, before it takes its
 * stripe (its caller has checked the account; the store has not yet);
 * store_test_stripe after a walk that goes a stripe at a time (the
 * checker, userdel's flush) has let go of stripe done (1-based) of of;
 * store_test_move while a compaction holds an item's stripe, its copy
 * made and not yet published in its place;
 * store_test_crawl while the crawler holds a stripe, right after it has
 * reclaimed an item there.
 */
extern void	(*store_test_hold)(void);
extern void	(*store_test_crawl)(void);
extern void	(*store_test_unlocked)(void);
extern void	(*store_test_stripe)(uint32_t done, uint32_t of);
/*
 * store_test_accounts(step) runs inside the users lock's critical sections
 * of accounts.c, at their last step before the commit: "create" (the name
 * indexed and the slot published), "delete" (the name's tombstone left and
 * the slot freed), and "rebuild" (the name index emptied, not yet refilled).
 */
extern void	(*store_test_accounts)(const char *step);
extern void	(*store_test_move)(void);

#endif
