/*
 * kvbench.c - a load generator for kvstored, memcached and Redis.
 *
 * N connections spread over T threads, each thread one epoll loop.  Every
 * connection keeps up to `depth` requests in flight and tops up as replies
 * come back; a reply always belongs to the oldest outstanding request (all
 * three protocols answer in order), so a connection is a FIFO of requests.
 * Values are a pure function of the key: any connection can verify any key
 * it reads back, whoever wrote it.
 *
 * Latency runs from the moment a request is handed to write() to the moment
 * its reply is parsed (with --connect-per-request: from connect()), into a
 * log-linear histogram (128 linear sub-buckets per power of two, so a
 * percentile is exact to within 0.8%), one per thread, merged at the end.
 *
 * Only loopback targets: this workplace never points a load at another host.
 *
 * Build: gcc -O2 -Wall -Wextra -pthread -o kvbench kvbench.c -lm
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S	1000000000ULL
#define NS_PER_MS	1000000ULL

#define H_SUB_BITS	7			/* 128 sub-buckets: < 0.8% error */
#define H_SUB		(1u << H_SUB_BITS)
#define H_MAX_EXP	40			/* up to 2^48 ns, ~3 days */
#define H_BUCKETS	((H_MAX_EXP + 2) * H_SUB)

#define VPOOL_SPAN	65536		/* distinct value start offsets */
#define READ_MIN	16384		/* room offered to each read() */
#define REPLY_LINE_MAX	8192		/* a reply line longer than this is garbage */
#define MAX_EVENTS	256
#define SCAN_EVERY_NS	(20 * NS_PER_MS)	/* reconnects and stall checks */
#define DRAIN_NS	(2 * NS_PER_S)	/* wait for replies after the stop */
#define FAILS_MAX	50		/* consecutive failed connects: give up */
#define REPORT_MAX	5		/* error messages printed per thread */
#define LITERAL_OVER	8192		/* native values longer go as {N} */

enum proto { P_NATIVE, P_MEMCACHE, P_RESP };
enum op { OP_GET, OP_SET, OP_LOGIN };
enum phase { PH_SETUP, PH_PREFILL, PH_WARMUP, PH_MEASURE, PH_STOP };
enum mode { M_SETUP, M_PREFILL, M_RUN };
enum cstate { CS_CLOSED, CS_CONNECTING, CS_OPEN, CS_DEAD };
enum rkind { RK_OK, RK_HIT, RK_MISS, RK_ERR };

static const char *proto_name[] = { "native", "memcache", "resp" };

struct options {
	const char	*host;
	const char	*port;
	enum proto	 proto;
	int		 conns;
	int		 threads;
	unsigned	 depth;
	unsigned	 set_w, get_w;
	uint64_t	 keys;
	int		 zipf;
	double		 zipf_s;
	unsigned	 ksize, vsize;
	double		 duration;
	int		 duration_set;
	double		 warmup;
	uint64_t	 requests;
	int		 cpr;
	int		 prefill;
	unsigned	 prefill_depth;
	const char	*user, *secret;
	int		 reg;
	uint64_t	 seed;
	double		 timeout;
	const char	*label;
	int		 quiet;
	int		 literal;
	double		 storm_rate;	/* --login-storm: logins a second */
	const char	*storm_port;	/* --login-port: kvstore(7) port */
};

static struct options opt = {
	.host = "127.0.0.1", .proto = P_MEMCACHE, .conns = 4, .threads = 0,
	.depth = 1, .set_w = 1, .get_w = 10, .keys = 100000, .zipf_s = 0.99,
	.ksize = 16, .vsize = 32, .duration = 5, .prefill_depth = 64,
	.seed = 1, .timeout = 10,
};

struct hist {
	uint64_t	n[H_BUCKETS];
	uint64_t	count, max;
	double		sum;
};

struct stats {
	struct hist	h;
	uint64_t	sets, gets, hits, misses;
	uint64_t	errors, verify_fail, conn_errors, timeouts, connects;
	uint64_t	prefilled;
};

struct buf {
	char		*p;
	size_t		 off, len, cap;
};

struct req {
	uint64_t	 key;
	uint64_t	 t0;
	int		 op;
};

struct conn {
	int		 fd;
	int		 state;
	int		 pollout;
	int		 login_pending;	/* a login's reply is still due */
	unsigned	 gidx;		/* index over all threads */
	struct req	*q;		/* FIFO of outstanding requests */
	unsigned	 qh, qn, qcap;
	unsigned	 nreq;		/* requests sent on this connection */
	struct buf	 ib, ob;
	uint64_t	 t_connect, last_progress, retry_at;
	unsigned	 fails;
	uint64_t	 pf_next, pf_end;	/* prefill stripe */
};

struct thr {
	int		 id;
	pthread_t	 th;
	int		 ep;
	int		 mode;
	int		 exhausted;
	struct conn	*c;
	int		 nc;
	uint64_t	 rng;
	unsigned	 reported;
	uint64_t	 end_ns;
	struct stats	 st;
};

struct result {
	int		 kind;
	const char	*data, *line, *key;
	size_t		 dlen, llen, klen;
};

static struct sockaddr_storage target;
static socklen_t target_len;
static char target_name[128];
static char *vpool;
static char login_req[256];
static size_t login_len;
static char vlen_str[24], klen_str[24];
static struct {
	double	zetan, alpha, eta, zeta2;
} zipf;

static _Atomic int phase = PH_SETUP;
static _Atomic uint64_t issued;
static _Atomic int threads_done;
static volatile sig_atomic_t interrupted;
static pthread_barrier_t b_setup, b_prefill, b_go;

/* ---- small things ------------------------------------------------------- */

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kvbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
mix64(uint64_t x)
{
	return splitmix(&x);
}

/* A uniform integer below n from 64 random bits, without a division. */
static uint64_t
below(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		die("out of memory");
	return p;
}

static void
buf_need(struct buf *b, size_t n)
{
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n <= b->cap)
		return;
	if (b->off > 0) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	while (b->len + n > b->cap)
		b->cap = b->cap ? b->cap * 2 : 4096;
	b->p = xrealloc(b->p, b->cap);
}

static char *
put_mem(char *d, const void *s, size_t n)
{
	memcpy(d, s, n);
	return d + n;
}

#define PUT_LIT(d, s)	put_mem((d), (s), sizeof(s) - 1)

/* ---- histogram ---------------------------------------------------------- */

static unsigned
h_index(uint64_t v)
{
	int e;

	if (v < 2 * H_SUB)
		return (unsigned)v;
	e = 63 - __builtin_clzll(v) - H_SUB_BITS;
	if (e > H_MAX_EXP) {
		e = H_MAX_EXP;
		v = (uint64_t)(2 * H_SUB - 1) << e;
	}
	return (unsigned)(e + 1) * H_SUB + (unsigned)(v >> e) - H_SUB;
}

