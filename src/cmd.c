/*
 * cmd.c - the command layer (cmd.h): identity, roles, quotas and audit for
 * every request of every protocol, then the store.
 *
 * Nothing a session remembers is trusted for longer than one operation: the
 * caller's role is read from the segment again, with the account generation
 * it logged in with, before each store call, and a manager's chosen store is
 * checked the same way.  So a demotion, a deleted account or a reused slot
 * takes effect at the very next key, even in the middle of a long
 * retrieval line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "cmd.h"
#include "log.h"
#include "store.h"
#include "users.h"

#define AUDIT_KEY_SHOWN	64		/* bytes of one key in an audit line */

/* Test builds: run while a login's secret is checked (KV_TEST_HOOKS). */
void	(*cmd_test_login_hold)(void);

void
cmd_init(struct client *c, struct store *st, const struct cmd_policy *p,
    const char *peer)
{
	memset(c, 0, sizeof(*c));
	c->st = st;
	c->policy = p;
	c->peer = peer;
}

uint32_t
cmd_value_max(const struct client *c)
{
	return store_value_max(c->st);
}

/* ---- audit -------------------------------------------------------------- */

static void
audit_flush(struct client *c)
{
	c->akeys[c->akeys_len] = '\0';
	audit_text(c->st, c->peer, c->name, c->crossed_role,
	    c->verb ? c->verb : "-", c->target_name, c->akeys);
	c->akeys_len = 0;
}

/* Name a key the request touched on another user's store. */
static void
audit_key(struct client *c, const void *key, size_t klen)
{
	char k[AUDIT_KEY_SHOWN * 4 + 8];
	size_t n;

	if (!c->crossed)
		c->crossed_role = c->role;
	c->crossed = 1;
	if (key == NULL)
		return;
	n = audit_escape(k, sizeof(k), key, klen, AUDIT_KEY_SHOWN);
	if (c->akeys_len > 0 && c->akeys_len + 1 + n > CMD_AUDIT_KEYS) {
		/* A long line of keys: this line is full, go on in the next. */
		audit_flush(c);
	}
	if (c->akeys_len > 0)
		c->akeys[c->akeys_len++] = ' ';
	memcpy(c->akeys + c->akeys_len, k, n);
	c->akeys_len += n;
}

/* A refusal gets a line of its own, whatever the request goes on to do. */
static void
audit_denial(struct client *c, const void *key, size_t klen)
{
	audit(c->st, c->peer, c->name, c->role, c->verb ? c->verb : "-",
	    c->target_name, key, klen);
}

void
cmd_begin(struct client *c, const char *verb)
{
	c->verb = verb;
	c->crossed = 0;
	c->akeys_len = 0;
}

void
cmd_end(struct client *c)
{
	if (c->crossed)
		audit_flush(c);
	c->crossed = 0;
	c->verb = NULL;
}

/* ---- the gate ------------------------------------------------------------ */

/*
 * The store an operation on key acts on: the caller's own, or for a
 * manager the one it chose.  Read afresh every time.
 */
static int
acting(struct client *c, const void *key, size_t klen, uint32_t *user)
{
	int role;

	if (c->user == 0)
		return CR_LOGIN_REQUIRED;
	if ((role = store_user_role(c->st, c->user, c->gen)) < 0)
		return CR_GONE;
	c->role = role;
	if (c->target == 0) {
		*user = c->user;
		return CR_OK;
	}
	if (role != KV_ROLE_MANAGER) {
		audit_denial(c, key, klen);
		return CR_DENIED;
	}
	/* Deleted since it was chosen, its slot perhaps reused: a delete
	 * moves the slot's generation. */
	if (store_user_role(c->st, c->target, c->target_gen) < 0) {
		audit_denial(c, key, klen);
		return CR_NO_TARGET;
	}
	*user = c->target;
	audit_key(c, key, klen);
	return CR_OK;
}

