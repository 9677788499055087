/*
 * event.c - the event engine (kvstored -e event): a few worker processes,
 * each serving many connections from one epoll loop, over the same
 * connection core, front-ends, command layer and store as the prefork
 * engine.  No threads: every worker and helper is a process attached to the
 * one segment, and a worker that dies is restarted by the master, which
 * repairs what it left in the store as for any child.
 *
 * The listening sockets are shared by all workers, each watching them with
 * EPOLLEXCLUSIVE, so the kernel wakes one worker per new connection.
 *
 * A login's secret check costs ~26 ms of yescrypt, and a throttled one
 * seconds of waiting: in an event loop either would stall every other
 * connection of the worker.  So each worker has a few login helpers,
 * processes of its own on a socketpair: the command layer hands them the
 * login (cmd.h's defer hook), the connection pauses, the helper runs the
 * very same command-layer login and answers with the identity it
 * established, and the connection goes on.  One job per client address is
 * in flight at a time, so guesses from one address queue in the worker,
 * not in the helpers, and other addresses' logins go ahead.  A helper never
 * waits: if another worker's login from the address is being checked, or
 * failed meanwhile, it answers CR_LOGIN_AGAIN and the job waits again here.
 */
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "log.h"
#include "master.h"
#include "net.h"
#include "store.h"

#define HELPERS		2	/* login helpers per worker */
#define ACCEPT_BURST	64	/* connections taken per wake-up */
#define MAX_EVENTS	256

/* What a worker sends a helper, and what comes back. */
struct job_msg {
	uint64_t		id;
	int32_t			throttled;	/* the worker waits the delay */
	uint32_t		waited_ms;	/* so far */
	int32_t			retried;	/* asked again before */
	char			peer[NET_NAME_MAX];
	struct cmd_login_job	job;
};

struct answer_msg {
	uint64_t	id;
	int32_t		rc;
	uint32_t	again_ms;	/* CR_LOGIN_AGAIN: wait this, then ask */
	uint32_t	user, gen, target, target_gen;
	int32_t		role;
	char		name[KV_USER_MAX + 1];
	char		target_name[KV_USER_MAX + 1];
};

struct ev_conn;

struct job {
	struct job	*next;
	struct ev_conn	*owner;		/* NULL once the connection is gone */
	uint64_t	 not_before;	/* its throttle delay ends, ms; 0 unset */
	uint64_t	 timed_at;	/* the delay was first reckoned, ms */
	int		 timed;		/* not_before is set */
	struct job_msg	 msg;
};

struct ev_conn {
	struct conn	 c;		/* first: epoll's pointer is to it too */
	int		 index;		/* in conns[], -1 once closed */
	struct ev_conn	*next_dead;	/* closed, freed after this turn */
	uint32_t	 events;	/* registered with epoll, 0 = not */
	struct job	*job;		/* its login, queued or in flight */
};

struct helper {
	int		 fd;
	pid_t		 pid;
	struct job	*job;		/* in flight, NULL while idle */
};

/* epoll's data.u64 for what is not a connection. */
#define TAG_LISTEN	1		/* + listener index */
#define TAG_HELPER	100		/* + helper index */
#define TAG_MAX		200

static struct master_config *mc;
static int ep = -1;
static struct ev_conn **conns;
static int nconns, maxconns;
static struct helper helpers[HELPERS];
static struct job *queue;		/* logins waiting for a helper */
static uint64_t next_job_id = 1;
static uint64_t next_due;		/* earliest deadline asked for, ms */
static struct ev_conn *graveyard;	/* closed this turn */
static uint64_t next_dispatch;		/* a queued login's delay ends, ms */

static void	publish_count(void);
static int	total_conns(void);

/* ---- login helpers -------------------------------------------------------- */

