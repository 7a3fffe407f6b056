/*
 * inode.c - the node table and the per-node cache (see inode.h for identity and locking).
 *
 * Two chained hash tables index the nodes: by node id (for every FUSE request) and by
 * (key, type) (for lookups, renames and watch events). Nodes live until the kernel forgot them
 * and no request holds them.
 */
#include "inode.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "listing.h"
#include "name_set.h"
#include "names.h"
#include "prefetch.h"

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static node **by_ino, **by_key;                /* [table_mu] */
static size_t buckets, node_count;             /* [table_mu] */
static fuse_ino_t next_ino = FUSE_ROOT_ID + 1; /* [table_mu] */
static node *root_node;
static int pending_nodes; /* atomic */

static size_t hash_ino(fuse_ino_t ino)
{
    return (size_t)(ino * 0x9e3779b97f4a7c15ULL >> 17);
}

static size_t hash_key(const void *key, size_t len, node_type type)
{
    return (size_t)(names_hash(key, len) ^ (uint64_t)type);
}

/* [table_mu] */
static void index_ino(node *n)
{
    size_t b = hash_ino(n->ino) % buckets;
    n->next_ino = by_ino[b];
    by_ino[b] = n;
}

/* [table_mu] */
static void index_key(node *n)
{
    size_t b = hash_key(n->key, n->key_len, n->type) % buckets;
    n->next_key = by_key[b];
    by_key[b] = n;
    n->indexed = true;
}

/* [table_mu] */
static void unindex_key(node *n)
{
    if (!n->indexed)
        return;
    node **p = &by_key[hash_key(n->key, n->key_len, n->type) % buckets];
    while (*p && *p != n)
        p = &(*p)->next_key;
    if (*p)
        *p = n->next_key;
    n->indexed = false;
    n->next_key = NULL;
}

/* [table_mu] Doubles the tables when they get crowded; on failure keeps the old ones. */
static void maybe_grow(void)
{
    if (node_count < buckets * 2)
        return;
    size_t nb = buckets * 4;
    node **ni = calloc(nb, sizeof *ni), **nk = calloc(nb, sizeof *nk);
    if (!ni || !nk) {
        free(ni);
        free(nk);
        return;
    }
    node **oi = by_ino, **ok = by_key;
    size_t ob = buckets;
    by_ino = ni;
    by_key = nk;
    buckets = nb;
    for (size_t b = 0; b < ob; b++) {
        for (node *n = oi[b], *next; n; n = next) {
            next = n->next_ino;
            index_ino(n);
        }
        for (node *n = ok[b], *next; n; n = next) {
            next = n->next_key;
            index_key(n);
        }
    }
    free(oi);
    free(ok);
}

/* 120 bytes and malloc's 8-byte header fill a 128-byte chunk: one node per cached key. */
_Static_assert(sizeof(node) <= 120, "a node grew past 120 bytes (inode.h: field order)");

static node *node_new(const void *key, size_t len, node_type type)
{
    if (len > UINT32_MAX) /* longer than any key etcd accepts */
        return NULL;
    node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->key = malloc(len + 1);
    if (!n->key) {
        free(n);
        return NULL;
    }
    memcpy(n->key, key, len);
    n->key[len] = 0;
    n->key_len = len;
    n->type = type;
    if (node_is_dir_type(type) && !(n->dpart = calloc(1, sizeof *n->dpart))) {
        free(n->key);
        free(n);
        return NULL;
    }
    cache_account_meta((int64_t)cache_node_bytes(len, node_is_dir_type(type)));
    if (type == NODE_FILE)
        node_touch_mtime(n);
    else
        node_set_mtime(n, g_fs.mount_time);
    return n;
}

/* Frees the file's part (under n->mu, or with n unreachable), its content included. */
static void free_file_part(node *n)
{
    file_part *p = node_fpart(n);
    if (!p)
        return;
    cache_account(-(int64_t)p->cap);
    cache_account_meta(-(int64_t)cache_file_part_bytes());
    free(p->data);
    free(p);
    n->fpart = NULL;
}

static void node_free(node *n)
{
    dir_part *d = node_dpart(n);
    if (d) {
        listing_unref(d->list);
        name_set_free(d->changed_names);
        free(d);
    }
    free_file_part(n);
    free(n->rec);
    cache_account_meta(
        -(int64_t)cache_node_bytes(n->key_len, node_is_dir_type((node_type)n->type)));
    free(n->key);
    free(n);
}

