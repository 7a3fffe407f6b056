/*
 * ops_file.c - file contents: open, create, mknod, read, write, flush, fsync, release, and the
 * virtual statistics file.
 *
 * Writes are buffered per node (shared by every open handle of the file on this host) and sent
 * as one Put at flush, fsync or release: `echo x > f` is one etcd write. open() revalidates the
 * cached content with one read-only Txn that transfers the value only when it changed
 * (close-to-open consistency).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attrs_store.h"
#include "cache.h"
#include "commit.h"
#include "file_sync.h"
#include "key_guards.h"
#include "log.h"
#include "notify.h"
#include "open_files.h"
#include "open_retry.h"
#include "ops.h"
#include "ops_lock.h"
#include "ops_poll.h"
#include "past.h"
#include "read_view.h"
#include "resolve.h"
#include "stats.h"
#include "witness.h"

/* An open by thread pid is about to answer ESTALE for n: true if it is the kernel's retry of
 * that thread's open of n's key that answered ESTALE (open_retry.h), whose path walk asked for
 * every name again; else the key is noted, so that the retry is known. */
static bool kernel_retry(node *n, pid_t pid)
{
    size_t len;
    char *key = node_key(n, &len);
    bool retry = key && open_retry_is_retry(key, len, pid);
    free(key);
    return retry;
}

/* The answer to an open whose key was deleted since the kernel looked the name up: ESTALE, so
 * the kernel looks it up again and retries (open_retry.h); ENOENT to that retry. */
static int deleted_key_answer(node *n, pid_t pid)
{
    return kernel_retry(n, pid) ? ENOENT : ESTALE;
}

/* The statistics file: a snapshot taken at open, read with direct I/O. */
typedef struct stats_snapshot {
    char *text;
    size_t len;
} stats_snapshot;

/* .etcdfs/stats (the text view) or .etcdfs/metrics (the same in Prometheus's format). */
static void open_stats(fuse_req_t req, node *n, struct fuse_file_info *fi)
{
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EACCES);
        return;
    }
    size_t key_len;
    char *key = node_key(n, &key_len);
    bool prometheus = key && !strcmp(key, NAMES_METRICS_FILE);
    free(key);
    stats_snapshot *s = calloc(1, sizeof *s);
    if (s)
        s->text = prometheus ? stats_format_prometheus(g_fs.client, &s->len)
                             : stats_format(g_fs.client, &s->len);
    if (!s || !s->text) {
        free(s);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)s;
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

/* An open of a node that is not being truncated: makes sure it reflects etcd as the mode
 * promises (local changes, the watch, or one revalidation, which takes a value_unread node's
 * value from `listed` when that still matches). Caller holds n->mu. */
static int open_current_locked(node *n, const listed_value *listed, bool *changed, pid_t pid)
{
    if (n->pending || n->dirty) {
        stats_inc(STAT_cache_open_hit); /* local changes are the newest content */
        return 0;
    }
    if (consistency_watch_trusted() && node_value_held_locked(n) && n->validated_ns > 0) {
        /* watch mode: the watch keeps it current, a deletion included (the kernel may still
         * hold the name: see the ESTALE in op_open) */
        if (n->mod_rev == 0)
            return deleted_key_answer(n, pid);
        stats_inc(STAT_cache_open_hit);
        return 0;
    }
    file_take_listed_locked(n, listed); /* then confirmed like any cached value */
    int rc = file_revalidate_locked(n, changed);
    if (rc == 0 && !*changed)
        stats_inc(STAT_cache_open_hit);
    /* The kernel's name outlived the key (deleted elsewhere): ESTALE makes it look the name
     * up again and retry once, so open(O_CREAT) creates the file and a plain open fails with
     * ENOENT from that lookup, as on a local filesystem; the retry itself, if the key is gone
     * again, gets ENOENT (open_retry.h). */
    return rc == ENOENT ? deleted_key_answer(n, pid) : rc;
}

/* The node now at key, other than n and not itself replaced, with its lock held; or NULL. The
 * node found may be replaced in turn before its lock is taken (a rename holds that lock while
 * it moves another node there): then the node that replaced it is looked up. */
static node *lock_successor(node *n, const char *key, size_t len)
{
    for (int i = 0; i < RESOLVE_ATTEMPTS; i++) {
        node *s = node_find(key, len, NODE_FILE);
        if (!s || s == n) {
            node_put(s);
            return NULL;
        }
        node_lock(s);
        if (!s->unlinked)
            return s;
        node_unlock(s);
        node_put(s);
    }
    return NULL;
}

/* A read-only open reached a node this mount removed or replaced (the kernel's lookup raced
 * the unlink or rename). When the name now leads to another node of this mount (a rename put
 * it there, or a create), the open reads that node, as a local open would have found it: no
 * ESTALE, which a second rename within the kernel's single retry would pass on to the
 * application. Returns that node (a reference, for open_file.source) with *view taken from it
 * and *rc 0; or NULL, with *rc the successor's answer (ESTALE, or ENOENT on the kernel's
 * retry) or left as it was when there is none. */
