/*
 * conn.c - the connection core (conn.h): the socket, the buffers and the
 * deadlines of one client connection.
 *
 * The core never waits on one peer for longer than a deadline (its I/O is
 * non-blocking, or a wait bounded by the nearest deadline, conn_serve()):
 *   - a request half sent may take -T seconds from its first byte (a line
 *     trickled a byte at a time ends all the same);
 *   - replies not taken: the output queue is bounded (CONN_OUT_MAX); past
 *     it the core stops reading that connection, so a client that pipelines
 *     and never reads is held back by its own socket, and when it has taken
 *     nothing for -T seconds it is dropped;
 *   - idle: -t seconds on the native listener, -W on the memcached one
 *     (none by default, as memcached);
 *   - login: -L seconds from the connect.
 * On SIGTERM the client is told, in its protocol, and what is queued gets
 * the write deadline to go out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "store.h"

#define READ_CHUNK	(64 * 1024)

volatile sig_atomic_t conn_stop;

const char *
conn_line(enum conn_proto proto, enum conn_event ev)
{
	return proto == PROTO_MEMCACHED ? mc_lines[ev] : native_lines[ev];
}

uint64_t
conn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl != -1 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* "127.0.0.1 port 5000" -> "127.0.0.1" (an address has no space): limits
 * count per address. */
static void
peer_address(const char *peer, char *out, size_t n)
{
	str_copy_until(out, n, peer, ' ');
}

static int
method(const char *p, size_t len, size_t *mlen)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE",
	    "HEAD", "OPTIONS", "PATCH", "CONNECT" };
	size_t i, n;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		n = strlen(methods[i]);
		if (len > n && memcmp(p, methods[i], n) == 0 && p[n] == ' ') {
			*mlen = n;
			return 1;
		}
	}
	return 0;
}

/*
 * Is the complete line at p an HTTP request line ("GET /x HTTP/1.1"), or,
 * before login, a header a browser sends ("Host: ...") or a POST?  A web
 * page can make a browser send those to any port on the loopback; no
 * kvstore or memcached request looks like them (verbs are lowercase), and
 * "put /index HTTP/1.1" stays a valid put.
 */
