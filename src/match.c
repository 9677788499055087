/*
 * match.c - shell-style patterns (fnmatch(3)'s * ? [...] and \) over byte
 * strings of any bytes, NUL included, which fnmatch(3) cannot take.
 *
 * One backtrack point, the last '*', and no recursion: a key is matched in
 * at most plen * slen steps whatever the pattern, so a hostile pattern
 * costs no more than a long one.
 */
#include <stddef.h>

#include "match.h"

/*
 * Match c against the class starting after '[' at pat[*i]; *i is left past
 * the closing ']'.  -1 when the class is not closed: then '[' is literal.
 */
static int
match_class(const char *pat, size_t plen, size_t *i, unsigned char c)
{
	size_t j = *i;
	int neg = 0, hit = 0;
	unsigned char lo, hi;

	if (j < plen && (pat[j] == '!' || pat[j] == '^')) {
		neg = 1;
		j++;
	}
	/* A ']' first in the class is a member, as in fnmatch(3). */
	for (int first = 1; j < plen && (first || pat[j] != ']'); first = 0) {
		if (pat[j] == '\\' && j + 1 < plen)
			j++;
		lo = hi = (unsigned char)pat[j++];
		if (j + 1 < plen && pat[j] == '-' && pat[j + 1] != ']') {
			j++;
			if (pat[j] == '\\' && j + 1 < plen)
				j++;
			hi = (unsigned char)pat[j++];
		}
		if (c >= lo && c <= hi)
			hit = 1;
	}
	if (j >= plen)
		return -1;
	*i = j + 1;
	return hit != neg;
}

/* One pattern element at pat[*pi] against s[si]: 1 matched, 0 not. */
static int
match_one(const char *pat, size_t plen, size_t *pi, unsigned char c)
{
	size_t i = *pi;
	int r;

	switch (pat[i]) {
	case '?':
		*pi = i + 1;
		return 1;
	case '[':
		i++;
		if ((r = match_class(pat, plen, &i, c)) >= 0) {
			*pi = i;
			return r;
		}
		*pi = *pi + 1;
		return c == '[';
	case '\\':
		if (i + 1 < plen)
			i++;
		/* FALLTHROUGH */
	default:
		*pi = i + 1;
		return (unsigned char)pat[i] == c;
	}
}

int
match_valid(const char *pat, size_t plen)
{
	(void)pat;
	return plen <= MATCH_PATTERN_MAX;
}

int
match_glob(const char *pat, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star_p = 0, star_s = 0, next;
	int starred = 0;

	while (si < slen) {
		if (pi < plen && pat[pi] == '*') {
			/* Try the empty match first; come back here on a miss. */
			while (pi < plen && pat[pi] == '*')
				pi++;
			starred = 1;
			star_p = pi;
			star_s = si;
			continue;
		}
		next = pi;
		if (pi < plen && match_one(pat, plen, &next,
		    (unsigned char)s[si])) {
			pi = next;
			si++;
			continue;
		}
		if (!starred)
			return 0;
		pi = star_p;
		si = ++star_s;
	}
	while (pi < plen && pat[pi] == '*')
		pi++;
	return pi == plen;
}
