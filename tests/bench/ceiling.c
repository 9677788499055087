/*
 * ceiling.c - the ceiling of kvstored's process model.
 *
 * A master that accepts and forks one child per connection, and children
 * that parse memcached text requests and store nothing: `set` (its data
 * read and dropped) answers STORED, `get` answers END, anything else ERROR.
 * One read, then one write for every complete request that read brought
 * in.  Whatever kvstored does on top of this - the store, the locks, the
 * accounts - can only cost; this is the best the fork-per-connection design
 * can do on this machine.  A benchmark probe, never installed.
 *
 * usage: ceiling [-p port]	(port 0, the default: any free port)
 * It prints "ceiling: listen 127.0.0.1 port N" on stdout once listening,
 * binds 127.0.0.1 only, and its children die with it (PR_SET_PDEATHSIG).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/prctl.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_CAP	(256 * 1024)
#define OUT_CAP	(64 * 1024)

static char in[IN_CAP], out[OUT_CAP];

/* Bytes of the set request starting at p (line, data, CRLF); 0 if partial. */
static size_t
set_len(const char *p, size_t line, size_t avail)
{
	const char *s = p, *end = p + line;
	unsigned long n;
	int tok;

	/* set <key> <flags> <exptime> <bytes>: the fifth token */
	for (tok = 0; tok < 4 && s < end; tok++) {
		while (s < end && *s != ' ')
			s++;
		while (s < end && *s == ' ')
			s++;
	}
	n = strtoul(s, NULL, 10);
	return line + n + 2 <= avail ? line + n + 2 : 0;
}

static void
serve(int fd)
{
	size_t len = 0, off, olen, used, line;
	const char *lf;
	ssize_t n;

	for (;;) {
		n = read(fd, in + len, sizeof(in) - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		off = olen = 0;
		while ((lf = memchr(in + off, '\n', len - off)) != NULL) {
			if (olen + 16 > sizeof(out)) {
				if (write(fd, out, olen) != (ssize_t)olen)
					return;
				olen = 0;
			}
			line = (size_t)(lf - (in + off)) + 1;
			used = line;
			if (strncmp(in + off, "set ", 4) == 0) {
				if ((used = set_len(in + off, line, len - off)) == 0)
					break;
				memcpy(out + olen, "STORED\r\n", 8);
				olen += 8;
			} else if (strncmp(in + off, "get ", 4) == 0) {
				memcpy(out + olen, "END\r\n", 5);
				olen += 5;
			} else {
				memcpy(out + olen, "ERROR\r\n", 7);
				olen += 7;
			}
			off += used;
		}
		if (olen > 0 && write(fd, out, olen) != (ssize_t)olen)
			return;
		memmove(in, in + off, len - off);
		len -= off;
		if (len == sizeof(in))
			return;		/* a request larger than the buffer */
	}
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int lfd, fd, one = 1, port = 0, ch;

	while ((ch = getopt(argc, argv, "p:")) != -1) {
		if (ch != 'p') {
			fprintf(stderr, "usage: ceiling [-p port]\n");
			return 2;
		}
		port = atoi(optarg);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = SA_NOCLDWAIT;	/* children reap themselves */
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)port);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 1024) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1) {
		perror("ceiling");
		return 1;
	}
	printf("ceiling: listen 127.0.0.1 port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			perror("ceiling: accept");
			return 1;
		}
		switch (fork()) {
		case 0:
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			close(lfd);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			serve(fd);
			_exit(0);
		case -1:
			perror("ceiling: fork");
			break;
		}
		close(fd);
	}
}
