/*
 * session.c - one connection: read a batch, answer every complete request in
 * it, write the replies with one write, repeat.
 *
 * The session owns the connection's state: who logged in, which store a
 * manager is using, what is left to throw away after an error.  Requests
 * reach the store only through do_request(), after login and role checks.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "kvstore.h"
#include "log.h"
#include "protocol.h"
#include "session.h"
#include "store.h"
#include "users.h"

#define READ_CHUNK	(64 * 1024)
#define OUT_FLUSH	(256 * 1024)	/* write out mid-batch past this */
#define PRELOGIN_MAX	512		/* longest request before login */
#define THROTTLE_MAX_MS	10000		/* the longest failed-login delay */

volatile sig_atomic_t session_stop;

/* One session per process: the parsed request lives here, not on the stack. */
static struct request rq;


static void
reply(struct session *s, const char *line)
{
	buf_appendstr(&s->ob, line);
	buf_append(&s->ob, "\r\n", 2);
}

static void
reply_err(struct session *s, const char *msg)
{
	buf_append(&s->ob, "ERR ", 4);
	reply(s, msg);
}

int
session_flush(struct session *s)
{
	struct pollfd pfd;
	ssize_t n;

	while (buf_avail(&s->ob) > 0) {
		n = write(s->out, buf_head(&s->ob), buf_avail(&s->ob));
		if (n > 0) {
			buf_consume(&s->ob, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			pfd.fd = s->out;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, s->cfg->idle_timeout * 1000) > 0)
				continue;
		}
		return -1;
	}
	buf_reset(&s->ob);
	return 0;
}

/* ---- the requests ------------------------------------------------------ */

/* Copy a request argument into a NUL-terminated buffer, or fail. */
static int
arg_str(const struct arg *a, char *out, size_t outlen)
{
	if (a->len >= outlen || memchr(a->p, '\0', a->len) != NULL)
		return -1;
	memcpy(out, a->p, a->len);
	out[a->len] = '\0';
	return 0;
}

/* "127.0.0.1 port 5000" -> "127.0.0.1": failures count per address. */
static void
peer_address(const struct session *s, char *out, size_t n)
{
	const char *sp = strstr(s->peer, " port ");

	snprintf(out, n, "%.*s", sp ? (int)(sp - s->peer) : (int)strlen(s->peer),
	    s->peer);
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !session_stop)
		;
}

/*
 * Failed logins in a row, from this address or for this user, cost a
 * growing delay before the next try is even checked: 100 ms after the first,
 * doubling, up to THROTTLE_MAX_MS.  Only this connection's process sleeps;
 * everyone else is served by their own.
 */
static void
throttle(struct session *s, const char *addr, uint32_t id)
{
	struct user_view v;
	uint32_t fails = store_peer_fails(s->st, addr);
	unsigned ms;

	if (id != 0 && store_user_get(s->st, id, &v) == ST_OK &&
	    v.fails > fails)
		fails = v.fails;
	if (fails == 0)
		return;
	ms = fails > 7 ? THROTTLE_MAX_MS : 100U << (fails - 1);
	if (ms > THROTTLE_MAX_MS)
		ms = THROTTLE_MAX_MS;
	sleep_ms(ms);
}

static int
do_register(struct session *s, const char *user, const char *pass,
    const char *addr, uint32_t *id)
{
	char hash[KV_HASH_MAX], err[256];

	if (!s->cfg->registration) {
		reply_err(s, "denied registration closed");
		audit(s->st, s->peer, user, -1, "register-denied", user, NULL, 0);
		return -1;
	}
	if (store_user_count(s->st) >= s->cfg->max_accounts) {
		reply_err(s, "full too many accounts");
		return -1;
	}
	if (!store_peer_register(s->st, addr, s->cfg->reg_limit, 60)) {
		reply_err(s, "denied too many registrations from this address");
		audit(s->st, s->peer, user, -1, "register-throttled", user,
		    NULL, 0);
		return -1;
	}
	if (auth_hash(pass, hash, sizeof(hash)) == -1) {
		reply_err(s, "server cannot hash the secret");
		return -1;
	}
	switch (store_user_create(s->st, user, KV_ROLE_GUEST, hash, id)) {
	case ST_OK:
		break;
	case ST_EXISTS:
	case ST_DELETING:	/* until its userdel is done */
		reply_err(s, "auth name taken");
		return -1;
	case ST_FULL:
		reply_err(s, "full too many accounts");
		return -1;
	default:
		reply_err(s, "server cannot create the account");
		return -1;
	}
	if (s->cfg->users_file != NULL &&
	    users_save(s->st, s->cfg->users_file, err, sizeof(err)) == -1)
		log_warnx("register %s: %s", user, err);
	audit(s->st, s->peer, user, KV_ROLE_GUEST, "register", user, NULL, 0);
	return 0;
}

