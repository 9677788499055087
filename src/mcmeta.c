/*
 * mcmeta.c - memcached's meta commands (mg, ms, md, ma, mn, me) on the
 * memcached listener: requests parsed by mcparse.c, done by the command
 * layer, replies formatted here as memcached 1.6.18 formats them.
 *
 * Return flags come back in the order the request named them, and the
 * flags that change an item's expiry (T, N) take effect at their place in
 * that order, as memcached applies them while it writes the reply: "t T30"
 * shows the TTL before the touch, "T30 t" after.  The atomic part of each
 * command (a win handed to one client only, a stub made on a miss) is the
 * store's, in one step under the key's lock; this file only formats.
 * kvstore-memcached(7) lists every flag.  No I/O and no store calls here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cmd.h"
#include "conn.h"
#include "mcparse.h"
#include "mcproto.h"

struct mg_ctx {
	struct conn		*c;
	const struct mc_request	*r;
	const struct store_mget	*m;
};

/* " k<key>", base64 and " b" for a binary key. */
static void
flag_key(struct conn *c, const char *key, size_t klen, int binary)
{
	char enc[4 * ((KV_KEY_MAX + 2) / 3)];
	size_t n;

	buf_append(&c->ob, " k", 2);
	if (!binary) {
		buf_append(&c->ob, key, klen);
		return;
	}
	n = mc_base64(key, klen, enc, sizeof(enc));
	buf_append(&c->ob, enc, n);
	buf_append(&c->ob, " b", 2);
}

static void
flag_opaque(struct conn *c, const struct mc_meta *m)
{
	buf_append(&c->ob, " ", 1);
	buf_append(&c->ob, m->opaque, m->olen);
}

/* " t<seconds left>", -1 for none. */
static void
flag_ttl(struct conn *c, uint32_t exptime)
{
	uint32_t now = (uint32_t)time(NULL);

	if (exptime == 0)
		buf_append(&c->ob, " t-1", 4);
	else
		buf_printf(&c->ob, " t%" PRId64, (int64_t)exptime - now);
}

/* The code, then O and k only: a miss, a refusal of ms, md, ma. */
static void
status_line(struct conn *c, const struct mc_request *r, const char *code)
{
	const struct mc_meta *m = &r->meta;
	size_t i;

	buf_appendstr(&c->ob, code);
	for (i = 0; i < m->nflags; i++)
		if (m->order[i] == 'O')
			flag_opaque(c, m);
		else if (m->order[i] == 'k')
			flag_key(c, r->key, r->klen, m->binary);
	buf_append(&c->ob, "\r\n", 2);
}

/* ---- mg, me ------------------------------------------------------------- */

static void
mg_hit(void *ctx, const struct item_view *v)
{
	struct mg_ctx *g = ctx;
	struct conn *c = g->c;
	const struct mc_meta *m = &g->r->meta;
	uint32_t now = (uint32_t)time(NULL), e = v->exptime;
	size_t i;

	buf_reserve(&c->ob, v->klen * 2 + v->vlen + 256);
	if (mc_meta_has(m, 'v'))
		buf_printf(&c->ob, "VA %zu", v->vlen);
	else
		buf_append(&c->ob, "HD", 2);
	for (i = 0; i < m->nflags; i++) {
		switch (m->order[i]) {
		case 'T':
			e = mc_abs_exptime(m->ttl);
			break;
		case 'N':
			if (g->m->created)
				e = mc_abs_exptime(m->vivify);
			break;
		case 's':
			buf_printf(&c->ob, " s%zu", v->vlen);
			break;
		case 't':
			flag_ttl(c, e);
			break;
		case 'c':
			buf_printf(&c->ob, " c%" PRIu64, v->cas);
			break;
		case 'f':
			buf_printf(&c->ob, " f%" PRIu32, v->flags);
			break;
		case 'l':
			buf_printf(&c->ob, " l%" PRIu32,
			    now > v->atime ? now - v->atime : 0);
			break;
		case 'h':
			buf_printf(&c->ob, " h%d", v->fetched ? 1 : 0);
			break;
		case 'O':
			flag_opaque(c, m);
			break;
		case 'k':
			flag_key(c, v->key, v->klen,
			    (v->meta & ITEM_META_BINKEY) != 0);
			break;
		default:
			break;
		}
	}
	if (g->m->token_sent)
		buf_append(&c->ob, " Z", 2);
	if (g->m->stale)
		buf_append(&c->ob, " X", 2);
	if (g->m->won)
		buf_append(&c->ob, " W", 2);
	buf_append(&c->ob, "\r\n", 2);
	if (mc_meta_has(m, 'v')) {
		buf_append(&c->ob, v->value, v->vlen);
		buf_append(&c->ob, "\r\n", 2);
	}
}

