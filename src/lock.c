/*
 * lock.c - recoverable process-shared locks and the process registry.
 *
 * A POSIX semaphore has no owner: a process killed between sem_wait() and
 * sem_post() leaves it taken for ever.  So each lock also records its holder's
 * pid, and each attached process holds a one-byte fcntl() write lock at the
 * offset of its pid in the segment's file for as long as it lives (LMDB's
 * reader-liveness trick): the kernel drops that lock when the process dies,
 * so "is the holder alive?" is answered by F_GETLK and a reused pid cannot
 * fool it.  A waiter that finds the holder dead becomes the holder without
 * touching the semaphore (its unit is still taken), undoes the dead holder's
 * half-done critical section from the lock's undo log, and goes on.
 *
 * The one window this cannot see directly is a death after sem_wait()
 * returned but before the holder was recorded.  Each process names the lock
 * it is about to take in its registry slot (want); if a lock stays taken with
 * no holder recorded and no progress for LOCK_WINDOW_GRACE_MS while a dead
 * process wanted it, that process is taken to have died in the window.
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "log.h"

#define LOAD(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, o, n)	__atomic_compare_exchange_n((p), &(o), (n), 0, \
			    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

/* CLOCK_MONOTONIC in ms: one clock for every process of the machine. */
uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
lock_init(struct kv_lock *l)
{
	memset(l, 0, sizeof(*l));
	return sem_init(&l->sem, 1, 1);
}

struct kv_slot *
registry_slots(struct store *st)
{
	return (struct kv_slot *)(st->base + st->hdr->off_slots);
}

struct kv_slot *
registry_slot(struct store *st)
{
	if (st->slot == 0)
		fatalx("store used by a process that did not attach");
	return registry_slots(st) + (st->slot - 1);
}

int
process_alive(struct store *st, uint32_t pid)
{
	struct flock fl;

	if (pid == 0)
		return 0;
	if (pid == st->pid)
		return 1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)pid;
	fl.l_len = 1;
	if (fcntl(st->fd, F_GETLK, &fl) == -1)
		return 1;	/* cannot tell: assume alive, never steal */
	return fl.l_type != F_UNLCK;
}

/* Put the undo log back, newest first. */
static void
rollback(struct store *st, struct kv_lock *l)
{
	uint32_t n = LOAD(&l->nlog);

	if (n > KV_LOCK_LOG)
		n = KV_LOCK_LOG;
	while (n-- > 0) {
		struct kv_undo *u = &l->log[n];
		uint64_t off = u->at & ~(uint64_t)1;
		unsigned width = u->at & 1 ? 8 : 4;
		char *w = st->base + off;

		if (off + width > st->size || off % width != 0)
			continue;
		if (width == 8)
			STORE((uint64_t *)w, u->old);
		else
			STORE((uint32_t *)w, (uint32_t)u->old);
	}
	STORE(&l->nlog, 0);
}

struct window {
	uint64_t	since;
	uint32_t	seq;
};

/* Called after a timed wait ran out: become the holder if the holder is dead. */
static int
takeover(struct store *st, struct kv_lock *l, struct window *w)
{
	uint32_t h = LOAD(&l->holder), off, seq, i;
	struct kv_slot *slots;

	if (h != 0) {
		w->since = 0;
		if (h == st->pid)
			fatalx("lock taken twice by one process");
		if (process_alive(st, h) || !CAS(&l->holder, h, st->pid))
			return 0;
		log_warnx("lock at %u: holder pid %u died, recovering",
		    (unsigned)((char *)l - st->base), h);
		return 1;
	}
	seq = LOAD(&l->seq);
	if (w->since == 0 || seq != w->seq) {
		w->since = mono_ms();
		w->seq = seq;
		return 0;
	}
	if (mono_ms() - w->since < LOCK_WINDOW_GRACE_MS)
		return 0;
	off = (uint32_t)((char *)l - st->base);
	slots = registry_slots(st);
	for (i = 0; i < st->hdr->nslots; i++) {
		uint32_t pid = LOAD(&slots[i].pid), zero = 0;

		if (pid == 0 || pid == st->pid || LOAD(&slots[i].want) != off ||
		    process_alive(st, pid))
			continue;
		if (!CAS(&l->holder, zero, st->pid))
			return 0;
		/*
		 * The scan takes time: another waiter may have taken the lock
		 * over, used and released it meanwhile (its unit is back in
		 * the semaphore, so holder 0 no longer means a lost unit).
		 * Every acquisition moves seq: if it moved, this is not ours.
		 */
		if (LOAD(&l->seq) != w->seq) {
			uint32_t mine = st->pid;

			CAS(&l->holder, mine, zero);
			w->since = 0;
			return 0;
		}
		STORE(&slots[i].want, 0);
		log_warnx("lock at %u: pid %u died taking it, recovering",
		    off, pid);
		return 1;
	}
	return 0;
}

