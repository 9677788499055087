/*
 * mcproto.c - the memcached front-end (kvstore-memcached(7)): requests
 * parsed by mcparse.c, done by the command layer (cmd.c), results mapped to
 * memcached's reply lines here.
 *
 * kvstored -M opens a listener whose connections land here.  Every request
 * acts on one user's store, the same items the native protocol sees: the
 * account a -B listener is bound to, or the one a memcached -Y style login
 * named (a first "set" whose data is "<user>[:<store>] <secret>").  Roles
 * are the command layer's business and are read again for every key, so a
 * retrieval line that spans a demotion stops serving the other store at the
 * next key.  No I/O and no store calls here.
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
#include "mcparse.h"
#include "mcproto.h"

/*
 * MC_VERSION (mcproto.h) is the protocol level this listener implements, and
 * so what it claims: 1.6 answers "version" and "quit" whatever tokens follow
 * them, and memccapable checks exactly that when VERSION says 1.6 or later.
 * It is plain 1.6.18 because clients parse it: the node client read
 * "1.6.18+kvstore.1.0.0" as 1.0.0.  "stats" shows kvstore_version.
 */
#define MC_REL_MAX	2592000	/* an exptime up to 30 days is relative */

const char *const mc_lines[EV_COUNT] = {
	[EV_BUSY] = "SERVER_ERROR busy too many connections",
	[EV_BUSY_ADDR] = "SERVER_ERROR busy too many connections from this "
	    "address",
	[EV_BUSY_PRELOGIN] = "SERVER_ERROR busy too many connections not "
	    "logged in from this address",
	[EV_TIMEOUT_PARTIAL] = "SERVER_ERROR timeout request unfinished",
	[EV_TIMEOUT_IDLE] = NULL,	/* memcached closes idle ones silently */
	[EV_TIMEOUT_LOGIN] = "SERVER_ERROR timeout login",
	[EV_SHUTDOWN] = "SERVER_ERROR shutting down",
};

static const char *const verb_name[] = {
	[MV_GET] = "get", [MV_GETS] = "gets", [MV_GAT] = "gat",
	[MV_GATS] = "gats", [MV_SET] = "set", [MV_ADD] = "add",
	[MV_REPLACE] = "replace", [MV_APPEND] = "append",
	[MV_PREPEND] = "prepend", [MV_CAS] = "cas", [MV_DELETE] = "delete",
	[MV_INCR] = "incr", [MV_DECR] = "decr", [MV_TOUCH] = "touch",
	[MV_FLUSH_ALL] = "flush_all", [MV_STATS] = "stats",
	[MV_MG] = "mg", [MV_MS] = "ms", [MV_MD] = "md", [MV_MA] = "ma",
	[MV_MN] = "mn", [MV_ME] = "me", [MV_LRU_CRAWLER] = "lru_crawler",
	[MV_BINARY] = "binary",
};

static const enum store_mode update_mode[] = {
	[MV_SET] = W_SET, [MV_ADD] = W_ADD, [MV_REPLACE] = W_REPLACE,
	[MV_APPEND] = W_APPEND, [MV_PREPEND] = W_PREPEND, [MV_CAS] = W_CAS,
};

/* The replies to storage results. */
static const char *const store_replies[] = {
	[CR_OK] = "STORED",
	[CR_NOT_STORED] = "NOT_STORED",
	[CR_EXISTS] = "EXISTS",
	[CR_NOT_FOUND] = "NOT_FOUND",
	[CR_TOO_LARGE] = "SERVER_ERROR object too large for cache",
	[CR_FULL] = "SERVER_ERROR out of memory storing object",
	[CR_QUOTA] = "SERVER_ERROR out of memory: over the user's quota",
	[CR_ERROR] = "SERVER_ERROR store error",
};

/* ---- replies ------------------------------------------------------------ */

void
mc_reply_always(struct conn *c, const char *line)
{
	buf_appendstr(&c->ob, line);
	buf_append(&c->ob, "\r\n", 2);
}

/*
 * A reply that "noreply" silences, errors included, as in memcached; a
 * meta command's q silences its nominal replies only, never an error.
 */
