/*
 * fuzz_protocol.c - libFuzzer target for the kvstore(7) parsers.
 *
 * proto_parse() is fed the input as a session would: request after request,
 * dropping what an error says to drop (the literal's data, then the rest of
 * the line), until it needs more bytes.  proto_parse_reply() gets the same
 * bytes as a client would.  Beyond "no crash, no sanitizer report", each
 * call is held to the parser's contract:
 *   - consumed <= len, and a request or an error always makes progress;
 *   - every argument lies inside the input or inside rq.scratch;
 *   - argc and the key/value limits match the verb;
 *   - an error names one of the stable kinds;
 *   - a reply's line and data lie inside the input.
 * A second check builds a request from the input's bytes with
 * proto_append_arg(), the client's encoder, and requires proto_parse() to
 * give the same bytes back (any key and value round-trip).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc \
 *       tests/fuzz/fuzz_protocol.c src/protocol.c src/buf.c src/log.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define VALUE_MAX	(1024 * 1024)

static struct request rq;	/* big (scratch): not on the stack */

#define REQUIRE(c) do { if (!(c)) { \
	fprintf(stderr, "fuzz_protocol: %s:%d: %s\n", __FILE__, __LINE__, #c); \
	abort(); } } while (0)

static int
inside(const char *p, size_t n, const char *lo, size_t len)
{
	return p >= lo && p <= lo + len && n <= (size_t)(lo + len - p);
}

static void
check_args(const char *buf, size_t len)
{
	int i;

	REQUIRE(rq.argc >= 0 && rq.argc <= PROTO_MAX_ARGS);
	for (i = 0; i < rq.argc; i++)
		REQUIRE(inside(rq.argv[i].p, rq.argv[i].len, buf, len) ||
		    inside(rq.argv[i].p, rq.argv[i].len, rq.scratch,
		    sizeof(rq.scratch)));
	switch (rq.verb) {
	case CMD_NONE:
		REQUIRE(rq.argc == 0);
		break;
	case CMD_GET: case CMD_DEL: case CMD_TTL: case CMD_USE:
		REQUIRE(rq.argc == 1);
		break;
	case CMD_PUT: case CMD_EXPIRE: case CMD_LOGIN: case CMD_REGISTER:
		REQUIRE(rq.argc == 2);
		break;
	case CMD_STATS: case CMD_PING: case CMD_QUIT: case CMD_WHOAMI:
		REQUIRE(rq.argc == 0);
		break;
	case CMD_GETS:
		REQUIRE(rq.argc == 1);
		break;
	case CMD_CAS:
		REQUIRE(rq.argc == 3);
		REQUIRE(rq.argv[2].len <= VALUE_MAX);
		break;
	case CMD_INCR: case CMD_DECR: case CMD_SCAN:
		REQUIRE(rq.argc == 1 || rq.argc == 2);
		break;
	case CMD_USERS:
		REQUIRE(rq.argc == 0 || rq.argc == 1);
		break;
	}
	if (rq.verb == CMD_GET || rq.verb == CMD_PUT || rq.verb == CMD_DEL ||
	    rq.verb == CMD_EXPIRE || rq.verb == CMD_TTL ||
	    rq.verb == CMD_GETS || rq.verb == CMD_CAS ||
	    rq.verb == CMD_INCR || rq.verb == CMD_DECR)
		REQUIRE(rq.argv[0].len >= 1 && rq.argv[0].len <= KV_KEY_MAX);
	if (rq.verb == CMD_PUT)
		REQUIRE(rq.argv[1].len <= VALUE_MAX);
	if (rq.verb != CMD_NONE)
		REQUIRE(rq.name != NULL);
}

static void
check_error(void)
{
	static const char *kinds[] = { "syntax ", "limit " };
	size_t i;

	REQUIRE(memchr(rq.error, '\0', sizeof(rq.error)) != NULL);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strncmp(rq.error, kinds[i], strlen(kinds[i])) == 0)
			return;
	REQUIRE(!"error of an unknown kind");
}

