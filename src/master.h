/*
 * master.h - the listening process: accept, fork, reap.  It never reads a
 * byte a client sends.
 */
#ifndef MASTER_H
#define MASTER_H

#include "conn.h"

#define MASTER_MAX_LISTEN	8

struct master_config {
	int			 lfd[MASTER_MAX_LISTEN];
	enum conn_proto	 lproto[MASTER_MAX_LISTEN];
	int			 nlfd;
	int			 maxconn;
	int			 max_spares;	/* pre-forked children, 0 = none */
	const char		*users_file;	/* reloaded on SIGHUP */
	struct conn_config	*conn;
};

int	master_run(struct master_config *);
void	child_serve(int in, int out, struct conn_config *, enum conn_proto,
	    const char *peer);

#endif
