/*
 * locktorture.c - SIGKILL writers inside the store, thousands of times, and
 * check that nothing acknowledged is lost and the segment stays sound.
 *
 *   locktorture SEGMENT SECONDS [WORKERS [KILLS]]
 *
 * WORKERS processes (default 4) attach to a new segment and write keys of
 * their own through store_put() in a tight loop (no network, so most of
 * their time is spent in the store and its locks: a kill lands inside a
 * critical section far more often than in the daemon).  Each key's last
 * acknowledged and last attempted sequence numbers live in a shared table;
 * every read-back must lie between them.  The parent kills a random worker
 * every few hundred microseconds, then at random either finishes its slot
 * at once as the master does (store_reap()) or leaves the recovery to the
 * survivors that need its locks, and starts a new worker in its place.
 * Every 200 kills, and at the end, it runs the checker (with the dead
 * slots not yet finished), then finishes them all (store_reap(st, 0)).
 *
 * Prints one line of figures; exits 0 when clean, 1 on any lost write,
 * corrupt value or checker error, 2 on setup errors.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define KEYS		64		/* per worker */
#define VMAX		600

struct slotkey {
	uint64_t	acked;
	uint64_t	sent;
};

struct shared {
	uint64_t	puts, checks, bad;
	struct slotkey	k[][KEYS];
};

static struct store st;
static struct shared *sh;
static uint32_t uid;

static size_t
value_for(char *v, int w, int k, uint64_t seq)
{
	size_t n = (size_t)snprintf(v, VMAX, "%" PRIu64 ".%d.%d.", seq, w, k);
	size_t len = 8 + (size_t)((seq * 131 + (uint64_t)k) % (VMAX - 40));

	while (n < len) {
		v[n] = (char)('a' + (seq + n) % 26);
		n++;
	}
	return n;
}

struct got {
	int	hit;
	size_t	len;
	char	v[VMAX];
};

static void
visit(void *ctx, const struct item_view *iv)
{
	struct got *g = ctx;

	g->hit = 1;
	g->len = iv->vlen < VMAX ? iv->vlen : VMAX;
	memcpy(g->v, iv->value, g->len);
}

/* 1 when key k of worker slot w reads back as it should. */
static int
verify(int w, int k)
{
	struct slotkey *sk = &sh->k[w][k];
	uint64_t acked = __atomic_load_n(&sk->acked, __ATOMIC_ACQUIRE);
	char key[32], want[VMAX];
	unsigned long long seq;
	struct got g;
	size_t n;

	g.hit = 0;
	snprintf(key, sizeof(key), "w%d-k%d", w, k);
	store_get(&st, uid, USER_ANY_GEN, key, strlen(key), visit, &g);
	if (!g.hit)
		return acked == 0;
	g.v[g.len < VMAX ? g.len : VMAX - 1] = '\0';
	if (sscanf(g.v, "%llu.", &seq) != 1 || seq < acked ||
	    seq > __atomic_load_n(&sk->sent, __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "locktorture: %s holds %.30s; acked %" PRIu64
		    "\n", key, g.v, acked);
		return 0;
	}
	n = value_for(want, w, k, seq);
	if (n != g.len || memcmp(want, g.v, n) != 0) {
		fprintf(stderr, "locktorture: %s: write %llu corrupt\n", key,
		    seq);
		return 0;
	}
	return 1;
}

static void
worker(int w)
{
	struct store_write sw;
	char key[32], val[VMAX];
	uint64_t i, seq;
	size_t vlen;
	int k, rc;

	if (store_attach_process(&st) == -1)
		_exit(2);
	memset(&sw, 0, sizeof(sw));
	for (i = 0;; i++) {
		k = (int)(random() % KEYS);
		snprintf(key, sizeof(key), "w%d-k%d", w, k);
		if (i % 4 == 3) {
			if (!verify(w, k))
				__atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&sh->checks, 1, __ATOMIC_RELAXED);
			continue;
		}
		seq = __atomic_add_fetch(&sh->k[w][k].sent, 1, __ATOMIC_ACQ_REL);
		vlen = value_for(val, w, k, seq);
		rc = store_put(&st, uid, USER_ANY_GEN, key, strlen(key), val,
		    vlen, &sw, NULL);
		if (rc != ST_OK) {
			fprintf(stderr, "locktorture: put %s: %d\n", key, rc);
			__atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
			continue;
		}
		/* Acknowledged: from now on this write may not be lost. */
		__atomic_store_n(&sh->k[w][k].acked, seq, __ATOMIC_RELEASE);
		__atomic_add_fetch(&sh->puts, 1, __ATOMIC_RELAXED);
	}
}