static void
do_login(struct session *s, int create)
{
	const struct arg *name = &rq.argv[0], *secret = &rq.argv[1];
	char user[KV_USER_MAX + 1], pass[KV_SECRET_MAX + 1], addr[64];
	struct user_view v;
	uint32_t id = 0;
	int ok;

	if (s->user != 0) {
		reply_err(s, "denied already logged in");
		return;
	}
	if (!auth_valid_name(name->p, name->len) ||
	    arg_str(name, user, sizeof(user)) == -1) {
		reply_err(s, "syntax bad user name");
		return;
	}
	if (secret->len == 0 || arg_str(secret, pass, sizeof(pass)) == -1) {
		reply_err(s, "syntax bad secret");
		return;
	}
	peer_address(s, addr, sizeof(addr));
	if (create) {
		ok = do_register(s, user, pass, addr, &id) == 0;
		explicit_bzero(pass, sizeof(pass));
		if (!ok)
			return;
	} else {
		/* Unknown user and wrong secret: same work, same reply. */
		id = session_check_secret(s, user, pass, &v);
		explicit_bzero(pass, sizeof(pass));
		if (id == 0) {
			reply_err(s, "auth login failed");
			return;
		}
	}
	if (store_user_get(s->st, id, &v) != ST_OK) {
		reply_err(s, "auth login failed");
		return;
	}
	s->user = id;
	s->gen = v.gen;
	s->role = v.role;
	snprintf(s->name, sizeof(s->name), "%s", v.name);
	buf_printf(&s->ob, "OK %s %s\r\n", s->name, role_name(v.role));
}

/*
 * A login that arrives another way (memcached's -Y style set, mcproto.c),
 * checked as do_login checks one: the same delay after failures, the same
 * work and result for an unknown user and a wrong secret, the same counting
 * and audit.  Returns the account's id, filling *v, or 0 if the login failed.
 */
uint32_t
session_check_secret(struct session *s, const char *user, const char *pass,
    struct user_view *v)
{
	char addr[64];
	uint32_t id = store_user_find(s->st, user);
	int ok;

	peer_address(s, addr, sizeof(addr));
	throttle(s, addr, id);
	if (id == 0 || store_user_get(s->st, id, v) != ST_OK)
		v->hash[0] = '\0';
	ok = auth_verify(pass, v->hash[0] ? v->hash : NULL) && id != 0;
	if (!ok) {
		store_note_auth_failure(s->st);
		store_peer_fail(s->st, addr);
		store_user_fail(s->st, id, 0);
		audit(s->st, s->peer, user, -1, "login-failed", user, NULL, 0);
		return 0;
	}
	store_user_fail(s->st, id, 1);
	store_peer_reset(s->st, addr);
	return store_user_get(s->st, id, v) == ST_OK ? id : 0;
}

/* Act on another user's store from now on (0: back to one's own). */
void
session_use(struct session *s, uint32_t id, const char *name)
{
	struct user_view v;

	s->target = id;
	if (id == 0)
		return;
	/* Deleted since it was found: a generation no request will match. */
	s->target_gen = store_user_get(s->st, id, &v) == ST_OK ? v.gen :
	    USER_ANY_GEN - 1;
	snprintf(s->target_name, sizeof(s->target_name), "%s", name);
}

