/*
 * helper.c - the daemon's helper processes, designed once: a process forked
 * to work beside the connections (the crawler, an event worker's login
 * helpers) is started by helper_fork() and lives by the same rules.
 *
 *  - It is attached to the segment as a process of its own, so a death at
 *    any instruction is repaired like a connection child's: its parent sees
 *    it die, and a signal or a status above 1 has its registry slot
 *    finished (master.c's repair_after(); lock.c recovers a lock it held).
 *  - It goes with its parent (PR_SET_PDEATHSIG), so that no helper outlives
 *    a killed master or worker and works on with nobody to restart it.
 *  - SIGTERM sets conn_stop and nothing else; the helper looks at it between
 *    two steps of its work, so it stops between critical sections, never
 *    inside one.  It holds no listening socket.
 *  - Its parent restarts it when it dies (the master its crawler, a worker
 *    its login helpers), not more than once a second while it dies young.
 */
#include <sys/prctl.h>

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "store.h"

static void
on_term(int sig)
{
	(void)sig;
	conn_stop = 1;
}

/*
 * Fork a helper named what.  Returns its pid in the parent, 0 in the
 * helper (set up and attached), -1 if the fork failed.
 */
pid_t
helper_fork(struct master_config *mc, const char *what)
{
	struct sigaction sa;
	sigset_t none;
	pid_t parent = getpid(), pid;
	int i;

	if ((pid = fork()) == -1) {
		log_warn("%s: fork", what);
		return -1;
	}
	if (pid != 0)
		return pid;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; i < mc->nlfd; i++)
		close(mc->lfd[i]);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(0);	/* the parent died before the line above */
	if (store_attach_process(mc->conn->store) == -1)
		_exit(1);
	return 0;
}
