/*
 * ops_entry.c - per-node operations: lookup, forget, getattr, setattr, statfs, access.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"
#include "attrs_store.h"
#include "cache.h"
#include "file_sync.h"
#include "listing.h"
#include "log.h"
#include "open_files.h"
#include "ops.h"
#include "past.h"
#include "resolve.h"
#include "stats.h"
#include "witness.h"

static node *stats_node(node_type type, const char *file)
{
    return type == NODE_STATS_DIR ? node_obtain(NAMES_STATS_DIR, sizeof NAMES_STATS_DIR - 1, type)
                                  : node_obtain(file, strlen(file), type);
}

/* Finds what `r` names, from the fresh listing or with one read-only Txn. *out is NULL when
 * nothing exists (ENOENT returned). */
/* The name "%": the directory's own key, from a fresh listing that shows it, else confirmed
 * with etcd (close-to-open for names: a miss is never answered from a cached listing). */
static int lookup_self(node *dir, const resolved *r, node **out)
{
    int rc = 0;
    listing *l = node_fresh_listing(dir);
    if (l && !l->self_present) {
        listing_unref(l);
        l = NULL;
    }
    node *n = node_obtain(r->file_key, r->file_len, NODE_FILE);
    if (n && l) {
        stats_inc(STAT_cache_lookup_hit);
        node_lock(n);
        node_apply_kv_locked(n, &l->self, l->revision, l->fetched_ns);
        node_unlock(n);
    } else if (n) {
        node_lock(n);
        rc = n->pending || n->dirty ? 0 : file_revalidate_locked(n, &(bool){0});
        node_unlock(n);
    }
    listing_unref(l);
    if (!n && !rc)
        rc = ENOMEM;
    if (rc)
        node_put(n);
    else
        *out = n;
    return rc;
}

/* A file created here and not yet written to etcd (with a reference), else NULL. */
static node *pending_file(const resolved *r)
{
    node *n = node_find(r->file_key, r->file_len, NODE_FILE);
    if (!n)
        return NULL;
    node_lock(n);
    bool local = n->pending;
    node_unlock(n);
    if (local)
        return n;
    node_put(n);
    return NULL;
}

/* The name as a fresh listing of dir shows it. Returns ENOENT when no listing can answer:
 * none is fresh, or it does not show the name (a miss is asked of etcd when the watch does
 * not run). */
static int lookup_listed(node *dir, const resolved *r, node **out)
{
    listing *l = consistency_strict() ? NULL : node_listing_for_name(dir, r->comp, r->comp_len);
    const listing_entry *e = l ? listing_find(l, r->comp, r->comp_len) : NULL;
    if (!e) {
        listing_unref(l);
        return ENOENT;
    }
    stats_inc(STAT_cache_lookup_hit);
    node *n = e->is_dir ? node_obtain(r->sub_key, r->sub_len, NODE_DIR)
                        : node_obtain(r->file_key, r->file_len, NODE_FILE);
    if (n) {
        node_lock(n);
        listing_give_entry_locked(n, l, e);
        node_unlock(n);
    }
    listing_unref(l);
    *out = n;
    return n ? 0 : ENOMEM;
}

/* The attribute record of kind in a lookup's answer (the keys "<name>\0..."), into *a; false
 * when none is there (or it does not parse: the defaults). */
static bool record_in(const etcdc_kvs *recs, const resolved *r, attrs_kind kind, attrs *a,
                      int64_t *rev, int64_t *created)
{
    for (size_t i = 0; recs && i < recs->count; i++) {
        const etcdc_kv *kv = &recs->kvs[i];
        size_t name_len;
        if (kv->key_len > r->dir_len &&
            attrs_key_kind(kv->key + r->dir_len, kv->key_len - r->dir_len, &name_len) == kind &&
            name_len == r->comp_len && !kv->value_error &&
            attrs_parse(kv->value, kv->value_len, a)) {
            *rev = kv->mod_revision;
            *created = kv->create_revision;
            return true;
        }
    }
    return false;
}

/* Gives n the record of kind found by a lookup answered at revision. */
static void give_record_locked(node *n, const etcdc_kvs *recs, const resolved *r, attrs_kind kind,
                               int64_t revision)
{
    attrs a;
    int64_t rev = revision, created = 0;
    bool present = record_in(recs, r, kind, &a, &rev, &created);
    node_set_record_seen_locked(n, present ? &a : NULL, rev, created);
}