int
conn_http_line(const char *p, size_t avail, int logged_in)
{
	const char *lf = memchr(p, '\n', avail), *sp;
	size_t len, m;

	if (lf == NULL)
		return 0;
	len = (size_t)(lf - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (!logged_in && ((len >= 5 && strncasecmp(p, "Host:", 5) == 0) ||
	    (len >= 5 && memcmp(p, "POST ", 5) == 0)))
		return 1;
	if (!method(p, len, &m) || m + 1 >= len)
		return 0;
	/* METHOD SP target SP "HTTP/1." digit */
	if ((sp = memchr(p + m + 1, ' ', len - m - 1)) == NULL ||
	    sp == p + m + 1)
		return 0;
	len -= (size_t)(sp + 1 - p);
	return len == 8 && memcmp(sp + 1, "HTTP/1.", 7) == 0 &&
	    sp[8] >= '0' && sp[8] <= '9';
}

/* A cross-protocol request: close at once, say nothing, log it. */
int
conn_refuse_http(struct conn *c)
{
	if (!conn_http_line(buf_head(&c->ib), buf_avail(&c->ib),
	    c->cl.user != 0 && c->requests > 0))
		return 0;
	log_warnx("refused: %s: an HTTP request on a %s listener "
	    "(a web page's cross-protocol request?)", c->peer,
	    c->proto == PROTO_MEMCACHED ? "memcached" : "kvstore");
	buf_reset(&c->ib);
	c->closing = 1;
	return 1;
}

/* Queue a line of the server's own; NULL in the table: say nothing. */
static void
say(struct conn *c, enum conn_event ev)
{
	const char *line = conn_line(c->proto, ev);

	if (line != NULL) {
		buf_appendstr(&c->ob, line);
		buf_append(&c->ob, "\r\n", 2);
	}
}

/*
 * Set a connection up and take its place under the per-address limits.
 * -1 when it may not be served: the refusal is queued in c->ob, for the
 * caller to send (conn_serve() does) before closing.
 */
int
conn_init(struct conn *c, const struct conn_config *cfg, enum conn_proto proto,
    int in, int out, const char *peer)
{
	char addr[64];
	int rc;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->proto = proto;
	c->in = in;
	c->out = out;
	str_copy_until(c->peer, sizeof(c->peer), peer, '\0');
	cmd_init(&c->cl, cfg->store, &cfg->policy, c->peer);
	if (proto == PROTO_MEMCACHED && cfg->bound_user != NULL &&
	    cmd_bind(&c->cl, cfg->bound_user) != CR_OK) {
		/* Never serve such a connection unbound: close it. */
		log_warnx("cannot act as user %s", cfg->bound_user);
		c->closing = 1;
		return -1;
	}
	peer_address(c->peer, addr, sizeof(addr));
	rc = store_conn_claim(cfg->store, addr, c->cl.user != 0,
	    cfg->per_addr, cfg->per_addr_prelogin, &c->limit_slot);
	c->counted_login = c->cl.user != 0;
	if (rc == STORE_CONN_ADDR) {
		log_warnx("limit: %s: %u connections from this address (-H %u)",
		    addr, cfg->per_addr, cfg->per_addr);
		store_note_rejected(cfg->store);
		say(c, EV_BUSY_ADDR);
		c->closing = 1;
		return -1;
	}
	if (rc == STORE_CONN_PRELOGIN) {
		log_warnx("limit: %s: %u connections not logged in from this "
		    "address (-U %u)", addr, cfg->per_addr_prelogin,
		    cfg->per_addr_prelogin);
		store_note_rejected(cfg->store);
		say(c, EV_BUSY_PRELOGIN);
		c->closing = 1;
		return -1;
	}
	return 0;
}

void
conn_free(struct conn *c)
{
	if (c->cl.verb != NULL)
		cmd_end(&c->cl);	/* a request cut off: audit what it did */
	store_conn_release(c->cfg->store, c->limit_slot);
	c->limit_slot = 0;
	buf_free(&c->ib);
	buf_free(&c->ob);
}

int
conn_drop_garbage(struct conn *c)
{
	const char *lf;
	size_t n;

	if (c->discard > 0) {
		n = buf_avail(&c->ib) < c->discard ? buf_avail(&c->ib) :
		    (size_t)c->discard;
		buf_consume(&c->ib, n);
		c->discard -= n;
		if (c->discard > 0)
			return 1;
	}
	if (c->skip_line) {
		lf = memchr(buf_head(&c->ib), '\n', buf_avail(&c->ib));
		if (lf == NULL) {
			buf_reset(&c->ib);
			return 1;
		}
		buf_consume(&c->ib, (size_t)(lf - buf_head(&c->ib)) + 1);
		c->skip_line = 0;
	}
	return 0;
}

/* Write what the socket takes now: 1 progress, 0 none, -1 gone. */
static int
write_some(struct conn *c)
{
	ssize_t n;
	int progress = 0;

	while (buf_avail(&c->ob) > 0) {
		n = c->sockio ? send(c->out, buf_head(&c->ob), buf_avail(&c->ob),
		    MSG_DONTWAIT | MSG_NOSIGNAL) :
		    write(c->out, buf_head(&c->ob), buf_avail(&c->ob));
		if (n > 0) {
			buf_consume(&c->ob, (size_t)n);
			c->bytes_written += (uint64_t)n;
			progress = 1;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	if (buf_avail(&c->ob) == 0)
		buf_reset(&c->ob);
	return progress;
}

/*
 * Read what has come: 1 bytes, 0 none now, -1 end of input or error.  With
 * wait (a blocking socket only), wait for it, up to its SO_RCVTIMEO.
 */
static int
read_some(struct conn *c, int wait)
{
	char *at;
	size_t room;
	ssize_t n;

	buf_reserve(&c->ib, READ_CHUNK);
	at = c->ib.data + c->ib.len;
	room = c->ib.cap - c->ib.len;
	n = c->sockio ? recv(c->in, at, room, wait ? 0 : MSG_DONTWAIT) :
	    read(c->in, at, room);
	if (n > 0) {
		c->ib.len += (size_t)n;
		c->bytes_read += (uint64_t)n;
		return 1;
	}
	if (n == -1 && (errno == EINTR || errno == EAGAIN ||
	    errno == EWOULDBLOCK))
		return 0;
	return -1;
}

/*
 * Has the front-end had its turn?  CONN_TURN requests, or CONN_TURN_MS of
 * work (some requests walk a whole store) since this conn_step() began,
 * whichever comes first; the clock is read every 8 requests, so a request
 * that is answered at once reads it never.
 */
int
conn_turn_over(struct conn *c, unsigned *n)
{
	if (++*n < 8 || *n % 8 != 0)
		return 0;
	c->turn_clock = conn_now();
	return *n >= CONN_TURN || c->turn_clock - c->turn_from >= CONN_TURN_MS;
}

/* Logged in: no longer counted among the connections waiting to (-U). */
static void
note_login(struct conn *c)
{
	if (!c->counted_login && c->cl.user != 0) {
		store_conn_login(c->cfg->store, c->limit_slot);
		c->counted_login = 1;
	}
}

/*
 * The front-end's turn: 0 all complete requests answered, 1 it stopped with
 * more to answer because the output bound was reached, 2 it answered its
 * CONN_TURN requests and more wait (the others' turn first), -1 drop.
 */
static int
batch(struct conn *c)
{
	int rc = c->proto == PROTO_MEMCACHED ? mc_batch(c) : native_batch(c);

	note_login(c);
	return rc;
}

/* Keep the earlier of two deadlines (ms; 0 = none). */
static void
nearest(uint64_t at, uint64_t *wake)
{
	if (at != 0 && (*wake == 0 || at < *wake))
		*wake = at;
}

/*
 * Send our end first, and read what has come, so a close is not a reset:
 * unless the peer has ended its side (eof), when there is nothing to read.
 * The end goes out even while another process holds the socket.
 */
static void
linger(struct conn *c)
{
	char junk[4096];
	int n;

	/* Not a socket (inetd's pipes, say), or nothing more will come. */
	if (shutdown(c->out, SHUT_WR) == -1 || c->eof)
		return;
	for (n = 0; n < 16 && recv(c->in, junk, sizeof(junk), MSG_DONTWAIT) > 0;
	    n++)
		;
}

/* The connection's clock starts: deadlines count from now. */
void
conn_start(struct conn *c, uint64_t now)
{
	const struct conn_config *cfg = c->cfg;

	if (!c->sockio) {
		nonblocking(c->in);
		if (c->out != c->in)
			nonblocking(c->out);
	}
	c->T = (uint64_t)cfg->partial_timeout * 1000;
	c->idle = (uint64_t)(c->proto == PROTO_MEMCACHED ?
	    cfg->mc_idle_timeout : cfg->idle_timeout) * 1000;
	c->login_by = cfg->login_timeout > 0 ?
	    now + (uint64_t)cfg->login_timeout * 1000 : 0;
	c->idle_since = now;
}

/* What read_some() said, at now. */
static void
took_input(struct conn *c, int r, uint64_t now)
{
	if (r == -1)
		c->eof = 1;
	else if (r == 1)
		c->idle_since = now;
}

/*
 * One turn of a connection: read if the socket said it may (readable),
 * answer, write, look at the deadlines.  Returns 1 to be called again
 * when c->want_read / c->want_write say so or at c->wake_at (ms, 0 =
 * never), 0 when the connection is done (c->rc: 0 a close the protocol
 * asked for or the peer made, -1 dropped).  Never blocks.
 */
int
conn_step(struct conn *c, int readable, uint64_t now)
{
	const struct conn_config *cfg = c->cfg;
	uint64_t answered;
	size_t queued;
	int pending, r;

	c->turn_from = now;
	/* Input waits while a turn's worth of it is still unanswered: the
	 * input buffer holds what the bounds let through, no more. */
	if (readable && !c->closing && !c->eof && !c->paused && !c->yield &&
	    !c->more)
		took_input(c, read_some(c, 0), now);
	for (;;) {
		/*
		 * Answer what has come, as far as the output bound allows;
		 * and go on with what the front-end stopped at (the bound,
		 * the end of its turn, a listing), even when nothing more
		 * has come.
		 */
		if (!c->closing && !c->paused &&
		    buf_avail(&c->ob) < CONN_OUT_MAX) {
			int again = c->more || c->yield;

			c->more = c->yield = 0;
			if (buf_avail(&c->ib) > 0 || again) {
				answered = c->requests;
				queued = buf_avail(&c->ob);
				if ((r = batch(c)) == -1) {
					c->rc = -1;
					return 0;
				}
				c->more = r == 1;
				c->yield = r == 2;
				/* A request answered: what follows has a
				 * deadline of its own. */
				if (c->requests != answered ||
				    buf_avail(&c->ob) > queued)
					c->partial_since = 0;
			}
		}
		if (conn_stop && !c->stopped) {
			c->stopped = 1;
			say(c, EV_SHUTDOWN);
			c->closing = 1;
		}
		if (buf_avail(&c->ob) > 0) {
			if ((r = write_some(c)) == -1) {
				c->rc = -1;
				return 0;
			}
			if (r == 1)
				c->idle_since = now;
			if (r == 1 || c->write_since == 0)
				c->write_since = now;
		}
		if (buf_avail(&c->ob) == 0) {
			c->write_since = 0;
			/* Closing, or all answered and the peer will say no
			 * more. */
			if (c->closing || (c->eof && !c->more && !c->paused &&
			    !c->yield)) {
				c->rc = 0;
				linger(c);
				return 0;
			}
			if (c->more && !c->paused)
				continue;	/* room again: answer the rest */
		}
		pending = buf_avail(&c->ib) > 0 || c->discard || c->skip_line;
		if (!pending || c->paused)
			c->partial_since = 0;
		else if (c->partial_since == 0)
			c->partial_since = now;

		/* The deadlines, each said in the listener's protocol. */
		if (c->write_since != 0 && c->T > 0 &&
		    now - c->write_since >= c->T) {
			log_info("timeout: %s: replies not read after %d s",
			    c->peer, cfg->partial_timeout);
			c->rc = -1;
			return 0;
		}
		/* A login gone to a helper keeps the login deadline. */
		if (c->paused && !c->closing && c->cl.user == 0 &&
		    c->login_by != 0 && now >= c->login_by) {
			c->paused = 0;
			say(c, EV_TIMEOUT_LOGIN);
			log_info("timeout: %s: no login after %d s", c->peer,
			    cfg->login_timeout);
			c->closing = 1;
			continue;
		}
		if (!c->closing && !c->eof && !c->more && !c->paused) {
			if (c->partial_since != 0 && c->T > 0 &&
			    now - c->partial_since >= c->T) {
				say(c, EV_TIMEOUT_PARTIAL);
				log_info("timeout: %s: request unfinished after "
				    "%d s", c->peer, cfg->partial_timeout);
				c->closing = 1;
				continue;
			}
			if (c->cl.user == 0 && c->login_by != 0 &&
			    now >= c->login_by) {
				say(c, EV_TIMEOUT_LOGIN);
				log_info("timeout: %s: no login after %d s",
				    c->peer, cfg->login_timeout);
				c->closing = 1;
				continue;
			}
			if (c->idle > 0 && !pending &&
			    buf_avail(&c->ob) == 0 &&
			    now - c->idle_since >= c->idle) {
				say(c, EV_TIMEOUT_IDLE);
				log_info("timeout: %s after %d s", c->peer,
				    (int)(c->idle / 1000));
				c->closing = 1;
				continue;
			}
		}
		break;
	}

	/* What to wait for next; after a full turn, to be called again at
	 * once, once the others have had theirs. */
	c->wake_at = c->yield ? now : 0;
	c->want_read = !c->closing && !c->eof && !c->more && !c->paused &&
	    !c->yield && buf_avail(&c->ob) < CONN_OUT_MAX;
	c->want_write = buf_avail(&c->ob) > 0;
	if (c->want_read) {
		if (c->partial_since != 0 && c->T > 0)
			nearest(c->partial_since + c->T, &c->wake_at);
		if (c->cl.user == 0)
			nearest(c->login_by, &c->wake_at);
		if (c->idle > 0 && c->partial_since == 0 &&
		    buf_avail(&c->ob) == 0)
			nearest(c->idle_since + c->idle, &c->wake_at);
	}
	if (c->want_write && c->T > 0)
		nearest(c->write_since + c->T, &c->wake_at);
	if (c->paused && c->cl.user == 0)
		nearest(c->login_by, &c->wake_at);
	if (!c->want_read && !c->want_write && !c->paused && !c->yield) {
		/* Nothing to read, write or wait for. */
		c->rc = 0;
		return 0;
	}
	return 1;
}

/*
 * At the connection limit: one line, in the listener's protocol, then
 * close.  Best effort: the line is short and the socket buffer is empty.
 */
void
conn_refuse_fd(int fd, enum conn_proto proto)
{
	char junk[4096];
	int n;

	n = snprintf(junk, sizeof(junk), "%s\r\n", conn_line(proto, EV_BUSY));
	(void)!write(fd, junk, (size_t)n);
	/*
	 * Closing with the client's first request unread would send a reset,
	 * which can make the client's kernel drop the line before it is
	 * read: send our end first, and read what has come (never block,
	 * and not for ever from a client that keeps sending).
	 */
	shutdown(fd, SHUT_WR);
	for (n = 0; n < 16 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0;
	    n++)
		;
	close(fd);
}

/* A login handed to a helper has its answer: reply, and go on. */
void
conn_login_done(struct conn *c, int rc, const struct client *who)
{
	if (c->closing || !c->paused)
		return;		/* timed out meanwhile: the answer is moot */
	if (rc == CR_OK)
		cmd_adopt(&c->cl, who);
	note_login(c);
	if (c->proto == PROTO_MEMCACHED)
		mc_login_done(c, rc);
	else
		native_login_done(c, rc);
	c->paused = 0;
}

/*
 * Let a wait of ms (-1: none) be a recv() on the blocking socket: set its
 * SO_RCVTIMEO when the one it has would wake us too late (by more than
 * RCVTIMEO_SLACK, a deadline being seconds; the kernel rounds it up to its
 * tick too) or needlessly often.  -1 if it cannot be set: poll() then.
 */
#define RCVTIMEO_SLACK	20
static int
rcvtimeo(struct conn *c, int ms)
{
	struct timeval tv;
	int want = ms < 0 ? 0 : ms;

	if (want == 0 ? c->rcvtimeo == 0 : c->rcvtimeo != 0 &&
	    c->rcvtimeo <= want + RCVTIMEO_SLACK && c->rcvtimeo >= want / 2)
		return 0;
	tv.tv_sec = want / 1000;
	tv.tv_usec = (want % 1000) * 1000;
	if (setsockopt(c->in, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1)
		return -1;
	c->rcvtimeo = want;
	return 0;
}

/*
 * A stream socket that blocks: one that came non-blocking (systemd's
 * NonBlocking=, say) is left so, as its open file may be shared, and a
 * recv() on it would never wait.
 */
static int
blocking_socket(int fd)
{
	int type, fl;
	socklen_t len = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	    type == SOCK_STREAM && (fl = fcntl(fd, F_GETFL)) != -1 &&
	    !(fl & O_NONBLOCK);
}

/*
 * The prefork engine: one connection, this process, to its end.  A
 * blocking socket that is both its input and output stays blocking, and
 * the wait for the next request is the recv() that reads it, as in a
 * plain fork-per-connection server: a poll() first would be a second
 * system call each request.  Waits for the socket to take replies, and
 * every wait on other fds (inetd's stdin and stdout, a socket passed
 * non-blocking), are poll()s on non-blocking I/O.
 */
int
conn_serve(struct conn *c)
{
	struct pollfd pfd[2];
	uint64_t now = conn_now();
	int np, wait, r, readable = 0;

	c->sockio = c->in == c->out && blocking_socket(c->in);
	conn_start(c, now);
	while (conn_step(c, readable, now)) {
		/* The clock is read again only for a deadline's wait: with
		 * none (memcached's listener without -W), a request reads it
		 * once, when it has come. */
		wait = -1;
		if (c->wake_at != 0) {
			now = conn_now();
			wait = c->wake_at > now ? (int)(c->wake_at - now) : 0;
		}
		if (c->sockio && c->want_read && !c->want_write && wait != 0 &&
		    rcvtimeo(c, wait) == 0) {
			r = read_some(c, 1);
			now = conn_now();
			took_input(c, r, now);
			readable = 0;
			continue;
		}
		np = 0;
		if (c->want_read) {
			pfd[np].fd = c->in;
			pfd[np++].events = POLLIN;
		}
		if (c->want_write) {
			if (np == 1 && c->out == c->in)
				pfd[0].events |= POLLOUT;
			else {
				pfd[np].fd = c->out;
				pfd[np++].events = POLLOUT;
			}
		}
		pfd[0].revents = 0;
		if (poll(pfd, (nfds_t)np, wait) == -1 && errno != EINTR) {
			c->rc = -1;
			break;
		}
		readable = c->want_read && (pfd[0].revents & (POLLIN | POLLHUP |
		    POLLERR));
		now = conn_now();
	}
	return c->rc;
}