void
lock_acquire(struct store *st, struct kv_lock *l)
{
	struct kv_slot *me = registry_slot(st);
	struct window w = { 0, 0 };
	struct timespec ts;

	STORE(&me->want, (uint32_t)((char *)l - st->base));
	if (sem_trywait(&l->sem) == 0)
		goto acquired;
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += LOCK_PROBE_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (sem_timedwait(&l->sem, &ts) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != ETIMEDOUT)
			fatal("sem_timedwait");
		if (takeover(st, l, &w))
			goto recovered;
	}
acquired:
	STORE(&l->holder, st->pid);
recovered:
	STORE(&l->seq, l->seq + 1);
	STORE(&me->want, 0);
	if (LOAD(&l->nlog) != 0)
		rollback(st, l);
}

void
lock_release(struct store *st, struct kv_lock *l)
{
	struct kv_slot *me = registry_slot(st);

	if (LOAD(&l->nlog) != 0)
		fatalx("lock released with an open transaction");
	if (LOAD(&l->holder) != st->pid)
		fatalx("lock released by a process that does not hold it");
	/*
	 * A death between clearing holder and sem_post() would leave the
	 * unit taken with no holder and, without this, no dead process that
	 * wanted the lock: stuck for ever.  Naming the lock in want makes
	 * that window look like the entry window, which takeover() handles.
	 */
	STORE(&me->want, (uint32_t)((char *)l - st->base));
	STORE(&l->holder, 0);
	if (sem_post(&l->sem) == -1)
		fatal("sem_post");
	STORE(&me->want, 0);
}

static void
tx_log(struct store *st, struct kv_lock *l, void *word, uint32_t width,
    uint64_t old)
{
	uint32_t n = l->nlog;

	if (n >= KV_LOCK_LOG)
		fatalx("undo log full");
	/* Words are 4-aligned: the low bit is free to say the width. */
	l->log[n].at = (uint64_t)((char *)word - st->base) | (width == 8);
	l->log[n].old = old;
	STORE(&l->nlog, n + 1);
}

void
tx_set32(struct store *st, struct kv_lock *l, uint32_t *word, uint32_t v)
{
	tx_log(st, l, word, 4, *word);
	STORE(word, v);
}

void
tx_set64(struct store *st, struct kv_lock *l, uint64_t *word, uint64_t v)
{
	tx_log(st, l, word, 8, *word);
	STORE(word, v);
}

void
tx_commit(struct kv_lock *l)
{
	STORE(&l->nlog, 0);
}

/*
 * Join the registry: take the liveness byte first, so that from the moment
 * our pid appears in a slot, others can see we are alive.  fcntl locks are
 * not inherited by fork(), so every process joins for itself.
 */
int
registry_join(struct store *st)
{
	struct kv_slot *slots = registry_slots(st);
	uint32_t n = st->hdr->nslots, start, i, pass;
	struct flock fl;

	st->pid = (uint32_t)getpid();
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)st->pid;
	fl.l_len = 1;
	if (fcntl(st->fd, F_SETLK, &fl) == -1) {
		log_warn("liveness lock on segment %s", st->name);
		return -1;
	}
	start = st->pid % n;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			struct kv_slot *s = &slots[(start + i) % n];
			uint32_t pid = LOAD(&s->pid), zero = 0;

			/*
			 * With no free slot left, reuse the slot of a dead
			 * process that left nothing to finish; the others wait
			 * for a survivor that has a slot (store_reap()).
			 */
			if (pid != 0 && pass == 1 && LOAD(&s->want) == 0 &&
			    LOAD(&s->pending) == 0 &&
			    LOAD(&s->final_valid) == 0 &&
			    !process_alive(st, pid))
				zero = pid;
			else if (pid != 0)
				continue;
			if (!CAS(&s->pid, zero, st->pid))
				continue;
			s->want = 0;
			s->pending = 0;
			s->final_valid = 0;
			s->reaper = 0;
			/* A dead owner's count, until now: a stats reader in
			 * between adds it once (it cannot be cleared before the
			 * slot is ours). */
			s->conns = 0;
			st->slot = (uint32_t)((start + i) % n) + 1;
			return 0;
		}
	}
	log_warnx("segment %s: all %u process slots are taken", st->name, n);
	return -1;
}

void
registry_leave(struct store *st)
{
	struct kv_slot *s;

	if (st->slot == 0)
		return;
	s = registry_slot(st);
	STORE(&s->conns, 0);
	STORE(&s->pid, 0);
	st->slot = 0;
}