/* The directory's existence, asked inside the lookup's Txn. Its key range [sub/, end) read
 * with limit 1 still makes etcd walk every key below it (3.4 and 3.5 alike): a directory of
 * 100,000 keys costs ~13 ms per lookup, and strict mode looks a parent up once per access below
 * it. A witness (witness.h), one key known to lie below, proves the same with a one-key compare;
 * the Then branch then asks only for the marker, which the range would have shown first. A
 * witness deleted meanwhile sends the Txn down its Else branch: the range, as without one. */
typedef struct dir_probe {
    char *witness, *end;
    size_t witness_len, end_len;
} dir_probe;

static void dir_probe_add(etcdc_txn *t, const resolved *r, const dir_probe *p, etcdc_branch b)
{
    bool witnessed = p->witness && b == ETCDC_THEN;
    etcdc_range_req below = {.key = r->sub_key,
                             .key_len = r->sub_len,
                             .range_end = witnessed ? NULL : p->end,
                             .range_end_len = witnessed ? 0 : p->end_len,
                             .limit = 1,
                             .keys_only = true};
    etcdc_txn_get(t, b, &below);
}

/* After the Txn: whether the directory exists, and its first key below (the marker when there
 * is one) or NULL. Keeps the witness current for the next lookup. */
static bool dir_probe_result(const resolved *r, const dir_probe *p, const etcdc_txn_result *res,
                             size_t below_at, const etcdc_kv **first)
{
    const etcdc_kvs *below = &res->ops[below_at].kvs;
    *first = below->count > 0 ? &below->kvs[0] : NULL;
    if (p->witness && res->succeeded)
        return true;
    if (!*first)
        witness_forget_dir(r->sub_key, r->sub_len);
    else if (names_last_component((*first)->key, (*first)->key_len, 0) == r->sub_len &&
             !memchr((*first)->key + r->sub_len, '\0', (*first)->key_len - r->sub_len))
        witness_note((*first)->key, (*first)->key_len); /* a child or the marker: no record */
    return *first != NULL;
}

/* One read-only Txn: the key itself, whether anything lies below it, and the attribute
 * records of both (docs/design-attributes.md): the keys from "<name>\0" to "<name>\1". */
