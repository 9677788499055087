/*
 * faultload.c - load, faults and verification for tests/faults.bats.
 *
 *   faultload [options] -u USER -p SECRET HOST PORT
 *
 * Many clients in one process (epoll, non-blocking sockets), each logged in
 * once per connection as USER, each writing and reading back keys of its
 * own: c<client>-k<i> (with -x, PREFIXc<client>-k<i>).  Every key carries
 * a sequence number in its value, so the verdict is exact: a key read back
 * must hold a value whose number lies between the last write the server
 * acknowledged (OK) and the last write sent (a write cut off by a fault
 * may or may not have happened), and whose bytes are those of that write.
 * Anything older is a lost acknowledged write; anything else is corruption.
 *
 * With -K, it also kills (SIGKILL) the server processes of clients that
 * have a put in flight, one every -i ms, and checks that each is a child
 * of the master named with -m (it kills nothing else); the load stops half
 * a second after the last kill (or at -d, or after -r requests).  A client whose
 * connection dies reconnects and goes on.  With -b, every completed request
 * must have taken at most that many ms (the recovery bound plus slack).
 *
 * -N COUNT only opens COUNT connections one after another (each: ping,
 * quit, close) and checks every answer.
 *
 * Options:
 *   -c clients   concurrent clients (10)         -k keys      per client (4)
 *   -r requests  put+get pairs per client (100)  -d seconds   stop after (60)
 *   -K kills     SIGKILL this many servers       -i ms        between kills (20)
 *   -m pid       the master (required with -K)   -b ms        latency bound
 *   -S file      write each key's acked and sent numbers to file
 *   -V file      no load: verify the keys listed in file (from -S)
 *   -n           no verification after the load (with -S, for a later -V)
 *   -W           wait until every client is logged in before the first put
 *   -x prefix    key prefix                      -N count     connection churn
 *   -s bytes     largest value (300; > 64 are sent as {N} literals)
 *
 * Prints one line of figures; exits 0 when every check passed, 1 when one
 * failed (lost, corrupt, error reply, too slow), 2 on usage or setup errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* memmem */
#endif
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum state {
	C_IDLE,		/* not connected */
	C_CONNECTING,
	C_LOGIN,	/* login sent */
	C_PID,		/* stats sent, to learn the serving pid */
	C_BARRIER,	/* logged in, waiting for the others (-W) */
	C_PUT,		/* put sent */
	C_GET,		/* get sent */
	C_DONE
};

struct key {
	uint64_t	acked;		/* last sequence number answered OK */
	uint64_t	sent;		/* last sequence number sent */
};

struct client {
	int		 fd;
	enum state	 st;
	int		 id;
	int		 counted;	/* in logged_in */
	pid_t		 server;	/* from STAT pid, 0 = unknown */
	unsigned	 done;		/* put+get pairs completed */
	unsigned	 cur;		/* key index of the request in flight */
	uint64_t	 seq;		/* its sequence number (puts) */
	uint64_t	 since;		/* request sent, us */
	uint64_t	 retry_at;	/* reconnect not before, us */
	char		*in;
	size_t		 inlen, incap;
	struct key	*keys;
};

static const char *host, *port, *user, *secret, *prefix = "";
static int nclients = 10, nkeys = 4, nrequests = 100, seconds = 60;
static int nkills, kill_ms = 20, barrier, value_max = 300, no_verify;
static pid_t master;
static long bound_ms;
static struct addrinfo *addr;
static struct client *clients;
static int ep;
static int logged_in;

/* Figures. */
static uint64_t acked, checked, kills, reconnects, errors, lost, slow;
static uint64_t max_us, requests;