/* The highest value that lands in bucket i. */
static uint64_t
h_upper(unsigned i)
{
	unsigned e;

	if (i < 2 * H_SUB)
		return i;
	e = i / H_SUB - 1;
	return (((uint64_t)(i % H_SUB + H_SUB) + 1) << e) - 1;
}

static void
h_record(struct hist *h, uint64_t v)
{
	h->n[h_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

static void
h_merge(struct hist *to, const struct hist *from)
{
	unsigned i;

	for (i = 0; i < H_BUCKETS; i++)
		to->n[i] += from->n[i];
	to->count += from->count;
	to->sum += from->sum;
	if (from->max > to->max)
		to->max = from->max;
}

/* The value at percentile p (0..100): no more than p% of samples exceed it. */
static uint64_t
h_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0, v;
	unsigned i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (want < 1)
		want = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want) {
			v = h_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

/* ---- keys and values ---------------------------------------------------- */

/* Key k as exactly ksize bytes: 'k' and k in decimal, zero-padded. */
static void
fmt_key(char *d, uint64_t k)
{
	char *p = d + opt.ksize;

	while (p > d + 1) {
		*--p = (char)('0' + k % 10);
		k /= 10;
	}
	d[0] = 'k';
}

/* The value of key k: vsize bytes of a fixed random pool, from an offset
 * that the key picks.  Bare-token safe: letters, digits, '-' and '_'. */
static const char *
value_of(uint64_t k)
{
	return vpool + (mix64(k ^ 0x6b7662656e6368ULL) & (VPOOL_SPAN - 1));
}

static void
vpool_init(void)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t s = 42, r = 0;
	size_t i, n = VPOOL_SPAN + opt.vsize;

	vpool = xrealloc(NULL, n);
	for (i = 0; i < n; i++) {
		if (i % 10 == 0)
			r = splitmix(&s);
		vpool[i] = abc[r & 63];
		r >>= 6;
	}
}

/* Gray et al., "Quickly generating billion-record synthetic databases", as
 * YCSB uses it; the rank is then scattered so hot keys are not neighbours. */
static void
zipf_init(void)
{
	double n = (double)opt.keys, th = opt.zipf_s;
	uint64_t i;

	zipf.zetan = 0;
	for (i = opt.keys; i >= 1; i--)		/* small terms first */
		zipf.zetan += pow((double)i, -th);
	zipf.zeta2 = 1 + pow(0.5, th);
	zipf.alpha = 1 / (1 - th);
	zipf.eta = (1 - pow(2 / n, 1 - th)) / (1 - zipf.zeta2 / zipf.zetan);
}

static uint64_t
zipf_next(uint64_t *rng)
{
	double u = (double)(splitmix(rng) >> 11) * 0x1p-53;
	double uz = u * zipf.zetan;
	uint64_t rank;

	if (uz < 1)
		rank = 0;
	else if (uz < zipf.zeta2)
		rank = 1;
	else
		rank = (uint64_t)((double)opt.keys *
		    pow(zipf.eta * u - zipf.eta + 1, zipf.alpha));
	if (rank >= opt.keys)
		rank = opt.keys - 1;
	return mix64(rank) % opt.keys;
}

/* ---- requests ----------------------------------------------------------- */

static void
put_request(struct conn *c, int op, uint64_t k)
{
	struct buf *b = &c->ob;
	const char *v;
	char *p;

	buf_need(b, opt.ksize + opt.vsize + 96);
	p = b->p + b->len;
	switch (opt.proto) {
	case P_NATIVE:
		if (op == OP_GET) {
			p = PUT_LIT(p, "get ");
			fmt_key(p, k);
			p = PUT_LIT(p + opt.ksize, "\r\n");
			break;
		}
		p = PUT_LIT(p, "put ");
		fmt_key(p, k);
		p += opt.ksize;
		if (opt.vsize == 0)
			p = PUT_LIT(p, " \"\"\r\n");
		else if (opt.literal || opt.vsize > LITERAL_OVER) {
			p = PUT_LIT(p, " {");
			p = put_mem(p, vlen_str, strlen(vlen_str));
			p = PUT_LIT(p, "}\r\n");
			p = put_mem(p, value_of(k), opt.vsize);
			p = PUT_LIT(p, "\r\n");
		} else {
			*p++ = ' ';
			p = put_mem(p, value_of(k), opt.vsize);
			p = PUT_LIT(p, "\r\n");
		}
		break;
	case P_MEMCACHE:
		if (op == OP_GET) {
			p = PUT_LIT(p, "get ");
			fmt_key(p, k);
			p = PUT_LIT(p + opt.ksize, "\r\n");
			break;
		}
		p = PUT_LIT(p, "set ");
		fmt_key(p, k);
		p = PUT_LIT(p + opt.ksize, " 0 0 ");
		p = put_mem(p, vlen_str, strlen(vlen_str));
		p = PUT_LIT(p, "\r\n");
		p = put_mem(p, value_of(k), opt.vsize);
		p = PUT_LIT(p, "\r\n");
		break;
	case P_RESP:
		p = op == OP_GET ? PUT_LIT(p, "*2\r\n$3\r\nGET\r\n$") :
		    PUT_LIT(p, "*3\r\n$3\r\nSET\r\n$");
		p = put_mem(p, klen_str, strlen(klen_str));
		p = PUT_LIT(p, "\r\n");
		fmt_key(p, k);
		p = PUT_LIT(p + opt.ksize, "\r\n");
		if (op == OP_SET) {
			*p++ = '$';
			p = put_mem(p, vlen_str, strlen(vlen_str));
			p = PUT_LIT(p, "\r\n");
			v = value_of(k);
			p = put_mem(p, v, opt.vsize);
			p = PUT_LIT(p, "\r\n");
		}
		break;
	}
	b->len = (size_t)(p - b->p);
}

static struct req *
q_push(struct conn *c, int op, uint64_t k, uint64_t t0)
{
	struct req *r = &c->q[(c->qh + c->qn) % c->qcap];

	c->qn++;
	r->op = op;
	r->key = k;
	r->t0 = t0;
	return r;
}

static void
q_pop(struct conn *c)
{
	c->qh = (c->qh + 1) % c->qcap;
	c->qn--;
}

/* ---- reply parsers: >0 bytes used, 0 need more, -1 framing lost --------- */

static ssize_t
get_line(const char *p, size_t n, struct result *res)
{
	const char *lf = memchr(p, '\n', n < REPLY_LINE_MAX ? n : REPLY_LINE_MAX);
	size_t l;

	if (lf == NULL)
		return n >= REPLY_LINE_MAX ? -1 : 0;
	l = (size_t)(lf - p);
	if (l > 0 && p[l - 1] == '\r')
		l--;
	res->line = p;
	res->llen = l;
	return lf - p + 1;
}

static int
line_is(const struct result *res, const char *s)
{
	size_t n = strlen(s);

	return res->llen == n && memcmp(res->line, s, n) == 0;
}

static int
line_starts(const struct result *res, const char *s)
{
	size_t n = strlen(s);

	return res->llen >= n && memcmp(res->line, s, n) == 0;
}

/* A decimal number in [p, end); -1 if there is none or it is too big. */
static int64_t
parse_num(const char *p, const char *end, const char **stop)
{
	int64_t v = 0;
	const char *s = p;

	while (p < end && *p >= '0' && *p <= '9' && p - s < 15)
		v = v * 10 + (*p++ - '0');
	if (p == s || (p < end && *p >= '0' && *p <= '9'))
		return -1;
	if (stop != NULL)
		*stop = p;
	return v;
}

/* The value's data: n bytes after the header line, then CRLF, then tail. */
static ssize_t
take_data(const char *p, size_t avail, size_t m, int64_t n, const char *tail,
    struct result *res)
{
	size_t tl = strlen(tail), need;

	if (n < 0)
		return -1;
	need = m + (size_t)n + 2 + tl;
	if (avail < need)
		return 0;
	if (memcmp(p + m + n, "\r\n", 2) != 0 ||
	    memcmp(p + m + n + 2, tail, tl) != 0)
		return -1;
	res->kind = RK_HIT;
	res->data = p + m;
	res->dlen = (size_t)n;
	return (ssize_t)need;
}

static ssize_t
parse_native(const char *p, size_t n, struct result *res)
{
	const char *end;
	ssize_t m;

	if ((m = get_line(p, n, res)) <= 0)
		return m;
	end = res->line + res->llen;
	if (line_starts(res, "VALUE "))
		return take_data(p, n, (size_t)m,
		    parse_num(res->line + 6, end, NULL), "", res);
	if (line_is(res, "NOT_FOUND"))
		res->kind = RK_MISS;
	else if (line_is(res, "OK") || line_starts(res, "OK "))
		res->kind = RK_OK;
	else
		res->kind = RK_ERR;
	return m;
}

static ssize_t
parse_memcache(const char *p, size_t n, struct result *res)
{
	const char *s, *end, *sp;
	ssize_t m;

	if ((m = get_line(p, n, res)) <= 0)
		return m;
	end = res->line + res->llen;
	if (line_is(res, "END"))
		res->kind = RK_MISS;
	else if (line_is(res, "STORED"))
		res->kind = RK_OK;
	else if (line_starts(res, "VALUE ")) {
		/* VALUE <key> <flags> <bytes> [<cas>] */
		s = res->line + 6;
		if ((sp = memchr(s, ' ', (size_t)(end - s))) == NULL)
			return -1;
		res->key = s;
		res->klen = (size_t)(sp - s);
		if (parse_num(sp + 1, end, &s) < 0 || s >= end || *s != ' ')
			return -1;
		return take_data(p, n, (size_t)m, parse_num(s + 1, end, NULL),
		    "END\r\n", res);
	} else
		res->kind = RK_ERR;
	return m;
}

static ssize_t
parse_resp(const char *p, size_t n, struct result *res)
{
	const char *end;
	ssize_t m;

	if ((m = get_line(p, n, res)) <= 0)
		return m;
	end = res->line + res->llen;
	switch (res->llen > 0 ? res->line[0] : 0) {
	case '+':
		res->kind = RK_OK;
		return m;
	case '-':
	case ':':
		res->kind = RK_ERR;
		return m;
	case '$':
		if (line_is(res, "$-1")) {
			res->kind = RK_MISS;
			return m;
		}
		return take_data(p, n, (size_t)m,
		    parse_num(res->line + 1, end, NULL), "", res);
	default:
		return -1;
	}
}

static ssize_t
parse_reply(const char *p, size_t n, struct result *res)
{
	memset(res, 0, sizeof(*res));
	switch (opt.proto) {
	case P_NATIVE:
		return parse_native(p, n, res);
	case P_MEMCACHE:
		return parse_memcache(p, n, res);
	default:
		return parse_resp(p, n, res);
	}
}

/* ---- connections -------------------------------------------------------- */

/* One line on stderr, in one write: threads report at the same time. */
static void
report(struct thr *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (t->reported++ >= REPORT_MAX)
		return;
	n = snprintf(line, sizeof(line), "kvbench: %s: ", target_name);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
}

static int
measuring(const struct thr *t)
{
	return t->mode == M_RUN &&
	    atomic_load_explicit(&phase, memory_order_relaxed) == PH_MEASURE;
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->state = CS_CLOSED;
	c->pollout = 0;
	c->qh = c->qn = 0;
	c->login_pending = 0;
	c->ib.off = c->ib.len = 0;
	c->ob.off = c->ob.len = 0;
}

/* The connection failed: what was in flight is lost; reconnect later. */
static void
conn_break(struct thr *t, struct conn *c, uint64_t now, const char *why)
{
	unsigned i, lost = 0;

	for (i = 0; i < c->qn; i++)
		if (c->q[(c->qh + i) % c->qcap].op != OP_LOGIN)
			lost++;
	t->st.errors += lost;
	t->st.conn_errors++;
	report(t, "connection %u: %s (%u requests lost)", c->gidx, why, lost);
	conn_close(c);
	c->fails++;
	if (t->mode == M_SETUP && c->fails >= 3)
		die("%s: cannot connect: %s", target_name, why);
	c->retry_at = now + (c->fails > 1 ?
	    (c->fails < 20 ? c->fails : 20) * 10 * NS_PER_MS : 0);
	if (c->fails >= FAILS_MAX) {
		report(t, "connection %u: giving up after %u failures",
		    c->gidx, c->fails);
		c->state = CS_DEAD;
	}
}

static int
may_open(const struct thr *t)
{
	if (t->mode != M_RUN)
		return 1;
	return atomic_load_explicit(&phase, memory_order_relaxed) != PH_STOP &&
	    !t->exhausted;
}

/* Pick the next request for c; 0 when c should not send one now. */
static int
next_op(struct thr *t, struct conn *c, int *op, uint64_t *k)
{
	int ph;

	if (t->mode == M_PREFILL) {
		if (c->pf_next >= c->pf_end ||
		    c->qn - (unsigned)c->login_pending >= opt.prefill_depth)
			return 0;
		*op = OP_SET;
		*k = c->pf_next++;
		return 1;
	}
	if (t->mode != M_RUN ||
	    c->qn - (unsigned)c->login_pending >= opt.depth ||
	    (opt.cpr && c->nreq > 0) || t->exhausted)
		return 0;
	ph = atomic_load_explicit(&phase, memory_order_relaxed);
	if (ph == PH_STOP)
		return 0;
	if (opt.requests > 0 && ph == PH_MEASURE &&
	    atomic_fetch_add_explicit(&issued, 1, memory_order_relaxed) >=
	    opt.requests) {
		t->exhausted = 1;
		return 0;
	}
	*op = below(splitmix(&t->rng), opt.set_w + opt.get_w) < opt.set_w ?
	    OP_SET : OP_GET;
	*k = opt.zipf ? zipf_next(&t->rng) :
	    below(splitmix(&t->rng), opt.keys);
	return 1;
}

static void
set_pollout(struct thr *t, struct conn *c, int on)
{
	struct epoll_event ev;

	if (c->pollout == on)
		return;
	ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->pollout = on;
}

static int
conn_flush(struct thr *t, struct conn *c, uint64_t now)
{
	ssize_t n;

	while (c->ob.off < c->ob.len) {
		n = send(c->fd, c->ob.p + c->ob.off, c->ob.len - c->ob.off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->ob.off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			set_pollout(t, c, 1);
			return 0;
		}
		conn_break(t, c, now, n == 0 ? "write returned 0" :
		    strerror(errno));
		return -1;
	}
	c->ob.off = c->ob.len = 0;
	set_pollout(t, c, 0);
	return 0;
}

/* Top c up to its depth, then write what it has. */
static void
conn_fill(struct thr *t, struct conn *c, uint64_t now)
{
	uint64_t k;
	int op;

	if (c->state != CS_OPEN)
		return;
	while (next_op(t, c, &op, &k)) {
		if (c->qn == 0)		/* the stall clock starts now */
			c->last_progress = now;
		put_request(c, op, k);
		q_push(c, op, k, opt.cpr && t->mode == M_RUN ? c->t_connect :
		    now);
		c->nreq++;
	}
	conn_flush(t, c, now);
}

static void
conn_opened(struct thr *t, struct conn *c, uint64_t now)
{
	c->state = CS_OPEN;
	c->fails = 0;
	c->last_progress = now;
	if (measuring(t))
		t->st.connects++;
	conn_fill(t, c, now);
}

static void
conn_open(struct thr *t, struct conn *c, uint64_t now)
{
	struct epoll_event ev;
	int fd, one = 1, rc;

	conn_close(c);
	c->nreq = 0;
	c->t_connect = c->last_progress = now;
	fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		conn_break(t, c, now, strerror(errno));
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	rc = connect(fd, (struct sockaddr *)&target, target_len);
	if (rc == -1 && errno != EINPROGRESS) {
		conn_break(t, c, now, strerror(errno));
		return;
	}
	ev.events = EPOLLIN | (rc == -1 ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	c->pollout = rc == -1;
	if (opt.proto == P_NATIVE) {
		buf_need(&c->ob, login_len);
		memcpy(c->ob.p + c->ob.len, login_req, login_len);
		c->ob.len += login_len;
		q_push(c, OP_LOGIN, 0, now);
		c->login_pending = 1;
	}
	if (rc == -1)
		c->state = CS_CONNECTING;
	else
		conn_opened(t, c, now);
}

static void
verify(struct thr *t, const struct req *r, const struct result *res)
{
	char key[256];

	if (res->key != NULL) {
		fmt_key(key, r->key);
		if (res->klen != opt.ksize ||
		    memcmp(res->key, key, opt.ksize) != 0) {
			t->st.verify_fail++;
			report(t, "verify: asked for %.*s, got key %.*s",
			    (int)opt.ksize, key, (int)res->klen, res->key);
			return;
		}
	}
	if (res->dlen != opt.vsize) {
		t->st.verify_fail++;
		fmt_key(key, r->key);
		report(t, "verify: key %.*s: got %zu bytes, wrote %u",
		    (int)opt.ksize, key, res->dlen, opt.vsize);
	} else if (memcmp(res->data, value_of(r->key), opt.vsize) != 0) {
		t->st.verify_fail++;
		fmt_key(key, r->key);
		report(t, "verify: key %.*s: not the value written",
		    (int)opt.ksize, key);
	}
}

/* One reply for the oldest request r. */
static void
complete(struct thr *t, struct conn *c, const struct req *r,
    const struct result *res, uint64_t now)
{
	int ok;

	if (r->op == OP_LOGIN) {
		c->login_pending = 0;
		if (res->kind == RK_OK)
			return;
		if (t->mode == M_SETUP)
			die("%s: login as %s: %.*s", target_name, opt.user,
			    (int)res->llen, res->line);
		t->st.errors++;
		report(t, "connection %u: login: %.*s", c->gidx,
		    (int)res->llen, res->line);
		return;
	}
	if (res->kind == RK_HIT)
		verify(t, r, res);
	ok = r->op == OP_SET ? res->kind == RK_OK :
	    res->kind == RK_HIT || res->kind == RK_MISS;
	if (!ok) {
		t->st.errors++;
		report(t, "%s %" PRIu64 ": %.*s", r->op == OP_SET ? "set" :
		    "get", r->key, (int)(res->llen < 200 ? res->llen : 200),
		    res->line ? res->line : "");
		return;
	}
	if (t->mode == M_PREFILL) {
		t->st.prefilled++;
		return;
	}
	if (!measuring(t))
		return;
	if (r->op == OP_SET)
		t->st.sets++;
	else {
		t->st.gets++;
		if (res->kind == RK_HIT)
			t->st.hits++;
		else
			t->st.misses++;
	}
	h_record(&t->st.h, now > r->t0 ? now - r->t0 : 0);
}

static void
conn_read(struct thr *t, struct conn *c)
{
	struct result res;
	uint64_t now;
	ssize_t n;

	buf_need(&c->ib, READ_MIN);
	n = read(c->fd, c->ib.p + c->ib.len, c->ib.cap - c->ib.len);
	now = now_ns();
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_break(t, c, now, n == 0 ? "closed by the server" :
		    strerror(errno));
		return;
	}
	c->ib.len += (size_t)n;
	c->last_progress = now;
	while (c->qn > 0 && c->ib.off < c->ib.len) {
		n = parse_reply(c->ib.p + c->ib.off, c->ib.len - c->ib.off,
		    &res);
		if (n == 0)
			break;
		if (n < 0) {
			conn_break(t, c, now, "cannot parse the reply");
			return;
		}
		complete(t, c, &c->q[c->qh], &res, now);
		q_pop(c);
		c->ib.off += (size_t)n;
	}
	if (c->qn == 0 && c->ib.off < c->ib.len) {
		conn_break(t, c, now, "reply to no request");
		return;
	}
	if (opt.cpr && t->mode == M_RUN && c->qn == 0 && c->nreq > 0) {
		conn_close(c);
		if (may_open(t))
			conn_open(t, c, now);
		return;
	}
	conn_fill(t, c, now);
}

static void
conn_event(struct thr *t, struct conn *c, uint32_t ev)
{
	int err = 0;
	socklen_t len = sizeof(err);
	uint64_t now;

	if (c->state == CS_CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		now = now_ns();
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			conn_break(t, c, now, strerror(err));
			return;
		}
		conn_opened(t, c, now);
		return;
	}
	if (c->state != CS_OPEN)
		return;
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(t, c);
	if (c->state == CS_OPEN && c->pollout && (ev & EPOLLOUT))
		conn_flush(t, c, now_ns());
}

