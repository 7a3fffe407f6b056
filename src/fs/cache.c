/* cache.c - keeping the daemon within --cache-size (see cache.h). */
#include "cache.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "inode.h"
#include "names.h"
#include "notify.h"
#include "prefetch.h"

/* glibc's malloc: 16 bytes of header and alignment per allocation, about. */
#define ALLOC_OVERHEAD 16
/* Memory freed since the last malloc_trim that makes the next one worth its walk of the heap. */
#define TRIM_AFTER_BYTES (4 << 20)
#define TRIM_EVERY_NS 1000000000LL
/* A bulk free (a tree deleted elsewhere: the kernel's forgets arrive over seconds) seldom ends on
 * a multiple of TRIM_AFTER_BYTES: for a while after a trim, less than that is worth handing back
 * too, or the last few MiB of a large tree would stay until the next bulk free. */
#define TRIM_TAIL_BYTES (256 << 10)
#define TRIM_TAIL_NS (10 * TRIM_EVERY_NS)
/* A pass of the keeper waits this long before the next: the kernel's forgets arrive meanwhile.
 * Passes that free nothing (what is cached is in use: open files, directories, a cap below
 * that) wait twice as long each time, up to PASS_MAX_NS, instead of rescanning the table. */
#define PASS_EVERY_NS 200000000LL
#define PASS_MAX_NS 5000000000LL
/* How long a cached answer is trusted while the watch keeps the cache coherent, at least. */
#define WATCH_TRUST_NS ((int64_t)60 * 1000000000)

int64_t cache_trust_ns(void)
{
    if (consistency_strict())
        return 0;
    if (notify_watching() && g_fs.timeout_ns < WATCH_TRUST_NS)
        return WATCH_TRUST_NS;
    return g_fs.timeout_ns;
}

static int64_t value_bytes;     /* atomic */
static int64_t meta_bytes;      /* atomic */
static int64_t released;        /* atomic: bytes freed since the last malloc_trim */
static int64_t last_trim_ns;    /* atomic: when the last malloc_trim was (0: none yet) */
static int trimming;            /* atomic: one synchronous value trim at a time; others skip */
static cache_counters counters; /* atomic fields */

static pthread_mutex_t keeper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t keeper_cv = PTHREAD_COND_INITIALIZER; /* wanted, or stop */
static pthread_cond_t stop_cv; /* stop, during a pause (CLOCK_MONOTONIC, cache_keeper_start) */
static bool keeper_wanted;     /* [keeper_mu] */
static bool keeper_stop;       /* [keeper_mu] */
static bool keeper_running;
static pthread_t keeper;

static void wake_keeper(void)
{
    pthread_mutex_lock(&keeper_mu);
    keeper_wanted = true;
    pthread_cond_signal(&keeper_cv);
    pthread_mutex_unlock(&keeper_mu);
}

/* Whether what was freed since the last trim is worth a trim now (or, freed more, would be). */
static bool worth_trimming(int64_t now, int64_t freed)
{
    int64_t last = __atomic_load_n(&last_trim_ns, __ATOMIC_RELAXED);
    bool tail = last > 0 && now - last < TRIM_TAIL_NS;
    return freed >= TRIM_AFTER_BYTES || (tail && freed >= TRIM_TAIL_BYTES);
}

static void note_released(int64_t delta)
{
    if (delta >= 0)
        return;
    int64_t r = __atomic_add_fetch(&released, -delta, __ATOMIC_RELAXED);
    /* once, when a threshold is crossed */
    bool crossed = (r >= TRIM_AFTER_BYTES && r + delta < TRIM_AFTER_BYTES) ||
                   (r >= TRIM_TAIL_BYTES && r + delta < TRIM_TAIL_BYTES);
    if (crossed && worth_trimming(now_ns(), r) &&
        __atomic_load_n(&keeper_running, __ATOMIC_ACQUIRE))
        wake_keeper();
}

