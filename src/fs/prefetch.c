/* prefetch.c - subtree listings read ahead for tree walks in watch mode (see prefetch.h). */
#include "prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "listing.h"
#include "log.h"
#include "names.h"

#define BUCKETS 4096
#define MAX_KEYS 262144            /* keys held here at once, and read by one prefetch */
#define MAX_BYTES (64u << 20)      /* keys and values read by one prefetch */
#define WALK_NS (5 * 1000000000LL) /* two child listings this close start a prefetch */
#define REFUSED_NS                                                                                 \
    (60 * 1000000000LL) /* a subtree found too big is not tried again for this long */
#define PARENTS 64      /* parents whose child listings are counted */

typedef struct waiting {
    struct waiting *next;
    char *dir;
    size_t len;
    listing *l;
} waiting;

typedef struct parent {
    char *dir;
    size_t len;
    unsigned children;
    int64_t last_ns;
    int64_t refused_until_ns;
    bool busy;
} parent;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static waiting *buckets[BUCKETS]; /* [mu] */
static size_t held_keys;          /* [mu] entries of the listings waiting */
static size_t held;               /* [mu] listings waiting */
static int64_t applied_rev;       /* [mu] highest revision of an event seen */
static uint64_t own_changes;      /* [mu] changes of listings by this mount's own operations */
static parent parents[PARENTS];   /* [mu] */

static waiting **slot_of(const char *dir, size_t len)
{
    waiting **at = &buckets[names_hash(dir, len) % BUCKETS];
    while (*at && !((*at)->len == len && !memcmp((*at)->dir, dir, len)))
        at = &(*at)->next;
    return at;
}

static void unlink_locked(waiting **at)
{
    waiting *w = *at;
    *at = w->next;
    held--;
    held_keys -= w->l->n;
    listing_unref(w->l);
    free(w->dir);
    free(w);
}

static void drop_locked(const char *dir, size_t len)
{
    waiting **at = slot_of(dir, len);
    if (*at)
        unlink_locked(at);
}

static void clear_locked(void)
{
    for (size_t i = 0; i < BUCKETS; i++)
        while (buckets[i])
            unlink_locked(&buckets[i]);
}

void prefetch_clear(void)
{
    pthread_mutex_lock(&mu);
    clear_locked();
    own_changes++;
    pthread_mutex_unlock(&mu);
}

/* Every listing that can show key: the directories on its path, and the directory whose own
 * value it is. */
static void drop_path_locked(const char *key, size_t key_len)
{
    if (g_fs.prefix_len == 0)
        drop_locked(key, 0);
    for (size_t i = 0; i < key_len; i++)
        if (key[i] == '/' && i + 1 >= g_fs.prefix_len)
            drop_locked(key, i + 1);
    size_t len;
    char *as_dir = key_join(key, key_len, "/", 1, NULL, 0, &len);
    if (as_dir)
        drop_locked(as_dir, len);
    else
        clear_locked();
    free(as_dir);
}

void prefetch_event(const char *key, size_t key_len, int64_t rev)
{
    pthread_mutex_lock(&mu);
    if (rev > applied_rev)
        applied_rev = rev;
    if (held)
        drop_path_locked(key, key_len);
    pthread_mutex_unlock(&mu);
}

void prefetch_dir_changed(const char *dir, size_t len)
{
    pthread_mutex_lock(&mu);
    own_changes++;
    if (held)
        drop_locked(dir, len);
    pthread_mutex_unlock(&mu);
}

/* The waiting listing of dir, taken out of the store, if it is still fresh. */
static listing *take(const char *dir, size_t len)
{
    listing *l = NULL;
    pthread_mutex_lock(&mu);
    waiting **at = held ? slot_of(dir, len) : NULL;
    if (at && *at) {
        if (now_ns() - (*at)->l->fetched_ns <= cache_trust_ns())
            l = listing_ref((*at)->l);
        unlink_locked(at);
    }
    pthread_mutex_unlock(&mu);
    return l;
}

/* Counts a child listing of parent dir; true when it looks like a walk worth a prefetch (the
 * caller then owns the parent's busy flag). */
