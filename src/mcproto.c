/*
 * mcproto.c - memcached's text protocol on kvstore's per-user stores.
 * (A placeholder until the memcached listener lands: every request is
 * refused with memcached's ERROR, so a misconfigured client fails loudly.)
 */
#include <string.h>

#include "session.h"

int
mc_batch(struct session *s)
{
	const char *lf;

	while ((lf = memchr(buf_head(&s->ib), '\n', buf_avail(&s->ib))) != NULL) {
		buf_append(&s->ob, "ERROR\r\n", 7);
		buf_consume(&s->ib, (size_t)(lf - buf_head(&s->ib)) + 1);
	}
	return 0;
}