/*
 * A listener bound to one account (-B): the session is that user from its
 * first byte, no login.  The account is made, without a usable secret, if
 * it does not exist yet.
 */
int
session_bind_user(struct session *s, const char *name)
{
	struct user_view v;
	uint32_t id;
	int rc;

	if ((id = store_user_find(s->st, name)) == 0) {
		rc = store_user_create(s->st, name, KV_ROLE_GUEST, "*", &id);
		if (rc == ST_EXISTS)
			id = store_user_find(s->st, name);
		else if (rc != ST_OK)
			return -1;
	}
	if (id == 0 || store_user_get(s->st, id, &v) != ST_OK)
		return -1;
	s->user = id;
	s->gen = v.gen;
	s->role = v.role;
	snprintf(s->name, sizeof(s->name), "%s", v.name);
	return 0;
}

/*
 * The store a request acts on: the user's own, or for a manager the one it
 * chose with "use".  The role is read afresh for every request, so a demotion
 * or a deleted account takes effect at the next request of a live session.
 */
int
session_acting_user(struct session *s, uint32_t *user)
{
	int role = store_user_role(s->st, s->user, s->gen);

	if (role < 0)
		return SESSION_GONE;
	s->role = role;
	if (s->target == 0) {
		*user = s->user;
		return 0;
	}
	if (role != KV_ROLE_MANAGER)
		return SESSION_DENIED;
	/* The chosen account may have been deleted, its slot reused since:
	 * a delete moves the slot's generation. */
	if (store_user_role(s->st, s->target, s->target_gen) < 0)
		return SESSION_NO_TARGET;
	*user = s->target;
	return 0;
}

/* The generation of the account session_acting_user() chose. */
static uint32_t
acting_gen(const struct session *s)
{
	return s->target != 0 ? s->target_gen : s->gen;
}

static int
acting_user(struct session *s, uint32_t *user)
{
	const struct arg *key = rq.argc > 0 ? &rq.argv[0] : NULL;

	switch (session_acting_user(s, user)) {
	case 0:
		break;
	case SESSION_GONE:
		reply_err(s, "auth account removed");
		s->closing = 1;
		return -1;
	case SESSION_NO_TARGET:
		audit(s->st, s->peer, s->name, s->role, rq.name,
		    s->target_name, key ? key->p : NULL, key ? key->len : 0);
		reply_err(s, "denied no such user");
		return -1;
	default:
		audit(s->st, s->peer, s->name, s->role, rq.name,
		    s->target_name, key ? key->p : NULL, key ? key->len : 0);
		reply_err(s, "denied not a manager");
		return -1;
	}
	if (*user != s->user)
		audit(s->st, s->peer, s->name, s->role, rq.name,
		    s->target_name, key ? key->p : NULL, key ? key->len : 0);
	return 0;
}

static void
do_use(struct session *s)
{
	const struct arg *a = &rq.argv[0];
	char name[KV_USER_MAX + 1];
	uint32_t id;
	int role = store_user_role(s->st, s->user, s->gen);

	if (role < 0) {
		reply_err(s, "auth account removed");
		s->closing = 1;
		return;
	}
	if (!auth_valid_name(a->p, a->len) ||
	    arg_str(a, name, sizeof(name)) == -1) {
		reply_err(s, "syntax bad user name");
		return;
	}
	if (strcmp(name, s->name) == 0) {
		s->target = 0;
		buf_printf(&s->ob, "OK %s\r\n", name);
		return;
	}
	if (role != KV_ROLE_MANAGER) {
		audit(s->st, s->peer, s->name, role, "use", name, NULL, 0);
		reply_err(s, "denied not a manager");
		return;
	}
	if ((id = store_user_find(s->st, name)) == 0) {
		reply_err(s, "denied no such user");
		return;
	}
	session_use(s, id, name);
	audit(s->st, s->peer, s->name, role, "use", name, NULL, 0);
	buf_printf(&s->ob, "OK %s\r\n", name);
}