static void __attribute__((noreturn))
helper_main(int fd)
{
	struct conn_config *cfg = mc->conn;
	struct answer_msg a;
	struct job_msg m;
	struct client cl;
	ssize_t n;

	for (;;) {
		n = recv(fd, &m, sizeof(m), 0);
		if (n == -1 && errno == EINTR && !conn_stop)
			continue;
		if (n != (ssize_t)sizeof(m))
			break;		/* the worker is gone, or stopping */
		m.peer[sizeof(m.peer) - 1] = '\0';
		m.job.name[sizeof(m.job.name) - 1] = '\0';
		m.job.store[sizeof(m.job.store) - 1] = '\0';
		m.job.secret[sizeof(m.job.secret) - 1] = '\0';
		cmd_init(&cl, cfg->store, &cfg->policy, m.peer);
		cl.throttled = m.throttled != 0;
		cl.waited_ms = m.waited_ms;
		cl.retried = m.retried != 0;
		memset(&a, 0, sizeof(a));
		a.id = m.id;
		a.rc = cmd_login_job_run(&cl, &m.job);
		a.again_ms = cl.again_ms;
		explicit_bzero(&m.job, sizeof(m.job));
		a.user = cl.user;
		a.gen = cl.gen;
		a.role = cl.role;
		a.target = cl.target;
		a.target_gen = cl.target_gen;
		memcpy(a.name, cl.name, sizeof(a.name));
		memcpy(a.target_name, cl.target_name, sizeof(a.target_name));
		if (send(fd, &a, sizeof(a), MSG_NOSIGNAL) != (ssize_t)sizeof(a))
			break;
	}
	store_detach_process(cfg->store);
	_exit(0);
}

static void
watch(int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = tag;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		fatal("epoll_ctl add");
}

static void
helper_start(int i)
{
	int sv[2], j;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("login helper: socketpair");
		helpers[i].fd = -1;
		return;
	}
	/* A helper process of helper.c's design, as the crawler is. */
	if ((pid = helper_fork(mc, "login helper")) == -1) {
		close(sv[0]);
		close(sv[1]);
		helpers[i].fd = -1;
		return;
	}
	if (pid == 0) {
		/*
		 * A helper started again later was forked with the
		 * worker's connections, its epoll and the other helpers'
		 * sockets open: holding them, it would keep a connection
		 * the worker closed from ending (no FIN) for its lifetime.
		 */
		for (j = 0; j < nconns; j++)
			close(conns[j]->c.in);
		for (j = 0; j < HELPERS; j++)
			if (j != i && helpers[j].fd != -1)
				close(helpers[j].fd);
		if (ep != -1)
			close(ep);
		close(sv[0]);
		helper_main(sv[1]);
	}
	close(sv[1]);
	helpers[i].fd = sv[0];
	helpers[i].pid = pid;
	helpers[i].job = NULL;
	watch(sv[0], EPOLLIN, TAG_HELPER + (uint64_t)i);
}

/* "127.0.0.1 port 5000" and "127.0.0.1 port 6000" are one address. */
static int
same_address(const char *a, const char *b)
{
	const char *pa = strstr(a, " port "), *pb = strstr(b, " port ");
	size_t la = pa ? (size_t)(pa - a) : strlen(a);
	size_t lb = pb ? (size_t)(pb - b) : strlen(b);

	return la == lb && memcmp(a, b, la) == 0;
}

static int
address_in_flight(const char *peer)
{
	int i;

	for (i = 0; i < HELPERS; i++)
		if (helpers[i].job != NULL &&
		    same_address(helpers[i].job->msg.peer, peer))
			return 1;
	return 0;
}

static int
address_queued(const char *peer)
{
	struct job *j;

	for (j = queue; j != NULL; j = j->next)
		if (same_address(j->msg.peer, peer))
			return 1;
	return address_in_flight(peer);
}

/* Is j the oldest queued login of its address? */
static int
first_of_address(const struct job *j)
{
	const struct job *k;

	for (k = queue; k != j; k = k->next)
		if (same_address(k->msg.peer, j->msg.peer))
			return 0;
	return 1;
}

static struct helper *
idle_helper(void)
{
	int i;

	for (i = 0; i < HELPERS; i++)
		if (helpers[i].fd != -1 && helpers[i].job == NULL)
			return &helpers[i];
	return NULL;
}

/*
 * Give idle helpers the queued logins that may go: the oldest of each
 * address not already in flight, once its throttle delay has passed.  The
 * delay is waited here, as a timer (next_dispatch), not in a helper: a
 * helper is busy only while it checks a secret, so an address that is
 * throttled holds up its own logins and nobody else's; and every address
 * has one login in the running at a time, whatever it queues.
 */