static pid_t
spawn(int w)
{
	pid_t pid = fork();

	if (pid == -1) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		srandom((unsigned)getpid());
		worker(w);
	}
	return pid;
}

static int
check(void)
{
	if (store_check(&st, NULL) == 0)
		return 0;
	store_check(&st, stderr);
	return 1;
}

int
main(int argc, char **argv)
{
	struct store_geometry g;
	struct timespec pause;
	char err[256];
	pid_t *pids;
	time_t end;
	int nworkers, w, k, status, bad = 0;
	long kills = 0, max_kills, reaped = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: locktorture SEGMENT SECONDS [WORKERS "
		    "[KILLS]]\n");
		return 2;
	}
	nworkers = argc > 3 ? atoi(argv[3]) : 4;
	max_kills = argc > 4 ? atol(argv[4]) : 1000000;
	if (nworkers < 1 || nworkers > 64)
		return 2;
	sh = mmap(NULL, sizeof(*sh) + (size_t)nworkers * sizeof(sh->k[0]),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc((size_t)nworkers, sizeof(*pids));
	if (sh == MAP_FAILED || pids == NULL)
		return 2;
	store_geometry_default(&g, 16, 4096);
	if (store_open(&st, argv[1], &g, STORE_CREATE, err, sizeof(err)) == -1) {
		fprintf(stderr, "locktorture: %s\n", err);
		return 2;
	}
	store_remove(argv[1]);	/* mapped: nothing is left behind */
	if (store_attach_process(&st) == -1 ||
	    store_user_create(&st, "torture", 0, "*", &uid) != ST_OK)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)getpid());
	for (w = 0; w < nworkers; w++)
		pids[w] = spawn(w);
	end = time(NULL) + atoi(argv[2]);
	while (time(NULL) < end && kills < max_kills) {
		pause.tv_sec = 0;
		pause.tv_nsec = 50000 + random() % 500000;
		nanosleep(&pause, NULL);
		w = (int)(random() % nworkers);
		kill(pids[w], SIGKILL);
		while (waitpid(pids[w], &status, 0) == -1 && errno == EINTR)
			;
		kills++;
		/* Half the time recover at once, as the master does; else the
		 * survivors find the dead holder themselves. */
		if (random() % 2) {
			store_reap(&st, (uint32_t)pids[w]);
			reaped++;
		}
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
			fprintf(stderr, "locktorture: worker %ld ended by "
			    "itself (status %#x)\n", (long)pids[w], status);
			bad++;
		}
		pids[w] = spawn(w);
		/* Check with dead slots outstanding, then finish them all
		 * (as a new daemon does at start). */
		if (kills % 200 == 0) {
			if (check())
				bad++;
			store_reap(&st, 0);
		}
	}
	for (w = 0; w < nworkers; w++) {
		kill(pids[w], SIGKILL);
		while (waitpid(pids[w], &status, 0) == -1 && errno == EINTR)
			;
	}
	store_reap(&st, 0);
	if (check())
		bad++;
	for (w = 0; w < nworkers; w++)
		for (k = 0; k < KEYS; k++)
			if (!verify(w, k))
				bad++;
	printf("locktorture: workers=%d kills=%ld reaped_at_once=%ld "
	    "puts_acked=%" PRIu64 " reads_checked=%" PRIu64 " keys=%d "
	    "bad=%" PRIu64 "+%d\n", nworkers, kills, reaped, sh->puts,
	    sh->checks, nworkers * KEYS, sh->bad, bad);
	free(pids);
	return sh->bad || bad ? 1 : 0;
}
