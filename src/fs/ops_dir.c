/*
 * ops_dir.c - directories: opendir, readdir(plus), releasedir, mkdir, rmdir, unlink.
 *
 * A directory is implied by any key below it; an empty directory is its marker key
 * ("<dir>/"). Every change of the namespace is one etcd Txn whose compares make it atomic:
 * mkdir fails if anything exists, rmdir only deletes when nothing but the marker lies below,
 * and unlink writes the marker in the same Txn when it removes the directory's last key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attrs_store.h"
#include "commit.h"
#include "key_guards.h"
#include "listing.h"
#include "log.h"
#include "ops.h"
#include "optimistic.h"
#include "past.h"
#include "resolve.h"
#include "stats.h"
#include "witness.h"

/* What an open directory shows: a listing snapshot plus the files created here that are not
 * in etcd yet, plus "%value" when the directory's own key has a value. */
typedef struct extra_entry {
    char *name;
    node *n; /* referenced */
} extra_entry;

typedef struct dir_handle {
    bool stats_dir;
    bool past; /* a directory of the past view (past.h); dir_key NULL for .etcdfs/at */
    listing *l;
    extra_entry *extra;
    size_t n_extra, cap_extra;
    char *dir_key;
    size_t dir_len;
    uint32_t gen; /* the directory's listing generation before the listing was read */
} dir_handle;

/* Files created here whose keys the listing may not show yet. */
typedef struct pending_scan {
    dir_handle *dh;
    node **early; /* pending before the listing was read, with references */
    size_t n_early, cap_early;
    int rc;
} pending_scan;

/* Keeps a reference to a file that is pending now (before the listing is read). */
static void note_early_pending(node *n, void *arg)
{
    pending_scan *ps = arg;
    if (n->type != NODE_FILE || ps->rc)
        return;
    node_lock(n);
    bool pending = n->pending && !n->unlinked;
    node_unlock(n);
    if (!pending)
        return;
    if (ps->n_early == ps->cap_early) {
        size_t cap = ps->cap_early ? ps->cap_early * 2 : 8;
        node **grown = realloc(ps->early, cap * sizeof *grown);
        if (!grown) {
            ps->rc = ENOMEM;
            return;
        }
        ps->early = grown;
        ps->cap_early = cap;
    }
    ps->early[ps->n_early++] = node_get(n->ino);
}

/* Adds file n as an extra entry when it is a direct child of the directory that the listing
 * does not show and no extra entry holds it yet. Returns 0 or ENOMEM. */
static int add_unlisted_file(dir_handle *dh, node *n)
{
    for (size_t i = 0; i < dh->n_extra; i++)
        if (dh->extra[i].n == n)
            return 0;
    size_t len;
    char *key = node_key(n, &len);
    if (!key)
        return ENOMEM;
    const char *comp = key + dh->dir_len;
    size_t comp_len = len - dh->dir_len;
    if (len <= dh->dir_len || memcmp(key, dh->dir_key, dh->dir_len) ||
        memchr(comp, '/', comp_len) || (dh->l && listing_find(dh->l, comp, comp_len))) {
        free(key);
        return 0;
    }
    char name[NAMES_MAX + 1];
    names_to_display(comp, comp_len, dh->dir_len == g_fs.prefix_len, name);
    free(key);
    if (dh->n_extra == dh->cap_extra) {
        size_t cap = dh->cap_extra ? dh->cap_extra * 2 : 8;
        extra_entry *grown = realloc(dh->extra, cap * sizeof *grown);
        if (!grown)
            return ENOMEM;
        dh->extra = grown;
        dh->cap_extra = cap;
    }
    extra_entry *x = &dh->extra[dh->n_extra];
    if (!(x->name = strdup(name)))
        return ENOMEM;
    x->n = node_get(n->ino);
    dh->n_extra++;
    return 0;
}