void
mc_reply(struct conn *c, const struct mc_request *r, const char *line)
{
	if (!r->noreply || (r->verb >= MV_MG && r->verb <= MV_ME))
		mc_reply_always(c, line);
}

/*
 * The command layer's refusals, the same for every command: 1 if rc was
 * one and has been answered.
 */
int
mc_refused(struct conn *c, const struct mc_request *r, int rc)
{
	switch (rc) {
	case CR_GONE:
		mc_reply_always(c, "SERVER_ERROR account removed");
		c->closing = 1;
		return 1;
	case CR_DENIED:
		mc_reply(c, r, "CLIENT_ERROR denied not a manager");
		return 1;
	case CR_NO_TARGET:
		mc_reply(c, r, "CLIENT_ERROR denied no such user");
		return 1;
	case CR_LOGIN_REQUIRED:
		mc_reply_always(c, "CLIENT_ERROR unauthenticated");
		return 1;
	default:
		return 0;
	}
}

/*
 * memcached's exptime: 0 never; up to 30 days, seconds from now; more, a Unix
 * time; negative, already expired (1 is a Unix time long past).
 */
uint32_t
mc_abs_exptime(int32_t e)
{
	if (e == 0)
		return 0;
	if (e < 0)
		return 1;
	if (e <= MC_REL_MAX)
		return (uint32_t)(time(NULL) + e);
	return (uint32_t)e;
}

static int
expired(uint32_t exptime)
{
	return exptime != 0 && exptime <= (uint32_t)time(NULL);
}

/* ---- login -------------------------------------------------------------- */

/* "<user>[:<store>] <secret>": a manager may name another user's store. */
static void
do_auth(struct conn *c, const struct mc_request *r)
{
	const char *colon;
	size_t nlen;
	int rc;

	if (r->verb == MV_UNAUTH) {
		mc_reply_always(c, "CLIENT_ERROR unauthenticated");
		return;
	}
	if (r->too_large) {
		cmd_auth_failure(&c->cl);
		mc_reply_always(c, "CLIENT_ERROR authentication failure");
		return;
	}
	colon = memchr(r->key, ':', r->klen);
	nlen = colon ? (size_t)(colon - r->key) : r->klen;
	rc = cmd_login_as(&c->cl, r->key, nlen, colon ? colon + 1 : r->key,
	    colon ? r->klen - nlen - 1 : nlen, r->data, r->vlen);
	if (rc == CR_PENDING)
		c->paused = 1;	/* the rest waits for the answer */
	else
		mc_login_done(c, rc);
}

/* The reply to a login, now or when a helper answers. */
void
mc_login_done(struct conn *c, int rc)
{
	switch (rc) {
	case CR_OK:
		mc_reply_always(c, "STORED");
		break;
	case CR_DENIED:
		mc_reply_always(c, "CLIENT_ERROR denied not a manager");
		break;
	case CR_NO_TARGET:
		mc_reply_always(c, "CLIENT_ERROR denied no such user");
		break;
	case CR_LOGIN_BUSY:
		mc_reply_always(c, "SERVER_ERROR busy login in progress from this "
		    "address");
		break;
	default:
		mc_reply_always(c, "CLIENT_ERROR authentication failure");
		break;
	}
}

/* ---- retrieval: get, gets, gat, gats ------------------------------------ */

static void
emit_value(void *ctx, const struct item_view *v)
{
	struct conn *c = ctx;

	buf_reserve(&c->ob, v->klen + v->vlen + 64);
	buf_append(&c->ob, "VALUE ", 6);
	buf_append(&c->ob, v->key, v->klen);
	buf_append(&c->ob, " ", 1);
	buf_append_u64(&c->ob, v->flags);
	buf_append(&c->ob, " ", 1);
	buf_append_u64(&c->ob, v->vlen);
	if (c->mc.get_cas) {
		buf_append(&c->ob, " ", 1);
		buf_append_u64(&c->ob, v->cas);
	}
	buf_append(&c->ob, "\r\n", 2);
	buf_append(&c->ob, v->value, v->vlen);
	buf_append(&c->ob, "\r\n", 2);
}