static void
do_mg(struct conn *c, const struct mc_request *r)
{
	const struct mc_meta *m = &r->meta;
	struct store_mget sm;
	struct mg_ctx g = { c, r, &sm };
	int rc;

	memset(&sm, 0, sizeof(sm));
	if ((sm.touch = mc_meta_has(m, 'T')))
		sm.touch_exp = mc_abs_exptime(m->ttl);
	if ((sm.vivify = mc_meta_has(m, 'N'))) {
		sm.viv_exp = mc_abs_exptime(m->vivify);
		sm.viv_last = mc_meta_has(m, 'T') &&
		    strchr(m->order, 'N') > strchr(m->order, 'T');
	}
	if ((sm.recache = mc_meta_has(m, 'R'))) {
		sm.recache_exp = mc_abs_exptime(m->recache);
		sm.touch_first = sm.touch &&
		    strchr(m->order, 'T') < strchr(m->order, 'R');
	}
	sm.no_bump = mc_meta_has(m, 'u');
	rc = cmd_mget(&c->cl, r->key, r->klen, &sm, mg_hit, &g);
	if (mc_refused(c, r, rc))
		return;
	switch (rc) {
	case CR_OK:
		break;
	case CR_NOT_FOUND:
		if (!r->noreply)
			status_line(c, r, "EN");
		break;
	case CR_FULL:
		mc_reply_always(c, "SERVER_ERROR out of memory");
		break;
	case CR_QUOTA:
		mc_reply_always(c, "SERVER_ERROR out of memory: over the "
		    "user's quota");
		break;
	default:
		mc_reply_always(c, "SERVER_ERROR store error");
		break;
	}
}

static void
me_hit(void *ctx, const struct item_view *v)
{
	struct mg_ctx *g = ctx;
	struct conn *c = g->c;
	uint32_t now = (uint32_t)time(NULL);

	buf_append(&c->ob, "ME ", 3);
	buf_append(&c->ob, g->r->meta.raw, g->r->meta.rawlen);
	buf_printf(&c->ob, " exp=%" PRId64 " la=%" PRIu32 " cas=%" PRIu64
	    " fetch=%s cls=%u size=%" PRIu32 "\r\n",
	    v->exptime == 0 ? (int64_t)-1 : (int64_t)v->exptime - now,
	    now > v->atime ? now - v->atime : 0, v->cas,
	    v->fetched ? "yes" : "no", (unsigned)v->cls + 1, v->size);
}

/* me: what the store knows of one of the caller's own items. */
static void
do_me(struct conn *c, const struct mc_request *r)
{
	struct store_mget sm;
	struct mg_ctx g = { c, r, &sm };
	int rc;

	memset(&sm, 0, sizeof(sm));
	sm.no_bump = 1;
	rc = cmd_mget(&c->cl, r->key, r->klen, &sm, me_hit, &g);
	if (mc_refused(c, r, rc))
		return;
	if (rc == CR_NOT_FOUND)
		mc_reply_always(c, "EN");
	else if (rc != CR_OK)
		mc_reply_always(c, "SERVER_ERROR store error");
}