/* Adds a file of this directory that is still pending after the listing was read. */
static void collect_pending(node *n, void *arg)
{
    pending_scan *ps = arg;
    if (n->type != NODE_FILE || ps->rc)
        return;
    node_lock(n);
    bool pending = n->pending && !n->unlinked;
    node_unlock(n);
    if (pending)
        ps->rc = add_unlisted_file(ps->dh, n);
}

/* Adds the files that were pending before the listing was read and were stored after its
 * revision: their release stored them while the listing was being read (the kernel sends it
 * after close returned), so the listing may miss a file whose close already succeeded. */
static void collect_stored_meanwhile(pending_scan *ps)
{
    int64_t listed_at = ps->dh->l ? ps->dh->l->revision : 0;
    for (size_t i = 0; i < ps->n_early; i++) {
        node *n = ps->early[i];
        node_lock(n);
        bool show = !n->unlinked && (n->pending || n->mod_rev > listed_at);
        node_unlock(n);
        if (show && !ps->rc && node_indexed(n))
            ps->rc = add_unlisted_file(ps->dh, n);
    }
}

static void pending_scan_done(pending_scan *ps)
{
    for (size_t i = 0; i < ps->n_early; i++)
        node_put(ps->early[i]);
    free(ps->early);
}

static void dir_handle_free(dir_handle *dh)
{
    if (!dh)
        return;
    listing_unref(dh->l);
    for (size_t i = 0; i < dh->n_extra; i++) {
        free(dh->extra[i].name);
        node_put(dh->extra[i].n);
    }
    free(dh->extra);
    free(dh->dir_key);
    free(dh);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_opendir);
    node *n = node_get(ino);
    dir_handle *dh = calloc(1, sizeof *dh);
    int rc = !n ? ENOENT : !dh ? ENOMEM : 0;
    if (rc == 0 && n->type == NODE_STATS_DIR) {
        dh->stats_dir = true;
    } else if (rc == 0 && (n->type == NODE_PAST_AT || n->type == NODE_PAST_DIR)) {
        dh->past = true;
        if (n->type == NODE_PAST_DIR && !(dh->dir_key = node_key(n, &dh->dir_len)))
            rc = ENOMEM;
        if (rc == 0)
            rc = past_listing(n, &dh->l);
    } else if (rc == 0 && n->type != NODE_DIR)
        rc = ENOTDIR;
    else if (rc == 0) {
        dh->dir_key = node_key(n, &dh->dir_len);
        dh->gen = node_listing_gen(n);
        pending_scan ps = {.dh = dh};
        if (node_pending_count() > 0)
            node_for_each(note_early_pending, &ps);
        /* Close-to-open for names: every opendir reads the directory from etcd; in watch
         * mode the watch-coherent listing serves it while it is fresh. */
        rc = !dh->dir_key                  ? ENOMEM
             : ps.rc                       ? ps.rc
             : consistency_watch_trusted() ? listing_get(n, node_is_root(n), &dh->l)
                                           : listing_refresh(n, node_is_root(n), &dh->l);
        if (rc == 0) {
            collect_stored_meanwhile(&ps);
            if (node_pending_count() > 0)
                node_for_each(collect_pending, &ps);
            rc = ps.rc;
        }
        pending_scan_done(&ps);
    }
    if (rc == 0) {
        fi->fh = (uint64_t)(uintptr_t)dh;
        fi->cache_readdir = 0;
        fuse_reply_open(req, fi);
    } else {
        dir_handle_free(dh);
        fuse_reply_err(req, rc);
    }
    log_debug("opendir %lu -> %s", (unsigned long)ino, rc ? strerror(rc) : "ok");
    node_put(n);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dir_handle_free((dir_handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* The idx-th entry of the handle: name, whether it is a directory, and for readdirplus the
 * node it refers to (referenced; NULL for "." and ".."). Returns false past the end. */
static bool entry_at(dir_handle *dh, size_t idx, const char **name, bool *is_dir, node **out,
                     bool want_node)
{
    *out = NULL;
    if (idx < 2) {
        *name = idx == 0 ? "." : "..";
        *is_dir = true;
        return true;
    }
    idx -= 2;
    if (dh->stats_dir) {
        static const char *const files[] = {NAMES_STATS_FILE, NAMES_METRICS_FILE};
        if (idx > 2)
            return false;
        *name = idx < 2 ? files[idx] : PAST_AT_NAME;
        *is_dir = idx == 2;
        if (want_node)
            *out = idx < 2 ? node_obtain(files[idx], strlen(files[idx]), NODE_STATS_FILE)
                           : past_at_dir();
        return true;
    }
    if (dh->past) {
        if (idx < dh->l->n) {
            *name = listing_entry_name(&dh->l->e[idx]);
            *is_dir = dh->l->e[idx].is_dir;
            if (want_node)
                *out = past_entry_node(dh->dir_key, dh->dir_len, &dh->l->e[idx]);
            return true;
        }
        if (idx > dh->l->n || !dh->l->self_present)
            return false;
        *name = NAMES_SELF_VALUE;
        *is_dir = false;
        if (want_node)
            *out = past_self_node(dh->dir_key, dh->dir_len, dh->l);
        return true;
    }
    if (idx < dh->l->n) {
        const listing_entry *e = &dh->l->e[idx];
        *name = listing_entry_name(e);
        *is_dir = e->is_dir;
        if (!want_node)
            return true;
        size_t klen;
        char *key = key_join(dh->dir_key, dh->dir_len, e->comp, e->comp_len, e->is_dir ? "/" : "",
                             e->is_dir ? 1 : 0, &klen);
        if (key && (*out = node_obtain(key, klen, e->is_dir ? NODE_DIR : NODE_FILE))) {
            node_lock(*out);
            listing_give_entry_locked(*out, dh->l, e);
            node_unlock(*out);
        }
        free(key);
        return true;
    }
    idx -= dh->l->n;
    if (idx < dh->n_extra) {
        *name = dh->extra[idx].name;
        *is_dir = false;
        if (want_node)
            *out = node_get(dh->extra[idx].n->ino);
        return true;
    }
    idx -= dh->n_extra;
    if (idx == 0 && dh->l->self_present) {
        *name = NAMES_SELF_VALUE;
        *is_dir = false;
        if (want_node && dh->dir_len > 0 &&
            (*out = node_obtain(dh->dir_key, dh->dir_len - 1, NODE_FILE))) {
            node_lock(*out);
            node_apply_kv_locked(*out, &dh->l->self, dh->l->revision, dh->l->fetched_ns);
            node_unlock(*out);
        }
        return true;
    }
    return false;
}

/* Whether the handle's listing still shows the directory as it is: no name in it was created
 * or removed (here, or by an applied watch event) since the listing was read. */
static bool handle_current(fuse_ino_t ino, const dir_handle *dh)
{
    if (dh->stats_dir || dh->past)
        return true; /* the past does not change */
    node *dir = node_get(ino);
    bool current = dir && node_listing_gen(dir) == dh->gen;
    node_put(dir);
    return current;
}

/* What a directory entry without a node says: a stable inode number and the type. */
static void name_only_attr(const char *name, bool is_dir, struct stat *st)
{
    st->st_ino = (ino_t)(names_hash(name, strlen(name)) | 1);
    st->st_mode = is_dir ? S_IFDIR : S_IFREG;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, bool plus)
{
    dir_handle *dh = (dir_handle *)(uintptr_t)fi->fh;
    /* Entries of an outdated listing are names only: an entry with attributes gives the
     * kernel a name and an inode, and one for a name removed since would stand for a key
     * that is gone (a later open would serve the removed value, a mkdir say EEXIST). The
     * kernel looks such names up when they are used. */
    bool with_nodes = plus && handle_current(ino, dh);
    char *buf = malloc(size);
    log_debug("readdir%s at %lld", plus ? "plus" : "", (long long)off);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t pos = 0;
    const char *name;
    bool is_dir;
    node *n;
    for (size_t i = (size_t)off; entry_at(dh, i, &name, &is_dir, &n, with_nodes); i++) {
        if (plus) {
            size_t need = fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0);
            if (pos + need > size) {
                node_put(n);
                break;
            }
            struct fuse_entry_param e = {0};
            if (n) {
                entry_for(n, &e); /* the kernel takes a reference for every entry but . and .. */
            } else if (i >= 2) {
                name_only_attr(name, is_dir, &e.attr); /* e.ino 0: the kernel makes no entry */
            } else {
                e.attr.st_ino = FUSE_ROOT_ID;
                e.attr.st_mode = S_IFDIR;
            }
            pos += fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, (off_t)i + 1);
            node_put(n);
        } else {
            struct stat st = {0};
            name_only_attr(name, is_dir, &st);
            size_t need = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)i + 1);
            if (pos + need > size)
                break;
            pos += need;
        }
    }
    fuse_reply_buf(req, buf, pos);
    free(buf);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_readdir);
    do_readdir(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_readdirplus);
    do_readdir(req, ino, size, off, fi, true);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    stats_inc(STAT_OP_mkdir);
    resolved r = {0};
    node *n = NULL;
    node *dir = node_get(parent);
    int rc = g_fs.opts->ro || (dir && past_node(dir)) ? EROFS
             : !dir                                   ? ENOENT
             : dir->type != NODE_DIR                  ? EACCES
                                                      : 0;
    commit cm; /* names resolved inside: they cannot move until the result is in the table */
    commit_begin(&cm);
    int64_t rev = 0;
    if (rc == 0)
        rc = resolve_name(dir, name, &r);
    if (rc == 0 && r.kind != NAMES_PLAIN && r.kind != NAMES_ESCAPED)
        rc = EEXIST; /* %value, .etcdfs and shortened names only name existing things */
    attrs rec;
    bool with_rec = rc == 0 && attrs_for_new_entry(dir, S_IFDIR | (mode & 07777), req, &rec);
    etcdc_txn *t = NULL;
    size_t end_len = 0;
    char *end = NULL;
    if (rc == 0) {
        /* If(no key "name", nothing below "name/") Then(Put "name/" marker). */
        etcdc_txn_result res = {0};
        etcdc_error err = {0};
        t = etcdc_txn_new();
        end = key_prefix_end(r.sub_key, r.sub_len, &end_len);
        if (!end)
            etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
        etcdc_txn_if(t, r.file_key, r.file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
        etcdc_txn_if_range(t, r.sub_key, r.sub_len, end, end_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
        etcdc_txn_put(t, ETCDC_THEN, r.sub_key, r.sub_len, "", 0, 0);
        /* its attribute record hangs on the marker, created with it (anchor 0); a record
         * left by an earlier directory of the name goes */
        if (with_rec)
            txn_put_record(t, ETCDC_THEN, r.sub_key, r.sub_len, &rec);
        else if (attrs_writable())
            txn_delete_record(t, ETCDC_THEN, r.sub_key, r.sub_len, ATTRS_DIR);
        etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
        rc = code != ETCDC_OK ? fs_fail("mkdir", r.sub_key, r.sub_len, code, &err)
             : res.succeeded  ? 0
                              : EEXIST;
        rev = rc == 0 ? res.revision : 0;
        etcdc_txn_result_clear(&res);
    }
    if (rc == 0) {
        witness_note(r.sub_key, r.sub_len); /* its marker proves it exists to later creates */
        node_listing_name_changed(dir, r.comp, r.comp_len);
        if (!(n = node_obtain(r.sub_key, r.sub_len, NODE_DIR))) {
            rc = ENOMEM;
        } else {
            node_listing_set_empty(n, rev); /* etcd checked: nothing below it but the marker */
            node_lock(n);
            n->create_rev = rev;
            node_set_record_locked(n, with_rec ? &rec : NULL, rev);
            node_unlock(n);
        }
    }
    commit_end(&cm, rev);
    if (rc == 0) {
        struct fuse_entry_param e;
        entry_for(n, &e);
        fuse_reply_entry(req, &e);
    } else {
        fuse_reply_err(req, rc);
    }
    log_debug("mkdir %lu '%s' -> %s", (unsigned long)parent, name, rc ? strerror(rc) : "ok");
    etcdc_txn_free(t);
    free(end);
    node_put(n);
    node_put(dir);
    resolved_free(&r);
}

/* What rmdir's attempts share: the directory, its range, and the marker's revision as last
 * read (the listing's, then each failed attempt's). */
typedef struct rmdir_try {
    const resolved *r;
    const char *end;
    size_t end_len;
    const char *after; /* the marker key + "\0": the first key after the marker */
    size_t after_len;
    int64_t marker_mod;
    const char *witness; /* a key proving the parent stays (keep_parent_witness), or NULL */
    size_t witness_len;
    int64_t rev;      /* of the delete, once committed */
    bool marker_put;  /* the delete wrote the parent's marker (it left the parent empty) */
    int64_t swept_at; /* > 0: at this revision nothing but records of former entries (left by
                       * another client's delete) lay below the marker: they go too */
} rmdir_try;

/* Whether everything below the directory r (but its marker) is attribute records: orphans, as
 * no entry they could describe is there (docs/design-attributes.md). One keys-only read; *at:
 * its revision. False when anything else is there, or on failure (the caller answers
 * ENOTEMPTY). */
static bool only_records_below(const rmdir_try *x, int64_t *at)
{
    const resolved *r = x->r;
    etcdc_range_req req = {.key = x->after,
                           .key_len = x->after_len,
                           .range_end = x->end,
                           .range_end_len = x->end_len,
                           .limit = 1024,
                           .keys_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    bool only = etcdc_range(g_fs.client, &req, &kvs, &err) == ETCDC_OK && !kvs.more;
    for (size_t i = 0; only && i < kvs.count; i++) {
        const etcdc_kv *kv = &kvs.kvs[i];
        size_t name_len, at_comp = names_last_component(kv->key, kv->key_len, r->sub_len);
        only = attrs_key_kind(kv->key + at_comp, kv->key_len - at_comp, &name_len) != ATTRS_NONE;
    }
    *at = kvs.revision;
    etcdc_kvs_clear(&kvs);
    return only;
}

static int rmdir_attempt(void *arg)
{
    rmdir_try *x = arg;
    const resolved *r = x->r;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    etcdc_range_req below = {.key = r->sub_key,
                             .key_len = r->sub_len,
                             .range_end = x->end,
                             .range_end_len = x->end_len,
                             .limit = 2};
    etcdc_range_req self = {.key = r->file_key, .key_len = r->file_len, .keys_only = true};
    if (x->swept_at) /* nothing created or changed below since the read that saw only records */
        etcdc_txn_if_range(t, x->after, x->after_len, x->end, x->end_len, ETCDC_CMP_MOD, ETCDC_LESS,
                           x->swept_at + 1);
    else
        etcdc_txn_if_range(t, x->after, x->after_len, x->end, x->end_len, ETCDC_CMP_CREATE,
                           ETCDC_EQUAL, 0);
    etcdc_txn_if(t, r->sub_key, r->sub_len, ETCDC_CMP_MOD, ETCDC_EQUAL, x->marker_mod);
    etcdc_txn_if(t, r->file_key, r->file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    etcdc_txn_delete(t, ETCDC_THEN, r->sub_key, r->sub_len, x->end, x->end_len, false);
    txn_delete_record(t, ETCDC_THEN, r->sub_key, r->sub_len, ATTRS_DIR);
    bool keeps = txn_keep_parent(t, r, true, x->witness, x->witness_len);
    etcdc_txn_get(t, ETCDC_ELSE, &below);
    etcdc_txn_get(t, ETCDC_ELSE, &self);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc;
    if (code != ETCDC_OK) {
        rc = fs_fail("rmdir", r->sub_key, r->sub_len, code, &err);
    } else if (res.succeeded) {
        x->rev = res.revision;
        x->marker_put = keeps && keep_parent_settle(&res, x->witness, x->witness_len);
        rc = 0;
    } else if (res.op_count >= 2) {
        const etcdc_kvs *b = &res.ops[0].kvs;
        bool marker_first = b->count > 0 && b->kvs[0].key_len == r->sub_len;
        bool only_marker = b->count == 1 && marker_first && b->kvs[0].value_len == 0;
        int64_t swept_at = 0;
        if (res.ops[1].kvs.count > 0 || (marker_first && b->kvs[0].value_len > 0))
            rc = ENOTEMPTY; /* "%value", or a marker holding data ("%") */
        else if (b->count > 0 && !only_marker)
            rc = only_records_below(x, &swept_at) ? OPTIMISTIC_RETRY : ENOTEMPTY;
        else if (b->count == 0)
            rc = ENOENT;
        else
            rc = OPTIMISTIC_RETRY; /* only the marker changed (or was created) meanwhile */
        if (swept_at)
            x->swept_at = swept_at;
        x->marker_mod = marker_first ? b->kvs[0].mod_revision : 0;
    } else {
        rc = EIO;
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    return rc;
}

/* rmdir: one Txn. If(nothing below but the marker, marker unchanged, no own value)
 * Then(delete the subtree, Txn(If(the parent holds nothing else) Then(put its marker)))
 * Else(read what is there). A failed compare caused by a stale cache is retried with what the Else
 * branch read. */
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    stats_inc(STAT_OP_rmdir);
    resolved r = {0};
    node *dir = node_get(parent);
    node *child = NULL;
    int rc = g_fs.opts->ro || (dir && past_node(dir)) ? EROFS
             : !dir                                   ? ENOENT
             : dir->type != NODE_DIR                  ? ENOTDIR
                                                      : 0;
    commit cm; /* names resolved inside: they cannot move until the result is in the table */
    commit_begin(&cm);
    int64_t rev = 0;
    if (rc == 0)
        rc = resolve_name(dir, name, &r);
    if (rc == 0 && r.kind == NAMES_SELF)
        rc = ENOTDIR;
    if (rc == 0 && r.kind == NAMES_STATS)
        rc = EBUSY;
    if (rc == 0 && node_pending_below(r.sub_key, r.sub_len))
        rc = ENOTEMPTY; /* a file created here, not yet stored */
    size_t end_len = 0, after_len = 0;
    char *end = NULL, *after = NULL;
    if (rc == 0) {
        end = key_prefix_end(r.sub_key, r.sub_len, &end_len);
        after = key_join(r.sub_key, r.sub_len, "", 1, NULL, 0, &after_len); /* marker + "\0" */
        if (!end || !after)
            rc = ENOMEM;
    }
    int64_t marker_mod = 0;
    if (rc == 0 && (child = node_find(r.sub_key, r.sub_len, NODE_DIR)))
        marker_mod = node_marker_guess(child);
    size_t wlen = 0;
    char *witness = rc == 0 && !r.at_root ? keep_parent_witness(dir, &r, &wlen) : NULL;
    rmdir_try x = {.r = &r,
                   .end = end,
                   .end_len = end_len,
                   .after = after,
                   .after_len = after_len,
                   .marker_mod = marker_mod,
                   .witness = witness,
                   .witness_len = wlen};
    if (rc == 0)
        rc = optimistic_run(rmdir_attempt, &x);
    free(witness);
    rev = x.rev;
    if (rc == 0) {
        node_drop_listing(dir);
        if (x.marker_put)
            node_note_marker_put(dir, rev);
        if (child) {
            node_drop_listing(child);
            node_unindex(child);
        }
    }
    commit_end(&cm, rev);
    fuse_reply_err(req, rc);
    log_debug("rmdir %lu '%s' -> %s", (unsigned long)parent, name, rc ? strerror(rc) : "ok");
    free(end);
    free(after);
    node_put(child);
    node_put(dir);
    resolved_free(&r);
}

/* Deletes r's key and its attribute record in one Txn (docs/design-attributes.md). With
 * keep_dir the directory never vanishes with its last file: txn_keep_parent writes its marker
 * when nothing else is left ("%", the marker holding data, is emptied instead), proved by one
 * witness key when the directory has one. Returns 0, ENOENT (no such key) or an errno; *rev is
 * the revision written. */
static int unlink_txn(node *dir, const resolved *r, bool keep_dir, int64_t *rev)
{
    etcdc_error err = {0};
    *rev = 0;
    if (r->file_len == r->dir_len) {
        etcdc_code code = etcdc_put(g_fs.client, r->file_key, r->file_len, "", 0, rev, &err);
        return code ? fs_fail("unlink", r->file_key, r->file_len, code, &err) : 0;
    }
    size_t wlen = 0;
    char *w = keep_dir ? keep_parent_witness(dir, r, &wlen) : NULL;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_result res = {0};
    etcdc_txn_delete(t, ETCDC_THEN, r->file_key, r->file_len, NULL, 0, false);
    txn_delete_record(t, ETCDC_THEN, r->file_key, r->file_len, ATTRS_FILE);
    bool keeps = keep_dir && txn_keep_parent(t, r, false, w, wlen);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc = 0;
    if (code != ETCDC_OK)
        rc = fs_fail("unlink", r->file_key, r->file_len, code, &err);
    else if (res.op_count < 1 || res.ops[0].deleted == 0)
        rc = ENOENT;
    bool marker_put = code == ETCDC_OK && keeps && keep_parent_settle(&res, w, wlen);
    if (rc == 0 && marker_put)
        node_note_marker_put(dir, res.revision);
    *rev = rc == 0 ? res.revision : 0;
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    free(w);
    return rc;
}

/* unlink: the key goes (unlink_txn) and the node with it, in one commit section under the
 * node's lock, so that no write-back of an open descriptor can land after the delete. */
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    stats_inc(STAT_OP_unlink);
    resolved r = {0};
    node *dir = node_get(parent);
    int rc = g_fs.opts->ro || (dir && past_node(dir)) ? EROFS
             : !dir                                   ? ENOENT
             : dir->type != NODE_DIR                  ? ENOTDIR
                                                      : EAGAIN;
    for (int attempt = 0; rc == EAGAIN && attempt < RESOLVE_ATTEMPTS; attempt++) {
        resolved_free(&r);
        rc = resolve_name(dir, name, &r);
        if (rc == 0 && r.kind == NAMES_STATS)
            rc = EPERM;
        if (rc == EINVAL)
            rc = ENOENT;
        if (rc)
            break;
        node *n = node_find(r.file_key, r.file_len, NODE_FILE);
        if (n)
            node_lock(n);
        commit cm;
        commit_begin(&cm);
        int64_t rev = 0;
        bool keep_dir = !(r.kind != NAMES_SELF && node_is_root(dir));
        rc = resolved_current(dir, &r) ? unlink_txn(dir, &r, keep_dir, &rev) : EAGAIN;
        /* A file created here and not yet written may also be a key in etcd (the cache's
         * "absent" can be old): the delete is always sent; its absence is no error then. */
        if (rc == ENOENT && n && n->pending)
            rc = 0;
        if (rc == 0 || rc == ENOENT) {
            witness_forget(r.file_key, r.file_len);
            if (n) {
                if (n->pending)
                    node_pending_add(-1);
                n->unlinked = true;
                n->dirty = n->pending = false;
                node_unindex(n);
            }
            /* before commit_end: the watch sees the name changed before its event */
            if (r.kind != NAMES_SELF && r.file_len != r.dir_len)
                node_listing_name_changed(dir, r.comp, r.comp_len);
            else
                node_drop_listing(dir);
        }
        commit_end(&cm, rev);
        if (n)
            node_unlock(n);
        node_put(n);
    }
    rc = rc == EAGAIN ? ESTALE : rc;
    fuse_reply_err(req, rc);
    log_debug("unlink %lu '%s' -> %s", (unsigned long)parent, name, rc ? strerror(rc) : "ok");
    node_put(dir);
    resolved_free(&r);
}