file_part *node_file_part_locked(node *n)
{
    if (node_is_dir_type((node_type)n->type))
        return NULL;
    if (!n->fpart && (n->fpart = calloc(1, sizeof *n->fpart)))
        cache_account_meta((int64_t)cache_file_part_bytes());
    return n->fpart;
}

void node_forget_content_locked(node *n)
{
    free_file_part(n);
}

#define NS_PER_S 1000000000LL

struct timespec node_mtime(const node *n)
{
    int64_t s = n->mtime_ns / NS_PER_S, ns = n->mtime_ns % NS_PER_S;
    if (ns < 0) { /* before 1970: the remainder is negative, tv_nsec must not be */
        ns += NS_PER_S;
        s--;
    }
    return (struct timespec){.tv_sec = (time_t)s, .tv_nsec = (long)ns};
}

void node_set_mtime(node *n, struct timespec t)
{
    int64_t max_s = INT64_MAX / NS_PER_S - 1, min_s = INT64_MIN / NS_PER_S + 1;
    int64_t s = t.tv_sec > max_s ? max_s : t.tv_sec < min_s ? min_s : (int64_t)t.tv_sec;
    n->mtime_ns = s * NS_PER_S + t.tv_nsec;
}

void node_touch_mtime(node *n)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    node_set_mtime(n, t);
}

void table_init(const char *root_key, size_t root_len)
{
    buckets = 1024;
    by_ino = calloc(buckets, sizeof *by_ino);
    by_key = calloc(buckets, sizeof *by_key);
    root_node = node_new(root_key, root_len, NODE_DIR);
    if (!by_ino || !by_key || !root_node)
        abort(); /* at start-up, before anything is mounted */
    root_node->ino = FUSE_ROOT_ID;
    root_node->nlookup = 1;
    index_ino(root_node);
    index_key(root_node);
    node_count = 1;
}

void table_destroy(void)
{
    for (size_t b = 0; b < buckets; b++) {
        for (node *n = by_ino[b], *next; n; n = next) {
            next = n->next_ino;
            node_free(n);
        }
    }
    free(by_ino);
    free(by_key);
    by_ino = by_key = NULL;
    buckets = node_count = 0;
}

node *node_get(fuse_ino_t ino)
{
    pthread_mutex_lock(&table_mu);
    node *n = by_ino[hash_ino(ino) % buckets];
    while (n && n->ino != ino)
        n = n->next_ino;
    if (n)
        n->refs++;
    pthread_mutex_unlock(&table_mu);
    return n;
}

/* [table_mu] Frees n when nobody references it any more (the root is never freed). */
static void release_if_unused(node *n)
{
    if (n->refs || n->nlookup || n == root_node)
        return;
    unindex_key(n);
    node **p = &by_ino[hash_ino(n->ino) % buckets];
    while (*p && *p != n)
        p = &(*p)->next_ino;
    if (*p)
        *p = n->next_ino;
    node_count--;
    node_free(n);
}

void node_put(node *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&table_mu);
    n->refs--;
    release_if_unused(n);
    pthread_mutex_unlock(&table_mu);
}

/* [table_mu] */
static node *find_locked(const void *key, size_t len, node_type type)
{
    node *n = by_key[hash_key(key, len, type) % buckets];
    while (n && !(n->type == type && n->key_len == len && !memcmp(n->key, key, len)))
        n = n->next_key;
    return n;
}

node *node_find(const void *key, size_t len, node_type type)
{
    pthread_mutex_lock(&table_mu);
    node *n = find_locked(key, len, type);
    if (n)
        n->refs++;
    pthread_mutex_unlock(&table_mu);
    return n;
}

bool node_is_directory_value(const char *key, size_t key_len)
{
    char *dir_key = malloc(key_len + 1);
    if (!dir_key)
        return false;
    memcpy(dir_key, key, key_len);
    dir_key[key_len] = '/';
    node *dir = node_find(dir_key, key_len + 1, NODE_DIR);
    free(dir_key);
    node_put(dir);
    return dir != NULL;
}

node *node_obtain(const void *key, size_t len, node_type type)
{
    pthread_mutex_lock(&table_mu);
    node *n = find_locked(key, len, type);
    if (!n && (n = node_new(key, len, type))) {
        n->ino = next_ino++;
        index_ino(n);
        index_key(n);
        node_count++;
        maybe_grow();
    }
    if (n)
        n->refs++;
    pthread_mutex_unlock(&table_mu);
    return n;
}

