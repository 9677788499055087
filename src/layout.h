/*
 * layout.h - the shared-memory segment, byte for byte.
 *
 * Every process that maps the segment reads it through these structures, at
 * whatever address its mapping landed: all references inside are offsets
 * (struct members named off_* in bytes, item references in units of 8 bytes),
 * never pointers.  The header's magic, version and abi words let a binary
 * built with another layout, sem_t size or lock size refuse to attach.
 *
 *	header | stripes | buckets | users | names | slots | audit | peers |
 *	conns | page map (a struct kv_page per page) | arena
 *
 * Only the store's files (through store_impl.h), lock.c and the store's
 * fuzz target include this file.
 */
#ifndef LAYOUT_H
#define LAYOUT_H

#include <semaphore.h>
#include <stdint.h>

#include "kvstore.h"
#include "siphash.h"

#define KV_MAGIC		0x31534f5453564b4bULL	/* "KKVSTOS1" */
#define KV_LAYOUT_VERSION	6	/* 6: conns_reach */
#define KV_CLASSES_MAX		64
#define KV_SLOTS		4096	/* processes attached at once */
#define KV_STRIPES_MAX		1024
#define KV_ITEM_ALIGN		8
#define KV_LOCK_LOG		24	/* undo entries one critical section may need */
#define KV_CACHELINE		64
#define KV_AUDIT_LINES		256	/* the in-memory audit ring */
#define KV_AUDIT_LEN		248
#define KV_PEERS		4096	/* failed-login and registration counters */
#define KV_PATH_MAX		256
#define KV_CONNS		KV_SLOTS	/* connections counted per address */
#define KV_EXP_PASSES		4	/* expiry passes that keep exp_next */

/*
 * A recoverable lock: a process-shared semaphore plus what another process
 * needs to take over from a holder that died.  The holder records its pid
 * right after sem_wait() returns and logs the old value of every shared word
 * before it changes it; a process that finds the holder dead replays the log
 * backwards, which returns the protected data to its state before the
 * interrupted critical section.  tx_commit() empties the log in one store.
 */
struct kv_undo {
	uint64_t	at;		/* the word's byte offset in the segment
					 * (it may lie past 4 GiB), | 1 for a
					 * word of 8 bytes, not 4 */
	uint64_t	old;
};

struct kv_lock {
	sem_t		sem;
	uint32_t	holder;		/* pid, 0 while free or in the entry window */
	uint32_t	seq;		/* acquisitions, to see progress */
	uint32_t	nlog;
	uint32_t	pad;
	struct kv_undo	log[KV_LOCK_LOG];
} __attribute__((aligned(KV_CACHELINE)));

/* One stripe guards the buckets whose index equals it modulo nstripes. */
struct kv_stripe {
	struct kv_lock	lock;
	uint64_t	items;		/* items in this stripe's buckets */
	uint64_t	bytes;		/* chunk bytes they occupy */
	uint64_t	hits, misses, puts, dels;
	/* memcached's stats names; under the stripe lock like the above */
	uint64_t	delete_misses, touch_hits, touch_misses;
	uint64_t	incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t	cas_hits, cas_misses, cas_badval;
	uint64_t	reclaimed;	/* expired items unlinked */
	uint64_t	no_memory;	/* writes refused: the arena was full */
	uint64_t	evictions;	/* items evicted (cache mode) */
	/* expire.c's: the crawler's share of reclaimed, the items it
	 * looked at, and reclaimed items never read */
	uint64_t	crawler_reclaimed;
	uint64_t	crawler_checked;
	uint64_t	expired_unfetched;
} __attribute__((aligned(KV_CACHELINE)));

/* A stored item; its chunk comes from one size class. */
struct kv_item {
	uint32_t	next;		/* ref of the next item in the chain, 0 = end */
	uint32_t	hash;		/* high half of the 64-bit hash */
	uint32_t	user;		/* owner's user id */
	uint32_t	vlen;
	uint8_t		klen;
	uint8_t		cls;
	uint8_t		state;		/* ITEM_FREE or ITEM_USED */
	uint8_t		pad;		/* ITEM_META_* bits (store.h) */
	uint32_t	flags;		/* memcached client flags */
	uint32_t	exptime;	/* absolute Unix time, 0 = never */
	uint32_t	pad2;		/* last access, Unix time */
	uint64_t	cas;
	char		data[];		/* key bytes, then value bytes */
};
#define ITEM_FREE	0x46
#define ITEM_USED	0x55

/*
 * An account being deleted keeps its slot, its name and its generation
 * (moved on) until its last item is gone: a userdel killed half way leaves
 * it so, and the next userdel of the name finishes it.
 */
#define USER_EMPTY	0
#define USER_ACTIVE	1
#define USER_DELETING	2

