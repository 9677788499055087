/*
 * mcstats.c - memcached's statistics and listings on the memcached
 * listener: "stats" and every subcommand memcached 1.6.18 has, "lru_crawler
 * metadump", "stats cachedump", and the answer to a binary-protocol request.
 *
 * What a caller sees is its own store (a manager's: the store it chose) or
 * a figure for the whole server that names no other store: items, bytes
 * and listings are the acting store's; hit and miss counters, pages and
 * size classes are the server's (kvstore-memcached(7) says which is which).
 * A listing walks the store a few stripes at a time (cmd_scan()), handing
 * its lines to the core between steps, so that a large store neither holds
 * a lock for long nor fills memory with its replies.  No I/O and no store
 * calls here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cmd.h"
#include "conn.h"
#include "kvstore.h"
#include "mcparse.h"
#include "mcproto.h"

#define DUMP_STRIPES	8	/* stripes one step of a listing walks */
#define CLASSES		64	/* memcached's MAX_NUMBER_OF_SLAB_CLASSES */

/* ---- stats -------------------------------------------------------------- */

static void
general(struct conn *c, const struct store_stats *ss,
    const struct user_view *v)
{
	time_t now = time(NULL);

	buf_printf(&c->ob,
	    "STAT pid %ld\r\n"
	    "STAT uptime %" PRId64 "\r\n"
	    "STAT time %" PRId64 "\r\n"
	    "STAT version %s\r\n"
	    "STAT pointer_size %d\r\n"
	    "STAT curr_connections %" PRIu64 "\r\n"
	    "STAT total_connections %" PRIu64 "\r\n"
	    "STAT rejected_connections %" PRIu64 "\r\n"
	    "STAT threads 1\r\n"
	    "STAT cmd_get %" PRIu64 "\r\n"
	    "STAT cmd_set %" PRIu64 "\r\n"
	    "STAT cmd_touch %" PRIu64 "\r\n"
	    "STAT get_hits %" PRIu64 "\r\n"
	    "STAT get_misses %" PRIu64 "\r\n"
	    "STAT delete_misses %" PRIu64 "\r\n"
	    "STAT delete_hits %" PRIu64 "\r\n"
	    "STAT incr_misses %" PRIu64 "\r\n"
	    "STAT incr_hits %" PRIu64 "\r\n"
	    "STAT decr_misses %" PRIu64 "\r\n"
	    "STAT decr_hits %" PRIu64 "\r\n"
	    "STAT cas_misses %" PRIu64 "\r\n"
	    "STAT cas_hits %" PRIu64 "\r\n"
	    "STAT cas_badval %" PRIu64 "\r\n"
	    "STAT touch_hits %" PRIu64 "\r\n"
	    "STAT touch_misses %" PRIu64 "\r\n"
	    "STAT store_no_memory %" PRIu64 "\r\n"
	    "STAT auth_errors %" PRIu64 "\r\n"
	    "STAT bytes_read %" PRIu64 "\r\n"
	    "STAT bytes_written %" PRIu64 "\r\n"
	    "STAT limit_maxbytes %" PRIu64 "\r\n"
	    "STAT curr_items %" PRIu64 "\r\n"
	    "STAT total_items %" PRIu64 "\r\n"
	    "STAT bytes %" PRIu64 "\r\n"
	    "STAT reclaimed %" PRIu64 "\r\n"
	    "STAT evictions %" PRIu64 "\r\n"
	    "STAT slabs_moved %" PRIu64 "\r\n"
	    "STAT crawler_reclaimed %" PRIu64 "\r\n"
	    "STAT crawler_items_checked %" PRIu64 "\r\n"
	    "STAT expired_unfetched %" PRIu64 "\r\n"
	    "STAT kvstore_version %s\r\n"
	    "STAT kvstore_user %s\r\n"
	    "STAT kvstore_items %" PRIu64 "\r\n"
	    "STAT kvstore_bytes_used %" PRIu64 "\r\n"
	    "STAT kvstore_bytes_free %" PRIu64 "\r\n"
	    "STAT kvstore_items_moved %" PRIu64 "\r\n"
	    "STAT kvstore_value_max %" PRIu32 "\r\n"
	    "STAT kvstore_evictions %" PRIu64 "\r\n"
	    "END\r\n",
	    (long)getpid(), (int64_t)now - ss->created, (int64_t)now,
	    MC_VERSION, (int)(sizeof(void *) * 8), ss->curr_connections,
	    ss->total_connections, ss->rejected_connections,
	    ss->hits + ss->misses, ss->puts, ss->touch_hits + ss->touch_misses,
	    ss->hits, ss->misses, ss->delete_misses, ss->dels,
	    ss->incr_misses, ss->incr_hits, ss->decr_misses, ss->decr_hits,
	    ss->cas_misses, ss->cas_hits, ss->cas_badval, ss->touch_hits,
	    ss->touch_misses, ss->no_memory, ss->auth_failures,
	    c->bytes_read, c->bytes_written, ss->bytes_limit, v->keys,
	    ss->puts, v->bytes, ss->reclaimed, v->evictions, ss->pages_moved,
	    ss->crawler_reclaimed, ss->crawler_checked, ss->expired_unfetched,
	    KV_VERSION, v->name, ss->items, ss->bytes_used, ss->bytes_free,
	    ss->items_moved, ss->value_max, ss->evictions);
}

