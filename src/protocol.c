/*
 * protocol.c - parse and format kvstore(7).
 *
 * proto_parse() is a pure function of a buffer: it reads at most one request
 * and says how many bytes it used, so a batch of pipelined requests is parsed
 * in place, and the fuzzer can call it directly.  A literal's data is never
 * scanned, only skipped by its length, so a 1 MiB value costs one memchr of
 * its request line however many reads it arrives in.
 */
#include <stdio.h>
#include <string.h>

#include "protocol.h"

struct verbspec {
	char		 name[12];	/* fixed size: name[len] is always readable */
	enum verb	 verb;
	int		 argmin, argmax;
	int		 keyarg;	/* argv index of a key, -1 for none */
	int		 valarg;	/* argv index of a value, -1 for none */
};

static const struct verbspec verbs[] = {
	{ "get",	CMD_GET,	1, 1, 0, -1 },
	{ "put",	CMD_PUT,	2, 2, 0, 1 },
	{ "del",	CMD_DEL,	1, 1, 0, -1 },
	{ "expire",	CMD_EXPIRE,	2, 2, 0, -1 },
	{ "ttl",	CMD_TTL,	1, 1, 0, -1 },
	{ "stats",	CMD_STATS,	0, 0, -1, -1 },
	{ "ping",	CMD_PING,	0, 0, -1, -1 },
	{ "quit",	CMD_QUIT,	0, 0, -1, -1 },
	{ "whoami",	CMD_WHOAMI,	0, 0, -1, -1 },
	{ "login",	CMD_LOGIN,	2, 2, -1, -1 },
	{ "register",	CMD_REGISTER,	2, 2, -1, -1 },
	{ "use",	CMD_USE,	1, 1, -1, -1 },
	{ "gets",	CMD_GETS,	1, 1, 0, -1 },
	{ "cas",	CMD_CAS,	3, 3, 0, 2 },
	{ "incr",	CMD_INCR,	1, 2, 0, -1 },
	{ "decr",	CMD_DECR,	1, 2, 0, -1 },
	{ "scan",	CMD_SCAN,	1, 2, -1, -1 },
	{ "users",	CMD_USERS,	0, 1, -1, -1 },
};

static int
fail(struct request *rq, size_t consumed, const char *msg)
{
	rq->consumed = consumed;
	snprintf(rq->error, sizeof(rq->error), "%s", msg);
	return PARSE_ERROR;
}

static int
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Unquote p[0..n) (past the opening quote) into out; return bytes read
 * including the closing quote, or 0 on bad quoting. */
