/*
 * match.h - shell-style patterns over byte strings, for kvstore(7)'s scan.
 */
#ifndef MATCH_H
#define MATCH_H

#include <stddef.h>

#define MATCH_PATTERN_MAX	512	/* bytes: bounds the work per key */

int	match_valid(const char *pat, size_t plen);
int	match_glob(const char *pat, size_t plen, const char *s, size_t slen);

#endif