/* The acting store's items per size class, from one walk. */
struct census {
	uint64_t	 n[CLASSES];
	uint64_t	 bytes[CLASSES];
	uint32_t	 oldest[CLASSES];	/* the earliest access */
};

static void
count_one(void *ctx, const struct item_view *v)
{
	struct census *k = ctx;

	if (v->cls >= CLASSES)
		return;
	if (k->n[v->cls] == 0 || v->atime < k->oldest[v->cls])
		k->oldest[v->cls] = v->atime;
	k->n[v->cls]++;
	k->bytes[v->cls] += v->size;
}

static int
census(struct conn *c, struct census *k)
{
	uint32_t cursor = 0;
	int more, rc;

	memset(k, 0, sizeof(*k));
	do {
		rc = cmd_scan(&c->cl, &cursor, DUMP_STRIPES, count_one, k,
		    &more);
	} while (rc == CR_OK && more);
	return rc;
}

/*
 * memcached's "stats items": classes holding items, numbered from 1; the
 * store's items, and the segment's evictions of each class.
 */
static void
items(struct conn *c, const struct census *k)
{
	struct store_class cl[CLASSES];
	uint32_t now = (uint32_t)time(NULL), i, id, n;

	if (cmd_classes(&c->cl, cl, CLASSES - 1, &n) != CR_OK)
		n = 0;
	for (i = 0; i < CLASSES - 1; i++) {
		if (k->n[i] == 0)
			continue;
		id = i + 1;
		buf_printf(&c->ob,
		    "STAT items:%u:number %" PRIu64 "\r\n"
		    "STAT items:%u:age %" PRIu32 "\r\n"
		    "STAT items:%u:mem_requested %" PRIu64 "\r\n"
		    "STAT items:%u:evicted %" PRIu64 "\r\n"
		    "STAT items:%u:evicted_nonzero 0\r\n"
		    "STAT items:%u:evicted_time 0\r\n"
		    "STAT items:%u:outofmemory 0\r\n",
		    id, k->n[i], id,
		    now > k->oldest[i] ? now - k->oldest[i] : 0,
		    id, k->bytes[i], id, i < n ? cl[i].evicted : 0, id, id, id);
	}
	mc_reply_always(c, "END");
}

/*
 * memcached's "stats slabs": the server's classes (the pages each holds
 * now: an emptied page goes back to the pool, alloc.c), the store's
 * chunks.
 */
static void
slabs(struct conn *c, const struct census *k)
{
	struct store_class cl[CLASSES];
	uint32_t i, n, active = 0;
	uint64_t malloced = 0;

	if (cmd_classes(&c->cl, cl, CLASSES - 1, &n) != CR_OK)
		n = 0;
	for (i = 0; i < n; i++) {
		if (cl[i].pages == 0)
			continue;
		active++;
		malloced += (uint64_t)cl[i].pages * cl[i].size *
		    cl[i].chunks_per_page;
		buf_printf(&c->ob,
		    "STAT %u:chunk_size %" PRIu32 "\r\n"
		    "STAT %u:chunks_per_page %" PRIu32 "\r\n"
		    "STAT %u:total_pages %" PRIu32 "\r\n"
		    "STAT %u:total_chunks %" PRIu64 "\r\n"
		    "STAT %u:used_chunks %" PRIu64 "\r\n"
		    "STAT %u:free_chunks %" PRIu32 "\r\n"
		    "STAT %u:free_chunks_end %" PRIu32 "\r\n",
		    i + 1, cl[i].size, i + 1, cl[i].chunks_per_page,
		    i + 1, cl[i].pages, i + 1,
		    (uint64_t)cl[i].pages * cl[i].chunks_per_page,
		    i + 1, k->n[i], i + 1, cl[i].free, i + 1, cl[i].unused);
	}
	buf_printf(&c->ob, "STAT active_slabs %u\r\n"
	    "STAT total_malloced %" PRIu64 "\r\nEND\r\n", active, malloced);
}

