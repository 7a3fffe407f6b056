/*
 * test_small_lock.c - the 4-byte futex mutex (src/fs/small_lock.c): mutual exclusion under
 * contention (threads adding to a plain counter, and checking that nobody else is inside),
 * handing over between many waiters, a zeroed lock being free.
 */
#include <pthread.h>
#include <stdio.h>

#include "small_lock.h"

#include "check.h"

enum { THREADS = 8, ROUNDS = 200000 };

static small_lock lock; /* zeroed: free */
static long counter;    /* guarded by lock */
static int inside;      /* guarded by lock: how many hold it (must stay 0 or 1) */
static int overlaps;    /* guarded by lock */

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        small_lock_acquire(&lock);
        if (++inside != 1)
            overlaps++;
        counter++;
        inside--;
        small_lock_release(&lock);
    }
    return NULL;
}

static void test_contended(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, adder, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(counter == (long)THREADS * ROUNDS);
    CHECK(overlaps == 0);
    CHECK(lock.word == 0); /* released by everyone: free, nobody marked as waiting */
}

static void test_uncontended(void)
{
    small_lock l = {0};
    small_lock_acquire(&l);
    CHECK(l.word == 1);
    small_lock_release(&l);
    CHECK(l.word == 0);
}

int main(void)
{
    test_uncontended();
    test_contended();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
