/*
 * master.c - keep children serving connections, one connection each, and
 * reap them.  The master never reads a byte a client sends.
 *
 * So that a connect does not wait for a fork, the master keeps a few spare
 * children already forked and attached to the segment, each blocked in
 * accept() on the listening sockets; the kernel hands a new connection to
 * one of them.  The chosen child tells the master over a pipe that it is
 * busy, serves its one connection and exits, and the master forks a
 * replacement.  When the pool runs dry the number of spares doubles (up to
 * -k); when it has not run dry for a while it shrinks by one.  Only while
 * no spare is waiting does the master accept itself: to fork a child for the
 * connection, or, at the connection limit, to answer one refusal line.
 *
 * With -e event the master keeps -w event workers instead (event.c), each
 * accepting and serving many connections, and restarts one that dies.
 *
 * With either engine the master keeps one more child, the expiry crawler
 * (crawler.c, a helper process of helper.c's design), and restarts it, as
 * it restarts workers, when it dies.
 *
 * Signals are blocked except inside ppoll(), so the handlers only set flags
 * and every consequence (reaping, logging, stopping) happens here in order.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "net.h"
#include "store.h"
#include "users.h"

#define SHRINK_AFTER_MS	5000	/* a pool that never ran dry this long shrinks */
#define SPARE_POLL_MS	1000	/* a spare looks at conn_stop this often */

/* What a spare tells the master when it takes a connection: one atomic write. */
struct busy_note {
	pid_t	pid;
	char	peer[NET_NAME_MAX];
};

struct child {
	pid_t	pid;
	int	busy;		/* 0 while a spare waits in accept() */
	int	slot;		/* an event worker's in worker_conns */
	char	peer[NET_NAME_MAX];
};

static volatile sig_atomic_t got_chld, got_term, got_hup;

static struct child *children;
static int nchildren, nbusy, spare_target;
static int busy_pipe[2] = { -1, -1 };	/* spares write their pid here */
static uint64_t last_dry;		/* when the pool last ran dry, ms */
static pid_t master_pid;
static uint64_t last_worker;		/* when the last worker was forked */
static int worker_died_young;		/* within a second of its fork */
static pid_t crawler_pid;		/* 0 while none runs */
static uint64_t last_crawler;		/* when it was last forked */
static int crawler_died_young;

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		got_chld = 1;
		break;
	case SIGTERM:
	case SIGINT:
		got_term = 1;
		break;
	case SIGHUP:
		got_hup = 1;
		break;
	}
}

static void
on_child_term(int sig)
{
	(void)sig;
	conn_stop = 1;
}

static void
catch(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
child_signals(void)
{
	sigset_t none;

	catch(SIGTERM, on_child_term);
	catch(SIGHUP, SIG_IGN);
	catch(SIGPIPE, SIG_IGN);
	catch(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Serve one connection in this process, then exit. */
static void
serve(int in, int out, struct conn_config *cfg, enum conn_proto proto,
    const char *peer)
{
	struct conn c;

	store_note_connection(cfg->store);
	net_nodelay(out);
	(void)conn_init(&c, cfg, proto, in, out, peer);
	conn_serve(&c);
	conn_free(&c);
	store_detach_process(cfg->store);
	_exit(0);
}

/* A child forked for a connection already accepted (or inetd's). */
void
child_serve(int in, int out, struct conn_config *cfg, enum conn_proto proto,
    const char *peer)
{
	child_signals();
	if (store_attach_process(cfg->store) == -1)
		_exit(1);
	serve(in, out, cfg, proto, peer);
}

/*
 * A spare: attach to the segment now, before any client waits, then take
 * the next connection from whichever listener has one.
 */
static void
spare_main(struct master_config *mc)
{
	struct pollfd pfd[MASTER_MAX_LISTEN];
	struct sockaddr_storage ss;
	struct busy_note note;
	socklen_t sslen;
	int i, j, fd;

	child_signals();
	close(busy_pipe[0]);
	/*
	 * A spare that outlived a killed master would keep its port and take
	 * connections nobody counts or reaps: it goes with the master (a
	 * serving child clears this and finishes its connection).
	 */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master_pid)
		_exit(0);
	if (store_attach_process(mc->conn->store) == -1)
		_exit(1);
	for (i = 0; i < mc->nlfd; i++) {
		pfd[i].fd = mc->lfd[i];
		pfd[i].events = POLLIN;
	}
	/* Poll with a timeout: a SIGTERM that lands just before poll() is
	 * then seen within SPARE_POLL_MS instead of never. */
	while (!conn_stop) {
		if (mc->nlfd > 1 &&
		    poll(pfd, (nfds_t)mc->nlfd, SPARE_POLL_MS) == -1)
			continue;
		for (i = 0; i < mc->nlfd; i++) {
			if (mc->nlfd > 1 && !(pfd[i].revents & POLLIN))
				continue;
			/* Listeners are non-blocking: another spare may win. */
			sslen = sizeof(ss);
			fd = accept4(mc->lfd[i], (struct sockaddr *)&ss,
			    &sslen, SOCK_CLOEXEC);
			if (fd == -1) {
				if (mc->nlfd == 1 && errno == EAGAIN) {
					poll(pfd, 1, SPARE_POLL_MS);
				}
				continue;
			}
			prctl(PR_SET_PDEATHSIG, 0);
			memset(&note, 0, sizeof(note));
			note.pid = getpid();
			net_peer_name(&ss, sslen, note.peer,
			    sizeof(note.peer));
			(void)!write(busy_pipe[1], &note, sizeof(note));
			close(busy_pipe[1]);
			for (j = 0; j < mc->nlfd; j++)
				close(mc->lfd[j]);
			serve(fd, fd, mc->conn, mc->lproto[i], note.peer);
		}
	}
	store_detach_process(mc->conn->store);
	_exit(0);
}

static struct child *
find_child(pid_t pid)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].pid == pid)
			return &children[i];
	return NULL;
}

