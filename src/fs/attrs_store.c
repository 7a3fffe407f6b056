/* attrs_store.c - writing attribute records (see attrs_store.h). */
#include "attrs_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_sync.h"
#include "key_guards.h"
#include "log.h"
#include "names.h"

bool attrs_is_default(const attrs *a)
{
    bool dir = S_ISDIR(a->mode);
    return (dir || S_ISREG(a->mode)) &&
           (a->mode & 07777) == (dir ? g_fs.dir_mode : g_fs.file_mode) && a->uid == g_fs.uid &&
           a->gid == g_fs.gid;
}

bool attrs_writable(void)
{
    return g_fs.opts->attrs_mode != ATTRS_MODE_NONE && !g_fs.opts->ro;
}

void attrs_current_locked(node *n, attrs *a)
{
    struct stat st;
    node_fill_attr(n, &st, true);
    *a = (attrs){.mode = st.st_mode,
                 .uid = st.st_uid,
                 .gid = st.st_gid,
                 .mtime = st.st_mtim,
                 .ctime = st.st_ctim};
}

static struct timespec now_ts(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t;
}

void txn_put_record(etcdc_txn *t, etcdc_branch b, const char *key, size_t len, const attrs *a)
{
    bool dir = len > 0 && key[len - 1] == '/';
    size_t rlen;
    char *rkey = attrs_key(key, len, dir ? ATTRS_DIR : ATTRS_FILE, &rlen);
    char text[ATTRS_TEXT_MAX];
    size_t tlen = attrs_format(a, text);
    if (!rkey)
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    else
        etcdc_txn_put(t, b, rkey, rlen, text, tlen, 0);
    free(rkey);
}

void txn_delete_record(etcdc_txn *t, etcdc_branch b, const char *key, size_t len, attrs_kind kind)
{
    size_t rlen;
    char *rkey = attrs_key(key, len, kind, &rlen);
    if (!rkey)
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    else
        etcdc_txn_delete(t, b, rkey, rlen, NULL, 0, false);
    free(rkey);
}

/* One Txn: If(the anchor is the incarnation n knows) Then(Put record) Else(Range anchor), and
 * for a directory without a marker If(no marker, the directory exists) Then(Put marker, Put
 * record). *lost: the compare failed (n then knows the anchor as etcd has it). */