static bool walk_starts(const char *dir, size_t len)
{
    int64_t now = now_ns();
    pthread_mutex_lock(&mu);
    parent *p = &parents[names_hash(dir, len) % PARENTS];
    if (!(p->dir && p->len == len && !memcmp(p->dir, dir, len))) {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, dir, len);
            free(p->dir);
            *p = (parent){.dir = copy, .len = len};
        }
    }
    bool go = false;
    if (p->dir && p->len == len) {
        p->children = now - p->last_ns <= WALK_NS ? p->children + 1 : 1;
        p->last_ns = now;
        go = p->children >= 2 && !p->busy && now >= p->refused_until_ns;
        p->busy = p->busy || go;
    }
    pthread_mutex_unlock(&mu);
    return go;
}

typedef struct batch {
    listing **l;
    char **dir;
    size_t *len;
    size_t n, cap, keys;
    bool failed;
} batch;

static void collect(listing *l, const char *dir, size_t len, void *arg)
{
    batch *b = arg;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        listing **nl = realloc(b->l, cap * sizeof *nl);
        if (nl)
            b->l = nl;
        char **nd = nl ? realloc(b->dir, cap * sizeof *nd) : NULL;
        if (nd)
            b->dir = nd;
        size_t *ns = nd ? realloc(b->len, cap * sizeof *ns) : NULL;
        if (ns)
            b->len = ns;
        if (!ns) {
            b->failed = true;
            listing_unref(l);
            return;
        }
        b->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        b->failed = true;
        listing_unref(l);
        return;
    }
    memcpy(copy, dir, len);
    b->l[b->n] = l;
    b->dir[b->n] = copy;
    b->len[b->n] = len;
    b->keys += l->n;
    b->n++;
}

/* Stores the batch read at revision rev, unless an event after rev was applied or this mount
 * changed a listing meanwhile (either may be missing from it). */
static void publish(batch *b, int64_t rev, uint64_t changes_before)
{
    pthread_mutex_lock(&mu);
    bool keep = !b->failed && applied_rev <= rev && own_changes == changes_before;
    if (keep && held_keys + b->keys > MAX_KEYS)
        clear_locked(); /* an older walk's leftovers make room */
    for (size_t i = 0; i < b->n; i++) {
        waiting *w = keep ? malloc(sizeof *w) : NULL;
        if (w) {
            drop_locked(b->dir[i], b->len[i]);
            *w = (waiting){.dir = b->dir[i], .len = b->len[i], .l = b->l[i]};
            waiting **at = &buckets[names_hash(w->dir, w->len) % BUCKETS];
            w->next = *at;
            *at = w;
            held++;
            held_keys += w->l->n;
        } else {
            listing_unref(b->l[i]);
            free(b->dir[i]);
        }
    }
    pthread_mutex_unlock(&mu);
    free(b->l);
    free(b->dir);
    free(b->len);
}

static void finish_walk(const char *dir, size_t len, bool refused)
{
    pthread_mutex_lock(&mu);
    parent *p = &parents[names_hash(dir, len) % PARENTS];
    if (p->dir && p->len == len && !memcmp(p->dir, dir, len)) {
        p->busy = false;
        if (refused)
            p->refused_until_ns = now_ns() + REFUSED_NS;
    }
    pthread_mutex_unlock(&mu);
}

/* Reads the subtree of the parent directory pdir into the store. */
static void prefetch_parent(const char *pdir, size_t plen)
{
    pthread_mutex_lock(&mu);
    uint64_t changes_before = own_changes;
    pthread_mutex_unlock(&mu);
    batch b = {0};
    int64_t rev = 0;
    int rc = listing_fetch_subtree(pdir, plen, plen == g_fs.prefix_len, MAX_KEYS, MAX_BYTES,
                                   collect, &b, &rev);
    if (log_debug_enabled()) {
        char kb[LOG_KEY_BUF];
        log_debug("prefetch %s: %zu directories, %zu entries at revision %lld%s",
                  log_key(pdir, plen, kb, sizeof kb), b.n, b.keys, (long long)rev,
                  rc == EFBIG ? " (subtree too big: stopped)"
                  : rc        ? " (failed)"
                              : "");
    }
    publish(&b, rev, changes_before);
    finish_walk(pdir, plen, rc == EFBIG);
}

listing *prefetch_take(node *dir)
{
    size_t len;
    char *key = node_key(dir, &len);
    if (!key)
        return NULL;
    listing *l = take(key, len);
    if (!l && len > g_fs.prefix_len) {
        /* the parent: up to the '/' before the last component */
        size_t plen = names_last_component(key, len - 1, 0);
        if (plen >= g_fs.prefix_len && walk_starts(key, plen)) {
            prefetch_parent(key, plen);
            l = take(key, len);
        }
    }
    free(key);
    return l;
}