static void
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("faultload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	errors++;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("faultload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int
key_name(char *out, size_t n, int c, unsigned k)
{
	return snprintf(out, n, "%sc%d-k%u", prefix, c, k);
}

/* The value of write number seq of a key: its number, its key, filler. */
static size_t
value_for(char *out, size_t cap, int c, unsigned k, uint64_t seq)
{
	size_t len = 12 + (size_t)((seq * 7919 + (uint64_t)c * 31 + k) %
	    (uint64_t)(value_max - 11)), n;

	n = (size_t)snprintf(out, cap, "%llu.%d.%u.", (unsigned long long)seq,
	    c, k);
	if (len < n)
		len = n;
	if (len > cap)
		len = cap;
	while (n < len) {
		out[n] = (char)('a' + (seq + n) % 26);
		n++;
	}
	return len;
}

/* Check a value read back for key k of client c; 1 when it is fine. */
static int
check_value(int c, unsigned k, const struct key *kk, const char *v,
    size_t vlen, int found)
{
	static char want[1 << 16];
	unsigned long long seq;
	size_t n;

	if (!found) {
		if (kk->acked == 0)
			return 1;
		fail("c%d-k%u: NOT_FOUND, but write %llu was acknowledged", c,
		    k, (unsigned long long)kk->acked);
		lost++;
		return 0;
	}
	if (vlen == 0 || sscanf(v, "%llu.", &seq) != 1) {
		fail("c%d-k%u: value '%.*s' is not ours", c, k,
		    (int)(vlen > 40 ? 40 : vlen), v);
		return 0;
	}
	if (seq < kk->acked || seq > kk->sent) {
		fail("c%d-k%u: holds write %llu; acknowledged %llu, sent %llu",
		    c, k, seq, (unsigned long long)kk->acked,
		    (unsigned long long)kk->sent);
		if (seq < kk->acked)
			lost++;
		return 0;
	}
	n = value_for(want, sizeof(want), c, k, seq);
	if (n != vlen || memcmp(want, v, n) != 0) {
		fail("c%d-k%u: write %llu came back corrupt (%zu bytes, want "
		    "%zu)", c, k, seq, vlen, n);
		return 0;
	}
	return 1;
}

/* ---- connections ---------------------------------------------------------- */

static int
open_conn(void)
{
	int fd, one = 1;

	fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, addr->ai_addr, addr->ai_addrlen) == -1 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Write all of it; the requests are small, the socket buffer empty. */
static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w == -1 && errno == EINTR)
			continue;
		else if (w == -1 && errno == EAGAIN) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
		} else
			return -1;
	}
	return 0;
}

static void
watch(struct client *c, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1 &&
	    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
}

static void
drop(struct client *c, uint64_t delay_us)
{
	if (c->fd != -1) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	if (c->counted) {
		c->counted = 0;
		logged_in--;
	}
	c->fd = -1;
	c->inlen = 0;
	c->server = 0;
	if (c->st != C_DONE) {
		c->st = C_IDLE;
		c->retry_at = now_us() + delay_us;
	}
}

static void
start(struct client *c)
{
	if ((c->fd = open_conn()) == -1) {
		c->retry_at = now_us() + 20000;
		return;
	}
	c->st = C_CONNECTING;
	watch(c, EPOLLOUT);
}

static void
send_put(struct client *c)
{
	static char req[(1 << 16) + 256];
	char key[128], val[1 << 16];
	struct key *kk = &c->keys[c->cur];
	size_t vlen, n;

	kk->sent++;
	c->seq = kk->sent;
	key_name(key, sizeof(key), c->id, c->cur);
	vlen = value_for(val, sizeof(val), c->id, c->cur, c->seq);
	if (vlen > 64)
		n = (size_t)snprintf(req, sizeof(req), "put %s {%zu}\r\n", key,
		    vlen);
	else
		n = (size_t)snprintf(req, sizeof(req), "put %s ", key);
	memcpy(req + n, val, vlen);
	n += vlen;
	memcpy(req + n, "\r\n", 2);
	n += 2;
	c->st = C_PUT;
	c->since = now_us();
	if (send_all(c->fd, req, n) == -1)
		drop(c, 0);
}

static void
send_line(struct client *c, enum state st, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->st = st;
	c->since = now_us();
	if (send_all(c->fd, line, (size_t)n) == -1)
		drop(c, 0);
}

