/*
 * mcparse.c - memcached's text protocol, parsed (mcparse.h).
 *
 * Token counts, limits and error lines follow memcached 1.6's proto_text.c,
 * so that memcached's clients and conformance tools cannot tell the
 * difference where it matters; kvstore-memcached(7) lists the few places
 * where kvstore is stricter.  The parser never reads past the buffer and
 * never asks for more than it has checked: a data block is waited for only
 * after its length passed the value limit (a longer one is dropped as it
 * streams in), a line is at most MC_LINE_MAX bytes, except a retrieval
 * line, which is handed over key by key as it arrives.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "kvstore.h"
#include "mcparse.h"

#define MC_TOKENS	MC_META_MAX	/* kept per line, as memcached's */

struct token {
	const char	*p;
	size_t		 len;
};

/* Split on spaces, as memcached does; returns the count, storing at most max. */
static size_t
tokenize(const char *p, size_t len, struct token *t, size_t max)
{
	size_t i = 0, n = 0, start;
	const char *q;

	while (i < len) {
		while (i < len && p[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		/* memchr() takes a word at a time; a key is tens of bytes */
		q = memchr(p + i, ' ', len - i);
		i = q != NULL ? (size_t)(q - p) : len;
		if (n < max) {
			t[n].p = p + start;
			t[n].len = i - start;
		}
		n++;
	}
	return n;
}

/* Inline, so that a literal word's length is a constant and the compare
 * a few instructions: it is on every request's path. */
static inline __attribute__((always_inline)) int
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
int
mc_key_ok(const char *p, size_t len)
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
 * A request's verb, by its length and then one compare of that many bytes
 * (which the compiler does inline): it is on every request's path.
 */
#define IS(word)	(memcmp(p, word, sizeof(word) - 1) == 0)
static enum mc_verb
verb_of(const struct token *t)
{
	const char *p = t->p;

	switch (t->len) {
	case 2:
		if (p[0] != 'm')
			break;
		switch (p[1]) {
		case 'g': return MV_MG;
		case 's': return MV_MS;
		case 'd': return MV_MD;
		case 'a': return MV_MA;
		case 'n': return MV_MN;
		case 'e': return MV_ME;
		}
		break;
	case 3:
		return IS("get") ? MV_GET : IS("set") ? MV_SET : IS("gat") ?
		    MV_GAT : IS("add") ? MV_ADD : IS("cas") ? MV_CAS : MV_NONE;
	case 4:
		return IS("gets") ? MV_GETS : IS("gats") ? MV_GATS : IS("incr") ?
		    MV_INCR : IS("decr") ? MV_DECR : IS("quit") ? MV_QUIT :
		    MV_NONE;
	case 5:
		return IS("touch") ? MV_TOUCH : IS("stats") ? MV_STATS : MV_NONE;
	case 6:
		return IS("delete") ? MV_DELETE : IS("append") ? MV_APPEND :
		    MV_NONE;
	case 7:
		return IS("replace") ? MV_REPLACE : IS("prepend") ? MV_PREPEND :
		    IS("version") ? MV_VERSION : MV_NONE;
	case 9:
		return IS("flush_all") ? MV_FLUSH_ALL : IS("verbosity") ?
		    MV_VERBOSITY : MV_NONE;
	case 11:
		return IS("lru_crawler") ? MV_LRU_CRAWLER : MV_NONE;
	}
	return MV_NONE;
}
#undef IS

static int
is_retrieval(enum mc_verb v)
{
	return v == MV_GET || v == MV_GETS || v == MV_GAT || v == MV_GATS;
}

static int
is_touching(enum mc_verb v)
{
	return v == MV_GAT || v == MV_GATS;
}

static int
error(struct mc_request *r, const char *line, int always)
{
	r->error = line;
	r->error_always = always;
	return MCP_ERROR;
}

/* Drop the rest of a line: through lf, or up to a line feed still to come. */
static void
skip_rest(struct mc_request *r, const char *p, size_t avail, const char *lf)
{
	if (lf != NULL)
		r->consumed = (size_t)(lf - p) + 1;
	else {
		r->consumed = avail;
		r->skip_line = 1;
	}
}

/* ---- retrieval lines ------------------------------------------------------ */

/* The next key of the line in progress, its end, or a wait for more. */
static int
next_key(struct mc_parser *ps, const char *p, size_t avail,
    struct mc_request *r)
{
	const char *lf, *end, *q, *tok;

	r->verb = ps->get_verb;
	lf = memchr(p, '\n', avail);
	end = lf != NULL ? lf : p + avail;
	if (lf != NULL && end > p && end[-1] == '\r')
		end--;
	for (q = p; q < end && *q == ' '; q++)
		;
	if (q == end) {
		if (lf == NULL) {
			r->consumed = (size_t)(q - p);
			return MCP_MORE;
		}
		r->consumed = (size_t)(lf - p) + 1;
		r->ntokens = ps->get_tokens;
		ps->in_get = 0;
		return MCP_END;
	}
	tok = q;
	while (q < end && *q != ' ')
		q++;
	if (q == end && lf == NULL) {
		/* A key still arriving; its CR may be in it. */
		if ((size_t)(q - tok) > KV_KEY_MAX + 1)
			goto bad;
		r->consumed = (size_t)(tok - p);
		return MCP_MORE;
	}
	if (!mc_key_ok(tok, (size_t)(q - tok)))
		goto bad;
	ps->get_tokens++;
	r->key = tok;
	r->klen = (size_t)(q - tok);
	r->consumed = (size_t)(q - p);
	return MCP_KEY;
bad:
	ps->in_get = 0;
	r->error = "CLIENT_ERROR bad command line format";
	r->error_always = 1;
	skip_rest(r, p, avail, lf);
	return MCP_GET_ERROR;
}

/*
 * Can an unfinished retrieval line start?  Once its verb is complete (and
 * gat's exptime, which a line longer than any command may never finish).
 */
static int
retrieval_ready(enum mc_verb verb, const struct token *t, size_t nt,
    const char *p, size_t len)
{
	const struct token *last = is_touching(verb) ? &t[1] : &t[0];

	if (len > MC_LINE_MAX)
		return 1;
	if (is_touching(verb) && nt < 2)
		return 0;
	return last->p + last->len < p + len;
}

/*
 * A retrieval line's start: its verb (and gat's exptime) are here, its keys
 * may still be arriving.  len: the line so far, without its CRLF; lf: its
 * line feed, NULL while it is incomplete; verb, t and nt: the line's verb
 * and tokens, as mc_parse() found them.
 */
static int
get_start(struct mc_parser *ps, const char *p, size_t avail, size_t len,
    const char *lf, enum mc_verb verb, const struct token *t, size_t nt,
    struct mc_request *r)
{
	r->verb = verb;
	r->consumed = (size_t)(t[0].p + t[0].len - p);
	ps->get_tokens = 0;
	if (is_touching(r->verb) && nt >= 2) {
		/* An exptime still arriving is longer than any number. */
		if ((lf == NULL && t[1].p + t[1].len == p + len) ||
		    !parse_i32(&t[1], &r->exptime)) {
			r->consumed = 0;
			skip_rest(r, p, avail, lf);
			return error(r, "CLIENT_ERROR invalid exptime argument",
			    1);
		}
		ps->get_tokens = 1;
		r->consumed = (size_t)(t[1].p + t[1].len - p);
	}
	if (lf != NULL && nt == ps->get_tokens + 2 &&
	    mc_key_ok(t[nt - 1].p, t[nt - 1].len)) {
		/* The usual line, whole and of one good key: one answer for
		 * what would take three, with the same meaning. */
		r->key = t[nt - 1].p;
		r->klen = t[nt - 1].len;
		r->ntokens = nt - 1;
		r->consumed = (size_t)(lf - p) + 1;
		return MCP_GET_ONE;
	}
	ps->in_get = 1;
	ps->get_verb = r->verb;
	return MCP_REQUEST;
}

/* ---- storage and credentials ---------------------------------------------- */

/*
 * "<verb> <key> <flags> <exptime> <bytes> [<cas>] [noreply]" then the data
 * and CRLF.  Nothing is consumed until the data is all there.
 */
static int
storage(const char *p, size_t avail, size_t used, const struct token *t,
    size_t nt, const struct mc_limits *lim, struct mc_request *r)
{
	size_t want = r->verb == MV_CAS ? 6 : 5;
	int32_t vlen;

	r->consumed = used;
	if (nt != want && nt != want + 1)
		return error(r, "ERROR", 1);
	r->noreply = tok_is(&t[nt - 1], "noreply");
	if (!mc_key_ok(t[1].p, t[1].len) || !parse_u32(&t[2], &r->flags) ||
	    !parse_i32(&t[3], &r->exptime) || !parse_i32(&t[4], &vlen) ||
	    (r->verb == MV_CAS && !parse_u64(&t[5], &r->cas)) || vlen < 0 ||
	    vlen > INT_MAX - 2)
		/* As memcached: the data, if any, is read as a command. */
		return error(r, "CLIENT_ERROR bad command line format", 0);
	r->key = t[1].p;
	r->klen = t[1].len;
	r->vlen = (uint32_t)vlen;
	if (r->vlen > lim->value_max) {
		r->too_large = 1;
		r->discard = (uint64_t)r->vlen + 2;
		return MCP_REQUEST;
	}
	if (avail - used < (size_t)r->vlen + 2) {
		r->consumed = 0;
		return MCP_MORE;
	}
	r->data = p + used;
	r->bad_chunk = r->data[r->vlen] != '\r' || r->data[r->vlen + 1] != '\n';
	r->consumed = used + r->vlen + 2;
	return MCP_REQUEST;
}

/*
 * Before login only memcached -Y's "set <any> <any> <any> <n>" with
 * "user[:store] secret" as its data counts; anything else is MV_UNAUTH.
 */
static int
credentials(const char *p, size_t avail, size_t used, const struct token *t,
    size_t nt, struct mc_request *r)
{
	struct token cred[3];
	uint32_t size;

	r->consumed = used;
	if (nt < 5 || !tok_is(&t[0], "set") || !parse_u32(&t[4], &size)) {
		r->verb = MV_UNAUTH;
		/* Refused, but its data block is not a command. */
		if (nt >= 3 && tok_is(&t[0], "ms") && parse_u32(&t[2], &size))
			r->discard = (uint64_t)size + 2;
		else if (nt >= 5 && parse_u32(&t[4], &size) &&
		    (tok_is(&t[0], "add") || tok_is(&t[0], "replace") ||
		    tok_is(&t[0], "append") || tok_is(&t[0], "prepend") ||
		    tok_is(&t[0], "cas")))
			r->discard = (uint64_t)size + 2;
		return MCP_REQUEST;
	}
	r->verb = MV_AUTH;
	if (size > MC_AUTH_MAX) {
		/* Not credentials: drop them as they stream in. */
		r->too_large = 1;
		r->discard = (uint64_t)size + 2;
		return MCP_REQUEST;
	}
	if (avail - used < (size_t)size + 2) {
		r->consumed = 0;
		return MCP_MORE;
	}
	r->consumed = used + size + 2;
	if (p[used + size] != '\r' || p[used + size + 1] != '\n')
		return error(r, "CLIENT_ERROR bad command line termination", 1);
	if (tokenize(p + used, size, cred, 3) != 2)
		return error(r, "CLIENT_ERROR bad authentication token format",
		    1);
	r->key = cred[0].p;
	r->klen = cred[0].len;
	r->data = cred[1].p;
	r->vlen = (uint32_t)cred[1].len;
	return MCP_REQUEST;
}

/* ---- meta commands ------------------------------------------------------- */

static int
flag_bit(int ch)
{
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a';
	if (ch >= 'A' && ch <= 'Z')
		return 26 + ch - 'A';
	return -1;
}

int
mc_meta_has(const struct mc_meta *m, int flag)
{
	int b = flag_bit(flag);

	return b >= 0 && (m->seen >> b & 1);
}

static int
b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Standard base64, whole quads, '=' only at the end: the length, or 0. */
static size_t
b64_decode(const char *p, size_t len, char *out, size_t outlen)
{
	size_t i, n = 0;
	int j, v[4], pad;

	if (len == 0 || len % 4 != 0)
		return 0;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		for (j = 0; j < 4; j++) {
			if (p[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad > 0 || (v[j] = b64_value(
			    (unsigned char)p[i + j])) < 0)
				return 0;
		}
		if (n + 3 - (size_t)pad > outlen)
			return 0;
		out[n++] = (char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[n++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[n++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	return n;
}

/* Encode len bytes; out holds 4 * ((len + 2) / 3) bytes.  The length. */
size_t
mc_base64(const char *p, size_t len, char *out, size_t outlen)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *u = (const unsigned char *)p;
	size_t i, n = 0;
	uint32_t w;

	if (outlen < 4 * ((len + 2) / 3))
		return 0;
	for (i = 0; i < len; i += 3) {
		w = (uint32_t)u[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)u[i + 1] << 8;
		if (i + 2 < len)
			w |= u[i + 2];
		out[n++] = a[w >> 18 & 63];
		out[n++] = a[w >> 12 & 63];
		out[n++] = i + 1 < len ? a[w >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? a[w & 63] : '=';
	}
	return n;
}

/* A flag's token after its letter, as a number of memcached's kinds. */
static int
flag_i32(const struct token *t, int32_t *out)
{
	struct token v = { t->p + 1, t->len - 1 };

	return parse_i32(&v, out);
}

static int
flag_u64(const struct token *t, uint64_t *out)
{
	struct token v = { t->p + 1, t->len - 1 };

	return parse_u64(&v, out);
}

static int
flag_u32(const struct token *t, uint32_t *out)
{
	struct token v = { t->p + 1, t->len - 1 };

	return parse_u32(&v, out);
}

/*
 * memcached's _meta_flag_preparse(): a flag seen twice or unknown ends the
 * parse at once; a bad token marks an error (the last such message stands)
 * and the parse goes on.  Returns NULL, or the error line.
 */
static const char *
meta_flags(const struct token *t, size_t nt, size_t first,
    struct mc_request *r)
{
	static const char known[] = "bNTRlOPLkstcfvhuqFCMJDI";
	struct mc_meta *m = &r->meta;
	const char *err = NULL;
	size_t i;
	int bad = 0, b;

	m->delta = 1;
	for (i = first; i < nt && i < MC_TOKENS; i++) {
		int ch = (unsigned char)t[i].p[0];

		if ((b = flag_bit(ch)) >= 0 && (m->seen >> b & 1))
			return "CLIENT_ERROR duplicate flag";
		if (b < 0 || strchr(known, ch) == NULL)
			return "CLIENT_ERROR invalid flag";
		m->seen |= (uint64_t)1 << b;
		m->order[m->nflags++] = (char)ch;
		switch (ch) {
		case 'b':
			r->klen = b64_decode(r->key, r->klen, m->key,
			    sizeof(m->key));
			r->key = m->key;
			m->binary = 1;
			if (r->klen == 0) {
				err = "CLIENT_ERROR error decoding key";
				bad = 1;
			}
			break;
		case 'N':
		case 'T':
		case 'R':
			if (!flag_i32(&t[i], ch == 'N' ? &m->vivify :
			    ch == 'T' ? &m->ttl : &m->recache)) {
				err = "CLIENT_ERROR bad token in command line "
				    "format";
				bad = 1;
			}
			break;
		case 'O':
			m->opaque = t[i].p;
			m->olen = t[i].len;
			break;
		case 'F':
			if (!flag_u32(&t[i], &m->flags))
				bad = 1;
			break;
		case 'C':
			if (!flag_u64(&t[i], &m->cas)) {
				err = "CLIENT_ERROR bad token in command line "
				    "format";
				bad = 1;
			}
			break;
		case 'M':
			if (t[i].len != 2) {
				err = "CLIENT_ERROR incorrect length for M "
				    "token";
				bad = 1;
			} else
				m->mode = t[i].p[1];
			break;
		case 'J':
			if (!flag_u64(&t[i], &m->initial)) {
				err = "CLIENT_ERROR invalid numeric initial "
				    "value";
				bad = 1;
			}
			break;
		case 'D':
			if (!flag_u64(&t[i], &m->delta)) {
				err = "CLIENT_ERROR invalid numeric delta value";
				bad = 1;
			}
			break;
		default:
			break;
		}
	}
	if (bad)
		return err != NULL ? err : "CLIENT_ERROR bad command line format";
	return NULL;
}

/* The key of a meta line: length first, as memcached checks it. */
static int
meta_key(const struct token *t, struct mc_request *r)
{
	if (t->len > KV_KEY_MAX || !mc_key_ok(t->p, t->len))
		return 0;
	r->key = r->meta.raw = t->p;
	r->klen = r->meta.rawlen = t->len;
	return 1;
}

/*
 * "ms <key> <datalen> <flags>*", then the data.  Once the length is known
 * the data is dropped with any refusal, so that the next request is read
 * from the right byte.
 */
static int
meta_set(const char *p, size_t avail, size_t used, const struct token *t,
    size_t nt, const struct mc_limits *lim, struct mc_request *r)
{
	const char *err;
	int32_t vlen;

	r->consumed = used;
	if (nt < 2)
		return error(r, "ERROR", 1);
	if (nt < 3 || !meta_key(&t[1], r))
		return error(r, "CLIENT_ERROR bad command line format", 1);
	if (nt >= 20)
		return error(r, "CLIENT_ERROR options flags too long", 1);
	if (!parse_i32(&t[2], &vlen) || vlen < 0 || vlen > INT_MAX - 2)
		return error(r, "CLIENT_ERROR bad command line format", 1);
	r->vlen = (uint32_t)vlen;
	r->discard = (uint64_t)r->vlen + 2;
	if ((err = meta_flags(t, nt, 3, r)) != NULL)
		return error(r, err, 1);
	if (r->meta.olen > MC_OPAQUE_MAX)
		return error(r, "CLIENT_ERROR opaque token too long", 1);
	switch (r->meta.mode) {
	case 0: case 'E': case 'A': case 'P': case 'R': case 'S':
		break;
	default:
		return error(r, "CLIENT_ERROR invalid mode for ms M token", 1);
	}
	r->noreply = mc_meta_has(&r->meta, 'q');
	if (r->vlen > lim->value_max) {
		r->too_large = 1;
		return MCP_REQUEST;
	}
	r->discard = 0;
	if (avail - used < (size_t)r->vlen + 2) {
		r->consumed = 0;
		return MCP_MORE;
	}
	r->data = p + used;
	r->bad_chunk = r->data[r->vlen] != '\r' || r->data[r->vlen + 1] != '\n';
	r->consumed = used + r->vlen + 2;
	return MCP_REQUEST;
}

/* mg, md, ma, me, mn. */
static int
meta_other(const struct token *t, size_t nt, struct mc_request *r)
{
	const char *err;

	if (r->verb == MV_MN)
		return MCP_REQUEST;
	if (r->verb == MV_ME) {
		/* memcached's me reads one flag, b, and only as the first. */
		if (nt < 2 || !meta_key(&t[1], r))
			return error(r, "CLIENT_ERROR bad command line format",
			    1);
		if (nt >= 3 && tok_is(&t[2], "b")) {
			r->klen = b64_decode(r->key, r->klen, r->meta.key,
			    sizeof(r->meta.key));
			r->key = r->meta.key;
			r->meta.binary = 1;
			if (r->klen == 0)
				return error(r, "CLIENT_ERROR bad command line "
				    "format", 1);
		}
		return MCP_REQUEST;
	}
	if (nt < 2)
		return error(r, "ERROR", 1);
	if (!meta_key(&t[1], r))
		return error(r, "CLIENT_ERROR bad command line format", 1);
	if (nt >= 20)
		return error(r, r->verb == MV_MG ?
		    "CLIENT_ERROR options flags are too long" :
		    "CLIENT_ERROR options flags too long", 1);
	err = meta_flags(t, nt, 2, r);
	r->noreply = mc_meta_has(&r->meta, 'q');
	if (err == NULL && r->meta.olen > MC_OPAQUE_MAX)
		return error(r, "CLIENT_ERROR opaque token too long", 1);
	if (err != NULL)
		/* md and ma say one thing for every bad flag. */
		return error(r, r->verb == MV_MG ? err :
		    "CLIENT_ERROR invalid or duplicate flag", 1);
	if (r->verb == MV_MA) {
		switch (r->meta.mode) {
		case 0: case 'I': case '+': case 'D': case '-':
			break;
		default:
			return error(r, "CLIENT_ERROR invalid mode for ma M "
			    "token", 1);
		}
	}
	return MCP_REQUEST;
}

/* "lru_crawler metadump <all|hash|n,n...>" and the no-ops. */
static int
crawler(const struct token *t, size_t nt, struct mc_request *r)
{
	struct token id;
	const char *q, *end;
	uint32_t n;

	if (nt == 3 && tok_is(&t[1], "metadump")) {
		r->crawler = MC_CRAWL_METADUMP;
		if (tok_is(&t[2], "all") || tok_is(&t[2], "hash")) {
			r->classes = UINT64_MAX;
			return MCP_REQUEST;
		}
		for (q = t[2].p, end = t[2].p + t[2].len; q <= end; q++) {
			id.p = q;
			while (q < end && *q != ',')
				q++;
			id.len = (size_t)(q - id.p);
			if (!parse_u32(&id, &n) || n < 1 || n > 63)
				return error(r, "BADCLASS invalid class id", 1);
			r->classes |= (uint64_t)1 << (n - 1);
		}
		return MCP_REQUEST;
	}
	if (nt == 3 && (tok_is(&t[1], "tocrawl") || tok_is(&t[1], "sleep"))) {
		if (!parse_u32(&t[2], &n))
			return error(r, "CLIENT_ERROR bad command line format",
			    1);
		r->crawler = MC_CRAWL_NOOP;
		return MCP_REQUEST;
	}
	if ((nt == 3 && tok_is(&t[1], "crawl")) || (nt == 2 &&
	    (tok_is(&t[1], "enable") || tok_is(&t[1], "disable")))) {
		r->crawler = MC_CRAWL_NOOP;
		return MCP_REQUEST;
	}
	return error(r, "ERROR", 1);
}

/* "stats [<what> [args]]", memcached's subcommands and error lines. */
static int
stats(const struct token *t, size_t nt, struct mc_request *r)
{
	static const struct {
		const char	*name;
		enum mc_stats	 what;
	} subs[] = {
		{ "items", MS_ITEMS }, { "slabs", MS_SLABS },
		{ "settings", MS_SETTINGS }, { "sizes", MS_SIZES },
		{ "conns", MS_CONNS }, { "reset", MS_RESET },
	};
	size_t i;

	if (nt == 1)
		return MCP_REQUEST;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (tok_is(&t[1], subs[i].name)) {
			r->stats = subs[i].what;
			return MCP_REQUEST;
		}
	if (tok_is(&t[1], "detail")) {
		if (nt >= 3 && tok_is(&t[2], "on"))
			r->stats = MS_DETAIL_ON;
		else if (nt >= 3 && tok_is(&t[2], "off"))
			r->stats = MS_DETAIL_OFF;
		else if (nt >= 3 && tok_is(&t[2], "dump"))
			r->stats = MS_DETAIL_DUMP;
		else
			return error(r, "CLIENT_ERROR usage: stats detail "
			    "on|off|dump", 1);
		return MCP_REQUEST;
	}
	if (tok_is(&t[1], "cachedump")) {
		if (nt < 4)
			return error(r, "CLIENT_ERROR bad command line", 1);
		if (!parse_u32(&t[2], &r->dump_class) ||
		    !parse_u32(&t[3], &r->dump_limit))
			return error(r, "CLIENT_ERROR bad command line format",
			    1);
		if (r->dump_class >= 64)
			return error(r, "CLIENT_ERROR Illegal slab id", 1);
		r->stats = MS_CACHEDUMP;
		return MCP_REQUEST;
	}
	return error(r, "ERROR", 1);
}

/* ---- the other commands --------------------------------------------------- */

static int
command(const struct token *t, size_t nt, struct mc_request *r)
{
	int zero;

	switch (r->verb) {
	case MV_DELETE:
		if (nt < 2 || nt > 4)
			return error(r, "ERROR", 1);
		if (nt > 2) {
			/* "delete <key> 0" is an old form memcached takes. */
			zero = tok_is(&t[2], "0");
			r->noreply = tok_is(&t[nt - 1], "noreply");
			if (!((nt == 3 && (zero || r->noreply)) ||
			    (nt == 4 && zero && r->noreply)))
				return error(r, "CLIENT_ERROR bad command line "
				    "format.  Usage: delete <key> [noreply]", 0);
		}
		break;
	case MV_INCR:
	case MV_DECR:
	case MV_TOUCH:
		if (nt != 3 && nt != 4)
			return error(r, "ERROR", 1);
		r->noreply = tok_is(&t[nt - 1], "noreply");
		break;
	case MV_FLUSH_ALL:
		if (nt > 3)
			return error(r, "ERROR", 1);
		r->noreply = tok_is(&t[nt - 1], "noreply");
		if (nt != (r->noreply ? 2u : 1u) &&
		    !parse_i32(&t[1], &r->exptime))
			return error(r, "CLIENT_ERROR invalid exptime argument",
			    0);
		return MCP_REQUEST;
	case MV_VERBOSITY:
		if (nt != 2 && nt != 3)
			return error(r, "ERROR", 1);
		r->noreply = tok_is(&t[nt - 1], "noreply");
		if (!parse_u32(&t[1], &r->flags))
			return error(r, "CLIENT_ERROR bad command line format",
			    0);
		return MCP_REQUEST;
	case MV_STATS:
		return stats(t, nt, r);
	case MV_LRU_CRAWLER:
		return crawler(t, nt, r);
	case MV_MG: case MV_MD: case MV_MA: case MV_MN: case MV_ME:
		return meta_other(t, nt, r);
	case MV_VERSION:
	case MV_QUIT:
		return MCP_REQUEST;
	default:
		return error(r, "ERROR", 1);
	}
	/* delete, incr, decr, touch: a key, then a number for the last three. */
	if (!mc_key_ok(t[1].p, t[1].len))
		return error(r, "CLIENT_ERROR bad command line format", 0);
	r->key = t[1].p;
	r->klen = t[1].len;
	if ((r->verb == MV_INCR || r->verb == MV_DECR) &&
	    !parse_u64(&t[2], &r->delta))
		return error(r, "CLIENT_ERROR invalid numeric delta argument",
		    0);
	if (r->verb == MV_TOUCH && !parse_i32(&t[2], &r->exptime))
		return error(r, "CLIENT_ERROR invalid exptime argument", 0);
	return MCP_REQUEST;
}

int
mc_parse(struct mc_parser *ps, const char *p, size_t avail,
    const struct mc_limits *lim, struct mc_request *r)
{
	struct token t[MC_TOKENS];
	enum mc_verb verb;
	const char *lf;
	size_t len, nt, used;

	/* All but the decoded meta key: 250 bytes cleared per request. */
	memset(r, 0, offsetof(struct mc_request, meta) +
	    offsetof(struct mc_meta, key));
	if (ps->in_get)
		return next_key(ps, p, avail, r);
	if (avail > 0 && (unsigned char)p[0] == MC_BIN_MAGIC) {
		/* The binary protocol's magic: its header, then an answer. */
		if (avail < MC_BIN_HEADER)
			return MCP_MORE;
		r->verb = MV_BINARY;
		r->data = p;
		r->consumed = MC_BIN_HEADER;
		return MCP_REQUEST;
	}
	lf = memchr(p, '\n', avail);
	len = lf != NULL ? (size_t)(lf - p) : avail;
	if (lf != NULL && len > 0 && p[len - 1] == '\r')
		len--;
	nt = tokenize(p, len, t, MC_TOKENS);
	verb = nt > 0 ? verb_of(&t[0]) : MV_NONE;
	/* A retrieval line is answered key by key from its first key on. */
	if (lim->logged_in && is_retrieval(verb) &&
	    (lf != NULL || retrieval_ready(verb, t, nt, p, len)))
		return get_start(ps, p, avail, len, lf, verb, t, nt, r);
	if (lf == NULL && avail <= MC_LINE_MAX)
		return MCP_MORE;
	if (lf == NULL || len > MC_LINE_MAX) {
		/* memcached closes here too: no command line is this long. */
		r->error = "CLIENT_ERROR line too long";
		r->error_always = 1;
		r->consumed = avail;
		return MCP_CLOSE;
	}
	used = (size_t)(lf - p) + 1;
	if (!lim->logged_in)
		return credentials(p, avail, used, t, nt, r);
	if (nt == 0 || t[0].len < 2) {
		r->consumed = used;
		return error(r, "ERROR", 1);
	}
	r->verb = verb;
	switch (r->verb) {
	case MV_SET: case MV_ADD: case MV_REPLACE: case MV_APPEND:
	case MV_PREPEND: case MV_CAS:
		return storage(p, avail, used, t, nt, lim, r);
	case MV_MS:
		return meta_set(p, avail, used, t, nt, lim, r);
	default:
		r->consumed = used;
		return command(t, nt, r);
	}
}
