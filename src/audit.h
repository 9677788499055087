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

#endif