static int
result(int st)
{
	switch (st) {
	case ST_OK:		return CR_OK;
	case ST_NOT_FOUND:	return CR_NOT_FOUND;
	case ST_EXISTS:		return CR_EXISTS;
	case ST_NOT_STORED:	return CR_NOT_STORED;
	case ST_FULL:		return CR_FULL;
	case ST_QUOTA:		return CR_QUOTA;
	case ST_TOO_LARGE:	return CR_TOO_LARGE;
	case ST_NOT_NUMBER:	return CR_NOT_NUMBER;
	case ST_NO_USER:	return CR_GONE;
	default:		return CR_ERROR;
	}
}

/* The generation of the account acting() chose. */
static uint32_t
acting_gen(const struct client *c)
{
	return c->target != 0 ? c->target_gen : c->gen;
}

/* A write's result; ST_NO_USER: the account acted on was deleted after
 * acting() passed it (the store checks under the stripe lock). */
static int
written(const struct client *c, int st)
{
	if (st == ST_NO_USER && c->target != 0)
		return CR_NO_TARGET;
	return result(st);
}

/*
 * A hint for the gets a front-end sees coming, into the store acting()
 * would choose now: another's only while the caller is a manager and the
 * store it chose is still there.  Nothing is read out or audited here;
 * each get still goes through acting() when it is served.
 */
void
cmd_prefetch(struct client *c, const struct store_key *k, unsigned n)
{
	if (c->user == 0)
		return;
	if (c->target != 0 &&
	    (store_user_role(c->st, c->user, c->gen) != KV_ROLE_MANAGER ||
	    store_user_role(c->st, c->target, c->target_gen) < 0))
		return;
	store_prefetch(c->st, c->target != 0 ? c->target : c->user, k, n);
}

int
cmd_get(struct client *c, const void *key, size_t klen, store_visit visit,
    void *ctx)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	return written(c, store_get(c->st, user, acting_gen(c), key, klen, visit,
	    ctx));
}

int
cmd_put(struct client *c, const void *key, size_t klen, const void *val,
    size_t vlen, const struct store_write *w, uint64_t *cas_out)
{
	struct store_write q = *w;
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	/* Quotas bind guests' stores, whoever writes into them. */
	q.quota_keys = q.quota_bytes = 0;
	if (store_user_role(c->st, user, USER_ANY_GEN) == KV_ROLE_GUEST) {
		q.quota_keys = c->policy->quota_keys;
		q.quota_bytes = c->policy->quota_bytes;
	}
	return written(c, store_put(c->st, user, acting_gen(c), key, klen,
	    val, vlen, &q, cas_out));
}

/* The quota of the store user, if it is a guest's (cmd_put's rule). */
static void
quota_of(struct client *c, uint32_t user, uint64_t *keys, uint64_t *bytes)
{
	*keys = *bytes = 0;
	if (store_user_role(c->st, user, USER_ANY_GEN) == KV_ROLE_GUEST) {
		*keys = c->policy->quota_keys;
		*bytes = c->policy->quota_bytes;
	}
}

/* memcached's mg (and me, with no_bump): may touch and create. */
int
cmd_mget(struct client *c, const void *key, size_t klen,
    struct store_mget *m, store_visit visit, void *ctx)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	quota_of(c, user, &m->quota_keys, &m->quota_bytes);
	return written(c, store_mget(c->st, user, acting_gen(c), key, klen, m,
	    visit, ctx));
}

int
cmd_mdel(struct client *c, const void *key, size_t klen,
    const struct store_mdel *d)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	return written(c, store_mdel(c->st, user, acting_gen(c), key, klen, d));
}

int
cmd_marith(struct client *c, const void *key, size_t klen,
    struct store_marith *a)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	quota_of(c, user, &a->quota_keys, &a->quota_bytes);
	return written(c, store_marith(c->st, user, acting_gen(c), key, klen,
	    a));
}

