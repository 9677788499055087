/*
 * conn.h - the connection core: one client connection's socket, buffers and
 * deadlines, for every protocol and every engine.
 *
 * The core reads and writes; a front-end (native.c, mcproto.c) turns what
 * has arrived in the input buffer into replies in the output buffer and does
 * no I/O; the command layer (cmd.c) under it does the work.  All of a
 * connection's state is in one struct conn, so that one process may drive
 * many connections; the prefork engine drives one (conn_serve()).
 */
#ifndef CONN_H
#define CONN_H

#include <signal.h>
#include <stdint.h>

#include "buf.h"
#include "cmd.h"
#include "kvstore.h"
#include "mcparse.h"
#include "net.h"
#include "store.h"

enum conn_proto {
	PROTO_NATIVE = 0,	/* kvstore(7) */
	PROTO_MEMCACHED		/* memcached's text protocol */
};

/* The lines a server sends on its own, each in the listener's protocol. */
enum conn_event {
	EV_BUSY,		/* the connection limit (-c) */
	EV_BUSY_ADDR,		/* connections from one address (-H) */
	EV_BUSY_PRELOGIN,	/* not logged in, from one address (-U) */
	EV_TIMEOUT_PARTIAL,	/* a request half sent for -T seconds */
	EV_TIMEOUT_IDLE,	/* nothing sent for -t (-W) seconds */
	EV_TIMEOUT_LOGIN,	/* no login within -L seconds */
	EV_SHUTDOWN,		/* the server is stopping */
	EV_COUNT
};

#define CONN_OUT_MAX	(1024 * 1024)	/* replies queued before input waits */
#define CONN_TURN	64		/* requests a turn, then the others' */
#define CONN_TURN_MS	10		/* or this long, whichever is first */

struct conn_config {
	struct store		*store;
	struct cmd_policy	 policy;
	const char		*bound_user;	/* memcached listener: no login */
	int			 idle_timeout;	/* seconds, native listener */
	int			 mc_idle_timeout;	/* seconds, 0 = none */
	int			 partial_timeout;	/* -T: a request, a reply */
	int			 login_timeout;	/* seconds to log in */
	unsigned		 per_addr;	/* -H, 0 = no limit */
	unsigned		 per_addr_prelogin;	/* -U, 0 = no limit */
};

/* memcached's retrieval line in progress (mcproto.c). */
struct mc_state {
	struct mc_parser parser;
	int		 get_active;	/* inside a get/gets/gat/gats line */
	int		 get_cas;	/* gets, gats: show the cas */
	int		 get_touch;	/* gat, gats: set the expiry */
	int		 get_flushed;	/* replies already handed to the core */
	int		 get_denied;	/* the role changed mid-line: result */
	uint32_t	 get_exptime;
	uint64_t	 get_tokens;	/* after the verb */
	size_t		 get_mark;	/* bytes queued in ob when it began */
	/* a listing of the acting store in progress (mcstats.c) */
	int		 dump;		/* 0, MC_DUMP_META or MC_DUMP_CACHE */
	uint32_t	 dump_cursor;	/* the stripe it goes on from */
	uint64_t	 dump_classes;	/* bit n for size class n */
	uint32_t	 dump_left;	/* cachedump: items still to show */
	int		 dump_limited;
	int		 dump_audit;	/* its audit record is open */
};
#define MC_DUMP_META	1	/* lru_crawler metadump */
#define MC_DUMP_CACHE	2	/* stats cachedump */

struct conn {
	const struct conn_config *cfg;
	enum conn_proto	 proto;
	struct client	 cl;
	int		 in, out;
	char		 peer[NET_NAME_MAX];
	struct buf	 ib, ob;
	uint64_t	 discard;	/* bytes to drop after an error */
	int		 skip_line;	/* then drop through the next LF */
	int		 closing;	/* close once the replies are out */
	int		 eof;		/* the peer sent its last byte */
	uint64_t	 requests;
	uint64_t	 bytes_read, bytes_written;	/* this connection's */
	uint32_t	 limit_slot;	/* in the per-address table, 0 = none */
	int		 counted_login;	/* limit_slot says logged in */
	struct mc_state	 mc;
	/* the core's clock, ms (conn_now()) */
	uint64_t	 T, idle;	/* -T and the listener's idle, in ms */
	uint64_t	 login_by, partial_since, write_since, idle_since;
	uint64_t	 turn_from;	/* the now this conn_step() was given */
	uint64_t	 turn_clock;	/* the last clock its turns read */
	int		 more;		/* the front-end stopped at the bound */
	int		 yield;		/* it answered a turn's worth */
	int		 paused;	/* waiting on a login helper */
	int		 stopped;	/* told of the shutdown */
	int		 rc;		/* conn_step() done: how */
	/* what conn_step() wants next */
	int		 want_read, want_write;
	uint64_t	 wake_at;
	/* the prefork engine's socket (conn_serve()) */
	int		 sockio;	/* blocking: recv/send say MSG_DONTWAIT */
	int		 rcvtimeo;	/* ms its SO_RCVTIMEO is, 0 = none */
};

/* Front-ends: answer every complete request in c->ib; -1 to drop. */
int	native_batch(struct conn *);
int	mc_batch(struct conn *);
void	native_login_done(struct conn *, int rc);
void	mc_login_done(struct conn *, int rc);
extern const char *const native_lines[EV_COUNT];
extern const char *const mc_lines[EV_COUNT];

const char *conn_line(enum conn_proto, enum conn_event);
int	conn_init(struct conn *, const struct conn_config *, enum conn_proto,
	    int in, int out, const char *peer);
void	conn_free(struct conn *);
uint64_t conn_now(void);
void	conn_start(struct conn *, uint64_t now);
int	conn_step(struct conn *, int readable, uint64_t now);
int	conn_serve(struct conn *);
void	conn_refuse_fd(int fd, enum conn_proto);
void	conn_login_done(struct conn *, int rc, const struct client *who);
/* A request that a web page made a browser send: 1, closing at once. */
int	conn_http_line(const char *p, size_t avail, int logged_in);
int	conn_refuse_http(struct conn *);
/* Drop what an earlier error said to; 1 while there is more to drop. */
int	conn_drop_garbage(struct conn *);
int	conn_turn_over(struct conn *, unsigned *n);

/* Set from a signal handler: tell the client, then end. */
extern volatile sig_atomic_t conn_stop;

#endif
