/*
 * ops_rename.c - rename(2) with flags 0, RENAME_NOREPLACE and RENAME_EXCHANGE.
 *
 * A file rename is one Txn guarded by mod_revision compares: If(src unchanged [, dst unchanged
 * | dst absent]) Then(Put dst = value, Delete src). A directory rename moves every key below
 * it in one Txn: If(no key below src modified after the snapshot, dst empty) Then(DeleteRange
 * src subtree, Put each key under dst). When that does not fit in one Txn (etcd's operation or
 * request size limits) it fails with EXDEV, and mv(1) falls back to copy + delete.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "file_sync.h"
#include "key_guards.h"
#include "listing.h"
#include "log.h"
#include "ops.h"
#include "optimistic.h"
#include "past.h"
#include "resolve.h"
#include "stats.h"
#include "witness.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* etcd refused the Txn for its size (a cluster with a lower --max-txn-ops, or more bytes than
 * --max-request-bytes): mv copies instead, and the log says why the move was not atomic. */
static int exdev_refused(const char *op, const char *key, size_t len, etcdc_code code,
                         const etcdc_error *err)
{
    char kb[LOG_KEY_BUF];
    stats_etcd_error(code);
    log_msg(LOG_INFO, "%s %s: etcd refused one transaction (%s): EXDEV", op,
            log_key(key, len, kb, sizeof kb),
            err && err->message[0] ? err->message : etcdc_strerror(code));
    return EXDEV;
}

/* Loads the file's content into the cache when it is not there (one Get). */
static int ensure_data_locked(node *n)
{
    if (n->known || n->pending || n->dirty)
        return 0;
    bool changed;
    return file_revalidate_locked(n, &changed);
}

/* The two names of a rename and the directories they were resolved in. */
typedef struct names2 {
    node *sp, *dp;
    const resolved *rs, *rd;
} names2;

/* Inside a commit section: whether neither name moved since it was resolved. */
static bool names_current(const names2 *nm)
{
    return resolved_current(nm->sp, nm->rs) && resolved_current(nm->dp, nm->rd);
}

/* Whether key lies at name (the key itself) or below name/. */
static bool key_under_name(const char *key, size_t len, const char *name, size_t name_len)
{
    return len >= name_len && !memcmp(key, name, name_len) &&
           (len == name_len || key[name_len] == '/');
}

/* Before a subtree moves: the local changes of its files go to etcd first, so that the move
 * carries them (a move carries what etcd holds). A failure leaves them local, where they stay
 * with their node under its new name. */
static void flush_under(const char *name, size_t name_len)
{
    size_t count = 0;
    node **all = node_all(&count);
    for (size_t i = 0; all && i < count; i++) {
        node *n = all[i];
        size_t len;
        char *key = n->type == NODE_FILE ? node_key(n, &len) : NULL;
        if (key && key_under_name(key, len, name, name_len)) {
            pthread_mutex_lock(&n->mu);
            if (n->dirty)
                file_writeback_locked(n, "rename");
            pthread_mutex_unlock(&n->mu);
        }
        free(key);
        node_put(n);
    }
    free(all);
}

/* The mod_revision the snapshot (own key + keys below) had for key, 0 when it had none. */
static int64_t snapshot_mod(const etcdc_kv *own, const etcdc_kvs *below, const char *key,
                            size_t len)
{
    if (own && own->key_len == len && !memcmp(own->key, key, len))
        return own->mod_revision;
    for (size_t i = 0; below && i < below->count; i++)
        if (below->kvs[i].key_len == len && !memcmp(below->kvs[i].key, key, len))
            return below->kvs[i].mod_revision;
    return 0;
}

/* After a subtree move committed at rev: each moved file node (now under `to`, formerly under
 * `from`) reflects rev if it held the value that moved, else forgets its content. Runs after
 * the names were released (it takes node locks), before commit_end (so before the watch). */
static void settle_moved(node **moved, size_t count, const char *from, size_t from_len,
                         const char *to, size_t to_len, const etcdc_kv *own, const etcdc_kvs *below,
                         int64_t rev)
{
    for (size_t i = 0; i < count; i++) {
        node *n = moved[i];
        size_t len;
        char *key = n->type == NODE_FILE ? node_key(n, &len) : NULL;
        char *old = key && len >= to_len && !memcmp(key, to, to_len)
                        ? key_join(from, from_len, key + to_len, len - to_len, NULL, 0, &len)
                        : NULL;
        if (old) {
            int64_t old_mod = snapshot_mod(own, below, old, len);
            pthread_mutex_lock(&n->mu);
            if (old_mod > 0 && n->mod_rev == old_mod)
                file_replaced_locked(n, rev); /* our own move: no conflict for handles */
            node_moved_locked(n, old_mod, rev);
            pthread_mutex_unlock(&n->mu);
        } else if (n->type == NODE_DIR) {
            node_drop_listing(n); /* its entries name keys of the old place */
        }
        free(key);
        free(old);
    }
}

