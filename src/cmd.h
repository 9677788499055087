/*
 * cmd.h - the command layer: the one place where a request becomes store
 * calls.
 *
 * Every protocol front-end (kvstore(7) in native.c, memcached's text
 * protocol in mcproto.c) parses a request, calls one of the functions here
 * and maps the neutral result to its own reply text.  This layer holds the
 * connection's identity and applies the policy: the role is read again and
 * the store's account generation compared for every operation (for every
 * key of a multi-key request), the quota is that of the store written,
 * whoever writes it, and every use of another user's store is audited.  It
 * does no I/O and formats no protocol text.
 */
#ifndef CMD_H
#define CMD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "kvstore.h"
#include "store.h"

/* What the daemon's flags say about accounts, quotas and registration. */
struct cmd_policy {
	int		 registration;		/* open: "register" allowed */
	unsigned	 reg_limit;		/* registrations per peer a minute */
	unsigned	 max_accounts;
	const char	*users_file;		/* -A: where accounts persist */
	uint64_t	 quota_keys;		/* per guest store, 0 = none */
	uint64_t	 quota_bytes;
	const char	*bound_user;		/* -B: no login to it, ever */
	unsigned	 throttle_ms;		/* -D: the first failure's delay */
	unsigned	 login_wait_ms;		/* -L: the longest wait for a turn */
	volatile sig_atomic_t *stop;		/* set: the session is ending */
};

/* Neutral results; each front-end has a table from these to its replies. */
enum cmd_result {
	CR_OK = 0,
	CR_NOT_FOUND,
	CR_EXISTS,		/* cas mismatch */
	CR_NOT_STORED,		/* add of a present key, replace of an absent one */
	CR_FULL,
	CR_QUOTA,
	CR_TOO_LARGE,
	CR_NOT_NUMBER,
	CR_LOGIN_REQUIRED,
	CR_GONE,		/* the caller's own account was deleted */
	CR_DENIED,		/* not a manager (any more) */
	CR_NO_TARGET,		/* the store chosen was deleted, or never was */
	CR_AUTH_FAILED,		/* unknown user or wrong secret: one answer */
	CR_LOGGED_IN,		/* login or register a second time */
	CR_LOGIN_BUSY,		/* another login from the address takes long */
	CR_BAD_NAME,
	CR_BAD_SECRET,
	CR_NAME_TAKEN,
	CR_REG_CLOSED,
	CR_REG_THROTTLED,
	CR_ACCOUNTS_FULL,
	CR_NO_HASH,		/* the secret could not be hashed */
	CR_PENDING,		/* handed to a login helper: the answer comes */
	CR_LOGIN_AGAIN,		/* a login helper's: ask again in again_ms */
	CR_ERROR
};

/*
 * A login, register or login-as, checked for form and handed elsewhere
 * (the event engine's login helpers) so that the secret's hashing, ~26 ms,
 * and the throttle's delay stall no other connection.
 */
enum cmd_login_kind { LOGIN_PLAIN = 0, LOGIN_REGISTER, LOGIN_AS };

struct cmd_login_job {
	int		 kind;
	char		 name[KV_USER_MAX + 1];
	char		 store[KV_USER_MAX + 1];	/* LOGIN_AS */
	char		 secret[KV_SECRET_MAX + 1];
};

#define CMD_AUDIT_KEYS	88 	/* key text one audit line carries */

/*
 * One connection's identity and the audit record of the request in hand.
 * A front-end brackets each request with cmd_begin() and cmd_end(); the
 * keys a request touches on another user's store are gathered between them
 * and written as one audit line at the end.
 */
struct client {
	struct store		*st;
	const struct cmd_policy	*policy;
	const char		*peer;		/* "ADDR port N" */
	uint32_t		 user;		/* 0 until login */
	uint32_t		 gen;
	int			 role;		/* as of the last check */
	char			 name[KV_USER_MAX + 1];
	uint32_t		 target;	/* a manager's chosen store, 0 = own */
	uint32_t		 target_gen;
	char			 target_name[KV_USER_MAX + 1];
	/* set: logins go to defer(), which answers later (CR_PENDING) */
	int			(*defer)(struct client *,
				    const struct cmd_login_job *);
	void			*defer_ctx;
	/* set (login helpers): the event loop waits the delay, as a timer;
	 * waited_ms says how long it has; a check that may not go yet
	 * answers CR_LOGIN_AGAIN with again_ms, the wait still due */
	int			 throttled;
	uint32_t		 waited_ms;
	uint32_t		 again_ms;
	int			 retried;	/* asked again before */
	/* the request in hand */
	const char		*verb;
	int			 crossed;	/* it acted on another user's store */
	int			 crossed_role;	/* the role it did so with */
	size_t			 akeys_len;
	char			 akeys[CMD_AUDIT_KEYS * 4 + 8];
};

void	cmd_init(struct client *, struct store *, const struct cmd_policy *,
	    const char *peer);

/* Identity. */
int	cmd_login(struct client *, const char *name, size_t nlen,
	    const char *secret, size_t slen);
int	cmd_register(struct client *, const char *name, size_t nlen,
	    const char *secret, size_t slen);
int	cmd_login_as(struct client *, const char *name, size_t nlen,
	    const char *store, size_t stlen, const char *secret, size_t slen);
int	cmd_bind(struct client *, const char *name);
int	cmd_use(struct client *, const char *name, size_t nlen);
int	cmd_whoami(struct client *, int *role);
int	cmd_login_job_run(struct client *, const struct cmd_login_job *);
unsigned cmd_login_delay(struct client *, const char *name);
void	cmd_adopt(struct client *, const struct client *from);
void	cmd_auth_failure(struct client *);

/* A request: begin, any number of operations, end (writes the audit line). */
void	cmd_begin(struct client *, const char *verb);
void	cmd_end(struct client *);

void	cmd_prefetch(struct client *, const struct store_key *, unsigned n);
int	cmd_get(struct client *, const void *key, size_t klen, store_visit,
	    void *ctx);
int	cmd_put(struct client *, const void *key, size_t klen,
	    const void *val, size_t vlen, const struct store_write *,
	    uint64_t *cas_out);
int	cmd_del(struct client *, const void *key, size_t klen);
int	cmd_touch(struct client *, const void *key, size_t klen,
	    uint32_t exptime, store_visit, void *ctx);
int	cmd_arith(struct client *, const void *key, size_t klen, int incr,
	    uint64_t delta, uint64_t *result);
int	cmd_flush(struct client *, int64_t when);	/* Unix time, 0 = now */
/* memcached's meta commands: the store's atomic steps (store.h). */
int	cmd_mget(struct client *, const void *key, size_t klen,
	    struct store_mget *, store_visit, void *ctx);
int	cmd_mdel(struct client *, const void *key, size_t klen,
	    const struct store_mdel *);
int	cmd_marith(struct client *, const void *key, size_t klen,
	    struct store_marith *);
int	cmd_scan(struct client *, uint32_t *cursor, uint32_t max_stripes,
	    store_visit, void *ctx, int *more);
int	cmd_users(struct client *, uint32_t *cursor, uint32_t max,
	    void (*)(void *, const struct user_view *), void *ctx, int *more);
int	cmd_stats(struct client *, struct store_stats *, struct user_view *);
int	cmd_classes(struct client *, struct store_class *, uint32_t max,
	    uint32_t *n);
uint32_t cmd_value_max(const struct client *);

/* Test builds: a hook run while a login's secret is checked. */
extern void	(*cmd_test_login_hold)(void);

#endif
