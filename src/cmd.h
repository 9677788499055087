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
	CR_BAD_NAME,
	CR_BAD_SECRET,
	CR_NAME_TAKEN,
	CR_REG_CLOSED,
	CR_REG_THROTTLED,
	CR_ACCOUNTS_FULL,
	CR_NO_HASH,		/* the secret could not be hashed */
	CR_ERROR
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
void	cmd_auth_failure(struct client *);

/* A request: begin, any number of operations, end (writes the audit line). */
void	cmd_begin(struct client *, const char *verb);
void	cmd_end(struct client *);

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
int	cmd_scan(struct client *, uint32_t *cursor, uint32_t max_stripes,
	    store_visit, void *ctx, int *more);
int	cmd_users(struct client *, uint32_t *cursor, uint32_t max,
	    void (*)(void *, const struct user_view *), void *ctx, int *more);
int	cmd_stats(struct client *, struct store_stats *, struct user_view *);
uint32_t cmd_value_max(const struct client *);

#endif
