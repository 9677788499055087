/*
 * master.h - the listening process: accept, fork, reap.  It never reads a
 * byte a client sends.
 */
#ifndef MASTER_H
#define MASTER_H

#include <sys/types.h>

#include "conn.h"

#define MASTER_MAX_LISTEN	8

struct master_config {
	int			 lfd[MASTER_MAX_LISTEN];
	enum conn_proto	 lproto[MASTER_MAX_LISTEN];
	int			 nlfd;
	int			 maxconn;
	int			 max_spares;	/* pre-forked children, 0 = none */
	int			 engine;	/* ENGINE_PREFORK or ENGINE_EVENT */
	int			 workers;	/* the event engine's processes */
	int			 worker_slot;	/* this worker's in worker_conns */
	volatile int		*worker_conns;	/* shared: connections per worker */
	const char		*users_file;	/* reloaded on SIGHUP */
	struct conn_config	*conn;
};

#define WORKER_STRIDE	16	/* ints: a cache line per worker's count */
#define ENGINE_PREFORK	0	/* a process per connection (the default) */
#define ENGINE_EVENT	1	/* a few processes, each with an event loop */

int	master_run(struct master_config *);
void	event_worker(struct master_config *) __attribute__((noreturn));
void	child_serve(int in, int out, struct conn_config *, enum conn_proto,
	    const char *peer);
pid_t	helper_fork(struct master_config *, const char *what);	/* helper.c */
void	crawler_main(struct store *) __attribute__((noreturn));	/* crawler.c */

#endif