void cache_account(int64_t delta)
{
    __atomic_add_fetch(&value_bytes, delta, __ATOMIC_RELAXED);
    note_released(delta);
}

void cache_account_meta(int64_t delta)
{
    __atomic_add_fetch(&meta_bytes, delta, __ATOMIC_RELAXED);
    note_released(delta);
}

size_t cache_node_bytes(size_t key_len, bool is_dir)
{
    size_t dir = is_dir ? sizeof(dir_part) + ALLOC_OVERHEAD : 0;
    return sizeof(node) + key_len + 1 + 2 * ALLOC_OVERHEAD + dir;
}

size_t cache_file_part_bytes(void)
{
    return sizeof(file_part) + ALLOC_OVERHEAD;
}

size_t cache_entry_bytes(size_t name_bytes, size_t comp_len, size_t val_bytes)
{
    /* the entry in the listing's array (cut to fit once read), and its one block: component,
     * value and display name with their terminators */
    return sizeof(listing_entry) + name_bytes + comp_len + 1 + val_bytes + ALLOC_OVERHEAD;
}

static uint64_t positive(int64_t *v)
{
    int64_t b = __atomic_load_n(v, __ATOMIC_RELAXED);
    return b > 0 ? (uint64_t)b : 0;
}

uint64_t cache_value_bytes(void)
{
    return positive(&value_bytes);
}

uint64_t cache_meta_bytes(void)
{
    return positive(&meta_bytes);
}

static uint64_t total_bytes(void)
{
    return cache_value_bytes() + cache_meta_bytes();
}