/* Reconnect what broke, give up on what stalls. */
static void
scan(struct thr *t, uint64_t now)
{
	uint64_t limit = (uint64_t)(opt.timeout * NS_PER_S);
	struct conn *c;
	int i;

	if (t->mode == M_SETUP && limit < 60 * NS_PER_S)
		limit = 60 * NS_PER_S;	/* logins queue behind each other */
	for (i = 0; i < t->nc; i++) {
		c = &t->c[i];
		if (c->state == CS_CLOSED && now >= c->retry_at && may_open(t))
			conn_open(t, c, now);
		else if ((c->state == CS_CONNECTING || c->qn > 0) &&
		    now - c->last_progress > limit) {
			t->st.timeouts++;
			conn_break(t, c, now, "no reply: timed out");
		}
	}
}

/* True when this thread's part of the current mode is over. */
static int
finished(struct thr *t, uint64_t now, uint64_t *drain_by)
{
	int i, idle = 1, dead = 0;
	struct conn *c;

	for (i = 0; i < t->nc; i++) {
		c = &t->c[i];
		if (c->state == CS_DEAD) {
			dead++;
			continue;
		}
		if (c->state == CS_CONNECTING || c->qn > 0 ||
		    (t->mode == M_SETUP && c->state != CS_OPEN) ||
		    (t->mode == M_PREFILL && c->pf_next < c->pf_end))
			idle = 0;
	}
	if (dead == t->nc)
		return 1;
	if (t->mode != M_RUN)
		return idle;
	if (atomic_load_explicit(&phase, memory_order_relaxed) == PH_STOP ||
	    t->exhausted) {
		if (*drain_by == 0)
			*drain_by = now + DRAIN_NS;
		return idle || now > *drain_by;
	}
	return 0;
}

