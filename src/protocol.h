/*
 * protocol.h - kvstore's native text protocol (kvstore(7)): parsing requests
 * and replies from a buffer, formatting them into one.  No I/O here, so the
 * daemon, the client and the fuzzer share it.
 */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "kvstore.h"

#define PROTO_MAX_ARGS		4	/* after the verb */
#define PROTO_INLINE_MAX	64	/* the client sends longer values as literals */

enum verb {
	CMD_NONE = 0,		/* an empty line: no reply */
	CMD_GET, CMD_PUT, CMD_DEL, CMD_EXPIRE, CMD_TTL, CMD_STATS,
	CMD_PING, CMD_QUIT, CMD_WHOAMI, CMD_LOGIN, CMD_REGISTER, CMD_USE,
	CMD_GETS, CMD_CAS, CMD_INCR, CMD_DECR, CMD_SCAN, CMD_USERS
};

enum parse_status {
	PARSE_OK,		/* a request; consumed bytes of input used */
	PARSE_MORE,		/* no complete request yet */
	PARSE_ERROR		/* reply "ERR <error>"; drop consumed bytes */
};

struct arg {
	const char	*p;
	size_t		 len;
};

struct request {
	enum verb	 verb;
	const char	*name;		/* the verb as sent, for messages */
	int		 argc;
	struct arg	 argv[PROTO_MAX_ARGS + 1];	/* the verb, then its arguments */
	size_t		 consumed;
	/* After PARSE_ERROR, what to throw away before the next request: */
	uint64_t	 discard;	/* literal bytes still to come */
	int		 skip_line;	/* then everything up to a line feed */
	char		 error[96];
	char		 scratch[KV_LINE_MAX];	/* unquoted arguments */
};

int	proto_parse(const char *buf, size_t len, uint32_t value_max,
	    struct request *);
int	proto_bare_ok(const char *p, size_t len);
void	proto_append_arg(struct buf *, const char *p, size_t len, int last);
/* One bare or quoted token filling p[0..len), as a KEY line carries it:
 * its bytes into out (room for len bytes), 0; -1 when malformed. */
int	proto_token(const char *p, size_t len, char *out, size_t *outlen);

/* Replies as the client sees them. */
enum reply_kind {
	REPLY_LINE,		/* any one line: OK, TTL n, STAT, END, USER ... */
	REPLY_VALUE,		/* VALUE n [cas] and its data */
	REPLY_NOT_FOUND,
	REPLY_ERR		/* ERR kind message: line holds "kind message" */
};

struct reply {
	enum reply_kind	 kind;
	const char	*line;		/* without CRLF, not NUL-terminated */
	size_t		 linelen;
	const char	*data;		/* REPLY_VALUE */
	size_t		 datalen;
	int		 has_cas;	/* VALUE n cas (the reply to gets) */
	uint64_t	 cas;
	size_t		 consumed;
};

int	proto_parse_reply(const char *buf, size_t len, uint64_t value_limit,
	    struct reply *);

#endif