void node_ref_kernel(node *n)
{
    pthread_mutex_lock(&table_mu);
    n->nlookup++;
    pthread_mutex_unlock(&table_mu);
}

void node_forget(fuse_ino_t ino, uint64_t count)
{
    pthread_mutex_lock(&table_mu);
    node *n = by_ino[hash_ino(ino) % buckets];
    while (n && n->ino != ino)
        n = n->next_ino;
    if (n) {
        n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
        release_if_unused(n);
    }
    pthread_mutex_unlock(&table_mu);
}

char *node_key(node *n, size_t *len)
{
    pthread_mutex_lock(&table_mu);
    char *k = malloc(n->key_len + 1);
    if (k) {
        memcpy(k, n->key, n->key_len + 1);
        *len = n->key_len;
    }
    pthread_mutex_unlock(&table_mu);
    return k;
}

bool node_indexed(node *n)
{
    pthread_mutex_lock(&table_mu);
    bool indexed = n->indexed;
    pthread_mutex_unlock(&table_mu);
    return indexed;
}

void node_unindex(node *n)
{
    pthread_mutex_lock(&table_mu);
    unindex_key(n);
    pthread_mutex_unlock(&table_mu);
}

int node_rekey(node *n, const void *new_key, size_t new_len)
{
    if (new_len > UINT32_MAX)
        return ENAMETOOLONG;
    char *k = malloc(new_len + 1);
    if (!k)
        return ENOMEM;
    memcpy(k, new_key, new_len);
    k[new_len] = 0;
    pthread_mutex_lock(&table_mu);
    node *old = find_locked(new_key, new_len, n->type);
    if (old && old != n)
        unindex_key(old);
    unindex_key(n);
    free(n->key);
    cache_account_meta((int64_t)new_len - (int64_t)n->key_len);
    n->key = k;
    n->key_len = new_len;
    index_key(n);
    pthread_mutex_unlock(&table_mu);
    return 0;
}

/* [table_mu] Grows *out to hold one more node; false when out of memory (*out freed). */
static bool push_node(node ***out, size_t *count, size_t *cap, node *n)
{
    if (*count == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        node **grown = realloc(*out, nc * sizeof *grown);
        if (!grown) {
            free(*out);
            *out = NULL;
            return false;
        }
        *out = grown;
        *cap = nc;
    }
    (*out)[(*count)++] = n;
    return true;
}

/* Replaces the first old_len bytes of n's key by base (table_mu held, n unindexed). */
static int rebase_locked(node *n, size_t old_len, const char *base, size_t base_len)
{
    size_t len = base_len + n->key_len - old_len;
    char *k = malloc(len + 1);
    if (!k)
        return ENOMEM;
    memcpy(k, base, base_len);
    memcpy(k + base_len, n->key + old_len, n->key_len - old_len);
    k[len] = 0;
    free(n->key);
    cache_account_meta((int64_t)len - (int64_t)n->key_len);
    n->key = k;
    n->key_len = len;
    return 0;
}

/* Nodes that stand for etcd keys of the live tree. The virtual ones (.etcdfs, its statistics
 * file, the past view) have keys that are not etcd keys ("12:a/b" of a past node would
 * otherwise match the live prefix "12:a/"): no rename or removal in etcd moves them. */
static bool live_node(const node *n)
{
    return n->type == NODE_FILE || n->type == NODE_DIR;
}

/* [table_mu] The indexed live nodes whose key starts with p (name: p itself or below p/, when
 * name is set). NULL on allocation failure; none found is an allocated array, *count 0. */
static node **collect_locked(const char *p, size_t len, bool name, size_t *count)
{
    size_t cap = 16;
    node **out = malloc(cap * sizeof *out);
    *count = 0;
    for (size_t b = 0; out && b < buckets; b++) {
        for (node *n = by_key[b]; n && out; n = n->next_key) {
            if (!live_node(n) || n->key_len < len || memcmp(n->key, p, len) ||
                (name && n->key_len > len && n->key[len] != '/'))
                continue;
            push_node(&out, count, &cap, n);
        }
    }
    return out;
}