static void
loop(struct thr *t, int mode)
{
	struct epoll_event ev[MAX_EVENTS];
	uint64_t now, last_scan = 0, drain_by = 0;
	int i, n;

	t->mode = mode;
	now = now_ns();
	for (i = 0; i < t->nc; i++) {
		if (t->c[i].state == CS_CLOSED && may_open(t))
			conn_open(t, &t->c[i], now);
		else
			conn_fill(t, &t->c[i], now);
	}
	for (;;) {
		n = epoll_wait(t->ep, ev, MAX_EVENTS, 10);
		for (i = 0; i < n; i++)
			conn_event(t, ev[i].data.ptr, ev[i].events);
		now = now_ns();
		if (now - last_scan >= SCAN_EVERY_NS) {
			last_scan = now;
			scan(t, now);
			if (finished(t, now, &drain_by))
				break;
		}
	}
}

static void *
thread_main(void *arg)
{
	struct thr *t = arg;
	int i;

	if (!opt.cpr || opt.prefill)
		loop(t, M_SETUP);
	pthread_barrier_wait(&b_setup);
	if (opt.prefill)
		loop(t, M_PREFILL);
	pthread_barrier_wait(&b_prefill);
	if (opt.cpr)
		for (i = 0; i < t->nc; i++)
			if (t->c[i].state != CS_DEAD)
				conn_close(&t->c[i]);
	pthread_barrier_wait(&b_go);
	loop(t, M_RUN);
	t->end_ns = now_ns();
	atomic_fetch_add(&threads_done, 1);
	for (i = 0; i < t->nc; i++)
		if (t->c[i].state != CS_DEAD)
			conn_close(&t->c[i]);
	return NULL;
}

