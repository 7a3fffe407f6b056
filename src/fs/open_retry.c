/* open_retry.c - telling the kernel's retry of an open from a new open (open_retry.h). */
#include "open_retry.h"

#include <pthread.h>
#include <stdint.h>

#include "fs.h"
#include "names.h"

/* The kernel retries at once; an entry older than this belongs to no retry any more. */
#define RETRY_WINDOW_NS (1000 * 1000000LL)
#define SLOTS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t hash;
    pid_t pid;
    int64_t at_ns;            /* when an open of the key answered ESTALE; 0: created here since */
} slots[SLOTS];               /* [mu] direct-mapped by the key's hash and the thread */
static int64_t last_stale_ns; /* atomic: creates skip the table when no ESTALE is recent */

static size_t slot_of(uint64_t hash, pid_t pid)
{
    return (size_t)((hash ^ ((uint64_t)(uint32_t)pid * 0x9E3779B97F4A7C15ULL)) % SLOTS);
}

bool open_retry_is_retry(const char *key, size_t len, pid_t pid)
{
    uint64_t h = names_hash(key, len);
    int64_t now = now_ns();
    pthread_mutex_lock(&mu);
    size_t i = slot_of(h, pid);
    bool retry = slots[i].hash == h && slots[i].pid == pid && slots[i].at_ns &&
                 now - slots[i].at_ns < RETRY_WINDOW_NS;
    if (!retry) {
        slots[i].hash = h;
        slots[i].pid = pid;
        slots[i].at_ns = now;
        __atomic_store_n(&last_stale_ns, now, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&mu);
    return retry;
}

void open_retry_created(const char *key, size_t len, pid_t pid)
{
    if (now_ns() - __atomic_load_n(&last_stale_ns, __ATOMIC_ACQUIRE) >= RETRY_WINDOW_NS)
        return;
    uint64_t h = names_hash(key, len);
    pthread_mutex_lock(&mu);
    size_t i = slot_of(h, pid);
    if (slots[i].hash == h && slots[i].pid == pid)
        slots[i].at_ns = 0;
    pthread_mutex_unlock(&mu);
}
