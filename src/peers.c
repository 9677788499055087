/*
 * peers.c - the segment's lock-free tables of security events: the audit
 * ring (the last lines of the audit log, for kvstorectl) and the counters
 * per peer address (failed logins for the growing delay, registrations for
 * the rate limit).  Both are updated with atomics and no lock.
 */
#include <linux/futex.h>
#include <sys/syscall.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "lock.h"
#include "store.h"
#include "store_impl.h"

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

#define FAIL_FORGET	900	/* seconds after the last failure it is forgotten */
#define PROBE_RUN	16	/* entries a key may lie in */
#define FAILS_FULL	8	/* the count that gives the longest delay */

/* kind 0: an address; 1: a login name.  One table, keys kept apart. */
static struct kv_peer *
peer_entry(struct store *st, int kind, const char *what, int create)
{
	struct kv_peer *peers = (struct kv_peer *)(st->base +
	    st->hdr->off_peers);
	uint64_t key = hash_key(st, (uint32_t)kind, what, strlen(what)) | 1, k;
	uint32_t i, at = (uint32_t)(key % KV_PEERS);
	struct kv_peer *p, *free_one = NULL;
	int64_t now = (int64_t)time(NULL);

	for (i = 0; i < PROBE_RUN; i++) {
		p = &peers[(at + i) % KV_PEERS];
		k = LOAD(&p->key);
		if (k == key)
			return p;
		/* Only an entry that no longer limits anything is taken
		 * over: evicting a live count would reset it. */
		if (free_one == NULL && (k == 0 ||
		    (p->last_fail < now - FAIL_FORGET &&
		    p->reg_window < now - 60 && LOAD(&p->busy) == 0)))
			free_one = p;
	}
	if (!create || free_one == NULL)
		return NULL;
	free_one->fails = 0;
	free_one->regs = 0;
	free_one->last_fail = 0;
	free_one->reg_window = 0;
	free_one->busy = 0;
	STORE(&free_one->key, key);
	return free_one;
}

/*
 * No entry, and none can be made: every entry of the probe run counts
 * recent failures (of others, perhaps planted there).  Such a key is
 * treated as the most throttled one, never as a clean one.
 */
static int
run_full(struct store *st, int kind, const char *what)
{
	struct kv_peer *peers = (struct kv_peer *)(st->base +
	    st->hdr->off_peers);
	uint64_t key = hash_key(st, (uint32_t)kind, what, strlen(what)) | 1, k;
	uint32_t i, at = (uint32_t)(key % KV_PEERS);
	int64_t now = (int64_t)time(NULL);

	for (i = 0; i < PROBE_RUN; i++) {
		struct kv_peer *p = &peers[(at + i) % KV_PEERS];

		k = LOAD(&p->key);
		if (k == 0 || (p->last_fail < now - FAIL_FORGET &&
		    p->reg_window < now - 60 && LOAD(&p->busy) == 0))
			return 0;
	}
	return 1;
}

/* Failures in a row, forgotten only FAIL_FORGET seconds after the last. */
static uint32_t
fails_of(struct store *st, int kind, const char *what)
{
	struct kv_peer *p = peer_entry(st, kind, what, 0);

	if (p == NULL)
		return run_full(st, kind, what) ? FAILS_FULL : 0;
	if (LOAD(&p->last_fail) < (int64_t)time(NULL) - FAIL_FORGET)
		return 0;
	return LOAD(&p->fails);
}

static void
fail(struct store *st, int kind, const char *what)
{
	struct kv_peer *p = peer_entry(st, kind, what, 1);
	int64_t now = (int64_t)time(NULL);

	if (p == NULL)
		return;		/* its run is full: fails_of() says the most */
	if (LOAD(&p->last_fail) < now - FAIL_FORGET)
		STORE(&p->fails, 0);
	/* The time first: a count is never read with an older failure's. */
	STORE(&p->fail_ms, (uint32_t)mono_ms());
	STORE(&p->last_fail, now);
	__atomic_add_fetch(&p->fails, 1, __ATOMIC_RELAXED);
}

