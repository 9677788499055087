/*
 * conns.c - connections counted per client address, shared by every process
 * that serves one, so that the per-address limits (kvstored -H, -U) hold
 * whichever process accepted: a spare child, the master's fork, an event
 * worker, or inetd's child with no master at all.
 *
 * Lock-free: a connection claims a free entry with one compare-and-swap,
 * then counts the entries of its address, itself included; over a limit it
 * gives its entry back and is refused.  Two connections racing for the last
 * place may both be refused, never both admitted.  An entry names the
 * serving process; one whose process is gone (killed, say) is given back
 * when the master sees the process end (store_conn_forget()), at a start
 * and when the table is full (store_conn_sweep(), at most once a second
 * on the segment), and when a connection of its address would be refused:
 * the entries of the address are then counted again without the dead.
 * So a SIGKILL gives its count back, while the admitted connection, by
 * far the common case, costs no system call: asking the kernel about
 * every process of the address (kill(pid, 0)) cost a connection from a
 * busy address tens of them.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_impl.h"

static inline struct kv_conn *
conns(struct store *st)
{
	return (struct kv_conn *)(st->base + st->hdr->off_conns);
}

/*
 * How far the entries in use reach.  A connection claims the first free
 * entry from the table's start, so that with fifty connections open a count
 * or a sweep reads fifty-odd entries, not all nconns (64 KiB a
 * connection, which perf found as the busiest function of a prefork
 * child that serves one request).  hdr->conns_reach is 1 + the entries
 * that were ever about to be claimed: it covers an entry before the entry
 * is taken, so that a process killed in between leaves nothing beyond it
 * for the sweeps to miss.  It only grows, so that an entry once inside
 * stays inside.  A segment of this layout starts it at 1; 0 (or more than
 * the table) would be a broken segment, and reads every entry.
 */
static uint32_t
reach(struct store *st)
{
	uint32_t r = __atomic_load_n(&st->hdr->conns_reach, __ATOMIC_SEQ_CST);

	return r == 0 || r - 1 > st->hdr->nconns ? st->hdr->nconns : r - 1;
}

/* Entry i is about to be claimed: the reach covers it first. */
static void
reach_over(struct store *st, uint32_t i)
{
	uint32_t *r = &st->hdr->conns_reach;
	uint32_t was = __atomic_load_n(r, __ATOMIC_SEQ_CST);

	while (was != 0 && was < i + 2 &&
	    !__atomic_compare_exchange_n(r, &was, i + 2, 0, __ATOMIC_SEQ_CST,
	    __ATOMIC_SEQ_CST))
		;
}

/*
 * The address's keyed hash (items.c's hash_key(), as kind 2: the peers
 * table has 0 and 1), its high half, never 0, so that 0 can mean free.
 * Keyed, so that nobody who picks their address (from an IPv6 prefix,
 * say) can choose one counted as someone else's and use up that one's
 * -H.
 */
static uint64_t
addr_key(struct store *st, const char *addr)
{
	uint64_t h = hash_key(st, 2, addr, strlen(addr));

	return (h | 1ULL << 32) & ~0xffffffffULL;
}

/*
 * Once per period across every process on the segment: the one whose
 * compare-and-swap moves the stamp from its last second on does it.
 */
static int
once_per(uint32_t *stamp, uint32_t period)
{
	uint32_t now = (uint32_t)time(NULL), was = LOAD(stamp);

	return now - was >= period && CAS(stamp, was, now);
}

