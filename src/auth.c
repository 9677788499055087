/*
 * auth.c - hashing and checking secrets.
 *
 * crypt_gensalt_rn() with a NULL prefix picks libxcrypt's best method
 * (yescrypt on Debian 12) and reads its randomness from the OS.  Only
 * yescrypt and SHA-512 settings are accepted: an empty or garbled setting
 * would silently fall back to DES.  An unknown user is checked against a
 * dummy hash made at start, so that "no such user" costs what "wrong secret"
 * costs and reads the same.
 */
#include <crypt.h>
#include <string.h>

#include "auth.h"
#include "kvstore.h"
#include "log.h"

static char dummy_hash[KV_HASH_MAX];

int
auth_valid_name(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > KV_USER_MAX || p[0] == '-' || p[0] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		char c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int
auth_hash_ok(const char *hash)
{
	if (strncmp(hash, "$y$", 3) != 0 && strncmp(hash, "$6$", 3) != 0)
		return 0;
	return crypt_checksalt(hash) == CRYPT_SALT_OK;
}

int
auth_hash(const char *secret, char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	const char *h;

	if (crypt_gensalt_rn(NULL, 0, NULL, 0, setting, sizeof(setting)) ==
	    NULL || !auth_hash_ok(setting))
		return -1;
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn(secret, setting, &cd, sizeof(cd));
	if (h == NULL || h[0] == '*' || strlen(h) >= outlen)
		return -1;
	strcpy(out, h);
	return 0;
}

static int
same(const char *a, const char *b, size_t n)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* 1 when secret matches hash; an empty or bad hash uses the dummy. */
int
auth_verify(const char *secret, const char *hash)
{
	struct crypt_data cd;
	const char *h;
	int real = hash != NULL && auth_hash_ok(hash);
	size_t n;

	if (!real)
		hash = dummy_hash;
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn(secret, hash, &cd, sizeof(cd));
	if (h == NULL || h[0] == '*')
		return 0;
	n = strlen(hash);
	return real && strlen(h) == n && same(h, hash, n);
}

void
auth_init(void)
{
	if (auth_hash("no such user", dummy_hash, sizeof(dummy_hash)) == -1)
		fatalx("crypt: cannot make a yescrypt or SHA-512 hash");
}