static int
spares(void)
{
	return nchildren - nbusy;
}

static void
fork_spare(struct master_config *mc)
{
	pid_t pid = fork();

	if (pid == -1) {
		log_warn("fork a spare");
		return;
	}
	if (pid == 0)
		spare_main(mc);
	children[nchildren].pid = pid;
	children[nchildren].busy = 0;
	children[nchildren].peer[0] = '\0';
	nchildren++;
}

/* An event worker: many connections, one loop (event.c). */
static void
fork_worker(struct master_config *mc)
{
	pid_t pid;
	int slot, i;

	/* The lowest slot no live worker has; its count starts again at 0. */
	for (slot = 0; slot < mc->workers; slot++) {
		for (i = 0; i < nchildren && children[i].slot != slot; i++)
			;
		if (i == nchildren)
			break;
	}
	mc->worker_conns[slot * WORKER_STRIDE] = 0;
	mc->worker_slot = slot;
	pid = fork();

	if (pid == -1) {
		log_warn("fork a worker");
		return;
	}
	if (pid == 0) {
		close(busy_pipe[0]);
		close(busy_pipe[1]);
		event_worker(mc);
	}
	children[nchildren].pid = pid;
	children[nchildren].busy = 0;
	children[nchildren].slot = slot;
	snprintf(children[nchildren].peer, sizeof(children[nchildren].peer),
	    "worker");
	nchildren++;
	last_worker = now_ms();
	log_info("worker: pid %ld", (long)pid);
}

/*
 * The crawler (crawler.c): one, for either engine, restarted when it dies,
 * not more than once a second while it dies young.
 */
static void
start_crawler(struct master_config *mc)
{
	pid_t pid;

	if (crawler_pid != 0 ||
	    (crawler_died_young && now_ms() - last_crawler < 1000))
		return;
	crawler_died_young = 0;
	last_crawler = now_ms();
	if ((pid = helper_fork(mc, "crawler")) == -1)
		return;
	if (pid == 0) {
		close(busy_pipe[0]);
		close(busy_pipe[1]);
		crawler_main(mc->conn->store);
	}
	crawler_pid = pid;
	log_info("crawler: pid %ld", (long)pid);
}

/*
 * Keep spare_target spares, within the connection limit; or, for the
 * event engine, all its workers, restarting one that died (not more than
 * one a second while they die young, so a worker that cannot start does
 * not make the master fork in a loop).
 */
static void
top_up(struct master_config *mc)
{
	start_crawler(mc);
	if (mc->engine == ENGINE_EVENT) {
		while (nchildren < mc->workers) {
			if (worker_died_young && now_ms() - last_worker < 1000)
				return;
			worker_died_young = 0;
			fork_worker(mc);
		}
		return;
	}
	while (spares() < spare_target && nchildren < mc->maxconn)
		fork_spare(mc);
}