static int store_once(node *n, const char *key, size_t len, const attrs *want, bool drop,
                      bool *lost)
{
    bool dir = n->type == NODE_DIR;
    attrs a = *want;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_range_req probe = {.key = key, .key_len = len};
    if (n->create_rev > 0) {
        etcdc_txn_if(t, key, len, ETCDC_CMP_CREATE, ETCDC_EQUAL, n->create_rev);
        a.anchor = n->create_rev;
    } else if (dir) {
        /* The record hangs on the marker: written with it, in this Txn. */
        etcdc_txn_if(t, key, len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
        txn_if_parent_exists(t, key, len);
        etcdc_txn_put(t, ETCDC_THEN, key, len, "", 0, 0);
        a.anchor = 0;
    } else {
        etcdc_txn_set_error(t, ETCDC_ERR_INVALID_ARGUMENT); /* the caller read the key first */
    }
    a.content = dir ? 0 : n->mod_rev;
    if (drop)
        txn_delete_record(t, ETCDC_THEN, key, len, dir ? ATTRS_DIR : ATTRS_FILE);
    else
        txn_put_record(t, ETCDC_THEN, key, len, &a);
    etcdc_txn_get(t, ETCDC_ELSE, &probe);
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc = 0;
    *lost = false;
    if (code != ETCDC_OK) {
        rc = fs_fail("chmod", key, len, code, &err);
    } else if (res.succeeded) {
        if (dir && n->create_rev == 0)
            n->create_rev = res.revision;
        node_set_record_locked(n, drop ? NULL : &a, res.revision);
    } else {
        *lost = true;
        const etcdc_kvs *kvs = res.op_count == 1 ? &res.ops[0].kvs : NULL;
        bool there = kvs && kvs->count == 1;
        if (dir)
            n->create_rev = there ? kvs->kvs[0].create_revision : 0;
        else if (there)
            node_apply_kv_locked(n, &kvs->kvs[0], res.revision, now_ns());
        else
            node_apply_absent_locked(n, res.revision, now_ns());
        if (!dir && !there)
            rc = ENOENT;
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    return rc;
}

static int store(node *n, const attrs *want, bool drop);

int attrs_store_locked(node *n, const attrs *want)
{
    return store(n, want, false);
}

int attrs_store_or_drop_locked(node *n, const attrs *want)
{
    return store(n, want, attrs_is_default(want));
}

static int store(node *n, const attrs *want, bool drop)
{
    if (n->type == NODE_FILE && (n->pending || n->dirty)) {
        /* Not in etcd as it will be: the record goes with the content (file_sync.c), which
         * drops one that says only the defaults. */
        int rc = node_set_local_record_locked(n, want);
        if (rc == 0)
            node_set_mtime(n, want->mtime);
        return rc;
    }
    if (drop && n->type == NODE_DIR && n->create_rev <= 0)
        return 0; /* no marker, so no record: nothing to drop */
    size_t len;
    char *key = node_key(n, &len);
    if (!key)
        return ENOMEM;
    int rc = 0;
    if (n->type == NODE_FILE && (!n->known || n->create_rev <= 0)) {
        /* The incarnation to name: one read (a file known from a rename or an eviction). */
        etcdc_range_req get = {.key = key, .key_len = len};
        etcdc_kvs kvs = {0};
        etcdc_error err = {0};
        etcdc_code code = etcdc_range(g_fs.client, &get, &kvs, &err);
        if (code != ETCDC_OK)
            rc = fs_fail("chmod", key, len, code, &err);
        else if (kvs.count == 1)
            node_apply_kv_locked(n, &kvs.kvs[0], kvs.revision, now_ns());
        else
            rc = ENOENT;
        etcdc_kvs_clear(&kvs);
    }
    bool lost = true;
    for (int attempt = 0; rc == 0 && lost && attempt < 3; attempt++)
        rc = store_once(n, key, len, want, drop, &lost);
    if (rc == 0 && lost)
        rc = ESTALE;
    free(key);
    return rc;
}

bool attrs_following_key_locked(node *n, int64_t anchor, bool content_changes, attrs *a)
{
    bool with_mtime;
    const attrs *cur = attrs_writable() ? node_record_locked(n, &with_mtime) : NULL;
    if (!cur)
        return false;
    *a = *cur;
    a->ctime = now_ts();
    if (content_changes)
        a->mtime = a->ctime;
    else if (!with_mtime)
        a->mtime = node_mtime(n); /* the time shown now, bound to the content from now on */
    a->anchor = anchor;
    a->content = 0;
    return true;
}

attrs_writeback attrs_for_writeback_locked(node *n, bool creating, attrs *a)
{
    if (!attrs_writable() || !n->rec || !n->rec->present)
        return ATTRS_WB_LEAVE;
    bool local = n->rec->local, with_mtime;
    const attrs *cur = local ? &n->rec->a : node_record_locked(n, &with_mtime);
    if (!cur || (!creating && !local && n->create_rev <= 0))
        return ATTRS_WB_LEAVE; /* none applies, or the incarnation is not known */
    if (local && attrs_is_default(cur))
        return ATTRS_WB_DROP; /* chmod'ed back to the defaults before it was written */
    /* creating: a key this mount has not seen in etcd, created by the write-back unless another
     * host created the name meanwhile; a Put keeps that key's create_revision, and the record
     * (naming the Txn's) then does not apply: the defaults show, never wrong attributes. */
    *a = *cur;
    a->mtime = node_mtime(n); /* the time of the last local change of the content */
    a->ctime = now_ts();
    a->anchor = creating ? 0 : n->create_rev;
    a->content = 0;
    return ATTRS_WB_PUT;
}

void attrs_written_locked(node *n, attrs_writeback wb, const attrs *a, int64_t rev)
{
    if (wb == ATTRS_WB_LEAVE)
        return;
    if (n->rec)
        n->rec->local = false;
    node_set_record_locked(n, wb == ATTRS_WB_PUT ? a : NULL, rev);
}

bool attrs_for_new_entry(node *parent, mode_t mode, fuse_req_t req, attrs *a)
{
    if (!attrs_writable())
        return false;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct timespec now = now_ts();
    *a = (attrs){.mode = mode, .uid = ctx->uid, .gid = ctx->gid, .mtime = now, .ctime = now};
    attrs dir;
    node_lock(parent);
    attrs_current_locked(parent, &dir);
    node_unlock(parent);
    if (dir.mode & S_ISGID) { /* BSD group semantics, as a setgid directory asks */
        a->gid = dir.gid;
        if (S_ISDIR(mode))
            a->mode |= S_ISGID;
    }
    bool is_dir = S_ISDIR(mode);
    bool plain_type = is_dir || S_ISREG(mode);
    mode_t def = is_dir ? g_fs.dir_mode : g_fs.file_mode;
    return !plain_type || (a->mode & 07777) != def || a->uid != g_fs.uid || a->gid != g_fs.gid;
}

bool attrs_carry(const etcdc_kv *kv, const etcdc_kv *anchor, int64_t anchor_create_after, char *buf,
                 size_t *len)
{
    attrs a;
    if (!anchor || kv->value_error || !attrs_parse(kv->value, kv->value_len, &a))
        return false;
    bool dir = S_ISDIR(a.mode);
    /* a directory's mtime is its record's own (inode.c, node_record_locked) */
    int64_t content = dir ? (a.content > 0 ? a.content : kv->mod_revision) : anchor->mod_revision;
    unsigned applies =
        attrs_applies(&a, kv->mod_revision, kv->create_revision, anchor->create_revision, content);
    if (!applies)
        return false;
    a.anchor = anchor_create_after;
    a.content = (applies & ATTRS_APPLY_MTIME) ? 0 : -1;
    *len = attrs_format(&a, buf);
    return true;
}

const etcdc_kv *attrs_find_kv(const etcdc_kvs *keys, const char *key, size_t len)
{
    size_t lo = 0, hi = keys ? keys->count : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = names_key_cmp(keys->kvs[mid].key, keys->kvs[mid].key_len, key, len);
        if (c == 0)
            return &keys->kvs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