/*
 * Milliseconds since the key's last failure: STORE_AGE_NONE when it counts
 * none, STORE_AGE_UNKNOWN when its probe run is full (it counts the most,
 * with no time kept).  The clock is one for every process of the machine;
 * its low 32 bits wrap after 49 days, long after FAIL_FORGET.
 */
static uint32_t
fail_age(struct store *st, int kind, const char *what)
{
	struct kv_peer *p = peer_entry(st, kind, what, 0);
	uint32_t age;

	if (p == NULL)
		return run_full(st, kind, what) ? STORE_AGE_UNKNOWN :
		    STORE_AGE_NONE;
	if (fails_of(st, kind, what) == 0)
		return STORE_AGE_NONE;
	age = (uint32_t)mono_ms() - LOAD(&p->fail_ms);
	return age >= STORE_AGE_UNKNOWN ? STORE_AGE_UNKNOWN - 1 : age;
}

/* The younger of the address's and the name's last failures, in ms. */
uint32_t
store_login_fail_age(struct store *st, const char *addr, const char *name)
{
	uint32_t a = fail_age(st, 0, addr), n = fail_age(st, 1, name);

	return a < n ? a : n;
}

uint32_t
store_peer_fails(struct store *st, const char *addr)
{
	return fails_of(st, 0, addr);
}

void
store_peer_fail(struct store *st, const char *addr)
{
	fail(st, 0, addr);
}

uint32_t
store_name_fails(struct store *st, const char *name)
{
	return fails_of(st, 1, name);
}

/* A failure for a name, account or not; reset: the right secret. */
void
store_name_fail(struct store *st, const char *name, int reset)
{
	struct kv_peer *p;

	if (!reset)
		fail(st, 1, name);
	else if ((p = peer_entry(st, 1, name, 0)) != NULL)
		STORE(&p->fails, 0);
}

static int
gone(uint32_t pid)
{
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/*
 * Take the address's one login in progress, waiting up to wait_ms for the
 * attempt before it; 1 when taken, 0 when the wait ran out or *stop was
 * set.  Waiters sleep on the word itself (a futex in the shared segment)
 * and the holder wakes one when it is done; they look every 100 ms
 * whether the holder died (killed, say), which gives it up.
 */
int
store_peer_login_begin(struct store *st, const char *addr, unsigned wait_ms,
    volatile sig_atomic_t *stop)
{
	struct kv_peer *p = peer_entry(st, 0, addr, 1);
	struct timespec nap = { 0, 100 * 1000000L };
	uint32_t me = (uint32_t)getpid(), held, none;
	uint64_t start = mono_ms();

	if (p == NULL)
		return 1;	/* its run is full: it pays the longest delay */
	for (;;) {
		none = 0;
		if (CAS(&p->busy, none, me))
			return 1;
		held = none;		/* CAS left the holder there */
		if (held == me)
			return 1;
		if (gone(held) && CAS(&p->busy, held, me))
			return 1;
		if (mono_ms() - start >= wait_ms || (stop != NULL && *stop))
			return 0;
		syscall(SYS_futex, &p->busy, FUTEX_WAIT, held, &nap, NULL, 0);
	}
}

void
store_peer_login_end(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, 0, addr, 0);
	uint32_t me = (uint32_t)getpid();

	if (p != NULL && CAS(&p->busy, me, 0))
		syscall(SYS_futex, &p->busy, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Count a registration; 0 when the peer is over limit per window. */
int
store_peer_register(struct store *st, const char *addr, uint32_t limit,
    int window)
{
	struct kv_peer *p = peer_entry(st, 0, addr, 1);
	int64_t now = (int64_t)time(NULL);

	if (p == NULL)
		return 0;	/* no room to count it: refused, never free */
	if (LOAD(&p->reg_window) + window <= now) {
		STORE(&p->reg_window, now);
		STORE(&p->regs, 0);
	}
	return __atomic_add_fetch(&p->regs, 1, __ATOMIC_RELAXED) <= limit;
}
