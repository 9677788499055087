/*
 * mcproto.h - the memcached front-end's parts (mcproto.c, mcmeta.c,
 * mcstats.c): replies to parsed requests, through the command layer.  No
 * I/O and no store calls in any of them.
 */
#ifndef MCPROTO_H
#define MCPROTO_H

#include <stdint.h>

#include "conn.h"
#include "mcparse.h"

/*
 * What VERSION and "stats" say: the protocol level implemented, so that
 * every client library reads 1.6.x; kvstore's own version is the
 * kvstore_version statistic.
 */
#define MC_VERSION	"1.6.18"

void	 mc_reply_always(struct conn *, const char *line);
void	 mc_reply(struct conn *, const struct mc_request *, const char *line);
int	 mc_refused(struct conn *, const struct mc_request *, int rc);
uint32_t mc_abs_exptime(int32_t);

/* mcmeta.c: mg, ms, md, ma, mn, me. */
void	 mc_meta(struct conn *, const struct mc_request *);

/* mcstats.c: stats and its subcommands, lru_crawler, the dumps. */
void	 mc_stats(struct conn *, const struct mc_request *);
void	 mc_crawler(struct conn *, const struct mc_request *);
int	 mc_dump_step(struct conn *);
void	 mc_binary(struct conn *, const struct mc_request *);

#endif