static void
settings(struct conn *c, const struct store_stats *ss)
{
	const struct conn_config *cfg = c->cfg;
	struct store_class cl[1];
	uint32_t n;

	if (cmd_classes(&c->cl, cl, 1, &n) != CR_OK || n == 0)
		cl[0].size = 0;
	buf_printf(&c->ob,
	    "STAT maxbytes %" PRIu64 "\r\n"
	    "STAT verbosity 0\r\n"
	    "STAT evictions %s\r\n"
	    "STAT growth_factor 1.25\r\n"
	    "STAT chunk_size %" PRIu32 "\r\n"
	    "STAT num_threads 1\r\n"
	    "STAT cas_enabled yes\r\n"
	    "STAT binding_protocol ascii\r\n"
	    "STAT auth_enabled_sasl no\r\n"
	    "STAT auth_enabled_ascii %s\r\n"
	    "STAT item_size_max %" PRIu32 "\r\n"
	    "STAT idle_timeout %d\r\n"
	    "STAT flush_enabled yes\r\n"
	    "STAT dump_enabled yes\r\n"
	    "STAT lru_crawler yes\r\n"
	    "STAT kvstore_quota_keys %" PRIu64 "\r\n"
	    "STAT kvstore_quota_bytes %" PRIu64 "\r\n"
	    "END\r\n",
	    ss->bytes_limit, ss->cache_mode ? "on" : "off", cl[0].size,
	    cfg->bound_user != NULL ? "no" : "yes", ss->value_max,
	    cfg->mc_idle_timeout, cfg->policy.quota_keys,
	    cfg->policy.quota_bytes);
}

/* This connection only: the others may be other tenants'. */
static void
conns(struct conn *c)
{
	const char *sp = strstr(c->peer, " port ");
	int alen = sp ? (int)(sp - c->peer) : (int)strlen(c->peer);
	int v6 = memchr(c->peer, ':', (size_t)alen) != NULL;

	buf_printf(&c->ob,
	    "STAT %d:addr tcp%s:%s%.*s%s:%s\r\n"
	    "STAT %d:state conn_parse_cmd\r\n"
	    "STAT %d:secs_since_last_cmd 0\r\n"
	    "END\r\n",
	    c->in, v6 ? "6" : "", v6 ? "[" : "", alen, c->peer, v6 ? "]" : "",
	    sp ? sp + 6 : "0", c->in, c->in);
}

static void dump_start(struct conn *, int kind, uint64_t classes,
    uint32_t limit);

void
mc_stats(struct conn *c, const struct mc_request *r)
{
	struct store_stats ss;
	struct user_view v;
	struct census k;
	int rc;

	/* Every subcommand is refused alike to a session that lost its way. */
	if (mc_refused(c, r, rc = cmd_stats(&c->cl, &ss, &v)))
		return;
	if (rc != CR_OK) {
		mc_reply_always(c, "SERVER_ERROR store error");
		return;
	}
	switch (r->stats) {
	case MS_GENERAL:
		general(c, &ss, &v);
		break;
	case MS_ITEMS:
	case MS_SLABS:
		if (mc_refused(c, r, rc = census(c, &k)))
			return;
		if (r->stats == MS_ITEMS)
			items(c, &k);
		else
			slabs(c, &k);
		break;
	case MS_SETTINGS:
		settings(c, &ss);
		break;
	case MS_SIZES:
		mc_reply_always(c, "STAT sizes_status disabled\r\nEND");
		break;
	case MS_CONNS:
		conns(c);
		break;
	case MS_DETAIL_ON:
	case MS_DETAIL_OFF:
		/* Accepted; kvstore keeps no per-prefix figures. */
		mc_reply_always(c, "OK");
		break;
	case MS_DETAIL_DUMP:
		mc_reply_always(c, "END");
		break;
	case MS_RESET:
		/* The server's counters are every tenant's: only this
		 * connection's own start again. */
		c->bytes_read = c->bytes_written = 0;
		mc_reply_always(c, "RESET");
		break;
	case MS_CACHEDUMP:
		/* memcached numbers classes from 1; 0 holds nothing. */
		dump_start(c, MC_DUMP_CACHE, r->dump_class == 0 ? 0 :
		    (uint64_t)1 << (r->dump_class - 1), r->dump_limit);
		break;
	}
}

