/*
 * mcproto.c - memcached's text protocol over kvstore's per-user stores
 * (kvstore-memcached(7)).
 *
 * kvstored -M opens a listener whose sessions land here instead of in
 * session.c's native_batch().  Every request acts on one user's store, the
 * same items the native protocol sees: the account a -B listener is bound
 * to, or the one a memcached -Y style login named (a first "set" whose data
 * is "<user>[:<store>] <secret>").
 *
 * Replies, limits and token counts follow memcached 1.6's proto_text.c, so
 * that memcached's clients and conformance tools cannot tell the difference
 * where it matters; kvstore-memcached(7) lists the few places where kvstore
 * is stricter.  The parser never reads past the input buffer and never
 * allocates from a length the client declared: a value is buffered only
 * after its length passed the store's value limit, an oversized one is
 * thrown away as it streams in, and a line is at most MC_LINE_MAX bytes,
 * except retrieval lines, which are answered key by key as they arrive.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "kvstore.h"
#include "log.h"
#include "session.h"
#include "store.h"

/*
 * The protocol level this listener implements, and so what it claims: 1.6
 * answers "version" and "quit" whatever tokens follow them, and memccapable
 * checks exactly that when VERSION says 1.6 or later.  The "+kvstore" part
 * is semver build metadata: clients that parse major.minor.micro (libmemcached
 * stops at the '+') see 1.6.18, people see which server answered.
 */
#define MC_VERSION	"1.6.18+kvstore." KV_VERSION

#define MC_LINE_MAX	2048	/* a request line, as memcached's read check */
#define MC_TOKENS	8	/* kept per line; no command takes more than 7 */
#define MC_AUTH_MAX	256	/* bytes of "user[:store] secret" */
#define MC_REL_MAX	2592000	/* an exptime up to 30 days is relative */
#define MC_OUT_FLUSH	(256 * 1024)	/* write out mid-batch past this */

enum { MC_DONE = 0, MC_MORE = 1, MC_FAIL = -1 };

struct token {
	const char	*p;
	size_t		 len;
};

/*
 * One connection's state (a process serves one connection).  A retrieval
 * line may be longer than the input buffer holds: its keys are answered as
 * they arrive, and get_* remembers where the line stands.
 */
struct mc_state {
	int		 noreply;	/* this request ended in "noreply" */
	int		 get_active;	/* inside a get/gets/gat/gats line */
	int		 get_cas;	/* gets, gats: show the cas */
	int		 get_touch;	/* gat, gats: set the expiry */
	int		 get_flushed;	/* replies already written out */
	uint32_t	 get_exptime;
	uint32_t	 get_user;
	uint64_t	 get_tokens;	/* after the verb */
	size_t		 get_mark;	/* s->ob's length when the line began */
};

static struct mc_state mc;

/* ---- replies ------------------------------------------------------------ */

static void
reply_always(struct session *s, const char *line)
{
	buf_appendstr(&s->ob, line);
	buf_append(&s->ob, "\r\n", 2);
}

/* A reply that "noreply" silences, errors included, as in memcached. */
static void
reply(struct session *s, const char *line)
{
	if (!mc.noreply)
		reply_always(s, line);
}

static int
maybe_flush(struct session *s)
{
	if (buf_avail(&s->ob) <= MC_OUT_FLUSH)
		return 0;
	if (mc.get_active)
		mc.get_flushed = 1;
	return session_flush(s);
}

/* ---- tokens and numbers ------------------------------------------------- */

