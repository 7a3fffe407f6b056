/*
 * small_lock.h - a mutex of 4 bytes, for what the daemon keeps one of per cached key (a node:
 * 100,000 keys are 100,000 nodes), where pthread_mutex_t would take 40.
 *
 * A futex word with three states (0 free, 1 held, 2 held and maybe waited for), as in Ulrich
 * Drepper's "Futexes Are Tricky" (its third mutex): taking a free lock is one compare-and-swap,
 * releasing one nobody waits for is one atomic decrement; only contention enters the kernel.
 * Not recursive, not robust, no error checking: the holder releases it exactly once. A zeroed
 * small_lock is a free one.
 */
#ifndef ETCDFS_SMALL_LOCK_H
#define ETCDFS_SMALL_LOCK_H

#include <stdint.h>

typedef struct small_lock {
    uint32_t word;
} small_lock;

void small_lock_acquire(small_lock *l);
void small_lock_release(small_lock *l);

#endif