static void
get_start(struct conn *c, const struct mc_request *r)
{
	struct mc_state *m = &c->mc;

	m->get_active = 1;
	m->get_cas = r->verb == MV_GETS || r->verb == MV_GATS;
	m->get_touch = r->verb == MV_GAT || r->verb == MV_GATS;
	m->get_exptime = mc_abs_exptime(r->exptime);
	m->get_flushed = 0;
	m->get_denied = 0;
	m->get_mark = buf_avail(&c->ob);	/* ob may be compacted: relative */
	cmd_begin(&c->cl, verb_name[r->verb]);
}

/* One key of the line; after a refusal the rest of the line gets nothing. */
static void
get_one(struct conn *c, const struct mc_request *r)
{
	struct mc_state *m = &c->mc;
	int rc;

	if (m->get_denied)
		return;
	if (!m->get_touch)
		rc = cmd_get(&c->cl, r->key, r->klen, emit_value, c);
	else if (expired(m->get_exptime)) {
		/* memcached's gat returns the item, then lets a past expiry
		 * end it. */
		rc = cmd_get(&c->cl, r->key, r->klen, emit_value, c);
		if (rc == CR_OK)
			rc = cmd_touch(&c->cl, r->key, r->klen, m->get_exptime,
			    NULL, NULL);
	} else
		rc = cmd_touch(&c->cl, r->key, r->klen, m->get_exptime,
		    emit_value, c);
	if (rc == CR_GONE || rc == CR_DENIED || rc == CR_NO_TARGET ||
	    rc == CR_LOGIN_REQUIRED)
		m->get_denied = rc;
}

static void
get_end(struct conn *c, const struct mc_request *r, const char *error)
{
	struct mc_state *m = &c->mc;

	if (error != NULL) {
		/* A bad key: the values not yet handed to the core are taken
		 * back and memcached's error replaces them. */
		if (!m->get_flushed && m->get_mark <= buf_avail(&c->ob))
			c->ob.len = c->ob.off + m->get_mark;
		mc_reply_always(c, error);
	} else if (m->get_denied) {
		/* Answered as the caller's role now allows. */
		if (!mc_refused(c, r, m->get_denied))
			mc_reply_always(c, "SERVER_ERROR store error");
	} else
		/* "get" alone is memcached's ERROR; "gat 10" alone: END. */
		mc_reply_always(c, r->ntokens == 0 ? "ERROR" : "END");
	m->get_active = 0;
	cmd_end(&c->cl);
}

/* ---- storage: set, add, replace, append, prepend, cas -------------------- */

static void
do_update(struct conn *c, const struct mc_request *r)
{
	struct store_write w;
	int rc;

	if (r->too_large) {
		/* A failed set leaves no stale value behind (memcached
		 * unlinks it too). */
		if (r->verb == MV_SET)
			(void)cmd_del(&c->cl, r->key, r->klen);
		mc_reply(c, r, "SERVER_ERROR object too large for cache");
		return;
	}
	if (r->bad_chunk) {
		mc_reply(c, r, "CLIENT_ERROR bad data chunk");
		return;
	}
	memset(&w, 0, sizeof(w));
	w.mode = update_mode[r->verb];
	w.flags = r->flags;
	w.exptime = mc_abs_exptime(r->exptime);
	w.cas = r->cas;
	rc = cmd_put(&c->cl, r->key, r->klen, r->data, r->vlen, &w, NULL);
	if (mc_refused(c, r, rc))
		return;
	if (r->verb == MV_SET && (rc == CR_FULL || rc == CR_QUOTA ||
	    rc == CR_TOO_LARGE))
		(void)cmd_del(&c->cl, r->key, r->klen);
	if (rc < 0 || rc > CR_ERROR || store_replies[rc] == NULL)
		rc = CR_ERROR;
	mc_reply(c, r, store_replies[rc]);
}

/* ---- the other commands ------------------------------------------------- */

static void
do_arith(struct conn *c, const struct mc_request *r)
{
	char num[24];
	uint64_t result;
	int rc;

	rc = cmd_arith(&c->cl, r->key, r->klen, r->verb == MV_INCR, r->delta,
	    &result);
	if (mc_refused(c, r, rc))
		return;
	switch (rc) {
	case CR_OK:
		snprintf(num, sizeof(num), "%" PRIu64, result);
		mc_reply(c, r, num);
		break;
	case CR_NOT_FOUND:
		mc_reply(c, r, "NOT_FOUND");
		break;
	case CR_NOT_NUMBER:
		mc_reply(c, r, "CLIENT_ERROR cannot increment or decrement "
		    "non-numeric value");
		break;
	case CR_FULL:
		mc_reply(c, r, "SERVER_ERROR out of memory");
		break;
	default:
		mc_reply(c, r, "SERVER_ERROR store error");
		break;
	}
}

