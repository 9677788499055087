/*
 * audit.c - format an audit event as one grep-able line:
 *
 *   audit: time=... peer=ADDR:PORT user=U role=R action=A target=T key="K"
 *
 * Keys are escaped (C style; space, quote, backslash and non-printable
 * bytes as \xHH or \c) and each is cut to fit: an audit line must never
 * carry a raw newline or terminal control byte, and the keys of a request
 * that touched several are listed in one field, separated by spaces.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "log.h"
#include "users.h"

#define KEY_SHOWN	64

/* Escape n bytes of p, at most max of them, "..." after a cut; the length. */
size_t
audit_escape(char *out, size_t outlen, const char *p, size_t n, size_t max)
{
	size_t o = 0, i;

	if (outlen == 0)
		return 0;
	for (i = 0; i < n && i < max && o + 5 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c <= 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (i < n && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

void
audit_text(struct store *st, const char *peer, const char *user, int role,
    const char *action, const char *target, const char *keys)
{
	char line[640], addr[80], when[32];
	const char *sp;
	struct tm tm;
	time_t now = time(NULL);

	/* "127.0.0.1 port 5000" -> "127.0.0.1:5000" */
	if (peer != NULL && (sp = strstr(peer, " port ")) != NULL)
		snprintf(addr, sizeof(addr), "%.*s:%s", (int)(sp - peer), peer,
		    sp + 6);
	else
		snprintf(addr, sizeof(addr), "%s", peer ? peer : "local");
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(line, sizeof(line), "time=%s peer=%s user=%s role=%s "
	    "action=%s target=%s key=\"%s\"", when, addr,
	    user && user[0] ? user : "-", role < 0 ? "-" : role_name(role),
	    action, target && target[0] ? target : "-", keys ? keys : "");
	log_info("audit: %s", line);
	store_audit(st, line);
}

void
audit(struct store *st, const char *peer, const char *user, int role,
    const char *action, const char *target, const char *key, size_t klen)
{
	char k[KEY_SHOWN * 4 + 8];

	audit_escape(k, sizeof(k), key ? key : "", key ? klen : 0, KEY_SHOWN);
	audit_text(st, peer, user, role, action, target, k);
}
