/*
 * past.c - .etcdfs/at/<REV>/: the mounted prefix as of a past revision (past.h).
 */
#include "past.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listing.h"
#include "log.h"
#include "names.h"

#define REV_DIGITS 20 /* INT64_MAX has 19 */

bool past_node(const node *n)
{
    return n->type == NODE_PAST_AT || n->type == NODE_PAST_DIR || n->type == NODE_PAST_FILE;
}

node *past_at_dir(void)
{
    return node_obtain(PAST_AT_NAME, sizeof PAST_AT_NAME - 1, NODE_PAST_AT);
}

/* A revision as a directory name: decimal, no sign, no leading zero, positive. */
static bool parse_revision(const char *name, int64_t *rev)
{
    size_t len = strlen(name);
    if (len == 0 || len >= REV_DIGITS || name[0] == '0')
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *rev = v;
    return true;
}

/* A past node's revision and etcd key (pointing into key). */
static int64_t split_key(const char *key, size_t len, const char **ekey, size_t *elen)
{
    const char *colon = memchr(key, ':', len);
    int64_t rev = 0;
    for (const char *p = key; colon && p < colon; p++)
        rev = rev * 10 + (*p - '0');
    *ekey = colon ? colon + 1 : key + len;
    *elen = colon ? len - (size_t)(colon + 1 - key) : 0;
    return rev;
}

/* "<rev>:" + key: the node key of key at rev. */
static char *past_key(int64_t rev, const void *key, size_t len, const char *suffix, size_t *out_len)
{
    char head[REV_DIGITS + 2];
    int hl = snprintf(head, sizeof head, "%" PRId64 ":", rev);
    return key_join(head, (size_t)hl, key, len, suffix, suffix ? strlen(suffix) : 0, out_len);
}

static node *obtain(int64_t rev, const void *key, size_t len, const char *suffix, node_type type)
{
    size_t klen;
    char *k = past_key(rev, key, len, suffix, &klen);
    node *n = k ? node_obtain(k, klen, type) : NULL;
    free(k);
    return n;
}

/* A past file node holding kv (the value etcd had at rev). */
static node *file_node(int64_t rev, const etcdc_kv *kv, const void *key, size_t len)
{
    node *n = obtain(rev, key, len, NULL, NODE_PAST_FILE);
    if (n) {
        node_lock(n);
        node_apply_kv_locked(n, kv, rev, now_ns());
        node_unlock(n);
    }
    return n;
}

/* One keys-only Range of at most one key under the mounted prefix at rev (0: now): whether
 * etcd can show rev, and the store revision it answered at (*now, may be NULL). */
static etcdc_code probe_prefix(int64_t rev, int64_t *now, etcdc_error *err)
{
    size_t end_len;
    char *end = key_prefix_end(g_fs.prefix, g_fs.prefix_len, &end_len);
    etcdc_range_req req = {.key = g_fs.prefix_len ? g_fs.prefix : "\0",
                           .key_len = g_fs.prefix_len ? g_fs.prefix_len : 1,
                           .range_end = end,
                           .range_end_len = end_len,
                           .limit = 1,
                           .keys_only = true,
                           .revision = rev};
    etcdc_kvs page = {0};
    etcdc_code code = end ? etcdc_range(g_fs.client, &req, &page, err) : ETCDC_ERR_NO_MEMORY;
    if (now)
        *now = page.revision;
    etcdc_kvs_clear(&page);
    free(end);
    return code;
}

/* The current store revision. */
static int current_revision(int64_t *rev)
{
    etcdc_error err = {0};
    etcdc_code code = probe_prefix(0, rev, &err);
    return code == ETCDC_OK ? 0 : fs_fail("revision", g_fs.prefix, g_fs.prefix_len, code, &err);
}

/* One line saying why a revision cannot be shown; returns ENOENT (or code's errno when the
 * revision is not the reason). */
static int unreadable(int64_t rev, etcdc_code code, const etcdc_error *err, const char *key,
                      size_t len)
{
    int64_t now = 0;
    switch (code) {
    case ETCDC_ERR_COMPACTED:
        log_msg(LOG_NOTICE,
                ".etcdfs/at/%" PRId64 ": revision compacted (etcd keeps only the history after "
                "its last compaction)",
                rev);
        return ENOENT;
    case ETCDC_ERR_FUTURE_REVISION:
        if (current_revision(&now) == 0)
            log_msg(LOG_NOTICE,
                    ".etcdfs/at/%" PRId64 ": revision not reached yet (current revision %" PRId64
                    ")",
                    rev, now);
        return ENOENT;
    default: return fs_fail("read at revision", key, len, code, err);
    }
}