/* A complete request other than a retrieval line. */
static void
do_request(struct conn *c, const struct mc_request *r)
{
	int rc;

	switch (r->verb) {
	case MV_VERSION:
		mc_reply_always(c, "VERSION " MC_VERSION);
		return;
	case MV_BINARY:
		mc_binary(c, r);
		return;
	case MV_QUIT:
		c->closing = 1;
		return;
	case MV_VERBOSITY:
		/* Accepted and ignored: kvstored's log level is its -v. */
		mc_reply(c, r, "OK");
		return;
	default:
		break;
	}
	cmd_begin(&c->cl, verb_name[r->verb]);
	switch (r->verb) {
	case MV_SET: case MV_ADD: case MV_REPLACE: case MV_APPEND:
	case MV_PREPEND: case MV_CAS:
		do_update(c, r);
		break;
	case MV_DELETE:
		rc = cmd_del(&c->cl, r->key, r->klen);
		if (!mc_refused(c, r, rc))
			mc_reply(c, r, rc == CR_OK ? "DELETED" : "NOT_FOUND");
		break;
	case MV_INCR:
	case MV_DECR:
		do_arith(c, r);
		break;
	case MV_TOUCH:
		rc = cmd_touch(&c->cl, r->key, r->klen, mc_abs_exptime(r->exptime),
		    NULL, NULL);
		if (!mc_refused(c, r, rc))
			mc_reply(c, r, rc == CR_OK ? "TOUCHED" : "NOT_FOUND");
		break;
	case MV_FLUSH_ALL:
		/* A delay: as an exptime, relative up to 30 days; 0 or
		 * less: now. */
		rc = cmd_flush(&c->cl, r->exptime > 0 ?
		    (int64_t)mc_abs_exptime(r->exptime) : 0);
		if (!mc_refused(c, r, rc))
			mc_reply(c, r, "OK");
		break;
	case MV_STATS:
		mc_stats(c, r);
		break;
	case MV_LRU_CRAWLER:
		mc_crawler(c, r);
		break;
	case MV_MG: case MV_MS: case MV_MD: case MV_MA: case MV_MN:
	case MV_ME:
		mc_meta(c, r);
		break;
	default:
		mc_reply_always(c, "ERROR");
		break;
	}
	cmd_end(&c->cl);
}

/* The first key of a get line ("get", "gets", "mg"), or 0. */
static size_t
first_key(const char *p, const char *nl, const char **key)
{
	const char *e;

	if (nl - p > 4 && memcmp(p, "get ", 4) == 0)
		p += 4;
	else if (nl - p > 5 && memcmp(p, "gets ", 5) == 0)
		p += 5;
	else if (nl - p > 3 && memcmp(p, "mg ", 3) == 0)
		p += 3;
	else
		return 0;
	while (p < nl && *p == ' ')
		p++;
	/* A hint only: a CR inside a key warms a wrong bucket, no more. */
	if ((e = memchr(p, ' ', (size_t)(nl - p))) == NULL)
		e = nl;
	if (e > p && e[-1] == '\r')
		e--;
	*key = p;
	return (size_t)(e - p) <= KV_KEY_MAX ? (size_t)(e - p) : 0;
}

/*
 * Pipelined gets, looked up one after another, wait on one cache miss after
 * another: the stripe lock, the bucket, the item (perf put nearly a quarter
 * of an event worker's time there).  Before the next lines are served, the
 * store is told their keys, so that the misses overlap.  Only where two or
 * more complete lines wait within WARM_SCAN bytes; returns the bytes covered,
 * which are not looked at again until the parser has consumed them.  A
 * hint, not a parse: a data block that looks like a get line costs a
 * wasted prefetch, nothing else.  Called at the start of a request, never
 * inside a multi-key get or before a binary request's header.
 */
#define WARM_SCAN	4096

