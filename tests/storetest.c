/*
 * storetest.c - drive store.c directly, one command per line on stdin, so
 * that bats can unit-test the table without a server in between.
 *
 *   storetest SEGMENT SIZE_MB VALUE_MAX [ACCOUNTS] < script
 *
 * Commands (words separated by single spaces; \n, \t, \\ and \xHH escapes
 * in keys and values):
 *   user NAME			create a user; prints its id
 *   users PREFIX COUNT		create PREFIX0 .. PREFIX<COUNT-1> (the users
 *				file's secret hash: HASH from the environment,
 *				else x); prints "created N last ID" or where it
 *				stopped and why
 *   find NAME			the active account's id, 0 = none
 *   finddel NAME		the id of the account being deleted, 0 = none
 *   mark UID			mark the account as being deleted (a userdel
 *				killed after its first step)
 *   count			accounts in use, as -N counts them
 *   crash STEP			die (_exit 9) at STEP of the next account
 *				change, holding the users lock, its change
 *				not committed (store.h's store_test_accounts)
 *   names			the name index: "rebuilt N tombs T" (N: how
 *				many rebuilds, T: tombstones now)
 *   put UID KEY VALUE		prints OK or the failure
 *   add|replace|append|prepend UID KEY VALUE
 *   get UID KEY		prints VALUE <len> <bytes> or NOT_FOUND
 *   del UID KEY
 *   incr|decr UID KEY N
 *   fill UID PREFIX COUNT VSIZE	put COUNT keys until one fails
 *   unfill UID PREFIX COUNT STEP	del PREFIX0, PREFIX<STEP>, ... below COUNT
 *   classfill UID PREFIX	put one value of each size class, the largest
 *				that fits its chunks; prints how many of how
 *				many were stored, and the first failure
 *   mixed UID SEED		fill with sizes uniform on a log scale from 1
 *				byte to 16 KiB until full, delete a random
 *				half, then write sizes of 16 to 64 KiB for half
 *				the bytes free: prints how many were refused
 *   probe UID PREFIX COUNT VSIZE	read PREFIX0 .. below COUNT: how many hold
 *				the value fill gave them, how many are absent
 *   crashmove UID KEY VSIZE	a child puts VSIZE bytes and dies (_exit)
 *				in the middle of a compaction's move, its
 *				copy made and unpublished; the survivor
 *				finishes its slot as the master would.
 *				Prints "died in a move", or how it ended
 *   moves			items and pages compaction moved, writes
 *				refused for room
 *   footprint			bytes per item: chunks, and with the segment's
 *				metadata and the pages items hold
 *   churn UID SEED OPS [PCT]	hold the store about PCT% (80) full (of
 *				bytes_used)
 *				with OPS random sets and deletes, sizes about
 *				uniform on a log scale from 1 byte to 64 KiB:
 *				prints the refusals, those while free bytes
 *				were at least 4 times the size, and the
 *				largest ratio of free bytes to size refused
 *   flush UID
 *   counts UID			user keys and chunk bytes
 *   gen UID			the account's generation
 *   putg UID GEN KEY VALUE	put, acting on generation GEN of UID
 *   userdel UID		delete the account and its items
 *   stats			items, bytes_used, bytes_free, bytes_limit
 *   check			run the checker: "clean" or its complaints
 *   corrupt WHAT [UID KEY [KEY2]]	break the segment, for the checker:
 *				userkeys UID (an account's key count is off),
 *				stripe (stripe 0's item count is off),
 *				loop UID KEY (the item links to itself),
 *				share UID KEY KEY2 (KEY's chain goes on into
 *				KEY2's), free UID KEY (the item is also at the
 *				head of its page's free list), leak UID KEY
 *				(the item is unlinked, its chunk not freed),
 *				pageused UID KEY (the item's page counts one
 *				chunk more), unlist UID KEY (its class's list
 *				of partly-free pages loses it), pool (the pool
 *				of empty pages is lost), name UID (its name
 *				index entry is lost), stalename UID (an index
 *				entry for the empty slot UID: "OK entry N"
 *				says which entry)
 *   classes			how many size classes, and the page size
 *   namefail NAME		count a failed login for the name
 *   namefails NAME		the name's failure count
 *   collide NAME N		N names whose throttle entry hashes where
 *				NAME's does (name-0, name-1, ...)
 *   siphash			check SipHash (src/siphash.c) against the
 *				reference vectors: "siphash ok" or each miss
 *   keyid			a fingerprint of the segment's hash key (a
 *				SipHash-2-4 output under it, never the key)
 *   bucket UID KEY		the bucket the key hashes to, and its stripe
 *   fillconns PID		every free entry of the per-address table
 *				held by PID, for an address nobody has,
 *				and the table's reach over them, as claims
 *				would leave it ("filled N")
 *   holdconn I PID ADDR	entry I of the per-address table held by PID
 *				for ADDR, logged in, and the reach over it,
 *				as a claim would leave them ("reach R")
 *   reach [R]			the table's reach word, set to R first
 */