static int
process_gone(uint32_t pid)
{
	return pid != 0 && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/*
 * Give back an entry of a dead process.  Its logged_in first: once who is
 * 0 the entry may be another's at once.
 */
static void
free_dead(struct kv_conn *e, uint64_t w)
{
	STORE(&e->logged_in, 0);
	CAS(&e->who, w, 0);
}

/*
 * The entries of the key, the one at mine included, and of those the
 * ones not logged in.  reap: clear the entries of dead processes first
 * (never our own, nor another of our pid's: an event worker serves many).
 */
static void
count_addr(struct kv_conn *t, uint32_t n, uint64_t key, uint32_t mine,
    int logged_in, uint32_t self, int reap, unsigned *total,
    unsigned *waiting)
{
	uint32_t i, pid;
	uint64_t w;

	*total = *waiting = 0;
	for (i = 0; i < n; i++) {
		w = LOAD(&t[i].who);
		if ((w & ~0xffffffffULL) != key)
			continue;
		pid = (uint32_t)w;
		if (reap && i != mine && pid != self && process_gone(pid)) {
			free_dead(&t[i], w);
			continue;
		}
		(*total)++;
		if (i == mine ? !logged_in : !LOAD(&t[i].logged_in))
			(*waiting)++;
	}
}

static int
over(unsigned total, unsigned waiting, int logged_in, unsigned per_addr,
    unsigned per_prelogin)
{
	if (per_addr > 0 && total > per_addr)
		return STORE_CONN_ADDR;
	if (!logged_in && per_prelogin > 0 && waiting > per_prelogin)
		return STORE_CONN_PRELOGIN;
	return STORE_CONN_OK;
}

int
store_conn_claim(struct store *st, const char *addr, int logged_in,
    unsigned per_addr, unsigned per_prelogin, uint32_t *slot)
{
	struct kv_conn *t = conns(st);
	uint32_t n = st->hdr->nconns, pid = (uint32_t)getpid(), at, mine;
	uint64_t key = addr_key(st, addr), me = key | pid, zero;
	unsigned total, waiting;
	int rc, pass;

	*slot = 0;
	if (per_addr == 0 && per_prelogin == 0)
		return STORE_CONN_OK;
	for (pass = 0, mine = n; pass < 2 && mine == n; pass++) {
		/* Full: the entries of dead processes are free, then look
		 * again; once a second over all processes, as a table full
		 * of live connections would make every newcomer pay a sweep
		 * (4096 kill(2)s). */
		if (pass == 1) {
			if (!once_per(&st->hdr->conns_swept, 1))
				break;
			store_conn_sweep(st);
		}
		for (at = 0; at < n; at++) {
			zero = 0;
			if (LOAD(&t[at].who) != 0)
				continue;
			reach_over(st, at);
			if (CAS(&t[at].who, zero, me)) {
				STORE(&t[at].logged_in,
				    (uint32_t)(logged_in != 0));
				mine = at;
				break;
			}
		}
	}
	if (mine == n) {
		/* As many live connections as entries: served, not counted
		 * (kvstored(8), CAVEATS); said once a minute. */
		if (once_per(&st->hdr->conns_said, 60))
			log_warnx("limit: the per-address table is full (%u "
			    "connections): -H and -U do not count %s", n, addr);
		return STORE_CONN_OK;
	}
	*slot = mine + 1;
	/*
	 * Our entry, then theirs: of two connections that claim at once, at
	 * least one reads the other's entry (and the reach over it), so they
	 * may both be refused, never both admitted.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	n = reach(st);
	count_addr(t, n, key, mine, logged_in, pid, 0, &total, &waiting);
	if (over(total, waiting, logged_in, per_addr, per_prelogin) == 0)
		return STORE_CONN_OK;
	/* Over: the dead do not count. */
	count_addr(t, n, key, mine, logged_in, pid, 1, &total, &waiting);
	if ((rc = over(total, waiting, logged_in, per_addr, per_prelogin)) ==
	    STORE_CONN_OK)
		return STORE_CONN_OK;
	store_conn_release(st, *slot);
	*slot = 0;
	return rc;
}

void
store_conn_login(struct store *st, uint32_t slot)
{
	if (slot != 0 && slot <= st->hdr->nconns)
		STORE(&conns(st)[slot - 1].logged_in, 1);
}

void
store_conn_release(struct store *st, uint32_t slot)
{
	if (slot == 0 || slot > st->hdr->nconns)
		return;
	STORE(&conns(st)[slot - 1].logged_in, 0);
	STORE(&conns(st)[slot - 1].who, 0);
}

/* A process died (the master saw it end): the entries it held are free. */
void
store_conn_forget(struct store *st, uint32_t pid)
{
	struct kv_conn *t = conns(st);
	uint32_t i, n = reach(st);
	uint64_t w;

	if (pid == 0 || !process_gone(pid))
		return;		/* its pid is another's already */
	for (i = 0; i < n; i++) {
		w = LOAD(&t[i].who);
		if (w != 0 && (uint32_t)w == pid)
			free_dead(&t[i], w);
	}
}

/*
 * Every entry of a dead process freed: at a start (processes may have died
 * with no master of ours watching), and when the table is full.
 */
void
store_conn_sweep(struct store *st)
{
	struct kv_conn *t = conns(st);
	uint32_t i, n = reach(st), alive = 0;
	uint64_t w;

	for (i = 0; i < n; i++) {
		w = LOAD(&t[i].who);
		if (w == 0 || (uint32_t)w == alive)
			continue;
		if (process_gone((uint32_t)w))
			free_dead(&t[i], w);
		else
			alive = (uint32_t)w;	/* one kill(2) for its run */
	}
}