/* Spares that have taken a connection say so; note them busy. */
static void
read_busy(struct master_config *mc)
{
	struct busy_note note;
	struct child *c;

	while (read(busy_pipe[0], &note, sizeof(note)) ==
	    (ssize_t)sizeof(note)) {
		if ((c = find_child(note.pid)) == NULL || c->busy)
			continue;
		c->busy = 1;
		note.peer[sizeof(note.peer) - 1] = '\0';
		memcpy(c->peer, note.peer, sizeof(c->peer));
		nbusy++;
		log_info("conn: pid %ld from %s", (long)note.pid, note.peer);
		log_debug("status: %d/%d", nbusy, mc->maxconn);
	}
	if (spares() == 0 && mc->max_spares > 0) {
		last_dry = now_ms();
		if (spare_target < mc->max_spares)
			spare_target = spare_target * 2 > mc->max_spares ?
			    mc->max_spares : spare_target * 2;
	}
}

/*
 * A child that died by a signal or exited with a status other than 0 or 1
 * may have held a lock or a half-made item: finish its registry slot now in
 * a short-lived helper, so the master never waits on a shared lock.
 */
static void
repair_after(struct store *st, pid_t dead)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (store_attach_process(st) == 0) {
			store_reap(st, (uint32_t)dead);
			store_detach_process(st);
		}
		_exit(0);
	}
	if (pid == -1)
		log_warn("fork for repair after pid %ld", (long)dead);
}

/* The crawler ended: repaired like any child, restarted by top_up(). */
static void
crawler_ended(struct master_config *mc, pid_t pid, int status)
{
	if (WIFSIGNALED(status)) {
		log_warnx("crawler: pid %ld signal %d", (long)pid,
		    WTERMSIG(status));
		repair_after(mc->conn->store, pid);
	} else {
		log_info("crawler: pid %ld status %d", (long)pid,
		    WEXITSTATUS(status));
		if (WEXITSTATUS(status) > 1)
			repair_after(mc->conn->store, pid);
	}
	crawler_pid = 0;
	if (now_ms() - last_crawler < 1000)
		crawler_died_young = 1;
}

static void
reap(struct master_config *mc)
{
	struct child *c;
	pid_t pid;
	int status, saved = errno;

	/* A child that took a connection and died at once: its busy note
	 * first, so that its end names its peer. */
	read_busy(mc);
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == crawler_pid) {
			crawler_ended(mc, pid, status);
			continue;
		}
		if ((c = find_child(pid)) == NULL)
			continue;	/* a repair or reload helper */
		if (WIFSIGNALED(status)) {
			log_warnx("end: pid %ld signal %d from %s", (long)pid,
			    WTERMSIG(status), c->peer[0] ? c->peer : "spare");
			repair_after(mc->conn->store, pid);
		} else {
			log_info("end: pid %ld status %d", (long)pid,
			    WEXITSTATUS(status));
			if (WEXITSTATUS(status) > 1)
				repair_after(mc->conn->store, pid);
			else if (WEXITSTATUS(status) == 1)
				/* A fatal(): nothing half done in the
				 * store, but its connections' counts. */
				store_conn_forget(mc->conn->store,
				    (uint32_t)pid);
		}
		if (c->busy)
			nbusy--;
		if (mc->engine == ENGINE_EVENT && now_ms() - last_worker < 1000)
			worker_died_young = 1;
		*c = children[--nchildren];
		log_debug("status: %d/%d", nbusy, mc->maxconn);
	}
	errno = saved;
}

