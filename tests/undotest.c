/*
 * undotest.c - the undo log names a word past 4 GiB exactly (tests/store.bats).
 *
 * A segment may be up to 32 GiB (-m), and the allocator and publish() log
 * words of the arena.  A critical section changes a word 4 GiB past another
 * and its process "dies" holding the lock; the next taker rolls the log
 * back.  The far word must get its old value again and the near word must
 * be left alone.  A sparse anonymous mapping of 5 GiB: three pages touched.
 *
 * Prints the two words after the rollback; exits 0 when both are right.
 */
#include <sys/mman.h>

#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "lock.h"
#include "store.h"

#define GIB	(1024ULL * 1024 * 1024)

int
main(void)
{
	struct store st;
	struct kv_header *h;
	struct kv_lock *l;
	uint32_t *far, *near;
	size_t size = 5 * GIB;

	memset(&st, 0, sizeof(st));
	st.base = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (st.base == MAP_FAILED) {
		perror("undotest: mmap");
		return 2;
	}
	st.size = size;
	st.fd = -1;
	st.hdr = h = (struct kv_header *)(void *)st.base;
	h->off_slots = 64 * 1024;
	h->nslots = 1;
	st.slot = 1;
	st.pid = (uint32_t)getpid();
	l = &h->alloc_lock;
	if (lock_init(l) == -1)
		return 2;
	near = (uint32_t *)(void *)(st.base + 1024 * 1024 + 64);
	far = (uint32_t *)(void *)(st.base + 4 * GIB + 1024 * 1024 + 64);
	*near = 0x1111;
	*far = 0xaaaa;

	/* A critical section changes the far word, and its process dies. */
	lock_acquire(&st, l);
	tx_set32(&st, l, far, 0xbbbb);
	l->holder = 0;
	sem_post(&l->sem);
	/* The next taker finds the log and rolls it back. */
	lock_acquire(&st, l);
	lock_release(&st, l);
	printf("far %#x near %#x\n", *far, *near);
	return *far == 0xaaaa && *near == 0x1111 ? 0 : 1;
}
