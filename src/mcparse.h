/*
 * mcparse.h - memcached's text protocol, parsed from a buffer: a pure
 * function of the bytes and a little state, no I/O, no store, so that the
 * daemon's front-end (mcproto.c) and the fuzzer share it.
 */
#ifndef MCPARSE_H
#define MCPARSE_H

#include <stddef.h>
#include <stdint.h>

#define MC_LINE_MAX	2048	/* a request line, as memcached's read check */
#define MC_AUTH_MAX	256	/* bytes of "user[:store] secret" */

enum mc_verb {
	MV_NONE = 0,
	MV_GET, MV_GETS, MV_GAT, MV_GATS,
	MV_SET, MV_ADD, MV_REPLACE, MV_APPEND, MV_PREPEND, MV_CAS,
	MV_DELETE, MV_INCR, MV_DECR, MV_TOUCH, MV_FLUSH_ALL, MV_VERBOSITY,
	MV_STATS, MV_VERSION, MV_QUIT,
	MV_AUTH,		/* before login: memcached -Y's credentials set */
	MV_UNAUTH		/* before login: anything else */
};

enum mc_status {
	MCP_MORE,		/* no complete request yet; consume r.consumed */
	MCP_REQUEST,		/* a request (or a retrieval line's start) */
	MCP_KEY,		/* the next key of the retrieval line */
	MCP_END,		/* the retrieval line's end */
	MCP_ERROR,		/* reply r.error; consume, then discard/skip */
	MCP_GET_ERROR,		/* a bad key ends the retrieval line */
	MCP_CLOSE		/* reply r.error, then close */
};

/* Where a retrieval line stands between calls. */
struct mc_parser {
	int		 in_get;
	enum mc_verb	 get_verb;
	uint64_t	 get_tokens;	/* after the verb, gat's exptime included */
};

struct mc_limits {
	uint32_t	 value_max;	/* data longer than this: too_large */
	int		 logged_in;	/* no: only credentials are parsed */
};

struct mc_request {
	enum mc_verb	 verb;
	int		 noreply;	/* ended in "noreply" */
	int		 error_always;	/* r.error is sent despite noreply */
	const char	*error;		/* MCP_ERROR, MCP_CLOSE, MCP_GET_ERROR */
	const char	*key;
	size_t		 klen;
	uint32_t	 flags;
	int32_t		 exptime;	/* gat, storage, touch, flush_all delay */
	uint32_t	 vlen;
	uint64_t	 cas;
	uint64_t	 delta;		/* incr, decr */
	uint64_t	 ntokens;	/* MCP_END: tokens after the verb */
	const char	*data;		/* storage: vlen bytes, then CRLF */
	int		 too_large;	/* storage: data over the limit, dropped */
	int		 bad_chunk;	/* storage: the data's CRLF is missing */
	size_t		 consumed;	/* bytes of the buffer done with */
	uint64_t	 discard;	/* then this many more, as they come */
	int		 skip_line;	/* then up to and with the next LF */
};

int	mc_parse(struct mc_parser *, const char *buf, size_t len,
	    const struct mc_limits *, struct mc_request *);
int	mc_key_ok(const char *p, size_t len);

#endif
