/*
 * native.c - the kvstore(7) front-end: requests parsed by protocol.c, done
 * by the command layer (cmd.c), results mapped to reply lines here.
 *
 * No I/O and no store calls: everything a request does goes through cmd.c,
 * and everything it answers goes into the connection's output buffer for
 * the connection core (conn.c) to send.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cmd.h"
#include "conn.h"
#include "kvstore.h"
#include "match.h"
#include "protocol.h"
#include "users.h"

#define PRELOGIN_MAX	512	/* longest request before login */
#define EXPIRE_MAX	315360000	/* seconds: ten years; see kvstore(7) */
#define SCAN_STRIPES	16	/* stripes one scan walks: see kvstore(7) */
#define USERS_SLOTS	256	/* account slots one users request reads */

const char *const native_lines[EV_COUNT] = {
	[EV_BUSY] = "ERR busy too many connections",
	[EV_BUSY_ADDR] = "ERR busy too many connections from this address",
	[EV_BUSY_PRELOGIN] =
	    "ERR busy too many connections not logged in from this address",
	[EV_TIMEOUT_PARTIAL] = "ERR timeout idle",
	[EV_TIMEOUT_IDLE] = "ERR timeout idle",
	[EV_TIMEOUT_LOGIN] = "ERR timeout login",
	[EV_SHUTDOWN] = "ERR shutdown server stopping",
};

/* The reply to each result that is not a success. */
static const char *const errors[] = {
	[CR_NOT_FOUND] = "NOT_FOUND",
	[CR_EXISTS] = "ERR server store error",
	[CR_NOT_STORED] = "ERR server store error",
	[CR_FULL] = "ERR full store is full",
	[CR_QUOTA] = "ERR quota over the user's quota",
	[CR_TOO_LARGE] = NULL,		/* says the limit: see fail() */
	[CR_NOT_NUMBER] = "ERR server store error",
	[CR_LOGIN_REQUIRED] = "ERR auth login required",
	[CR_GONE] = "ERR auth account removed",
	[CR_DENIED] = "ERR denied not a manager",
	[CR_NO_TARGET] = "ERR denied no such user",
	[CR_AUTH_FAILED] = "ERR auth login failed",
	[CR_LOGGED_IN] = "ERR denied already logged in",
	[CR_LOGIN_BUSY] = "ERR busy login in progress from this address",
	[CR_BAD_NAME] = "ERR syntax bad user name",
	[CR_BAD_SECRET] = "ERR syntax bad secret",
	[CR_NAME_TAKEN] = "ERR auth name taken",
	[CR_REG_CLOSED] = "ERR denied registration closed",
	[CR_REG_THROTTLED] =
	    "ERR denied too many registrations from this address",
	[CR_ACCOUNTS_FULL] = "ERR full too many accounts",
	[CR_NO_HASH] = "ERR server cannot hash the secret",
	[CR_ERROR] = "ERR server store error",
};

static void
reply(struct conn *c, const char *line)
{
	buf_appendstr(&c->ob, line);
	buf_append(&c->ob, "\r\n", 2);
}

/* A result other than CR_OK; an account deleted ends the connection. */
static void
fail(struct conn *c, int rc)
{
	if (rc == CR_TOO_LARGE) {
		buf_printf(&c->ob, "ERR limit value longer than %u bytes\r\n",
		    cmd_value_max(&c->cl));
		return;
	}
	if (rc <= CR_OK || rc > CR_ERROR || errors[rc] == NULL)
		rc = CR_ERROR;
	reply(c, errors[rc]);
	if (rc == CR_GONE)
		c->closing = 1;
}

static void
ok_or_fail(struct conn *c, int rc)
{
	if (rc == CR_OK)
		reply(c, "OK");
	else
		fail(c, rc);
}

static void
emit_value(void *ctx, const struct item_view *v)
{
	struct conn *c = ctx;

	buf_reserve(&c->ob, v->vlen + 32);
	buf_append(&c->ob, "VALUE ", 6);
	buf_append_u64(&c->ob, v->vlen);
	buf_append(&c->ob, "\r\n", 2);
	buf_append(&c->ob, v->value, v->vlen);
	buf_append(&c->ob, "\r\n", 2);
}

static void
emit_value_cas(void *ctx, const struct item_view *v)
{
	struct conn *c = ctx;

	buf_reserve(&c->ob, v->vlen + 48);
	buf_append(&c->ob, "VALUE ", 6);
	buf_append_u64(&c->ob, v->vlen);
	buf_append(&c->ob, " ", 1);
	buf_append_u64(&c->ob, v->cas);
	buf_append(&c->ob, "\r\n", 2);
	buf_append(&c->ob, v->value, v->vlen);
	buf_append(&c->ob, "\r\n", 2);
}