int
cmd_del(struct client *c, const void *key, size_t klen)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	return written(c, store_del(c->st, user, acting_gen(c), key, klen));
}

int
cmd_touch(struct client *c, const void *key, size_t klen, uint32_t exptime,
    store_visit visit, void *ctx)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	return written(c, store_touch(c->st, user, acting_gen(c), key, klen,
	    exptime, visit, ctx));
}

int
cmd_arith(struct client *c, const void *key, size_t klen, int incr,
    uint64_t delta, uint64_t *out)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, key, klen, &user)) != CR_OK)
		return rc;
	return written(c, store_arith(c->st, user, acting_gen(c), key, klen,
	    incr, delta, out));
}

/* The acting store's items stored before when become absent at when. */
int
cmd_flush(struct client *c, int64_t when)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, NULL, 0, &user)) != CR_OK)
		return rc;
	return result(store_flush_items(c->st, user, when));
}

/*
 * A piece of a walk over the acting store's items (store_scan()): *more
 * says whether *cursor goes on.  A guest walks its own store only.
 */
int
cmd_scan(struct client *c, uint32_t *cursor, uint32_t max_stripes,
    store_visit visit, void *ctx, int *more)
{
	uint32_t user;
	int rc, crossed = c->crossed;

	if ((rc = acting(c, NULL, 0, &user)) != CR_OK)
		return rc;
	/* A walk of another's store is audited once, at its first piece:
	 * a long walk must not flood the audit ring. */
	if (*cursor != 0 && !crossed)
		c->crossed = 0;
	if ((*more = store_scan(c->st, user, acting_gen(c), cursor, max_stripes,
	    visit, ctx)) == -1) {
		*more = 0;
		return written(c, ST_NO_USER);
	}
	return CR_OK;
}

/*
 * A piece of the list of accounts, for a manager only (the role read
 * afresh): the stores it may use.  A guest is refused, and the refusal
 * audited; a manager's listing is audited once, at its first piece, so a
 * long walk does not flood the audit ring.
 */
int
cmd_users(struct client *c, uint32_t *cursor, uint32_t max,
    void (*fn)(void *, const struct user_view *), void *ctx, int *more)
{
	int role;

	if (c->user == 0)
		return CR_LOGIN_REQUIRED;
	if ((role = store_user_role(c->st, c->user, c->gen)) < 0)
		return CR_GONE;
	c->role = role;
	if (role != KV_ROLE_MANAGER) {
		audit_denial(c, NULL, 0);
		return CR_DENIED;
	}
	if (*cursor == 0)
		audit(c->st, c->peer, c->name, role, c->verb ? c->verb : "-",
		    "-", NULL, 0);
	*more = store_user_scan(c->st, cursor, max, fn, ctx);
	return CR_OK;
}

/* The server's figures, and the acting store's account. */
int
cmd_stats(struct client *c, struct store_stats *ss, struct user_view *v)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, NULL, 0, &user)) != CR_OK)
		return rc;
	store_stats(c->st, ss);
	if (store_user_get(c->st, user, v) != ST_OK)
		memset(v, 0, sizeof(*v));
	return CR_OK;
}

/* The server's size classes (server-wide, like store_stats()). */
int
cmd_classes(struct client *c, struct store_class *out, uint32_t max,
    uint32_t *n)
{
	uint32_t user;
	int rc;

	if ((rc = acting(c, NULL, 0, &user)) != CR_OK)
		return rc;
	*n = store_classes(c->st, out, max);
	return CR_OK;
}

/* ---- identity ------------------------------------------------------------ */

/* "127.0.0.1 port 5000" -> "127.0.0.1": failures count per address. */
static void
peer_address(const struct client *c, char *out, size_t n)
{
	const char *sp = strstr(c->peer, " port ");

	snprintf(out, n, "%.*s", sp ? (int)(sp - c->peer) :
	    (int)strlen(c->peer), c->peer);
}

