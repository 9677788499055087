/*
 * buf.c - growable byte buffers.  Allocation failure is fatal: a child that
 * cannot allocate cannot serve its client, and exiting frees everything.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

void
buf_reserve(struct buf *b, size_t more)
{
	size_t need, cap;
	char *p;

	if (more > (size_t)-1 - b->len)
		fatalx("buffer size overflow");
	need = b->len + more;
	if (need <= b->cap)
		return;
	if (b->off > 0 && need - b->off <= b->cap) {
		buf_compact(b);
		return;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL)
		fatal("realloc %zu", cap);
	b->data = p;
	b->cap = cap;
}

void
buf_append_slow(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void
buf_appendstr(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

/* Decimal, without printf: the numbers of every reply to a get. */
void
buf_append_u64(struct buf *b, uint64_t v)
{
	char d[20], *p = d + sizeof(d);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	buf_append(b, p, (size_t)(d + sizeof(d) - p));
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	buf_reserve(b, 128);
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("buf_printf: bad format");
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void
buf_compact(struct buf *b)
{
	if (b->off == 0)
		return;
	memmove(b->data, b->data + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

/*
 * At most n - 1 bytes of s, up to stop or its end; out is a string.  For
 * names copied on a connection's way in, where snprintf(3) would have a
 * new prefork child fault in stdio's pages of libc (net_peer_name()).
 */
void
str_copy_until(char *out, size_t n, const char *s, char stop)
{
	size_t i;

	if (n == 0)
		return;
	for (i = 0; i + 1 < n && s[i] != '\0' && s[i] != stop; i++)
		out[i] = s[i];
	out[i] = '\0';
}