static void
dispatch(uint64_t now)
{
	struct job **jp, *j;
	struct helper *h;

	next_dispatch = 0;
	for (jp = &queue; (j = *jp) != NULL;) {
		if (!first_of_address(j) || address_in_flight(j->msg.peer)) {
			jp = &j->next;
			continue;
		}
		if (!j->timed) {
			j->timed = 1;
			j->timed_at = now;
			j->not_before = now + (j->owner != NULL ?
			    cmd_login_delay(&j->owner->c.cl, j->msg.job.name) :
			    0);
		}
		if (now < j->not_before) {
			if (next_dispatch == 0 || j->not_before < next_dispatch)
				next_dispatch = j->not_before;
			jp = &j->next;
			continue;
		}
		if ((h = idle_helper()) == NULL)
			return;
		j->msg.throttled = 1;
		j->msg.waited_ms = (uint32_t)(now - j->timed_at);
		if (send(h->fd, &j->msg, sizeof(j->msg), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(j->msg)) {
			log_warn("login helper %ld: send", (long)h->pid);
			return;
		}
		*jp = j->next;
		j->next = NULL;
		h->job = j;
	}
}

/* A connection that goes takes its queued login with it. */
static void
forget_job(struct job *j)
{
	struct job **jp;

	for (jp = &queue; *jp != NULL; jp = &(*jp)->next)
		if (*jp == j) {
			*jp = j->next;
			explicit_bzero(j, sizeof(*j));
			free(j);
			return;
		}
	j->owner = NULL;	/* in flight: its answer goes nowhere */
}

/* cmd.h's defer hook: queue the login; the connection pauses. */
static int
defer_login(struct client *cl, const struct cmd_login_job *lj)
{
	struct ev_conn *e = cl->defer_ctx;
	struct job *j, **jp;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->owner = e;
	j->msg.id = next_job_id++;
	snprintf(j->msg.peer, sizeof(j->msg.peer), "%s", e->c.peer);
	j->msg.job = *lj;
	e->job = j;
	if (address_queued(e->c.peer))
		log_info("login: %s: waits for the login in progress from its "
		    "address", e->c.peer);
	for (jp = &queue; *jp != NULL; jp = &(*jp)->next)
		;
	*jp = j;		/* at the end: the queue is oldest first */
	dispatch(conn_now());
	return 0;
}

/* ---- connections ---------------------------------------------------------- */

static void
conn_close(struct ev_conn *e)
{
	if (e->events != 0)
		epoll_ctl(ep, EPOLL_CTL_DEL, e->c.in, NULL);
	if (e->job != NULL)
		forget_job(e->job);
	e->job = NULL;
	conn_free(&e->c);
	close(e->c.in);
	store_note_closed(mc->conn->store);
	conns[e->index] = conns[--nconns];
	conns[e->index]->index = e->index;
	e->index = -1;
	/*
	 * Not freed yet: the events of this turn may still name it (a
	 * helper's answer closed it, say, and its own hang-up comes next).
	 */
	e->next_dead = graveyard;
	graveyard = e;
	publish_count();
}

/* After a turn's events: the connections closed during it go. */
static void
bury(void)
{
	struct ev_conn *e;

	while ((e = graveyard) != NULL) {
		graveyard = e->next_dead;
		free(e);
	}
}

/* -c counts every worker's connections (a shared page of the master's). */
static void
publish_count(void)
{
	__atomic_store_n(&mc->worker_conns[mc->worker_slot * WORKER_STRIDE],
	    nconns, __ATOMIC_RELAXED);
}

static int
total_conns(void)
{
	int i, n = 0;

	for (i = 0; i < mc->workers; i++)
		n += __atomic_load_n(&mc->worker_conns[i * WORKER_STRIDE],
		    __ATOMIC_RELAXED);
	return n;
}

/*
 * One turn; then watch for what the connection waits for, or close it.
 * Returns now, or the later time the turn read: the events of one wake-up
 * share a clock read, and a turn that ran long must not shorten the next
 * connection's (its CONN_TURN_MS count from the now it is given).
 */
static uint64_t
drive(struct ev_conn *e, int readable, uint64_t now)
{
	struct epoll_event ev;
	uint32_t want;
	int open;

	if (e->index < 0)
		return now;	/* closed earlier this turn */
	open = conn_step(&e->c, readable, now);
	if (e->c.turn_clock > now)
		now = e->c.turn_clock;
	if (!open) {
		conn_close(e);
		return now;
	}
	if (e->c.wake_at != 0 && (next_due == 0 || e->c.wake_at < next_due))
		next_due = e->c.wake_at;
	want = (e->c.want_read ? EPOLLIN : 0) | (e->c.want_write ? EPOLLOUT :
	    0);
	if (want == e->events)
		return now;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = e;
	/* A connection that waits for nothing (paused) is not watched: a
	 * hang-up would otherwise wake the loop again and again. */
	if (want == 0)
		epoll_ctl(ep, EPOLL_CTL_DEL, e->c.in, NULL);
	else if (epoll_ctl(ep, e->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
	    e->c.in, &ev) == -1) {
		log_warn("epoll_ctl %s", e->c.peer);
		conn_close(e);
		return now;
	}
	e->events = want;
	return now;
}

static void
answer(int i, uint64_t now)
{
	struct helper *h = &helpers[i];
	struct answer_msg a;
	struct client who;
	struct job *j = h->job;
	ssize_t n;

	n = recv(h->fd, &a, sizeof(a), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n != (ssize_t)sizeof(a) || j == NULL || a.id != j->msg.id) {
		/* Dead or confused: its login fails, a new helper starts. */
		log_warnx("login helper %ld gone", (long)h->pid);
		epoll_ctl(ep, EPOLL_CTL_DEL, h->fd, NULL);
		close(h->fd);
		kill(h->pid, SIGKILL);
		memset(&a, 0, sizeof(a));
		a.rc = CR_ERROR;
		if (j != NULL)
			a.id = j->msg.id;
		if (!conn_stop)
			helper_start(i);
		else
			h->fd = -1;
	}
	h->job = NULL;
	if (j != NULL && j->owner != NULL && a.rc == CR_LOGIN_AGAIN) {
		/* Not yet: back to the head of the queue, still the oldest
		 * of its address, with the rest of its delay to wait. */
		j->not_before = now + (a.again_ms < 3600000 ? a.again_ms :
		    3600000);
		j->msg.retried = 1;
		j->next = queue;
		queue = j;
		dispatch(now);
		return;
	}
	if (j != NULL && j->owner != NULL) {
		struct ev_conn *e = j->owner;

		memset(&who, 0, sizeof(who));
		who.user = a.user;
		who.gen = a.gen;
		who.role = a.role;
		who.target = a.target;
		who.target_gen = a.target_gen;
		a.name[sizeof(a.name) - 1] = '\0';
		a.target_name[sizeof(a.target_name) - 1] = '\0';
		memcpy(who.name, a.name, sizeof(who.name));
		memcpy(who.target_name, a.target_name, sizeof(who.target_name));
		e->job = NULL;
		conn_login_done(&e->c, a.rc, &who);
		drive(e, 0, now);
	}
	if (j != NULL)
		explicit_bzero(j, sizeof(*j));	/* the secret with it */
	free(j);
	dispatch(now);
}

static void
take(int li, uint64_t now)
{
	char peer[NET_NAME_MAX];
	struct sockaddr_storage ss;
	struct ev_conn *e;
	socklen_t sslen;
	int fd, n;

	for (n = 0; n < ACCEPT_BURST; n++) {
		sslen = sizeof(ss);
		fd = accept4(mc->lfd[li], (struct sockaddr *)&ss, &sslen,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		net_peer_name(&ss, sslen, peer, sizeof(peer));
		if (nconns >= maxconns || total_conns() >= mc->maxconn ||
		    (e = calloc(1, sizeof(*e))) == NULL) {
			log_warnx("busy: refused %s at %d/%d", peer,
			    total_conns(), mc->maxconn);
			store_note_rejected(mc->conn->store);
			conn_refuse_fd(fd, mc->lproto[li]);
			continue;
		}
		store_note_connection(mc->conn->store);
		net_nodelay(fd);
		log_info("conn: pid %ld from %s", (long)getpid(), peer);
		e->index = nconns;
		conns[nconns++] = e;
		publish_count();
		(void)conn_init(&e->c, mc->conn, mc->lproto[li], fd, fd, peer);
		e->c.cl.defer = defer_login;
		e->c.cl.defer_ctx = e;
		conn_start(&e->c, now);
		drive(e, 0, now);
	}
}

/*
 * Deadlines that came due.  next_due is the earliest any connection asked
 * for (or earlier: a deadline moved later is found at the walk), so the
 * connections are walked only when one may be due, not at every wake-up.
 */
static void
run_timers(uint64_t now)
{
	int i;

	if (next_due == 0 || now < next_due)
		return;
	next_due = 0;
	for (i = nconns - 1; i >= 0; i--) {
		if (i >= nconns)
			continue;
		if (conns[i]->c.wake_at != 0 && conns[i]->c.wake_at <= now)
			drive(conns[i], 0, now);
		else if (conns[i]->c.wake_at != 0 && (next_due == 0 ||
		    conns[i]->c.wake_at < next_due))
			next_due = conns[i]->c.wake_at;
	}
}

/* epoll_wait's timeout: to the next deadline, a second at most (so that a
 * SIGTERM landing between the check and the wait is seen). */
static int
next_wait(uint64_t now)
{
	uint64_t at = next_due;

	if (next_dispatch != 0 && (at == 0 || next_dispatch < at))
		at = next_dispatch;
	if (at == 0 || at > now + 1000)
		return 1000;
	return at > now ? (int)(at - now) : 0;
}

static void
on_term(int sig)
{
	(void)sig;
	conn_stop = 1;
}

void
event_worker(struct master_config *m)
{
	struct epoll_event evs[MAX_EVENTS];
	struct sigaction sa;
	sigset_t none;
	uint64_t now, tag;
	int i, n, stopping = 0;

	mc = m;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);	/* helpers are reaped by the kernel */
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (store_attach_process(mc->conn->store) == -1)
		_exit(1);
	/*
	 * Every connection takes and gives back its buffers (64 KiB to read
	 * into): without this, a connection per request trims the heap and
	 * grows it again (brk) at every other connection.  Setting it also
	 * stops glibc's sliding mmap threshold at its 128 KiB: a buffer grown
	 * past that for a large value is mapped and unmapped with its
	 * connection, a cost only such connections pay.
	 */
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	maxconns = mc->maxconn;
	if ((conns = calloc((size_t)maxconns, sizeof(*conns))) == NULL ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("event worker");
	for (i = 0; i < HELPERS; i++)
		helper_start(i);
	for (i = 0; i < mc->nlfd; i++)
		watch(mc->lfd[i], EPOLLIN | EPOLLEXCLUSIVE, TAG_LISTEN +
		    (uint64_t)i);
	for (;;) {
		now = conn_now();
		if (conn_stop && !stopping) {
			/* Take no more; tell every connection, let each go
			 * within its write deadline. */
			stopping = 1;
			for (i = 0; i < mc->nlfd; i++) {
				epoll_ctl(ep, EPOLL_CTL_DEL, mc->lfd[i], NULL);
				close(mc->lfd[i]);
			}
			for (i = nconns - 1; i >= 0; i--)
				if (i < nconns)
					drive(conns[i], 0, now);
			bury();
		}
		if (stopping && nconns == 0)
			break;
		n = epoll_wait(ep, evs, MAX_EVENTS, next_wait(now));
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		now = conn_now();
		for (i = 0; i < n; i++) {
			tag = evs[i].data.u64;
			if (tag >= TAG_HELPER && tag < TAG_MAX)
				answer((int)(tag - TAG_HELPER), now);
			else if (tag >= TAG_LISTEN && tag < TAG_HELPER) {
				if (!stopping)
					take((int)(tag - TAG_LISTEN), now);
			} else
				now = drive(evs[i].data.ptr, (evs[i].events &
				    (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0, now);
		}
		run_timers(now);
		if (next_dispatch != 0 && now >= next_dispatch)
			dispatch(now);
		bury();
	}
	for (i = 0; i < HELPERS; i++)
		if (helpers[i].fd != -1)
			close(helpers[i].fd);
	store_detach_process(mc->conn->store);
	_exit(0);
}
