/*
 * crawler.c - the expiry crawler: one long-lived helper process of the
 * master (helper.c), for the prefork and event engines alike, that
 * reclaims expired items and items a delayed flush_all covers although no
 * request touches them, so that they neither fill the store nor count
 * against a quota (the store's side is expire.c's store_crawl()).
 *
 * Its budget: every CRAWL_TICK_MS it walks stripes until it has walked
 * CRAWL_STRIPES of them or looked at CRAWL_ITEMS items, whichever comes
 * first, each stripe under its lock only while its buckets are walked.  So
 * it walks at most 640 stripes a second, and looks at about 41,000 items
 * a second (more only by the rest of the last stripe of a tick): a full
 * pass over a 64 MiB store of 500,000 small items takes some 12 seconds.
 * While no expiry has come due it looks at nothing at all.
 *
 * In inetd mode (-i, and systemd's Accept=yes) there is no master and so
 * no crawler: a write that would be refused reclaims first (room.c), and
 * an expired key is unlinked when it is met.
 */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "master.h"
#include "store.h"

#define CRAWL_TICK_MS	100
#define CRAWL_STRIPES	64
#define CRAWL_ITEMS	4096

void
crawler_main(struct store *st)
{
	struct timespec tick = { 0, CRAWL_TICK_MS * 1000000L };
	struct store_crawl c;

	store_crawl_init(&c);
	while (!conn_stop) {
		(void)store_crawl(st, &c, CRAWL_STRIPES, CRAWL_ITEMS);
		/* A SIGTERM cuts the wait short; one that lands just before
		 * it is seen a tick later. */
		(void)nanosleep(&tick, NULL);
	}
	store_crawl_end(st, &c);
	store_detach_process(st);
	_exit(0);
}