/* ---- ms ----------------------------------------------------------------- */

static void
ms_reply(struct conn *c, const struct mc_request *r, const char *code,
    uint64_t cas)
{
	const struct mc_meta *m = &r->meta;
	size_t i;

	buf_appendstr(&c->ob, code);
	for (i = 0; i < m->nflags; i++)
		if (m->order[i] == 'O')
			flag_opaque(c, m);
		else if (m->order[i] == 'k')
			flag_key(c, r->key, r->klen, m->binary);
		else if (m->order[i] == 'c')
			buf_printf(&c->ob, " c%" PRIu64, cas);
	buf_append(&c->ob, "\r\n", 2);
}

static void
do_ms(struct conn *c, const struct mc_request *r)
{
	const struct mc_meta *m = &r->meta;
	struct store_write w;
	uint64_t cas = 0;
	int rc, has_cas = mc_meta_has(m, 'C');

	if (r->too_large) {
		/* As memcached: no stale value left behind. */
		(void)cmd_del(&c->cl, r->key, r->klen);
		mc_reply_always(c, "SERVER_ERROR object too large for cache");
		return;
	}
	if (r->bad_chunk) {
		mc_reply_always(c, "CLIENT_ERROR bad data chunk");
		return;
	}
	memset(&w, 0, sizeof(w));
	switch (m->mode) {
	case 'E':
		w.mode = W_ADD;
		break;
	case 'A':
		w.mode = W_APPEND;
		break;
	case 'P':
		w.mode = W_PREPEND;
		break;
	case 'R':
		w.mode = has_cas ? W_CAS : W_REPLACE;
		break;
	default:
		w.mode = has_cas ? W_CAS : W_SET;
		break;
	}
	w.flags = m->flags;
	w.exptime = mc_meta_has(m, 'T') ? mc_abs_exptime(m->ttl) : 0;
	w.cas = m->cas;
	w.cas_check = has_cas;
	w.stale_ok = w.mode == W_CAS && mc_meta_has(m, 'I');
	w.meta = m->binary ? ITEM_META_BINKEY : 0;
	rc = cmd_put(&c->cl, r->key, r->klen, r->data, r->vlen, &w, &cas);
	if (mc_refused(c, r, rc))
		return;
	switch (rc) {
	case CR_OK:
		if (!r->noreply)
			ms_reply(c, r, "HD", cas);
		break;
	case CR_NOT_STORED:
		ms_reply(c, r, "NS", 0);
		break;
	case CR_EXISTS:
		ms_reply(c, r, "EX", 0);
		break;
	case CR_NOT_FOUND:
		ms_reply(c, r, "NF", 0);
		break;
	case CR_TOO_LARGE:
		(void)cmd_del(&c->cl, r->key, r->klen);
		mc_reply_always(c, "SERVER_ERROR object too large for cache");
		break;
	case CR_FULL:
		(void)cmd_del(&c->cl, r->key, r->klen);
		mc_reply_always(c, "SERVER_ERROR out of memory storing object");
		break;
	case CR_QUOTA:
		mc_reply_always(c, "SERVER_ERROR out of memory: over the "
		    "user's quota");
		break;
	default:
		mc_reply_always(c, "SERVER_ERROR store error");
		break;
	}
}

/* ---- md, ma ------------------------------------------------------------- */

static void
do_md(struct conn *c, const struct mc_request *r)
{
	const struct mc_meta *m = &r->meta;
	struct store_mdel d;
	int rc;

	memset(&d, 0, sizeof(d));
	d.cas_check = mc_meta_has(m, 'C');
	d.cas = m->cas;
	if ((d.stale = mc_meta_has(m, 'I')) && mc_meta_has(m, 'T')) {
		d.touch = 1;
		d.touch_exp = mc_abs_exptime(m->ttl);
	}
	rc = cmd_mdel(&c->cl, r->key, r->klen, &d);
	if (mc_refused(c, r, rc))
		return;
	switch (rc) {
	case CR_OK:
		if (!r->noreply)
			status_line(c, r, "HD");
		break;
	case CR_NOT_FOUND:
		status_line(c, r, "NF");
		break;
	case CR_EXISTS:
		status_line(c, r, "EX");
		break;
	default:
		mc_reply_always(c, "SERVER_ERROR store error");
		break;
	}
}