/* ---- setup -------------------------------------------------------------- */

static int
is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6;
	const uint8_t *b;

	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
		    >> 24) == 127;
	if (sa->sa_family != AF_INET6)
		return 0;
	s6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	b = s6->sin6_addr.s6_addr;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127;
}

static void
resolve(void)
{
	struct addrinfo hints, *res, *ai;
	char host[INET6_ADDRSTRLEN];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(opt.host, opt.port, &hints, &res)) != 0)
		die("%s: %s", opt.host, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (!is_loopback(ai->ai_addr)) {
			getnameinfo(ai->ai_addr, ai->ai_addrlen, host,
			    sizeof(host), NULL, 0, NI_NUMERICHOST);
			fprintf(stderr, "kvbench: %s (%s) is not a loopback "
			    "address: only 127.0.0.0/8 and ::1 are allowed\n",
			    opt.host, host);
			exit(2);
		}
	memcpy(&target, res->ai_addr, res->ai_addrlen);
	target_len = res->ai_addrlen;
	getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof(host), NULL, 0,
	    NI_NUMERICHOST);
	snprintf(target_name, sizeof(target_name),
	    target.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, opt.port);
	freeaddrinfo(res);
}

/* One blocking request/reply line, for `register` before the run. */
static void
do_register(void)
{
	char req[256], line[512];
	struct timeval tv = { 30, 0 };
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
	    -1 || connect(fd, (struct sockaddr *)&target, target_len) == -1)
		die("%s: %s", target_name, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "register %s %s\r\n", opt.user, opt.secret);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		die("%s: write: %s", target_name, strerror(errno));
	while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL) {
		if ((n = read(fd, line + len, sizeof(line) - 1 - len)) <= 0)
			die("%s: register: no reply", target_name);
		len += (size_t)n;
	}
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	close(fd);
	if (strncmp(line, "OK", 2) == 0)
		return;
	if (strcmp(line, "ERR auth name taken") == 0) {
		fprintf(stderr, "kvbench: %s: user %s exists, logging in\n",
		    target_name, opt.user);
		return;
	}
	die("%s: register %s: %s", target_name, opt.user, line);
}

/*
 * --login-storm RATE: while the load runs, open a connection to the
 * kvstore(7) port (--login-port, default -p) RATE times a second, log in
 * as -u/-S, close.  Each costs the server a yescrypt check (~26 ms): the
 * load's latency then shows whether a login stalls the other connections.
 */
static uint64_t storm_ok, storm_fail, storm_max_us;
static pthread_t storm_th;