static void
emit_value(void *ctx, const struct item_view *v)
{
	struct session *s = ctx;

	buf_reserve(&s->ob, v->vlen + 32);
	buf_printf(&s->ob, "VALUE %zu\r\n", v->vlen);
	buf_append(&s->ob, v->value, v->vlen);
	buf_append(&s->ob, "\r\n", 2);
}

static void
emit_ttl(void *ctx, const struct item_view *v)
{
	struct session *s = ctx;
	int64_t left = v->exptime == 0 ? -1 :
	    (int64_t)v->exptime - (int64_t)time(NULL);

	buf_printf(&s->ob, "TTL %" PRId64 "\r\n", left < 0 && v->exptime ?
	    0 : left);
}

static void
store_error(struct session *s, int rc)
{
	switch (rc) {
	case ST_NOT_FOUND:
		reply(s, "NOT_FOUND");
		break;
	case ST_NO_USER:
		/* Deleted between the request's check and the store's. */
		if (s->target != 0)
			reply_err(s, "denied no such user");
		else {
			reply_err(s, "auth account removed");
			s->closing = 1;
		}
		break;
	case ST_FULL:
		reply_err(s, "full store is full");
		break;
	case ST_QUOTA:
		reply_err(s, "quota over the user's quota");
		break;
	case ST_TOO_LARGE:
		buf_printf(&s->ob, "ERR limit value longer than %u bytes\r\n",
		    store_value_max(s->st));
		break;
	default:
		reply_err(s, "server store error");
		break;
	}
}