/* [table_mu] Unindexes every node whose key starts with p, without allocating. */
static void unindex_prefix_locked(const char *p, size_t len)
{
    for (size_t b = 0; b < buckets; b++) {
        for (node *n = by_key[b], *next; n; n = next) {
            next = n->next_key;
            if (live_node(n) && n->key_len >= len && !memcmp(n->key, p, len))
                unindex_key(n);
        }
    }
}

/* [table_mu] Moves every node of set (count of them, all unindexed) from prefix `from` to
 * `to` and indexes it again; one that cannot be moved stays unindexed (looked up afresh). */
static int rebase_all_locked(node **set, size_t count, size_t from_len, const char *to,
                             size_t to_len)
{
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        if (rebase_locked(set[i], from_len, to, to_len) == 0)
            index_key(set[i]);
        else
            rc = ENOMEM;
    }
    return rc;
}

/* [table_mu] A reference on each node of set, for the caller (node_put each). */
static void ref_all_locked(node **set, size_t count)
{
    for (size_t i = 0; i < count; i++)
        set[i]->refs++;
}

node **node_rekey_prefix(const void *old_prefix, size_t old_len, const void *new_prefix,
                         size_t new_len, size_t *count)
{
    prefetch_clear(); /* listings read ahead name keys of the old places */
    pthread_mutex_lock(&table_mu);
    /* Collect first: re-indexing while walking the chains would visit nodes twice. */
    node **moved = collect_locked(old_prefix, old_len, false, count);
    if (moved) {
        /* Nodes already at the destination are replaced by the moved ones. */
        size_t nd = 0;
        node **there = collect_locked(new_prefix, new_len, false, &nd);
        for (size_t i = 0; there && i < nd; i++)
            if (there[i]->key_len < old_len || memcmp(there[i]->key, old_prefix, old_len))
                unindex_key(there[i]);
        free(there);
        for (size_t i = 0; i < *count; i++)
            unindex_key(moved[i]);
        rebase_all_locked(moved, *count, old_len, new_prefix, new_len);
        ref_all_locked(moved, *count);
    } else {
        /* Out of memory: no node may keep a key that etcd moved away; they are looked up
         * afresh under their new names. */
        *count = 0;
        unindex_prefix_locked(old_prefix, old_len);
        unindex_prefix_locked(new_prefix, new_len);
    }
    pthread_mutex_unlock(&table_mu);
    return moved;
}

node **node_swap_names(const char *a, size_t a_len, const char *b, size_t b_len, size_t *na,
                       size_t *nb)
{
    prefetch_clear(); /* listings read ahead name keys of the old places */
    pthread_mutex_lock(&table_mu);
    node **under_a = collect_locked(a, a_len, true, na);
    node **under_b = under_a ? collect_locked(b, b_len, true, nb) : NULL;
    node **all = under_b ? malloc((*na + *nb + 1) * sizeof *all) : NULL;
    if (all) {
        /* Unindex all first: the two sets trade keys, so no moved node may find the other's. */
        for (size_t i = 0; i < *na; i++)
            unindex_key(under_a[i]);
        for (size_t i = 0; i < *nb; i++)
            unindex_key(under_b[i]);
        rebase_all_locked(under_a, *na, a_len, b, b_len);
        rebase_all_locked(under_b, *nb, b_len, a, a_len);
        memcpy(all, under_a, *na * sizeof *all);
        memcpy(all + *na, under_b, *nb * sizeof *all);
        ref_all_locked(all, *na + *nb);
    } else {
        *na = *nb = 0;
        unindex_prefix_locked(a, a_len);
        unindex_prefix_locked(b, b_len);
    }
    pthread_mutex_unlock(&table_mu);
    free(under_a);
    free(under_b);
    return all;
}

node **node_all(size_t *count)
{
    pthread_mutex_lock(&table_mu);
    *count = 0;
    node **all = malloc((node_count + 1) * sizeof *all);
    for (size_t b = 0; all && b < buckets; b++)
        for (node *n = by_ino[b]; n; n = n->next_ino) {
            n->refs++;
            all[(*count)++] = n;
        }
    pthread_mutex_unlock(&table_mu);
    return all;
}

void node_for_each(void (*fn)(node *n, void *arg), void *arg)
{
    pthread_mutex_lock(&table_mu);
    size_t count = 0;
    node **all = malloc((node_count + 1) * sizeof *all);
    for (size_t b = 0; all && b < buckets; b++)
        for (node *n = by_ino[b]; n; n = n->next_ino) {
            n->refs++;
            all[count++] = n;
        }
    pthread_mutex_unlock(&table_mu);
    for (size_t i = 0; i < count; i++) {
        fn(all[i], arg);
        node_put(all[i]);
    }
    free(all);
}

