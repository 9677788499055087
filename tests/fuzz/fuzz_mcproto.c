/*
 * fuzz_mcproto.c - libFuzzer target for the memcached parser (mcparse.c).
 *
 * mc_parse() is fed the input as the front-end feeds it: request after
 * request, consuming what it says, dropping what a refusal says to drop
 * (data as it streams in, the rest of a line), key by key through long
 * retrieval lines, until it needs more bytes.  The first byte chooses
 * whether the connection starts logged in; a credentials set logs it in.
 * Beyond "no crash, no sanitizer report", each call is held to the
 * parser's contract:
 *   - consumed <= what it was given, and every answer but MCP_MORE makes
 *     progress (or says to skip the rest of a line);
 *   - keys, data and credentials lie inside the input; a key is 1 to 250
 *     bytes with no NUL, CR or LF; data is value_max bytes at most, and is
 *     followed by two bytes of input; a longer block is marked too large
 *     and dropped, never handed over;
 *   - KEY and END only inside a retrieval line, REQUEST never inside one;
 *     GET_ONE (a whole line of one key) never inside one, and nothing
 *     but blanks between its key and the line's end;
 *   - every error line is one of memcached's kinds;
 *   - meta commands: a key as above, or for b the decoded bytes in the
 *     request's own buffer; flags seen once each, in order; an opaque
 *     token inside the input; an ms refused after its length is known
 *     drops exactly its data block; a binary header is 24 bytes.
 * A second check builds "set <key> 0 0 <n>", "ms <key> <n> F7" and
 * "mg <base64 of any bytes> b v" from the input's bytes and requires the
 * parser to hand back the same key and data.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc \
 *       tests/fuzz/fuzz_mcproto.c src/mcparse.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore.h"
#include "mcparse.h"

#define VALUE_MAX	4096

#define REQUIRE(c) do { if (!(c)) { \
	fprintf(stderr, "fuzz_mcproto: %s:%d: %s\n", __FILE__, __LINE__, #c); \
	abort(); } } while (0)

static int
inside(const char *p, size_t n, const char *lo, size_t len)
{
	return p >= lo && p <= lo + len && n <= (size_t)(lo + len - p);
}

static void
check_error(const struct mc_request *r)
{
	REQUIRE(r->error != NULL);
	REQUIRE(strcmp(r->error, "ERROR") == 0 ||
	    strncmp(r->error, "CLIENT_ERROR ", 13) == 0 ||
	    strcmp(r->error, "BADCLASS invalid class id") == 0 ||
	    strncmp(r->error, "SERVER_ERROR ", 13) == 0);
}

static int
is_retrieval_verb(enum mc_verb v)
{
	return v == MV_GET || v == MV_GETS || v == MV_GAT || v == MV_GATS;
}

/* After a line's last key: spaces, perhaps a CR, then its LF at lf. */
static int
line_rest_blank(const char *q, const char *lf)
{
	if (q < lf && lf[-1] == '\r')
		lf--;
	while (q < lf && *q == ' ')
		q++;
	return q == lf;
}

static void
check_key(const struct mc_request *r, const char *p, size_t n)
{
	REQUIRE(r->key != NULL && inside(r->key, r->klen, p, n));
	REQUIRE(mc_key_ok(r->key, r->klen));
}

/* A meta command's key and flags. */
static void
check_meta(const struct mc_request *r, const char *p, size_t n)
{
	const struct mc_meta *m = &r->meta;
	size_t i;

	if (r->verb == MV_MN)
		return;
	if (m->binary) {
		REQUIRE(r->key == m->key && r->klen >= 1 &&
		    r->klen <= KV_KEY_MAX * 3 / 4);
		REQUIRE(inside(m->raw, m->rawlen, p, n) && m->rawlen <= KV_KEY_MAX);
	} else
		check_key(r, p, n);
	REQUIRE(m->nflags < MC_META_MAX);
	for (i = 0; i < m->nflags; i++)
		REQUIRE(mc_meta_has(m, m->order[i]));
	if (m->opaque != NULL)
		REQUIRE(inside(m->opaque, m->olen, p, n) &&
		    m->olen <= MC_OPAQUE_MAX && m->opaque[0] == 'O');
	if (r->verb == MV_MA)
		REQUIRE(strchr("I+D-", m->mode) != NULL);
	if (r->verb == MV_MS)
		REQUIRE(strchr("EAPRS", m->mode) != NULL);
}

