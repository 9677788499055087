/*
 * kvstore.h - limits and names shared by the daemon, the client and the tools.
 *
 * A limit that appears in a reply, a man page and a check is defined once, here.
 */
#ifndef KVSTORE_H
#define KVSTORE_H

#include "config.h"

#define KV_VERSION		PACKAGE_VERSION
#define KV_DEFAULT_PORT		"5555"
#define KV_DEFAULT_ADDRESS	"127.0.0.1"
#define KV_DEFAULT_SEGMENT	"/kvstore"
#define KV_DEFAULT_SIZE_MB	64
#define KV_MIN_SIZE_MB		4
#define KV_MAX_SIZE_MB		(32 * 1024)	/* 32-bit refs in units of 8 bytes */

#define KV_KEY_MAX		250		/* bytes, as memcached */
#define KV_VALUE_MAX		(1024 * 1024)	/* default for kvstored -I */
#define KV_VALUE_MAX_LIMIT	(64 * 1024 * 1024)
#define KV_LINE_MAX		16384		/* a request line, literal data not counted */
#define KV_USER_MAX		32		/* bytes of a user name */
#define KV_SECRET_MAX		128		/* bytes of a secret or password */
#define KV_HASH_MAX		128		/* bytes of a crypt(3) hash, NUL included */

/* kvstored -a: the account table's size, fixed when a segment is made;
 * an account id fits in the name index's NAME_ID_BITS (layout.h). */
#define KV_ACCOUNTS_DEFAULT	1024
#define KV_ACCOUNTS_MAX		4000000

#define KV_ROLE_GUEST		0
#define KV_ROLE_MANAGER		1

#endif
