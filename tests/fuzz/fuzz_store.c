/*
 * fuzz_store.c - libFuzzer target for the store against a model.
 *
 * The input is a program: each operation is an opcode byte and a few
 * argument bytes, applied to an in-process segment (4 MiB, values up to
 * 8 KiB, so "full" is reachable) on behalf of three users, and to a plain
 * in-memory model of what the store should hold.  Every reply is compared
 * with the model's (the exact result code, the exact value bytes), quotas
 * included; only "store is full" is not predicted, and then nothing may
 * have changed.  At the end of each input the checker must find the
 * segment clean, the users' counters must equal the model's, and flushing
 * every user must leave the table empty for the next input.
 *
 * With KV_FUZZ_CRASH=1 in the environment an opcode also forks a writer
 * that dies while it holds its stripe (store_test_hold), with a chunk
 * allocated and unpublished; the survivor must recover the stripe (by
 * taking it over as a waiter, or by store_reap() as the master does) and
 * the key must keep its old value.  When the put finds the store full it
 * may die instead in the middle of a compaction's move (store_test_move),
 * holding an item's stripe with its copy unpublished: every item must
 * then still read back once, unchanged.  That costs ~100 ms per crash (the
 * lock probe interval), so it is off by default.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *       -Isrc tests/fuzz/fuzz_store.c src/store.c src/items.c src/alloc.c \
 *       src/accounts.c src/peers.c src/recover.c src/check.c src/stats.c \
 *       src/conns.c src/lock.c src/meta.c src/room.c src/expire.c \
 *       src/evict.c src/log.c src/buf.c \
 *       -lrt -lpthread
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "log.h"
#include "store.h"

#define NUSERS		3
#define MAXKEYS		2048		/* per user in the model */
#define SEG_MB		4
#define VALUE_MAX	8192

