/*
 * store.h - the key-value table in POSIX shared memory.
 *
 * Keys belong to users: the same key under two user ids is two items, and no
 * call here crosses from one user's items to another's unless the caller
 * names the other user.  Who may name whom is the session's business.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct kv_header;
struct kv_lock;

struct store {
	char			*base;
	size_t			 size;
	int			 fd;
	struct kv_header	*hdr;
	uint32_t		 slot;		/* registry slot + 1, 0 = none */
	uint32_t		 pid;
	char			 name[256];
};

/* Geometry chosen when a segment is created; a later open must match. */
struct store_geometry {
	uint64_t	size;		/* bytes */
	uint32_t	value_max;
};

enum store_result {
	ST_OK = 0,
	ST_NOT_FOUND,
	ST_EXISTS,		/* cas mismatch */
	ST_NOT_STORED,		/* add of a present key, replace of an absent one */
	ST_FULL,
	ST_QUOTA,
	ST_TOO_LARGE,
	ST_NOT_NUMBER,		/* incr/decr of a value that is not a number */
	ST_NO_USER,
	ST_ERROR
};

enum store_mode {
	W_SET = 0, W_ADD, W_REPLACE, W_APPEND, W_PREPEND, W_CAS
};

struct store_write {
	enum store_mode	mode;
	uint32_t	flags;
	uint32_t	exptime;	/* absolute Unix time, 0 = never */
	uint64_t	cas;		/* for W_CAS */
	uint64_t	quota_keys;	/* 0 = unlimited */
	uint64_t	quota_bytes;
};

struct item_view {
	const char	*key;
	size_t		 klen;
	const char	*value;
	size_t		 vlen;
	uint32_t	 flags;
	uint32_t	 exptime;
	uint64_t	 cas;
};

/* Called with the stripe locked: copy what is needed, do not block. */
typedef void	(*store_visit)(void *ctx, const struct item_view *);

struct store_stats {
	uint64_t	items, bytes_used, bytes_free, bytes_limit;
	uint64_t	hits, misses, puts, dels;
	uint64_t	total_connections, curr_connections, auth_failures;
	uint32_t	value_max;
	int64_t		created;
};

struct user_view {
	uint32_t	id;
	char		name[33];
	int		role;
	uint32_t	gen;
	uint64_t	keys, bytes;
	uint64_t	quota_keys, quota_bytes;
	uint32_t	fails;
	char		hash[128];
};

#define STORE_CREATE	0x1	/* create when absent */
#define STORE_READONLY	0x2	/* map for reading only (checker) */

int	 store_open(struct store *, const char *name,
	    const struct store_geometry *, int flags, char *err, size_t errlen);
void	 store_close(struct store *);
int	 store_remove(const char *name);
int	 store_exists(const char *name);
void	 store_geometry_default(struct store_geometry *, uint64_t size_mb,
	    uint32_t value_max);

/* Each process that changes the store registers once, after fork(). */
int	 store_attach_process(struct store *);
void	 store_detach_process(struct store *);
void	 store_reap(struct store *, uint32_t pid);	/* 0: every dead one */

int	 store_get(struct store *, uint32_t user, const void *key, size_t klen,
	    store_visit, void *ctx);
int	 store_put(struct store *, uint32_t user, const void *key, size_t klen,
	    const void *val, size_t vlen, const struct store_write *,
	    uint64_t *cas_out);
int	 store_del(struct store *, uint32_t user, const void *key, size_t klen);
int	 store_touch(struct store *, uint32_t user, const void *key,
	    size_t klen, uint32_t exptime, store_visit, void *ctx);
int	 store_arith(struct store *, uint32_t user, const void *key,
	    size_t klen, int incr, uint64_t delta, uint64_t *result);
int	 store_flush_user(struct store *, uint32_t user);
int	 store_flush_items(struct store *, uint32_t user, int64_t when);
int	 store_scan(struct store *, uint32_t user, uint32_t *cursor,
	    uint32_t max_stripes, store_visit, void *ctx);
uint32_t store_stripes(const struct store *);
void	 store_stats(struct store *, struct store_stats *);
void	 store_note_connection(struct store *);
void	 store_note_auth_failure(struct store *);
uint32_t store_value_max(const struct store *);

/* User slots: mechanism only; roles and secrets mean something in auth.c. */
uint32_t store_user_find(struct store *, const char *name);
int	 store_user_create(struct store *, const char *name, int role,
	    const char *hash, uint32_t *id);
int	 store_user_get(struct store *, uint32_t id, struct user_view *);
int	 store_user_set(struct store *, uint32_t id, int role,
	    const char *hash);
int	 store_user_delete(struct store *, uint32_t id);
int	 store_user_role(struct store *, uint32_t id, uint32_t gen);
#define USER_ANY_GEN	UINT32_MAX	/* store_user_role() of any generation */
uint32_t store_user_count(struct store *);

void	 store_user_list(struct store *,
	    void (*)(void *, const struct user_view *), void *);
int	 store_user_scan(struct store *, uint32_t *cursor, uint32_t max,
	    void (*)(void *, const struct user_view *), void *);
uint32_t store_user_fail(struct store *, uint32_t id, int reset);
void	 store_set_users_file(struct store *, const char *);
const char *store_users_file(struct store *);

/* The audit ring, and counters per peer address for throttling. */
void	 store_audit(struct store *, const char *line);
void	 store_audit_read(struct store *, unsigned max,
	    void (*)(void *, const char *), void *);
uint32_t store_peer_fails(struct store *, const char *addr);
void	 store_peer_fail(struct store *, const char *addr);
void	 store_peer_reset(struct store *, const char *addr);
int	 store_peer_register(struct store *, const char *addr, uint32_t limit,
	    int window);

/* Connections per client address (conns.c), for kvstored -H and -U. */
#define STORE_CONN_OK		0
#define STORE_CONN_ADDR		1	/* over the limit for the address */
#define STORE_CONN_PRELOGIN	2	/* over the limit before login */
int	 store_conn_claim(struct store *, const char *addr, int logged_in,
	    unsigned per_addr, unsigned per_prelogin, uint32_t *slot);
void	 store_conn_login(struct store *, uint32_t slot);
void	 store_conn_release(struct store *, uint32_t slot);

int	 store_check(struct store *, FILE *report);

/* Test builds: a hook run while a write holds its stripe (see KV_TEST_HOOKS). */
extern void	(*store_test_hold)(void);

#endif