bool node_pending_below(const char *prefix, size_t len)
{
    if (node_pending_count() == 0)
        return false;
    size_t count = 0;
    node **all = node_all(&count);
    bool found = false;
    for (size_t i = 0; all && i < count; i++) {
        node *n = all[i];
        if (!found && n->type == NODE_FILE) {
            size_t klen;
            char *key = node_key(n, &klen);
            bool below = key && klen > len && !memcmp(key, prefix, len) && n->indexed;
            free(key);
            if (below) {
                node_lock(n);
                found = n->pending && !n->unlinked;
                node_unlock(n);
            }
        }
        node_put(n);
    }
    free(all);
    return found;
}

int node_pending_count(void)
{
    return __atomic_load_n(&pending_nodes, __ATOMIC_RELAXED);
}

void node_pending_add(int delta)
{
    __atomic_add_fetch(&pending_nodes, delta, __ATOMIC_RELAXED);
}

int node_set_data_locked(node *n, const void *data, size_t len)
{
    file_part *p = node_file_part_locked(n);
    if (!p)
        return ENOMEM;
    p->trunc_len = 0;
    n->value_unread = false;
    if (len > p->cap || !p->data) {
        size_t cap = len < 64 ? 64 : len;
        char *d = malloc(cap);
        if (!d)
            return ENOMEM;
        free(p->data);
        cache_account((int64_t)cap - (int64_t)p->cap);
        p->data = d;
        p->cap = cap;
    }
    if (len)
        memcpy(p->data, data, len);
    n->size = len;
    return 0;
}

int node_resize_locked(node *n, size_t len)
{
    if (n->value_unread && len > 0)
        return EIO; /* zero-filling would stand for bytes etcd holds */
    file_part *p = node_file_part_locked(n);
    if (!p)
        return ENOMEM;
    n->value_unread = false;
    p->trunc_len = 0;
    if (len > p->cap || !p->data) {
        size_t cap = p->cap ? p->cap : 64;
        while (cap < len)
            cap *= 2;
        char *d = realloc(p->data, cap);
        if (!d)
            return ENOMEM;
        cache_account((int64_t)cap - (int64_t)p->cap);
        p->data = d;
        p->cap = cap;
    }
    if (len > n->size)
        memset(p->data + n->size, 0, len - n->size);
    n->size = len;
    return 0;
}

/* keep_value false: a node that holds no value keeps size and revisions only (value_unread). */
static bool apply_kv_locked(node *n, const etcdc_kv *kv, int64_t as_of, int64_t at_ns,
                            bool keep_value)
{
    if (n->dirty || n->pending || as_of < n->as_of)
        return false;
    /* mod_revision only grows: an older answer (a listing read before our own write) must not
     * replace newer content. */
    if (n->known && kv->mod_revision < n->mod_rev)
        return false;
    n->as_of = as_of;
    if (kv->value_error) {
        /* An encrypted value that does not open: keep nothing, so that the next open asks
         * etcd again and fails with EIO (and one log line) instead of serving bytes. */
        node_set_data_locked(n, "", 0);
        n->known = false;
        n->local_content = false;
        n->mod_rev = kv->mod_revision;
        n->validated_ns = at_ns;
        return true;
    }
    bool changed = !n->known || n->mod_rev != kv->mod_revision;
    if (kv->create_revision > 0) /* 0: the caller's own kv (a cas) that does not say */
        n->create_rev = kv->create_revision;
    if (!keep_value && !node_data(n)) {
        if (changed) { /* unchanged: an unread node stays unread, the listing holds it */
            n->size = kv->value_len;
            if (node_fpart(n))
                n->fpart->trunc_len = 0;
            n->value_unread = true;
        }
    } else if (changed || n->value_unread) {
        if (node_set_data_locked(n, kv->value ? kv->value : "", kv->value_len) != 0) {
            n->known = false; /* keep nothing half-updated: the next access reads again */
            return true;
        }
    }
    if (changed) {
        if (n->known) /* a new version: its time is when we first saw it */
            node_touch_mtime(n);
        n->mod_rev = kv->mod_revision;
        n->known = true;
        n->local_content = false;
    }
    n->validated_ns = at_ns;
    return changed;
}