/* The root of the tree at rev, after making sure etcd can show rev (one Range, the first time a
 * revision is looked up; the node then stays while the kernel holds it). */
static int revision_root(int64_t rev, node **out)
{
    size_t klen;
    char *k = past_key(rev, g_fs.prefix, g_fs.prefix_len, NULL, &klen);
    if (!k)
        return ENOMEM;
    *out = node_find(k, klen, NODE_PAST_DIR);
    if (*out) {
        free(k);
        return 0;
    }
    etcdc_error err = {0};
    etcdc_code code = probe_prefix(rev, NULL, &err);
    int rc = code == ETCDC_OK ? 0 : unreadable(rev, code, &err, g_fs.prefix, g_fs.prefix_len);
    if (rc == 0 && !(*out = node_obtain(k, klen, NODE_PAST_DIR)))
        rc = ENOMEM;
    free(k);
    return rc;
}

/* Whether etcd still has revision rev (a keys-only Range of at most one key at rev). */
static int readable(int64_t rev, bool *yes)
{
    etcdc_error err = {0};
    etcdc_code code = probe_prefix(rev, NULL, &err);
    *yes = code == ETCDC_OK;
    return code == ETCDC_OK || code == ETCDC_ERR_COMPACTED
               ? 0
               : fs_fail("revision", g_fs.prefix, g_fs.prefix_len, code, &err);
}

/* The oldest revision etcd still has (its compact revision), found by bisection: etcd tells
 * no client its compact revision, but refuses every read below it. It only grows, so the
 * search starts at the last answer (an atomic: one value, no other state). */
static int64_t known_oldest = 1;

static int oldest_revision(int64_t current, int64_t *oldest)
{
    int64_t lo = __atomic_load_n(&known_oldest, __ATOMIC_RELAXED), hi = current;
    while (lo < hi) { /* invariant: hi is readable; everything below lo is not */
        int64_t mid = lo + (hi - lo) / 2;
        bool yes;
        int rc = readable(mid, &yes);
        if (rc)
            return rc;
        if (yes)
            hi = mid;
        else
            lo = mid + 1;
    }
    __atomic_store_n(&known_oldest, lo, __ATOMIC_RELAXED);
    *oldest = lo;
    return 0;
}

/* .etcdfs/at lists the oldest revision etcd still has and the current one. */
static int at_listing(listing **out)
{
    int64_t revs[2];
    int rc = current_revision(&revs[1]);
    if (rc == 0)
        rc = oldest_revision(revs[1], &revs[0]);
    if (rc)
        return rc;
    size_t n = revs[0] < revs[1] ? 2 : 1;
    listing *l = calloc(1, sizeof *l);
    listing_entry *e = calloc(n, sizeof *e);
    if (!l || !e) {
        free(e);
        free(l);
        return ENOMEM;
    }
    *l = (listing){.refs = 1, .e = e, .n = n, .revision = revs[1], .fetched_ns = now_ns()};
    for (size_t i = 0; i < n; i++) {
        char name[REV_DIGITS + 1];
        int len = snprintf(name, sizeof name, "%" PRId64, revs[2 - n + i]);
        char *comp = strdup(name);
        e[i] = (listing_entry){
            .comp = comp, .comp_len = (uint32_t)len, .name_len = (uint16_t)len, .is_dir = true};
        if (!comp)
            rc = ENOMEM;
    }
    if (rc)
        listing_unref(l);
    else
        *out = l;
    return rc;
}

int past_listing(node *dir, listing **out)
{
    *out = NULL;
    if (dir->type == NODE_PAST_AT)
        return at_listing(out);
    if (dir->type != NODE_PAST_DIR)
        return ENOTDIR;
    node_lock(dir);
    listing *l = listing_ref(dir->dpart->list); /* a NODE_PAST_DIR */
    node_unlock(dir);
    if (l) {
        *out = l;
        return 0;
    }
    size_t klen, elen;
    const char *ekey;
    char *k = node_key(dir, &klen);
    if (!k)
        return ENOMEM;
    int64_t rev = split_key(k, klen, &ekey, &elen);
    bool at_root = elen == g_fs.prefix_len;
    int rc = listing_fetch_at(ekey, elen, at_root, rev, &l);
    if (rc == ENOENT)
        rc = unreadable(rev, ETCDC_ERR_COMPACTED, NULL, ekey, elen); /* validated when looked up */
    free(k);
    if (rc)
        return rc;
    node_lock(dir);
    if (!dir->dpart->list)
        dir->dpart->list = listing_ref(l);
    node_unlock(dir);
    *out = l;
    return 0;
}