/* No spare was waiting: fork a child for this connection, or refuse it. */
static void
accept_one(struct master_config *mc, int li)
{
	char peer[NET_NAME_MAX];
	struct sockaddr_storage ss;
	socklen_t sslen;
	pid_t pid;
	int fd, i;

	sslen = sizeof(ss);
	if ((fd = accept4(mc->lfd[li], (struct sockaddr *)&ss, &sslen,
	    SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	net_peer_name(&ss, sslen, peer, sizeof(peer));
	if (nchildren >= mc->maxconn) {
		log_warnx("busy: refused %s at %d/%d", peer, nbusy,
		    mc->maxconn);
		store_note_rejected(mc->conn->store);
		conn_refuse_fd(fd, mc->lproto[li]);
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("fork for %s", peer);
		store_note_rejected(mc->conn->store);
		conn_refuse_fd(fd, mc->lproto[li]);
		return;
	}
	if (pid == 0) {
		for (i = 0; i < mc->nlfd; i++)
			close(mc->lfd[i]);
		close(busy_pipe[0]);
		close(busy_pipe[1]);
		child_serve(fd, fd, mc->conn, mc->lproto[li], peer);
	}
	close(fd);
	children[nchildren].pid = pid;
	children[nchildren].busy = 1;
	memcpy(children[nchildren].peer, peer, sizeof(peer));
	nchildren++;
	nbusy++;
	log_info("conn: pid %ld from %s", (long)pid, peer);
	log_debug("status: %d/%d", nbusy, mc->maxconn);
}

/* SIGTERM: stop accepting, let each child finish its request, then go. */
static void
shut_down(struct master_config *mc)
{
	struct timespec again = { 1, 0 };
	sigset_t none;
	int i;

	for (i = 0; i < mc->nlfd; i++)
		close(mc->lfd[i]);
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGTERM);
	if (crawler_pid != 0)
		kill(crawler_pid, SIGTERM);
	sigemptyset(&none);
	while (nchildren > 0 || crawler_pid != 0) {
		got_chld = 0;
		reap(mc);
		/* A SIGTERM that lands between a child's check of conn_stop
		 * and its poll() goes unseen until the idle timeout: say it
		 * again every second to those still there. */
		if ((nchildren > 0 || crawler_pid != 0) && !got_chld &&
		    ppoll(NULL, 0, &again, &none) == 0) {
			for (i = 0; i < nchildren; i++)
				kill(children[i].pid, SIGTERM);
			if (crawler_pid != 0)
				kill(crawler_pid, SIGTERM);
		}
	}
	log_info("stop: all children done");
}

/*
 * SIGHUP: read the users file again (an operator may have edited it), in a
 * helper, since loading takes shared locks.  Live sessions are untouched;
 * changed roles apply at their next request.
 */
static void
reload(struct master_config *mc)
{
	struct store *st = mc->conn->store;
	char err[512];
	pid_t pid;

	if (mc->users_file == NULL) {
		log_info("reload: SIGHUP, no users file to reload");
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("reload: fork");
		return;
	}
	if (pid != 0)
		return;
	if (store_attach_process(st) == -1)
		_exit(1);
	if (users_load(st, mc->users_file, err, sizeof(err)) == -1)
		log_warnx("reload: %s", err);
	else
		log_info("reload: users file %s, %u accounts", mc->users_file,
		    store_user_count(st));
	store_detach_process(st);
	_exit(0);
}

/*
 * A pool that has not run dry for a while wants one spare fewer.  Spares
 * are not killed (one may be taking a connection that very moment): the
 * pool shrinks as they are used and not replaced.
 */
static void
shrink(void)
{
	if (spare_target <= 1 || now_ms() - last_dry < SHRINK_AFTER_MS)
		return;
	spare_target--;
	last_dry = now_ms();
}

int
master_run(struct master_config *mc)
{
	struct pollfd pfd[MASTER_MAX_LISTEN + 1];
	struct timespec tick = { 1, 0 };
	sigset_t block, none;
	int i, n, np;

	master_pid = getpid();
	if ((children = calloc((size_t)(mc->maxconn > mc->workers ?
	    mc->maxconn : mc->workers), sizeof(*children))) == NULL)
		fatal("calloc");
	if (pipe2(busy_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");
	if (mc->engine == ENGINE_EVENT && (mc->worker_conns = mmap(NULL,
	    (size_t)mc->workers * WORKER_STRIDE * sizeof(int), PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		fatal("mmap");
	for (i = 0; i < mc->nlfd; i++)
		fcntl(mc->lfd[i], F_SETFL, fcntl(mc->lfd[i], F_GETFL) |
		    O_NONBLOCK);
	spare_target = mc->max_spares > 0 ? 1 : 0;
	last_dry = now_ms();
	catch(SIGCHLD, on_signal);
	catch(SIGTERM, on_signal);
	catch(SIGINT, on_signal);
	catch(SIGHUP, on_signal);
	catch(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&none);
	for (;;) {
		if (got_chld) {
			got_chld = 0;
			reap(mc);
		}
		if (got_term) {
			log_info("stop: SIGTERM, %d children to finish",
			    nbusy);
			shut_down(mc);
			return 0;
		}
		if (got_hup) {
			got_hup = 0;
			reload(mc);
		}
		read_busy(mc);
		shrink();
		top_up(mc);
		/* The master listens only while no spare does. */
		pfd[0].fd = busy_pipe[0];
		pfd[0].events = POLLIN;
		np = 1;
		if (spares() == 0 && mc->engine == ENGINE_PREFORK)
			for (i = 0; i < mc->nlfd; i++, np++) {
				pfd[np].fd = mc->lfd[i];
				pfd[np].events = POLLIN;
			}
		n = ppoll(pfd, (nfds_t)np, mc->max_spares > 0 ||
		    mc->engine == ENGINE_EVENT || crawler_pid == 0 ? &tick :
		    NULL, &none);
		if (n == -1) {
			if (errno != EINTR)
				fatal("ppoll");
			continue;
		}
		for (i = 1; i < np; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(mc, i - 1);
	}
}