bool node_apply_kv_locked(node *n, const etcdc_kv *kv, int64_t as_of, int64_t at_ns)
{
    return apply_kv_locked(n, kv, as_of, at_ns, true);
}

bool node_apply_listed_kv_locked(node *n, const etcdc_kv *kv, int64_t as_of, int64_t at_ns,
                                 bool opens_ask_etcd)
{
    return apply_kv_locked(n, kv, as_of, at_ns, !opens_ask_etcd);
}

bool node_value_held_locked(const node *n)
{
    return n->pending || n->dirty || (n->known && !n->value_unread);
}

void node_apply_absent_locked(node *n, int64_t as_of, int64_t at_ns)
{
    if (n->dirty || n->pending || as_of < n->as_of)
        return;
    n->as_of = as_of;
    n->known = true;
    n->value_unread = false;
    n->mod_rev = 0;
    n->create_rev = 0;
    n->size = 0;
    n->local_content = false;
    n->validated_ns = at_ns;
}

void node_committed_locked(node *n, int64_t rev)
{
    n->known = true;
    n->mod_rev = rev;
    if (rev > n->as_of)
        n->as_of = rev;
    n->validated_ns = now_ns();
}

void node_moved_locked(node *n, int64_t old_mod, int64_t rev)
{
    if (n->type != NODE_FILE)
        return;
    if (rev > n->as_of)
        n->as_of = rev;
    n->create_rev = 0; /* a Put over an existing key keeps that key's: not known here */
    if (n->dirty || n->pending) {
        /* Local changes on top of what moved: based on the moved value from now on. */
        if (n->mod_rev == old_mod && n->mod_rev > 0)
            n->mod_rev = rev;
        return;
    }
    if (n->known && n->mod_rev == old_mod && old_mod > 0) {
        n->mod_rev = rev;
        n->validated_ns = now_ns();
    } else {
        n->known = false;
        n->mod_rev = 0;
        n->validated_ns = 0;
    }
}

bool node_set_record_locked(node *n, const attrs *a, int64_t rev)
{
    return node_set_record_seen_locked(n, a, rev, 0);
}

bool node_set_record_seen_locked(node *n, const attrs *a, int64_t rev, int64_t created)
{
    if (n->rec && (rev < n->rec->rev || n->rec->local))
        return false; /* older news, or a local record that waits for its write-back */
    if (!n->rec && !a)
        return false; /* none seen, none there */
    if (!n->rec && !(n->rec = calloc(1, sizeof *n->rec)))
        return false; /* shown without: the defaults */
    bool changed = n->rec->present != (a != NULL) || (a && memcmp(&n->rec->a, a, sizeof *a));
    n->rec->rev = rev;
    n->rec->created = created;
    n->rec->present = a != NULL;
    if (a)
        n->rec->a = *a;
    return changed;
}

int node_set_local_record_locked(node *n, const attrs *a)
{
    if (!n->rec && !(n->rec = calloc(1, sizeof *n->rec)))
        return ENOMEM;
    n->rec->a = *a;
    n->rec->present = n->rec->local = true;
    return 0;
}

const attrs *node_record_locked(const node *n, bool *mtime_applies)
{
    *mtime_applies = false;
    if (!n->rec || !n->rec->present || (n->type != NODE_FILE && n->type != NODE_DIR))
        return NULL;
    const attrs *a = &n->rec->a;
    bool dir_type = (a->mode & S_IFMT) == S_IFDIR;
    if (dir_type != (n->type == NODE_DIR))
        return NULL;
    if (n->rec->local) {
        *mtime_applies = true;
        return a;
    }
    /* A directory's content is its entries: its record's mtime is its own (the marker's
     * revision says nothing about it). */
    int64_t content =
        n->type == NODE_DIR ? (a->content > 0 ? a->content : n->rec->rev) : n->mod_rev;
    unsigned applies = attrs_applies(a, n->rec->rev, n->rec->created, n->create_rev, content);
    *mtime_applies = (applies & ATTRS_APPLY_MTIME) != 0;
    return applies ? a : NULL;
}

/* The stored attributes over the synthesized ones, when a record applies. */
static void fill_from_record(const node *n, struct stat *st)
{
    bool with_mtime;
    const attrs *a = node_record_locked(n, &with_mtime);
    if (!a)
        return;
    st->st_mode = a->mode;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_ctim = a->ctime;
    if (with_mtime)
        st->st_mtim = st->st_atim = a->mtime;
}