node *past_entry_node(const char *dir_key, size_t dir_len, const listing_entry *e)
{
    if (!dir_key) {
        int64_t rev;
        node *n = NULL;
        if (parse_revision(listing_entry_name(e), &rev))
            revision_root(rev, &n); /* validated: the listing names the current revision */
        return n;
    }
    const char *ekey;
    size_t elen;
    int64_t rev = split_key(dir_key, dir_len, &ekey, &elen);
    size_t klen;
    char *key = key_join(ekey, elen, e->comp, e->comp_len, NULL, 0, &klen);
    etcdc_kv kv = listing_entry_kv(e);
    node *n = !key        ? NULL
              : e->is_dir ? obtain(rev, key, klen, "/", NODE_PAST_DIR)
                          : file_node(rev, &kv, key, klen);
    free(key);
    return n;
}

node *past_self_node(const char *dir_key, size_t dir_len, const listing *l)
{
    const char *ekey;
    size_t elen;
    int64_t rev = split_key(dir_key, dir_len, &ekey, &elen);
    return elen > 0 ? file_node(rev, &l->self, ekey, elen - 1) : NULL;
}

/* A name in a directory whose listing is not kept: one read-only Txn at the revision with the
 * key (and its value) and whether anything lies below it. */
static int lookup_keys_at(int64_t rev, const char *file_key, size_t file_len, bool self, node **out)
{
    size_t sub_len, end_len = 0;
    char *sub = self ? NULL : key_join(file_key, file_len, "/", 1, NULL, 0, &sub_len);
    char *end = sub ? key_prefix_end(sub, sub_len, &end_len) : NULL;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_range_req get = {.key = file_key, .key_len = file_len, .revision = rev};
    etcdc_range_req below = {.key = sub,
                             .key_len = sub_len,
                             .range_end = end,
                             .range_end_len = end_len,
                             .limit = 1,
                             .keys_only = true,
                             .revision = rev};
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    /* "%" at the root of the whole key space: no own key (etcd holds no empty key) */
    bool own_key = file_len > 0;
    size_t ops = own_key + !self;
    if (!self && !end)
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    if (own_key)
        etcdc_txn_get(t, ETCDC_THEN, &get);
    if (!self)
        etcdc_txn_get(t, ETCDC_THEN, &below);
    etcdc_code code = ops ? etcdc_txn_commit(g_fs.client, t, &res, &err) : ETCDC_OK;
    int rc = 0;
    *out = NULL;
    if (code != ETCDC_OK)
        rc = unreadable(rev, code, &err, file_key, file_len);
    else if (!self && res.op_count == ops && res.ops[ops - 1].kvs.count > 0)
        rc = (*out = obtain(rev, sub, sub_len, NULL, NODE_PAST_DIR)) ? 0 : ENOMEM;
    else if (own_key && res.op_count >= 1 && res.ops[0].kvs.count > 0)
        rc = (*out = file_node(rev, &res.ops[0].kvs.kvs[0], file_key, file_len)) ? 0 : ENOMEM;
    else
        rc = ENOENT;
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    free(end);
    free(sub);
    return rc;
}

/* Looks name up in the listing of past directory dir (whose node key is k). */
static int lookup_in_listing(const char *k, size_t klen, const listing *l, names_kind kind,
                             const char *name, const char *comp, size_t comp_len, node **out)
{
    *out = NULL;
    if (kind == NAMES_SELF)
        return !l->self_present ? ENOENT : (*out = past_self_node(k, klen, l)) ? 0 : ENOMEM;
    const listing_entry *e = NULL;
    if (kind == NAMES_HASHED) {
        for (size_t i = 0; i < l->n && !e; i++)
            if (!strcmp(listing_entry_name(&l->e[i]), name))
                e = &l->e[i];
    } else {
        e = listing_find(l, comp, comp_len);
    }
    if (!e)
        return ENOENT;
    return (*out = past_entry_node(k, klen, e)) ? 0 : ENOMEM;
}