#define REQUIRE(c) do { if (!(c)) { \
	fprintf(stderr, "fuzz_store: %s:%d: %s (op %u)\n", __FILE__, \
	    __LINE__, #c, opno); abort(); } } while (0)

struct entry {
	uint8_t		 klen;
	char		 key[KV_KEY_MAX];
	uint32_t	 vlen;
	char		*val;
};

struct model {
	uint32_t	 id;
	unsigned	 n;
	struct entry	 e[MAXKEYS];
};

static struct store st;
static struct model users[NUSERS];
static int crash_ok;
static unsigned opno, crashes;

/* The input, read a byte at a time; zeros once it runs out. */
struct input {
	const uint8_t	*p;
	size_t		 n;
};

static uint8_t
next(struct input *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static void
die_holding_stripe(void)
{
	_exit(0);
}

static void
setup(void)
{
	struct store_geometry g;
	char name[64], err[256], uname[8];
	int i;

	log_init("fuzz_store", 1, 0);
	crash_ok = getenv("KV_FUZZ_CRASH") != NULL &&
	    strcmp(getenv("KV_FUZZ_CRASH"), "1") == 0;
	snprintf(name, sizeof(name), "/kvfuzz-%ld-%ld", (long)getpid(),
	    (long)time(NULL));
	store_geometry_default(&g, SEG_MB, VALUE_MAX);
	if (store_open(&st, name, &g, STORE_CREATE, err, sizeof(err)) == -1) {
		fprintf(stderr, "fuzz_store: %s\n", err);
		abort();
	}
	/* Mapped and open: the name is not needed, and nothing is left
	 * behind however the fuzzer ends. */
	shm_unlink(name);
	/* A fixed hash key while the store is still empty: an input then
	 * fills the same chains in every run that replays it. */
	st.hdr->hash_key.k0 = 0x0706050403020100ULL;
	st.hdr->hash_key.k1 = 0x0f0e0d0c0b0a0908ULL;
	if (store_attach_process(&st) == -1)
		abort();
	for (i = 0; i < NUSERS; i++) {
		snprintf(uname, sizeof(uname), "fz%d", i);
		if (store_user_create(&st, uname, KV_ROLE_GUEST, "*",
		    &users[i].id) != ST_OK)
			abort();
	}
}

/* Chunk bytes of an item, as alloc.c's class_for() picks them. */
static uint64_t
chunk_size(size_t klen, size_t vlen)
{
	size_t need = sizeof(struct kv_item) + klen + vlen;
	uint32_t i;

	for (i = 0; i < st.hdr->nclasses; i++)
		if (st.hdr->classes[i].size >= need)
			return st.hdr->classes[i].size;
	return 0;
}

static struct entry *
lookup(struct model *m, const char *key, size_t klen)
{
	unsigned i;

	for (i = 0; i < m->n; i++)
		if (m->e[i].klen == klen && memcmp(m->e[i].key, key, klen) == 0)
			return &m->e[i];
	return NULL;
}

static void
model_set(struct model *m, const char *key, size_t klen, const char *v,
    size_t vlen)
{
	struct entry *e = lookup(m, key, klen);
	char *copy = malloc(vlen ? vlen : 1);

	if (copy == NULL)
		abort();
	if (vlen)
		memcpy(copy, v, vlen);
	if (e == NULL) {
		if (m->n == MAXKEYS)
			abort();	/* the store holds fewer: 4 MiB */
		e = &m->e[m->n++];
		e->klen = (uint8_t)klen;
		memcpy(e->key, key, klen);
	} else
		free(e->val);
	e->val = copy;
	e->vlen = (uint32_t)vlen;
}

static void
model_del(struct model *m, struct entry *e)
{
	free(e->val);
	*e = m->e[--m->n];
}

static void
model_clear(struct model *m)
{
	while (m->n > 0)
		model_del(m, &m->e[m->n - 1]);
}

static void
model_counts(const struct model *m, uint64_t *keys, uint64_t *bytes)
{
	unsigned i;

	*keys = m->n;
	*bytes = 0;
	for (i = 0; i < m->n; i++)
		*bytes += chunk_size(m->e[i].klen, m->e[i].vlen);
}

/* What store_get() shows us. */
struct seen {
	int		 hit;
	size_t		 vlen;
	char		 val[VALUE_MAX];
	uint64_t	 cas;
};

static void
visit(void *ctx, const struct item_view *v)
{
	struct seen *s = ctx;

	s->hit = 1;
	s->vlen = v->vlen;
	if (v->vlen <= sizeof(s->val))
		memcpy(s->val, v->value, v->vlen);
	s->cas = v->cas;
}

static void
expect_value(struct model *m, const char *key, size_t klen)
{
	static struct seen s;
	struct entry *e = lookup(m, key, klen);
	int rc;

	s.hit = 0;
	s.vlen = 0;
	rc = store_get(&st, m->id, USER_ANY_GEN, key, klen, visit, &s);
	if (e == NULL) {
		REQUIRE(rc == ST_NOT_FOUND && !s.hit);
		return;
	}
	REQUIRE(rc == ST_OK && s.hit);
	REQUIRE(s.vlen == e->vlen);
	REQUIRE(e->vlen == 0 || memcmp(s.val, e->val, e->vlen) == 0);
}

static size_t
make_key(struct input *in, char *key)
{
	uint8_t b = next(in);
	size_t n, i;

	if (b < 0xf0)	/* mostly a few short keys, so they collide */
		return (size_t)snprintf(key, KV_KEY_MAX, "k%u", b % 24);
	n = 1 + next(in) % KV_KEY_MAX;
	for (i = 0; i < n; i++)
		key[i] = (char)(in->n ? next(in) : (int)i);
	return n;
}

static size_t
make_value(struct input *in, char *val, size_t cap)
{
	uint8_t sel = next(in), b = next(in), seed;
	size_t n, i;

	switch (sel & 3) {
	case 0:
		n = b % 16;
		break;
	case 1:
		n = b;
		break;
	case 2:	/* up to just past the value maximum */
		n = ((size_t)b * 33) % (VALUE_MAX + 40);
		break;
	default:	/* a number, for incr and decr */
		return (size_t)snprintf(val, cap, "%" PRIu64,
		    (uint64_t)b << (sel >> 2));
	}
	if (n > cap)
		n = cap;
	seed = next(in);
	for (i = 0; i < n; i++)
		val[i] = (char)(seed + i * 7);
	return n;
}

/* The result store_put() must give, or -1 when it may say "full". */
static int
predict_put(struct model *m, enum store_mode mode, const char *key,
    size_t klen, size_t vlen, uint64_t cas, uint64_t cur_cas,
    const struct store_write *w, size_t *newlen)
{
	struct entry *e = lookup(m, key, klen);
	uint64_t keys, bytes, nb;

	*newlen = vlen;
	if (vlen > VALUE_MAX)
		return ST_TOO_LARGE;
	switch (mode) {
	case W_ADD:
		if (e != NULL)
			return ST_NOT_STORED;
		break;
	case W_REPLACE: case W_APPEND: case W_PREPEND:
		if (e == NULL)
			return ST_NOT_STORED;
		break;
	case W_CAS:
		if (e == NULL)
			return ST_NOT_FOUND;
		if (cas != cur_cas)
			return ST_EXISTS;
		break;
	case W_SET:
		break;
	}
	if (mode == W_APPEND || mode == W_PREPEND) {
		if (e->vlen + vlen > VALUE_MAX)
			return ST_TOO_LARGE;
		*newlen = e->vlen + vlen;
	}
	model_counts(m, &keys, &bytes);
	nb = chunk_size(klen, *newlen);
	if (w->quota_keys && e == NULL && keys + 1 > w->quota_keys)
		return ST_QUOTA;
	if (w->quota_bytes && e != NULL &&
	    nb > chunk_size(klen, e->vlen) &&
	    bytes + nb - chunk_size(klen, e->vlen) > w->quota_bytes)
		return ST_QUOTA;
	if (w->quota_bytes && e == NULL && bytes + nb > w->quota_bytes)
		return ST_QUOTA;
	return -1;
}

static void
op_put(struct model *m, struct input *in, enum store_mode mode, int quota)
{
	static char val[VALUE_MAX + 64], joined[2 * VALUE_MAX + 64];
	static struct seen s;
	char key[KV_KEY_MAX];
	struct store_write w;
	struct entry *e;
	size_t klen = make_key(in, key), vlen, newlen;
	uint64_t cas = 0, cas_out = 0;
	int want, rc;

	vlen = make_value(in, val, sizeof(val));
	memset(&w, 0, sizeof(w));
	w.mode = mode;
	if (quota) {
		w.quota_keys = next(in) % 6;
		w.quota_bytes = (uint64_t)next(in) * 64;
	}
	s.hit = 0;
	s.cas = 0;
	if (mode == W_CAS) {
		store_get(&st, m->id, USER_ANY_GEN, key, klen, visit, &s);
		cas = s.cas + (next(in) & 1);	/* right or stale */
		w.cas = cas;
	}
	want = predict_put(m, mode, key, klen, vlen, cas, s.cas, &w, &newlen);
	rc = store_put(&st, m->id, USER_ANY_GEN, key, klen, val, vlen, &w,
	    &cas_out);
	if (want == -1)
		REQUIRE(rc == ST_OK || rc == ST_FULL);
	else
		REQUIRE(rc == want);
	if (rc != ST_OK)
		goto verify;
	e = lookup(m, key, klen);
	if (mode == W_APPEND) {
		memcpy(joined, e->val, e->vlen);
		memcpy(joined + e->vlen, val, vlen);
		model_set(m, key, klen, joined, newlen);
	} else if (mode == W_PREPEND) {
		memcpy(joined, val, vlen);
		memcpy(joined + vlen, e->val, e->vlen);
		model_set(m, key, klen, joined, newlen);
	} else
		model_set(m, key, klen, val, vlen);
	REQUIRE(cas_out != 0 && cas_out != s.cas);
verify:
	expect_value(m, key, klen);
}

static int
model_number(const struct entry *e, uint64_t *v)
{
	uint64_t n = 0;
	uint32_t i;

	if (e->vlen == 0 || e->vlen > 20)
		return -1;
	for (i = 0; i < e->vlen; i++) {
		unsigned d = (unsigned char)e->val[i] - '0';

		if (d > 9 || n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*v = n;
	return 0;
}

static void
op_arith(struct model *m, struct input *in, int incr)
{
	char key[KV_KEY_MAX], num[24];
	size_t klen = make_key(in, key);
	uint64_t delta = next(in), v = 0, result = 0;
	struct entry *e = lookup(m, key, klen);
	int rc, n;

	if (next(in) == 0xff)
		delta = UINT64_MAX - delta;	/* wrap around */
	rc = store_arith(&st, m->id, USER_ANY_GEN, key, klen, incr, delta,
	    &result);
	if (e == NULL) {
		REQUIRE(rc == ST_NOT_FOUND);
	} else if (model_number(e, &v) == -1) {
		REQUIRE(rc == ST_NOT_NUMBER);
	} else {
		REQUIRE(rc == ST_OK || rc == ST_FULL);
		if (rc == ST_OK) {
			v = incr ? v + delta : (delta > v ? 0 : v - delta);
			REQUIRE(result == v);
			n = snprintf(num, sizeof(num), "%" PRIu64, v);
			model_set(m, key, klen, num, (size_t)n);
		}
	}
	expect_value(m, key, klen);
}

static void
op_del(struct model *m, struct input *in)
{
	char key[KV_KEY_MAX];
	size_t klen = make_key(in, key);
	struct entry *e = lookup(m, key, klen);
	int rc = store_del(&st, m->id, USER_ANY_GEN, key, klen);

	REQUIRE(rc == (e != NULL ? ST_OK : ST_NOT_FOUND));
	if (e != NULL)
		model_del(m, e);
	expect_value(m, key, klen);
}

static void
op_touch(struct model *m, struct input *in)
{
	char key[KV_KEY_MAX];
	size_t klen = make_key(in, key);
	struct entry *e = lookup(m, key, klen);
	uint8_t how = next(in) % 3;
	uint32_t exptime = how == 0 ? 0 : how == 1 ? 1 :
	    (uint32_t)time(NULL) + 100000;
	int rc = store_touch(&st, m->id, USER_ANY_GEN, key, klen, exptime,
	    NULL, NULL);

	REQUIRE(rc == (e != NULL ? ST_OK : ST_NOT_FOUND));
	if (e != NULL && how == 1)
		model_del(m, e);	/* expired at once */
	expect_value(m, key, klen);
}

/* Put keys of 8000 bytes until one does not fit. */
static void
op_fill(struct model *m, struct input *in)
{
	static char val[8000];
	char key[32];
	unsigned i, count = 1 + next(in) % 64;
	size_t klen;
	int rc;

	memset(val, 'a' + (int)(m - users), sizeof(val));
	for (i = 0; i < count; i++) {
		klen = (size_t)snprintf(key, sizeof(key), "fill-%u", i);
		struct store_write w = { .mode = W_SET };

		rc = store_put(&st, m->id, USER_ANY_GEN, key, klen, val,
		    sizeof(val), &w, NULL);
		REQUIRE(rc == ST_OK || rc == ST_FULL);
		if (rc != ST_OK)
			break;
		model_set(m, key, klen, val, sizeof(val));
	}
}

/* A writer dies holding the key's stripe, its new chunk unpublished. */
static void
op_crash(struct model *m, struct input *in)
{
	static char val[VALUE_MAX];
	char key[KV_KEY_MAX];
	size_t klen = make_key(in, key), vlen = make_value(in, val,
	    sizeof(val));
	uint8_t how = next(in);
	struct store_write w = { .mode = W_SET };
	int status;
	pid_t pid;

	/* ~100 ms each (the lock probe): a few per input at most. */
	if (!crash_ok || crashes++ >= 4)
		return;
	if ((pid = fork()) == -1)
		abort();
	if (pid == 0) {
		if (store_attach_process(&st) == -1)
			_exit(2);
		store_test_hold = die_holding_stripe;
		/* A put that finds no room compacts: die in a move, the copy
		 * made, not yet published. */
		if (how & 2)
			store_test_move = die_holding_stripe;
		store_put(&st, m->id, USER_ANY_GEN, key, klen, val, vlen, &w,
		    NULL);
		_exit(3);	/* the value was too large: no hold */
	}
	/* libFuzzer's timeout alarm interrupts the wait. */
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			abort();
	if (how & 1)	/* a waiter finds the holder dead and recovers */
		expect_value(m, key, klen);
	store_reap(&st, (uint32_t)pid);	/* as the master would */
	expect_value(m, key, klen);
}

static void
check_clean(void)
{
	if (store_check(&st, NULL) != 0) {
		store_check(&st, stderr);
		REQUIRE(!"the checker found errors");
	}
}

/*
 * Empty the table for the next input by deleting the model's keys: a key
 * the store has and the model lacks then shows as items left over.  (Not
 * store_flush_user(): it walks every bucket, which the coverage
 * instrumentation makes the slowest thing here.)
 */
static void
reset(void)
{
	struct user_view v;
	uint64_t keys, bytes;
	struct store_stats ss;
	int i;

	for (i = 0; i < NUSERS; i++) {
		struct model *m = &users[i];

		REQUIRE(store_user_get(&st, m->id, &v) == ST_OK);
		model_counts(m, &keys, &bytes);
		if (v.keys != keys || v.bytes != bytes)
			fprintf(stderr, "user %d: store %" PRIu64 "/%" PRIu64
			    " model %" PRIu64 "/%" PRIu64 "\n", i, v.keys,
			    v.bytes, keys, bytes);
		REQUIRE(v.keys == keys && v.bytes == bytes);
		while (m->n > 0) {
			struct entry *e = &m->e[m->n - 1];

			REQUIRE(store_del(&st, m->id, USER_ANY_GEN, e->key,
			    e->klen) == ST_OK);
			model_del(m, e);
		}
	}
	store_stats(&st, &ss);
	REQUIRE(ss.items == 0 && ss.bytes_used == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct model *m;
	unsigned i;

	if (st.base == NULL)
		setup();
	crashes = 0;
	for (opno = 0; in.n > 0 && opno < 512; opno++) {
		uint8_t op = next(&in);

		m = &users[(op >> 5) % NUSERS];
		switch (op & 15) {
		case 0: op_put(m, &in, W_SET, 0); break;
		case 1: {
			char key[KV_KEY_MAX];
			size_t klen = make_key(&in, key);

			expect_value(m, key, klen);
			break;
		}
		case 2: op_del(m, &in); break;
		case 3: op_put(m, &in, W_APPEND, 0); break;
		case 4: op_put(m, &in, W_PREPEND, 0); break;
		case 5: op_arith(m, &in, 1); break;
		case 6: op_arith(m, &in, 0); break;
		case 7:
			REQUIRE(store_flush_user(&st, m->id) == ST_OK);
			model_clear(m);
			break;
		case 8: op_put(m, &in, W_ADD, 0); break;
		case 9: op_put(m, &in, W_REPLACE, 0); break;
		case 10: op_put(m, &in, W_CAS, 0); break;
		case 11: op_touch(m, &in); break;
		case 12: op_put(m, &in, W_SET, 1); break;
		case 13: op_fill(m, &in); break;
		case 14: op_crash(m, &in); break;
		case 15:
			check_clean();
			break;
		}
	}
	/* Everything the model holds reads back; the segment is sound. */
	for (i = 0; i < NUSERS; i++) {
		unsigned j;

		for (j = 0; j < users[i].n; j++)
			expect_value(&users[i], users[i].e[j].key,
			    users[i].e[j].klen);
	}
	check_clean();
	reset();
	return 0;
}