/* Copy an argument into a NUL-terminated buffer, or fail. */
static int
copy_arg(const char *p, size_t len, char *out, size_t outlen)
{
	if (len >= outlen || memchr(p, '\0', len) != NULL)
		return -1;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	/* A signal (SIGTERM) cuts the wait short: the session is ending. */
	(void)nanosleep(&ts, &ts);
}

/*
 * Failed logins in a row, from this address or for this name, cost a
 * growing delay before the next try is even checked: -D ms (100) after
 * the first, doubling, up to 100 times that.  The name's count is kept
 * whether or not the account exists, so the delay says nothing about
 * which names are accounts; the address's count is forgotten only with
 * time, never by a success.
 */
static unsigned
delay_ms(struct client *c, const char *addr, const char *name)
{
	uint32_t fails = store_peer_fails(c->st, addr);
	uint32_t nf = store_name_fails(c->st, name);
	unsigned base = c->policy->throttle_ms, ms;

	if (nf > fails)
		fails = nf;
	if (fails == 0)
		return 0;
	ms = fails > 7 ? base * 100 : base << (fails - 1);
	return ms > base * 100 ? base * 100 : ms;
}

/*
 * What is left of that delay, counted from the last failure of the
 * address or the name: no login is checked sooner than that after one
 * fails, whichever process waited.  A key whose probe run is full keeps no
 * time; for it the wait already done (waited) counts.
 */
static unsigned
delay_left(struct client *c, const char *addr, const char *name,
    uint32_t waited)
{
	unsigned due = delay_ms(c, addr, name);
	uint32_t age = store_login_fail_age(c->st, addr, name);

	if (age == STORE_AGE_UNKNOWN)
		age = waited;
	return due > age ? due - age : 0;
}

/*
 * The delay a login for name from this connection's address is due now,
 * when it gets its address's turn: an event loop waits it out as a timer
 * (c->throttled then says so) rather than in a login helper, which other
 * connections share.  The helper then checks delay_left(): a failure from
 * another worker's connection may have come meanwhile.
 */
unsigned
cmd_login_delay(struct client *c, const char *name)
{
	char addr[64];

	peer_address(c, addr, sizeof(addr));
	return delay_ms(c, addr, name);
}

/* A login attempt that fails before any secret is checked. */
void
cmd_auth_failure(struct client *c)
{
	store_note_auth_failure(c->st);
}

/*
 * Check a secret: the same delay after failures, the same work and result
 * for an unknown user and a wrong secret, the same counting and audit,
 * whichever protocol asks.  Returns the account's id, filling *v, or 0.
 */
static uint32_t
check_secret(struct client *c, const char *user, const char *pass,
    struct user_view *v, int *rc)
{
	unsigned base = c->policy->throttle_ms;
	char addr[64];
	uint32_t id;
	int ok;