int past_lookup(node *dir, const char *name, node **out)
{
    *out = NULL;
    if (dir->type == NODE_PAST_AT) {
        int64_t rev;
        return parse_revision(name, &rev) ? revision_root(rev, out) : ENOENT;
    }
    if (dir->type != NODE_PAST_DIR)
        return ENOTDIR;
    size_t name_len = strlen(name), klen, elen, comp_len = 0;
    if (name_len > NAMES_MAX)
        return ENAMETOOLONG;
    char *k = node_key(dir, &klen);
    char *comp = malloc(name_len + 1);
    int rc = k && comp ? 0 : ENOMEM;
    const char *ekey = NULL;
    int64_t rev = k ? split_key(k, klen, &ekey, &elen) : 0;
    names_kind kind = NAMES_INVALID;
    if (rc == 0)
        kind = names_from_display(name, name_len, elen == g_fs.prefix_len, comp, &comp_len, NULL);
    if (rc == 0 && (kind == NAMES_INVALID || kind == NAMES_STATS))
        rc = ENOENT; /* no key has that name (".etcdfs" of the past root included) */
    listing *l = NULL;
    if (rc == 0) {
        node_lock(dir);
        l = listing_ref(node_dpart(dir) ? dir->dpart->list : NULL);
        node_unlock(dir);
        if (!l && kind == NAMES_HASHED)
            rc = past_listing(dir, &l); /* only the listing knows whole long names */
    }
    if (rc == 0 && l) {
        rc = lookup_in_listing(k, klen, l, kind, name, comp, comp_len, out);
    } else if (rc == 0) {
        size_t fk_len;
        bool self = kind == NAMES_SELF;
        char *fk = self ? key_join(ekey, elen - 1, NULL, 0, NULL, 0, &fk_len)
                        : key_join(ekey, elen, comp, comp_len, NULL, 0, &fk_len);
        rc = fk ? lookup_keys_at(rev, fk, fk_len, self, out) : ENOMEM;
        free(fk);
    }
    listing_unref(l);
    free(comp);
    free(k);
    return rc;
}

/* Reads a past file's value again after the value cache dropped it (caller holds n->mu). */
static int reload_locked(node *n)
{
    size_t klen, elen;
    const char *ekey;
    char *k = node_key(n, &klen);
    if (!k)
        return ENOMEM;
    int64_t rev = split_key(k, klen, &ekey, &elen);
    etcdc_range_req req = {.key = ekey, .key_len = elen, .revision = rev};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_range(g_fs.client, &req, &kvs, &err);
    int rc = code != ETCDC_OK ? unreadable(rev, code, &err, ekey, elen)
             : kvs.count == 0 ? ENOENT
                              : 0;
    if (rc == 0)
        node_apply_kv_locked(n, &kvs.kvs[0], rev, now_ns());
    if (rc == 0 && !n->known) {
        log_msg(LOG_WARNING,
                ".etcdfs/at/%" PRId64 ": the value of a key does not decrypt with "
                "the mount's key file",
                rev);
        rc = EIO;
    }
    etcdc_kvs_clear(&kvs);
    free(k);
    return rc;
}

int past_open(node *n)
{
    node_lock(n);
    int rc = n->known ? 0 : reload_locked(n);
    file_part *p = rc == 0 ? node_file_part_locked(n) : NULL;
    if (rc == 0 && !p)
        rc = ENOMEM;
    if (rc == 0) {
        p->open_count++;
        p->used_ns = now_ns();
    }
    node_unlock(n);
    return rc;
}

void past_release(node *n)
{
    node_lock(n);
    if (node_open_count(n) > 0)
        n->fpart->open_count--;
    node_unlock(n);
}

int past_getattr(node *n, struct stat *st)
{
    node_lock(n);
    int rc = n->type != NODE_PAST_FILE || n->known ? 0 : reload_locked(n);
    if (rc == 0)
        node_fill_attr(n, st, true);
    node_unlock(n);
    return rc;
}

int past_mod_revision(node *n, int64_t *mod)
{
    node_lock(n);
    int rc = n->known ? 0 : reload_locked(n);
    *mod = n->mod_rev;
    node_unlock(n);
    return rc;
}
