/*
 * audit.h - one line per security event, to the log and to the segment's
 * in-memory ring that kvstorectl log shows.
 */
#ifndef AUDIT_H
#define AUDIT_H

#include <stddef.h>

#include "store.h"

void	audit(struct store *, const char *peer, const char *user, int role,
	    const char *action, const char *target, const char *key,
	    size_t klen);
/* The same with the key field already escaped (several keys, say). */
void	audit_text(struct store *, const char *peer, const char *user,
	    int role, const char *action, const char *target,
	    const char *keys);
size_t	audit_escape(char *out, size_t outlen, const char *p, size_t n,
	    size_t max);

#endif
