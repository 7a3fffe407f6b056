/* file_sync.c - a file node's content against etcd (see file_sync.h). */
#include "file_sync.h"

#include "attrs_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attrs_store.h"
#include "commit.h"
#include "key_guards.h"
#include "listing.h"
#include "log.h"
#include "open_files.h"
#include "ops_lock.h"
#include "stats.h"
#include "witness.h"

/* The listings that show this key (its directory, and the directory whose own key it is) are
 * no longer accurate after we changed it. */
static void drop_listings_for_key(const char *key, size_t len)
{
    size_t dir_len = names_last_component(key, len, 0);
    if (dir_len < g_fs.prefix_len)
        dir_len = g_fs.prefix_len;
    node *d = node_find(key, dir_len, NODE_DIR);
    if (d) {
        node_drop_listing(d);
        node_put(d);
    }
    char *sub = key_join(key, len, "/", 1, NULL, 0, &dir_len);
    if (sub && (d = node_find(sub, dir_len, NODE_DIR))) {
        node_drop_listing(d);
        node_put(d);
    }
    free(sub);
}

/* This mount stored key (inside the commit section): its directory's listing keeps proving
 * other names absent (inode.h); the directory whose own key it is shows it no more. */
static void note_key_stored(const char *key, size_t len)
{
    size_t dir_len = names_last_component(key, len, 0);
    node *d = dir_len >= g_fs.prefix_len ? node_find(key, dir_len, NODE_DIR) : NULL;
    if (d) {
        node_listing_name_changed(d, key + dir_len, len - dir_len);
        node_put(d);
    }
    size_t sub_len;
    char *sub = key_join(key, len, "/", 1, NULL, 0, &sub_len);
    if (sub && (d = node_find(sub, sub_len, NODE_DIR))) {
        node_drop_listing(d);
        node_put(d);
    }
    free(sub);
}

void file_listed_value(node *n, listed_value *v)
{
    memset(v, 0, sizeof *v);
    node_lock(n);
    bool unread = n->value_unread;
    node_unlock(n);
    size_t len;
    char *key = unread ? node_key(n, &len) : NULL;
    if (!key)
        return;
    size_t dir_len = names_last_component(key, len, 0);
    node *d = dir_len >= g_fs.prefix_len ? node_find(key, dir_len, NODE_DIR) : NULL;
    listing *l = d ? node_cached_listing(d) : NULL;
    const listing_entry *e = l ? listing_find(l, key + dir_len, len - dir_len) : NULL;
    if (e && !e->is_dir && !e->value_error && (v->value = malloc(e->value_len + 1))) {
        memcpy(v->value, e->has_kv ? listing_entry_value(e) : "", e->value_len);
        v->value[e->value_len] = '\0';
        v->value_len = e->value_len;
        v->mod_rev = e->mod_revision;
        v->key = key;
        v->key_len = len;
        key = NULL;
    }
    free(key);
    listing_unref(l);
    node_put(d);
}

void listed_value_clear(listed_value *v)
{
    free(v->key);
    free(v->value);
    memset(v, 0, sizeof *v);
}

bool file_take_listed_locked(node *n, const listed_value *v)
{
    if (!n->known || !n->value_unread || !v || !v->value || v->mod_rev != n->mod_rev)
        return false;
    size_t len;
    char *key = node_key(n, &len);
    /* mod_revision alone does not name a value: one Txn gives many keys the same */
    bool same = key && len == v->key_len && !memcmp(key, v->key, len);
    free(key);
    return same && node_set_data_locked(n, v->value, v->value_len) == 0;
}

