/*
 * auth.h - secrets and names: hashing with crypt(3) from libxcrypt, and the
 * comparison that takes the same time for every failure.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>

int	auth_valid_name(const char *p, size_t len);
int	auth_hash(const char *secret, char *out, size_t outlen);
int	auth_verify(const char *secret, const char *hash);
int	auth_hash_ok(const char *hash);
void	auth_init(void);

#endif