void node_fill_attr(node *n, struct stat *st, bool locked)
{
    memset(st, 0, sizeof *st);
    st->st_ino = n->ino;
    st->st_uid = g_fs.uid;
    st->st_gid = g_fs.gid;
    st->st_blksize = 4096;
    if (!locked)
        node_lock(n);
    switch (n->type) {
    case NODE_DIR:
    case NODE_STATS_DIR:
    case NODE_PAST_AT:
    case NODE_PAST_DIR:
        st->st_mode = S_IFDIR | (n->type == NODE_DIR ? g_fs.dir_mode : 0555);
        st->st_nlink = 2;
        st->st_size = 4096;
        break;
    case NODE_FILE:
        st->st_mode = S_IFREG | g_fs.file_mode;
        st->st_nlink = 1;
        st->st_size = (off_t)n->size;
        break;
    case NODE_PAST_FILE:
        st->st_mode = S_IFREG | (g_fs.file_mode & 0444);
        st->st_nlink = 1;
        st->st_size = (off_t)n->size;
        break;
    case NODE_STATS_FILE:
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = 0; /* generated on open; read with direct I/O */
        break;
    }
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_mtim = st->st_ctim = st->st_atim = node_mtime(n);
    if (g_fs.opts->attrs_mode != ATTRS_MODE_NONE)
        fill_from_record(n, st);
    if (!locked)
        node_unlock(n);
}

/* An own operation changed the directory: a listing read ahead for it is out of date too. */
static void tell_prefetch(node *dir)
{
    size_t len;
    char *key = node_key(dir, &len);
    if (key)
        prefetch_dir_changed(key, len);
    else
        prefetch_clear();
    free(key);
}

/* A listing read within the cache timeout (under dir->mu). */
static listing *fresh_listing_locked(node *dir)
{
    dir_part *d = node_dpart(dir);
    listing *l = d ? d->list : NULL;
    return l && now_ns() - l->fetched_ns <= cache_trust_ns() ? l : NULL;
}

/* The names this mount changed since the listing (under dir->mu). */
static struct name_set *changed_names_locked(node *dir)
{
    dir_part *d = node_dpart(dir);
    return d ? d->changed_names : NULL;
}

listing *node_fresh_listing(node *dir)
{
    node_lock(dir);
    listing *l =
        name_set_count(changed_names_locked(dir)) ? NULL : listing_ref(fresh_listing_locked(dir));
    node_unlock(dir);
    return l;
}

listing *node_listing_for_name(node *dir, const void *comp, size_t comp_len)
{
    node_lock(dir);
    listing *l = name_set_has(changed_names_locked(dir), comp, comp_len)
                     ? NULL
                     : listing_ref(fresh_listing_locked(dir));
    node_unlock(dir);
    return l;
}

void node_note_marker_put(node *dir, int64_t rev)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    if (d && rev > d->marker_put)
        d->marker_put = rev;
    node_unlock(dir);
}

int64_t node_marker_guess(node *dir)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    listing *l = fresh_listing_locked(dir);
    int64_t listed = l ? l->marker_mod : 0, put = d ? d->marker_put : 0;
    node_unlock(dir);
    return listed > put ? listed : put;
}

bool node_listing_name_is_changed(node *dir, const void *comp, size_t comp_len)
{
    node_lock(dir);
    bool changed = name_set_has(changed_names_locked(dir), comp, comp_len);
    node_unlock(dir);
    return changed;
}

listing *node_cached_listing(node *dir)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    listing *l = listing_ref(d ? d->list : NULL);
    node_unlock(dir);
    return l;
}

bool node_listing_proves_absent(node *dir, const void *comp, size_t comp_len)
{
    node_lock(dir);
    listing *l = fresh_listing_locked(dir);
    bool absent = l && !listing_find(l, comp, comp_len) &&
                  !name_set_has(changed_names_locked(dir), comp, comp_len);
    node_unlock(dir);
    return absent;
}

/* Forgets the listing (under dir->mu); returns it for listing_unref outside the lock. */
static listing *drop_listing_locked(dir_part *d)
{
    listing *old = d->list;
    d->list = NULL;
    d->list_gen++;
    name_set_free(d->changed_names);
    d->changed_names = NULL;
    return old;
}