static void
check_request(const struct mc_request *r, const char *p, size_t n,
    const struct mc_limits *lim)
{
	REQUIRE(r->verb > MV_NONE && r->verb <= MV_UNAUTH);
	REQUIRE(r->verb == MV_BINARY || (lim->logged_in ?
	    (r->verb != MV_AUTH && r->verb != MV_UNAUTH) :
	    (r->verb == MV_AUTH || r->verb == MV_UNAUTH)));
	switch (r->verb) {
	case MV_BINARY:
		REQUIRE(r->data == p && (unsigned char)p[0] == 0x80 &&
		    r->consumed == MC_BIN_HEADER && n >= MC_BIN_HEADER);
		break;
	case MV_MS:
		check_meta(r, p, n);
		if (r->too_large) {
			REQUIRE(r->vlen > lim->value_max && r->data == NULL);
			REQUIRE(r->discard == (uint64_t)r->vlen + 2);
		} else {
			REQUIRE(r->vlen <= lim->value_max && !r->discard);
			REQUIRE(inside(r->data, (size_t)r->vlen + 2, p, n));
			REQUIRE(r->consumed == (size_t)(r->data - p) + r->vlen + 2);
		}
		break;
	case MV_MG: case MV_MD: case MV_MA: case MV_ME: case MV_MN:
		check_meta(r, p, n);
		REQUIRE(!r->discard);
		break;
	case MV_STATS:
		REQUIRE(r->stats != MS_CACHEDUMP || r->dump_class < 64);
		break;
	case MV_LRU_CRAWLER:
		REQUIRE(r->crawler == MC_CRAWL_METADUMP ||
		    r->crawler == MC_CRAWL_NOOP);
		REQUIRE(r->crawler != MC_CRAWL_METADUMP || r->classes != 0);
		break;
	case MV_SET: case MV_ADD: case MV_REPLACE: case MV_APPEND:
	case MV_PREPEND: case MV_CAS:
		check_key(r, p, n);
		if (r->too_large) {
			REQUIRE(r->vlen > lim->value_max && r->data == NULL);
			REQUIRE(r->discard == (uint64_t)r->vlen + 2);
		} else {
			REQUIRE(r->vlen <= lim->value_max);
			REQUIRE(inside(r->data, (size_t)r->vlen + 2, p, n));
			REQUIRE(r->consumed == (size_t)(r->data - p) + r->vlen + 2);
		}
		break;
	case MV_DELETE: case MV_INCR: case MV_DECR: case MV_TOUCH:
		check_key(r, p, n);
		break;
	case MV_AUTH:
		if (!r->too_large) {
			REQUIRE(inside(r->key, r->klen, p, n) && r->klen > 0);
			REQUIRE(inside(r->data, r->vlen, p, n) && r->vlen > 0);
			REQUIRE(r->vlen <= MC_AUTH_MAX);
		} else
			REQUIRE(r->discard > MC_AUTH_MAX + 2);
		break;
	default:
		break;
	}
}

/* Drop what a refusal said to; 1 while the input is used up. */
static int
drop(const char **p, size_t *n, uint64_t *discard, int *skip)
{
	const char *lf;
	size_t k;

	if (*discard > 0) {
		k = *n < *discard ? *n : (size_t)*discard;
		*p += k;
		*n -= k;
		*discard -= k;
		if (*discard > 0)
			return 1;
	}
	if (*skip) {
		if ((lf = memchr(*p, '\n', *n)) == NULL)
			return 1;
		*n -= (size_t)(lf - *p) + 1;
		*p = lf + 1;
		*skip = 0;
	}
	return 0;
}

static void
run(const char *buf, size_t len)
{
	struct mc_parser ps;
	struct mc_limits lim;
	struct mc_request r;
	const char *p = buf + 1;
	size_t n = len - 1;
	uint64_t discard = 0;
	int skip = 0, st, was_in_get, steps = 0;

	memset(&ps, 0, sizeof(ps));
	lim.value_max = VALUE_MAX;
	lim.logged_in = buf[0] & 1;
	while (n > 0 && steps++ < 100000) {
		if (drop(&p, &n, &discard, &skip) || n == 0)
			break;
		was_in_get = ps.in_get;
		if (!lim.logged_in)
			lim.value_max = MC_AUTH_MAX;
		st = mc_parse(&ps, p, n, &lim, &r);
		REQUIRE(r.consumed <= n);
		switch (st) {
		case MCP_MORE:
			REQUIRE(!r.discard && !r.skip_line);
			if (r.consumed == 0)
				return;
			break;
		case MCP_REQUEST:
			REQUIRE(!was_in_get);
			REQUIRE(r.consumed > 0 || r.discard > 0);
			check_request(&r, p, n, &lim);
			if (r.verb == MV_AUTH && !r.too_large) {
				lim.logged_in = 1;
				lim.value_max = VALUE_MAX;
			}
			break;
		case MCP_KEY:
			REQUIRE(was_in_get && ps.in_get && r.consumed > 0);
			check_key(&r, p, n);
			break;
		case MCP_END:
			REQUIRE(was_in_get && !ps.in_get && r.consumed > 0);
			break;
		case MCP_GET_ONE:
			REQUIRE(!was_in_get && !ps.in_get && r.consumed > 0);
			REQUIRE(lim.logged_in && is_retrieval_verb(r.verb));
			/* the key, and gat's exptime before it */
			REQUIRE(r.ntokens == (r.verb == MV_GAT ||
			    r.verb == MV_GATS ? 2 : 1));
			check_key(&r, p, n);
			REQUIRE(p[r.consumed - 1] == '\n');
			REQUIRE(line_rest_blank(r.key + r.klen,
			    p + r.consumed - 1));
			break;
		case MCP_GET_ERROR:
			REQUIRE(was_in_get && !ps.in_get);
			/* fall through */
		case MCP_ERROR:
		case MCP_CLOSE:
			check_error(&r);
			/* Only an ms refused after its length drops data. */
			REQUIRE(!r.discard || r.verb == MV_MS);
			REQUIRE(r.consumed > 0 || r.skip_line);
			if (st == MCP_CLOSE)
				return;
			break;
		default:
			REQUIRE(0);
		}
		discard = r.discard;
		skip = r.skip_line;
		p += r.consumed;
		n -= r.consumed;
	}
}