static int
storm_login(const struct sockaddr_storage *to)
{
	char req[256], line[256];
	struct timeval tv = { 10, 0 };
	size_t len = 0;
	ssize_t n;
	int fd, ok;

	if ((fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "login %s %s\r\n", opt.user, opt.secret);
	if (connect(fd, (const struct sockaddr *)to, target_len) == -1 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return 0;
	}
	while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL) {
		if ((n = read(fd, line + len, sizeof(line) - 1 - len)) <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	ok = len >= 3 && strncmp(line, "OK ", 3) == 0;
	return ok;
}

static void *
storm_main(void *arg)
{
	struct sockaddr_storage to = target;
	uint64_t period = (uint64_t)(1e9 / opt.storm_rate), next, t0, us;
	struct timespec ts;
	unsigned long port = strtoul(opt.storm_port ? opt.storm_port :
	    opt.port, NULL, 10);

	(void)arg;
	if (to.ss_family == AF_INET)
		((struct sockaddr_in *)&to)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&to)->sin6_port = htons((uint16_t)port);
	while (atomic_load(&phase) < PH_WARMUP)
		usleep(1000);
	next = now_ns();
	while (atomic_load(&phase) != PH_STOP) {
		t0 = now_ns();
		if (t0 < next) {
			ts.tv_sec = (time_t)((next - t0) / NS_PER_S);
			ts.tv_nsec = (long)((next - t0) % NS_PER_S);
			nanosleep(&ts, NULL);
			continue;
		}
		next += period;
		if (storm_login(&to))
			storm_ok++;
		else
			storm_fail++;
		us = (now_ns() - t0) / 1000;
		if (us > storm_max_us)
			storm_max_us = us;
	}
	return NULL;
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
"usage: kvbench -p PORT [options]\n"
"  -H, --host HOST           server, loopback only (127.0.0.1)\n"
"  -p, --port PORT           server port (required)\n"
"  -P, --proto PROTO         native | memcache | resp (memcache)\n"
"  -c, --conns N             connections (4)\n"
"  -t, --threads N           threads (min(conns, 2))\n"
"  -d, --depth N             requests in flight per connection (1)\n"
"  -r, --ratio SET:GET       operation mix (1:10)\n"
"  -k, --keys N              key space (100000)\n"
"      --dist uniform|zipf   key distribution (uniform)\n"
"      --zipf-s S            zipf exponent, 0 < S < 1 (0.99)\n"
"      --key-size N          key length in bytes (16)\n"
"      --value-size N        value length in bytes (32)\n"
"  -D, --duration SECS       measured time (5; with -n: none); 0 with\n"
"                            --prefill and no -n: load only\n"
"  -n, --requests N          stop after N requests (or -D, if sooner)\n"
"  -w, --warmup SECS         run unmeasured first (0)\n"
"      --prefill             set every key once before the run\n"
"      --prefill-depth N     pipeline depth of the prefill (64)\n"
"  -C, --connect-per-request a new connection for every request\n"
"  -u, --user NAME           native: log in as NAME\n"
"  -S, --secret SECRET       native: with this secret\n"
"      --register            native: register NAME first (taken: log in)\n"
"      --literal             native: send values as {N} literals\n"
"      --seed N              random seed (1)\n"
"      --timeout SECS        a request without reply this long fails (10)\n"
"  --login-storm RATE        also log in (-u, -S) RATE times a second on\n"
"                            new connections to --login-port (default -p)\n"
"  --login-port PORT         the kvstore(7) port for --login-storm\n"
"  -l, --label TEXT          added to the RESULT line\n"
"  -q, --quiet               print only the RESULT line\n"
"  -h, --help\n");
	exit(status);
}

static uint64_t
num_arg(const char *s, const char *what, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || *s == '-' || v < min ||
	    v > max) {
		fprintf(stderr, "kvbench: bad %s: %s\n", what, s);
		usage(2);
	}
	return v;
}

static double
secs_arg(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0) || v > 1e6) {
		fprintf(stderr, "kvbench: bad %s: %s\n", what, s);
		usage(2);
	}
	return v;
}

static void
parse_args(int argc, char **argv)
{
	enum { O_DIST = 256, O_ZIPF_S, O_KSIZE, O_VSIZE, O_PREFILL, O_PFDEPTH,
	    O_REGISTER, O_LITERAL, O_SEED, O_TIMEOUT, O_STORM, O_STORM_PORT };
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "proto", required_argument, NULL, 'P' },
		{ "conns", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "depth", required_argument, NULL, 'd' },
		{ "ratio", required_argument, NULL, 'r' },
		{ "keys", required_argument, NULL, 'k' },
		{ "dist", required_argument, NULL, O_DIST },
		{ "zipf-s", required_argument, NULL, O_ZIPF_S },
		{ "key-size", required_argument, NULL, O_KSIZE },
		{ "value-size", required_argument, NULL, O_VSIZE },
		{ "duration", required_argument, NULL, 'D' },
		{ "requests", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "prefill", no_argument, NULL, O_PREFILL },
		{ "prefill-depth", required_argument, NULL, O_PFDEPTH },
		{ "connect-per-request", no_argument, NULL, 'C' },
		{ "user", required_argument, NULL, 'u' },
		{ "secret", required_argument, NULL, 'S' },
		{ "register", no_argument, NULL, O_REGISTER },
		{ "literal", no_argument, NULL, O_LITERAL },
		{ "seed", required_argument, NULL, O_SEED },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "login-storm", required_argument, NULL, O_STORM },
		{ "login-port", required_argument, NULL, O_STORM_PORT },
		{ "label", required_argument, NULL, 'l' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned digits;
	uint64_t k;
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "H:p:P:c:t:d:r:k:D:n:w:Cu:S:l:qh",
	    lo, NULL)) != -1) {
		switch (ch) {
		case 'H':
			opt.host = optarg;
			break;
		case 'p':
			num_arg(optarg, "port", 1, 65535);
			opt.port = optarg;
			break;
		case 'P':
			if (strcmp(optarg, "native") == 0)
				opt.proto = P_NATIVE;
			else if (strcmp(optarg, "memcache") == 0 ||
			    strcmp(optarg, "memcached") == 0)
				opt.proto = P_MEMCACHE;
			else if (strcmp(optarg, "resp") == 0 ||
			    strcmp(optarg, "redis") == 0)
				opt.proto = P_RESP;
			else {
				fprintf(stderr, "kvbench: bad protocol: %s\n",
				    optarg);
				usage(2);
			}
			break;
		case 'c':
			opt.conns = (int)num_arg(optarg, "conns", 1, 100000);
			break;
		case 't':
			opt.threads = (int)num_arg(optarg, "threads", 1, 256);
			break;
		case 'd':
			opt.depth = (unsigned)num_arg(optarg, "depth", 1, 4096);
			break;
		case 'r':
			opt.set_w = (unsigned)strtoul(optarg, &end, 10);
			if (*end != ':' || end == optarg) {
				fprintf(stderr, "kvbench: bad ratio: %s\n",
				    optarg);
				usage(2);
			}
			opt.get_w = (unsigned)num_arg(end + 1, "ratio", 0,
			    1000000);
			if (opt.set_w + opt.get_w == 0 || opt.set_w > 1000000) {
				fprintf(stderr, "kvbench: bad ratio: %s\n",
				    optarg);
				usage(2);
			}
			break;
		case 'k':
			opt.keys = num_arg(optarg, "keys", 1, 1ULL << 40);
			break;
		case O_DIST:
			if (strcmp(optarg, "zipf") == 0)
				opt.zipf = 1;
			else if (strcmp(optarg, "uniform") == 0)
				opt.zipf = 0;
			else {
				fprintf(stderr, "kvbench: bad dist: %s\n",
				    optarg);
				usage(2);
			}
			break;
		case O_ZIPF_S:
			opt.zipf_s = secs_arg(optarg, "zipf-s");
			if (opt.zipf_s <= 0 || opt.zipf_s >= 1) {
				fprintf(stderr, "kvbench: zipf-s must be "
				    "between 0 and 1\n");
				usage(2);
			}
			break;
		case O_KSIZE:
			opt.ksize = (unsigned)num_arg(optarg, "key-size", 2,
			    250);
			break;
		case O_VSIZE:
			opt.vsize = (unsigned)num_arg(optarg, "value-size", 0,
			    64 << 20);
			break;
		case 'D':
			opt.duration = secs_arg(optarg, "duration");
			opt.duration_set = 1;
			break;
		case 'n':
			opt.requests = num_arg(optarg, "requests", 1,
			    UINT64_MAX / 2);
			break;
		case 'w':
			opt.warmup = secs_arg(optarg, "warmup");
			break;
		case O_PREFILL:
			opt.prefill = 1;
			break;
		case O_PFDEPTH:
			opt.prefill_depth = (unsigned)num_arg(optarg,
			    "prefill-depth", 1, 4096);
			break;
		case 'C':
			opt.cpr = 1;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'S':
			opt.secret = optarg;
			break;
		case O_REGISTER:
			opt.reg = 1;
			break;
		case O_LITERAL:
			opt.literal = 1;
			break;
		case O_SEED:
			opt.seed = num_arg(optarg, "seed", 0, UINT64_MAX);
			break;
		case O_TIMEOUT:
			opt.timeout = secs_arg(optarg, "timeout");
			break;
		case O_STORM:
			opt.storm_rate = strtod(optarg, &end);
			if (*end != '\0' || !(opt.storm_rate > 0 &&
			    opt.storm_rate <= 1000)) {
				fprintf(stderr, "kvbench: bad --login-storm: %s\n",
				    optarg);
				usage(2);
			}
			break;
		case O_STORM_PORT:
			opt.storm_port = optarg;
			break;
		case 'l':
			opt.label = optarg;
			break;
		case 'q':
			opt.quiet = 1;
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc || opt.port == NULL)
		usage(2);
	for (digits = 1, k = opt.keys - 1; k >= 10; k /= 10)
		digits++;
	if (opt.ksize < digits + 1)
		die("--key-size %u is too short for %" PRIu64 " keys (need %u)",
		    opt.ksize, opt.keys, digits + 1);
	if (opt.proto == P_NATIVE && (opt.user == NULL || opt.secret == NULL))
		die("the native protocol needs --user and --secret");
	if (opt.proto != P_NATIVE && ((opt.user && opt.storm_rate == 0) ||
	    opt.reg))
		die("--user and --register are for the native protocol "
		    "(or --login-storm)");
	if (opt.requests > 0 && !opt.duration_set)
		opt.duration = 0;	/* -n alone: run them all */
	if (opt.duration == 0 && opt.requests == 0 && !opt.prefill)
		die("nothing to do: --duration 0 without --requests or "
		    "--prefill");
	if (opt.threads == 0)
		opt.threads = 2;
	if (opt.threads > opt.conns)
		opt.threads = opt.conns;
	if (opt.timeout <= 0)
		opt.timeout = 1e6;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)opt.conns + 32)
		die("%d connections need more file descriptors than the limit "
		    "(%lu)", opt.conns, (unsigned long)rl.rlim_cur);
}