/* ---- listings: lru_crawler metadump, stats cachedump -------------------- */

static void
dump_start(struct conn *c, int kind, uint64_t classes, uint32_t limit)
{
	struct mc_state *m = &c->mc;

	m->dump = kind;
	m->dump_cursor = 0;
	m->dump_classes = classes;
	m->dump_left = limit;
	m->dump_limited = limit > 0;
}

/* A key as metadump writes it: URI-encoded, as memcached's uriencode. */
static void
uri_key(struct conn *c, const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)k[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~')
			buf_append(&c->ob, k + i, 1);
		else
			buf_printf(&c->ob, "%%%02X", ch);
	}
}

static void
dump_one(void *ctx, const struct item_view *v)
{
	struct conn *c = ctx;
	struct mc_state *m = &c->mc;

	if (v->cls >= CLASSES - 1 || !(m->dump_classes >> v->cls & 1))
		return;
	if (m->dump_limited && m->dump_left == 0)
		return;
	buf_reserve(&c->ob, v->klen * 3 + 128);
	if (m->dump == MC_DUMP_META) {
		buf_append(&c->ob, "key=", 4);
		uri_key(c, v->key, v->klen);
		buf_printf(&c->ob, " exp=%" PRId64 " la=%" PRIu32 " cas=%"
		    PRIu64 " fetch=%s cls=%u size=%" PRIu32 "\n",
		    v->exptime == 0 ? (int64_t)-1 : (int64_t)v->exptime,
		    v->atime, v->cas, v->fetched ? "yes" : "no",
		    (unsigned)v->cls + 1, v->size);
	} else {
		buf_append(&c->ob, "ITEM ", 5);
		buf_append(&c->ob, v->key, v->klen);
		buf_printf(&c->ob, " [%zu b; %" PRIu32 " s]\r\n", v->vlen,
		    v->exptime);
	}
	if (m->dump_limited)
		m->dump_left--;
}

/* One step of the listing in progress; 1 while it goes on. */
int
mc_dump_step(struct conn *c)
{
	struct mc_state *m = &c->mc;
	struct mc_request none;
	int more, rc;

	/* One audit line for the whole listing, written when it ends. */
	if (!m->dump_audit) {
		cmd_begin(&c->cl, m->dump == MC_DUMP_META ? "metadump" :
		    "cachedump");
		m->dump_audit = 1;
	}
	rc = cmd_scan(&c->cl, &m->dump_cursor, DUMP_STRIPES, dump_one, c,
	    &more);
	if (rc != CR_OK || !more || (m->dump_limited && m->dump_left == 0)) {
		cmd_end(&c->cl);
		m->dump_audit = 0;
	}
	if (rc != CR_OK) {
		m->dump = 0;
		memset(&none, 0, sizeof(none));
		if (!mc_refused(c, &none, rc))
			mc_reply_always(c, "SERVER_ERROR store error");
		return 0;
	}
	if (!more || (m->dump_limited && m->dump_left == 0)) {
		m->dump = 0;
		mc_reply_always(c, "END");
	}
	return m->dump != 0;
}

void
mc_crawler(struct conn *c, const struct mc_request *r)
{
	if (r->crawler == MC_CRAWL_METADUMP)
		dump_start(c, MC_DUMP_META, r->classes, 0);
	else
		/* kvstore's crawler always runs, within its own budget
		 * (crawler.c): there is nothing to start or tune. */
		mc_reply_always(c, "OK");
}

/*
 * A binary-protocol request: memcached's answer to a command it does not
 * know (status 0x0081), the request's opcode and opaque echoed; then the
 * connection ends, as nothing after it can be read as text.
 */
void
mc_binary(struct conn *c, const struct mc_request *r)
{
	static const char body[] = "Unknown command";
	unsigned char h[MC_BIN_HEADER];

	memset(h, 0, sizeof(h));
	h[0] = 0x81;
	h[1] = (unsigned char)r->data[1];
	h[7] = 0x81;
	h[11] = sizeof(body) - 1;
	memcpy(h + 12, r->data + 12, 4);
	buf_append(&c->ob, h, sizeof(h));
	buf_append(&c->ob, body, sizeof(body) - 1);
	c->closing = 1;
}