static void count(uint64_t *counter, uint64_t n)
{
    __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

void cache_get_counters(cache_counters *out)
{
    out->evictions = __atomic_load_n(&counters.evictions, __ATOMIC_RELAXED);
    out->listings_dropped = __atomic_load_n(&counters.listings_dropped, __ATOMIC_RELAXED);
    out->names_forgotten = __atomic_load_n(&counters.names_forgotten, __ATOMIC_RELAXED);
    out->malloc_trims = __atomic_load_n(&counters.malloc_trims, __ATOMIC_RELAXED);
}

/* ---- choosing what goes ---------------------------------------------------------------- */

typedef struct candidate {
    node *n;
    int64_t used_ns;
    size_t bytes;
} candidate;

static int oldest_first(const void *a, const void *b)
{
    int64_t x = ((const candidate *)a)->used_ns, y = ((const candidate *)b)->used_ns;
    return x < y ? -1 : x > y;
}

/* Nothing needs the file's content in memory (under n->mu). */
static bool idle_locked(const node *n)
{
    return node_open_count(n) == 0 && !n->dirty && !n->pending;
}

typedef enum { VALUES, LISTINGS, NAMES } kind;

/* The nodes of `k` that could go, oldest use first (each with a reference; release_all). */
static candidate *candidates(kind k, size_t *out_n)
{
    size_t count = 0;
    node **all = node_all(&count);
    candidate *c = all ? malloc((count + 1) * sizeof *c) : NULL;
    size_t nc = 0;
    for (size_t i = 0; c && i < count; i++) {
        node *n = all[i];
        bool take = false;
        int64_t used = 0;
        size_t bytes = 0;
        if (k != LISTINGS && n->type == NODE_FILE) {
            node_lock(n);
            const file_part *p = node_fpart(n);
            take = idle_locked(n) && (k == NAMES || (p && p->data));
            used = p ? p->used_ns : 0;
            bytes = (p ? p->cap : 0) + (k == NAMES ? cache_node_bytes(n->key_len, false) +
                                                         (p ? cache_file_part_bytes() : 0)
                                                   : 0);
            node_unlock(n);
        } else if (k == LISTINGS && n->type == NODE_DIR) {
            node_lock(n);
            const listing *l = n->dpart->list;
            take = l != NULL;
            used = take ? l->fetched_ns : 0;
            node_unlock(n);
        }
        if (take)
            c[nc++] = (candidate){n, used, bytes};
        else
            node_put(n);
    }
    if (!c)
        for (size_t i = 0; all && i < count; i++)
            node_put(all[i]);
    free(all);
    if (c)
        qsort(c, nc, sizeof *c, oldest_first);
    *out_n = nc;
    return c;
}

static void release_all(candidate *c, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        node_put(c[i].n);
    free(c);
}

/* Drops n's value if nothing needs it (caller holds no lock). */
static void evict_value(node *n)
{
    node_lock(n);
    if (node_data(n) && idle_locked(n)) {
        node_forget_content_locked(n); /* the file's part goes with it: nothing uses it */
        /* Not known any more: the next open or stat reads the key (and its value) again. */
        n->known = false;
        n->mod_rev = 0;
        n->validated_ns = 0;
        count(&counters.evictions, 1);
    }
    node_unlock(n);
}

/* Evicts values, oldest use first, until `over()` is false. */
static void evict_values(bool (*over)(void))
{
    size_t n = 0;
    candidate *c = over() ? candidates(VALUES, &n) : NULL;
    size_t i = 0;
    for (; i < n && over(); i++) {
        evict_value(c[i].n);
        node_put(c[i].n);
    }
    if (c)
        release_all(c, i, n);
}

static void drop_listings(bool (*over)(void))
{
    size_t n = 0;
    candidate *c = over() ? candidates(LISTINGS, &n) : NULL;
    size_t i = 0;
    for (; i < n && over(); i++) {
        node_drop_listing_for_event(c[i].n); /* read again at the next readdir or lookup */
        count(&counters.listings_dropped, 1);
        node_put(c[i].n);
    }
    if (c)
        release_all(c, i, n);
}

/* Asks the kernel to forget the name of an idle file: once its dentry goes, so does its inode
 * (FORGET), and with it the node. Not for a directory's own value ("%value"): that name is the
 * directory's, which lives on. Keeper thread only (never inside a request for the parent). */
static bool forget_name(node *n)
{
    size_t len;
    char *key = node_key(n, &len);
    if (!key)
        return false;
    size_t at = names_last_component(key, len, g_fs.prefix_len);
    node *dir = at < len && !node_is_directory_value(key, len) && node_indexed(n)
                    ? node_find(key, at, NODE_DIR)
                    : NULL;
    if (dir) {
        char name[NAMES_MAX + 1];
        size_t nl = names_to_display(key + at, len - at, dir->ino == FUSE_ROOT_ID, name);
        fuse_lowlevel_notify_inval_entry(g_fs.se, dir->ino, name, nl);
        node_put(dir);
    }
    free(key);
    return dir != NULL;
}

static void forget_names(uint64_t excess)
{
    size_t n = 0;
    candidate *c = candidates(NAMES, &n);
    uint64_t freed = 0;
    size_t i = 0;
    for (; i < n && freed < excess; i++) {
        if (forget_name(c[i].n)) {
            freed += c[i].bytes;
            count(&counters.names_forgotten, 1);
        }
        node_put(c[i].n);
    }
    if (c)
        release_all(c, i, n);
}

/* ---- the synchronous part ----------------------------------------------------------------- */

static uint64_t cap_bytes(void)
{
    return g_fs.opts->cache_size;
}

static uint64_t target_bytes(void)
{
    return cap_bytes() - cap_bytes() / 10;
}

static bool values_over_target(void)
{
    return cache_value_bytes() > target_bytes();
}

static bool total_over_target(void)
{
    return total_bytes() > target_bytes();
}

void cache_trim(void)
{
    uint64_t cap = cap_bytes();
    if (cap == 0 || total_bytes() <= cap)
        return;
    if (cache_value_bytes() > cap && !__atomic_exchange_n(&trimming, 1, __ATOMIC_ACQUIRE)) {
        evict_values(values_over_target);
        __atomic_store_n(&trimming, 0, __ATOMIC_RELEASE);
    }
    if (total_bytes() > cap && __atomic_load_n(&keeper_running, __ATOMIC_ACQUIRE))
        wake_keeper();
}

/* ---- the keeper --------------------------------------------------------------------------- */

/* Returns whether it freed something (or asked the kernel to). */
static bool keeper_pass(void)
{
    uint64_t before = total_bytes();
    uint64_t forgotten = __atomic_load_n(&counters.names_forgotten, __ATOMIC_RELAXED);
    if (cap_bytes() > 0 && total_over_target()) {
        evict_values(total_over_target);
        drop_listings(total_over_target);
        if (total_over_target())
            prefetch_clear(); /* subtree listings read ahead for a walk (watch mode) */
        if (total_over_target())
            forget_names(total_bytes() - target_bytes());
    }
    return total_bytes() < before ||
           __atomic_load_n(&counters.names_forgotten, __ATOMIC_RELAXED) != forgotten;
}

/* Waits ns nanoseconds, or less when the keeper is told to stop (keeper_mu held). */
static void pause_unless_stopping(int64_t ns)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t at = until.tv_nsec + ns;
    until.tv_sec += at / 1000000000LL;
    until.tv_nsec = at % 1000000000LL;
    while (!keeper_stop && pthread_cond_timedwait(&stop_cv, &keeper_mu, &until) != ETIMEDOUT) {
    }
}

