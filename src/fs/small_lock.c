/* small_lock.c - the 4-byte futex mutex (see small_lock.h). */
#include "small_lock.h"

#include <linux/futex.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { FREE = 0, HELD = 1, CONTENDED = 2 };

static void futex_wait(uint32_t *word, uint32_t expected)
{
    /* returns at once when *word is no longer `expected` (EAGAIN), or on a spurious wake-up:
     * the caller looks again either way */
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_one(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void small_lock_acquire(small_lock *l)
{
    uint32_t seen = FREE;
    if (__atomic_compare_exchange_n(&l->word, &seen, HELD, false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
        return;
    /* Contended: mark the lock as waited for before sleeping, so that its release wakes
     * someone; whoever finds it FREE while marking it has taken it (as CONTENDED, since
     * others may still sleep on it). */
    if (seen != CONTENDED)
        seen = __atomic_exchange_n(&l->word, CONTENDED, __ATOMIC_ACQUIRE);
    while (seen != FREE) {
        futex_wait(&l->word, CONTENDED);
        seen = __atomic_exchange_n(&l->word, CONTENDED, __ATOMIC_ACQUIRE);
    }
}

void small_lock_release(small_lock *l)
{
    if (__atomic_fetch_sub(&l->word, 1, __ATOMIC_RELEASE) != HELD) {
        /* it was CONTENDED: free it and wake one sleeper, which marks it CONTENDED again */
        __atomic_store_n(&l->word, FREE, __ATOMIC_RELEASE);
        futex_wake_one(&l->word);
    }
}
