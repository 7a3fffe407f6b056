/* cache.c - the cap on cached file values (see cache.h). */
#include "cache.h"

#include <stdlib.h>

#include "inode.h"

static int64_t value_bytes; /* atomic */
static uint64_t evictions;  /* atomic */
static int trimming;        /* atomic: one trim at a time; others skip */

void cache_account(int64_t delta)
{
    __atomic_add_fetch(&value_bytes, delta, __ATOMIC_RELAXED);
}

uint64_t cache_value_bytes(void)
{
    int64_t b = __atomic_load_n(&value_bytes, __ATOMIC_RELAXED);
    return b > 0 ? (uint64_t)b : 0;
}

uint64_t cache_evictions(void)
{
    return __atomic_load_n(&evictions, __ATOMIC_RELAXED);
}

typedef struct candidate {
    node *n;
    int64_t used_ns;
} candidate;

static int oldest_first(const void *a, const void *b)
{
    int64_t x = ((const candidate *)a)->used_ns, y = ((const candidate *)b)->used_ns;
    return x < y ? -1 : x > y;
}

/* Drops n's value if nothing needs it (caller holds no lock). */
static void evict(node *n)
{
    pthread_mutex_lock(&n->mu);
    if (n->data && n->open_count == 0 && !n->dirty && !n->pending) {
        cache_account(-(int64_t)n->cap);
        free(n->data);
        n->data = NULL;
        n->cap = 0;
        /* Not known any more: the next open or stat reads the key (and its value) again. */
        n->known = false;
        n->mod_rev = 0;
        n->validated_ns = 0;
        __atomic_add_fetch(&evictions, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&n->mu);
}

void cache_trim(void)
{
    uint64_t cap = g_fs.opts->cache_size;
    if (cap == 0 || cache_value_bytes() <= cap)
        return;
    if (__atomic_exchange_n(&trimming, 1, __ATOMIC_ACQUIRE))
        return;
    size_t count = 0;
    node **all = node_all(&count);
    candidate *c = all ? malloc((count + 1) * sizeof *c) : NULL;
    size_t nc = 0;
    for (size_t i = 0; c && i < count; i++) {
        node *n = all[i];
        if (n->type != NODE_FILE)
            continue;
        pthread_mutex_lock(&n->mu);
        if (n->data && n->open_count == 0 && !n->dirty && !n->pending)
            c[nc++] = (candidate){n, n->used_ns};
        pthread_mutex_unlock(&n->mu);
    }
    if (c)
        qsort(c, nc, sizeof *c, oldest_first);
    uint64_t target = cap - cap / 10;
    for (size_t i = 0; i < nc && cache_value_bytes() > target; i++)
        evict(c[i].n);
    for (size_t i = 0; all && i < count; i++)
        node_put(all[i]);
    free(c);
    free(all);
    __atomic_store_n(&trimming, 0, __ATOMIC_RELEASE);
}