static node *view_successor(node *n, read_view *view, int *rc, pid_t pid)
{
    size_t len;
    char *key = node_key(n, &len);
    node *s = key ? lock_successor(n, key, len) : NULL;
    free(key);
    if (!s)
        return NULL;
    bool changed = false;
    int got = open_current_locked(s, NULL, &changed, pid);
    if (got == 0)
        got = read_view_take_locked(view, s);
    node_unlock(s);
    *rc = got; /* e.g. ENOENT: the kernel's retry found the key deleted (open_retry.h) */
    if (got) {
        read_view_clear(view);
        node_put(s);
        return NULL;
    }
    return s;
}

/* A file of a past revision: read-only, and its pages stay valid (nothing there changes). */
static void open_past(fuse_req_t req, node *n, struct fuse_file_info *fi)
{
    int rc = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) ? EROFS : past_open(n);
    if (rc) {
        fuse_reply_err(req, rc);
        return;
    }
    fi->fh = 0;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void read_past(fuse_req_t req, node *n, size_t size, off_t off)
{
    node_lock(n);
    size_t from = (size_t)off < n->size ? (size_t)off : n->size;
    size_t count = n->size - from < size ? n->size - from : size;
    fuse_reply_buf(req, count ? node_data(n) + from : NULL, count);
    node_unlock(n);
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_open);
    pid_t pid = fuse_req_ctx(req)->pid; /* the thread whose open the kernel may retry */
    node *n = node_get(ino);
    int rc = n ? 0 : ENOENT;
    bool changed = false;
    if (rc == 0 && n->type == NODE_STATS_FILE) {
        open_stats(req, n, fi);
        node_put(n);
        return;
    }
    if (rc == 0 && n->type == NODE_PAST_FILE) {
        open_past(req, n, fi);
        node_put(n);
        return;
    }
    if (rc == 0 && n->type != NODE_FILE)
        rc = EISDIR;
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    /* O_TRUNC truncates even with O_RDONLY, as on Linux's local filesystems (the kernel asked
     * for write permission already). */
    bool truncating = fi->flags & O_TRUNC;
    if (rc == 0 && (writing || truncating) && g_fs.opts->ro)
        rc = EROFS;
    /* A read-only open reads the version it opened, whole (read_view.h). */
    bool viewing = !writing && !truncating && !g_fs.opts->page_cache_reads;
    read_view view = {0};
    node *source = NULL;
    int64_t base = 0;
    listed_value listed = {0};
    if (rc == 0 && !truncating)
        file_listed_value(n, &listed);
    if (rc == 0) {
        node_lock(n);
        /* Renamed on another host, and that rename replayed here (notify_replay.h) while this
         * open's path walk may have found the old name (the walk takes no directory lock):
         * the first open after it answers ESTALE, so that the kernel looks the name up again
         * and finds the node under its new name, or nothing under the old one. Else an open
         * of the old name, begun after the rename was stored, would read the moved file. Not
         * so for the kernel's retry of an open of its new key: that walk asked for each name. */
        bool stale_name = n->renamed_elsewhere && !kernel_retry(n, pid);
        n->renamed_elsewhere = false;
        if (stale_name) {
            rc = ESTALE;
        } else if (n->unlinked || !node_indexed(n)) {
            /* Removed or replaced through this mount: a kernel name that still leads here is
             * one a revalidation raced with the unlink or rename (FUSE revalidates names
             * without the directory's lock). ESTALE makes the kernel look the name up again:
             * O_CREAT then creates a new file instead of writing into the removed one, and no
             * open serves a value that this mount replaced under that name. */
            rc = ESTALE; /* a writer's retry too: the key may well exist, as another node */
            if (viewing) {
                node_unlock(n);
                source = view_successor(n, &view, &rc, pid);
                node_lock(n);
            }
            /* kernel_retry also remembers this ESTALE, a writer's included, for the retry. A
             * reader gets ENOENT instead when this is its retry finding the name removed here
             * again, with no node after it (a create and an unlink on this mount in between),
             * or when view_successor just found the node after it deleted (and noted that
             * ESTALE itself): the name is gone either way, and a second ESTALE would reach the
             * reader. */
            if (rc == ESTALE && kernel_retry(n, pid) && viewing)
                rc = ENOENT;
        } else if (truncating) {
            /* Atomic O_TRUNC: the old content is not needed, no round trip; except that
             * --conflict-check must know which revision the truncation replaces. */
            if (g_fs.opts->conflict_check && !n->known && !n->pending && !n->dirty) {
                rc = file_revalidate_locked(n, &changed);
                rc = rc == ENOENT ? 0 : rc; /* gone: created again, if still absent */
            }
            size_t replaced = n->known && !n->value_unread && !n->written ? n->size : 0;
            if (rc == 0)
                rc = node_resize_locked(n, 0);
            if (rc == 0) {
                n->fpart->trunc_len = replaced; /* node_resize_locked gave it its part */
                open_file_note_change_base_locked(n, NULL);
                n->dirty = true;
                n->known = true;
                changed = true;
                node_touch_mtime(n);
            }
        } else {
            rc = open_current_locked(n, &listed, &changed, pid);
        }
        /* Unchanged in etcd since the cache was filled, but the cache may have been filled
         * (by the watch or a listing) after the kernel last learned size and content: then
         * the kernel's i_size and pages are stale (a size 0 from an earlier lookup would make
         * read return nothing) and must be dropped too. */
        file_part *p = rc == 0 ? node_file_part_locked(n) : NULL;
        if (rc == 0 && !p)
            rc = ENOMEM;
        if (rc == 0 && !changed && !n->pending && !n->dirty && n->mod_rev != p->kernel_rev)
            changed = true;
        if (rc == 0 && viewing && !source)
            rc = read_view_take_locked(&view, n);
        if (rc == 0) {
            p->kernel_rev = n->mod_rev;
            p->used_ns = now_ns();
            p->open_count++;
            base = open_file_base_locked(n);
        }
        node_unlock(n);
    }
    listed_value_clear(&listed);
    open_file *fh = rc == 0 ? open_file_new(ino, base) : NULL;
    if (fh) {
        fh->truncated = fh->changed = truncating;
        fh->view = view;
        fh->source = source;
    } else {
        read_view_clear(&view);
        node_put(source);
    }
    if (rc == 0 && !fh) {
        node_lock(n);
        n->fpart->open_count--; /* counted at the open: it has its part */
        node_unlock(n);
        rc = ENOMEM;
    }
    if (rc == 0) {
        fi->fh = (uint64_t)(uintptr_t)fh;
        /* strict: every open starts without the kernel's pages (mmap still works, which
         * direct_io would forbid); reads within one open share what it read */
        fi->keep_cache = !changed && !consistency_strict();
        /* a view is read whole: the kernel must not cut its reads at an inode size another
         * version set meanwhile (costs shared mappings of read-only descriptors: ENODEV;
         * private ones, as exec and most readers use, work) */
        fi->direct_io = viewing;
        /* The kernel may still hold the old size: invalidate its attributes (offset -1 touches
         * no page and takes no inode lock, so this is safe inside open). */
        if (changed)
            fuse_lowlevel_notify_inval_inode(g_fs.se, ino, -1, 0);
        fuse_reply_open(req, fi);
    } else {
        fuse_reply_err(req, rc);
    }
    log_debug("open %lu flags 0x%x -> %s%s", (unsigned long)ino, fi->flags,
              rc ? strerror(rc) : "ok", changed ? " (changed)" : "");
    node_put(n);
    cache_trim(); /* the value read may have passed --cache-size */
}