static void
next_request(struct client *c)
{
	if ((int)c->done >= nrequests) {
		c->st = C_DONE;
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->cur = c->done % (unsigned)nkeys;
	send_put(c);
}

static void
timed(struct client *c)
{
	uint64_t us = now_us() - c->since;

	requests++;
	if (us > max_us)
		max_us = us;
	if (bound_ms > 0 && us > (uint64_t)bound_ms * 1000) {
		slow++;
		fprintf(stderr, "faultload: c%d: a request took %llu ms\n",
		    c->id, (unsigned long long)(us / 1000));
	}
}

/*
 * One complete reply at the head of c->in: its length, 0 if incomplete.
 * A VALUE reply sets *data and *dlen.
 */
static size_t
reply_len(struct client *c, const char **data, size_t *dlen)
{
	char *lf = memchr(c->in, '\n', c->inlen);
	unsigned long long n;
	size_t line;

	*data = NULL;
	*dlen = 0;
	if (lf == NULL)
		return 0;
	line = (size_t)(lf - c->in) + 1;
	if (c->st == C_PID) {	/* STAT lines up to END */
		char *end = memmem(c->in, c->inlen, "END\r\n", 5);

		if (strncmp(c->in, "ERR", 3) == 0)
			return line;
		return end == NULL ? 0 : (size_t)(end - c->in) + 5;
	}
	if (strncmp(c->in, "VALUE ", 6) == 0 &&
	    sscanf(c->in + 6, "%llu", &n) == 1) {
		if (c->inlen < line + n + 2)
			return 0;
		*data = c->in + line;
		*dlen = (size_t)n;
		return line + n + 2;
	}
	return line;
}

static void
handle_reply(struct client *c, const char *data, size_t dlen)
{
	struct key *kk;
	char *p;

	if (strncmp(c->in, "ERR ", 4) == 0) {
		p = memchr(c->in, '\r', c->inlen);
		fail("c%d: server said %.*s", c->id,
		    (int)((p ? p : c->in + 4) - c->in), c->in);
		c->st = C_DONE;
		return;
	}
	switch (c->st) {
	case C_LOGIN:
		if (strncmp(c->in, "OK ", 3) != 0) {
			fail("c%d: login: %.*s", c->id, 40, c->in);
			c->st = C_DONE;
			return;
		}
		logged_in++;
		c->counted = 1;
		if (nkills > 0) {
			send_line(c, C_PID, "stats\r\n");
			return;
		}
		break;
	case C_PID:
		if ((p = memmem(c->in, c->inlen, "STAT pid ", 9)) != NULL)
			c->server = (pid_t)atol(p + 9);
		break;
	case C_PUT:
		timed(c);
		if (strncmp(c->in, "OK\r\n", 4) != 0) {
			fail("c%d: put: %.*s", c->id, 40, c->in);
			c->st = C_DONE;
			return;
		}
		c->keys[c->cur].acked = c->seq;
		acked++;
		{
			char key[128];

			key_name(key, sizeof(key), c->id, c->cur);
			send_line(c, C_GET, "get %s\r\n", key);
		}
		return;
	case C_GET:
		timed(c);
		kk = &c->keys[c->cur];
		if (check_value(c->id, c->cur, kk, data, dlen, data != NULL))
			checked++;
		else
			c->st = C_DONE;
		if (c->st == C_DONE)
			return;
		c->done++;
		next_request(c);
		return;
	default:
		fail("c%d: unexpected reply in state %d", c->id, c->st);
		return;
	}
	/* Logged in (and its pid known): go, or wait for the others. */
	if (barrier && logged_in < nclients) {
		c->st = C_BARRIER;
		return;
	}
	next_request(c);
}

static void
readable(struct client *c)
{
	const char *data;
	size_t dlen, len;
	ssize_t n;

	for (;;) {
		if (c->incap - c->inlen < 4096) {
			c->incap = c->incap ? c->incap * 2 : 1 << 17;
			if ((c->in = realloc(c->in, c->incap)) == NULL)
				die("out of memory");
		}
		n = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
		if (n > 0) {
			c->inlen += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		/* EOF or reset: its server died (or the master is gone). */
		if (c->st != C_DONE) {
			reconnects++;
			drop(c, 0);
		}
		return;
	}
	while (c->fd != -1 && c->st != C_DONE &&
	    (len = reply_len(c, &data, &dlen)) > 0) {
		handle_reply(c, data, dlen);
		if (c->fd == -1)
			return;
		memmove(c->in, c->in + len, c->inlen - len);
		c->inlen -= len;
	}
	if (c->st == C_DONE && c->fd != -1) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
}

static void
connected(struct client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err != 0) {
		drop(c, 20000);	/* refused: the master may be restarting */
		return;
	}
	watch(c, EPOLLIN);
	send_line(c, C_LOGIN, "login %s %s\r\n", user, secret);
}

/* Is pid a child of the master?  The only processes we may kill. */
static int
child_of_master(pid_t pid)
{
	char path[64], buf[4096], *p;
	FILE *f;
	long ppid = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (strncmp(buf, "PPid:", 5) == 0) {
			p = buf + 5;
			ppid = strtol(p, NULL, 10);
			break;
		}
	fclose(f);
	return ppid == (long)master;
}

/* Kill the server of a random client that has a put in flight. */
static void
kill_one(void)
{
	int tries;

	for (tries = 0; tries < nclients * 2; tries++) {
		struct client *c = &clients[random() % nclients];

		if (c->st != C_PUT || c->server <= 0)
			continue;
		if (!child_of_master(c->server)) {
			fail("pid %ld is not a child of master %ld: not killed",
			    (long)c->server, (long)master);
			c->server = 0;
			continue;
		}
		if (kill(c->server, SIGKILL) == 0)
			kills++;
		c->server = 0;
		return;
	}
}

static void
run_load(void)
{
	struct epoll_event evs[256];
	uint64_t deadline = now_us() + (uint64_t)seconds * 1000000;
	uint64_t next_kill = now_us() + (uint64_t)kill_ms * 1000;
	int i, n, active;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	for (i = 0; i < nclients; i++)
		start(&clients[i]);
	for (;;) {
		uint64_t now = now_us();

		active = 0;
		for (i = 0; i < nclients; i++) {
			struct client *c = &clients[i];

			if (c->st == C_DONE)
				continue;
			if (now >= deadline) {
				if (c->fd != -1) {
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					close(c->fd);
					c->fd = -1;
				}
				c->st = C_DONE;
				continue;
			}
			active++;
			if (c->st == C_IDLE && now >= c->retry_at)
				start(c);
			if (c->st == C_BARRIER && logged_in >= nclients)
				next_request(c);
		}
		if (active == 0)
			break;
		if (nkills > 0 && kills < (uint64_t)nkills && now >= next_kill) {
			kill_one();
			next_kill = now + (uint64_t)kill_ms * 1000;
			/* All done: a last half second of load, then stop. */
			if (kills == (uint64_t)nkills && deadline > now + 500000)
				deadline = now + 500000;
		}
		n = epoll_wait(ep, evs, 256, 5);
		for (i = 0; i < n; i++) {
			struct client *c = evs[i].data.ptr;

			if (c->fd == -1)
				continue;
			if (c->st == C_CONNECTING)
				connected(c);
			else
				readable(c);
		}
	}
	close(ep);
}

/* ---- verification and state ---------------------------------------------- */

static void
save_state(const char *path)
{
	FILE *f = fopen(path, "w");
	int c, k;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	fprintf(f, "clients %d keys %d prefix %s\n", nclients, nkeys,
	    prefix[0] ? prefix : "-");
	for (c = 0; c < nclients; c++)
		for (k = 0; k < nkeys; k++)
			fprintf(f, "%d %d %llu %llu\n", c, k,
			    (unsigned long long)clients[c].keys[k].acked,
			    (unsigned long long)clients[c].keys[k].sent);
	if (fclose(f) == EOF)
		die("%s: %s", path, strerror(errno));
}

static void
alloc_clients(void)
{
	int i;

	if ((clients = calloc((size_t)nclients, sizeof(*clients))) == NULL)
		die("out of memory");
	for (i = 0; i < nclients; i++) {
		clients[i].fd = -1;
		clients[i].id = i;
		clients[i].keys = calloc((size_t)nkeys, sizeof(struct key));
		if (clients[i].keys == NULL)
			die("out of memory");
	}
}

static void
load_state(const char *path)
{
	static char pfx[128];
	FILE *f = fopen(path, "r");
	unsigned long long a, s;
	int c, k;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	if (fscanf(f, "clients %d keys %d prefix %127s\n", &nclients, &nkeys,
	    pfx) != 3 || nclients <= 0 || nkeys <= 0)
		die("%s: bad header", path);
	prefix = strcmp(pfx, "-") == 0 ? "" : pfx;
	alloc_clients();
	while (fscanf(f, "%d %d %llu %llu\n", &c, &k, &a, &s) == 4) {
		if (c < 0 || c >= nclients || k < 0 || k >= nkeys)
			die("%s: bad line", path);
		clients[c].keys[k].acked = a;
		clients[c].keys[k].sent = s;
	}
	fclose(f);
}

/* Blocking request on a plain connection; the whole reply in buf. */
static size_t
ask(int fd, const char *req, char *buf, size_t cap)
{
	size_t have = 0;
	char *lf;

	if (send_all(fd, req, strlen(req)) == -1)
		die("verify: write: %s", strerror(errno));
	for (;;) {
		ssize_t n = read(fd, buf + have, cap - have - 1);
		unsigned long long len;

		if (n <= 0)
			die("verify: the server closed the connection");
		have += (size_t)n;
		buf[have] = '\0';
		if ((lf = memchr(buf, '\n', have)) == NULL)
			continue;
		if (strncmp(buf, "VALUE ", 6) == 0 &&
		    sscanf(buf + 6, "%llu", &len) == 1 &&
		    have < (size_t)(lf - buf) + 1 + len + 2)
			continue;
		return have;
	}
}

static uint64_t
verify_all(void)
{
	static char buf[1 << 17];
	char req[512], key[128], *lf;
	uint64_t ok = 0;
	int fd, c, k, fl;

	if ((fd = open_conn()) == -1)
		die("verify: cannot connect: %s", strerror(errno));
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	snprintf(req, sizeof(req), "login %s %s\r\n", user, secret);
	ask(fd, req, buf, sizeof(buf));
	if (strncmp(buf, "OK ", 3) != 0)
		die("verify: login: %.40s", buf);
	for (c = 0; c < nclients; c++)
		for (k = 0; k < nkeys; k++) {
			struct key *kk = &clients[c].keys[k];
			size_t n;

			key_name(key, sizeof(key), c, (unsigned)k);
			snprintf(req, sizeof(req), "get %s\r\n", key);
			n = ask(fd, req, buf, sizeof(buf));
			lf = memchr(buf, '\n', n);
			if (strncmp(buf, "VALUE ", 6) == 0) {
				if (check_value(c, (unsigned)k, kk, lf + 1,
				    (size_t)strtoull(buf + 6, NULL, 10), 1) &&
				    kk->acked > 0)
					ok++;
			} else if (strncmp(buf, "NOT_FOUND", 9) == 0) {
				check_value(c, (unsigned)k, kk, NULL, 0, 0);
			} else
				fail("verify %s: %.60s", key, buf);
		}
	close(fd);
	return ok;
}

/* ---- connection churn ----------------------------------------------------- */

static void
churn(long count)
{
	static const char want[] = "PONG\r\nBYE\r\n";
	char buf[256];
	long i;

	for (i = 0; i < count; i++) {
		size_t have = 0;
		int fd = open_conn(), fl;

		if (fd == -1)
			die("connection %ld: %s", i, strerror(errno));
		fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		if (send_all(fd, "ping\r\nquit\r\n", 12) == -1) {
			fail("connection %ld: write: %s", i, strerror(errno));
			close(fd);
			continue;
		}
		while (have < sizeof(buf) - 1) {
			ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);

			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			have += (size_t)n;
		}
		buf[have] = '\0';
		if (strcmp(buf, want) != 0)
			fail("connection %ld: got '%.60s'", i, buf);
		close(fd);
	}
}

