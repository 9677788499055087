/*
 * conntest.c - two connections, interleaved, in one process: the front-ends
 * and the command layer keep every bit of a connection's state in its
 * struct conn, so one process can drive many (the event engine will).
 *
 *   conntest SEGMENT
 *
 * Creates SEGMENT (16 MiB), drives a native and a memcached connection
 * through their batch functions byte by byte where it matters, prints one
 * "ok N - what" line per check, and exits 1 at the first failure (after a
 * "not ok" line showing what came back).  The segment is removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conn.h"
#include "kvstore.h"
#include "store.h"

static int checks;

static void
feed(struct conn *c, const char *bytes)
{
	buf_append(&c->ib, bytes, strlen(bytes));
	c->turn_from = conn_now();	/* as conn_step() sets it */
	if ((c->proto == PROTO_MEMCACHED ? mc_batch(c) : native_batch(c)) ==
	    -1) {
		printf("not ok %d - batch dropped the connection\n", ++checks);
		exit(1);
	}
}

/* The replies so far must be want; they are taken. */
static void
expect(struct conn *c, const char *want, const char *what)
{
	size_t n = buf_avail(&c->ob);

	if (n != strlen(want) || memcmp(buf_head(&c->ob), want, n) != 0) {
		printf("not ok %d - %s\n# got: %.*s\n# want: %s\n", ++checks,
		    what, (int)n, buf_head(&c->ob), want);
		exit(1);
	}
	printf("ok %d - %s\n", ++checks, what);
	buf_reset(&c->ob);
}

int
main(int argc, char **argv)
{
	static struct conn a, b;	/* big: not on the stack */
	struct conn_config cfg;
	struct store_geometry g;
	struct store st;
	char err[512], hash[KV_HASH_MAX];
	uint32_t alice, bob;

	if (argc != 2) {
		fprintf(stderr, "usage: conntest SEGMENT\n");
		return 2;
	}
	store_geometry_default(&g, 16, 1024);
	if (store_open(&st, argv[1], &g, STORE_CREATE, err, sizeof(err)) ==
	    -1 || store_attach_process(&st) == -1) {
		fprintf(stderr, "conntest: %s\n", err);
		return 1;
	}
	auth_init();
	if (auth_hash("pw", hash, sizeof(hash)) == -1 ||
	    store_user_create(&st, "alice", KV_ROLE_GUEST, hash, &alice) !=
	    ST_OK ||
	    store_user_create(&st, "bob", KV_ROLE_MANAGER, hash, &bob) != ST_OK)
		return 1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.store = &st;
	cfg.policy.max_accounts = 10;
	conn_init(&a, &cfg, PROTO_NATIVE, -1, -1, "127.0.0.1 port 1");
	conn_init(&b, &cfg, PROTO_MEMCACHED, -1, -1, "127.0.0.1 port 2");

	/* Half a login on each, then the other halves, crosswise. */
	feed(&a, "login ali");
	feed(&b, "set auth 0 0 12\r\nbob:al");
	expect(&a, "", "native: half a login answers nothing");
	expect(&b, "", "memcached: half a login answers nothing");
	feed(&b, "ice pw\r\n");
	feed(&a, "ce pw\r\n");
	expect(&a, "OK alice guest\r\n", "native: alice logged in");
	expect(&b, "STORED\r\n", "memcached: bob logged in on alice's store");

	/* The same key written by each, into the one store (alice's). */
	feed(&a, "put k1 from-alice\r\nput k2 two\r\n");
	feed(&b, "get k1 ");
	expect(&b, "VALUE k1 0 10\r\nfrom-alice\r\n",
	    "memcached: a retrieval line answers keys as they arrive");
	feed(&a, "put k1 again\r\n");
	expect(&a, "OK\r\nOK\r\nOK\r\n", "native: three puts");
	feed(&b, "k1 ");
	expect(&b, "VALUE k1 0 5\r\nagain\r\n",
	    "memcached: the next key sees the other connection's write");

	/* Demoted between two keys of one line: no more of alice's store. */
	store_user_set(&st, bob, KV_ROLE_GUEST, NULL);
	feed(&b, "k2\r\n");
	expect(&b, "CLIENT_ERROR denied not a manager\r\n",
	    "memcached: a demotion mid-line stops the line at the next key");
	feed(&a, "get k2\r\n");
	expect(&a, "VALUE 3\r\ntwo\r\n", "native: alice is unaffected");
	store_user_set(&st, bob, KV_ROLE_MANAGER, NULL);
	feed(&b, "get k2\r\n");
	expect(&b, "VALUE k2 0 3\r\ntwo\r\nEND\r\n",
	    "memcached: promoted again, the next line is served");

	conn_free(&a);
	conn_free(&b);
	store_close(&st);
	store_remove(argv[1]);
	printf("1..%d\n", checks);
	return 0;
}
