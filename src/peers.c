/*
 * peers.c - the segment's lock-free tables of security events: the audit
 * ring (the last lines of the audit log, for kvstorectl) and the counters
 * per peer address (failed logins for the growing delay, registrations for
 * the rate limit).  Both are updated with atomics and no lock.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "store.h"
#include "store_impl.h"

static inline struct kv_audit *
audit_ring(struct store *st)
{
	return (struct kv_audit *)(st->base + st->hdr->off_audit);
}

void
store_audit(struct store *st, const char *line)
{
	uint64_t seq = __atomic_add_fetch(&st->hdr->audit_seq, 1,
	    __ATOMIC_RELAXED);
	struct kv_audit *a = &audit_ring(st)[(seq - 1) % KV_AUDIT_LINES];

	STORE(&a->seq, 0);
	snprintf(a->line, sizeof(a->line), "%s", line);
	STORE(&a->seq, seq);
}

/* Visit the last lines of the ring, oldest first; torn lines are skipped. */
void
store_audit_read(struct store *st, unsigned max,
    void (*fn)(void *, const char *), void *ctx)
{
	uint64_t last = LOAD(&st->hdr->audit_seq), seq;
	char line[KV_AUDIT_LEN];

	if (max > KV_AUDIT_LINES)
		max = KV_AUDIT_LINES;
	seq = last > max ? last - max + 1 : 1;
	for (; seq <= last; seq++) {
		struct kv_audit *a = &audit_ring(st)[(seq - 1) % KV_AUDIT_LINES];

		if (LOAD(&a->seq) != seq)
			continue;
		memcpy(line, a->line, sizeof(line));
		line[sizeof(line) - 1] = '\0';
		if (LOAD(&a->seq) == seq)
			fn(ctx, line);
	}
}

static struct kv_peer *
peer_entry(struct store *st, const char *addr, int create)
{
	struct kv_peer *peers = (struct kv_peer *)(st->base +
	    st->hdr->off_peers);
	uint64_t key = hash_key(0, addr, strlen(addr)) | 1, k;
	uint32_t i, at = (uint32_t)(key % KV_PEERS), oldest = at;
	int64_t now = (int64_t)time(NULL);

	for (i = 0; i < 8; i++) {
		struct kv_peer *p = &peers[(at + i) % KV_PEERS];

		k = LOAD(&p->key);
		if (k == key)
			return p;
		if (k == 0 || (p->last_fail < now - 3600 &&
		    p->reg_window < now - 3600)) {
			oldest = (at + i) % KV_PEERS;
			break;
		}
		if (p->last_fail < peers[oldest].last_fail)
			oldest = (at + i) % KV_PEERS;
	}
	if (!create)
		return NULL;
	/* Take the empty, stale or least recent entry of the probe run. */
	peers[oldest].fails = 0;
	peers[oldest].regs = 0;
	peers[oldest].last_fail = 0;
	peers[oldest].reg_window = 0;
	STORE(&peers[oldest].key, key);
	return &peers[oldest];
}

uint32_t
store_peer_fails(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, addr, 0);

	return p == NULL ? 0 : LOAD(&p->fails);
}

void
store_peer_fail(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, addr, 1);

	__atomic_add_fetch(&p->fails, 1, __ATOMIC_RELAXED);
	STORE(&p->last_fail, (int64_t)time(NULL));
}

void
store_peer_reset(struct store *st, const char *addr)
{
	struct kv_peer *p = peer_entry(st, addr, 0);

	if (p != NULL)
		STORE(&p->fails, 0);
}

/* Count a registration; 0 when the peer is over limit per window. */
int
store_peer_register(struct store *st, const char *addr, uint32_t limit,
    int window)
{
	struct kv_peer *p = peer_entry(st, addr, 1);
	int64_t now = (int64_t)time(NULL);

	if (LOAD(&p->reg_window) + window <= now) {
		STORE(&p->reg_window, now);
		STORE(&p->regs, 0);
	}
	return __atomic_add_fetch(&p->regs, 1, __ATOMIC_RELAXED) <= limit;
}