int
main(int argc, char **argv)
{
	const char *save = NULL, *verify = NULL;
	struct addrinfo hints;
	struct rlimit rl;
	long nconns = 0;
	uint64_t t0, verified = 0;
	int ch, rc;

	while ((ch = getopt(argc, argv, "b:c:d:i:K:k:m:N:np:r:S:s:u:V:Wx:")) !=
	    -1) {
		switch (ch) {
		case 'b': bound_ms = atol(optarg); break;
		case 'c': nclients = atoi(optarg); break;
		case 'd': seconds = atoi(optarg); break;
		case 'i': kill_ms = atoi(optarg); break;
		case 'K': nkills = atoi(optarg); break;
		case 'k': nkeys = atoi(optarg); break;
		case 'm': master = (pid_t)atol(optarg); break;
		case 'N': nconns = atol(optarg); break;
		case 'n': no_verify = 1; break;
		case 'p': secret = optarg; break;
		case 'r': nrequests = atoi(optarg); break;
		case 'S': save = optarg; break;
		case 's': value_max = atoi(optarg); break;
		case 'u': user = optarg; break;
		case 'V': verify = optarg; break;
		case 'W': barrier = 1; break;
		case 'x': prefix = optarg; break;
		default:
			die("usage: faultload [options] -u USER -p SECRET HOST "
			    "PORT (see faultload.c)");
		}
	}
	if (argc - optind != 2 || nclients <= 0 || nkeys <= 0 ||
	    value_max < 16 || value_max > 60000 || (nkills > 0 && master <= 0) ||
	    (nconns == 0 && (user == NULL || secret == NULL)))
		die("usage: faultload [options] -u USER -p SECRET HOST PORT");
	host = argv[optind];
	port = argv[optind + 1];
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	/* One descriptor a client, and then some. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)nclients + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)nclients + 64 ?
		    rl.rlim_max : (rlim_t)nclients + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &addr)) != 0)
		die("%s:%s: %s", host, port, gai_strerror(rc));
	t0 = now_us();
	if (nconns > 0) {
		churn(nconns);
		printf("faultload: connections=%ld errors=%llu ms=%llu\n", nconns,
		    (unsigned long long)errors,
		    (unsigned long long)((now_us() - t0) / 1000));
		return errors ? 1 : 0;
	}
	if (verify != NULL) {
		load_state(verify);
		verified = verify_all();
		printf("faultload: keys=%d keys_verified=%llu lost=%llu "
		    "errors=%llu\n", nclients * nkeys,
		    (unsigned long long)verified, (unsigned long long)lost,
		    (unsigned long long)errors);
		return errors ? 1 : 0;
	}
	alloc_clients();
	run_load();
	if (save != NULL)
		save_state(save);
	if (!no_verify)
		verified = verify_all();
	printf("faultload: clients=%d requests=%llu writes_acked=%llu "
	    "reads_checked=%llu keys_verified=%llu lost=%llu kills=%llu "
	    "reconnects=%llu max_latency_ms=%llu slow=%llu errors=%llu "
	    "seconds=%.1f\n", nclients, (unsigned long long)requests,
	    (unsigned long long)acked, (unsigned long long)checked,
	    (unsigned long long)verified, (unsigned long long)lost,
	    (unsigned long long)kills, (unsigned long long)reconnects,
	    (unsigned long long)(max_us / 1000), (unsigned long long)slow,
	    (unsigned long long)errors, (double)(now_us() - t0) / 1e6);
	return errors || slow ? 1 : 0;
}