static void put_all(node **set, size_t count)
{
    for (size_t i = 0; set && i < count; i++)
        node_put(set[i]);
    free(set);
}

/* What the attempts of a file rename share: the names, the nodes (both locked), and what is
 * known of etcd's keys, refreshed by each attempt that lost a race. */
typedef struct file_move {
    const resolved *rs, *rd;
    node *src, *dst; /* dst may be NULL */
    unsigned flags;
    bool src_in_etcd, dst_exists, dst_pending, src_is_marker, keep_parent;
    int64_t revision; /* of the move, once committed */
} file_move;

/* One Txn: If(src and dst as known) Then(put dst, delete or rewrite src, keep src's parent)
 * Else(read both). */
static int file_move_attempt(void *arg)
{
    file_move *x = arg;
    const resolved *rs = x->rs, *rd = x->rd;
    node *src = x->src, *dst = x->dst;
    unsigned flags = x->flags;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    etcdc_range_req rsrc = {.key = rs->file_key, .key_len = rs->file_len};
    etcdc_range_req rdst = {.key = rd->file_key, .key_len = rd->file_len};
    if (x->src_in_etcd)
        etcdc_txn_if(t, rs->file_key, rs->file_len, ETCDC_CMP_MOD, ETCDC_EQUAL, src->mod_rev);
    if (x->dst_exists)
        etcdc_txn_if(t, rd->file_key, rd->file_len, ETCDC_CMP_MOD, ETCDC_EQUAL, dst->mod_rev);
    else if ((flags & RENAME_NOREPLACE) || ((flags & RENAME_EXCHANGE) && x->dst_pending))
        etcdc_txn_if(t, rd->file_key, rd->file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    etcdc_txn_put(t, ETCDC_THEN, rd->file_key, rd->file_len, src->data ? src->data : "", src->size,
                  0);
    if (flags & RENAME_EXCHANGE)
        etcdc_txn_put(t, ETCDC_THEN, rs->file_key, rs->file_len, dst->data ? dst->data : "",
                      dst->size, 0);
    else if (x->src_is_marker)
        etcdc_txn_put(t, ETCDC_THEN, rs->file_key, rs->file_len, "", 0, 0);
    else if (x->src_in_etcd)
        etcdc_txn_delete(t, ETCDC_THEN, rs->file_key, rs->file_len, NULL, 0, false);
    if (x->keep_parent)
        txn_keep_parent(t, rs, false);
    etcdc_txn_get(t, ETCDC_ELSE, &rsrc);
    etcdc_txn_get(t, ETCDC_ELSE, &rdst);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc = 0;
    if (code != ETCDC_OK) {
        rc = fs_fail("rename", rs->file_key, rs->file_len, code, &err);
    } else if (res.succeeded) {
        x->revision = res.revision;
    } else if (res.op_count == 2) {
        /* Find out which guard failed, refresh, and try again. */
        const etcdc_kvs *s = &res.ops[0].kvs, *d = &res.ops[1].kvs;
        rc = OPTIMISTIC_RETRY;
        if (x->src_in_etcd && s->count == 0)
            rc = ENOENT;
        else if ((flags & RENAME_NOREPLACE) && d->count > 0)
            rc = EEXIST;
        else if (x->src_in_etcd && s->kvs[0].mod_revision != src->mod_rev) {
            /* src changed elsewhere: move the new content, unless ours was modified too */
            if (src->dirty)
                rc = ESTALE;
            else
                node_apply_kv_locked(src, &s->kvs[0], res.revision, now_ns());
        }
        if (rc == OPTIMISTIC_RETRY && dst) {
            if (d->count > 0 && !dst->dirty)
                node_apply_kv_locked(dst, &d->kvs[0], res.revision, now_ns());
            else if (d->count == 0 && !dst->dirty)
                node_apply_absent_locked(dst, res.revision, now_ns());
            x->dst_exists = dst->known && dst->mod_rev > 0;
            x->dst_pending = dst->pending && !x->dst_exists;
            if ((flags & RENAME_EXCHANGE) && !x->dst_exists && !x->dst_pending)
                rc = ENOENT;
        }
    } else {
        rc = EIO;
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    return rc;
}

static int rename_file(node *src, node *dst, const names2 *nm, unsigned flags)
{
    const resolved *rs = nm->rs, *rd = nm->rd;
    bool same_dir = nm->sp == nm->dp;
    int rc = 0;
    /* One mutex at a time is the rule; src and dst are locked in address order. */
    node *first = dst && dst < src ? dst : src, *second = dst && dst < src ? src : dst;
    pthread_mutex_lock(&first->mu);
    if (second && second != first)
        pthread_mutex_lock(&second->mu);
    commit cm;
    commit_begin(&cm);
    rc = names_current(nm) ? 0 : EAGAIN;
    if (rc == 0)
        rc = ensure_data_locked(src);
    if (rc == 0 && dst && (flags & RENAME_EXCHANGE))
        rc = ensure_data_locked(dst);
    bool src_in_etcd = src->mod_rev > 0;
    bool dst_exists = dst && dst->known && dst->mod_rev > 0;
    /* created here and not stored yet: it exists, and the exchange stores it (if etcd has no
     * key there meanwhile) */
    bool dst_pending = dst && dst->pending && !dst_exists;
    if (rc == 0 && (flags & RENAME_EXCHANGE) && !dst_exists && !dst_pending)
        rc = ENOENT;
    bool src_is_marker = rs->file_len == rs->dir_len; /* "%": the marker holding data */
    bool keep_parent = !same_dir && !src_is_marker && !(flags & RENAME_EXCHANGE);
    file_move x = {rs,         rd,          src,           dst,         flags, src_in_etcd,
                   dst_exists, dst_pending, src_is_marker, keep_parent, 0};
    if (rc == 0)
        rc = optimistic_run(file_move_attempt, &x);
    int64_t revision = x.revision;
    if (rc == 0) {
        /* The src node is now the file at dst, holding what it held. */
        if (src->pending)
            node_pending_add(-1);
        src->pending = src->dirty = src->written = false;
        file_replaced_locked(src, revision); /* our own change: no conflict for open handles */
        node_committed_locked(src, revision);
        if (dst && (flags & RENAME_EXCHANGE)) {
            file_replaced_locked(dst, revision);
            node_committed_locked(dst, revision);
        } else if (dst) {
            if (dst->pending)
                node_pending_add(-1);
            dst->unlinked = true; /* replaced: open handles keep reading what they had */
            dst->pending = dst->dirty = false;
        }
        /* New keys before anyone can write these nodes back again (their locks are held). */
        node_rekey(src, rd->file_key, rd->file_len);
        if (dst && (flags & RENAME_EXCHANGE))
            node_rekey(dst, rs->file_key, rs->file_len);
    }
    commit_end(&cm, rc == 0 ? revision : 0);
    if (second && second != first)
        pthread_mutex_unlock(&second->mu);
    pthread_mutex_unlock(&first->mu);
    return rc;
}

/* The node table after a directory rename committed at rev (snap: its snapshot, the keys below
 * and the directory's own key): nodes take their new keys while the names are held, then take
 * the revision the move gave them. */
static void moved_dir(const names2 *nm, commit *cm, const etcdc_txn_result *snap, int64_t rev)
{
    const resolved *rs = nm->rs, *rd = nm->rd;
    const etcdc_kvs *below = &snap->ops[0].kvs;
    const etcdc_kv *own = snap->ops[1].kvs.count ? &snap->ops[1].kvs.kvs[0] : NULL;
    size_t count = 0;
    node **moved = node_rekey_prefix(rs->sub_key, rs->sub_len, rd->sub_key, rd->sub_len, &count);
    node *own_node = node_find(rs->file_key, rs->file_len, NODE_FILE);
    if (own_node)
        node_rekey(own_node, rd->file_key, rd->file_len);
    commit_release_names(cm);
    settle_moved(moved, count, rs->sub_key, rs->sub_len, rd->sub_key, rd->sub_len, NULL, below,
                 rev);
    if (own_node)
        settle_moved(&own_node, 1, rs->file_key, rs->file_len, rd->file_key, rd->file_len, own,
                     NULL, rev);
    node_put(own_node);
    put_all(moved, count);
}

/* What the attempts of a directory rename share. */
typedef struct dir_move {
    const names2 *nm;
    commit *cm;
    unsigned flags;
    bool same_dir;
    char *send, *dend, *dafter; /* ends of the source and destination subtrees; the first key
                                 * after the destination's marker */
    size_t send_len, dend_len, dafter_len;
    int64_t revision; /* of the move, once committed */
} dir_move;

/* The subtree and the directory's own key, in one read-only Txn; refuses what cannot move in
 * one Txn (EXDEV) or is not there (ENOENT). */
static int dir_snapshot(const dir_move *x, etcdc_txn_result *snap)
{
    const resolved *rs = x->nm->rs;
    size_t max_ops = etcdc_max_txn_ops();
    etcdc_txn *rt = etcdc_txn_new();
    etcdc_error err = {0};
    etcdc_range_req below = {.key = rs->sub_key,
                             .key_len = rs->sub_len,
                             .range_end = x->send,
                             .range_end_len = x->send_len,
                             .limit = (int64_t)max_ops + 1};
    etcdc_range_req self = {.key = rs->file_key, .key_len = rs->file_len};
    etcdc_txn_get(rt, ETCDC_THEN, &below);
    etcdc_txn_get(rt, ETCDC_THEN, &self);
    etcdc_code code = etcdc_txn_commit(g_fs.client, rt, snap, &err);
    etcdc_txn_free(rt);
    if (code == ETCDC_ERR_TOO_LARGE)
        return exdev_refused("rename", rs->sub_key, rs->sub_len, code, &err);
    if (code != ETCDC_OK || snap->op_count != 2)
        return code ? fs_fail("rename", rs->sub_key, rs->sub_len, code, &err) : EIO;
    const etcdc_kvs *keys = &snap->ops[0].kvs;
    bool own = snap->ops[1].kvs.count > 0;
    /* etcd's budget: the larger of ops and compares, plus the nested marker Txn's
     * (at most 3 compares) when the source leaves its directory */
    size_t ops = keys->count + 1 + (own ? 2 : 0) + (x->same_dir ? 0 : 1);
    size_t compares = keys->count + 4;
    size_t needed = (ops > compares ? ops : compares) + (x->same_dir ? 0 : 3);
    if (keys->count == 0 && !own)
        return ENOENT;
    if (keys->more || needed > max_ops) {
        char kb[LOG_KEY_BUF];
        log_msg(LOG_INFO,
                "rename %s: %zu%s keys do not fit one etcd transaction (at most %zu "
                "operations): EXDEV, mv copies instead",
                log_key(rs->sub_key, rs->sub_len, kb, sizeof kb), keys->count,
                keys->more ? "+" : "", max_ops);
        return EXDEV;
    }
    return 0;
}

/* The move of the snapshot, guarded by it: Then(delete the source subtree, put every key at
 * the destination, keep the source's parent) Else(read the destination). */
static etcdc_txn *dir_move_txn(const dir_move *x, const etcdc_txn_result *snap)
{
    const resolved *rs = x->nm->rs, *rd = x->nm->rd;
    const etcdc_kvs *keys = &snap->ops[0].kvs;
    const etcdc_kv *own = snap->ops[1].kvs.count ? &snap->ops[1].kvs.kvs[0] : NULL;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_if_range(t, rs->sub_key, rs->sub_len, x->send, x->send_len, ETCDC_CMP_MOD, ETCDC_LESS,
                       snap->revision + 1);
    if (own)
        etcdc_txn_if(t, rs->file_key, rs->file_len, ETCDC_CMP_MOD, ETCDC_EQUAL, own->mod_revision);
    else
        etcdc_txn_if(t, rs->file_key, rs->file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    /* Every key of the snapshot is still there unchanged: the range compare above sees
     * creations and changes, not deletions, and a key deleted meanwhile must not come back at
     * the destination. */
    for (size_t i = 0; i < keys->count; i++)
        etcdc_txn_if(t, keys->kvs[i].key, keys->kvs[i].key_len, ETCDC_CMP_MOD, ETCDC_EQUAL,
                     keys->kvs[i].mod_revision);
    /* dst: absent, or (without NOREPLACE) an empty directory, marker allowed */
    etcdc_txn_if(t, rd->file_key, rd->file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    if (x->flags & RENAME_NOREPLACE)
        etcdc_txn_if_range(t, rd->sub_key, rd->sub_len, x->dend, x->dend_len, ETCDC_CMP_CREATE,
                           ETCDC_EQUAL, 0);
    else
        etcdc_txn_if_range(t, x->dafter, x->dafter_len, x->dend, x->dend_len, ETCDC_CMP_CREATE,
                           ETCDC_EQUAL, 0);
    etcdc_txn_delete(t, ETCDC_THEN, rs->sub_key, rs->sub_len, x->send, x->send_len, false);
    for (size_t i = 0; i < keys->count; i++) {
        const etcdc_kv *kv = &keys->kvs[i];
        size_t nlen;
        char *nk = key_join(rd->sub_key, rd->sub_len, kv->key + rs->sub_len,
                            kv->key_len - rs->sub_len, NULL, 0, &nlen);
        if (nk)
            etcdc_txn_put(t, ETCDC_THEN, nk, nlen, kv->value ? kv->value : "", kv->value_len, 0);
        else
            etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
        free(nk);
    }
    if (own) {
        etcdc_txn_delete(t, ETCDC_THEN, rs->file_key, rs->file_len, NULL, 0, false);
        etcdc_txn_put(t, ETCDC_THEN, rd->file_key, rd->file_len, own->value ? own->value : "",
                      own->value_len, 0);
    }
    if (!x->same_dir)
        txn_keep_parent(t, rs, true);
    etcdc_range_req dst_below = {.key = rd->sub_key,
                                 .key_len = rd->sub_len,
                                 .range_end = x->dend,
                                 .range_end_len = x->dend_len,
                                 .limit = 2,
                                 .keys_only = true};
    etcdc_range_req dst_self = {.key = rd->file_key, .key_len = rd->file_len, .keys_only = true};
    etcdc_txn_get(t, ETCDC_ELSE, &dst_below);
    etcdc_txn_get(t, ETCDC_ELSE, &dst_self);
    return t;
}

/* A snapshot, then the move guarded by it. A failed guard with an empty destination means the
 * source changed after the snapshot: take a new one. */
static int dir_move_attempt(void *arg)
{
    dir_move *x = arg;
    const resolved *rs = x->nm->rs, *rd = x->nm->rd;
    etcdc_txn_result snap = {0}, res = {0};
    etcdc_error err = {0};
    int rc = dir_snapshot(x, &snap);
    etcdc_txn *t = rc == 0 ? dir_move_txn(x, &snap) : NULL;
    etcdc_code code = rc == 0 ? etcdc_txn_commit(g_fs.client, t, &res, &err) : ETCDC_OK;
    if (rc != 0) {
        /* the snapshot said */
    } else if (code == ETCDC_ERR_TOO_LARGE || code == ETCDC_ERR_TOO_MANY_OPS) {
        rc = exdev_refused("rename", rs->sub_key, rs->sub_len, code, &err);
    } else if (code != ETCDC_OK) {
        rc = fs_fail("rename", rs->sub_key, rs->sub_len, code, &err);
    } else if (res.succeeded) {
        x->revision = res.revision;
        moved_dir(x->nm, x->cm, &snap, x->revision);
    } else if (res.op_count == 2) {
        const etcdc_kvs *db = &res.ops[0].kvs;
        bool dst_nonempty = res.ops[1].kvs.count > 0 || db->count > 1 ||
                            (db->count == 1 && db->kvs[0].key_len != rd->sub_len);
        if (dst_nonempty)
            rc = (x->flags & RENAME_NOREPLACE) ? EEXIST : ENOTEMPTY;
        else if ((x->flags & RENAME_NOREPLACE) && db->count > 0)
            rc = EEXIST;
        else
            rc = OPTIMISTIC_RETRY;
    } else {
        rc = EIO;
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    etcdc_txn_result_clear(&snap);
    return rc;
}

static int rename_dir(const names2 *nm, unsigned flags)
{
    const resolved *rs = nm->rs, *rd = nm->rd;
    flush_under(rs->file_key, rs->file_len);
    /* A destination directory holding a file created here, not yet stored, is not empty. */
    if (node_pending_below(rd->sub_key, rd->sub_len))
        return flags & RENAME_NOREPLACE ? EEXIST : ENOTEMPTY;
    commit cm;
    commit_begin_move(&cm);
    dir_move x = {.nm = nm, .cm = &cm, .flags = flags, .same_dir = nm->sp == nm->dp};
    x.send = key_prefix_end(rs->sub_key, rs->sub_len, &x.send_len);
    x.dend = key_prefix_end(rd->sub_key, rd->sub_len, &x.dend_len);
    x.dafter = key_join(rd->sub_key, rd->sub_len, "", 1, NULL, 0, &x.dafter_len);
    int rc = !names_current(nm)                ? EAGAIN
             : !x.send || !x.dend || !x.dafter ? ENOMEM
                                               : optimistic_run(dir_move_attempt, &x);
    commit_end(&cm, x.revision);
    free(x.send);
    free(x.dend);
    free(x.dafter);
    return rc;
}

/* One side of an exchange: the name's own key and the keys below name/, as read. */
typedef struct side {
    const resolved *r;
    const etcdc_kv *own;
    const etcdc_kvs *below;
} side;

/* Whether the other side has a key at relative name rel (the part after the name). */
static bool side_has(const side *x, const char *rel, size_t rel_len)
{
    if (rel_len == 0)
        return x->own != NULL;
    for (size_t i = 0; i < x->below->count; i++) {
        const etcdc_kv *kv = &x->below->kvs[i];
        if (kv->key_len - x->r->file_len == rel_len &&
            !memcmp(kv->key + x->r->file_len, rel, rel_len))
            return true;
    }
    return false;
}

/* Guards one side: own key unchanged (or still absent), nothing below created or changed
 * after the snapshot, and no key of the snapshot deleted. */
static void guard_side(etcdc_txn *t, const side *x, int64_t snap_rev)
{
    const resolved *r = x->r;
    if (x->own)
        etcdc_txn_if(t, r->file_key, r->file_len, ETCDC_CMP_MOD, ETCDC_EQUAL, x->own->mod_revision);
    else
        etcdc_txn_if(t, r->file_key, r->file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    size_t end_len;
    char *end = key_prefix_end(r->sub_key, r->sub_len, &end_len);
    if (end)
        etcdc_txn_if_range(t, r->sub_key, r->sub_len, end, end_len, ETCDC_CMP_MOD, ETCDC_LESS,
                           snap_rev + 1);
    else
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    free(end);
    for (size_t i = 0; i < x->below->count; i++)
        etcdc_txn_if(t, x->below->kvs[i].key, x->below->kvs[i].key_len, ETCDC_CMP_MOD, ETCDC_EQUAL,
                     x->below->kvs[i].mod_revision);
}

/* Moves one key of side `from` to the other name; deletes it when the other side does not
 * overwrite it (etcd refuses a put inside a range deleted by the same Txn, hence per key). */
static void swap_key(etcdc_txn *t, const etcdc_kv *kv, const side *from, const side *to)
{
    const char *rel = kv->key + from->r->file_len;
    size_t rel_len = kv->key_len - from->r->file_len, nlen;
    char *nk = key_join(to->r->file_key, to->r->file_len, rel, rel_len, NULL, 0, &nlen);
    if (nk)
        etcdc_txn_put(t, ETCDC_THEN, nk, nlen, kv->value ? kv->value : "", kv->value_len, 0);
    else
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    free(nk);
    if (!side_has(to, rel, rel_len))
        etcdc_txn_delete(t, ETCDC_THEN, kv->key, kv->key_len, NULL, 0, false);
}

static void swap_side(etcdc_txn *t, const side *from, const side *to)
{
    if (from->own)
        swap_key(t, from->own, from, to);
    for (size_t i = 0; i < from->below->count; i++)
        swap_key(t, &from->below->kvs[i], from, to);
}

static bool side_unreadable(const side *x)
{
    if (x->own && x->own->value_error)
        return true;
    for (size_t i = 0; i < x->below->count; i++)
        if (x->below->kvs[i].value_error)
            return true;
    return false;
}

/* The node table after an exchange committed at rev: the two names' nodes trade keys while the
 * names are held, then take the revision the exchange gave them. */
static void exchanged(commit *cm, const side *a, const side *b, int64_t rev)
{
    const resolved *ra = a->r, *rb = b->r;
    size_t na = 0, nb = 0;
    node **moved =
        node_swap_names(ra->file_key, ra->file_len, rb->file_key, rb->file_len, &na, &nb);
    commit_release_names(cm);
    settle_moved(moved, na, ra->file_key, ra->file_len, rb->file_key, rb->file_len, a->own,
                 a->below, rev);
    if (moved)
        settle_moved(moved + na, nb, rb->file_key, rb->file_len, ra->file_key, ra->file_len, b->own,
                     b->below, rev);
    put_all(moved, na + nb);
}

/* What the attempts of an exchange share. */
typedef struct tree_swap {
    const names2 *nm;
    commit *cm;
    int64_t revision; /* of the exchange, once committed */
} tree_swap;

/* Both names' own keys and the keys below them, in one read-only Txn (ops: a's own, a's below,
 * b's own, b's below); refuses what cannot be exchanged in one Txn (EXDEV), what is missing on
 * one side (ENOENT) and values this mount cannot decrypt (EIO: never re-sealed blindly). */
static int swap_snapshot(const tree_swap *x, etcdc_txn_result *snap, side *a, side *b)
{
    const resolved *rs[2] = {x->nm->rs, x->nm->rd};
    size_t max_ops = etcdc_max_txn_ops();
    etcdc_txn *rt = etcdc_txn_new();
    etcdc_error err = {0};
    for (int i = 0; i < 2; i++) {
        size_t end_len;
        char *end = key_prefix_end(rs[i]->sub_key, rs[i]->sub_len, &end_len);
        etcdc_range_req own = {.key = rs[i]->file_key, .key_len = rs[i]->file_len};
        etcdc_range_req below = {.key = rs[i]->sub_key,
                                 .key_len = rs[i]->sub_len,
                                 .range_end = end,
                                 .range_end_len = end_len,
                                 .limit = (int64_t)max_ops + 1};
        if (!end)
            etcdc_txn_set_error(rt, ETCDC_ERR_NO_MEMORY);
        etcdc_txn_get(rt, ETCDC_THEN, &own);
        etcdc_txn_get(rt, ETCDC_THEN, &below);
        free(end);
    }
    etcdc_code code = etcdc_txn_commit(g_fs.client, rt, snap, &err);
    etcdc_txn_free(rt);
    if (code == ETCDC_ERR_TOO_LARGE)
        return exdev_refused("rename exchange", rs[0]->file_key, rs[0]->file_len, code, &err);
    if (code != ETCDC_OK || snap->op_count != 4)
        return code ? fs_fail("rename", rs[0]->file_key, rs[0]->file_len, code, &err) : EIO;
    *a = (side){rs[0], snap->ops[0].kvs.count ? &snap->ops[0].kvs.kvs[0] : NULL, &snap->ops[1].kvs};
    *b = (side){rs[1], snap->ops[2].kvs.count ? &snap->ops[2].kvs.kvs[0] : NULL, &snap->ops[3].kvs};
    size_t na = a->below->count + (a->own != NULL), nb = b->below->count + (b->own != NULL);
    size_t compares = a->below->count + b->below->count + 4;
    size_t ops = 2 * (na + nb); /* a put per key, at most a delete per key */
    if (na == 0 || nb == 0)
        return ENOENT;
    if (side_unreadable(a) || side_unreadable(b))
        return EIO;
    if (a->below->more || b->below->more || compares > max_ops || ops > max_ops) {
        char kb[LOG_KEY_BUF];
        log_msg(LOG_INFO,
                "rename exchange %s: %zu%s keys do not fit one etcd transaction (at most %zu "
                "operations): EXDEV",
                log_key(rs[0]->file_key, rs[0]->file_len, kb, sizeof kb), na + nb,
                a->below->more || b->below->more ? "+" : "", max_ops);
        return EXDEV;
    }
    return 0;
}

/* A snapshot of both trees, then one Txn that swaps them, guarded by it; a failed guard means
 * either tree changed after the snapshot: take a new one. */
static int tree_swap_attempt(void *arg)
{
    tree_swap *x = arg;
    const resolved *ra = x->nm->rs;
    etcdc_txn_result snap = {0}, res = {0};
    etcdc_error err = {0};
    side a = {0}, b = {0};
    int rc = swap_snapshot(x, &snap, &a, &b);
    etcdc_txn *t = NULL;
    if (rc == 0) {
        t = etcdc_txn_new();
        guard_side(t, &a, snap.revision);
        guard_side(t, &b, snap.revision);
        swap_side(t, &a, &b);
        swap_side(t, &b, &a);
        etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
        if (code == ETCDC_ERR_TOO_LARGE || code == ETCDC_ERR_TOO_MANY_OPS)
            rc = exdev_refused("rename exchange", ra->file_key, ra->file_len, code, &err);
        else if (code != ETCDC_OK)
            rc = fs_fail("rename", ra->file_key, ra->file_len, code, &err);
        else if (!res.succeeded)
            rc = OPTIMISTIC_RETRY;
    }
    if (rc == 0) {
        x->revision = res.revision;
        exchanged(x->cm, &a, &b, x->revision);
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    etcdc_txn_result_clear(&snap);
    return rc;
}

/* RENAME_EXCHANGE where a directory is involved: a snapshot of both names' keys, then one Txn
 * that swaps them, guarded by that snapshot. EXDEV when it does not fit in one Txn. */
static int exchange_trees(const names2 *nm)
{
    flush_under(nm->rs->file_key, nm->rs->file_len);
    flush_under(nm->rd->file_key, nm->rd->file_len);
    commit cm;
    commit_begin_move(&cm);
    tree_swap x = {nm, &cm, 0};
    int rc = names_current(nm) ? optimistic_run(tree_swap_attempt, &x) : EAGAIN;
    commit_end(&cm, x.revision);
    return rc;
}

/* One attempt at a rename: resolve both names, find the nodes, move. EAGAIN when a directory
 * above either name moved meanwhile (resolve again). *src_dir: the source was a directory. */
static int rename_once(node *sp, const char *name, node *dp, const char *newname,
                       unsigned int flags, resolved *rs, resolved *rd, bool *src_dir)
{
    node *src = NULL, *dst = NULL;
    bool dst_dir = false;
    names2 nm = {sp, dp, rs, rd};
    *src_dir = false;
    int rc = resolve_name(sp, name, rs);
    if (rc == 0)
        rc = resolve_name(dp, newname, rd);
    if (rc == 0 && (rs->kind == NAMES_STATS || rd->kind == NAMES_STATS))
        rc = EPERM;
    if (rc == 0 && rs->kind != NAMES_SELF && (src = node_find(rs->sub_key, rs->sub_len, NODE_DIR)))
        *src_dir = true;
    if (rc == 0 && !src && !(src = node_obtain(rs->file_key, rs->file_len, NODE_FILE)))
        rc = ENOMEM;
    if (rc == 0 && *src_dir && (rd->kind == NAMES_SELF || rd->file_len == rd->dir_len))
        rc = ENOTDIR; /* %value and % are files */
    if (rc == 0 && !*src_dir)
        dst = node_find(rd->file_key, rd->file_len, NODE_FILE);
    if (rc == 0 && rs->file_len == rd->file_len &&
        !memcmp(rs->file_key, rd->file_key, rs->file_len))
        goto out; /* same name: nothing to do */
    if (rc == 0 && (flags & RENAME_EXCHANGE) && rd->kind != NAMES_SELF) {
        /* the kernel looked the destination up, so a directory there has a node */
        node *d = node_find(rd->sub_key, rd->sub_len, NODE_DIR);
        dst_dir = d != NULL;
        node_put(d);
    }
    if (rc == 0 && (flags & RENAME_EXCHANGE) && (*src_dir || dst_dir)) {
        /* %value names a key beside a directory, and "%" a marker: neither trades places
         * with a directory */
        bool plain = rs->kind != NAMES_SELF && rd->kind != NAMES_SELF &&
                     rs->file_len != rs->dir_len && rd->file_len != rd->dir_len;
        rc = plain ? exchange_trees(&nm) : EINVAL;
        *src_dir = true; /* the tree's nodes moved: no witness bookkeeping */
    } else if (rc == 0 && *src_dir) {
        rc = rename_dir(&nm, flags);
    } else if (rc == 0) {
        rc = rename_file(src, dst, &nm, flags);
    }
out:
    node_put(src);
    node_put(dst);
    return rc;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
    stats_inc(STAT_OP_rename);
    resolved rs = {0}, rd = {0};
    node *sp = node_get(parent), *dp = node_get(newparent);
    bool src_dir = false;
    int rc = g_fs.opts->ro || (sp && past_node(sp)) || (dp && past_node(dp)) ? EROFS
             : (!sp || !dp)                                                  ? ENOENT
                                                                             : 0;
    if (rc == 0 && (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)))
        rc = EINVAL;
    if (rc == 0 && (flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
        rc = EINVAL;
    if (rc == 0 && (sp->type != NODE_DIR || dp->type != NODE_DIR))
        rc = EPERM;
    for (int attempt = 0; rc == 0 || rc == EAGAIN; attempt++) {
        resolved_free(&rs);
        resolved_free(&rd);
        rc = attempt < RESOLVE_ATTEMPTS
                 ? rename_once(sp, name, dp, newname, flags, &rs, &rd, &src_dir)
                 : ESTALE;
        if (rc != EAGAIN)
            break;
    }
    if (rc == 0 && !src_dir && !(flags & RENAME_EXCHANGE)) {
        witness_forget(rs.file_key, rs.file_len);
        witness_note(rd.file_key, rd.file_len);
    }
    if (rc == 0) {
        node_drop_listing(sp);
        node_drop_listing(dp);
    }
    fuse_reply_err(req, rc);
    log_debug("rename %lu '%s' -> %lu '%s' flags %u -> %s", (unsigned long)parent, name,
              (unsigned long)newparent, newname, flags, rc ? strerror(rc) : "ok");
    node_put(sp);
    node_put(dp);
    resolved_free(&rs);
    resolved_free(&rd);
}