static int lookup_in_etcd(const resolved *r, node **out)
{
    int64_t now = now_ns();
    int rc;
    node *n = NULL;
    etcdc_txn *t = etcdc_txn_new();
    size_t rec_len = 0, rec_end_len = 0;
    dir_probe probe = {0};
    probe.end = key_prefix_end(r->sub_key, r->sub_len, &probe.end_len);
    probe.witness = witness_get(r->sub_key, r->sub_len, &probe.witness_len);
    char *rec = key_join(r->file_key, r->file_len, "\0", 1, NULL, 0, &rec_len);
    char *rec_end = key_join(r->file_key, r->file_len, "\1", 1, NULL, 0, &rec_end_len);
    etcdc_range_req get = {.key = r->file_key, .key_len = r->file_len};
    etcdc_range_req recs = {
        .key = rec, .key_len = rec_len, .range_end = rec_end, .range_end_len = rec_end_len};
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    /* The name "%" at the root of the whole key space stands for the keys starting with '/':
     * its own key would be the empty key, which etcd cannot hold (nor be asked for). */
    bool own_key = r->file_len > 0;
    bool with_recs = own_key && g_fs.opts->attrs_mode != ATTRS_MODE_NONE;
    size_t ops = (own_key ? 2 : 1) + (with_recs ? 1 : 0);
    if (!probe.end || !rec || !rec_end)
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    if (probe.witness)
        etcdc_txn_if(t, probe.witness, probe.witness_len, ETCDC_CMP_CREATE, ETCDC_GREATER, 0);
    for (int b = ETCDC_THEN; b <= (probe.witness ? ETCDC_ELSE : ETCDC_THEN); b++) {
        if (own_key)
            etcdc_txn_get(t, (etcdc_branch)b, &get);
        dir_probe_add(t, r, &probe, (etcdc_branch)b);
        if (with_recs)
            etcdc_txn_get(t, (etcdc_branch)b, &recs);
    }
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    size_t below_at = own_key ? 1 : 0;
    const etcdc_kvs *found = with_recs && res.op_count == ops ? &res.ops[ops - 1].kvs : NULL;
    const etcdc_kv *first = NULL;
    if (code != ETCDC_OK) {
        rc = fs_fail("lookup", r->file_key, r->file_len, code, &err);
    } else if (res.op_count == ops && dir_probe_result(r, &probe, &res, below_at, &first)) {
        n = node_obtain(r->sub_key, r->sub_len, NODE_DIR);
        if (n) {
            node_lock(n);
            n->create_rev = first && first->key_len == r->sub_len ? first->create_revision : 0;
            if (with_recs)
                give_record_locked(n, found, r, ATTRS_DIR, res.revision);
            node_unlock(n);
        }
        rc = n ? 0 : ENOMEM;
    } else if (own_key && res.op_count == ops && res.ops[0].kvs.count > 0) {
        n = node_obtain(r->file_key, r->file_len, NODE_FILE);
        if (n) {
            node_lock(n);
            node_apply_kv_locked(n, &res.ops[0].kvs.kvs[0], res.revision, now);
            if (with_recs)
                give_record_locked(n, found, r, ATTRS_FILE, res.revision);
            node_unlock(n);
        }
        rc = n ? 0 : ENOMEM;
    } else {
        rc = ENOENT;
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    free(probe.end);
    free(probe.witness);
    free(rec);
    free(rec_end);
    *out = n;
    return rc;
}

static int lookup_keys(node *dir, const resolved *r, node **out)
{
    *out = NULL;
    if (r->kind == NAMES_SELF)
        return lookup_self(dir, r, out);
    if ((*out = pending_file(r)))
        return 0;
    /* watch mode: a listing kept current by the watch proves the name absent. (Close-to-open
     * asks etcd: a name another host created must show at once, docs/consistency.md.) */
    if (consistency_watch_trusted() && node_listing_proves_absent(dir, r->comp, r->comp_len)) {
        stats_inc(STAT_cache_lookup_hit);
        return ENOENT;
    }
    int rc = lookup_listed(dir, r, out);
    return rc == ENOENT ? lookup_in_etcd(r, out) : rc;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    stats_inc(STAT_OP_lookup);
    struct fuse_entry_param e;
    resolved r = {0};
    node *n = NULL;
    node *dir = node_get(parent);
    int rc = dir ? 0 : ENOENT;
    if (rc == 0 && dir->type == NODE_STATS_DIR) {
        if (!strcmp(name, PAST_AT_NAME))
            n = past_at_dir();
        else if (!strcmp(name, NAMES_STATS_FILE) || !strcmp(name, NAMES_METRICS_FILE))
            n = stats_node(NODE_STATS_FILE, name);
        else
            rc = ENOENT;
        if (rc == 0 && !n)
            rc = ENOMEM;
        goto reply;
    }
    if (rc == 0 && past_node(dir)) {
        rc = past_lookup(dir, name, &n);
        goto reply;
    }
    if (rc == 0 && dir->type != NODE_DIR)
        rc = ENOTDIR;
    if (rc == 0)
        rc = resolve_name(dir, name, &r);
    if (rc == EINVAL)
        rc = ENOENT; /* a reserved spelling that names nothing */
    if (rc == 0 && r.kind == NAMES_STATS) {
        if (!(n = stats_node(NODE_STATS_DIR, NULL)))
            rc = ENOMEM;
        goto reply;
    }
    if (rc == 0)
        rc = lookup_keys(dir, &r, &n);
reply:
    if (rc == 0) {
        entry_for(n, &e);
        fuse_reply_entry(req, &e);
    } else if (rc == ENOENT) {
        /* A negative entry. Close-to-open for names: the kernel must not remember the
         * absence (a name created on another host shows at the next lookup). */
        memset(&e, 0, sizeof e);
        e.entry_timeout = g_fs.opts->consistency == CONSISTENCY_CLOSE_TO_OPEN ? 0 : g_fs.timeout;
        fuse_reply_entry(req, &e);
    } else {
        fuse_reply_err(req, rc);
    }
    log_debug("lookup %lu '%s' -> %s", (unsigned long)parent, name, rc ? strerror(rc) : "ok");
    node_put(n);
    node_put(dir);
    resolved_free(&r);
    cache_trim(); /* a value from the listing may have passed --cache-size */
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    stats_inc(STAT_OP_forget);
    node_forget(ino, nlookup);
    fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++) {
        stats_inc(STAT_OP_forget);
        node_forget(forgets[i].ino, forgets[i].nlookup);
    }
    fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    stats_inc(STAT_OP_getattr);
    struct stat st;
    node *n = node_get(ino);
    int rc = n ? 0 : ENOENT;
    if (rc == 0 && n->type == NODE_FILE) {
        node_lock(n);
        /* Open files keep the view they opened with (close-to-open); others are trusted for
         * the cache timeout. */
        bool open_view = node_open_count(n) > 0 && !consistency_strict();
        if (n->unlinked || n->pending || n->dirty || open_view ||
            (n->known && now_ns() - n->validated_ns <= cache_trust_ns()))
            stats_inc(STAT_cache_getattr_hit);
        else
            rc = file_revalidate_locked(n, &(bool){0});
        if (rc == 0)
            node_fill_attr(n, &st, true);
        node_unlock(n);
    } else if (rc == 0 && past_node(n)) {
        rc = past_getattr(n, &st);
    } else if (rc == 0) {
        node_fill_attr(n, &st, false);
    }
    if (rc == 0)
        fuse_reply_attr(req, &st,
                        n->type == NODE_STATS_FILE                              ? 0
                        : n->type == NODE_PAST_DIR || n->type == NODE_PAST_FILE ? PAST_TIMEOUT
                                                                                : g_fs.timeout);
    else
        fuse_reply_err(req, rc);
    log_debug("getattr %lu -> %s", (unsigned long)ino, rc ? strerror(rc) : "ok");
    node_put(n);
}

