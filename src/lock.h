/*
 * lock.h - recoverable process-shared locks and the process registry.
 */
#ifndef LOCK_H
#define LOCK_H

#include <stdint.h>

#include "layout.h"
#include "store.h"

/* How long a waiter sleeps between looks at the holder. */
#define LOCK_PROBE_MS		100
/* How long a lock may look taken with no holder recorded before a dead
 * process that wanted it is presumed to have died inside the entry window. */
#define LOCK_WINDOW_GRACE_MS	400

/* CLOCK_MONOTONIC in milliseconds, the same for every process. */
uint64_t mono_ms(void);
int	lock_init(struct kv_lock *);
void	lock_acquire(struct store *, struct kv_lock *);
void	lock_release(struct store *, struct kv_lock *);
void	tx_set32(struct store *, struct kv_lock *, uint32_t *, uint32_t);
void	tx_set64(struct store *, struct kv_lock *, uint64_t *, uint64_t);
void	tx_commit(struct kv_lock *);

int	registry_join(struct store *);
void	registry_leave(struct store *);
int	process_alive(struct store *, uint32_t pid);
struct kv_slot *registry_slot(struct store *);
struct kv_slot *registry_slots(struct store *);

/* recover.c finishes what a dead process left behind. */
void	store_finish_dead(struct store *, struct kv_slot *);

#endif
