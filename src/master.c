/*
 * master.c - accept a connection, fork a child for it, reap children.
 *
 * Signals are blocked except inside ppoll(), so the handlers only set flags
 * and every consequence (reaping, logging, stopping) happens here in the
 * loop, in order.  Over the connection limit a newcomer gets one refusal
 * line and is closed; the children already serving are not disturbed.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "net.h"
#include "store.h"
#include "users.h"

#define BUSY_LINE	"ERR busy too many connections\r\n"

struct child {
	pid_t	pid;
	char	peer[NET_NAME_MAX];
};

static volatile sig_atomic_t got_chld, got_term, got_hup;

static struct child *children;
static int nchildren, maxchildren;

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
	session_stop = 1;
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

/* A child serves one connection and exits; 0 when it ended well. */
void
child_serve(int in, int out, struct session_config *cfg, const char *peer)
{
	sigset_t none;

	catch(SIGTERM, on_child_term);
	catch(SIGHUP, SIG_IGN);
	catch(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (store_attach_process(cfg->store) == -1)
		_exit(1);
	store_note_connection(cfg->store);
	net_nodelay(out);
	session_run(in, out, cfg, peer);
	store_detach_process(cfg->store);
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

static void
reap(struct master_config *mc)
{
	struct child *c;
	pid_t pid;
	int status, saved = errno;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((c = find_child(pid)) == NULL)
			continue;	/* a repair helper */
		if (WIFSIGNALED(status)) {
			log_warnx("end: pid %ld signal %d from %s", (long)pid,
			    WTERMSIG(status), c->peer);
			repair_after(mc->session->store, pid);
		} else {
			log_info("end: pid %ld status %d", (long)pid,
			    WEXITSTATUS(status));
			if (WEXITSTATUS(status) > 1)
				repair_after(mc->session->store, pid);
		}
		*c = children[--nchildren];
		log_info("status: %d/%d", nchildren, mc->maxconn);
	}
	errno = saved;
}

static void
refuse(int fd)
{
	/* Best effort: the line is short and the socket buffer is empty. */
	(void)!write(fd, BUSY_LINE, sizeof(BUSY_LINE) - 1);
	close(fd);
}

static void
accept_one(struct master_config *mc, int li)
{
	int lfd = mc->lfd[li];
	char peer[NET_NAME_MAX];
	pid_t pid;
	int fd, i;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	net_peer(fd, peer, sizeof(peer));
	if (nchildren >= mc->maxconn) {
		log_warnx("busy: refused %s at %d/%d", peer, nchildren,
		    mc->maxconn);
		refuse(fd);
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("fork for %s", peer);
		refuse(fd);
		return;
	}
	if (pid == 0) {
		for (i = 0; i < mc->nlfd; i++)
			close(mc->lfd[i]);
		mc->session->proto = mc->lproto[li];
		if (mc->lproto[li] != PROTO_MEMCACHED)
			mc->session->bound_user = NULL;
		child_serve(fd, fd, mc->session, peer);
	}
	close(fd);
	children[nchildren].pid = pid;
	memcpy(children[nchildren].peer, peer, sizeof(peer));
	nchildren++;
	log_info("conn: pid %ld from %s", (long)pid, peer);
	log_info("status: %d/%d", nchildren, mc->maxconn);
}

/* SIGTERM: stop accepting, let each child finish its request, then go. */
static void
shut_down(struct master_config *mc)
{
	sigset_t none;
	int i;

	for (i = 0; i < mc->nlfd; i++)
		close(mc->lfd[i]);
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGTERM);
	sigemptyset(&none);
	while (nchildren > 0) {
		got_chld = 0;
		reap(mc);
		if (nchildren > 0 && !got_chld)
			sigsuspend(&none);
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
	struct store *st = mc->session->store;
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

int
master_run(struct master_config *mc)
{
	struct pollfd pfd[MASTER_MAX_LISTEN];
	sigset_t block, none;
	int i, n;

	maxchildren = mc->maxconn;
	if ((children = calloc((size_t)maxchildren, sizeof(*children))) == NULL)
		fatal("calloc");
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
	for (i = 0; i < mc->nlfd; i++) {
		pfd[i].fd = mc->lfd[i];
		pfd[i].events = POLLIN;
	}
	for (;;) {
		if (got_chld) {
			got_chld = 0;
			reap(mc);
		}
		if (got_term) {
			log_info("stop: SIGTERM, %d children to finish",
			    nchildren);
			shut_down(mc);
			return 0;
		}
		if (got_hup) {
			got_hup = 0;
			reload(mc);
		}
		n = ppoll(pfd, (nfds_t)mc->nlfd, NULL, &none);
		if (n == -1) {
			if (errno != EINTR)
				fatal("ppoll");
			continue;
		}
		for (i = 0; i < mc->nlfd; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(mc, i);
	}
}