	peer_address(c, addr, sizeof(addr));
	if (c->throttled) {
		/*
		 * A login helper never waits: its worker's other logins
		 * would wait behind it.  If another worker's login from the
		 * address is being checked, or failed since this one's
		 * delay was reckoned, the worker waits again and asks again.
		 */
		if (!store_peer_login_begin(c->st, addr, 0, NULL)) {
			if (!c->retried)
				log_info("login: %s: waits for the login in "
				    "progress from its address", c->peer);
			c->again_ms = 10;
			*rc = CR_LOGIN_AGAIN;
			return 0;
		}
		if ((c->again_ms = delay_left(c, addr, user, c->waited_ms)) >
		    0) {
			store_peer_login_end(c->st, addr);
			*rc = CR_LOGIN_AGAIN;
			return 0;
		}
	} else {
		/* One attempt at a time from an address: parallel guesses
		 * queue up and each pays its delay in turn. */
		if (!store_peer_login_begin(c->st, addr, 0, NULL)) {
			log_info("login: %s: waits for the login in progress "
			    "from its address", c->peer);
			/* As long as the longest delay and a second, or the
			 * login deadline if that is longer. */
			if (!store_peer_login_begin(c->st, addr, base * 100 +
			    1000 > c->policy->login_wait_ms ? base * 100 +
			    1000 : c->policy->login_wait_ms,
			    c->policy->stop)) {
				*rc = CR_LOGIN_BUSY;
				return 0;
			}
		}
		sleep_ms(delay_ms(c, addr, user));
	}
	id = store_user_find(c->st, user);
	/* -B's account takes no login: it is the listener's alone. */
	if (c->policy->bound_user != NULL &&
	    strcmp(user, c->policy->bound_user) == 0)
		id = 0;
	if (id == 0 || store_user_get(c->st, id, v) != ST_OK)
		v->hash[0] = '\0';
	if (cmd_test_login_hold != NULL)
		cmd_test_login_hold();
	ok = auth_verify(pass, v->hash[0] ? v->hash : NULL) && id != 0;
	if (!ok) {
		store_note_auth_failure(c->st);
		store_peer_fail(c->st, addr);
		store_name_fail(c->st, user, 0);
		store_user_fail(c->st, id, 0);
		store_peer_login_end(c->st, addr);
		audit(c->st, c->peer, user, -1, "login-failed", user, NULL, 0);
		*rc = CR_AUTH_FAILED;
		return 0;
	}
	store_name_fail(c->st, user, 1);
	store_user_fail(c->st, id, 1);
	store_peer_login_end(c->st, addr);
	*rc = CR_OK;
	if (store_user_get(c->st, id, v) != ST_OK) {
		*rc = CR_AUTH_FAILED;
		return 0;
	}
	return id;
}

static void
become(struct client *c, uint32_t id, const struct user_view *v)
{
	c->user = id;
	c->gen = v->gen;
	c->role = v->role;
	str_copy_until(c->name, sizeof(c->name), v->name, '\0');
}

/* Act on another user's store from now on (0: back to one's own). */
static void
choose(struct client *c, uint32_t id, const char *name)
{
	struct user_view v;

	c->target = id;
	if (id == 0)
		return;
	/* Deleted since it was found, or its slot taken by another account
	 * meanwhile: a generation no request will match. */
	c->target_gen = store_user_get(c->st, id, &v) == ST_OK &&
	    strcmp(v.name, name) == 0 ? v.gen : USER_ANY_GEN - 1;
	str_copy_until(c->target_name, sizeof(c->target_name), name, '\0');
}

/* Name and secret as arguments: valid, or the error that says which. */
static int
credentials(const char *name, size_t nlen, const char *secret, size_t slen,
    char user[KV_USER_MAX + 1], char pass[KV_SECRET_MAX + 1])
{
	if (!auth_valid_name(name, nlen) ||
	    copy_arg(name, nlen, user, KV_USER_MAX + 1) == -1)
		return CR_BAD_NAME;
	if (slen == 0 || copy_arg(secret, slen, pass, KV_SECRET_MAX + 1) == -1)
		return CR_BAD_SECRET;
	return CR_OK;
}

/* Give the checked-for-form login to the defer hook; the secret is wiped. */
static int
hand_over(struct client *c, int kind, const char *user, const char *store,
    char *pass)
{
	struct cmd_login_job job;
	int rc;

	memset(&job, 0, sizeof(job));
	job.kind = kind;
	snprintf(job.name, sizeof(job.name), "%s", user);
	snprintf(job.store, sizeof(job.store), "%s", store ? store : "");
	snprintf(job.secret, sizeof(job.secret), "%s", pass);
	explicit_bzero(pass, KV_SECRET_MAX + 1);
	rc = c->defer(c, &job) == 0 ? CR_PENDING : CR_ERROR;
	explicit_bzero(&job, sizeof(job));
	return rc;
}