struct kv_user {
	uint32_t	state;		/* USER_EMPTY, USER_ACTIVE, USER_DELETING */
	uint32_t	role;		/* KV_ROLE_GUEST or KV_ROLE_MANAGER */
	uint32_t	gen;		/* bumped on delete: stale sessions notice */
	uint32_t	hash_sel;	/* which of hash[] is current */
	char		name[KV_USER_MAX + 8];
	uint64_t	keys;		/* under the alloc lock */
	uint64_t	bytes;		/* chunk bytes, under the alloc lock */
	uint64_t	quota_keys;	/* 0 = the daemon's default */
	uint64_t	quota_bytes;
	uint32_t	fails;		/* failed logins in a row */
	uint32_t	deleter;	/* pid of the userdel at work, 0 = none */
	int64_t		last_fail;
	/*
	 * memcached's flush_all with a delay, per store: at flush_at (0 =
	 * none pending) the store's cas sequence is read into flush_cas, and
	 * its items with a cas up to that are absent (store.c's flush_mark()).
	 */
	int64_t		flush_at;
	uint64_t	flush_cas;
	char		hash[2][KV_HASH_MAX];	/* written aside, then selected */
	uint64_t	evictions;	/* its items evicted (cache mode), atomic */
	uint32_t	next_free;	/* an empty slot's successor on the free
					 * list (kv_header users_free), 0 = end */
	uint32_t	hand;		/* cache mode: where its quota's sweep
					 * stopped, a ref (evict.c) */
};

/*
 * The name index (accounts.c): an open-addressing table of names_mask + 1
 * 32-bit entries, at least twice the account table, probed linearly from
 * the name's hash.  An entry is NAME_EMPTY, NAME_TOMB (an account was
 * here), or a slot id in the low NAME_ID_BITS and the top bits of the
 * name's hash above them, so that a probe reads a slot only when those
 * match.  It holds every account that is not USER_EMPTY.
 */
#define NAME_EMPTY	0
#define NAME_TOMB	UINT32_MAX
#define NAME_ID_BITS	22
#define NAME_ID_MASK	((1U << NAME_ID_BITS) - 1)

/* One audit line; seq is written after the text, so a torn line shows. */
struct kv_audit {
	uint64_t	seq;
	char		line[KV_AUDIT_LEN];
};

/*
 * Counters per peer address, and per login name, hashed, shared by every
 * connection process: failed logins for the growing delay, registrations
 * for the rate limit, and the one login attempt an address may have in
 * progress.  A name's entry exists whether or not the account does, so
 * that the delay tells nothing about which names are accounts.  Updated
 * with atomics, no lock: a lost update only softens a limit.
 */
struct kv_peer {
	uint64_t	key;		/* hash of the address or name, 0 = empty */
	uint32_t	fails;
	uint32_t	regs;		/* registrations in the current window */
	int64_t		last_fail;
	int64_t		reg_window;	/* start of the registration window */
	uint32_t	busy;		/* pid checking a login from it, 0 = none */
	uint32_t	fail_ms;	/* CLOCK_MONOTONIC ms of last_fail, low bits */
};

/*
 * A connection counted against the per-address limits (conns.c).  who packs
 * the address's hash (high half, never 0) and the serving process's pid
 * (low half) in one word, so that claiming an entry and clearing a dead
 * process's entry are each one compare-and-swap.  0 = free.
 */
struct kv_conn {
	uint64_t	who;
	uint32_t	logged_in;	/* written by the serving process only */
	uint32_t	pad;
};

/*
 * A process registry slot.  want names the lock a process is about to take
 * (so a death in the window between sem_wait() and recording the holder can
 * be found); pending and final_* let a survivor finish or undo a dead
 * process's allocation and the bookkeeping after a committed write.
 */
struct kv_slot {
	uint32_t	pid;
	uint32_t	want;		/* offset of the lock being taken, 0 = none */
	uint32_t	pending;	/* ref allocated but not yet published */
	uint32_t	final_valid;
	uint32_t	final_old;	/* ref to free after a committed write */
	uint32_t	final_user;
	uint32_t	reaper;		/* pid finishing this dead slot, 0 = none */
	uint32_t	conns;		/* connections it serves now (stats) */
	int64_t		final_dkeys;
	int64_t		final_dbytes;
} __attribute__((aligned(KV_CACHELINE)));

/*
 * A size class (alloc.c, under the alloc lock): its pages with a free or
 * never-carved chunk are on a list of their own, the first one first to
 * hand out; a full page is on no list.
 */
struct kv_class {
	uint32_t	size;		/* chunk bytes */
	uint32_t	partial;	/* page + 1 of the first partly-free page */
	uint32_t	pages;		/* pages the class holds */
	uint32_t	used;		/* chunks handed out, in all its pages */
};

/*
 * A page's descriptor, one per page of the arena in the page map (alloc.c,
 * under the alloc lock).  A page belongs to one class while any of its
 * chunks is handed out, and to none in the pool of empty pages.
 */
struct kv_page {
	uint32_t	cls;		/* class + 1; 0 = empty, in the pool */
	uint32_t	used;		/* chunks handed out (in use or pending) */
	uint32_t	free_head;	/* ref of the page's first free chunk */
	uint32_t	carved;		/* chunks carved so far, from the start */
	uint32_t	prev, next;	/* page + 1 on its class's list or the
					 * pool (next only); 0 = none */
};

