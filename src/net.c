/*
 * net.c - the little socket code the daemon and the client share.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "net.h"

/* n in decimal at p; returns the end. */
static char *
put_decimal(char *p, unsigned n)
{
	char d[10];
	int i = 0;

	do
		d[i++] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	while (i > 0)
		*p++ = d[--i];
	return p;
}

/*
 * The numeric address and port.  IPv4, the common case, written here, and
 * IPv6 by inet_ntop(3), as both are cheaper than getnameinfo(3) on every
 * new connection; getnameinfo for the rest (a scoped IPv6 address, say,
 * which it writes with its zone).  No stdio for IPv4: a prefork child
 * names its peer on every connection, and printf's code is many pages of
 * libc that the new process would fault in for it.
 */
static int
name_of(const struct sockaddr_storage *ss, socklen_t len, char *addr,
    size_t addrlen, int *port)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	const unsigned char *a = (const unsigned char *)&in4->sin_addr;
	char serv[16], *p;
	int i;

	if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(*in4)) {
		if (addrlen < INET_ADDRSTRLEN)
			return -1;
		for (p = addr, i = 0; i < 4; i++) {
			if (i > 0)
				*p++ = '.';
			p = put_decimal(p, a[i]);
		}
		*p = '\0';
		*port = ntohs(in4->sin_port);
		return 0;
	}
	if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(*in6) &&
	    in6->sin6_scope_id == 0) {
		if (inet_ntop(AF_INET6, &in6->sin6_addr, addr,
		    (socklen_t)addrlen) == NULL)
			return -1;
		*port = ntohs(in6->sin6_port);
		return 0;
	}
	if (getnameinfo((const struct sockaddr *)ss, len, addr, (socklen_t)addrlen,
	    serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	*port = atoi(serv);
	return 0;
}

int
net_listen(const char *addr, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, on = 1, rc, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(addr, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen address %s port %s: %s", addr,
		    port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
			    sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 1024) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "listen on %s port %s: %s", addr, port,
		    strerror(saved));
	return fd;
}

int
net_connect(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, rc, saved = ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s", rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "%s", strerror(saved));
	else
		net_nodelay(fd);
	return fd;
}

/* "127.0.0.1 port 50000", for log lines. */
int
net_peer(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		len = 0;
	return net_peer_name(&ss, len, out, outlen);
}

/* "ADDRESS port N" of an address accept(2) gave (len 0: unknown). */
int
net_peer_name(const struct sockaddr_storage *ss, socklen_t len, char *out,
    size_t outlen)
{
	char addr[64], line[sizeof(addr) + sizeof(" port 65535")], *p;
	int port;

	if (len == 0 || name_of(ss, len, addr, sizeof(addr), &port) == -1) {
		str_copy_until(out, outlen, "unknown port 0", '\0');
		return -1;
	}
	p = line + strlen(addr);
	memcpy(line, addr, (size_t)(p - line));
	memcpy(p, " port ", 6);
	p = put_decimal(p + 6, (unsigned)port);
	*p = '\0';
	str_copy_until(out, outlen, line, '\0');
	return 0;
}

int
net_local(int fd, char *addr, size_t addrlen, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	return name_of(&ss, len, addr, addrlen, port);
}

int
net_is_listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == -1)
		return -1;
	return on != 0;
}

/* Replies are small and a client waits for each: do not let Nagle hold them. */
void
net_nodelay(int fd)
{
	int on = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}
