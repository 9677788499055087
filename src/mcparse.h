/*
 * mcparse.h - memcached's text protocol, parsed from a buffer: a pure
 * function of the bytes and a little state, no I/O, no store, so that the
 * daemon's front-end (mcproto.c) and the fuzzer share it.
 */
#ifndef MCPARSE_H
#define MCPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "kvstore.h"

#define MC_LINE_MAX	2048	/* a request line, as memcached's read check */
#define MC_AUTH_MAX	256	/* bytes of "user[:store] secret" */

enum mc_verb {
	MV_NONE = 0,
	MV_GET, MV_GETS, MV_GAT, MV_GATS,
	MV_SET, MV_ADD, MV_REPLACE, MV_APPEND, MV_PREPEND, MV_CAS,
	MV_DELETE, MV_INCR, MV_DECR, MV_TOUCH, MV_FLUSH_ALL, MV_VERBOSITY,
	MV_STATS, MV_VERSION, MV_QUIT,
	MV_MG, MV_MS, MV_MD, MV_MA, MV_MN, MV_ME,	/* the meta commands */
	MV_LRU_CRAWLER,
	MV_BINARY,		/* a binary-protocol header: answered, closed */
	MV_AUTH,		/* before login: memcached -Y's credentials set */
	MV_UNAUTH		/* before login: anything else */
};

enum mc_status {
	MCP_MORE,		/* no complete request yet; consume r.consumed */
	MCP_REQUEST,		/* a request (or a retrieval line's start) */
	MCP_KEY,		/* the next key of the retrieval line */
	MCP_END,		/* the retrieval line's end */
	MCP_GET_ONE,		/* a whole retrieval line of one key: its
				 * start, the key (r.key) and its end at once */
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

/* "stats <what>" */
enum mc_stats {
	MS_GENERAL = 0, MS_ITEMS, MS_SLABS, MS_SETTINGS, MS_SIZES, MS_CONNS,
	MS_DETAIL_ON, MS_DETAIL_OFF, MS_DETAIL_DUMP, MS_RESET, MS_CACHEDUMP
};

/* "lru_crawler <what>" */
enum mc_crawler {
	MC_CRAWL_METADUMP = 1, MC_CRAWL_NOOP	/* crawl, enable, sleep...: OK */
};

#define MC_META_MAX	24	/* tokens of a meta line, as memcached's */
#define MC_OPAQUE_MAX	32
#define MC_BIN_HEADER	24	/* a binary-protocol request header */
#define MC_BIN_MAGIC	0x80	/* its first byte */

/*
 * A meta command's flags, as memcached's _meta_flag_preparse() reads them:
 * every flag letter once, those with a token parsed and checked.
 */
struct mc_meta {
	char		 order[MC_META_MAX];	/* flag letters, as sent */
	size_t		 nflags;
	uint64_t	 seen;		/* mc_meta_has() */
	const char	*opaque;	/* O: the token, 'O' and all */
	size_t		 olen;
	int		 binary;	/* b: the key was base64 */
	int32_t		 ttl;		/* T */
	int32_t		 vivify;	/* N */
	int32_t		 recache;	/* R */
	uint64_t	 cas;		/* C */
	uint32_t	 flags;		/* F */
	char		 mode;		/* M */
	uint64_t	 initial;	/* J */
	uint64_t	 delta;		/* D, 1 when absent */
	const char	*raw;		/* the key as sent (me shows it) */
	size_t		 rawlen;
	/* Last: mc_parse() clears all before it, as this is written
	 * before it is read. */
	char		 key[KV_KEY_MAX];	/* a b key, decoded */
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
	uint64_t	 ntokens;	/* MCP_END, MCP_GET_ONE: tokens after the verb */
	const char	*data;		/* storage: vlen bytes, then CRLF */
	int		 too_large;	/* storage: data over the limit, dropped */
	int		 bad_chunk;	/* storage: the data's CRLF is missing */
	enum mc_stats	 stats;
	int		 crawler;	/* enum mc_crawler */
	uint64_t	 classes;	/* metadump: bit n-1 for class n */
	uint32_t	 dump_class;	/* stats cachedump <class> <limit> */
	uint32_t	 dump_limit;
	size_t		 consumed;	/* bytes of the buffer done with */
	uint64_t	 discard;	/* then this many more, as they come */
	int		 skip_line;	/* then up to and with the next LF */
	struct mc_meta	 meta;		/* mg, ms, md, ma, me; last */
};

int	mc_parse(struct mc_parser *, const char *buf, size_t len,
	    const struct mc_limits *, struct mc_request *);
int	mc_key_ok(const char *p, size_t len);
int	mc_meta_has(const struct mc_meta *, int flag);
size_t	mc_base64(const char *p, size_t len, char *out, size_t outlen);

#endif