struct kv_header {
	uint64_t	magic;
	uint32_t	version;
	uint32_t	abi;
	uint32_t	ready;		/* set last when initialisation is done */
	uint32_t	page_size;
	uint64_t	size;
	uint32_t	value_max;
	uint32_t	nbuckets;	/* a power of two */
	uint32_t	nstripes;	/* a power of two, <= nbuckets */
	uint32_t	nusers;
	uint32_t	nslots;
	uint32_t	npages;
	uint32_t	nclasses;
	uint32_t	conns_reach;	/* conns.c: 1 + the per-address entries
					 * ever claimed */
	uint64_t	off_stripes, off_buckets, off_users, off_slots;
	uint64_t	off_pagemap, off_arena;
	uint64_t	off_audit, off_peers, off_conns;
	uint32_t	nconns;
	uint32_t	rejected;	/* connections refused at a limit */
	int64_t		created;
	uint64_t	cas_seq __attribute__((aligned(KV_CACHELINE)));
	uint64_t	total_connections;
	uint64_t	auth_failures;
	uint64_t	audit_seq;
	char		users_file[KV_PATH_MAX];	/* -A, for kvstorectl */
	struct kv_lock	alloc_lock;	/* classes, pages, user counters */
	struct kv_lock	users_lock;	/* user slots' names, roles, hashes */
	uint32_t	next_page;	/* under the alloc lock */
	uint32_t	pad3;
	struct kv_class	classes[KV_CLASSES_MAX];
	/* The accounts, sized at creation (kvstored -a); under the users
	 * lock, logged, except names_gen (see accounts.c). */
	uint64_t	off_names;	/* the name index */
	uint32_t	names_mask;	/* its entries - 1, a power of two - 1 */
	uint32_t	names_gen;	/* odd while it is rebuilt */
	uint32_t	names_tombs;	/* NAME_TOMB entries */
	uint32_t	users_live;	/* USER_ACTIVE accounts, for -N */
	uint32_t	users_hwm;	/* slots 1..users_hwm were ever used */
	uint32_t	users_free;	/* first empty slot below it, 0 = none */
	/* Pages that return (alloc.c), under the alloc lock. */
	uint32_t	pool;		/* page + 1 of the first empty page */
	uint32_t	draining;	/* page + 1 being emptied by a move */
	uint32_t	drainer;	/* pid of the process emptying it */
	uint32_t	pad4;
	uint64_t	moves;		/* items moved to empty a page */
	uint64_t	pages_moved;	/* pages so emptied, to the pool */
	struct kv_lock	compact_lock;	/* one compaction at a time */
	/*
	 * The key of the chain hash, the throttle table's and the counted
	 * connections' (items.c's hash_key()): 16 bytes of getrandom(2)
	 * drawn when the segment is created, never changed, so every
	 * process that attaches hashes alike and nobody outside can aim
	 * keys, names or addresses at one chain or entry.
	 */
	struct sipkey	hash_key;
	/*
	 * Expiry (expire.c), with atomics, no lock.  exp_next is a lower
	 * bound on every item's expiry and every pending delayed flush's time
	 * (0: unknown, UINT32_MAX: none): while it lies in the future nothing
	 * is absent that is still linked, and no pass is worth its walk.  A
	 * write with an expiry lowers it; a pass over the whole table raises
	 * it, through one of exp_pass[]: a claimed pass's low is lowered by
	 * every write meanwhile, so that the pass misses nothing written
	 * behind it.
	 */
	uint32_t	exp_next;
	uint32_t	conns_said;	/* conns.c: second of the last "table
					 * is full" warning, an atomic */
	struct kv_exp_pass {
		uint32_t	pid;	/* the pass's process, 0 = free */
		uint32_t	low;	/* expiries written since its start */
	} exp_pass[KV_EXP_PASSES];
	uint32_t	exp_sync;	/* second of the last refused write's pass */
	uint32_t	stores_inuse;	/* accounts whose store holds items,
					 * under the alloc lock (evict.c) */
	/* cache mode (evict.c): set at creation; the clock hand of each
	 * class, the chunk (a ref) it stopped at; evictions per class.
	 * Atomics, no lock. */
	uint32_t	cache_mode;
	/* conns.c: the second of the last sweep of a full per-address table;
	 * in the segment, as is conns_said, so that all processes together
	 * sweep once a second and warn once a minute (a prefork child is a
	 * process per connection) */
	uint32_t	conns_swept;
	uint32_t	hand[KV_CLASSES_MAX];
	uint64_t	evicted[KV_CLASSES_MAX];
};

#define KV_ABI	((uint32_t)(sizeof(sem_t) << 24 | sizeof(struct kv_lock) << 12 | \
		    sizeof(struct kv_item) << 4 | sizeof(void *)))

#endif