int file_revalidate_locked(node *n, bool *changed)
{
    *changed = false;
    size_t len;
    char *key = node_key(n, &len);
    if (!key)
        return ENOMEM;
    int rc = 0;
    int64_t now = now_ns();
    etcdc_error err = {0};
    etcdc_code code;
    if (n->known && !n->value_unread && n->mod_rev > 0) {
        /* If(mod == cached) Then() Else(Range key): no value transfer when unchanged. */
        etcdc_txn *t = etcdc_txn_new();
        etcdc_range_req get = {.key = key, .key_len = len};
        etcdc_txn_result r = {0};
        etcdc_txn_if(t, key, len, ETCDC_CMP_MOD, ETCDC_EQUAL, n->mod_rev);
        etcdc_txn_get(t, ETCDC_ELSE, &get);
        code = etcdc_txn_commit(g_fs.client, t, &r, &err);
        if (code == ETCDC_OK && r.succeeded) {
            n->validated_ns = now;
            if (r.revision > n->as_of)
                n->as_of = r.revision;
        } else if (code == ETCDC_OK && r.op_count == 1 && r.ops[0].kvs.count == 1) {
            *changed = node_apply_kv_locked(n, &r.ops[0].kvs.kvs[0], r.revision, now);
            if (r.ops[0].kvs.kvs[0].value_error) /* err names the key and why */
                rc = fs_fail("open", key, len, ETCDC_ERR_CRYPTO, &err);
        } else if (code == ETCDC_OK) {
            node_apply_absent_locked(n, r.revision, now);
            *changed = true;
            rc = ENOENT;
        } else {
            rc = fs_fail("revalidate", key, len, code, &err);
        }
        etcdc_txn_result_clear(&r);
        etcdc_txn_free(t);
    } else {
        etcdc_range_req get = {.key = key, .key_len = len};
        etcdc_kvs kvs = {0};
        code = etcdc_range(g_fs.client, &get, &kvs, &err);
        if (code == ETCDC_OK && kvs.count == 1) {
            *changed = node_apply_kv_locked(n, &kvs.kvs[0], kvs.revision, now);
            if (kvs.kvs[0].value_error) /* err names the key and why */
                rc = fs_fail("get", key, len, ETCDC_ERR_CRYPTO, &err);
        } else if (code == ETCDC_OK) {
            node_apply_absent_locked(n, kvs.revision, now);
            rc = ENOENT;
        } else {
            rc = fs_fail("get", key, len, code, &err);
        }
        etcdc_kvs_clear(&kvs);
    }
    free(key);
    return rc;
}

int64_t file_writeback_base(const node *n)
{
    const file_part *p = node_fpart(n);
    return n->has_base && p ? p->base_rev : n->mod_rev;
}

/* The compares that make the write-back refuse to overwrite what it did not see. Today only
 * --conflict-check adds one: etcd must still hold the revision the changes are based on (a key
 * that did not exist must still not exist). Lock fencing adds its compare here too. Sets
 * *guarded when it added any. */