/* Split on spaces, as memcached does; returns the count, storing at most max. */
static size_t
tokenize(const char *p, size_t len, struct token *t, size_t max)
{
	size_t i = 0, n = 0, start;

	while (i < len) {
		while (i < len && p[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && p[i] != ' ')
			i++;
		if (n < max) {
			t[n].p = p + start;
			t[n].len = i - start;
		}
		n++;
	}
	return n;
}

static int
tok_is(const struct token *t, const char *word)
{
	size_t n = strlen(word);

	return t->len == n && memcmp(t->p, word, n) == 0;
}

/*
 * 1 to 250 bytes, no space (a token has none), NUL, CR or LF: the bytes that
 * would cut or end memcached's line.  Other control bytes pass, as they do
 * in memcached: memcaslap's keys start with eight bytes of 0x10 and up.
 */
static int
key_ok(const char *p, size_t len)
{
	if (len == 0 || len > KV_KEY_MAX)
		return 0;
	return memchr(p, '\0', len) == NULL && memchr(p, '\r', len) == NULL &&
	    memchr(p, '\n', len) == NULL;
}

static int
parse_u64(const struct token *t, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (t->len == 0 || t->len > 20)
		return 0;
	for (i = 0; i < t->len; i++) {
		unsigned d = (unsigned char)t->p[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return 1;
}

static int
parse_u32(const struct token *t, uint32_t *out)
{
	uint64_t v;

	if (!parse_u64(t, &v) || v > UINT32_MAX)
		return 0;
	*out = (uint32_t)v;
	return 1;
}

static int
parse_i32(const struct token *t, int32_t *out)
{
	struct token digits = *t;
	uint64_t v;
	int neg = 0;

	if (digits.len > 0 && digits.p[0] == '-') {
		neg = 1;
		digits.p++;
		digits.len--;
	}
	if (!parse_u64(&digits, &v) || v > (uint64_t)INT32_MAX + neg)
		return 0;
	*out = neg ? (int32_t)(-(int64_t)v) : (int32_t)v;
	return 1;
}

/*
 * memcached's exptime: 0 never; up to 30 days, seconds from now; more, a Unix
 * time; negative, already expired (1 is a Unix time long past).
 */
static uint32_t
abs_exptime(int32_t e)
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

/* ---- identity ----------------------------------------------------------- */

/*
 * The store a request acts on; -1 after replying why there is none.  As in
 * the native protocol, a manager's every request on another user's store,
 * and every refusal, is audited (verb and key; a retrieval line, its verb).
 */
/* The generation of the account session_acting_user() chose. */
static uint32_t
acting_gen(const struct session *s)
{
	return s->target != 0 ? s->target_gen : s->gen;
}

/* The store found the account deleted after acting_user() passed it. */
static void
reply_gone(struct session *s)
{
	if (s->target != 0)
		reply(s, "CLIENT_ERROR denied no such user");
	else {
		reply_always(s, "SERVER_ERROR account removed");
		s->closing = 1;
	}
}

static int
acting_user(struct session *s, const char *verb, const char *key,
    size_t klen, uint32_t *user)
{
	switch (session_acting_user(s, user)) {
	case 0:
		if (*user != s->user)
			audit(s->st, s->peer, s->name, s->role, verb,
			    s->target_name, key, klen);
		return 0;
	case SESSION_GONE:
		reply_always(s, "SERVER_ERROR account removed");
		s->closing = 1;
		return -1;
	case SESSION_NO_TARGET:
		audit(s->st, s->peer, s->name, s->role, verb, s->target_name,
		    key, klen);
		reply(s, "CLIENT_ERROR denied no such user");
		return -1;
	default:
		audit(s->st, s->peer, s->name, s->role, verb, s->target_name,
		    key, klen);
		reply(s, "CLIENT_ERROR denied not a manager");
		return -1;
	}
}

/*
 * Check "<user>[:<store>] <secret>" as the native login does (session.c's
 * session_check_secret: the delay after failures, an unknown user and a
 * wrong secret alike, counting and audit).  A manager may name another
 * user's store after a colon, as with the native "use"; anyone may name
 * their own.
 */
static void
login(struct session *s, const struct token *who, const struct token *secret)
{
	char name[KV_USER_MAX + 1], target[KV_USER_MAX + 1];
	char pass[KV_SECRET_MAX + 1];
	const char *colon = memchr(who->p, ':', who->len);
	size_t nlen = colon ? (size_t)(colon - who->p) : who->len;
	size_t tlen = colon ? who->len - nlen - 1 : 0;
	struct user_view v;
	uint32_t id, tid = 0;

	if (!auth_valid_name(who->p, nlen) || (colon != NULL &&
	    !auth_valid_name(colon + 1, tlen)) || secret->len > KV_SECRET_MAX ||
	    memchr(secret->p, '\0', secret->len) != NULL) {
		/* No account has such a name or secret: nothing to check. */
		store_note_auth_failure(s->st);
		reply_always(s, "CLIENT_ERROR authentication failure");
		return;
	}
	memcpy(name, who->p, nlen);
	name[nlen] = '\0';
	memcpy(target, colon ? colon + 1 : name, colon ? tlen : nlen);
	target[colon ? tlen : nlen] = '\0';
	memcpy(pass, secret->p, secret->len);
	pass[secret->len] = '\0';
	id = session_check_secret(s, name, pass, &v);
	explicit_bzero(pass, sizeof(pass));
	if (id == 0) {
		reply_always(s, "CLIENT_ERROR authentication failure");
		return;
	}
	/* The secret was right: from here on, saying why is no leak. */
	if (strcmp(target, name) != 0) {
		if (v.role != KV_ROLE_MANAGER) {
			audit(s->st, s->peer, name, v.role, "use", target,
			    NULL, 0);
			reply_always(s, "CLIENT_ERROR denied not a manager");
			return;
		}
		if ((tid = store_user_find(s->st, target)) == 0) {
			reply_always(s, "CLIENT_ERROR denied no such user");
			return;
		}
		audit(s->st, s->peer, name, v.role, "use", target, NULL, 0);
	}
	s->user = id;
	s->gen = v.gen;
	s->role = v.role;
	snprintf(s->name, sizeof(s->name), "%s", v.name);
	session_use(s, tid, target);
	reply_always(s, "STORED");
}

/*
 * Before login only memcached -Y's "set <any> <any> <any> <n>" with "user
 * secret" as its data is accepted; anything else is refused, line by line.
 */
static int
do_auth(struct session *s, const struct token *t, size_t nt, size_t used)
{
	struct token cred[3];
	const char *data;
	uint32_t size;

	if (nt < 5 || !tok_is(&t[0], "set") || !parse_u32(&t[4], &size)) {
		buf_consume(&s->ib, used);
		reply_always(s, "CLIENT_ERROR unauthenticated");
		return MC_DONE;
	}
	if (size > MC_AUTH_MAX) {
		/* Not credentials: drop them as they stream in. */
		buf_consume(&s->ib, used);
		s->discard = (uint64_t)size + 2;
		store_note_auth_failure(s->st);
		reply_always(s, "CLIENT_ERROR authentication failure");
		return MC_DONE;
	}
	if (buf_avail(&s->ib) < used + size + 2)
		return MC_MORE;
	data = buf_head(&s->ib) + used;
	if (data[size] != '\r' || data[size + 1] != '\n')
		reply_always(s, "CLIENT_ERROR bad command line termination");
	else if (tokenize(data, size, cred, 3) != 2)
		reply_always(s, "CLIENT_ERROR bad authentication token format");
	else
		login(s, &cred[0], &cred[1]);
	buf_consume(&s->ib, used + size + 2);
	return MC_DONE;
}

/* ---- retrieval: get, gets, gat, gats ------------------------------------ */

static void
emit_value(void *ctx, const struct item_view *v)
{
	struct session *s = ctx;

	buf_reserve(&s->ob, v->klen + v->vlen + 64);
	buf_append(&s->ob, "VALUE ", 6);
	buf_append(&s->ob, v->key, v->klen);
	if (mc.get_cas)
		buf_printf(&s->ob, " %" PRIu32 " %zu %" PRIu64 "\r\n", v->flags,
		    v->vlen, v->cas);
	else
		buf_printf(&s->ob, " %" PRIu32 " %zu\r\n", v->flags, v->vlen);
	buf_append(&s->ob, v->value, v->vlen);
	buf_append(&s->ob, "\r\n", 2);
}

static void
get_one(struct session *s, const char *key, size_t klen)
{
	if (!mc.get_touch) {
		store_get(s->st, mc.get_user, key, klen, emit_value, s);
		return;
	}
	/* memcached's gat returns the item, then lets a past expiry end it. */
	if (expired(mc.get_exptime)) {
		if (store_get(s->st, mc.get_user, key, klen, emit_value, s) ==
		    ST_OK)
			store_touch(s->st, mc.get_user, acting_gen(s), key,
			    klen, mc.get_exptime, NULL, NULL);
		return;
	}
	store_touch(s->st, mc.get_user, acting_gen(s), key, klen,
	    mc.get_exptime, emit_value, s);
}

/* Drop the rest of a line: through lf, or up to a line feed still to come. */
static void
skip_rest(struct session *s, const char *lf)
{
	if (lf != NULL)
		buf_consume(&s->ib, (size_t)(lf - buf_head(&s->ib)) + 1);
	else {
		buf_reset(&s->ib);
		s->skip_line = 1;
	}
}

/*
 * A bad key ends the line: the values already answered are taken back (when
 * they have not been written out yet) and memcached's error replaces them.
 */
static void
get_fail(struct session *s, const char *lf)
{
	if (!mc.get_flushed && mc.get_mark <= s->ob.len)
		s->ob.len = mc.get_mark;
	reply_always(s, "CLIENT_ERROR bad command line format");
	skip_rest(s, lf);
	mc.get_active = 0;
}

/* Answer the keys of the current retrieval line that have arrived. */
static int
get_keys(struct session *s)
{
	const char *p = buf_head(&s->ib), *lf, *end, *q, *tok;
	size_t avail = buf_avail(&s->ib);

	lf = memchr(p, '\n', avail);
	end = lf != NULL ? lf : p + avail;
	if (lf != NULL && end > p && end[-1] == '\r')
		end--;
	for (q = p;;) {
		while (q < end && *q == ' ')
			q++;
		if (q == end)
			break;
		tok = q;
		while (q < end && *q != ' ')
			q++;
		if (q == end && lf == NULL) {
			/* A key still arriving; its CR may be in it. */
			if ((size_t)(q - tok) > KV_KEY_MAX + 1) {
				get_fail(s, NULL);
				return MC_DONE;
			}
			q = tok;
			break;
		}
		if (!key_ok(tok, (size_t)(q - tok))) {
			get_fail(s, lf);
			return MC_DONE;
		}
		mc.get_tokens++;
		get_one(s, tok, (size_t)(q - tok));
		if (maybe_flush(s) == -1)
			return MC_FAIL;
	}
	if (lf == NULL) {
		buf_consume(&s->ib, (size_t)(q - p));
		return MC_MORE;
	}
	buf_consume(&s->ib, (size_t)(lf - p) + 1);
	mc.get_active = 0;
	/* "get" alone is memcached's ERROR; "gat 10" alone answers END. */
	reply_always(s, mc.get_tokens == 0 ? "ERROR" : "END");
	return MC_DONE;
}

/*
 * Start a retrieval line: its verb (and gat's exptime) are here, its keys
 * may still be arriving.  p and len: the line so far, without its CRLF; lf:
 * its line feed, NULL while it is incomplete.
 */
static int
get_start(struct session *s, const char *p, size_t len, const char *lf)
{
	struct token t[2];
	size_t nt, used;
	int32_t e = 0;

	nt = tokenize(p, len, t, 2);
	memset(&mc, 0, sizeof(mc));
	mc.get_cas = t[0].len == 4;			/* gets, gats */
	mc.get_touch = t[0].p[1] == 'a';		/* gat, gats */
	used = (size_t)(t[0].p + t[0].len - p);
	if (mc.get_touch && nt >= 2) {
		/* An exptime still arriving is longer than any number. */
		if ((lf == NULL && t[1].p + t[1].len == p + len) ||
		    !parse_i32(&t[1], &e)) {
			reply_always(s, "CLIENT_ERROR invalid exptime argument");
			skip_rest(s, lf);
			return MC_DONE;
		}
		mc.get_exptime = abs_exptime(e);
		mc.get_tokens = 1;
		used = (size_t)(t[1].p + t[1].len - p);
	}
	if (acting_user(s, mc.get_touch ? (mc.get_cas ? "gats" : "gat") :
	    (mc.get_cas ? "gets" : "get"), NULL, 0, &mc.get_user) == -1) {
		skip_rest(s, lf);
		return MC_DONE;
	}
	mc.get_active = 1;
	mc.get_mark = s->ob.len;
	buf_consume(&s->ib, used);
	return get_keys(s);
}

/* ---- storage: set, add, replace, append, prepend, cas -------------------- */

static const char *const update_verb[] = {
	[W_SET] = "set", [W_ADD] = "add", [W_REPLACE] = "replace",
	[W_APPEND] = "append", [W_PREPEND] = "prepend", [W_CAS] = "cas"
};

static void
store_reply(struct session *s, int rc)
{
	switch (rc) {
	case ST_OK:
		reply(s, "STORED");
		break;
	case ST_NOT_STORED:
		reply(s, "NOT_STORED");
		break;
	case ST_EXISTS:
		reply(s, "EXISTS");
		break;
	case ST_NOT_FOUND:
		reply(s, "NOT_FOUND");
		break;
	case ST_TOO_LARGE:
		reply(s, "SERVER_ERROR object too large for cache");
		break;
	case ST_FULL:
		reply(s, "SERVER_ERROR out of memory storing object");
		break;
	case ST_QUOTA:
		reply(s, "SERVER_ERROR out of memory: over the user's quota");
		break;
	case ST_NO_USER:
		reply_gone(s);
		break;
	default:
		reply(s, "SERVER_ERROR store error");
		break;
	}
}

/*
 * "<verb> <key> <flags> <exptime> <bytes> [<cas>] [noreply]" then the data
 * and CRLF.  The line stays in the buffer until its data is all there.
 */
static int
do_update(struct session *s, const struct token *t, size_t nt, size_t used,
    enum store_mode mode)
{
	size_t want = mode == W_CAS ? 6 : 5;
	struct store_write w;
	const char *data;
	uint32_t user;
	int32_t exptime, vlen;
	int rc;

	memset(&w, 0, sizeof(w));
	if (nt != want && nt != want + 1) {
		buf_consume(&s->ib, used);
		reply_always(s, "ERROR");
		return MC_DONE;
	}
	mc.noreply = tok_is(&t[nt - 1], "noreply");
	if (!key_ok(t[1].p, t[1].len) || !parse_u32(&t[2], &w.flags) ||
	    !parse_i32(&t[3], &exptime) || !parse_i32(&t[4], &vlen) ||
	    (mode == W_CAS && !parse_u64(&t[5], &w.cas)) || vlen < 0 ||
	    vlen > INT_MAX - 2) {
		/* As memcached: the data, if any, is read as a command. */
		buf_consume(&s->ib, used);
		reply(s, "CLIENT_ERROR bad command line format");
		return MC_DONE;
	}
	if ((uint32_t)vlen > store_value_max(s->st)) {
		/*
		 * Swallow the data as it streams in; a failed set leaves no
		 * stale value behind (memcached unlinks it too).
		 */
		if (mode == W_SET && session_acting_user(s, &user) == 0) {
			if (user != s->user)
				audit(s->st, s->peer, s->name, s->role, "set",
				    s->target_name, t[1].p, t[1].len);
			store_del(s->st, user, acting_gen(s), t[1].p,
			    t[1].len);
		}
		buf_consume(&s->ib, used);
		s->discard = (uint64_t)vlen + 2;
		reply(s, "SERVER_ERROR object too large for cache");
		return MC_DONE;
	}
	if (buf_avail(&s->ib) - used < (size_t)vlen + 2)
		return MC_MORE;
	data = buf_head(&s->ib) + used;
	if (data[vlen] != '\r' || data[vlen + 1] != '\n')
		reply(s, "CLIENT_ERROR bad data chunk");
	else if (acting_user(s, update_verb[mode], t[1].p, t[1].len,
	    &user) == 0) {
		w.mode = mode;
		w.exptime = abs_exptime(exptime);
		if (user == s->user) {
			w.quota_keys = s->cfg->quota_keys;
			w.quota_bytes = s->cfg->quota_bytes;
		}
		rc = store_put(s->st, user, acting_gen(s), t[1].p, t[1].len,
		    data, (size_t)vlen, &w, NULL);
		if (mode == W_SET && (rc == ST_FULL || rc == ST_QUOTA ||
		    rc == ST_TOO_LARGE))
			store_del(s->st, user, acting_gen(s), t[1].p,
			    t[1].len);
		store_reply(s, rc);
	}
	buf_consume(&s->ib, used + (size_t)vlen + 2);
	return MC_DONE;
}

/* ---- the other commands ------------------------------------------------- */

static void
do_delete(struct session *s, const struct token *t, size_t nt)
{
	uint32_t user;
	int zero;

	if (nt < 2 || nt > 4) {
		reply_always(s, "ERROR");
		return;
	}
	if (nt > 2) {
		/* "delete <key> 0" is an old form memcached still takes. */
		zero = tok_is(&t[2], "0");
		mc.noreply = tok_is(&t[nt - 1], "noreply");
		if (!((nt == 3 && (zero || mc.noreply)) ||
		    (nt == 4 && zero && mc.noreply))) {
			reply(s, "CLIENT_ERROR bad command line format.  "
			    "Usage: delete <key> [noreply]");
			return;
		}
	}
	if (!key_ok(t[1].p, t[1].len)) {
		reply(s, "CLIENT_ERROR bad command line format");
		return;
	}
	if (acting_user(s, "delete", t[1].p, t[1].len, &user) == -1)
		return;
	switch (store_del(s->st, user, acting_gen(s), t[1].p, t[1].len)) {
	case ST_OK:
		reply(s, "DELETED");
		break;
	case ST_NO_USER:
		reply_gone(s);
		break;
	default:
		reply(s, "NOT_FOUND");
		break;
	}
}

static void
do_arith(struct session *s, const struct token *t, size_t nt, int incr)
{
	char num[24];
	uint64_t delta, result;
	uint32_t user;

	if (nt != 3 && nt != 4) {
		reply_always(s, "ERROR");
		return;
	}
	mc.noreply = tok_is(&t[nt - 1], "noreply");
	if (!key_ok(t[1].p, t[1].len)) {
		reply(s, "CLIENT_ERROR bad command line format");
		return;
	}
	if (!parse_u64(&t[2], &delta)) {
		reply(s, "CLIENT_ERROR invalid numeric delta argument");
		return;
	}
	if (acting_user(s, incr ? "incr" : "decr", t[1].p, t[1].len,
	    &user) == -1)
		return;
	switch (store_arith(s->st, user, acting_gen(s), t[1].p, t[1].len,
	    incr, delta, &result)) {
	case ST_OK:
		snprintf(num, sizeof(num), "%" PRIu64, result);
		reply(s, num);
		break;
	case ST_NOT_FOUND:
		reply(s, "NOT_FOUND");
		break;
	case ST_NOT_NUMBER:
		reply(s, "CLIENT_ERROR cannot increment or decrement "
		    "non-numeric value");
		break;
	case ST_FULL:
		reply(s, "SERVER_ERROR out of memory");
		break;
	case ST_NO_USER:
		reply_gone(s);
		break;
	default:
		reply(s, "SERVER_ERROR store error");
		break;
	}
}

static void
do_touch(struct session *s, const struct token *t, size_t nt)
{
	uint32_t user;
	int32_t e;

	if (nt != 3 && nt != 4) {
		reply_always(s, "ERROR");
		return;
	}
	mc.noreply = tok_is(&t[nt - 1], "noreply");
	if (!key_ok(t[1].p, t[1].len)) {
		reply(s, "CLIENT_ERROR bad command line format");
		return;
	}
	if (!parse_i32(&t[2], &e)) {
		reply(s, "CLIENT_ERROR invalid exptime argument");
		return;
	}
	if (acting_user(s, "touch", t[1].p, t[1].len, &user) == -1)
		return;
	switch (store_touch(s->st, user, acting_gen(s), t[1].p, t[1].len,
	    abs_exptime(e), NULL, NULL)) {
	case ST_OK:
		reply(s, "TOUCHED");
		break;
	case ST_NO_USER:
		reply_gone(s);
		break;
	default:
		reply(s, "NOT_FOUND");
		break;
	}
}

/* flush_all empties the caller's store (or a manager's chosen one) only. */
static void
do_flush_all(struct session *s, const struct token *t, size_t nt)
{
	uint32_t user;
	int32_t delay = 0;

	if (nt > 3) {
		reply_always(s, "ERROR");
		return;
	}
	mc.noreply = tok_is(&t[nt - 1], "noreply");
	if (nt != (mc.noreply ? 2u : 1u) && !parse_i32(&t[1], &delay)) {
		reply(s, "CLIENT_ERROR invalid exptime argument");
		return;
	}
	if (delay > 0) {
		reply(s, "CLIENT_ERROR flush_all with a delay is not supported");
		return;
	}
	if (acting_user(s, "flush_all", NULL, 0, &user) == -1)
		return;
	store_flush_user(s->st, user);
	reply(s, "OK");
}

static void
do_verbosity(struct session *s, const struct token *t, size_t nt)
{
	uint32_t level;

	if (nt != 2 && nt != 3) {
		reply_always(s, "ERROR");
		return;
	}
	mc.noreply = tok_is(&t[nt - 1], "noreply");
	/* Accepted and ignored: kvstored's log level is its -v flag. */
	if (!parse_u32(&t[1], &level))
		reply(s, "CLIENT_ERROR bad command line format");
	else
		reply(s, "OK");
}

/* memcached's names where one fits; the acting store's items and bytes. */
static void
do_stats(struct session *s, size_t nt)
{
	struct store_stats ss;
	struct user_view v;
	time_t now = time(NULL);
	uint32_t user;

	if (nt != 1) {
		/* No sub-statistics; "stats noreply" is an error too. */
		reply_always(s, "ERROR");
		return;
	}
	if (acting_user(s, "stats", NULL, 0, &user) == -1)
		return;
	store_stats(s->st, &ss);
	if (store_user_get(s->st, user, &v) != ST_OK)
		memset(&v, 0, sizeof(v));
	buf_printf(&s->ob,
	    "STAT pid %ld\r\n"
	    "STAT uptime %" PRId64 "\r\n"
	    "STAT time %" PRId64 "\r\n"
	    "STAT version %s\r\n"
	    "STAT pointer_size %d\r\n"
	    "STAT curr_connections %" PRIu64 "\r\n"
	    "STAT total_connections %" PRIu64 "\r\n"
	    "STAT cmd_get %" PRIu64 "\r\n"
	    "STAT cmd_set %" PRIu64 "\r\n"
	    "STAT get_hits %" PRIu64 "\r\n"
	    "STAT get_misses %" PRIu64 "\r\n"
	    "STAT delete_hits %" PRIu64 "\r\n"
	    "STAT auth_errors %" PRIu64 "\r\n"
	    "STAT curr_items %" PRIu64 "\r\n"
	    "STAT bytes %" PRIu64 "\r\n"
	    "STAT limit_maxbytes %" PRIu64 "\r\n"
	    "STAT evictions 0\r\n"
	    "STAT kvstore_user %s\r\n"
	    "STAT kvstore_items %" PRIu64 "\r\n"
	    "STAT kvstore_bytes_used %" PRIu64 "\r\n"
	    "STAT kvstore_bytes_free %" PRIu64 "\r\n"
	    "STAT kvstore_value_max %" PRIu32 "\r\n"
	    "END\r\n",
	    (long)getpid(), (int64_t)now - ss.created, (int64_t)now,
	    MC_VERSION, (int)(sizeof(void *) * 8), ss.curr_connections,
	    ss.total_connections, ss.hits + ss.misses, ss.puts, ss.hits,
	    ss.misses, ss.dels, ss.auth_failures, v.keys, v.bytes,
	    ss.bytes_limit, v.name, ss.items, ss.bytes_used, ss.bytes_free,
	    ss.value_max);
}

/* ---- one request -------------------------------------------------------- */

static int
is_retrieval(const struct token *verb)
{
	return tok_is(verb, "get") || tok_is(verb, "gets") ||
	    tok_is(verb, "gat") || tok_is(verb, "gats");
}

/* A complete line (used bytes with its LF) other than a retrieval line. */
static int
dispatch(struct session *s, const struct token *t, size_t nt, size_t used)
{
	const struct token *v = &t[0];

	if (tok_is(v, "set"))
		return do_update(s, t, nt, used, W_SET);
	if (tok_is(v, "add"))
		return do_update(s, t, nt, used, W_ADD);
	if (tok_is(v, "replace"))
		return do_update(s, t, nt, used, W_REPLACE);
	if (tok_is(v, "append"))
		return do_update(s, t, nt, used, W_APPEND);
	if (tok_is(v, "prepend"))
		return do_update(s, t, nt, used, W_PREPEND);
	if (tok_is(v, "cas"))
		return do_update(s, t, nt, used, W_CAS);
	if (tok_is(v, "delete"))
		do_delete(s, t, nt);
	else if (tok_is(v, "incr") || tok_is(v, "decr"))
		do_arith(s, t, nt, v->p[0] == 'i');
	else if (tok_is(v, "touch"))
		do_touch(s, t, nt);
	else if (tok_is(v, "flush_all"))
		do_flush_all(s, t, nt);
	else if (tok_is(v, "verbosity"))
		do_verbosity(s, t, nt);
	else if (tok_is(v, "stats"))
		do_stats(s, nt);
	else if (tok_is(v, "version"))
		reply_always(s, "VERSION " MC_VERSION);
	else if (tok_is(v, "quit"))
		s->closing = 1;
	else
		reply_always(s, "ERROR");
	buf_consume(&s->ib, used);
	return MC_DONE;
}

static int
one_request(struct session *s)
{
	const char *p = buf_head(&s->ib), *lf;
	size_t avail = buf_avail(&s->ib), len;
	struct token t[MC_TOKENS];
	size_t nt;

	lf = memchr(p, '\n', avail);
	if (lf == NULL && avail <= MC_LINE_MAX)
		return MC_MORE;
	len = lf != NULL ? (size_t)(lf - p) : avail;
	if (lf != NULL && len > 0 && p[len - 1] == '\r')
		len--;
	mc.noreply = 0;
	nt = tokenize(p, len, t, MC_TOKENS);
	if (s->user != 0 && nt > 0 && is_retrieval(&t[0]) &&
	    (lf != NULL || t[0].p + t[0].len < p + len))
		return get_start(s, p, len, lf);
	if (lf == NULL || len > MC_LINE_MAX) {
		/* memcached closes here too: no command line is this long. */
		reply_always(s, "CLIENT_ERROR line too long");
		s->closing = 1;
		return MC_DONE;
	}
	if (s->user == 0)
		return do_auth(s, t, nt, (size_t)(lf - p) + 1);
	if (nt == 0 || t[0].len < 2) {
		skip_rest(s, lf);
		reply_always(s, "ERROR");
		return MC_DONE;
	}
	return dispatch(s, t, nt, (size_t)(lf - p) + 1);
}

/* Throw away what an earlier error said to; 1 while there is more to drop. */
static int
drop_garbage(struct session *s)
{
	const char *lf;
	size_t n;

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

/* Answer every complete memcached request in s->ib. */
int
mc_batch(struct session *s)
{
	int rc;

	if (s->proto_state == NULL) {
		memset(&mc, 0, sizeof(mc));
		s->proto_state = &mc;
	}
	while (!s->closing) {
		if (drop_garbage(s) || buf_avail(&s->ib) == 0)
			return 0;
		rc = mc.get_active ? get_keys(s) : one_request(s);
		if (rc == MC_FAIL)
			return -1;
		if (rc == MC_DONE)
			s->requests++;
		if (maybe_flush(s) == -1)
			return -1;
		if (rc == MC_MORE)
			return 0;
	}
	return 0;
}