/* A login helper's side: do the job as the connection would have. */
int
cmd_login_job_run(struct client *c, const struct cmd_login_job *j)
{
	size_t n = strlen(j->name), sl = strlen(j->secret);

	c->defer = NULL;
	switch (j->kind) {
	case LOGIN_REGISTER:
		return cmd_register(c, j->name, n, j->secret, sl);
	case LOGIN_AS:
		return cmd_login_as(c, j->name, n, j->store, strlen(j->store),
		    j->secret, sl);
	default:
		return cmd_login(c, j->name, n, j->secret, sl);
	}
}

/* Take the identity a helper's login established. */
void
cmd_adopt(struct client *c, const struct client *from)
{
	c->user = from->user;
	c->gen = from->gen;
	c->role = from->role;
	memcpy(c->name, from->name, sizeof(c->name));
	c->target = from->target;
	c->target_gen = from->target_gen;
	memcpy(c->target_name, from->target_name, sizeof(c->target_name));
}

int
cmd_login(struct client *c, const char *name, size_t nlen,
    const char *secret, size_t slen)
{
	char user[KV_USER_MAX + 1], pass[KV_SECRET_MAX + 1];
	struct user_view v;
	uint32_t id;
	int rc;

	if (c->user != 0)
		return CR_LOGGED_IN;
	if ((rc = credentials(name, nlen, secret, slen, user, pass)) != CR_OK)
		return rc;
	if (c->defer != NULL)
		return hand_over(c, LOGIN_PLAIN, user, NULL, pass);
	id = check_secret(c, user, pass, &v, &rc);
	explicit_bzero(pass, sizeof(pass));
	if (id == 0)
		return rc;
	become(c, id, &v);
	return CR_OK;
}

int
cmd_register(struct client *c, const char *name, size_t nlen,
    const char *secret, size_t slen)
{
	char user[KV_USER_MAX + 1], pass[KV_SECRET_MAX + 1];
	char hash[KV_HASH_MAX], addr[64], err[256];
	const struct cmd_policy *p = c->policy;
	struct user_view v;
	uint32_t id = 0;
	int rc;

	if (c->user != 0)
		return CR_LOGGED_IN;
	if ((rc = credentials(name, nlen, secret, slen, user, pass)) != CR_OK)
		return rc;
	if (c->defer != NULL)
		return hand_over(c, LOGIN_REGISTER, user, NULL, pass);
	peer_address(c, addr, sizeof(addr));
	rc = CR_OK;
	if (p->bound_user != NULL && strcmp(user, p->bound_user) == 0)
		rc = CR_NAME_TAKEN;	/* reserved at start, and so taken */
	else if (!p->registration) {
		audit(c->st, c->peer, user, -1, "register-denied", user, NULL,
		    0);
		rc = CR_REG_CLOSED;
	} else if (store_user_count(c->st) >= p->max_accounts)
		rc = CR_ACCOUNTS_FULL;
	else if (!store_peer_register(c->st, addr, p->reg_limit, 60)) {
		audit(c->st, c->peer, user, -1, "register-throttled", user,
		    NULL, 0);
		rc = CR_REG_THROTTLED;
	} else if (auth_hash(pass, hash, sizeof(hash)) == -1)
		rc = CR_NO_HASH;
	explicit_bzero(pass, sizeof(pass));
	if (rc != CR_OK)
		return rc;
	switch (store_user_create(c->st, user, KV_ROLE_GUEST, hash, &id)) {
	case ST_OK:
		break;
	case ST_EXISTS:
	case ST_DELETING:	/* until its userdel is done */
		return CR_NAME_TAKEN;
	case ST_FULL:
		return CR_ACCOUNTS_FULL;
	default:
		return CR_ERROR;
	}
	if (p->users_file != NULL &&
	    users_save(c->st, p->users_file, err, sizeof(err)) == -1)
		log_warnx("register %s: %s", user, err);
	audit(c->st, c->peer, user, KV_ROLE_GUEST, "register", user, NULL, 0);
	if (store_user_get(c->st, id, &v) != ST_OK)
		return CR_AUTH_FAILED;
	become(c, id, &v);
	return CR_OK;
}