/* Any key and value the grammar allows comes back as it went in. */
static void
round_trip(const char *buf, size_t len)
{
	static char req[KV_KEY_MAX + VALUE_MAX + 64];
	struct mc_parser ps;
	struct mc_limits lim = { VALUE_MAX, 1 };
	struct mc_request r;
	size_t klen = len < KV_KEY_MAX ? len : KV_KEY_MAX, i, vlen, at;

	if (klen == 0)
		return;
	for (i = 0; i < klen; i++)
		if (buf[i] == ' ' || !mc_key_ok(buf + i, 1))
			return;
	vlen = len - klen > VALUE_MAX ? VALUE_MAX : len - klen;
	at = (size_t)snprintf(req, sizeof(req), "set ");
	memcpy(req + at, buf, klen);
	at += klen;
	at += (size_t)snprintf(req + at, sizeof(req) - at, " 7 0 %zu\r\n", vlen);
	memcpy(req + at, buf + klen, vlen);
	at += vlen;
	memcpy(req + at, "\r\n", 2);
	at += 2;
	memset(&ps, 0, sizeof(ps));
	REQUIRE(mc_parse(&ps, req, at, &lim, &r) == MCP_REQUEST);
	REQUIRE(r.verb == MV_SET && r.flags == 7 && !r.too_large &&
	    !r.bad_chunk);
	REQUIRE(r.klen == klen && memcmp(r.key, buf, klen) == 0);
	REQUIRE(r.vlen == vlen && memcmp(r.data, buf + klen, vlen) == 0);
	REQUIRE(r.consumed == at);
}

/* The same through ms, and any bytes as a base64 key through mg. */
static void
round_trip_meta(const char *buf, size_t len)
{
	static char req[KV_KEY_MAX + VALUE_MAX + 64];
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct mc_parser ps;
	struct mc_limits lim = { VALUE_MAX, 1 };
	struct mc_request r;
	size_t klen = len < KV_KEY_MAX ? len : KV_KEY_MAX, i, vlen, at, bl;
	uint32_t w;

	if (klen == 0)
		return;
	/* any bytes, base64 */
	bl = klen > 186 ? 186 : klen;	/* 248 bytes of base64 */
	at = (size_t)snprintf(req, sizeof(req), "mg ");
	for (i = 0; i < bl; i += 3) {
		w = (uint32_t)(unsigned char)buf[i] << 16;
		if (i + 1 < bl)
			w |= (uint32_t)(unsigned char)buf[i + 1] << 8;
		if (i + 2 < bl)
			w |= (unsigned char)buf[i + 2];
		req[at++] = b64[w >> 18 & 63];
		req[at++] = b64[w >> 12 & 63];
		req[at++] = i + 1 < bl ? b64[w >> 6 & 63] : '=';
		req[at++] = i + 2 < bl ? b64[w & 63] : '=';
	}
	at += (size_t)snprintf(req + at, sizeof(req) - at, " b v\r\n");
	memset(&ps, 0, sizeof(ps));
	REQUIRE(mc_parse(&ps, req, at, &lim, &r) == MCP_REQUEST);
	REQUIRE(r.verb == MV_MG && r.meta.binary && mc_meta_has(&r.meta, 'v'));
	REQUIRE(r.klen == bl && memcmp(r.key, buf, bl) == 0);
	REQUIRE(r.consumed == at);

	for (i = 0; i < klen; i++)
		if (buf[i] == ' ' || !mc_key_ok(buf + i, 1))
			return;
	vlen = len - klen > VALUE_MAX ? VALUE_MAX : len - klen;
	at = (size_t)snprintf(req, sizeof(req), "ms ");
	memcpy(req + at, buf, klen);
	at += klen;
	at += (size_t)snprintf(req + at, sizeof(req) - at, " %zu F7 T0\r\n",
	    vlen);
	memcpy(req + at, buf + klen, vlen);
	at += vlen;
	memcpy(req + at, "\r\n", 2);
	at += 2;
	memset(&ps, 0, sizeof(ps));
	REQUIRE(mc_parse(&ps, req, at, &lim, &r) == MCP_REQUEST);
	REQUIRE(r.verb == MV_MS && r.meta.flags == 7 && !r.too_large &&
	    !r.bad_chunk && mc_meta_has(&r.meta, 'T') && r.meta.ttl == 0);
	REQUIRE(r.klen == klen && memcmp(r.key, buf, klen) == 0);
	REQUIRE(r.vlen == vlen && memcmp(r.data, buf + klen, vlen) == 0);
	REQUIRE(r.consumed == at);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	run((const char *)data, size);
	round_trip((const char *)data, size);
	round_trip_meta((const char *)data, size);
	return 0;
}
