/*
 * session.h - one client connection, from its first byte to its close.
 */
#ifndef SESSION_H
#define SESSION_H

#include <signal.h>
#include <stdint.h>

#include "buf.h"
#include "kvstore.h"
#include "store.h"

enum session_proto {
	PROTO_NATIVE = 0,	/* kvstore(7) */
	PROTO_MEMCACHED		/* memcached's text protocol */
};

struct session_config {
	struct store	*store;
	enum session_proto proto;
	const char	*bound_user;		/* no login: act as this account */
	int		 idle_timeout;		/* seconds */
	int		 partial_timeout;	/* seconds, a request half sent */
	int		 login_timeout;	/* seconds to log in, then close */
	int		 registration;		/* open: "register" allowed */
	unsigned	 reg_limit;		/* registrations per peer a minute */
	unsigned	 max_accounts;
	const char	*users_file;		/* -A: where accounts persist */
	uint64_t	 quota_keys;		/* per guest store, 0 = none */
	uint64_t	 quota_bytes;
};

/*
 * One connection's state, shared by the session loop and the protocol that
 * answers on it (session.c for kvstore(7), mcproto.c for memcached's).
 */
struct session {
	const struct session_config *cfg;
	struct store	*st;
	const char	*peer;
	int		 in, out;
	struct buf	 ib, ob;
	uint64_t	 discard;	/* bytes to drop after an error */
	int		 skip_line;	/* then drop through the next LF */
	int		 closing;
	uint64_t	 requests;
	/* identity */
	uint32_t	 user;		/* 0 until login */
	uint32_t	 gen;
	char		 name[KV_USER_MAX + 1];
	int		 role;		/* as of the last request */
	uint32_t	 target;	/* a manager's chosen store, 0 = own */
	uint32_t	 target_gen;	/* its account's generation when chosen */
	char		 target_name[KV_USER_MAX + 1];
	void		*proto_state;	/* the protocol's own, if it needs any */
};

/* Answer every complete request in s->ib; -1 to drop the connection. */
int	native_batch(struct session *);
int	mc_batch(struct session *);
int	session_flush(struct session *);
int	session_acting_user(struct session *, uint32_t *user);
#define SESSION_GONE	-1	/* the account was deleted */
#define SESSION_DENIED	-2	/* no longer a manager, and using another store */
#define SESSION_NO_TARGET -3	/* the store chosen with use was deleted */
int	session_bind_user(struct session *, const char *name);
void	session_use(struct session *, uint32_t id, const char *name);
uint32_t session_check_secret(struct session *, const char *user,
	    const char *pass, struct user_view *);

/* Set from a signal handler: finish the request in hand, then end. */
extern volatile sig_atomic_t session_stop;

int	session_run(int in, int out, const struct session_config *,
	    const char *peer);

#endif