/* What a create puts: the value (a symbolic link's target; "" for others), the attribute record
 * when the entry needs one (attrs_store.h), and whether an existing key is an error. */
typedef struct new_file {
    const char *value;
    size_t value_len;
    const attrs *rec;
    bool exclusive;
} new_file;

/* Creates the empty file r names unless something is there, decided by etcd in one Txn:
 * If(no key, the parent exists, nothing below name/) Then(Put key "") Else(read the parent's
 * probe, the key and name/). The parent is proved by its witness (witness.h) when this mount
 * knows one, else by a compare over its whole range (which makes etcd read every key in the
 * directory). Returns 0 with *rev set when it created the key. Without exclusive, a key that
 * exists is no error: 0 with *rev 0, its value in *found (etcdc_kv_clear it) as of store
 * revision *found_as_of. EEXIST: exclusive and the key exists, or a directory of that name
 * exists (EISDIR without exclusive); ENOENT: the parent directory is gone. */
static int create_guarded_txn(const resolved *r, const new_file *nf, bool *use_witness,
                              int64_t *rev, etcdc_kv *found, int64_t *found_as_of);

static int create_guarded(const resolved *r, const new_file *nf, int64_t *rev, etcdc_kv *found,
                          int64_t *found_as_of)
{
    bool witnessed = true;
    int rc = create_guarded_txn(r, nf, &witnessed, rev, found, found_as_of);
    if (rc == ENOENT && witnessed) {
        /* the witness was deleted; the directory may live on: ask over its whole range */
        witness_forget_dir(r->file_key, r->file_len);
        witnessed = false;
        rc = create_guarded_txn(r, nf, &witnessed, rev, found, found_as_of);
    }
    if (rc == 0 && *rev > 0)
        witness_note(r->file_key, r->file_len);
    return rc;
}