static void
emit_ttl(void *ctx, const struct item_view *v)
{
	struct conn *c = ctx;
	int64_t left = v->exptime == 0 ? -1 :
	    (int64_t)v->exptime - (int64_t)time(NULL);

	buf_printf(&c->ob, "TTL %" PRId64 "\r\n", left < 0 && v->exptime ?
	    0 : left);
}

/* At most 10 digits and a sign: no overflow in an int64_t. */
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

/* Decimal, 1 to 20 digits, at most max. */
static int
parse_u64(const struct arg *a, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (a->len == 0 || a->len > 20)
		return -1;
	for (i = 0; i < a->len; i++) {
		if (a->p[i] < '0' || a->p[i] > '9' ||
		    v > (max - (uint64_t)(a->p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(a->p[i] - '0');
	}
	*out = v;
	return 0;
}

static void
do_cas(struct conn *c, const struct arg *a)
{
	struct store_write w;
	int rc;

	memset(&w, 0, sizeof(w));
	w.mode = W_CAS;
	if (parse_u64(&a[1], UINT64_MAX, &w.cas) == -1) {
		reply(c, "ERR syntax bad number");
		return;
	}
	rc = cmd_put(&c->cl, a[0].p, a[0].len, a[2].p, a[2].len, &w, NULL);
	if (rc == CR_EXISTS)
		reply(c, "EXISTS");
	else
		ok_or_fail(c, rc);
}

static void
do_arith(struct conn *c, const struct request *rq)
{
	uint64_t delta = 1, v;
	int rc;

	if (rq->argc == 2 && parse_u64(&rq->argv[1], UINT64_MAX, &delta) ==
	    -1) {
		reply(c, "ERR syntax bad number");
		return;
	}
	rc = cmd_arith(&c->cl, rq->argv[0].p, rq->argv[0].len,
	    rq->verb == CMD_INCR, delta, &v);
	if (rc == CR_NOT_NUMBER)
		reply(c, "ERR denied value is not a number");
	else if (rc != CR_OK)
		fail(c, rc);
	else
		buf_printf(&c->ob, "NUMBER %" PRIu64 "\r\n", v);
}

/* The keys of one stripe, copied out under its lock, matched after. */
struct scan_ctx {
	struct buf	 keys;		/* klen byte, then the key */
};

static void
collect_key(void *ctx, const struct item_view *v)
{
	struct scan_ctx *sc = ctx;
	unsigned char n = (unsigned char)v->klen;

	buf_append(&sc->keys, &n, 1);
	buf_append(&sc->keys, v->key, v->klen);
}

/*
 * scan cursor [pattern]: at most SCAN_STRIPES stripes of the acting store,
 * one at a time, each through the gate (a demotion stops the walk at the
 * next stripe); the matching keys go out as KEY lines after a KEYS line
 * that counts them.
 */
static void
do_scan(struct conn *c, const struct request *rq)
{
	struct scan_ctx sc;
	struct buf out;
	uint64_t cur;
	uint32_t cursor;
	const char *pat = "*", *p, *end;
	size_t plen = 1, n = 0, k;
	int more = 1, rc = CR_OK, i;

	if (parse_u64(&rq->argv[0], UINT32_MAX, &cur) == -1) {
		reply(c, "ERR syntax bad number");
		return;
	}
	if (rq->argc == 2) {
		pat = rq->argv[1].p;
		plen = rq->argv[1].len;
		if (!match_valid(pat, plen)) {
			reply(c, "ERR limit pattern longer than 512 bytes");
			return;
		}
	}
	cursor = (uint32_t)cur;
	memset(&sc, 0, sizeof(sc));
	memset(&out, 0, sizeof(out));
	for (i = 0; i < SCAN_STRIPES && more; i++) {
		buf_reset(&sc.keys);
		if ((rc = cmd_scan(&c->cl, &cursor, 1, collect_key, &sc,
		    &more)) != CR_OK)
			break;
		if (buf_avail(&sc.keys) == 0)
			continue;	/* and buf_head() may be NULL */
		p = buf_head(&sc.keys);
		end = p + buf_avail(&sc.keys);
		for (; p < end; p += 1 + k) {
			k = (unsigned char)*p;
			if (!match_glob(pat, plen, p + 1, k))
				continue;
			buf_append(&out, "KEY", 3);
			proto_append_arg(&out, p + 1, k, 0);
			buf_append(&out, "\r\n", 2);
			n++;
		}
	}
	if (rc != CR_OK)
		fail(c, rc);
	else {
		buf_printf(&c->ob, "KEYS %" PRIu32 " %zu\r\n", more ? cursor :
		    0, n);
		if (n > 0)
			buf_append(&c->ob, buf_head(&out), buf_avail(&out));
		reply(c, "END");
	}
	buf_free(&sc.keys);
	buf_free(&out);
}

struct users_ctx {
	struct buf	 lines;
	size_t		 n;
};

static void
collect_user(void *ctx, const struct user_view *v)
{
	struct users_ctx *uc = ctx;

	buf_printf(&uc->lines, "USER %s %s %" PRIu64 "\r\n", v->name,
	    role_name(v->role), v->keys);
	uc->n++;
}

/* users [cursor]: a manager's piece of the list of accounts. */
static void
do_users(struct conn *c, const struct request *rq)
{
	struct users_ctx uc;
	uint64_t cur = 0;
	uint32_t cursor;
	int more = 0, rc;

	if (rq->argc == 1 && parse_u64(&rq->argv[0], UINT32_MAX, &cur) == -1) {
		reply(c, "ERR syntax bad number");
		return;
	}
	cursor = (uint32_t)cur;
	memset(&uc, 0, sizeof(uc));
	rc = cmd_users(&c->cl, &cursor, USERS_SLOTS, collect_user, &uc, &more);
	if (rc != CR_OK)
		fail(c, rc);
	else {
		buf_printf(&c->ob, "USERS %" PRIu32 " %zu\r\n", more ? cursor :
		    0, uc.n);
		if (uc.n > 0)
			buf_append(&c->ob, buf_head(&uc.lines),
			    buf_avail(&uc.lines));
		reply(c, "END");
	}
	buf_free(&uc.lines);
}

static void
do_stats(struct conn *c)
{
	struct store_stats ss;
	struct user_view v;
	time_t now = time(NULL);
	int rc;

	if ((rc = cmd_stats(&c->cl, &ss, &v)) != CR_OK) {
		fail(c, rc);
		return;
	}
	buf_printf(&c->ob,
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
	    "STAT reclaimed %" PRIu64 "\r\n"
	    "STAT crawler_reclaimed %" PRIu64 "\r\n"
	    "STAT crawler_items_checked %" PRIu64 "\r\n"
	    "STAT expired_unfetched %" PRIu64 "\r\n"
	    "STAT user_evictions %" PRIu64 "\r\n"
	    "STAT evictions %" PRIu64 "\r\n"
	    "END\r\n",
	    (long)getpid(), KV_VERSION, (int64_t)now - ss.created,
	    (int64_t)now, v.name, v.keys, v.bytes, ss.items, ss.bytes_used,
	    ss.bytes_free, ss.bytes_limit, ss.value_max, ss.curr_connections,
	    ss.total_connections, ss.auth_failures, ss.hits, ss.misses,
	    ss.puts, ss.dels, ss.reclaimed, ss.crawler_reclaimed,
	    ss.crawler_checked, ss.expired_unfetched, v.evictions,
	    ss.evictions);
}

/* The reply to a login or register, now or when a helper answers. */
void
native_login_done(struct conn *c, int rc)
{
	int role;

	if (rc != CR_OK) {
		fail(c, rc);
		return;
	}
	if (cmd_whoami(&c->cl, &role) != CR_OK)
		role = c->cl.role;
	buf_printf(&c->ob, "OK %s %s\r\n", c->cl.name, role_name(role));
}

static void
do_login(struct conn *c, const struct request *rq)
{
	const struct arg *a = rq->argv;
	int rc;

	rc = rq->verb == CMD_REGISTER ?
	    cmd_register(&c->cl, a[0].p, a[0].len, a[1].p, a[1].len) :
	    cmd_login(&c->cl, a[0].p, a[0].len, a[1].p, a[1].len);
	if (rc == CR_PENDING)
		c->paused = 1;	/* the rest waits for the answer */
	else
		native_login_done(c, rc);
}

static void
do_whoami(struct conn *c)
{
	int role;

	switch (cmd_whoami(&c->cl, &role)) {
	case CR_OK:
		buf_printf(&c->ob, "USER %s %s\r\n", c->cl.name,
		    role_name(role));
		break;
	case CR_LOGIN_REQUIRED:
		reply(c, "USER - none");
		break;
	default:
		fail(c, CR_GONE);
		break;
	}
}

static void
do_use(struct conn *c, const struct arg *a)
{
	int rc = cmd_use(&c->cl, a->p, a->len);

	if (rc != CR_OK) {
		fail(c, rc);
		return;
	}
	buf_printf(&c->ob, "OK %.*s\r\n", (int)a->len, a->p);
}

static void
do_expire(struct conn *c, const struct arg *a)
{
	int64_t secs;

	if (parse_seconds(&a[1], &secs) == -1) {
		reply(c, "ERR syntax bad number");
		return;
	}
	if (secs > EXPIRE_MAX) {
		reply(c, "ERR limit expire longer than 315360000 seconds");
		return;
	}
	ok_or_fail(c, cmd_touch(&c->cl, a[0].p, a[0].len, secs <= 0 ? 1 :
	    (uint32_t)(time(NULL) + secs), NULL, NULL));
}

static void
do_request(struct conn *c, const struct request *rq)
{
	const struct arg *a = rq->argv;
	struct store_write w;
	int rc;

	switch (rq->verb) {
	case CMD_NONE:
		return;
	case CMD_PING:
		reply(c, "PONG");
		return;
	case CMD_QUIT:
		reply(c, "BYE");
		c->closing = 1;
		return;
	case CMD_LOGIN:
	case CMD_REGISTER:
		do_login(c, rq);
		return;
	case CMD_WHOAMI:
		do_whoami(c);
		return;
	case CMD_USE:
		do_use(c, &a[0]);
		return;
	default:
		break;
	}
	cmd_begin(&c->cl, rq->name);
	switch (rq->verb) {
	case CMD_GET:
		if ((rc = cmd_get(&c->cl, a[0].p, a[0].len, emit_value, c)) !=
		    CR_OK)
			fail(c, rc);
		break;
	case CMD_PUT:
		memset(&w, 0, sizeof(w));
		w.mode = W_SET;
		ok_or_fail(c, cmd_put(&c->cl, a[0].p, a[0].len, a[1].p,
		    a[1].len, &w, NULL));
		break;
	case CMD_DEL:
		ok_or_fail(c, cmd_del(&c->cl, a[0].p, a[0].len));
		break;
	case CMD_EXPIRE:
		do_expire(c, a);
		break;
	case CMD_TTL:
		if ((rc = cmd_get(&c->cl, a[0].p, a[0].len, emit_ttl, c)) !=
		    CR_OK)
			fail(c, rc);
		break;
	case CMD_GETS:
		if ((rc = cmd_get(&c->cl, a[0].p, a[0].len, emit_value_cas,
		    c)) != CR_OK)
			fail(c, rc);
		break;
	case CMD_CAS:
		do_cas(c, a);
		break;
	case CMD_INCR:
	case CMD_DECR:
		do_arith(c, rq);
		break;
	case CMD_SCAN:
		do_scan(c, rq);
		break;
	case CMD_USERS:
		do_users(c, rq);
		break;
	case CMD_STATS:
		do_stats(c);
		break;
	default:
		reply(c, "ERR server unhandled command");
		break;
	}
	cmd_end(&c->cl);
}

/*
 * Answer every complete kvstore(7) request in the input buffer, until the
 * output bound: then 1, and the core calls again once replies have gone.
 */
int
native_batch(struct conn *c)
{
	uint32_t value_max = cmd_value_max(&c->cl);
	int logged_in;
	unsigned turn = 0;
	struct request rq;	/* this call's: nothing of it outlives a request */

	while (!c->closing) {
		if (buf_avail(&c->ob) >= CONN_OUT_MAX)
			return buf_avail(&c->ib) > 0 ? 1 : 0;
		if (conn_turn_over(c, &turn))
			return buf_avail(&c->ib) > 0 ? 2 : 0;
		if (conn_drop_garbage(c) || buf_avail(&c->ib) == 0)
			return 0;
		logged_in = c->cl.user != 0;
		/* The first line, and every line before login: not HTTP. */
		if ((!logged_in || c->requests == 0) && conn_refuse_http(c))
			return 0;
		/* Before login a request is short: login, register, ping, quit. */
		if (!logged_in && buf_avail(&c->ib) > PRELOGIN_MAX &&
		    memchr(buf_head(&c->ib), '\n', PRELOGIN_MAX + 1) == NULL) {
			reply(c, "ERR limit request line longer than 512 bytes "
			    "before login");
			c->closing = 1;
			return 0;
		}
		switch (proto_parse(buf_head(&c->ib), buf_avail(&c->ib),
		    logged_in ? value_max : PRELOGIN_MAX, &rq)) {
		case PARSE_MORE:
			return 0;
		case PARSE_ERROR:
			buf_append(&c->ob, "ERR ", 4);
			reply(c, rq.error);
			c->discard = rq.discard;
			c->skip_line = rq.skip_line;
			buf_consume(&c->ib, rq.consumed);
			break;
		case PARSE_OK:
			do_request(c, &rq);
			c->requests++;
			buf_consume(&c->ib, rq.consumed);
			if (c->paused)
				return 0;
			break;
		}
	}
	return 0;
}
