/*
 * buf.h - growable byte buffers for a connection's input and output, and
 * a bounded string copy.
 *
 * Input is consumed from the front (off) and compacted lazily, so a batch of
 * pipelined requests is parsed in place without copying each one.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	char	*data;
	size_t	 off;	/* first unconsumed byte */
	size_t	 len;	/* end of valid bytes */
	size_t	 cap;
};

void	 buf_reserve(struct buf *, size_t);
void	 buf_append_slow(struct buf *, const void *, size_t);
void	 buf_appendstr(struct buf *, const char *);
void	 buf_append_u64(struct buf *, uint64_t);
void	 buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_consume(struct buf *, size_t);
void	 buf_compact(struct buf *);
void	 buf_reset(struct buf *);
void	 buf_free(struct buf *);
void	 str_copy_until(char *out, size_t n, const char *s, char stop);

/* Inline where there is room already: a reply is a few appends. */
static inline void
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n > b->cap - b->len) {
		buf_append_slow(b, p, n);
		return;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline size_t
buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

static inline char *
buf_head(const struct buf *b)
{
	return b->data + b->off;
}

#endif