static size_t
unquote(const char *p, size_t n, char *out, size_t *outlen)
{
	size_t i = 0, o = 0;
	int hi, lo;

	while (i < n) {
		unsigned char c = (unsigned char)p[i++];

		if (c == '"') {
			*outlen = o;
			return i;
		}
		if (is_ctl(c))
			return 0;
		if (c != '\\') {
			out[o++] = (char)c;
			continue;
		}
		if (i >= n)
			return 0;
		switch (p[i++]) {
		case '\\': out[o++] = '\\'; break;
		case '"': out[o++] = '"'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case '0': out[o++] = '\0'; break;
		case 'x':
			if (i + 2 > n || (hi = hexval((unsigned char)p[i])) < 0 ||
			    (lo = hexval((unsigned char)p[i + 1])) < 0)
				return 0;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

/* "{N}" -> N; -1 when malformed or past 2^63. */
static int64_t
literal_len(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	if (n < 3 || p[0] != '{' || p[n - 1] != '}' || n - 2 > 18)
		return -1;
	for (i = 1; i < n - 1; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	return (int64_t)v;
}

/*
 * A malformed line may still end in a well-formed literal whose data is on
 * its way: skip that data too, or it would be read as requests.
 */
static int
fail_line(struct request *rq, const char *line, const char *end,
    const char *msg)
{
	const char *t = end;
	int64_t lit;

	while (t > line && t[-1] != ' ')
		t--;
	lit = literal_len(t, (size_t)(end - t));
	if (lit >= 0) {
		rq->discard = (uint64_t)lit;
		rq->skip_line = 1;
	}
	return fail(rq, rq->consumed, msg);
}

static int
check_request(struct request *rq, uint32_t value_max)
{
	const struct verbspec *vs = NULL;
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (rq->argv[0].len < sizeof(verbs[i].name) &&
		    verbs[i].name[0] == rq->argv[0].p[0] &&
		    verbs[i].name[rq->argv[0].len] == '\0' &&
		    memcmp(verbs[i].name, rq->argv[0].p, rq->argv[0].len) == 0) {
			vs = &verbs[i];
			break;
		}
	if (vs == NULL)
		return fail(rq, rq->consumed, "syntax unknown command");
	rq->verb = vs->verb;
	rq->name = vs->name;
	if (rq->argc - 1 < vs->argmin || rq->argc - 1 > vs->argmax) {
		snprintf(rq->error, sizeof(rq->error),
		    "syntax wrong number of arguments for '%.11s'", vs->name);
		return PARSE_ERROR;
	}
	/* From here argv[] holds the arguments only. */
	rq->argc--;
	memmove(rq->argv, rq->argv + 1, sizeof(rq->argv[0]) * (size_t)rq->argc);
	if (vs->keyarg >= 0) {
		if (rq->argv[vs->keyarg].len == 0)
			return fail(rq, rq->consumed, "syntax empty key");
		if (rq->argv[vs->keyarg].len > KV_KEY_MAX)
			return fail(rq, rq->consumed,
			    "limit key longer than 250 bytes");
	}
	if (vs->valarg >= 0 && rq->argv[vs->valarg].len > value_max) {
		snprintf(rq->error, sizeof(rq->error),
		    "limit value longer than %u bytes", value_max);
		return PARSE_ERROR;
	}
	return PARSE_OK;
}

int
proto_parse(const char *buf, size_t len, uint32_t value_max,
    struct request *rq)
{
	const char *lf, *end, *p;
	size_t scan = len < KV_LINE_MAX + 1 ? len : KV_LINE_MAX + 1, used;
	size_t sc = 0, n;
	int64_t lit;

	rq->verb = CMD_NONE;
	rq->argc = 0;
	rq->discard = 0;
	rq->skip_line = 0;
	rq->error[0] = '\0';
	if ((lf = memchr(buf, '\n', scan)) == NULL) {
		if (len <= KV_LINE_MAX)
			return PARSE_MORE;
		/* Drop that line through its LF; the requests after it stay. */
		if ((lf = memchr(buf + scan, '\n', len - scan)) != NULL)
			return fail(rq, (size_t)(lf - buf) + 1, "limit request "
			    "line longer than 16384 bytes");
		rq->skip_line = 1;
		return fail(rq, len, "limit request line longer than 16384 "
		    "bytes");
	}
	rq->consumed = (size_t)(lf - buf) + 1;
	end = lf;
	if (end > buf && end[-1] == '\r')
		end--;
	for (p = buf; p < end;) {
		const char *t;

		if (*p == ' ') {
			p++;
			continue;
		}
		if (rq->argc == PROTO_MAX_ARGS + 1)
			return fail_line(rq, buf, end,
			    "syntax too many arguments");
		if (*p == '"') {
			n = unquote(p + 1, (size_t)(end - p - 1),
			    rq->scratch + sc, &used);
			if (n == 0 || (p + 1 + n < end && p[1 + n] != ' '))
				return fail_line(rq, buf, end,
				    "syntax bad quoting");
			rq->argv[rq->argc].p = rq->scratch + sc;
			rq->argv[rq->argc++].len = used;
			sc += used;
			p += 1 + n;
			continue;
		}
		for (t = p; t < end && *t != ' '; t++)
			if (is_ctl((unsigned char)*t))
				return fail_line(rq, buf, end,
				    "syntax control byte in request");
		if (*p != '{') {
			rq->argv[rq->argc].p = p;
			rq->argv[rq->argc++].len = (size_t)(t - p);
			p = t;
			continue;
		}
		/* A literal: last on its line, its data follows the line. */
		lit = literal_len(p, (size_t)(t - p));
		if (lit < 0 || t != end)
			return fail_line(rq, buf, end, "syntax bad literal");
		if ((uint64_t)lit > value_max) {
			rq->discard = (uint64_t)lit;
			rq->skip_line = 1;
			snprintf(rq->error, sizeof(rq->error),
			    "limit value longer than %u bytes", value_max);
			return PARSE_ERROR;
		}
		if (len - rq->consumed < (size_t)lit + 1)
			return PARSE_MORE;
		p = buf + rq->consumed;
		rq->argv[rq->argc].p = p;
		rq->argv[rq->argc++].len = (size_t)lit;
		p += lit;
		if (*p == '\r') {
			if (len - rq->consumed < (size_t)lit + 2)
				return PARSE_MORE;
			p++;
		}
		if (*p != '\n') {
			rq->consumed += (size_t)lit;
			rq->skip_line = 1;
			return fail(rq, rq->consumed, "syntax bad literal");
		}
		rq->consumed = (size_t)(p - buf) + 1;
		break;
	}
	if (rq->argc == 0)
		return PARSE_OK;	/* an empty line */
	return check_request(rq, value_max);
}

int
proto_bare_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || p[0] == '"' || p[0] == '{')
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] == ' ' || is_ctl((unsigned char)p[i]))
			return 0;
	return 1;
}