#include <sys/wait.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siphash.h"
#include "store.h"
/* The store's inside, to break it on purpose (corrupt), as the fuzz target
 * does to kill a writer. */
#include "store_impl.h"

static char crash_at[32];

static void
crash(const char *step)
{
	if (strcmp(step, crash_at) == 0) {
		fflush(stdout);
		_exit(9);
	}
}

static const char *
result(int rc)
{
	static const char *names[] = {
		"OK", "NOT_FOUND", "EXISTS", "NOT_STORED", "FULL", "QUOTA",
		"TOO_LARGE", "NOT_NUMBER", "NO_USER", "ERROR", "DELETING"
	};

	return rc >= 0 && rc <= ST_DELETING ? names[rc] : "?";
}

static size_t
unescape(char *s)
{
	char *o = s, *p = s;

	while (*p) {
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': *o++ = '\n'; p++; break;
		case 't': *o++ = '\t'; p++; break;
		case 's': *o++ = ' '; p++; break;
		case '\\': *o++ = '\\'; p++; break;
		case 'x': {
			char hex[3] = { p[1], p[2], 0 };

			*o++ = (char)strtol(hex, NULL, 16);
			p += 3;
			break;
		}
		default:
			*o++ = '\\';
		}
	}
	return (size_t)(o - s);
}

static void
print_value(void *ctx, const struct item_view *v)
{
	(void)ctx;
	printf("VALUE %zu ", v->vlen);
	fwrite(v->value, 1, v->vlen, stdout);
	printf("\n");
}

/* The link word that points at the item uid/key, NULL when absent. */
static uint32_t *
link_of(struct store *st, uint32_t uid, const char *key, size_t klen)
{
	uint64_t h = hash_key(st, uid, key, klen);
	uint32_t *link = &buckets(st)[(uint32_t)h & (st->hdr->nbuckets - 1)];

	for (; *link != 0; link = &item_at(st, *link)->next) {
		struct kv_item *it = item_at(st, *link);

		if (it->user == uid && it->klen == klen &&
		    memcmp(it->data, key, klen) == 0)
			return link;
	}
	return NULL;
}

/* One value of every class, each the largest its chunks hold. */
static void
classfill(struct store *st, uint32_t uid, const char *prefix)
{
	struct store_write wr;
	uint32_t i, n = st->hdr->nclasses, stored = 0;
	char key[300], *val = malloc(st->hdr->value_max + 1);
	int rc, first = ST_OK, kl;
	size_t vl;

	memset(&wr, 0, sizeof(wr));
	memset(val, 'c', st->hdr->value_max);
	for (i = 0; i < n; i++) {
		kl = snprintf(key, sizeof(key), "%s%u", prefix, i);
		vl = st->hdr->classes[i].size - ITEM_HDR - (size_t)kl;
		if (vl > st->hdr->value_max)
			vl = st->hdr->value_max;
		rc = store_put(st, uid, USER_ANY_GEN, key, (size_t)kl, val, vl,
		    &wr, NULL);
		if (rc == ST_OK)
			stored++;
		else if (first == ST_OK)
			first = rc;
	}
	printf("classes %u stored %u %s\n", n, stored, result(first));
	free(val);
}

/* A size about uniform on a log scale from 2^lo to 2^hi bytes: a power
 * of two at random, then uniform up to the next. */
static size_t
log_size(unsigned *seed, unsigned lo, unsigned hi)
{
	unsigned e = lo + (unsigned)rand_r(seed) % (hi - lo);

	return ((size_t)1 << e) + (size_t)rand_r(seed) % ((size_t)1 << e);
}

static uint64_t
bytes_free(struct store *st)
{
	struct store_stats s;

	store_stats(st, &s);
	return s.bytes_free;
}

/*
 * Fill with mixed sizes, delete a random half, then write other sizes for
 * half the bytes free: none of those may be refused.  Then on until the
 * first refusal, to report how many times the value's size was free then.
 */