static void
ma_reply(struct conn *c, const struct mc_request *r,
    const struct store_marith *a)
{
	const struct mc_meta *m = &r->meta;
	char num[24];
	uint32_t e = a->exp_before;
	size_t i;
	int n;

	n = snprintf(num, sizeof(num), "%" PRIu64, a->value);
	if (mc_meta_has(m, 'v'))
		buf_printf(&c->ob, "VA %d", n);
	else
		buf_append(&c->ob, "HD", 2);
	for (i = 0; i < m->nflags; i++) {
		switch (m->order[i]) {
		case 'c':
			buf_printf(&c->ob, " c%" PRIu64, a->new_cas);
			break;
		case 't':
			flag_ttl(c, e);
			break;
		case 'T':
			e = mc_abs_exptime(m->ttl);
			break;
		case 'N':
			if (a->created)
				e = mc_abs_exptime(m->vivify);
			break;
		case 'O':
			flag_opaque(c, m);
			break;
		case 'k':
			flag_key(c, r->key, r->klen, m->binary);
			break;
		default:
			break;
		}
	}
	buf_append(&c->ob, "\r\n", 2);
	if (mc_meta_has(m, 'v')) {
		buf_append(&c->ob, num, (size_t)n);
		buf_append(&c->ob, "\r\n", 2);
	}
}

static void
do_ma(struct conn *c, const struct mc_request *r)
{
	const struct mc_meta *m = &r->meta;
	struct store_marith a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.incr = !(m->mode == 'D' || m->mode == '-');
	a.delta = m->delta;
	a.cas_check = mc_meta_has(m, 'C');
	a.cas = m->cas;
	if ((a.vivify = mc_meta_has(m, 'N'))) {
		a.viv_exp = mc_abs_exptime(m->vivify);
		a.initial = m->initial;
	}
	if ((a.touch = mc_meta_has(m, 'T'))) {
		a.touch_exp = mc_abs_exptime(m->ttl);
		a.viv_last = a.vivify &&
		    strchr(m->order, 'N') > strchr(m->order, 'T');
	}
	rc = cmd_marith(&c->cl, r->key, r->klen, &a);
	if (mc_refused(c, r, rc))
		return;
	switch (rc) {
	case CR_OK:
		/* As memcached: q does not hide an item N made. */
		if (!r->noreply || a.created)
			ma_reply(c, r, &a);
		break;
	case CR_NOT_FOUND:
		status_line(c, r, "NF");
		break;
	case CR_EXISTS:
		status_line(c, r, "EX");
		break;
	case CR_NOT_NUMBER:
		mc_reply_always(c, "CLIENT_ERROR cannot increment or decrement "
		    "non-numeric value");
		break;
	case CR_FULL:
		mc_reply_always(c, "SERVER_ERROR out of memory");
		break;
	case CR_QUOTA:
		mc_reply_always(c, "SERVER_ERROR out of memory: over the "
		    "user's quota");
		break;
	default:
		mc_reply_always(c, "SERVER_ERROR store error");
		break;
	}
}

void
mc_meta(struct conn *c, const struct mc_request *r)
{
	switch (r->verb) {
	case MV_MN:
		mc_reply_always(c, "MN");
		break;
	case MV_MG:
		do_mg(c, r);
		break;
	case MV_ME:
		do_me(c, r);
		break;
	case MV_MS:
		do_ms(c, r);
		break;
	case MV_MD:
		do_md(c, r);
		break;
	case MV_MA:
		do_ma(c, r);
		break;
	default:
		mc_reply_always(c, "ERROR");
		break;
	}
}