/* create_guarded's Txn; *use_witness as in put_content_txn. */
static int create_guarded_txn(const resolved *r, const new_file *nf, bool *use_witness,
                              int64_t *rev, etcdc_kv *found, int64_t *found_as_of)
{
    bool exclusive = nf->exclusive;
    etcdc_txn *t = etcdc_txn_new();
    size_t end_len = 0;
    char *end = r->sub_key ? key_prefix_end(r->sub_key, r->sub_len, &end_len) : NULL;
    bool guard = r->dir_len > g_fs.prefix_len; /* the mount root always exists */
    size_t wlen = 0, pend_len = 0;
    char *w = guard && *use_witness ? witness_get(r->dir_key, r->dir_len, &wlen) : NULL;
    char *pend = guard && !w ? key_prefix_end(r->dir_key, r->dir_len, &pend_len) : NULL;
    *use_witness = w != NULL;
    etcdc_range_req parent = {.key = w ? w : r->dir_key,
                              .key_len = w ? wlen : r->dir_len,
                              .range_end = pend,
                              .range_end_len = pend_len,
                              .limit = 1,
                              .keys_only = true};
    etcdc_range_req key = {.key = r->file_key, .key_len = r->file_len};
    etcdc_range_req below = {.key = r->sub_key,
                             .key_len = r->sub_len,
                             .range_end = end,
                             .range_end_len = end_len,
                             .limit = 1,
                             .keys_only = true};
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    if (!((w || pend || !guard) && (end || !r->sub_key)))
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    etcdc_txn_if(t, r->file_key, r->file_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    if (w)
        etcdc_txn_if(t, w, wlen, ETCDC_CMP_CREATE, ETCDC_GREATER, 0);
    else if (guard && pend)
        etcdc_txn_if_range(t, r->dir_key, r->dir_len, pend, pend_len, ETCDC_CMP_CREATE,
                           ETCDC_GREATER, 0);
    if (end)
        etcdc_txn_if_range(t, r->sub_key, r->sub_len, end, end_len, ETCDC_CMP_CREATE, ETCDC_EQUAL,
                           0);
    etcdc_txn_put(t, ETCDC_THEN, r->file_key, r->file_len, nf->value, nf->value_len, 0);
    if (nf->rec) /* created together: anchor 0, the record's own revision */
        txn_put_record(t, ETCDC_THEN, r->file_key, r->file_len, nf->rec);
    else if (attrs_writable()) /* one an earlier file of the name left */
        txn_delete_record(t, ETCDC_THEN, r->file_key, r->file_len, ATTRS_FILE);
    /* Else: [parent probe], the key, [the probe below name/], in that order */
    if (guard)
        etcdc_txn_get(t, ETCDC_ELSE, &parent);
    etcdc_txn_get(t, ETCDC_ELSE, &key);
    if (end)
        etcdc_txn_get(t, ETCDC_ELSE, &below);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc = code == ETCDC_OK ? 0 : fs_fail("create", r->file_key, r->file_len, code, &err);
    *rev = 0;
    size_t at = guard ? 1 : 0, want = at + 1 + (end ? 1 : 0);
    if (rc == 0 && res.succeeded) {
        *rev = res.revision;
    } else if (rc == 0 && res.op_count != want) {
        rc = EIO;
    } else if (rc == 0 && res.ops[at].kvs.count > 0) {
        if (exclusive) {
            rc = EEXIST;
        } else {
            /* There already: open what etcd holds (the create changes nothing). */
            *found = res.ops[at].kvs.kvs[0];
            memset(&res.ops[at].kvs.kvs[0], 0, sizeof res.ops[at].kvs.kvs[0]);
            *found_as_of = res.revision;
        }
    } else if (rc == 0 && end && res.ops[at + 1].kvs.count > 0) {
        rc = exclusive ? EEXIST : EISDIR; /* a directory of that name */
    } else if (rc == 0 && guard && res.ops[0].kvs.count == 0) {
        rc = ENOENT; /* nothing lies below the parent any more (or its witness is gone) */
    } else if (rc == 0) {
        rc = EIO; /* the guard failed, yet every probe says it held */
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    free(end);
    free(pend);
    free(w);
    return rc;
}

static int check_new_name(node *dir, const char *name, resolved *r)
{
    if (g_fs.opts->ro || (dir && past_node(dir)))
        return EROFS;
    if (!dir || dir->type != NODE_DIR)
        return dir ? EACCES : ENOENT;
    int rc = resolve_name(dir, name, r);
    if (rc == 0 && r->kind == NAMES_STATS)
        rc = EEXIST;
    if (rc == 0 && r->kind == NAMES_HASHED)
        rc = EEXIST; /* a shortened name only ever names an existing key */
    return rc;
}

/* The file is truncated here; it reaches etcd (created, if it was not there) with its content
 * in one write at flush/release: O_TRUNC replaces whatever etcd holds then (caller holds
 * n->mu). */
static int truncate_locally_locked(node *n)
{
    if (!n->pending && (!n->known || n->mod_rev == 0)) {
        n->pending = true;
        node_pending_add(1);
        n->mod_rev = 0; /* based on "no key" */
    }
    open_file_note_change_base_locked(n, NULL);
    n->dirty = true;
    n->known = true;
    return node_resize_locked(n, 0);
}

/* The node holds what etcd holds after a create-if-absent (caller holds n->mu). */
static int take_created_locked(node *n, int64_t rev, const new_file *nf, const etcdc_kv *found,
                               int64_t found_as_of)
{
    if (rev == 0) {
        node_apply_kv_locked(n, found, found_as_of, now_ns());
        return 0;
    }
    if (n->pending)
        node_pending_add(-1);
    n->pending = n->dirty = n->written = n->has_base = false;
    int rc = node_set_data_locked(n, nf->value, nf->value_len);
    n->create_rev = rev;
    node_committed_locked(n, rev);
    n->local_content = true;
    if (n->rec)
        n->rec->local = false;
    node_set_record_locked(n, nf->rec, rev);
    return rc;
}

/* O_CREAT: a name this mount has no local changes for is created in etcd at once, with a
 * create-if-absent guard (never decided by the cache, so a value that appeared meanwhile is
 * opened, not overwritten); O_TRUNC defers the creation to the write-back, which replaces
 * whatever is there (docs/design-node-table.md). Caller holds n->mu. */
static int create_locked(node *n, node *dir, const resolved *r, int flags, const new_file *nf,
                         bool *created)
{
    *created = false;
    bool local = n->pending || n->dirty;
    if ((flags & O_EXCL) && local)
        return EEXIST; /* exists here, not yet in etcd */
    if (!(flags & O_EXCL) && (local || (flags & O_TRUNC))) {
        if (!(flags & O_TRUNC))
            return 0;
        bool creating = !local && (!n->known || n->mod_rev == 0);
        int rc = truncate_locally_locked(n);
        if (rc == 0 && creating && nf->rec) /* written with the content */
            rc = node_set_local_record_locked(n, nf->rec);
        return rc;
    }
    int64_t rev = 0, found_as_of = 0;
    etcdc_kv found = {0};
    commit cm;
    commit_begin(&cm);
    if (!resolved_current(dir, r)) {
        commit_end(&cm, 0);
        return EAGAIN; /* a directory above moved since the name was resolved */
    }
    new_file how = *nf;
    how.exclusive = flags & O_EXCL;
    int rc = create_guarded(r, &how, &rev, &found, &found_as_of);
    if (rc == 0)
        rc = take_created_locked(n, rev, &how, &found, found_as_of);
    if (rc == 0 && rev > 0)
        node_listing_name_changed(dir, r->comp, r->comp_len);
    commit_end(&cm, rc == 0 ? rev : 0);
    etcdc_kv_clear(&found);
    *created = rc == 0 && rev > 0;
    return rc;
}

/* Resolves name in dir, creates it (create_locked) and counts one more open, resolving again
 * when a directory above moves meanwhile. *out: the node (with a reference, also on failure:
 * node_put it); *base: the revision the new handle sees. */
static int create_and_open(node *dir, const char *name, int flags, const new_file *nf, resolved *r,
                           node **out, bool *created, int64_t *base)
{
    int rc = EAGAIN;
    for (int attempt = 0; rc == EAGAIN && attempt < RESOLVE_ATTEMPTS; attempt++) {
        node_put(*out);
        *out = NULL;
        resolved_free(r);
        rc = check_new_name(dir, name, r);
        node *n = rc == 0 ? node_obtain(r->file_key, r->file_len, NODE_FILE) : NULL;
        if (rc == 0 && !n)
            rc = ENOMEM;
        if (rc)
            break;
        *out = n;
        node_lock(n);
        rc = create_locked(n, dir, r, flags, nf, created);
        file_part *p = rc == 0 ? node_file_part_locked(n) : NULL;
        if (rc == 0 && !p)
            rc = ENOMEM; /* what create_locked did stands: the file exists, as after a crash */
        if (rc == 0) {
            if (*created || (flags & O_TRUNC))
                node_touch_mtime(n);
            p->open_count++;
            p->kernel_rev = n->mod_rev;
            *base = open_file_base_locked(n);
        }
        node_unlock(n);
    }
    return rc == EAGAIN ? ESTALE : rc;
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_create);
    resolved r = {0};
    node *n = NULL;
    node *dir = node_get(parent);
    int64_t base = 0;
    bool created = false;
    attrs rec;
    new_file nf = {.value = ""};
    if (dir && dir->type == NODE_DIR &&
        attrs_for_new_entry(dir, S_IFREG | (mode & 07777), req, &rec))
        nf.rec = &rec;
    int rc = create_and_open(dir, name, fi->flags, &nf, &r, &n, &created, &base);
    if (rc == 0)
        open_retry_created(r.file_key, r.file_len, fuse_req_ctx(req)->pid);
    open_file *fh = rc == 0 ? open_file_new(n->ino, base) : NULL;
    if (fh)
        fh->truncated = fh->changed = fi->flags & O_TRUNC;
    if (rc == 0 && !fh) {
        node_lock(n);
        n->fpart->open_count--; /* counted at the open: it has its part */
        node_unlock(n);
        rc = ENOMEM;
    }
    if (rc == 0) {
        struct fuse_entry_param e;
        entry_for(n, &e);
        fi->fh = (uint64_t)(uintptr_t)fh;
        fi->keep_cache = 0;
        if (fuse_reply_create(req, &e, fi) == -ENOENT) {
            /* The caller was interrupted: undo the kernel reference and the open. */
            node_forget(n->ino, 1);
            node_lock(n);
            n->fpart->open_count--; /* counted at the open: it has its part */
            node_unlock(n);
            open_file_free(fh);
        }
    } else {
        fuse_reply_err(req, rc);
    }
    log_debug("create %lu '%s' flags 0x%x -> %s", (unsigned long)parent, name, fi->flags,
              rc ? strerror(rc) : "ok");
    node_put(n);
    node_put(dir);
    resolved_free(&r);
}

/* A new entry that no open follows (mknod, mkfifo, symlink): created in etcd at once, with
 * its record; a name that exists is EEXIST. */
static int make_entry(fuse_req_t req, node *dir, const char *name, mode_t mode, const char *value,
                      resolved *r, node **out)
{
    attrs rec;
    new_file nf = {.value = value, .value_len = strlen(value)};
    if (dir && dir->type == NODE_DIR && attrs_for_new_entry(dir, mode, req, &rec))
        nf.rec = &rec;
    bool created = false;
    int rc = EAGAIN;
    for (int attempt = 0; rc == EAGAIN && attempt < RESOLVE_ATTEMPTS; attempt++) {
        node_put(*out);
        *out = NULL;
        resolved_free(r);
        rc = check_new_name(dir, name, r);
        if (rc == 0 && !(*out = node_obtain(r->file_key, r->file_len, NODE_FILE)))
            rc = ENOMEM;
        if (rc == 0) {
            node_lock(*out);
            rc = create_locked(*out, dir, r, O_EXCL, &nf, &created);
            node_unlock(*out);
        }
    }
    return rc == EAGAIN ? ESTALE : rc;
}

/* Device files and sockets bound by a process need a kernel object etcd cannot hold across
 * hosts: devices are refused (EPERM, as on a filesystem without them); a FIFO or a socket
 * entry is a type in its record (the kernel makes the pipe or socket on each host). */
static bool mknod_type_kept(mode_t mode)
{
    return S_ISREG(mode) || ((S_ISFIFO(mode) || S_ISSOCK(mode)) && attrs_writable());
}

/* mknod and symlink: make_entry, or `refused` (EROFS on a read-only mount or a past view). */
static void make_and_reply(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                           const char *value, int refused, const char *op)
{
    resolved r = {0};
    node *n = NULL;
    node *dir = node_get(parent);
    int rc = !refused ? make_entry(req, dir, name, mode, value, &r, &n)
             : g_fs.opts->ro || (dir && past_node(dir)) ? EROFS
                                                        : refused;
    if (rc == 0) {
        struct fuse_entry_param e;
        entry_for(n, &e);
        fuse_reply_entry(req, &e);
    } else {
        fuse_reply_err(req, rc);
    }
    log_debug("%s %lu '%s' -> %s", op, (unsigned long)parent, name, rc ? strerror(rc) : "ok");
    node_put(n);
    node_put(dir);
    resolved_free(&r);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    stats_inc(STAT_OP_mknod);
    make_and_reply(req, parent, name, mode, "", mknod_type_kept(mode) ? 0 : EPERM, "mknod");
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    make_and_reply(req, parent, name, S_IFLNK | 0777, link, attrs_writable() ? 0 : EPERM,
                   "symlink");
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_read);
    node *n = node_get(ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (n->type == NODE_STATS_FILE) {
        stats_snapshot *s = (stats_snapshot *)(uintptr_t)fi->fh;
        size_t from = (size_t)off < s->len ? (size_t)off : s->len;
        size_t count = s->len - from < size ? s->len - from : size;
        /* Reply from a copy: the reader may close (and release free the snapshot) the moment
         * the reply is written, while fuse_reply_buf is still returning. */
        char *copy = count ? malloc(count) : NULL;
        if (copy)
            memcpy(copy, s->text + from, count);
        if (count && !copy)
            fuse_reply_err(req, ENOMEM);
        else
            fuse_reply_buf(req, copy, count);
        free(copy);
        node_put(n);
        return;
    }
    if (n->type == NODE_PAST_FILE) {
        read_past(req, n, size, off);
        node_put(n);
        return;
    }
    log_debug("read %lu %zu bytes at %lld", (unsigned long)ino, size, (long long)off);
    open_file *fh = (open_file *)(uintptr_t)fi->fh;
    if (fh->source) {
        /* a read-only open of a name this mount had just replaced reads the node now there */
        node *s = node_get(fh->source->ino);
        if (s) {
            node_put(n);
            n = s;
        }
    }
    node_lock(n);
    if (off == 0 && consistency_strict() && !n->pending && !n->dirty && !n->unlinked) {
        int rc = file_revalidate_locked(n, &(bool){0}); /* a linearizable read per read */
        if (rc && rc != ENOENT) { /* deleted meanwhile: reads what this descriptor had */
            node_unlock(n);
            fuse_reply_err(req, rc);
            node_put(n);
            return;
        }
    }
    /* A read from the start takes the file as it is now (what poll(2) woke the reader for);
     * reads further on keep to the version that read started, unless this mount changed the
     * file: its own changes are seen at once by every descriptor, as on a local filesystem.
     * Changed in place here (unstored changes, or a removed file, which only this mount's
     * descriptors still change), no revision tells one state from the next. A removed file
     * found deleted elsewhere before (nothing written here, no version) holds nothing: its
     * readers keep what they read (they read '' before, a value nobody wrote). */
    bool removed_holding = n->unlinked && (n->written || n->mod_rev > 0 || n->local_content);
    bool in_place = n->dirty || n->pending || removed_holding;
    bool local = in_place || n->local_content;
    bool current = !in_place && fh->view.mod_rev == n->mod_rev;
    /* Deleted elsewhere (or not known until the next open revalidates): the descriptor keeps
     * the version it has, as an open file outlives its name on a local filesystem; an empty
     * read would be a value nobody wrote. */
    bool settled = in_place || (node_value_held_locked(n) && n->mod_rev > 0);
    if (fh->view.set && (off == 0 || local) && !current && settled) {
        int rc = read_view_take_locked(&fh->view, n);
        if (rc) {
            node_unlock(n);
            fuse_reply_err(req, rc);
            node_put(n);
            return;
        }
    }
    /* A writable descriptor reads the shared content (the kernel's pages of it, mostly) */
    read_view shared = read_view_borrow(n, fh->truncated);
    const read_view *v = fh->view.set ? &fh->view : &shared;
    size_t count;
    const char *bytes = read_view_slice(v, size, (uint64_t)off, &count);
    /* Re-arms poll(2) for this open file description with the revision being read, before the
     * reply: the reader's next poll may reach another worker before this one returns. */
    if (off == 0)
        poll_read_from_start(fi->fh, ino, v->mod_rev);
    /* Replying under the lock copies the bytes before a writer can change them. */
    fuse_reply_buf(req, bytes, count);
    if (node_fpart(n)) /* it has one: it is open */
        n->fpart->used_ns = now_ns();
    node_unlock(n);
    node_put(n);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_write);
    node *n = node_get(ino);
    int rc = n ? 0 : ENOENT;
    if (rc == 0 && n->type != NODE_FILE)
        rc = EBADF;
    if (rc == 0 && g_fs.opts->ro)
        rc = EROFS;
    if (rc == 0 && (off < 0 || (uint64_t)off + size > g_fs.opts->max_file_size))
        rc = EFBIG; /* never silently truncated: the write fails */
    if (rc == 0) {
        node_lock(n);
        size_t end = (size_t)off + size;
        if (n->value_unread)
            rc = EIO; /* never: the open read the value; no bytes are made up */
        else if (end > n->size)
            rc = node_resize_locked(n, end); /* zero-fills a gap past the old end */
        if (rc == 0 && size)
            memcpy(node_data(n) + off, buf, size); /* held: the open read it, or resized */
        if (rc == 0) {
            ((open_file *)(uintptr_t)fi->fh)->changed = true;
            open_file_note_change_base_locked(n, (open_file *)(uintptr_t)fi->fh);
            n->dirty = true;
            n->written = true;
            n->known = true;
            node_touch_mtime(n);
        }
        node_unlock(n);
    }
    if (rc == EFBIG) {
        node_lock(n);
        n->too_big = true;
        node_unlock(n);
    }
    if (rc == 0)
        fuse_reply_write(req, size);
    else
        fuse_reply_err(req, rc);
    log_debug("write %lu %zu bytes at %lld -> %s", (unsigned long)ino, size, (long long)off,
              rc ? strerror(rc) : "ok");
    node_put(n);
}