/*
 * A login that names the store to act on as well ("user:store secret", the
 * memcached listener's): the secret first, then the choice, so that a
 * refusal says why only to someone who knew the secret.
 */
int
cmd_login_as(struct client *c, const char *name, size_t nlen,
    const char *store, size_t stlen, const char *secret, size_t slen)
{
	char user[KV_USER_MAX + 1], pass[KV_SECRET_MAX + 1];
	char target[KV_USER_MAX + 1];
	struct user_view v;
	uint32_t id, tid = 0;
	int rc;

	if (c->user != 0)
		return CR_LOGGED_IN;
	if (credentials(name, nlen, secret, slen, user, pass) != CR_OK ||
	    !auth_valid_name(store, stlen) ||
	    copy_arg(store, stlen, target, sizeof(target)) == -1) {
		/* No account has such a name or secret: nothing to check. */
		explicit_bzero(pass, sizeof(pass));
		store_note_auth_failure(c->st);
		return CR_AUTH_FAILED;
	}
	if (c->defer != NULL)
		return hand_over(c, LOGIN_AS, user, target, pass);
	id = check_secret(c, user, pass, &v, &rc);
	explicit_bzero(pass, sizeof(pass));
	if (id == 0)
		return rc;
	if (strcmp(target, user) != 0) {
		if (v.role != KV_ROLE_MANAGER) {
			audit(c->st, c->peer, user, v.role, "use", target,
			    NULL, 0);
			return CR_DENIED;
		}
		if ((tid = store_user_find(c->st, target)) == 0)
			return CR_NO_TARGET;
		audit(c->st, c->peer, user, v.role, "use", target, NULL, 0);
	}
	become(c, id, &v);
	choose(c, tid, target);
	return CR_OK;
}

/*
 * A listener bound to one account (-B): the session is that user from its
 * first byte, no login.  The account is made, without a usable secret, if
 * it does not exist yet.
 */
int
cmd_bind(struct client *c, const char *name)
{
	struct user_view v;
	uint32_t id;
	int rc;

	if ((id = store_user_find(c->st, name)) == 0) {
		rc = store_user_create(c->st, name, KV_ROLE_GUEST, "*", &id);
		if (rc == ST_EXISTS)
			id = store_user_find(c->st, name);
		else if (rc != ST_OK)
			return CR_ERROR;
	}
	if (id == 0 || store_user_get(c->st, id, &v) != ST_OK)
		return CR_ERROR;
	become(c, id, &v);
	return CR_OK;
}

int
cmd_use(struct client *c, const char *p, size_t len)
{
	char name[KV_USER_MAX + 1];
	uint32_t id;
	int role;

	if (c->user == 0)
		return CR_LOGIN_REQUIRED;
	if ((role = store_user_role(c->st, c->user, c->gen)) < 0)
		return CR_GONE;
	c->role = role;
	if (!auth_valid_name(p, len) ||
	    copy_arg(p, len, name, sizeof(name)) == -1)
		return CR_BAD_NAME;
	if (strcmp(name, c->name) == 0) {
		c->target = 0;
		return CR_OK;
	}
	if (role != KV_ROLE_MANAGER) {
		audit(c->st, c->peer, c->name, role, "use", name, NULL, 0);
		return CR_DENIED;
	}
	if ((id = store_user_find(c->st, name)) == 0)
		return CR_NO_TARGET;
	choose(c, id, name);
	audit(c->st, c->peer, c->name, role, "use", name, NULL, 0);
	return CR_OK;
}

/* CR_OK and the role now, CR_GONE, or CR_LOGIN_REQUIRED. */
int
cmd_whoami(struct client *c, int *role)
{
	if (c->user == 0)
		return CR_LOGIN_REQUIRED;
	if ((*role = store_user_role(c->st, c->user, c->gen)) < 0)
		return CR_GONE;
	c->role = *role;
	return CR_OK;
}
