/*
 * net.h - sockets: listening, connecting, and naming the peer for logs.
 */
#ifndef NET_H
#define NET_H

#include <sys/socket.h>

#include <stddef.h>

#define NET_NAME_MAX	80	/* "address port N" of any peer */

int	net_listen(const char *addr, const char *port, char *err, size_t errlen);
int	net_connect(const char *host, const char *port, char *err,
	    size_t errlen);
int	net_peer(int fd, char *out, size_t outlen);
int	net_peer_name(const struct sockaddr_storage *, socklen_t, char *out,
	    size_t outlen);
int	net_local(int fd, char *addr, size_t addrlen, int *port);
int	net_is_listening(int fd);
void	net_nodelay(int fd);

#endif