/* The write-back, with the one rule for failures (docs/reliability.md): a write reported as
 * failed is not kept. Whatever failed (a refusal such as EFBIG, EACCES, ENOSPC, or an
 * unreachable etcd), the changes are dropped there and then, never retried behind the
 * application's back at release or unmount, nor shown to readers as if stored (caller holds
 * n->mu). A timed-out request's outcome alone is unknown: etcd may have applied it. */
static int writeback_or_drop_locked(node *n, const char *why)
{
    int rc = file_writeback_locked(n, why);
    if (rc != 0 && (n->dirty || n->pending)) {
        file_drop_changes_locked(n, rc);
        char kb[LOG_KEY_BUF];
        size_t len;
        char *key = node_key(n, &len);
        log_msg(LOG_WARNING, "%s: %s not stored (%s): the changes are dropped", why,
                key ? log_key(key, len, kb, sizeof kb) : "?", strerror(rc));
        free(key);
    }
    return rc;
}

static void writeback_reply(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                            const char *why, bool is_flush)
{
    node *n = node_get(ino);
    int rc = 0;
    if (n && n->type == NODE_FILE) {
        open_file *fh = (open_file *)(uintptr_t)fi->fh;
        unsigned flushes =
            is_flush && fh ? __atomic_add_fetch(&fh->flushes, 1, __ATOMIC_RELAXED) : 0;
        node_lock(n);
        if (fh && fh->lost) {
            /* What it changed was dropped by a write-back that failed elsewhere, or by a
             * close of this same description that failed. Every close of it says so until
             * its release (a forked child's close of an inherited copy must not take the
             * error from its owner's close), and whatever it wrote since goes too: a close
             * that reports a failure keeps nothing (the other writers of those changes learn
             * rc in turn). */
            rc = fh->lost;
            if (fh->changed && (n->dirty || n->pending))
                file_drop_changes_locked(n, rc);
            fh->changed = false;
        } else if (!is_flush || (fh && fh->changed && (n->written || flushes >= 2))) {
            /* A close stores what its descriptor changed, never another's changes: their own
             * close stores them and reports the outcome to the one who wrote them. A shell
             * redirection closes a dup of the new descriptor before writing: the first flush
             * of an open with nothing written yet (only created or O_TRUNC'ed) waits for the
             * next flush or the release, so that `echo x > f` stays one etcd write. */
            rc = writeback_or_drop_locked(n, why);
            if (fh) {
                fh->changed = false; /* stored, or dropped and reported now */
                /* A failed fsync is reported once, as on Linux (the caller may write again).
                 * A failed close is reported to every later close of the description: the
                 * one that failed may be a forked child's close of an inherited copy (as
                 * subprocess's close_fds does before exec), and the owner's close must not
                 * acknowledge what was dropped. */
                fh->lost = rc != 0 && is_flush ? rc : 0;
            }
        }
        log_debug("%s %lu -> %s", why, (unsigned long)ino, rc ? strerror(rc) : "ok");
        node_unlock(n);
        /* Any close by a process ends its fcntl locks on the file (after its data landed). */
        if (is_flush)
            locks_release_posix(ino, fi->lock_owner);
    }
    fuse_reply_err(req, rc);
    node_put(n);
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_flush);
    writeback_reply(req, ino, fi, "flush", true);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    stats_inc(STAT_OP_fsync);
    writeback_reply(req, ino, fi, "fsync", false);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_release);
    node *n = node_get(ino);
    if (n && n->type == NODE_STATS_FILE) {
        stats_snapshot *s = (stats_snapshot *)(uintptr_t)fi->fh;
        free(s->text);
        free(s);
    } else if (n && n->type == NODE_PAST_FILE) {
        past_release(n);
    } else if (n && n->type == NODE_FILE) {
        node_lock(n);
        if (node_open_count(n) > 0)
            n->fpart->open_count--;
        if (n->unlinked) {
            /* Written to a file that was removed meanwhile: nothing to keep. */
            if (n->pending)
                node_pending_add(-1);
            n->pending = n->dirty = false;
        }
        /* What this descriptor changed and did not store yet (a create or truncation closed
         * without a write; pages written through a shared mapping arrive before release) is
         * stored now, and what no descriptor is left to store at the last release. Never
         * the changes of another descriptor still open: the release of an earlier open
         * comes asynchronously and may follow the next open's O_TRUNC (storing ''). A
         * failure drops them with a log line, as a failed page write-back. */
        if (((open_file *)(uintptr_t)fi->fh)->changed || node_open_count(n) == 0)
            writeback_or_drop_locked(n, "release");
        node_unlock(n);
        poll_released(fi->fh);
        /* The last close of an open file description ends its flock and its OFD locks, after
         * its data landed. Both go before the handle that names them is freed (its address can
         * name another open file description afterwards). */
        if (fi->flock_release)
            locks_release_flock(ino, fi->fh);
        locks_release_ofd(ino, fi->fh);
        open_file_free((open_file *)(uintptr_t)fi->fh);
    }
    fuse_reply_err(req, 0);
    log_debug("release %lu", (unsigned long)ino);
    node_put(n);
}