static void
mixed(struct store *st, uint32_t uid, unsigned seed)
{
	struct store_write wr;
	char key[64], *val = malloc(st->hdr->value_max + 1);
	unsigned long n, i, dels = 0, writes = 0, refused = 0;
	uint64_t budget, spent = 0, free_then = 0;
	size_t vl = 0;
	int rc, kl, cls;

	memset(&wr, 0, sizeof(wr));
	memset(val, 'm', st->hdr->value_max);
	for (n = 0; ; n++) {
		kl = snprintf(key, sizeof(key), "m%lu", n);
		rc = store_put(st, uid, USER_ANY_GEN, key, (size_t)kl, val,
		    log_size(&seed, 0, 14), &wr, NULL);
		if (rc != ST_OK)
			break;
	}
	for (i = 0; i < n; i++)
		if (rand_r(&seed) % 2) {
			kl = snprintf(key, sizeof(key), "m%lu", i);
			if (store_del(st, uid, USER_ANY_GEN, key, (size_t)kl) ==
			    ST_OK)
				dels++;
		}
	budget = bytes_free(st) / 2;
	for (i = 0; spent < budget; i++) {
		kl = snprintf(key, sizeof(key), "n%lu", i);
		vl = log_size(&seed, 14, 16);
		if (vl > st->hdr->value_max)
			vl = st->hdr->value_max;
		cls = class_for(st, ITEM_HDR + (size_t)kl + vl);
		rc = store_put(st, uid, USER_ANY_GEN, key, (size_t)kl, val, vl,
		    &wr, NULL);
		writes++;
		if (rc != ST_OK)
			refused++;
		else
			spent += st->hdr->classes[cls].size;
	}
	printf("filled %lu deleted %lu wrote %lu refused %lu\n", n, dels,
	    writes, refused);
	for (;; i++) {
		kl = snprintf(key, sizeof(key), "n%lu", i);
		vl = log_size(&seed, 14, 16);
		if (vl > st->hdr->value_max)
			vl = st->hdr->value_max;
		free_then = bytes_free(st);
		if (store_put(st, uid, USER_ANY_GEN, key, (size_t)kl, val, vl,
		    &wr, NULL) != ST_OK)
			break;
	}
	{
		struct store_class cl[KV_CLASSES_MAX];
		uint32_t k, nc = store_classes(st, cl, KV_CLASSES_MAX);
		uint64_t fr = 0;

		for (k = 0; k < nc; k++)
			fr += (uint64_t)(cl[k].free + cl[k].unused) *
			    cl[k].size;
		fprintf(stderr, "first refusal: %zu bytes with %" PRIu64
		    " free (%.1f times), %" PRIu64 " of them in free chunks "
		    "(%.1f times)\n", vl, free_then, (double)free_then /
		    (double)vl, fr, (double)fr / (double)vl);
	}
	free(val);
}

static int
probe_one(void *ctx, const struct item_view *v)
{
	size_t *want = ctx, i;

	if (v->vlen != *want)
		return 0;
	for (i = 0; i < v->vlen; i++)
		if (v->value[i] != 'v')
			return 0;
	return 1;
}

static int probe_ok;

static void
probe_visit(void *ctx, const struct item_view *v)
{
	probe_ok = probe_one(ctx, v);
}

static void
probe(struct store *st, uint32_t uid, const char *prefix, unsigned long n,
    size_t vs)
{
	unsigned long i, good = 0, absent = 0, bad = 0;
	char key[300];
	int kl;

	for (i = 0; i < n; i++) {
		kl = snprintf(key, sizeof(key), "%s%lu", prefix, i);
		probe_ok = 0;
		if (store_get(st, uid, USER_ANY_GEN, key, (size_t)kl,
		    probe_visit, &vs) != ST_OK)
			absent++;
		else if (probe_ok)
			good++;
		else
			bad++;
	}
	printf("present %lu absent %lu bad %lu\n", good, absent, bad);
}

static void
die_in_move(void)
{
	_exit(0);
}