static void writeback_guards(node *n, etcdc_txn *t, const char *key, size_t len, bool *guarded)
{
    *guarded = g_fs.opts->conflict_check;
    if (!*guarded)
        return;
    int64_t base = file_writeback_base(n);
    if (base > 0)
        etcdc_txn_if(t, key, len, ETCDC_CMP_MOD, ETCDC_EQUAL, base);
    else
        etcdc_txn_if(t, key, len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
}

/* --lock-fencing: while this mount holds a lock, a write lands only if that lock's key still
 * exists with the create revision it was granted at (the session lease was not lost). Adds the
 * compare and an Else read of the lock key, so a failure can be told apart. *fence_key is
 * NULL when no lock is held. Returns 0, EIO when a held lock is known lost (nothing must be
 * sent), or ENOMEM. */
static int fence_guard(etcdc_txn *t, char **fence_key, size_t *fence_len)
{
    *fence_key = NULL;
    int64_t create_rev = 0;
    int rc = locks_fence_key(fence_key, fence_len, &create_rev);
    if (rc == ENOENT)
        return 0;
    if (rc)
        return rc;
    etcdc_range_req probe = {.key = *fence_key, .key_len = *fence_len, .keys_only = true};
    etcdc_txn_if(t, *fence_key, *fence_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, create_rev);
    etcdc_txn_get(t, ETCDC_ELSE, &probe);
    return 0;
}

/* Stores a file's content in one write. A key not known to be in etcd yet (mod_rev 0) is
 * written by a Txn that also requires its parent directory to exist: a directory removed by
 * another host is not brought back (ENOENT). With guards (writeback_guards) the Txn also reads
 * the key when it fails, to tell a lost race (ESTALE: the key changed, appeared or vanished)
 * from a vanished directory (ENOENT). */
static int put_content_txn(node *n, const char *key, size_t len, attrs_writeback wb,
                           const attrs *rec, bool *use_witness, int64_t *rev, etcdc_error *err,
                           etcdc_code *code);

/* ... and the file's attribute record with it, in the same request, when it has one
 * (attrs_store.h): the new mtime travels with the content. */
static int put_content(node *n, const char *key, size_t len, int64_t *rev, etcdc_error *err,
                       etcdc_code *code)
{
    const char *data = node_data(n) ? node_data(n) : "";
    attrs rec;
    attrs_writeback wb = attrs_for_writeback_locked(n, n->mod_rev == 0, &rec);
    if (n->mod_rev > 0 && !g_fs.opts->conflict_check && !g_fs.opts->lock_fencing &&
        wb == ATTRS_WB_LEAVE) {
        *code = etcdc_put(g_fs.client, key, len, data, n->size, rev, err);
        return 0;
    }
    bool witnessed = true;
    int rc = put_content_txn(n, key, len, wb, &rec, &witnessed, rev, err, code);
    if (rc == ENOENT && witnessed) {
        /* The parent's witness may have been deleted while the directory lives on: ask again
         * over the whole directory before calling the directory gone. */
        witness_forget_dir(key, len);
        witnessed = false;
        rc = put_content_txn(n, key, len, wb, &rec, &witnessed, rev, err, code);
    }
    if (rc == 0 && *code == ETCDC_OK)
        witness_note(key, len);
    if (rc == 0 && *code == ETCDC_OK)
        attrs_written_locked(n, wb, &rec, *rev);
    return rc;
}

/* put_content's Txn. With *use_witness the parent guard may compare one witness key, and
 * *use_witness tells afterwards whether it did (an ENOENT may then only mean the witness is
 * gone: the caller asks again without it). */
static int put_content_txn(node *n, const char *key, size_t len, attrs_writeback wb,
                           const attrs *rec, bool *use_witness, int64_t *rev, etcdc_error *err,
                           etcdc_code *code)
{
    const char *data = node_data(n) ? node_data(n) : "";
    bool fencing = g_fs.opts->lock_fencing;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_result res = {0};
    etcdc_range_req probe = {.key = key, .key_len = len, .keys_only = true};
    bool guarded = false, witnessed = false;
    if (n->mod_rev == 0)
        txn_if_parent_exists_fast(t, key, len, *use_witness ? &witnessed : NULL);
    *use_witness = witnessed;
    writeback_guards(n, t, key, len, &guarded);
    if (guarded)
        etcdc_txn_get(t, ETCDC_ELSE, &probe);
    char *fence_key = NULL;
    size_t fence_len = 0;
    int rc = fencing ? fence_guard(t, &fence_key, &fence_len) : 0;
    etcdc_txn_put(t, ETCDC_THEN, key, len, data, n->size, 0);
    /* A key not known in etcd: read back after the Put, its create_revision (created now, or
     * kept from a key another host created meanwhile) is what records must name. */
    etcdc_range_req after = {.key = key, .key_len = len, .keys_only = true};
    if (n->mod_rev == 0)
        etcdc_txn_get(t, ETCDC_THEN, &after);
    if (wb == ATTRS_WB_PUT)
        txn_put_record(t, ETCDC_THEN, key, len, rec);
    else if (wb == ATTRS_WB_DROP)
        txn_delete_record(t, ETCDC_THEN, key, len, ATTRS_FILE);
    /* Without --conflict-check the compares read only keys the Txn does not write (the parent,
     * the lock): sent again when the connection broke (a member restarted or cut off), it
     * writes the same content under the same guards, as a retried Put would. */
    if (!guarded)
        etcdc_txn_set_resend_safe(t);
    /* a lock known lost (EIO): nothing is sent */
    *code = rc == 0 ? etcdc_txn_commit(g_fs.client, t, &res, err) : ETCDC_OK;
    size_t fence_op = guarded ? 1 : 0;
    if (rc == 0 && *code == ETCDC_OK && !res.succeeded && fence_key && res.op_count > fence_op &&
        res.ops[fence_op].kvs.count == 0) {
        rc = EIO; /* the lock is gone: the next holder's work must not be overwritten */
    } else if (rc == 0 && *code == ETCDC_OK && !res.succeeded) {
        bool key_exists = guarded && res.op_count >= 1 && res.ops[0].kvs.count > 0;
        /* Without a key, a guard on "no key" held: the parent compare failed. */
        rc = guarded && (key_exists || file_writeback_base(n) > 0) ? ESTALE : ENOENT;
    }
    if (rc == 0 && *code == ETCDC_OK && res.succeeded && n->mod_rev == 0 && res.op_count >= 2 &&
        res.ops[1].kvs.count == 1)
        n->create_rev = res.ops[1].kvs.kvs[0].create_revision;
    *rev = res.revision;
    free(fence_key);
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    return rc;
}

void file_drop_changes_locked(node *n, int rc)
{
    open_files_lose_changes(n->ino, rc);
    if (n->pending)
        node_pending_add(-1);
    n->dirty = n->written = n->pending = n->too_big = n->has_base = false;
    n->known = false;
    n->mod_rev = 0;
    if (n->rec && n->rec->local) /* a chmod made since goes with the changes it waited for */
        n->rec->local = n->rec->present = false;
}

int file_writeback_locked(node *n, const char *why)
{
    if (!n->dirty || n->unlinked)
        return 0;
    if (n->too_big) {
        /* A write failed with EFBIG: storing what came before it would keep a cut-off file.
         * The changes are dropped; etcd keeps the previous value (or no key for a new file). */
        file_drop_changes_locked(n, EFBIG);
        return EFBIG;
    }
    /* The key cannot move between reading it and storing the result (commit.h). */
    commit cm;
    commit_begin(&cm);
    size_t len;
    char *key = node_key(n, &len);
    if (!key) {
        commit_end(&cm, 0);
        return ENOMEM;
    }
    int rc = 0;
    int64_t rev = 0;
    etcdc_error err = {0};
    etcdc_code code;
    int64_t base = file_writeback_base(n);
    rc = put_content(n, key, len, &rev, &err, &code);
    if (rc == EIO) {
        /* --lock-fencing: a lock this mount holds was lost; the changes made under it are
         * dropped, never written later (close/fsync report EIO). */
        char kb[LOG_KEY_BUF];
        log_msg(LOG_WARNING, "%s: %s not written: the lock held by this mount was lost (EIO)", why,
                log_key(key, len, kb, sizeof kb));
        file_drop_changes_locked(n, rc);
    } else if (rc == ESTALE) {
        /* --conflict-check: another writer changed the key since this host's view; etcd keeps
         * their content and ours is dropped (close/fsync report ESTALE). */
        char kb[LOG_KEY_BUF];
        log_msg(LOG_NOTICE,
                "%s: %s changed in etcd since it was opened (base revision %lld): "
                "not overwritten, local changes dropped (ESTALE)",
                why, log_key(key, len, kb, sizeof kb), (long long)base);
        file_drop_changes_locked(n, rc);
        drop_listings_for_key(key, len);
    } else if (rc == ENOENT) {
        /* The parent directory was removed (by another host): the file is not created, and
         * its buffered content is dropped (as on a local filesystem, nothing is left). */
        char kb[LOG_KEY_BUF];
        log_debug("%s: %s not created, its directory is gone", why,
                  log_key(key, len, kb, sizeof kb));
        file_drop_changes_locked(n, rc);
        drop_listings_for_key(key, len);
    } else if (code == ETCDC_OK) {
        stats_inc(STAT_write_back);
        /* Handles that saw the base saw what we wrote on top of it: our own write is not a
         * conflict for them. */
        if (g_fs.opts->conflict_check)
            open_files_advance_bases(n->ino, base, rev);
        /* Every descriptor's changes are stored now, whichever close stored them: a later
         * release of one of them must not store the file again (a newer O_TRUNC's '') */
        open_files_clear_changes(n->ino);
        /* The directory's listing learns the name before the file stops being pending: a
         * listing read in between (opendir skips the pending scan once no file is pending)
         * would otherwise be taken as showing the directory as it is, without the name. */
        note_key_stored(key, len);
        n->dirty = false;
        n->written = false;
        n->has_base = false;
        if (n->pending) {
            n->pending = false;
            node_pending_add(-1);
        }
        node_committed_locked(n, rev);
        if (node_fpart(n))              /* it has one: it held the content just written */
            n->fpart->kernel_rev = rev; /* the kernel's pages hold what was just written */
        n->local_content = true;
        char kb[LOG_KEY_BUF];
        log_debug("%s: put %s (%zu bytes) at revision %lld", why, log_key(key, len, kb, sizeof kb),
                  n->size, (long long)rev);
    } else {
        rc = fs_fail(why, key, len, code, &err);
    }
    commit_end(&cm, rc == 0 && code == ETCDC_OK ? rev : 0);
    free(key);
    return rc;
}

static void writeback_one(node *n, void *arg)
{
    (void)arg;
    if (n->type != NODE_FILE)
        return;
    node_lock(n);
    file_writeback_locked(n, "unmount");
    node_unlock(n);
}

void file_writeback_all(void)
{
    node_for_each(writeback_one, NULL);
}
void file_replaced_locked(node *n, int64_t new_rev)
{
    if (g_fs.opts->conflict_check)
        open_files_advance_bases(n->ino, file_writeback_base(n), new_rev);
    n->has_base = false;
}
