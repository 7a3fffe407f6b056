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

#include "attrs_store.h"
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

/* Loads the file's content into the cache when it is not there: from what its directory's
 * listing showed (`listed`; the rename's guard compares the revision), else one Get. */
static int ensure_data_locked(node *n, const listed_value *listed)
{
    if (node_value_held_locked(n) || file_take_listed_locked(n, listed))
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
            node_lock(n);
            if (n->dirty)
                file_writeback_locked(n, "rename");
            node_unlock(n);
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
/* The create_revision the key of a moved node has after a move committed at rev: that of the
 * key that was there before (there_own, there_below: what the move found at the destination;
 * a Put keeps it), else rev. */
static int64_t created_by_move(const char *key, size_t len, const etcdc_kv *there_own,
                               const etcdc_kvs *there_below, int64_t rev)
{
    if (there_own && there_own->key_len == len && !memcmp(there_own->key, key, len))
        return there_own->create_revision;
    const etcdc_kv *kv = attrs_find_kv(there_below, key, len);
    return kv ? kv->create_revision : rev;
}

/* Whether n's record applies before a move (ATTRS_APPLY, with ATTRS_APPLY_MTIME): the move
 * carries exactly such records (attrs_carry). Under n->mu. */
static unsigned record_carried_locked(node *n)
{
    bool with_mtime;
    if (!n->rec || n->rec->local || !node_record_locked(n, &with_mtime))
        return 0;
    return ATTRS_APPLY | (with_mtime ? ATTRS_APPLY_MTIME : 0);
}

/* n's record as the move committed at rev wrote it: carried (naming the key's incarnation now,
 * its mtime kept if it applied) or dropped; the watch brings the same news later. */
static void record_moved_locked(node *n, unsigned carried, int64_t rev)
{
    if (!n->rec || n->rec->local || !attrs_writable())
        return;
    if (carried && n->create_rev > 0) {
        n->rec->a.anchor = n->create_rev;
        n->rec->a.content = (carried & ATTRS_APPLY_MTIME) ? 0 : -1;
    } else {
        n->rec->present = false;
    }
    n->rec->rev = rev;
    n->rec->created = 0; /* the record key at the new place: its own, not known here */
}

static void settle_moved(node **moved, size_t count, const char *from, size_t from_len,
                         const char *to, size_t to_len, const etcdc_kv *own, const etcdc_kvs *below,
                         const etcdc_kv *there_own, const etcdc_kvs *there_below, int64_t rev)
{
    for (size_t i = 0; i < count; i++) {
        node *n = moved[i];
        size_t klen, len = 0;
        char *key = node_key(n, &klen);
        char *old = key && n->type == NODE_FILE && klen >= to_len && !memcmp(key, to, to_len)
                        ? key_join(from, from_len, key + to_len, klen - to_len, NULL, 0, &len)
                        : NULL;
        if (old) {
            int64_t old_mod = snapshot_mod(own, below, old, len);
            node_lock(n);
            unsigned carried = record_carried_locked(n);
            if (old_mod > 0 && n->mod_rev == old_mod)
                file_replaced_locked(n, rev); /* our own move: no conflict for handles */
            node_moved_locked(n, old_mod, rev);
            if (old_mod > 0) /* the key is what this mount put: its incarnation is known */
                n->create_rev = created_by_move(key, klen, there_own, there_below, rev);
            record_moved_locked(n, carried, rev);
            node_unlock(n);
        } else if (n->type == NODE_DIR) {
            node_drop_listing(n); /* its entries name keys of the old place */
            node_lock(n);
            unsigned carried = record_carried_locked(n);
            if (key && n->create_rev > 0) /* its marker moved with it */
                n->create_rev = created_by_move(key, klen, NULL, there_below, rev);
            record_moved_locked(n, carried, rev);
            node_unlock(n);
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
    char *witness; /* keep_parent: a key proving the source directory stays (or NULL) */
    size_t witness_len;
    int64_t revision; /* of the move, once committed */
    bool marker_put;  /* the move wrote the source directory's marker (it took its last entry) */
    /* the attribute records that go with the contents (docs/design-attributes.md) */
    bool src_has_rec, dst_has_rec;
    attrs src_rec, dst_rec;
} file_move;

/* The record for key in the move's Txn: the moved one, or none (a record left there would
 * describe the content moved in, as the key keeps its create_revision). */
static void move_record(etcdc_txn *t, const char *key, size_t len, bool has, const attrs *a)
{
    if (has)
        txn_put_record(t, ETCDC_THEN, key, len, a);
    else
        txn_delete_record(t, ETCDC_THEN, key, len, ATTRS_FILE);
}

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
    etcdc_txn_put(t, ETCDC_THEN, rd->file_key, rd->file_len, node_data(src) ? node_data(src) : "",
                  src->size, 0);
    if (flags & RENAME_EXCHANGE)
        etcdc_txn_put(t, ETCDC_THEN, rs->file_key, rs->file_len,
                      node_data(dst) ? node_data(dst) : "", dst->size, 0);
    else if (x->src_is_marker)
        etcdc_txn_put(t, ETCDC_THEN, rs->file_key, rs->file_len, "", 0, 0);
    else if (x->src_in_etcd)
        etcdc_txn_delete(t, ETCDC_THEN, rs->file_key, rs->file_len, NULL, 0, false);
    if (attrs_writable() && !x->src_is_marker) {
        x->src_has_rec = attrs_following_key_locked(src, x->dst_exists ? dst->create_rev : 0, false,
                                                    &x->src_rec);
        x->dst_has_rec = (flags & RENAME_EXCHANGE) &&
                         attrs_following_key_locked(dst, x->src_in_etcd ? src->create_rev : 0,
                                                    false, &x->dst_rec);
        if (x->dst_exists && dst->create_rev <= 0)
            x->src_has_rec = false; /* the key's incarnation is not known: no record there */
        move_record(t, rd->file_key, rd->file_len, x->src_has_rec, &x->src_rec);
        if (flags & RENAME_EXCHANGE)
            move_record(t, rs->file_key, rs->file_len, x->dst_has_rec, &x->dst_rec);
        else
            txn_delete_record(t, ETCDC_THEN, rs->file_key, rs->file_len, ATTRS_FILE);
    }
    bool keeps = x->keep_parent && txn_keep_parent(t, rs, false, x->witness, x->witness_len);
    etcdc_txn_get(t, ETCDC_ELSE, &rsrc);
    etcdc_txn_get(t, ETCDC_ELSE, &rdst);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc = 0;
    if (code != ETCDC_OK) {
        rc = fs_fail("rename", rs->file_key, rs->file_len, code, &err);
    } else if (res.succeeded) {
        x->revision = res.revision;
        x->marker_put = keeps && keep_parent_settle(&res, x->witness, x->witness_len);
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

/* The create_revision of a key in etcd that node n does not know (a node the mount never read
 * its key for, e.g. one it moved while it held unwritten changes): the record the rename
 * carries must name it. One read, rare. Under n->mu. */
static int learn_incarnation_locked(node *n, const resolved *r, bool in_etcd)
{
    if (!in_etcd || n->create_rev > 0)
        return 0;
    etcdc_range_req get = {.key = r->file_key, .key_len = r->file_len, .keys_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_range(g_fs.client, &get, &kvs, &err);
    int rc = code ? fs_fail("rename", r->file_key, r->file_len, code, &err) : 0;
    if (rc == 0 && kvs.count == 1) /* another incarnation: the rename's guard then fails */
        n->create_rev = kvs.kvs[0].create_revision;
    etcdc_kvs_clear(&kvs);
    return rc;
}

/* Node n holds the content a move put at its new key at rev, with record a (has) or none. */
static void moved_record_locked(node *n, bool has, const attrs *a, int64_t rev)
{
    if (!attrs_writable())
        return;
    if (n->rec)
        n->rec->local = false; /* written by the move */
    node_set_record_locked(n, has ? a : NULL, rev);
}

/* A name whose key is one entry of its directory's listing: not a directory's own key
 * (%value) or marker ("%"). */
static bool names_plain(const resolved *r)
{
    return r->kind != NAMES_SELF && r->file_len != r->dir_len;
}

/* Renames a file. *names_marked: the directories' listings were kept, with both names marked
 * as changed by this mount (node_listing_name_changed), instead of left for the caller to drop;
 * their entries keep proving other names absent and giving the values of files only listed. */
static int rename_file(node *src, node *dst, const names2 *nm, unsigned flags, bool *names_marked)
{
    const resolved *rs = nm->rs, *rd = nm->rd;
    bool same_dir = nm->sp == nm->dp;
    int rc = 0;
    listed_value src_listed, dst_listed = {0}; /* taken before the nodes' locks */
    file_listed_value(src, &src_listed);
    if (dst && (flags & RENAME_EXCHANGE))
        file_listed_value(dst, &dst_listed);
    /* One mutex at a time is the rule; src and dst are locked in address order. */
    node *first = dst && dst < src ? dst : src, *second = dst && dst < src ? src : dst;
    node_lock(first);
    if (second && second != first)
        node_lock(second);
    commit cm;
    commit_begin(&cm);
    rc = names_current(nm) ? 0 : EAGAIN;
    if (rc == 0)
        rc = ensure_data_locked(src, &src_listed);
    if (rc == 0 && dst && (flags & RENAME_EXCHANGE))
        rc = ensure_data_locked(dst, &dst_listed);
    bool src_in_etcd = src->mod_rev > 0;
    bool dst_exists = dst && dst->known && dst->mod_rev > 0;
    /* created here and not stored yet: it exists, and the exchange stores it (if etcd has no
     * key there meanwhile) */
    bool dst_pending = dst && dst->pending && !dst_exists;
    if (rc == 0 && (flags & RENAME_EXCHANGE) && !dst_exists && !dst_pending)
        rc = ENOENT;
    if (rc == 0 && attrs_writable())
        rc = learn_incarnation_locked(src, rs, src_in_etcd);
    if (rc == 0 && attrs_writable() && dst)
        rc = learn_incarnation_locked(dst, rd, dst_exists);
    bool src_is_marker = rs->file_len == rs->dir_len; /* "%": the marker holding data */
    bool keep_parent = !same_dir && !src_is_marker && !(flags & RENAME_EXCHANGE);
    file_move x = {.rs = rs,
                   .rd = rd,
                   .src = src,
                   .dst = dst,
                   .flags = flags,
                   .src_in_etcd = src_in_etcd,
                   .dst_exists = dst_exists,
                   .dst_pending = dst_pending,
                   .src_is_marker = src_is_marker,
                   .keep_parent = keep_parent};
    if (rc == 0 && keep_parent)
        x.witness = keep_parent_witness(nm->sp, rs, &x.witness_len);
    if (rc == 0)
        rc = optimistic_run(file_move_attempt, &x);
    free(x.witness);
    int64_t revision = x.revision;
    if (rc == 0) {
        witness_forget(rs->file_key, rs->file_len); /* moved away: proves nothing there now */
        /* The src node is now the file at dst, holding what it held. */
        if (src->pending)
            node_pending_add(-1);
        src->pending = src->dirty = src->written = false;
        file_replaced_locked(src, revision); /* our own change: no conflict for open handles */
        int64_t src_create = src->create_rev;
        src->create_rev = x.dst_exists ? dst->create_rev : revision; /* a Put keeps it */
        node_committed_locked(src, revision);
        moved_record_locked(src, x.src_has_rec, &x.src_rec, revision);
        if (dst && (flags & RENAME_EXCHANGE)) {
            file_replaced_locked(dst, revision);
            dst->create_rev = x.src_in_etcd ? src_create : revision;
            node_committed_locked(dst, revision);
            moved_record_locked(dst, x.dst_has_rec, &x.dst_rec, revision);
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
        *names_marked = names_plain(rs) && names_plain(rd);
        if (*names_marked) { /* before commit_end: the watch sees them before the events */
            node_listing_name_changed(nm->sp, rs->comp, rs->comp_len);
            node_listing_name_changed(nm->dp, rd->comp, rd->comp_len);
        }
        if (x.marker_put)
            node_note_marker_put(nm->sp, revision);
    }
    commit_end(&cm, rc == 0 ? revision : 0);
    if (second && second != first)
        node_unlock(second);
    node_unlock(first);
    listed_value_clear(&src_listed);
    listed_value_clear(&dst_listed);
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
    /* every key put below the destination is new there, but its marker maybe */
    const etcdc_kvs *dst_marker = &snap->ops[3].kvs;
    settle_moved(moved, count, rs->sub_key, rs->sub_len, rd->sub_key, rd->sub_len, NULL, below,
                 NULL, dst_marker, rev);
    if (own_node)
        settle_moved(&own_node, 1, rs->file_key, rs->file_len, rd->file_key, rd->file_len, own,
                     NULL, NULL, NULL, rev);
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
    char *srec, *srec_end; /* the source name + "\0" and + "\1": its records lie between */
    size_t srec_len;
    char *drec, *drec_end; /* the same for the destination name */
    size_t drec_len;
    int64_t revision; /* of the move, once committed */
    bool marker_put;  /* the move wrote the source directory's marker (it took its last entry) */
} dir_move;

static size_t own_record_budget(const etcdc_txn_result *snap);

/* The subtree, the directory's own key and records, the destination's marker and records, in
 * one read-only Txn (ops 0 to 4); refuses what cannot move in one Txn (EXDEV) or is not there
 * (ENOENT). */
static int dir_snapshot(const dir_move *x, etcdc_txn_result *snap)
{
    const resolved *rs = x->nm->rs, *rd = x->nm->rd;
    size_t max_ops = etcdc_max_txn_ops();
    etcdc_txn *rt = etcdc_txn_new();
    etcdc_error err = {0};
    etcdc_range_req below = {.key = rs->sub_key,
                             .key_len = rs->sub_len,
                             .range_end = x->send,
                             .range_end_len = x->send_len,
                             .limit = (int64_t)max_ops + 1};
    etcdc_range_req self = {.key = rs->file_key, .key_len = rs->file_len};
    /* the directory's own records ("name\0attrs", "name\0dirattrs": outside name/), and the
     * destination's marker (a record there must name its create_revision) */
    etcdc_range_req recs = {.key = x->srec,
                            .key_len = x->srec_len,
                            .range_end = x->srec_end,
                            .range_end_len = x->srec_len};
    etcdc_range_req dmarker = {.key = rd->sub_key, .key_len = rd->sub_len, .keys_only = true};
    etcdc_range_req drecs = {.key = x->drec,
                             .key_len = x->drec_len,
                             .range_end = x->drec_end,
                             .range_end_len = x->drec_len};
    etcdc_txn_get(rt, ETCDC_THEN, &below);
    etcdc_txn_get(rt, ETCDC_THEN, &self);
    etcdc_txn_get(rt, ETCDC_THEN, &recs);
    etcdc_txn_get(rt, ETCDC_THEN, &dmarker);
    etcdc_txn_get(rt, ETCDC_THEN, &drecs);
    etcdc_code code = etcdc_txn_commit(g_fs.client, rt, snap, &err);
    etcdc_txn_free(rt);
    if (code == ETCDC_ERR_TOO_LARGE)
        return exdev_refused("rename", rs->sub_key, rs->sub_len, code, &err);
    if (code != ETCDC_OK || snap->op_count != 5)
        return code ? fs_fail("rename", rs->sub_key, rs->sub_len, code, &err) : EIO;
    const etcdc_kvs *keys = &snap->ops[0].kvs;
    bool own = snap->ops[1].kvs.count > 0;
    /* etcd's budget: the larger of ops and compares, plus the nested marker Txn's (at most 7
     * compares) when the source leaves its directory; and the records of the directory
     * itself, when it or the destination has any */
    size_t rec_ops = own_record_budget(snap);
    size_t ops = keys->count + 1 + (own ? 2 : 0) + (x->same_dir ? 0 : 1) + rec_ops;
    size_t compares = keys->count + 4 + rec_ops;
    size_t needed = (ops > compares ? ops : compares) + (x->same_dir ? 0 : 7);
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

/* Puts kv (one key of a moved subtree, among keys) at key nk: a record is carried only if it
 * applies to its anchor, with the anchor as old as this Txn (all of the subtree is put at
 * fresh keys, dst_marker_create aside: what the destination's marker keeps). */
static void put_moved(etcdc_txn *t, const char *nk, size_t nlen, const etcdc_kv *kv,
                      const etcdc_kvs *keys, int64_t dst_marker_create)
{
    size_t name_len, at = names_last_component(kv->key, kv->key_len, 0);
    attrs_kind kind = attrs_key_kind(kv->key + at, kv->key_len - at, &name_len);
    if (kind == ATTRS_NONE || !attrs_writable()) {
        etcdc_txn_put(t, ETCDC_THEN, nk, nlen, kv->value ? kv->value : "", kv->value_len, 0);
        return;
    }
    size_t alen;
    char *akey = key_join(kv->key, at + name_len, "/", kind == ATTRS_DIR ? 1 : 0, NULL, 0, &alen);
    char text[ATTRS_TEXT_MAX];
    size_t tlen;
    if (!akey)
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    else if (attrs_carry(kv, attrs_find_kv(keys, akey, alen), dst_marker_create, text, &tlen))
        etcdc_txn_put(t, ETCDC_THEN, nk, nlen, text, tlen, 0);
    free(akey);
}

/* The records of the moved name itself, "name\0attrs" (its own value's, "%value") and
 * "name\0dirattrs" (the directory's, on its marker), and the new name's, as the snapshot read
 * them (ops 2 and 4): each of the name's is carried to the new name when it applies, the new
 * name's are dropped (its marker, when it had one, keeps its create_revision: a record left
 * there would describe the moved directory). Without records, nothing is added: the Txn keeps
 * room for as many keys as before. */
static void move_own_records(etcdc_txn *t, const dir_move *x, const etcdc_txn_result *snap)
{
    const resolved *rs = x->nm->rs, *rd = x->nm->rd;
    if (!attrs_writable())
        return;
    const etcdc_kvs *recs = &snap->ops[2].kvs, *drecs = &snap->ops[4].kvs;
    const etcdc_kv *own = snap->ops[1].kvs.count ? &snap->ops[1].kvs.kvs[0] : NULL;
    const etcdc_kv *smarker = attrs_find_kv(&snap->ops[0].kvs, rs->sub_key, rs->sub_len);
    int64_t dmarker = snap->ops[3].kvs.count ? snap->ops[3].kvs.kvs[0].create_revision : 0;
    static const attrs_kind kinds[] = {ATTRS_FILE, ATTRS_DIR};
    for (size_t k = 0; k < 2; k++) {
        bool dir = kinds[k] == ATTRS_DIR;
        const char *from = dir ? rs->sub_key : rs->file_key, *to = dir ? rd->sub_key : rd->file_key;
        size_t from_len = dir ? rs->sub_len : rs->file_len,
               to_len = dir ? rd->sub_len : rd->file_len;
        size_t rlen, dlen, tlen;
        char *rkey = attrs_key(from, from_len, kinds[k], &rlen);
        char *dkey = attrs_key(to, to_len, kinds[k], &dlen);
        const etcdc_kv *rec = rkey ? attrs_find_kv(recs, rkey, rlen) : NULL;
        const etcdc_kv *drec = dkey ? attrs_find_kv(drecs, dkey, dlen) : NULL;
        int64_t after = dir && smarker ? dmarker : 0;
        char text[ATTRS_TEXT_MAX];
        if (!rkey || !dkey) {
            etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
        } else if (rec) { /* as the snapshot read it */
            etcdc_txn_if(t, rkey, rlen, ETCDC_CMP_MOD, ETCDC_EQUAL, rec->mod_revision);
            etcdc_txn_delete(t, ETCDC_THEN, rkey, rlen, NULL, 0, false);
            if (attrs_carry(rec, dir ? smarker : own, after, text, &tlen)) {
                etcdc_txn_put(t, ETCDC_THEN, dkey, dlen, text, tlen, 0);
                if (after) /* the marker there is what the snapshot saw */
                    etcdc_txn_if(t, rd->sub_key, rd->sub_len, ETCDC_CMP_CREATE, ETCDC_EQUAL,
                                 dmarker);
            } else if (drec) {
                etcdc_txn_delete(t, ETCDC_THEN, dkey, dlen, NULL, 0, false);
            }
        } else if (drec) {
            etcdc_txn_delete(t, ETCDC_THEN, dkey, dlen, NULL, 0, false);
        }
        free(rkey);
        free(dkey);
    }
}

/* What move_own_records adds at most to the Txn, from the snapshot: operations and compares. */
static size_t own_record_budget(const etcdc_txn_result *snap)
{
    size_t recs = snap->ops[2].kvs.count, drecs = snap->ops[4].kvs.count;
    return recs || drecs ? 2 * recs + drecs + 1 : 0;
}

/* The move of the snapshot, guarded by it: Then(delete the source subtree, put every key at
 * the destination, keep the source's parent) Else(read the destination). */
static etcdc_txn *dir_move_txn(const dir_move *x, const etcdc_txn_result *snap, bool *keeps)
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
            put_moved(t, nk, nlen, kv, keys, 0);
        else
            etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
        free(nk);
    }
    if (own) {
        etcdc_txn_delete(t, ETCDC_THEN, rs->file_key, rs->file_len, NULL, 0, false);
        etcdc_txn_put(t, ETCDC_THEN, rd->file_key, rd->file_len, own->value ? own->value : "",
                      own->value_len, 0);
    }
    move_own_records(t, x, snap);
    *keeps = !x->same_dir && txn_keep_parent(t, rs, true, NULL, 0);
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
    bool keeps = false;
    etcdc_txn *t = rc == 0 ? dir_move_txn(x, &snap, &keeps) : NULL;
    etcdc_code code = rc == 0 ? etcdc_txn_commit(g_fs.client, t, &res, &err) : ETCDC_OK;
    if (rc != 0) {
        /* the snapshot said */
    } else if (code == ETCDC_ERR_TOO_LARGE || code == ETCDC_ERR_TOO_MANY_OPS) {
        rc = exdev_refused("rename", rs->sub_key, rs->sub_len, code, &err);
    } else if (code != ETCDC_OK) {
        rc = fs_fail("rename", rs->sub_key, rs->sub_len, code, &err);
    } else if (res.succeeded) {
        x->revision = res.revision;
        x->marker_put = keeps && keep_parent_settle(&res, NULL, 0);
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
    x.srec = key_join(rs->file_key, rs->file_len, "", 1, NULL, 0, &x.srec_len);
    x.srec_end = key_join(rs->file_key, rs->file_len, "\1", 1, NULL, 0, &x.srec_len);
    x.drec = key_join(rd->file_key, rd->file_len, "", 1, NULL, 0, &x.drec_len);
    x.drec_end = key_join(rd->file_key, rd->file_len, "\1", 1, NULL, 0, &x.drec_len);
    bool mem = x.send && x.dend && x.dafter && x.srec && x.srec_end && x.drec && x.drec_end;
    int rc = !names_current(nm) ? EAGAIN : !mem ? ENOMEM : optimistic_run(dir_move_attempt, &x);
    if (rc == 0 && x.marker_put)
        node_note_marker_put(nm->sp, x.revision);
    commit_end(&cm, x.revision);
    free(x.send);
    free(x.dend);
    free(x.dafter);
    free(x.srec);
    free(x.srec_end);
    free(x.drec);
    free(x.drec_end);
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

/* A key of side `from` that is an attribute record, carried to the other side: its text
 * there (naming the anchor it will have there), into text and *len; false when it is a record
 * that does not apply (not carried). Any other key: true, text[0] = 0 (put as it is). */
static bool swapped_record(const etcdc_kv *kv, const side *from, const side *to, char *text,
                           size_t *len)
{
    text[0] = 0;
    size_t name_len, at = names_last_component(kv->key, kv->key_len, 0);
    attrs_kind kind = attrs_key_kind(kv->key + at, kv->key_len - at, &name_len);
    if (kind == ATTRS_NONE || !attrs_writable())
        return true;
    size_t alen, tlen;
    char *akey = key_join(kv->key, at + name_len, "/", kind == ATTRS_DIR ? 1 : 0, NULL, 0, &alen);
    char *tkey = akey ? key_join(to->r->file_key, to->r->file_len, akey + from->r->file_len,
                                 alen - from->r->file_len, NULL, 0, &tlen)
                      : NULL;
    const etcdc_kv *anchor = akey ? attrs_find_kv(from->below, akey, alen) : NULL;
    const etcdc_kv *there = tkey ? attrs_find_kv(to->below, tkey, tlen) : NULL;
    bool carried = attrs_carry(kv, anchor, there ? there->create_revision : 0, text, len);
    free(akey);
    free(tkey);
    return carried;
}

/* Moves one key of side `from` to the other name; deletes it when the other side does not
 * overwrite it (etcd refuses a put inside a range deleted by the same Txn, hence per key). */
static void swap_key(etcdc_txn *t, const etcdc_kv *kv, const side *from, const side *to)
{
    const char *rel = kv->key + from->r->file_len;
    size_t rel_len = kv->key_len - from->r->file_len, nlen;
    char *nk = key_join(to->r->file_key, to->r->file_len, rel, rel_len, NULL, 0, &nlen);
    char text[ATTRS_TEXT_MAX] = "";
    size_t text_len = 0;
    bool put = !nk || swapped_record(kv, from, to, text, &text_len);
    const char *value = text[0] ? text : kv->value ? kv->value : "";
    size_t value_len = text[0] ? text_len : kv->value_len;
    if (!nk)
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    else if (put)
        etcdc_txn_put(t, ETCDC_THEN, nk, nlen, value, value_len, 0);
    else if (side_has(to, rel, rel_len))
        etcdc_txn_delete(t, ETCDC_THEN, nk, nlen, NULL, 0, false); /* a record of what left */
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
                 a->below, b->own, b->below, rev);
    if (moved)
        settle_moved(moved + na, nb, rb->file_key, rb->file_len, ra->file_key, ra->file_len, b->own,
                     b->below, a->own, a->below, rev);
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
    /* ops 4 and 5: each name's own attribute records, which trade places with the rest */
    for (int i = 0; i < 2; i++) {
        size_t from_len, to_len;
        char *from = key_join(rs[i]->file_key, rs[i]->file_len, "", 1, NULL, 0, &from_len);
        char *to = key_join(rs[i]->file_key, rs[i]->file_len, "\1", 1, NULL, 0, &to_len);
        etcdc_range_req recs = {
            .key = from, .key_len = from_len, .range_end = to, .range_end_len = to_len};
        if (!from || !to)
            etcdc_txn_set_error(rt, ETCDC_ERR_NO_MEMORY);
        else
            etcdc_txn_get(rt, ETCDC_THEN, &recs);
        free(from);
        free(to);
    }
    etcdc_code code = etcdc_txn_commit(g_fs.client, rt, snap, &err);
    etcdc_txn_free(rt);
    if (code == ETCDC_ERR_TOO_LARGE)
        return exdev_refused("rename exchange", rs[0]->file_key, rs[0]->file_len, code, &err);
    if (code != ETCDC_OK || snap->op_count != 6)
        return code ? fs_fail("rename", rs[0]->file_key, rs[0]->file_len, code, &err) : EIO;
    *a = (side){rs[0], snap->ops[0].kvs.count ? &snap->ops[0].kvs.kvs[0] : NULL, &snap->ops[1].kvs};
    *b = (side){rs[1], snap->ops[2].kvs.count ? &snap->ops[2].kvs.kvs[0] : NULL, &snap->ops[3].kvs};
    size_t na = a->below->count + (a->own != NULL), nb = b->below->count + (b->own != NULL);
    size_t compares = a->below->count + b->below->count + 8;
    size_t ops = 2 * (na + nb) + 4; /* a put per key, at most a delete per key; the records */
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

/* The key/value of side x that anchors its own record of kind (its own value, or its marker),
 * or NULL. */
static const etcdc_kv *side_anchor(const side *x, attrs_kind kind)
{
    if (kind == ATTRS_FILE)
        return x->own;
    return attrs_find_kv(x->below, x->r->sub_key, x->r->sub_len);
}

/* The names' own attribute records trade places as their contents do: each is carried to the
 * other name when it applies, naming the anchor it will have there (a marker or value put over
 * an existing one keeps that one's create_revision), or the other name's record is dropped. */
static void swap_records(etcdc_txn *t, const side *a, const etcdc_kvs *ra, const side *b,
                         const etcdc_kvs *rb)
{
    if (!attrs_writable())
        return;
    static const attrs_kind kinds[] = {ATTRS_FILE, ATTRS_DIR};
    const side *sides[2] = {a, b};
    const etcdc_kvs *recs[2] = {ra, rb};
    for (int i = 0; i < 2; i++) {
        const side *from = sides[i], *to = sides[1 - i];
        for (size_t k = 0; k < 2; k++) {
            bool dir = kinds[k] == ATTRS_DIR; /* a directory's record is named by its prefix */
            size_t flen, tlen, text_len;
            char *fkey = attrs_key(dir ? from->r->sub_key : from->r->file_key,
                                   dir ? from->r->sub_len : from->r->file_len, kinds[k], &flen);
            char *tkey = attrs_key(dir ? to->r->sub_key : to->r->file_key,
                                   dir ? to->r->sub_len : to->r->file_len, kinds[k], &tlen);
            const etcdc_kv *rec = fkey ? attrs_find_kv(recs[i], fkey, flen) : NULL;
            const etcdc_kv *there = side_anchor(to, kinds[k]);
            char text[ATTRS_TEXT_MAX];
            if (fkey) /* as the snapshot read it */
                etcdc_txn_if(t, fkey, flen, rec ? ETCDC_CMP_MOD : ETCDC_CMP_CREATE, ETCDC_EQUAL,
                             rec ? rec->mod_revision : 0);
            if (!fkey || !tkey)
                etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
            else if (rec && attrs_carry(rec, side_anchor(from, kinds[k]),
                                        there ? there->create_revision : 0, text, &text_len))
                etcdc_txn_put(t, ETCDC_THEN, tkey, tlen, text, text_len, 0);
            else
                etcdc_txn_delete(t, ETCDC_THEN, tkey, tlen, NULL, 0, false);
            free(fkey);
            free(tkey);
        }
    }
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
        swap_records(t, &a, &snap.ops[4].kvs, &b, &snap.ops[5].kvs);
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
 * above either name moved meanwhile (resolve again). *src_dir: the source was a directory.
 * *names_marked: see rename_file (false: the caller drops both directories' listings). */
static int rename_once(node *sp, const char *name, node *dp, const char *newname,
                       unsigned int flags, resolved *rs, resolved *rd, bool *src_dir,
                       bool *names_marked)
{
    node *src = NULL, *dst = NULL;
    bool dst_dir = false;
    names2 nm = {sp, dp, rs, rd};
    *src_dir = *names_marked = false;
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
        rc = rename_file(src, dst, &nm, flags, names_marked);
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
    bool src_dir = false, names_marked = false;
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
                 ? rename_once(sp, name, dp, newname, flags, &rs, &rd, &src_dir, &names_marked)
                 : ESTALE;
        if (rc != EAGAIN)
            break;
    }
    if (rc == 0 && !src_dir && !(flags & RENAME_EXCHANGE)) {
        witness_forget(rs.file_key, rs.file_len);
        witness_note(rd.file_key, rd.file_len);
    }
    if (rc == 0 && !names_marked) {
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