static bool has_record_locked(const node *n)
{
    bool with_mtime;
    return node_record_locked(n, &with_mtime) != NULL;
}

/* chmod, chown and utimens with records: the record of n with what to_set changes. */
static int store_attrs(node *n, const struct stat *attr, int to_set)
{
    node_lock(n);
    attrs want;
    attrs_current_locked(n, &want);
    if (to_set & FUSE_SET_ATTR_MODE)
        want.mode = (want.mode & S_IFMT) | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID)
        want.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        want.gid = attr->st_gid;
    clock_gettime(CLOCK_REALTIME, &want.ctime);
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        want.mtime = want.ctime;
    else if (to_set & FUSE_SET_ATTR_MTIME)
        want.mtime = attr->st_mtim;
    /* explicit times are kept; a mode and owner back to the defaults need no record */
    bool explicit_time = (to_set & FUSE_SET_ATTR_MTIME) && !(to_set & FUSE_SET_ATTR_MTIME_NOW);
    int rc = explicit_time ? attrs_store_locked(n, &want) : attrs_store_or_drop_locked(n, &want);
    node_unlock(n);
    return rc;
}

void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    node *n = node_get(ino);
    int rc = !n ? ENOENT : n->type != NODE_FILE ? EINVAL : 0;
    char *target = NULL;
    if (rc == 0) {
        node_lock(n);
        /* The target is the key's value: as fresh as getattr's answer would be. */
        if (!n->pending && !n->dirty &&
            !(node_value_held_locked(n) && now_ns() - n->validated_ns <= cache_trust_ns()))
            rc = file_revalidate_locked(n, &(bool){0});
        bool with_mtime;
        const attrs *a = node_record_locked(n, &with_mtime);
        if (rc == 0 && (g_fs.opts->attrs_mode == ATTRS_MODE_NONE || !a || !S_ISLNK(a->mode)))
            rc = EINVAL; /* not a symbolic link, as readlink(2) says */
        if (rc == 0 && !(target = strndup(node_data(n) ? node_data(n) : "", n->size)))
            rc = ENOMEM;
        node_unlock(n);
    }
    if (rc == 0)
        fuse_reply_readlink(req, target);
    else
        fuse_reply_err(req, rc);
    log_debug("readlink %lu -> %s", (unsigned long)ino, rc ? strerror(rc) : "ok");
    free(target);
    node_put(n);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi)
{
    stats_inc(STAT_OP_setattr);
    struct stat st;
    node *n = node_get(ino);
    int rc = n ? 0 : ENOENT;
    if (rc == 0 && past_node(n))
        rc = EROFS;
    if (rc == 0 && n->type != NODE_FILE && n->type != NODE_DIR)
        rc = EACCES;
    if (rc == 0)
        node_fill_attr(n, &st, false);
    bool change_mode =
        rc == 0 && (to_set & FUSE_SET_ATTR_MODE) && (attr->st_mode & 07777) != (st.st_mode & 07777);
    bool change_owner = rc == 0 && (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != st.st_uid) ||
                                    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != st.st_gid));
    /* Without attribute records (--attrs=none, read-only) nothing can keep a mode or owner,
     * nor for the mount's root, whose record would lie outside the mounted prefix: changing
     * them fails honestly unless -o quiet; setting what they already are succeeds (cp -p, tar). */
    bool storable = attrs_writable() && !node_is_root(n);
    if ((change_mode || change_owner) && !storable && !g_fs.opts->quiet)
        rc = g_fs.opts->ro ? EROFS : EPERM;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) && n->type != NODE_FILE)
        rc = EISDIR;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) && g_fs.opts->ro)
        rc = EROFS;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) &&
        (uint64_t)attr->st_size > g_fs.opts->max_file_size)
        rc = EFBIG;
    if (rc == 0 && n->type == NODE_FILE) {
        listed_value listed = {0}; /* taken before the node's lock */
        if (to_set & FUSE_SET_ATTR_SIZE)
            file_listed_value(n, &listed);
        node_lock(n);
        if (to_set & FUSE_SET_ATTR_SIZE) {
            /* Truncating needs the current content first (the part that is kept): the one the
             * cache would have held, as the listing shows it, else one Get. */
            if (!node_value_held_locked(n) && !file_take_listed_locked(n, &listed))
                rc = file_revalidate_locked(n, &(bool){0});
            if (rc == 0 && (size_t)attr->st_size != n->size) {
                rc = node_resize_locked(n, (size_t)attr->st_size);
                if (rc == 0) {
                    file_note_change_locked(n, fi);
                    n->dirty = n->written = true;
                }
            } else if (rc == 0 && (size_t)attr->st_size == 0 && n->mod_rev == 0) {
                file_note_change_locked(n, fi);
                n->dirty = n->written = true; /* a file that must still be created */
            }
            if (rc == 0)
                node_touch_mtime(n);
            /* truncate(2) on a path that nobody holds open: write now. */
            if (rc == 0 && !fi && node_open_count(n) == 0)
                rc = file_writeback_locked(n, "truncate");
        }
        /* Without records, times are kept in memory only until the content changes; so is
         * `touch` (the time now) of a file without a record, whose synthesized mtime is the
         * time this mount saw its content change: no write for what every mount shows alike. */
        if (rc == 0 && (to_set & FUSE_SET_ATTR_MTIME) &&
            (!storable || ((to_set & FUSE_SET_ATTR_MTIME_NOW) && !has_record_locked(n)))) {
            to_set &= ~FUSE_SET_ATTR_MTIME;
            if (to_set & FUSE_SET_ATTR_MTIME_NOW)
                node_touch_mtime(n);
            else
                node_set_mtime(n, attr->st_mtim);
        }
        node_unlock(n);
        listed_value_clear(&listed);
    }
    if (rc == 0 && n->type == NODE_DIR && (to_set & FUSE_SET_ATTR_MTIME_NOW)) {
        node_lock(n);
        if (!has_record_locked(n))
            to_set &= ~FUSE_SET_ATTR_MTIME; /* as for files (directories show the mount time) */
        node_unlock(n);
    }
    if (rc == 0 && storable && (change_mode || change_owner || (to_set & FUSE_SET_ATTR_MTIME)))
        rc = store_attrs(n, attr, to_set);
    if (rc == 0)
        node_fill_attr(n, &st, false);
    if (rc == 0)
        fuse_reply_attr(req, &st, g_fs.timeout);
    else
        fuse_reply_err(req, rc);
    log_debug("setattr %lu (0x%x) -> %s", (unsigned long)ino, to_set, rc ? strerror(rc) : "ok");
    node_put(n);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    stats_inc(STAT_OP_statfs);
    etcdc_status s = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_status_get(g_fs.client, &s, &err);
    if (code != ETCDC_OK) {
        fuse_reply_err(req, fs_fail("statfs", "", 0, code, &err));
        return;
    }
    struct statvfs st = {0};
    uint64_t bsize = 4096, quota = g_fs.opts->quota;
    uint64_t used = s.db_size > 0 ? (uint64_t)s.db_size : 0;
    st.f_bsize = bsize;
    st.f_frsize = bsize;
    st.f_blocks = quota / bsize;
    st.f_bfree = used < quota ? (quota - used) / bsize : 0;
    st.f_bavail = st.f_bfree;
    /* etcd has no inode limit: report plenty, shrinking with the space left. */
    st.f_files = st.f_blocks;
    st.f_ffree = st.f_bfree;
    st.f_favail = st.f_bfree;
    st.f_namemax = NAMES_MAX;
    fuse_reply_statfs(req, &st);
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    stats_inc(STAT_OP_access);
    node *n = node_get(ino);
    int rc = n ? 0 : ENOENT;
    if (rc == 0 && (mask & W_OK) &&
        (g_fs.opts->ro || n->type == NODE_STATS_DIR || n->type == NODE_STATS_FILE || past_node(n)))
        rc = EROFS;
    /* Permission bits are checked by the kernel (default_permissions). */
    fuse_reply_err(req, rc);
    node_put(n);
}