/* Marks comp changed in dir's listing, or drops the listing when the set cannot take it (no
 * memory, or already max_names names) or when drop_listed and the listing shows comp as a
 * file. */
static void listing_name_changed(node *dir, const void *comp, size_t comp_len, size_t max_names,
                                 bool drop_listed)
{
    node_lock(dir);
    listing *old = NULL;
    dir_part *d = node_dpart(dir);
    if (d) {
        d->list_gen++; /* a listing being read now may predate the change: not kept */
        const listing_entry *e =
            d->list && drop_listed ? listing_find(d->list, comp, comp_len) : NULL;
        bool drop =
            (e && !e->is_dir) || (d->list && !name_set_has(d->changed_names, comp, comp_len) &&
                                  (name_set_count(d->changed_names) >= max_names ||
                                   name_set_add(&d->changed_names, comp, comp_len)));
        if (drop)
            old = drop_listing_locked(d);
    }
    node_unlock(dir);
    listing_unref(old);
}

void node_listing_name_changed(node *dir, const void *comp, size_t comp_len)
{
    listing_name_changed(dir, comp, comp_len, SIZE_MAX, false);
    tell_prefetch(dir);
}

/* Names another host changed in a directory whose listing stays: past this many, the next
 * one drops the listing, so that a directory many hosts write to holds no unbounded set. */
#define EVENT_CHANGED_NAMES_MAX 1024

void node_listing_name_changed_for_event(node *dir, const void *comp, size_t comp_len,
                                         bool is_delete)
{
    /* A listed file deleted elsewhere drops the listing: marked instead, its value would stay
     * held by a listing that can no longer give it (a tree deleted elsewhere would keep all of
     * its listings' memory). */
    listing_name_changed(dir, comp, comp_len, EVENT_CHANGED_NAMES_MAX, is_delete);
}

bool node_listing_reflects(node *dir, const void *comp, size_t comp_len, int64_t rev, bool own)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    bool known =
        d && d->list &&
        (d->list->revision >= rev || (own && name_set_has(d->changed_names, comp, comp_len)));
    node_unlock(dir);
    return known;
}

bool node_listing_holds_dir(node *dir, const void *comp, size_t comp_len)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    const listing_entry *e = d && d->list && !name_set_has(d->changed_names, comp, comp_len)
                                 ? listing_find(d->list, comp, comp_len)
                                 : NULL;
    bool held = e && e->is_dir;
    node_unlock(dir);
    return held;
}

void node_listing_set_empty(node *dir, int64_t rev)
{
    listing *l = calloc(1, sizeof *l);
    if (l) {
        l->refs = 1;
        l->revision = rev;
        l->fetched_ns = now_ns();
        l->marker_mod = rev;
    }
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    listing *old = NULL;
    if (d) {
        old = drop_listing_locked(d);
        d->list = l;
        l = NULL;
    }
    node_unlock(dir);
    listing_unref(old);
    listing_unref(l);
    tell_prefetch(dir);
}

void node_drop_listing_for_event(node *dir)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    listing *old = d ? drop_listing_locked(d) : NULL;
    node_unlock(dir);
    listing_unref(old);
}

void node_drop_listing(node *dir)
{
    node_drop_listing_for_event(dir);
    tell_prefetch(dir);
}

uint32_t node_listing_gen(node *dir)
{
    node_lock(dir);
    dir_part *d = node_dpart(dir);
    uint32_t gen = d ? d->list_gen : 0;
    node_unlock(dir);
    return gen;
}

void node_offer_listing(node *dir, listing *l, uint32_t gen)
{
    node_lock(dir);
    listing *old = NULL;
    dir_part *d = node_dpart(dir);
    /* Kept only when read after every change this mount made in the directory (it shows them
     * all), and not older than the listing it replaces: an event that listing already
     * reflected did not drop it (node_listing_reflects), so an older one would miss it. */
    if (d && d->list_gen == gen && (!d->list || l->revision >= d->list->revision)) {
        old = d->list;
        d->list = l;
        l = NULL;
        name_set_free(d->changed_names);
        d->changed_names = NULL;
    }
    node_unlock(dir);
    listing_unref(old);
    listing_unref(l);
}

const listing_entry *listing_find(const listing *l, const void *comp, size_t comp_len)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = names_key_cmp(l->e[mid].comp, l->e[mid].comp_len, comp, comp_len);
        if (c == 0)
            return &l->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