/* Parse requests as native_batch() does; returns the requests seen. */
static unsigned
parse_stream(const char *buf, size_t len, uint32_t value_max)
{
	uint64_t discard = 0;
	int skip_line = 0;
	unsigned n = 0;
	const char *lf;

	for (;;) {
		size_t drop;

		if (discard > 0) {
			drop = len < discard ? len : (size_t)discard;
			buf += drop;
			len -= drop;
			discard -= drop;
			if (discard > 0)
				return n;
		}
		if (skip_line) {
			if ((lf = memchr(buf, '\n', len)) == NULL)
				return n;
			len -= (size_t)(lf - buf) + 1;
			buf = lf + 1;
			skip_line = 0;
		}
		if (len == 0)
			return n;
		switch (proto_parse(buf, len, value_max, &rq)) {
		case PARSE_MORE:
			REQUIRE(len <= KV_LINE_MAX + 2 + 20 + (size_t)value_max);
			return n;
		case PARSE_OK:
			REQUIRE(rq.consumed > 0 && rq.consumed <= len);
			check_args(buf, len);
			break;
		case PARSE_ERROR:
			REQUIRE(rq.consumed <= len);
			/* An error with nothing consumed must still move on. */
			REQUIRE(rq.consumed > 0 || rq.skip_line ||
			    rq.discard > 0);
			check_error();
			discard = rq.discard;
			skip_line = rq.skip_line;
			break;
		default:
			REQUIRE(!"bad parse status");
		}
		buf += rq.consumed;
		len -= rq.consumed;
		n++;
	}
}

static void
parse_replies(const char *buf, size_t len)
{
	struct reply r;

	while (len > 0) {
		int rc = proto_parse_reply(buf, len, VALUE_MAX, &r);

		if (rc != PARSE_OK)
			return;
		REQUIRE(r.consumed > 0 && r.consumed <= len);
		REQUIRE(inside(r.line, r.linelen, buf, len));
		if (r.kind == REPLY_VALUE) {
			REQUIRE(r.datalen <= VALUE_MAX);
			REQUIRE(inside(r.data, r.datalen, buf, len));
		} else
			REQUIRE(r.data == NULL && r.datalen == 0);
		buf += r.consumed;
		len -= r.consumed;
	}
}

/* A scan reply's KEY line (the server's encoding) reads back to the key. */
static void
key_line(const char *key, size_t klen)
{
	struct buf b;
	char out[KV_KEY_MAX * 4 + 4];
	size_t olen;

	memset(&b, 0, sizeof(b));
	proto_append_arg(&b, key, klen, 0);
	REQUIRE(buf_avail(&b) - 1 <= sizeof(out));
	REQUIRE(proto_token(buf_head(&b) + 1, buf_avail(&b) - 1, out,
	    &olen) == 0);
	REQUIRE(olen == klen && memcmp(out, key, klen) == 0);
	buf_free(&b);
}

/* Any bytes as a token: no read or write outside, output no longer. */
static void
any_token(const char *p, size_t len)
{
	static char out[KV_LINE_MAX + 1];
	size_t olen = 0;

	if (len > sizeof(out))
		len = sizeof(out);
	if (proto_token(p, len, out, &olen) == 0)
		REQUIRE(olen <= len);
}

/* The client's encoding of put KEY VALUE parses back to KEY and VALUE. */
static void
round_trip(const uint8_t *data, size_t size)
{
	struct buf b;
	size_t klen, vlen;
	const char *key, *val;
	int rc;

	if (size < 1)
		return;
	klen = 1 + data[0] % KV_KEY_MAX;
	if (klen > size - 1)
		klen = size - 1;
	if (klen == 0)
		return;
	key = (const char *)data + 1;
	val = key + klen;
	vlen = size - 1 - klen;
	memset(&b, 0, sizeof(b));
	buf_append(&b, "put", 3);
	proto_append_arg(&b, key, klen, 0);
	proto_append_arg(&b, val, vlen, 1);
	buf_append(&b, "\r\n", 2);
	rc = proto_parse(buf_head(&b), buf_avail(&b), VALUE_MAX, &rq);
	if (rc != PARSE_OK) {
		fprintf(stderr, "round trip: %d %s\n", rc, rq.error);
		REQUIRE(rc == PARSE_OK);
	}
	REQUIRE(rq.verb == CMD_PUT && rq.argc == 2);
	REQUIRE(rq.consumed == buf_avail(&b));
	REQUIRE(rq.argv[0].len == klen &&
	    memcmp(rq.argv[0].p, key, klen) == 0);
	REQUIRE(rq.argv[1].len == vlen &&
	    (vlen == 0 || memcmp(rq.argv[1].p, val, vlen) == 0));
	buf_free(&b);
	key_line(key, klen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	/* An exact-size copy: ASan sees any read past the end. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		abort();
	memcpy(copy, data, size);
	parse_stream(copy, size, VALUE_MAX);
	parse_stream(copy, size, 512);	/* the before-login limit */
	parse_replies(copy, size);
	any_token(copy, size);
	free(copy);
	round_trip(data, size);
	return 0;
}