static struct thr *
make_threads(void)
{
	struct thr *t = xrealloc(NULL, sizeof(*t) * (size_t)opt.threads);
	unsigned qcap = (opt.depth > opt.prefill_depth ? opt.depth :
	    opt.prefill_depth) + 2;
	int i, j, g = 0;
	struct conn *c;

	memset(t, 0, sizeof(*t) * (size_t)opt.threads);
	for (i = 0; i < opt.threads; i++) {
		t[i].id = i;
		t[i].rng = mix64(opt.seed * 1000003ULL + (uint64_t)i);
		t[i].nc = opt.conns / opt.threads + (i < opt.conns % opt.threads);
		t[i].c = xrealloc(NULL, sizeof(struct conn) * (size_t)t[i].nc);
		memset(t[i].c, 0, sizeof(struct conn) * (size_t)t[i].nc);
		if ((t[i].ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			die("epoll_create1: %s", strerror(errno));
		for (j = 0; j < t[i].nc; j++, g++) {
			c = &t[i].c[j];
			c->fd = -1;
			c->gidx = (unsigned)g;
			c->qcap = qcap;
			c->q = xrealloc(NULL, sizeof(struct req) * qcap);
			c->pf_next = (uint64_t)((unsigned __int128)opt.keys *
			    (unsigned)g / (unsigned)opt.conns);
			c->pf_end = (uint64_t)((unsigned __int128)opt.keys *
			    (unsigned)(g + 1) / (unsigned)opt.conns);
		}
	}
	return t;
}

static void
print_results(struct thr *t, double secs, double pf_secs)
{
	struct stats all;
	uint64_t ops;
	double ops_s, p50, p90, p99, p999, mean, mx;
	char dist[32];
	int i;

	memset(&all, 0, sizeof(all));
	for (i = 0; i < opt.threads; i++) {
		h_merge(&all.h, &t[i].st.h);
		all.sets += t[i].st.sets;
		all.gets += t[i].st.gets;
		all.hits += t[i].st.hits;
		all.misses += t[i].st.misses;
		all.errors += t[i].st.errors;
		all.verify_fail += t[i].st.verify_fail;
		all.conn_errors += t[i].st.conn_errors;
		all.timeouts += t[i].st.timeouts;
		all.connects += t[i].st.connects;
		all.prefilled += t[i].st.prefilled;
	}
	ops = all.sets + all.gets;
	ops_s = secs > 0 ? (double)ops / secs : 0;
	p50 = (double)h_pct(&all.h, 50) / 1e3;
	p90 = (double)h_pct(&all.h, 90) / 1e3;
	p99 = (double)h_pct(&all.h, 99) / 1e3;
	p999 = (double)h_pct(&all.h, 99.9) / 1e3;
	mx = (double)all.h.max / 1e3;
	mean = all.h.count ? all.h.sum / (double)all.h.count / 1e3 : 0;
	if (opt.zipf)
		snprintf(dist, sizeof(dist), "zipf:%.2f", opt.zipf_s);
	else
		snprintf(dist, sizeof(dist), "uniform");
	if (!opt.quiet) {
		printf("kvbench: %s %s, %d connections / %d threads, depth %u%s,"
		    " set:get %u:%u\n", proto_name[opt.proto], target_name,
		    opt.conns, opt.threads, opt.depth,
		    opt.cpr ? ", a new connection per request" : "",
		    opt.set_w, opt.get_w);
		printf("  keys %" PRIu64 " %s, key %u B, value %u B\n",
		    opt.keys, dist, opt.ksize, opt.vsize);
		if (opt.prefill)
			printf("  prefill: %" PRIu64 " sets in %.2f s "
			    "(%.0f/s)\n", all.prefilled, pf_secs,
			    pf_secs > 0 ? (double)all.prefilled / pf_secs : 0);
		if (secs > 0) {
			printf("  run: %.2f s, %" PRIu64 " ops (%" PRIu64
			    " sets, %" PRIu64 " gets: %" PRIu64 " hits, %"
			    PRIu64 " misses)\n", secs, ops, all.sets, all.gets,
			    all.hits, all.misses);
			if (opt.cpr)
				printf("  connections: %" PRIu64 " (%.0f/s)\n",
				    all.connects, (double)all.connects / secs);
			printf("  throughput: %.0f ops/s\n", ops_s);
			printf("  latency us%s: p50 %.1f  p90 %.1f  p99 %.1f  "
			    "p99.9 %.1f  max %.1f  mean %.1f\n",
			    opt.cpr ? " (connect to reply)" : "", p50, p90,
			    p99, p999, mx, mean);
		}
		printf("  errors %" PRIu64 " (connection failures %" PRIu64
		    ", timeouts %" PRIu64 "), verify failures %" PRIu64 "\n",
		    all.errors, all.conn_errors, all.timeouts,
		    all.verify_fail);
	}
	printf("RESULT proto=%s conns=%d threads=%d depth=%u cpr=%d "
	    "ratio=%u:%u keys=%" PRIu64 " dist=%s ksize=%u vsize=%u secs=%.2f "
	    "ops=%" PRIu64 " ops_s=%.0f sets=%" PRIu64 " gets=%" PRIu64
	    " hits=%" PRIu64 " misses=%" PRIu64 " p50_us=%.1f p90_us=%.1f "
	    "p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f errors=%"
	    PRIu64 " conn_errors=%" PRIu64 " timeouts=%" PRIu64
	    " verify_fail=%" PRIu64 " prefilled=%" PRIu64 "%s%s\n",
	    proto_name[opt.proto], opt.conns, opt.threads, opt.depth, opt.cpr,
	    opt.set_w, opt.get_w, opt.keys, dist, opt.ksize, opt.vsize, secs,
	    ops, ops_s, all.sets, all.gets, all.hits, all.misses, p50, p90,
	    p99, p999, mx, mean, all.errors, all.conn_errors, all.timeouts,
	    all.verify_fail, all.prefilled, opt.label ? " label=" : "",
	    opt.label ? opt.label : "");
	if (opt.storm_rate > 0)
		printf("RESULT login_storm=%.1f logins=%" PRIu64 " login_fail=%"
		    PRIu64 " login_max_us=%" PRIu64 "\n", opt.storm_rate,
		    storm_ok, storm_fail, storm_max_us);
	fflush(stdout);
	if (all.verify_fail > 0)
		exit(3);
	if (secs > 0 && ops == 0)
		exit(1);
}

/* Sleep until `until` (monotonic ns), a signal, or every thread is done. */
static void
wait_until(uint64_t until)
{
	struct timespec ts = { 0, 5 * NS_PER_MS };

	while (!interrupted && now_ns() < until &&
	    atomic_load(&threads_done) < opt.threads)
		nanosleep(&ts, NULL);
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct thr *t;
	uint64_t t_pf0, t_pf1, t_start, t_stop, forever = UINT64_MAX;
	double secs;
	int i, all_done;

	parse_args(argc, argv);
	resolve();
	raise_fd_limit();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	vpool_init();
	if (opt.zipf)
		zipf_init();
	snprintf(vlen_str, sizeof(vlen_str), "%u", opt.vsize);
	snprintf(klen_str, sizeof(klen_str), "%u", opt.ksize);
	if (opt.proto == P_NATIVE) {
		login_len = (size_t)snprintf(login_req, sizeof(login_req),
		    "login %s %s\r\n", opt.user, opt.secret);
		if (login_len >= sizeof(login_req))
			die("user name or secret too long");
		if (opt.reg)
			do_register();
	}
	if (opt.cpr && opt.proto == P_NATIVE)
		fprintf(stderr, "kvbench: note: native login on every "
		    "connection (yescrypt on kvstored: ~26 ms of server CPU "
		    "each); prefer -P memcache against kvstored -M/-B\n");

	t = make_threads();
	pthread_barrier_init(&b_setup, NULL, (unsigned)opt.threads + 1);
	pthread_barrier_init(&b_prefill, NULL, (unsigned)opt.threads + 1);
	pthread_barrier_init(&b_go, NULL, (unsigned)opt.threads + 1);
	for (i = 0; i < opt.threads; i++)
		if (pthread_create(&t[i].th, NULL, thread_main, &t[i]) != 0)
			die("pthread_create failed");
	if (opt.storm_rate > 0) {
		if (opt.user == NULL || opt.secret == NULL)
			die("--login-storm needs -u and -S");
		if (pthread_create(&storm_th, NULL, storm_main, NULL) != 0)
			die("pthread_create failed");
	}

	pthread_barrier_wait(&b_setup);
	t_pf0 = now_ns();
	atomic_store(&phase, PH_PREFILL);
	pthread_barrier_wait(&b_prefill);
	t_pf1 = now_ns();
	if (opt.duration == 0 && opt.requests == 0) {
		/* --prefill only: let the threads pass straight through. */
		atomic_store(&phase, PH_STOP);
		pthread_barrier_wait(&b_go);
		for (i = 0; i < opt.threads; i++)
			pthread_join(t[i].th, NULL);
		print_results(t, 0, (double)(t_pf1 - t_pf0) / 1e9);
		return 0;
	}
	atomic_store(&phase, opt.warmup > 0 ? PH_WARMUP : PH_MEASURE);
	t_start = now_ns();
	pthread_barrier_wait(&b_go);
	if (opt.warmup > 0) {
		wait_until(t_start + (uint64_t)(opt.warmup * NS_PER_S));
		t_start = now_ns();
		atomic_store(&phase, PH_MEASURE);
	}
	wait_until(opt.duration > 0 ?
	    t_start + (uint64_t)(opt.duration * NS_PER_S) : forever);
	t_stop = now_ns();
	all_done = atomic_load(&threads_done) == opt.threads;
	atomic_store(&phase, PH_STOP);
	for (i = 0; i < opt.threads; i++)
		pthread_join(t[i].th, NULL);
	if (opt.storm_rate > 0)
		pthread_join(storm_th, NULL);
	if (all_done) {
		/* Ended by the request count: when the last thread did. */
		for (t_stop = t_start, i = 0; i < opt.threads; i++)
			if (t[i].end_ns > t_stop)
				t_stop = t[i].end_ns;
	}
	secs = (double)(t_stop - t_start) / 1e9;
	if (interrupted)
		fprintf(stderr, "kvbench: interrupted\n");
	print_results(t, secs, opt.prefill ? (double)(t_pf1 - t_pf0) / 1e9 :
	    0);
	return 0;
}