static void *keeper_main(void *arg)
{
    (void)arg;
    int64_t pause_ns = PASS_EVERY_NS;
    pthread_mutex_lock(&keeper_mu);
    while (!keeper_stop) {
        if (!keeper_wanted) {
            pthread_cond_wait(&keeper_cv, &keeper_mu);
            continue;
        }
        keeper_wanted = false;
        pthread_mutex_unlock(&keeper_mu);
        bool over = cap_bytes() > 0 && total_over_target();
        bool freed = keeper_pass();
        pause_ns = !over || freed               ? PASS_EVERY_NS
                   : pause_ns * 2 > PASS_MAX_NS ? PASS_MAX_NS
                                                : pause_ns * 2;
        int64_t now = now_ns();
        int64_t last_trim = __atomic_load_n(&last_trim_ns, __ATOMIC_RELAXED);
        if (worth_trimming(now, __atomic_load_n(&released, __ATOMIC_RELAXED)) &&
            now - last_trim >= TRIM_EVERY_NS) {
            __atomic_store_n(&released, 0, __ATOMIC_RELAXED);
            malloc_trim(0);
            count(&counters.malloc_trims, 1);
            __atomic_store_n(&last_trim_ns, now, __ATOMIC_RELAXED);
        }
        pthread_mutex_lock(&keeper_mu);
        pause_unless_stopping(pause_ns);
        /* memory freed but not handed back yet (the trim waited for its second, or a bulk free
         * is still ending): come again */
        if (worth_trimming(now_ns(), __atomic_load_n(&released, __ATOMIC_RELAXED)) ||
            (cap_bytes() > 0 && total_bytes() > cap_bytes()))
            keeper_wanted = true;
    }
    pthread_mutex_unlock(&keeper_mu);
    return NULL;
}

int cache_keeper_start(void)
{
    keeper_stop = false;
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        rc = pthread_cond_init(&stop_cv, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc == 0 && (rc = pthread_create(&keeper, NULL, keeper_main, NULL)) != 0)
        pthread_cond_destroy(&stop_cv);
    if (rc == 0)
        __atomic_store_n(&keeper_running, true, __ATOMIC_RELEASE);
    return rc;
}

void cache_keeper_stop(void)
{
    if (!__atomic_exchange_n(&keeper_running, false, __ATOMIC_ACQ_REL))
        return;
    pthread_mutex_lock(&keeper_mu);
    keeper_stop = true;
    pthread_cond_signal(&keeper_cv);
    pthread_cond_signal(&stop_cv);
    pthread_mutex_unlock(&keeper_mu);
    pthread_join(keeper, NULL);
    pthread_cond_destroy(&stop_cv);
}