static size_t
warm_ahead(struct conn *c)
{
	struct store_key keys[STORE_PREFETCH_MAX];
	const char *head = buf_head(&c->ib), *p = head, *end, *nl;
	size_t avail = buf_avail(&c->ib);
	unsigned n = 0, lines = 0;

	end = head + (avail < WARM_SCAN ? avail : WARM_SCAN);
	/* A request alone, as without pipelining, has none to warm: not
	 * again until it is consumed. */
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL || memchr(nl + 1, '\n', (size_t)(end - nl - 1)) == NULL)
		return (size_t)(end - head);
	while (lines < STORE_PREFETCH_MAX &&
	    (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		const char *key;

		if ((keys[n].len = first_key(p, nl, &key)) > 0)
			keys[n++].key = key;
		lines++;
		p = nl + 1;
	}
	if (n > 1)
		cmd_prefetch(&c->cl, keys, n);
	return (size_t)(p - head);
}

/*
 * Answer every complete memcached request in the input buffer, until the
 * output bound: then 1, and the core calls again once replies have gone.
 */
int
mc_batch(struct conn *c)
{
	struct mc_state *m = &c->mc;
	struct mc_limits lim;
	struct mc_request r;
	int st, rc = 0;
	unsigned turn = 0;
	size_t warm = 0;		/* input bytes warm_ahead covered */

	while (!c->closing) {
		if (buf_avail(&c->ob) >= CONN_OUT_MAX) {
			rc = buf_avail(&c->ib) > 0 || m->dump ? 1 : 0;
			break;
		}
		if (conn_turn_over(c, &turn)) {	/* keys count too */
			rc = buf_avail(&c->ib) > 0 || m->dump ? 2 : 0;
			break;
		}
		if (m->dump) {
			/* A listing goes on before the next request. */
			(void)mc_dump_step(c);
			continue;
		}
		if (c->discard > 0 || c->skip_line)
			warm = 0;	/* what it covered is being dropped */
		if (conn_drop_garbage(c) || buf_avail(&c->ib) == 0)
			break;
		lim.logged_in = c->cl.user != 0;
		/* The first line, and every line before login: not HTTP. */
		if (!m->parser.in_get && (!lim.logged_in || c->requests == 0) &&
		    conn_refuse_http(c))
			break;
		lim.value_max = lim.logged_in ? cmd_value_max(&c->cl) :
		    MC_AUTH_MAX;
		if (warm == 0 && lim.logged_in && !m->parser.in_get &&
		    (unsigned char)*buf_head(&c->ib) != MC_BIN_MAGIC)
			warm = warm_ahead(c);
		st = mc_parse(&m->parser, buf_head(&c->ib), buf_avail(&c->ib),
		    &lim, &r);
		buf_consume(&c->ib, r.consumed);
		warm -= warm < r.consumed ? warm : r.consumed;
		c->discard = r.discard;
		c->skip_line = r.skip_line;
		switch (st) {
		case MCP_MORE:
			goto out;
		case MCP_CLOSE:
			mc_reply_always(c, r.error);
			c->closing = 1;
			break;
		case MCP_ERROR:
			if (r.error_always || !r.noreply)
				mc_reply_always(c, r.error);
			c->requests++;
			break;
		case MCP_GET_ERROR:
			get_end(c, &r, r.error);
			c->requests++;
			break;
		case MCP_KEY:
			get_one(c, &r);
			break;
		case MCP_END:
			get_end(c, &r, NULL);
			c->requests++;
			break;
		case MCP_GET_ONE:
			get_start(c, &r);
			get_one(c, &r);
			get_end(c, &r, NULL);
			c->requests++;
			break;
		case MCP_REQUEST:
			if (r.verb == MV_BINARY) {
				mc_binary(c, &r);
				c->requests++;
			} else if (!lim.logged_in) {
				do_auth(c, &r);
				c->requests++;
				if (c->paused)
					goto out;
			} else if (m->parser.in_get)
				get_start(c, &r);
			else {
				do_request(c, &r);
				c->requests++;
			}
			break;
		}
	}
out:
	/* Replies of a line still open go out now: none can be taken back. */
	if (m->get_active)
		m->get_flushed = 1;
	return rc;
}