static void
crashmove(struct store *st, uint32_t uid, const char *key, size_t vs)
{
	struct store_write wr;
	char *val = malloc(vs + 1);
	int status, rc;
	pid_t pid;

	memset(&wr, 0, sizeof(wr));
	memset(val, 'v', vs);
	fflush(stdout);
	if ((pid = fork()) == -1) {
		printf("fork failed\n");
		free(val);
		return;
	}
	if (pid == 0) {
		/* A child joins the registry for itself, as kvstored's do. */
		st->slot = 0;
		if (store_attach_process(st) == -1)
			_exit(2);
		store_test_move = die_in_move;
		rc = store_put(st, uid, USER_ANY_GEN, key, strlen(key), val, vs,
		    &wr, NULL);
		_exit(rc == ST_OK ? 3 : 4);
	}
	while (waitpid(pid, &status, 0) == -1)
		;
	store_reap(st, (uint32_t)pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		printf("died in a move\n");
	else
		printf("ended %d\n", WIFEXITED(status) ? WEXITSTATUS(status) :
		    -1);
	free(val);
}

static void
churn(struct store *st, uint32_t uid, unsigned seed, unsigned long ops,
    unsigned pct)
{
	struct store_write wr;
	struct store_stats ss;
	char key[64], *val = malloc(st->hdr->value_max + 1);
	unsigned long *live = calloc(ops + 1, sizeof(*live)), nlive = 0, i;
	unsigned long next = 0, sets = 0, refused = 0, refused4 = 0;
	double worst = 0, r;
	size_t vl;
	int kl, rc;

	memset(&wr, 0, sizeof(wr));
	memset(val, 'w', st->hdr->value_max);
	for (i = 0; i < ops; i++) {
		store_stats(st, &ss);
		if (nlive > 0 && (ss.bytes_used * 100 > ss.bytes_limit * pct ||
		    rand_r(&seed) % 4 == 0)) {
			unsigned long j = (unsigned long)rand_r(&seed) % nlive;

			kl = snprintf(key, sizeof(key), "w%lu", live[j]);
			(void)store_del(st, uid, USER_ANY_GEN, key, (size_t)kl);
			live[j] = live[--nlive];
			continue;
		}
		vl = log_size(&seed, 0, 16);
		if (vl > st->hdr->value_max)
			vl = st->hdr->value_max;
		kl = snprintf(key, sizeof(key), "w%lu", next);
		rc = store_put(st, uid, USER_ANY_GEN, key, (size_t)kl, val, vl,
		    &wr, NULL);
		sets++;
		if (rc == ST_OK) {
			live[nlive++] = next++;
			continue;
		}
		refused++;
		r = (double)ss.bytes_free / (double)(ITEM_HDR + (size_t)kl +
		    vl);
		if (r >= 4)
			refused4++;
		if (r > worst)
			worst = r;
	}
	printf("sets %lu refused %lu refused_at_4x_free %lu worst_ratio "
	    "%.1f\n", sets, refused, refused4, worst);
	free(live);
	free(val);
}

static const char *
corrupt(struct store *st, char **w, int n)
{
	uint32_t uid = n > 2 ? (uint32_t)strtoul(w[2], NULL, 10) : 0;
	uint32_t *l = NULL, *l2, ref;
	struct kv_item *it;

	if (strcmp(w[1], "stripe") == 0) {
		stripes(st)[0].items++;
		return "OK";
	}
	if (strcmp(w[1], "pool") == 0) {
		st->hdr->pool = 0;
		return "OK";
	}
	if (uid == 0 || uid > st->hdr->nusers)
		return "NO_USER";
	if (strcmp(w[1], "name") == 0 || strcmp(w[1], "stalename") == 0) {
		uint32_t i, *e = names(st);

		for (i = 0; i <= st->hdr->names_mask; i++) {
			if (w[1][0] == 'n' && e[i] != NAME_TOMB &&
			    (e[i] & NAME_ID_MASK) == uid) {
				e[i] = NAME_EMPTY;
				return "OK";
			}
			if (w[1][0] == 's' && e[i] == NAME_EMPTY) {
				/* Which entry is empty depends on the segment's
				 * hash key: say which one was taken. */
				static char said[32];

				e[i] = uid;
				snprintf(said, sizeof said, "OK entry %u", i);
				return said;
			}
		}
		return "NOT_FOUND";
	}
	if (strcmp(w[1], "userkeys") == 0) {
		users(st)[uid - 1].keys++;
		return "OK";
	}
	if (n < 4 || (l = link_of(st, uid, w[3], strlen(w[3]))) == NULL)
		return "NOT_FOUND";
	ref = *l;
	it = item_at(st, ref);
	if (strcmp(w[1], "loop") == 0)
		it->next = ref;
	else if (strcmp(w[1], "share") == 0 && n == 5) {
		if ((l2 = link_of(st, uid, w[4], strlen(w[4]))) == NULL)
			return "NOT_FOUND";
		while (it->next != 0)
			it = item_at(st, it->next);
		it->next = *l2;
	} else if (strcmp(w[1], "free") == 0)
		pagemap(st)[page_of(st, ref)].free_head = ref;
	else if (strcmp(w[1], "pageused") == 0)
		pagemap(st)[page_of(st, ref)].used++;
	else if (strcmp(w[1], "unlist") == 0)
		st->hdr->classes[it->cls].partial = 0;
	else if (strcmp(w[1], "leak") == 0) {
		uint32_t b = (uint32_t)hash_key(st, uid, w[3], strlen(w[3])) &
		    (st->hdr->nbuckets - 1);
		struct kv_stripe *sp = &stripes(st)[b & (st->hdr->nstripes - 1)];

		*l = it->next;
		sp->items--;
		sp->bytes -= chunk_bytes(st, it);
	} else
		return "bad corruption";
	return "OK";
}

/*
 * SipHash-2-4 of the messages 00, 00 01, ... 00 01 .. 3e (lengths 0 to 63)
 * under the key 00 01 .. 0f: the 64-bit vectors of the reference
 * implementation (github.com/veorq/SipHash, vectors.h).
 */
static const uint64_t sip24_vectors[64] = {
	0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
	0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
	0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
	0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
	0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
	0xa129ca6149be45e5ULL, 0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL,
	0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL, 0xbed65cf21aa2ee98ULL,
	0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
	0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL,
	0x2f2e6163076bcfadULL, 0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL,
	0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL, 0x7127512f72f27cceULL,
	0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
	0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL,
	0x9abfd8766a33735cULL, 0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL,
	0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL, 0xf935451de4f21df2ULL,
	0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
	0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL,
	0xa192d576b245165aULL, 0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL,
	0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL, 0xb78dbfaf3a8d83bdULL,
	0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
	0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL,
	0x958a324ceb064572ULL
};

/*
 * The vectors; then the store's rounds: siphash_word() of a string and a
 * word is siphash_bytes() of the string and the word's 4 little-endian
 * bytes, at every length; and for SipHash-1-3, the empty message under
 * the zero key (0xd1fba762150c532c, as the OCaml runtime's and the Rust
 * digest crates' tests have it from the reference code with c=1, d=3).
 * Prints "siphash ok", or one line per miss.
 */
static void
check_siphash(void)
{
	struct sipkey k, zero = { 0, 0 };
	unsigned char kb[SIP_KEY_LEN], msg[67];
	uint64_t got;
	uint32_t word = 0x4241403fU;
	int i, bad = 0;

	for (i = 0; i < SIP_KEY_LEN; i++)
		kb[i] = (unsigned char)i;
	sipkey_from_bytes(&k, kb);
	for (i = 0; i < (int)sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	for (i = 0; i < 64; i++)
		if ((got = siphash24(&k, msg, (size_t)i)) !=
		    sip24_vectors[i]) {
			printf("siphash24 length %d: %016" PRIx64 ", want %016"
			    PRIx64 "\n", i, got, sip24_vectors[i]);
			bad = 1;
		}
	/* The string msg[63 - i..63), then msg[63..67) = 3f 40 41 42: the
	 * word's little-endian bytes. */
	for (i = 0; i <= 63; i++)
		if (siphash_word(&k, msg + 63 - i, (size_t)i, word) !=
		    siphash_bytes(&k, msg + 63 - i, (size_t)i + 4)) {
			printf("siphash_word length %d differs\n", i);
			bad = 1;
		}
	if (SIP_C == 1 && SIP_D == 3 &&
	    (got = siphash_bytes(&zero, "", 0)) != 0xd1fba762150c532cULL) {
		printf("siphash-1-3 of nothing: %016" PRIx64 "\n", got);
		bad = 1;
	}
	if (!bad)
		printf("siphash ok\n");
}

int
main(int argc, char **argv)
{
	struct store st;
	struct store_geometry g;
	char line[1 << 16], err[512];
	char *w[5];

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: storetest segment size_mb value_max "
		    "[accounts]\n");
		return 2;
	}
	store_geometry_default(&g, strtoull(argv[2], NULL, 10),
	    (uint32_t)strtoul(argv[3], NULL, 10));
	if (argc == 5)
		g.users = (uint32_t)strtoul(argv[4], NULL, 10);
	if (store_open(&st, argv[1], &g, STORE_CREATE, err, sizeof(err)) ==
	    -1) {
		printf("open: %s\n", err);
		return 1;
	}
	if (store_attach_process(&st) == -1)
		return 1;
	while (fgets(line, sizeof(line), stdin) != NULL) {
		struct store_write wr;
		size_t klen = 0, vlen = 0;
		int n = 0;
		char *p = line;
		uint32_t uid;

		line[strcspn(line, "\n")] = '\0';
		while (n < 5 && (w[n] = strsep(&p, " ")) != NULL)
			n++;
		if (n == 0 || w[0][0] == '\0' || w[0][0] == '#')
			continue;
		uid = n > 1 ? (uint32_t)strtoul(w[1], NULL, 10) : 0;
		if (n > 2)
			klen = unescape(w[2]);
		if (n > 3)
			vlen = unescape(w[3]);
		memset(&wr, 0, sizeof(wr));
		if (strcmp(w[0], "siphash") == 0 && n == 1) {
			check_siphash();
		} else if (strcmp(w[0], "keyid") == 0 && n == 1) {
			printf("%016" PRIx64 "\n", siphash24(&st.hdr->hash_key,
			    "kvstore key id", 14));
		} else if (strcmp(w[0], "bucket") == 0 && n == 3) {
			uint32_t b = (uint32_t)hash_key(&st, uid, w[2], klen) &
			    (st.hdr->nbuckets - 1);

			printf("%u %u\n", b, b & (st.hdr->nstripes - 1));
		} else if (strcmp(w[0], "fillconns") == 0 && n == 2) {
			struct kv_conn *t = (struct kv_conn *)(st.base +
			    st.hdr->off_conns);
			uint64_t who = 0xfeedULL << 32 |
			    (uint32_t)strtoul(w[1], NULL, 10), zero;
			uint32_t i, filled = 0;

			for (i = 0; i < st.hdr->nconns; i++) {
				zero = 0;
				if (CAS(&t[i].who, zero, who))
					filled++;
			}
			/* as claims would have: the reach covers them */
			if (LOAD(&st.hdr->conns_reach) != 0)
				STORE(&st.hdr->conns_reach, st.hdr->nconns + 1);
			printf("filled %u\n", filled);
		} else if (strcmp(w[0], "holdconn") == 0 && n == 4) {
			struct kv_conn *t = (struct kv_conn *)(st.base +
			    st.hdr->off_conns);
			uint32_t i = (uint32_t)strtoul(w[1], NULL, 10), r;
			/* the address's key, as conns.c's addr_key() */
			uint64_t key = (hash_key(&st, 2, w[3], vlen) |
			    1ULL << 32) & ~0xffffffffULL;

			if (i < st.hdr->nconns) {
				STORE(&t[i].logged_in, 1);
				STORE(&t[i].who, key |
				    (uint32_t)strtoul(w[2], NULL, 10));
				r = LOAD(&st.hdr->conns_reach);
				while (r != 0 && r < i + 2 &&
				    !CAS(&st.hdr->conns_reach, r, i + 2))
					;
				printf("reach %u\n",
				    LOAD(&st.hdr->conns_reach));
			} else
				printf("no entry %u\n", i);
		} else if (strcmp(w[0], "reach") == 0 && n <= 2) {
			if (n == 2)
				STORE(&st.hdr->conns_reach,
				    (uint32_t)strtoul(w[1], NULL, 10));
			printf("reach %u\n", LOAD(&st.hdr->conns_reach));
		} else if (strcmp(w[0], "namefail") == 0 && n == 2) {
			store_name_fail(&st, w[1], 0);
			printf("OK\n");
		} else if (strcmp(w[0], "namefails") == 0 && n == 2) {
			printf("%u\n", store_name_fails(&st, w[1]));
		} else if (strcmp(w[0], "collide") == 0 && n == 3) {
			uint64_t want = (hash_key(&st, 1, w[1],
			    strlen(w[1])) | 1) % KV_PEERS;
			unsigned long found = 0, want_n = strtoul(w[2], NULL,
			    10), i;
			char cand[64];

			for (i = 0; found < want_n && i < 100000000UL; i++) {
				uint64_t h;

				snprintf(cand, sizeof(cand), "c%lu", i);
				h = hash_key(&st, 1, cand, strlen(cand)) | 1;
				if (h % KV_PEERS == want && strcmp(cand, w[1])) {
					printf("%s\n", cand);
					found++;
				}
			}
		} else if (strcmp(w[0], "user") == 0 && n == 2) {
			uint32_t id;
			int rc = store_user_create(&st, w[1], 0, "x", &id);

			if (rc == ST_OK)
				printf("%u\n", id);
			else
				printf("%s\n", result(rc));
		} else if (strcmp(w[0], "users") == 0 && n == 3) {
			unsigned long count = strtoul(w[2], NULL, 10), i;
			const char *hash = getenv("HASH");
			char name[64];
			uint32_t id = 0;
			int rc = ST_OK;

			for (i = 0; i < count; i++) {
				snprintf(name, sizeof(name), "%s%lu", w[1], i);
				rc = store_user_create(&st, name, 0,
				    hash != NULL ? hash : "x", &id);
				if (rc != ST_OK)
					break;
			}
			if (rc == ST_OK)
				printf("created %lu last %u\n", i, id);
			else
				printf("created %lu then %s\n", i, result(rc));
		} else if (strcmp(w[0], "find") == 0 && n == 2) {
			printf("%u\n", store_user_find(&st, w[1]));
		} else if (strcmp(w[0], "finddel") == 0 && n == 2) {
			printf("%u\n", store_user_find_deleting(&st, w[1]));
		} else if (strcmp(w[0], "mark") == 0 && n == 2) {
			printf("%s\n", result(store_user_mark_deleting(&st,
			    uid)));
		} else if (strcmp(w[0], "crash") == 0 && n == 2) {
			snprintf(crash_at, sizeof(crash_at), "%s", w[1]);
			store_test_accounts = crash;
		} else if (strcmp(w[0], "names") == 0 && n == 1) {
			printf("rebuilt %u tombs %u\n", st.hdr->names_gen / 2,
			    st.hdr->names_tombs);
		} else if (strcmp(w[0], "count") == 0 && n == 1) {
			printf("%u\n", store_user_count(&st));
		} else if (n == 4 && (strcmp(w[0], "put") == 0 ||
		    strcmp(w[0], "add") == 0 || strcmp(w[0], "replace") == 0 ||
		    strcmp(w[0], "append") == 0 ||
		    strcmp(w[0], "prepend") == 0)) {
			wr.mode = w[0][0] == 'a' ? (w[0][1] == 'd' ? W_ADD :
			    W_APPEND) : w[0][0] == 'r' ? W_REPLACE :
			    w[0][1] == 'r' ? W_PREPEND : W_SET;
			printf("%s\n", result(store_put(&st, uid, USER_ANY_GEN,
			    w[2], klen, w[3], vlen, &wr, NULL)));
		} else if (strcmp(w[0], "putg") == 0 && n == 5) {
			size_t l = unescape(w[4]);

			printf("%s\n", result(store_put(&st, uid,
			    (uint32_t)strtoul(w[2], NULL, 10), w[3], vlen,
			    w[4], l, &wr, NULL)));
		} else if (strcmp(w[0], "gen") == 0 && n == 2) {
			struct user_view v;

			if (store_user_get(&st, uid, &v) == ST_OK)
				printf("gen %" PRIu32 "\n", v.gen);
			else
				printf("NO_USER\n");
		} else if (strcmp(w[0], "userdel") == 0 && n == 2) {
			printf("%s\n", result(store_user_delete(&st, uid)));
		} else if (strcmp(w[0], "get") == 0 && n == 3) {
			if (store_get(&st, uid, USER_ANY_GEN, w[2], klen,
			    print_value, NULL) != ST_OK)
				printf("NOT_FOUND\n");
		} else if (strcmp(w[0], "del") == 0 && n == 3) {
			printf("%s\n", result(store_del(&st, uid, USER_ANY_GEN,
			    w[2], klen)));
		} else if ((strcmp(w[0], "incr") == 0 ||
		    strcmp(w[0], "decr") == 0) && n == 4) {
			uint64_t v;
			int rc = store_arith(&st, uid, USER_ANY_GEN, w[2],
			    klen, w[0][0] == 'i', strtoull(w[3], NULL, 10),
			    &v);

			if (rc == ST_OK)
				printf("%" PRIu64 "\n", v);
			else
				printf("%s\n", result(rc));
		} else if (strcmp(w[0], "fill") == 0 && n == 5) {
			unsigned long count = strtoul(w[3], NULL, 10), i;
			size_t vs = strtoul(w[4], NULL, 10);
			char key[300], *val = malloc(vs + 1);
			int rc = ST_OK;

			memset(val, 'v', vs);
			for (i = 0; i < count; i++) {
				int kl = snprintf(key, sizeof(key), "%s%lu",
				    w[2], i);

				rc = store_put(&st, uid, USER_ANY_GEN, key,
				    (size_t)kl, val, vs, &wr, NULL);
				if (rc != ST_OK)
					break;
			}
			printf("stored %lu %s\n", i, result(rc));
			free(val);
		} else if (strcmp(w[0], "unfill") == 0 && n == 5) {
			unsigned long count = strtoul(w[3], NULL, 10), i, d = 0;
			unsigned long step = strtoul(w[4], NULL, 10);
			char key[300];

			for (i = 0; step > 0 && i < count; i += step) {
				int kl = snprintf(key, sizeof(key), "%s%lu",
				    w[2], i);

				if (store_del(&st, uid, USER_ANY_GEN, key,
				    (size_t)kl) == ST_OK)
					d++;
			}
			printf("deleted %lu\n", d);
		} else if (strcmp(w[0], "probe") == 0 && n == 5) {
			probe(&st, uid, w[2], strtoul(w[3], NULL, 10),
			    strtoul(w[4], NULL, 10));
		} else if (strcmp(w[0], "churn") == 0 && n >= 4) {
			churn(&st, uid, (unsigned)strtoul(w[2], NULL, 10),
			    strtoul(w[3], NULL, 10), n == 5 ?
			    (unsigned)strtoul(w[4], NULL, 10) : 80);
		} else if (strcmp(w[0], "crashmove") == 0 && n == 4) {
			crashmove(&st, uid, w[2], strtoul(w[3], NULL, 10));
		} else if (strcmp(w[0], "moves") == 0) {
			struct store_stats ss;

			store_stats(&st, &ss);
			printf("items_moved %" PRIu64 " pages_moved %" PRIu64
			    " no_memory %" PRIu64 "\n", ss.items_moved,
			    ss.pages_moved, ss.no_memory);
		} else if (strcmp(w[0], "footprint") == 0) {
			struct store_stats ss;
			uint64_t meta = st.hdr->off_arena, held = 0;
			uint32_t k;

			store_stats(&st, &ss);
			for (k = 0; k < st.hdr->nclasses; k++)
				held += (uint64_t)st.hdr->classes[k].pages *
				    st.hdr->page_size;
			printf("items %" PRIu64 " chunks %.1f B/item, with "
			    "metadata %.1f B/item (%" PRIu64 " B before the "
			    "arena, %" PRIu64 " B of pages)\n", ss.items,
			    (double)ss.bytes_used / (double)ss.items,
			    (double)(meta + held) / (double)ss.items, meta,
			    held);
		} else if (strcmp(w[0], "classfill") == 0 && n == 3) {
			classfill(&st, uid, w[2]);
		} else if (strcmp(w[0], "mixed") == 0 && n == 3) {
			mixed(&st, uid, (unsigned)strtoul(w[2], NULL, 10));
		} else if (strcmp(w[0], "flush") == 0 && n == 2) {
			printf("%s\n", result(store_flush_user(&st, uid)));
		} else if (strcmp(w[0], "counts") == 0 && n == 2) {
			struct user_view v;

			if (store_user_get(&st, uid, &v) == ST_OK)
				printf("keys %" PRIu64 " bytes %" PRIu64 "\n",
				    v.keys, v.bytes);
			else
				printf("NO_USER\n");
		} else if (strcmp(w[0], "stats") == 0) {
			struct store_stats s;

			store_stats(&st, &s);
			printf("items %" PRIu64 " bytes_used %" PRIu64
			    " bytes_free %" PRIu64 " bytes_limit %" PRIu64 "\n",
			    s.items, s.bytes_used, s.bytes_free,
			    s.bytes_limit);
		} else if (strcmp(w[0], "corrupt") == 0 && n >= 2) {
			printf("%s\n", corrupt(&st, w, n));
		} else if (strcmp(w[0], "check") == 0) {
			fflush(stdout);
			if (store_check(&st, NULL) == 0)
				printf("clean\n");
			else
				store_check(&st, stdout);
		} else {
			printf("bad command: %s\n", w[0]);
		}
		fflush(stdout);
	}
	store_close(&st);
	return 0;
}