int
proto_token(const char *p, size_t len, char *out, size_t *outlen)
{
	size_t n;

	if (len > 0 && p[0] == '"') {
		n = unquote(p + 1, len - 1, out, outlen);
		return n != 0 && 1 + n == len ? 0 : -1;
	}
	if (!proto_bare_ok(p, len))
		return -1;
	memcpy(out, p, len);
	*outlen = len;
	return 0;
}

/*
 * Append one argument, space first, in the cheapest form that carries its
 * bytes: bare, quoted, or (the last argument only) a literal.
 */
void
proto_append_arg(struct buf *b, const char *p, size_t len, int last)
{
	size_t i;

	buf_append(b, " ", 1);
	if (len <= PROTO_INLINE_MAX && proto_bare_ok(p, len)) {
		buf_append(b, p, len);
		return;
	}
	if (last && len > PROTO_INLINE_MAX) {
		buf_printf(b, "{%zu}\r\n", len);
		buf_append(b, p, len);
		return;
	}
	buf_append(b, "\"", 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c == '\n')
			buf_append(b, "\\n", 2);
		else if (c == '\t')
			buf_append(b, "\\t", 2);
		else if (is_ctl(c))
			buf_printf(b, "\\x%02x", c);
		else
			buf_append(b, (const char *)&c, 1);
	}
	buf_append(b, "\"", 1);
}

int
proto_parse_reply(const char *buf, size_t len, uint64_t value_limit,
    struct reply *r)
{
	/* len 0 may come with buf NULL (an empty buffer): no memchr then. */
	const char *lf = len == 0 ? NULL :
	    memchr(buf, '\n', len < 4096 ? len : 4096);
	size_t linelen;
	uint64_t n = 0;
	size_t i;

	if (lf == NULL)
		return len < 4096 ? PARSE_MORE : PARSE_ERROR;
	linelen = (size_t)(lf - buf);
	if (linelen > 0 && buf[linelen - 1] == '\r')
		linelen--;
	r->line = buf;
	r->linelen = linelen;
	r->consumed = (size_t)(lf - buf) + 1;
	r->data = NULL;
	r->datalen = 0;
	r->has_cas = 0;
	r->cas = 0;
	if (linelen == 9 && memcmp(buf, "NOT_FOUND", 9) == 0) {
		r->kind = REPLY_NOT_FOUND;
		return PARSE_OK;
	}
	if (linelen > 4 && memcmp(buf, "ERR ", 4) == 0) {
		r->kind = REPLY_ERR;
		r->line = buf + 4;
		r->linelen = linelen - 4;
		return PARSE_OK;
	}
	if (linelen < 7 || memcmp(buf, "VALUE ", 6) != 0) {
		r->kind = REPLY_LINE;
		return PARSE_OK;
	}
	/* "VALUE n", or "VALUE n cas" (the reply to gets) */
	r->has_cas = 0;
	r->cas = 0;
	for (i = 6; i < linelen && buf[i] != ' '; i++) {
		if (buf[i] < '0' || buf[i] > '9' || i > 6 + 18)
			return PARSE_ERROR;
		n = n * 10 + (uint64_t)(buf[i] - '0');
	}
	if (i == 6)
		return PARSE_ERROR;
	if (i < linelen) {
		if (++i == linelen || linelen - i > 20)
			return PARSE_ERROR;
		for (; i < linelen; i++) {
			if (buf[i] < '0' || buf[i] > '9' || r->cas >
			    (UINT64_MAX - (uint64_t)(buf[i] - '0')) / 10)
				return PARSE_ERROR;
			r->cas = r->cas * 10 + (uint64_t)(buf[i] - '0');
		}
		r->has_cas = 1;
	}
	if (n > value_limit)
		return PARSE_ERROR;
	if (len - r->consumed < n + 1)
		return PARSE_MORE;
	r->kind = REPLY_VALUE;
	r->data = buf + r->consumed;
	r->datalen = (size_t)n;
	i = r->consumed + (size_t)n;
	if (buf[i] == '\r') {
		if (len - i < 2)
			return PARSE_MORE;
		i++;
	}
	if (buf[i] != '\n')
		return PARSE_ERROR;
	r->consumed = i + 1;
	return PARSE_OK;
}