static int
parse_seconds(const struct arg *a, int64_t *out)
{
	int64_t v = 0;
	size_t i = 0;
	int neg = 0;

	if (a->len > 0 && a->p[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == a->len || a->len - i > 10)
		return -1;
	for (; i < a->len; i++) {
		if (a->p[i] < '0' || a->p[i] > '9')
			return -1;
		v = v * 10 + (a->p[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

static void
do_stats(struct session *s, uint32_t user)
{
	struct store_stats ss;
	struct user_view v;
	time_t now = time(NULL);

	store_stats(s->st, &ss);
	if (store_user_get(s->st, user, &v) != ST_OK)
		memset(&v, 0, sizeof(v));
	buf_printf(&s->ob,
	    "STAT pid %ld\r\n"
	    "STAT version %s\r\n"
	    "STAT uptime %" PRId64 "\r\n"
	    "STAT time %" PRId64 "\r\n"
	    "STAT user %s\r\n"
	    "STAT user_items %" PRIu64 "\r\n"
	    "STAT user_bytes %" PRIu64 "\r\n"
	    "STAT items %" PRIu64 "\r\n"
	    "STAT bytes_used %" PRIu64 "\r\n"
	    "STAT bytes_free %" PRIu64 "\r\n"
	    "STAT bytes_limit %" PRIu64 "\r\n"
	    "STAT value_max %u\r\n"
	    "STAT curr_connections %" PRIu64 "\r\n"
	    "STAT total_connections %" PRIu64 "\r\n"
	    "STAT auth_failures %" PRIu64 "\r\n"
	    "STAT get_hits %" PRIu64 "\r\n"
	    "STAT get_misses %" PRIu64 "\r\n"
	    "STAT cmd_put %" PRIu64 "\r\n"
	    "STAT cmd_del %" PRIu64 "\r\n"
	    "END\r\n",
	    (long)getpid(), KV_VERSION, (int64_t)now - ss.created,
	    (int64_t)now, v.name, v.keys, v.bytes, ss.items, ss.bytes_used,
	    ss.bytes_free, ss.bytes_limit, ss.value_max, ss.curr_connections,
	    ss.total_connections, ss.auth_failures, ss.hits, ss.misses,
	    ss.puts, ss.dels);
}

static void
do_request(struct session *s)
{
	const struct arg *a = rq.argv;
	struct store_write w;
	uint32_t user;
	int64_t secs;
	int rc;

	switch (rq.verb) {
	case CMD_NONE:
		return;
	case CMD_PING:
		reply(s, "PONG");
		return;
	case CMD_QUIT:
		reply(s, "BYE");
		s->closing = 1;
		return;
	case CMD_LOGIN:
	case CMD_REGISTER:
		do_login(s, rq.verb == CMD_REGISTER);
		return;
	case CMD_WHOAMI:
		if (s->user == 0)
			reply(s, "USER - none");
		else {
			int role = store_user_role(s->st, s->user, s->gen);

			if (role < 0) {
				reply_err(s, "auth account removed");
				s->closing = 1;
			} else
				buf_printf(&s->ob, "USER %s %s\r\n", s->name,
				    role_name(role));
		}
		return;
	default:
		break;
	}
	if (s->user == 0) {
		reply_err(s, "auth login required");
		return;
	}
	if (rq.verb == CMD_USE) {
		do_use(s);
		return;
	}
	if (acting_user(s, &user) == -1)
		return;
	switch (rq.verb) {
	case CMD_GET:
		if (store_get(s->st, user, a[0].p, a[0].len, emit_value, s) !=
		    ST_OK)
			reply(s, "NOT_FOUND");
		break;
	case CMD_PUT:
		memset(&w, 0, sizeof(w));
		w.mode = W_SET;
		/* Quotas bind guests' stores, whoever writes into them. */
		if (store_user_role(s->st, user, USER_ANY_GEN) ==
		    KV_ROLE_GUEST) {
			w.quota_keys = s->cfg->quota_keys;
			w.quota_bytes = s->cfg->quota_bytes;
		}
		rc = store_put(s->st, user, acting_gen(s), a[0].p, a[0].len,
		    a[1].p, a[1].len, &w, NULL);
		if (rc == ST_OK)
			reply(s, "OK");
		else
			store_error(s, rc);
		break;
	case CMD_DEL:
		rc = store_del(s->st, user, acting_gen(s), a[0].p, a[0].len);
		if (rc == ST_OK)
			reply(s, "OK");
		else
			store_error(s, rc);
		break;
	case CMD_EXPIRE:
		if (parse_seconds(&a[1], &secs) == -1) {
			reply_err(s, "syntax bad number");
			break;
		}
		rc = store_touch(s->st, user, acting_gen(s), a[0].p, a[0].len,
		    secs <= 0 ? 1 : (uint32_t)(time(NULL) + secs), NULL, NULL);
		if (rc == ST_OK)
			reply(s, "OK");
		else
			store_error(s, rc);
		break;
	case CMD_TTL:
		if (store_get(s->st, user, a[0].p, a[0].len, emit_ttl, s) !=
		    ST_OK)
			reply(s, "NOT_FOUND");
		break;
	case CMD_STATS:
		do_stats(s, user);
		break;
	default:
		reply_err(s, "server unhandled command");
		break;
	}
}

/* ---- the loop ------------------------------------------------------------ */

/* Throw away what an earlier error said to; 1 while there is more to drop. */
static int
drop_garbage(struct session *s)
{
	size_t n;
	const char *lf;

	if (s->discard > 0) {
		n = buf_avail(&s->ib) < s->discard ? buf_avail(&s->ib) :
		    (size_t)s->discard;
		buf_consume(&s->ib, n);
		s->discard -= n;
		if (s->discard > 0)
			return 1;
	}
	if (s->skip_line) {
		lf = memchr(buf_head(&s->ib), '\n', buf_avail(&s->ib));
		if (lf == NULL) {
			buf_reset(&s->ib);
			return 1;
		}
		buf_consume(&s->ib, (size_t)(lf - buf_head(&s->ib)) + 1);
		s->skip_line = 0;
	}
	return 0;
}

/* Answer every complete kvstore(7) request in the input buffer. */
int
native_batch(struct session *s)
{
	uint32_t value_max = store_value_max(s->st);

	while (!s->closing) {
		if (drop_garbage(s))
			return 0;
		if (buf_avail(&s->ib) == 0)
			return 0;
		/* Before login a request is short: login, register, ping, quit. */
		if (s->user == 0 && buf_avail(&s->ib) > PRELOGIN_MAX &&
		    memchr(buf_head(&s->ib), '\n', PRELOGIN_MAX + 1) == NULL) {
			reply_err(s, "limit request line longer than 512 bytes "
			    "before login");
			s->closing = 1;
			return 0;
		}
		switch (proto_parse(buf_head(&s->ib), buf_avail(&s->ib),
		    s->user ? value_max : PRELOGIN_MAX, &rq)) {
		case PARSE_MORE:
			return 0;
		case PARSE_ERROR:
			reply_err(s, rq.error);
			s->discard = rq.discard;
			s->skip_line = rq.skip_line;
			buf_consume(&s->ib, rq.consumed);
			break;
		case PARSE_OK:
			do_request(s);
			s->requests++;
			buf_consume(&s->ib, rq.consumed);
			break;
		}
		if (buf_avail(&s->ob) > OUT_FLUSH && session_flush(s) == -1)
			return -1;
	}
	return 0;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
session_run(int in, int out, const struct session_config *cfg,
    const char *peer)
{
	static struct session s;	/* one per process; keeps the stack small */
	int (*batch)(struct session *);
	time_t login_by;
	struct pollfd pfd;
	uint64_t answered, partial_since = 0;
	ssize_t n;
	int timeout, pending, ms, rc = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.st = cfg->store;
	s.peer = peer;
	s.in = in;
	s.out = out;
	batch = cfg->proto == PROTO_MEMCACHED ? mc_batch : native_batch;
	if (cfg->bound_user != NULL &&
	    session_bind_user(&s, cfg->bound_user) == -1) {
		log_warnx("cannot act as user %s", cfg->bound_user);
		return -1;
	}
	login_by = time(NULL) + cfg->login_timeout;
	while (!s.closing && !session_stop) {
		pending = buf_avail(&s.ib) > 0 || s.discard || s.skip_line;
		if (!pending)
			partial_since = 0;
		else if (partial_since == 0)
			partial_since = mono_ms();
		timeout = pending ? cfg->partial_timeout : cfg->idle_timeout;
		if (s.user == 0 && cfg->login_timeout > 0) {
			int left = (int)(login_by - time(NULL));

			if (left <= 0) {
				reply_err(&s, "timeout login");
				session_flush(&s);
				break;
			}
			if (timeout <= 0 || left < timeout)
				timeout = left;
		}
		ms = timeout > 0 ? timeout * 1000 : -1;
		/*
		 * -T bounds the request in hand from its first byte, not each
		 * read: a line trickled in a byte at a time (slowloris) ends
		 * all the same.
		 */
		if (pending && cfg->partial_timeout > 0) {
			int64_t left = (int64_t)(partial_since +
			    (uint64_t)cfg->partial_timeout * 1000 - mono_ms());

			if (left <= 0) {
				reply_err(&s, "timeout idle");
				session_flush(&s);
				log_info("timeout: %s: request unfinished after "
				    "%d s", peer, cfg->partial_timeout);
				break;
			}
			if (ms < 0 || left < ms)
				ms = (int)left;
		}
		pfd.fd = in;
		pfd.events = POLLIN;
		n = poll(&pfd, 1, ms);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0 && s.user == 0 && cfg->login_timeout > 0 &&
		    time(NULL) >= login_by)
			continue;	/* the deadline check above answers */
		if (n == 0) {
			reply_err(&s, "timeout idle");
			session_flush(&s);
			log_info("timeout: %s after %d s", peer, timeout);
			break;
		}
		buf_reserve(&s.ib, READ_CHUNK);
		n = read(in, s.ib.data + s.ib.len, s.ib.cap - s.ib.len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		s.ib.len += (size_t)n;
		answered = s.requests;
		if (batch(&s) == -1) {
			rc = -1;
			break;
		}
		/* A request answered: what follows has a deadline of its own. */
		if (s.requests != answered || buf_avail(&s.ob) > 0)
			partial_since = 0;
		if (session_flush(&s) == -1) {
			rc = -1;
			break;
		}
	}
	buf_free(&s.ib);
	buf_free(&s.ob);
	return rc;
}
