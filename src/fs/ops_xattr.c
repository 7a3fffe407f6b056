/*
 * ops_xattr.c - extended attributes: etcd's per-key metadata and its concurrency primitives as
 * user.etcd.* attributes, for scripts that use getfattr/setfattr (docs/xattrs.md).
 *
 * Every attribute is one entry of the table below: a name, the node type it applies to, and
 * a reader and/or a writer. Values are decimal text, read from etcd at each call (one Range of
 * the key without its value; ttl adds a LeaseTimeToLive), so they equal what etcdctl reports.
 * Writers act on etcd at once (ttl, lease, cas) and refresh the node's cache.
 *
 * Names outside user.* (security.capability, which the kernel asks for on writes, and
 * system.posix_acl_*) are answered without any round trip: no such attribute. etcd has no place
 * to keep other user.* attributes next to a value, so setting one fails with ENOTSUP rather than
 * being accepted and lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "attrs_store.h"
#include "commit.h"
#include "file_sync.h"
#include "key_guards.h"
#include "log.h"
#include "ops.h"
#include "ops_lock.h"
#include "past.h"
#include "resolve.h"

#define XATTR_PREFIX "user.etcd."
/* etcd's largest lease TTL (MaxLeaseTTL, seconds). */
#define MAX_LEASE_TTL INT64_C(9000000000)
/* Room for the text of any attribute value (numbers, or the lock's holders and waiters). */
#define VALUE_MAX 16384 /* user.etcd.history needs the room (~1,400 revisions) */

/* What a reader or writer needs: the node (its mu held by writers) and its key. */
typedef struct xattr_ctx {
    node *n;
    const char *key; /* file: the key; directory: its prefix */
    size_t key_len;
} xattr_ctx;

typedef struct xattr_def {
    const char *name;
    node_type type; /* NODE_FILE, NODE_DIR or NODE_PAST_FILE */
    /* Writes the value's text into out (VALUE_MAX bytes); returns 0 or an errno. NULL: the
     * attribute can only be written (not listed, reads give ENODATA). */
    int (*get)(const xattr_ctx *c, char *out, size_t *out_len);
    /* Applies value; returns 0 or an errno. *content_changed: the file's content changed (the
     * kernel's pages must go). NULL: read-only (EPERM). */
    int (*set)(const xattr_ctx *c, const char *value, size_t size, bool *content_changed);
    /* removexattr means writing this value (NULL: EPERM). */
    const char *remove_as;
    /* Readable but not listed: too costly for getfattr -d or cp -a to read by the way. */
    bool unlisted;
} xattr_def;

/* ---- reading ---- */

static int put_number(int64_t v, char *out, size_t *out_len)
{
    int w = snprintf(out, VALUE_MAX, "%lld", (long long)v);
    *out_len = (size_t)w;
    return 0;
}

/* The key's metadata (one Range without the value). A key missing in etcd reads as zeros
 * while the file exists only here (created, not yet written back); otherwise ENOENT. */
static int file_meta(const xattr_ctx *c, etcdc_kv *out)
{
    memset(out, 0, sizeof *out);
    etcdc_range_req req = {.key = c->key, .key_len = c->key_len, .keys_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_range(g_fs.client, &req, &kvs, &err);
    int rc = code == ETCDC_OK ? 0 : fs_fail("getxattr", c->key, c->key_len, code, &err);
    if (rc == 0 && kvs.count == 1) {
        out->create_revision = kvs.kvs[0].create_revision;
        out->mod_revision = kvs.kvs[0].mod_revision;
        out->version = kvs.kvs[0].version;
        out->lease = kvs.kvs[0].lease;
    } else if (rc == 0) {
        node_lock(c->n);
        rc = c->n->pending || c->n->dirty ? 0 : ENOENT;
        node_unlock(c->n);
    }
    etcdc_kvs_clear(&kvs);
    return rc;
}

static int get_revision(const xattr_ctx *c, char *out, size_t *out_len)
{
    etcdc_kv kv;
    int rc = file_meta(c, &kv);
    return rc ? rc : put_number(kv.mod_revision, out, out_len);
}

/* The revisions of the key's versions since it was last created, newest first, one per line;
 * each version reads as .etcdfs/at/<rev>/<path> (docs/xattrs.md). One keys-only Range per
 * version, back to the creation, to the compaction point, or as many as fit. */
static int get_history(const xattr_ctx *c, char *out, size_t *out_len)
{
    etcdc_kv kv;
    int rc = file_meta(c, &kv);
    size_t len = 0;
    for (int64_t mod = rc ? 0 : kv.mod_revision; mod > 0;) {
        char line[24];
        int w = snprintf(line, sizeof line, "%lld\n", (long long)mod);
        if (len + (size_t)w > VALUE_MAX)
            break;
        memcpy(out + len, line, (size_t)w);
        len += (size_t)w;
        if (mod <= kv.create_revision)
            break;
        etcdc_range_req req = {
            .key = c->key, .key_len = c->key_len, .keys_only = true, .revision = mod - 1};
        etcdc_kvs kvs = {0};
        etcdc_error err = {0};
        etcdc_code code = etcdc_range(g_fs.client, &req, &kvs, &err);
        if (code == ETCDC_ERR_COMPACTED)
            mod = 0; /* the older versions are gone */
        else if (code != ETCDC_OK)
            rc = fs_fail("getxattr", c->key, c->key_len, code, &err);
        else
            mod = kvs.count == 1 ? kvs.kvs[0].mod_revision : 0;
        etcdc_kvs_clear(&kvs);
        if (rc)
            break;
    }
    *out_len = len;
    return rc;
}

/* A past file's mod_revision as of its revision (known with the node: no round trip). */
static int get_past_revision(const xattr_ctx *c, char *out, size_t *out_len)
{
    int64_t mod;
    int rc = past_mod_revision(c->n, &mod);
    return rc ? rc : put_number(mod, out, out_len);
}

static int get_create_revision(const xattr_ctx *c, char *out, size_t *out_len)
{
    etcdc_kv kv;
    int rc = file_meta(c, &kv);
    return rc ? rc : put_number(kv.create_revision, out, out_len);
}

static int get_version(const xattr_ctx *c, char *out, size_t *out_len)
{
    etcdc_kv kv;
    int rc = file_meta(c, &kv);
    return rc ? rc : put_number(kv.version, out, out_len);
}

static int get_lease(const xattr_ctx *c, char *out, size_t *out_len)
{
    etcdc_kv kv;
    int rc = file_meta(c, &kv);
    return rc ? rc : put_number(kv.lease, out, out_len);
}

/* Remaining seconds of the key's lease; -1 when the key has no lease (it never expires) or the
 * lease has just expired (the key is being deleted). */
static int get_ttl(const xattr_ctx *c, char *out, size_t *out_len)
{
    etcdc_kv kv;
    int rc = file_meta(c, &kv);
    if (rc || kv.lease == 0)
        return rc ? rc : put_number(-1, out, out_len);
    int64_t ttl = -1;
    etcdc_error err = {0};
    etcdc_code code = etcdc_lease_time_to_live(g_fs.client, kv.lease, &ttl, NULL, NULL, &err);
    if (code == ETCDC_ERR_NOT_FOUND)
        ttl = -1; /* revoked or expired between the two requests */
    else if (code != ETCDC_OK)
        return fs_fail("getxattr ttl", c->key, c->key_len, code, &err);
    return put_number(ttl < 0 ? -1 : ttl, out, out_len);
}

/* [key, end) of a directory's prefix ("\0" .. "\0" for the whole key space). */
static char *dir_range(const xattr_ctx *c, const char **start, size_t *start_len, size_t *end_len)
{
    *start = c->key_len ? c->key : "\0";
    *start_len = c->key_len ? c->key_len : 1;
    return key_prefix_end(c->key, c->key_len, end_len);
}

/* Number of keys below the directory (marker keys of empty subdirectories included), as
 * `etcdctl get --prefix --count-only` reports it: one count-only Range. */
static int get_dir_keys(const xattr_ctx *c, char *out, size_t *out_len)
{
    const char *start;
    size_t start_len, end_len;
    char *end = dir_range(c, &start, &start_len, &end_len);
    etcdc_range_req req = {.key = start,
                           .key_len = start_len,
                           .range_end = end,
                           .range_end_len = end_len,
                           .count_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = end ? etcdc_range(g_fs.client, &req, &kvs, &err) : ETCDC_ERR_NO_MEMORY;
    int rc = code == ETCDC_OK ? put_number(kvs.total, out, out_len)
                              : fs_fail("getxattr keys", c->key, c->key_len, code, &err);
    etcdc_kvs_clear(&kvs);
    free(end);
    return rc;
}

/* The newest mod_revision of the keys below (0 when there are none): one Range sorted by
 * mod_revision, descending, limit 1, without values. A deletion below does not raise it. */
static int get_dir_revision(const xattr_ctx *c, char *out, size_t *out_len)
{
    const char *start;
    size_t start_len, end_len;
    char *end = dir_range(c, &start, &start_len, &end_len);
    etcdc_range_req req = {.key = start,
                           .key_len = start_len,
                           .range_end = end,
                           .range_end_len = end_len,
                           .limit = 1,
                           .sort_order = 2,
                           .sort_target = 3,
                           .keys_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = end ? etcdc_range(g_fs.client, &req, &kvs, &err) : ETCDC_ERR_NO_MEMORY;
    int rc = code == ETCDC_OK ? put_number(kvs.count ? kvs.kvs[0].mod_revision : 0, out, out_len)
                              : fs_fail("getxattr revision", c->key, c->key_len, code, &err);
    etcdc_kvs_clear(&kvs);
    free(end);
    return rc;
}

/* ---- writing (caller holds c->n->mu; local changes were written back first) ---- */

/* A non-negative decimal number (or 0x-prefixed hex when hex_ok) that is the whole value. */
static int parse_number(const char *v, size_t size, bool hex_ok, int64_t max, int64_t *out)
{
    int base = 10;
    if (hex_ok && size > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        base = 16;
        v += 2;
        size -= 2;
    }
    if (size == 0 || size > 20)
        return EINVAL;
    int64_t n = 0;
    for (size_t i = 0; i < size; i++) {
        int d = v[i] >= '0' && v[i] <= '9'                 ? v[i] - '0'
                : base == 16 && v[i] >= 'a' && v[i] <= 'f' ? v[i] - 'a' + 10
                : base == 16 && v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 10
                                                           : -1;
        if (d < 0 || n > (max - d) / base)
            return EINVAL;
        n = n * base + d;
    }
    *out = n;
    return 0;
}

/* Attaching to a lease that does not exist is a bad value, not a missing file. */
static int lease_fail(const char *op, const xattr_ctx *c, etcdc_code code, const etcdc_error *err)
{
    if (code == ETCDC_ERR_NOT_FOUND && strstr(err->message, "lease"))
        code = ETCDC_ERR_INVALID_ARGUMENT;
    return fs_fail(op, c->key, c->key_len, code, err);
}

/* Attaches the key, and its attribute record when it has one (which must then name the key's
 * new version and expire with it: docs/design-attributes.md), to the lease, in one Txn. */
static etcdc_code attach_lease(const xattr_ctx *c, int64_t lease, etcdc_error *err)
{
    attrs rec;
    bool with_rec =
        c->n->create_rev > 0 && attrs_following_key_locked(c->n, c->n->create_rev, false, &rec);
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_attach_lease(t, ETCDC_THEN, c->key, c->key_len, lease);
    if (with_rec) {
        size_t rlen;
        char *rkey = attrs_key(c->key, c->key_len, ATTRS_FILE, &rlen);
        char text[ATTRS_TEXT_MAX];
        size_t tlen = attrs_format(&rec, text);
        if (rkey)
            etcdc_txn_put(t, ETCDC_THEN, rkey, rlen, text, tlen, lease);
        else
            etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
        free(rkey);
    }
    etcdc_txn_result res = {0};
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, err);
    if (code == ETCDC_ERR_INVALID_ARGUMENT && strstr(err->message, "key not found"))
        code = ETCDC_ERR_NOT_FOUND; /* as etcdc_attach_lease says it */
    if (code == ETCDC_OK && with_rec)
        node_set_record_locked(c->n, &rec, res.revision);
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    return code;
}

/* user.etcd.ttl = N: a new N-second lease for the key (2 round trips: grant, attach); 0
 * detaches the key from any lease (1 round trip). */
static int set_ttl(const xattr_ctx *c, const char *v, size_t size, bool *content_changed)
{
    *content_changed = false;
    int64_t ttl;
    if (parse_number(v, size, false, MAX_LEASE_TTL, &ttl))
        return EINVAL;
    etcdc_error err = {0};
    int64_t lease = 0;
    etcdc_code code = ttl > 0 ? etcdc_lease_grant(g_fs.client, ttl, &lease, &err) : ETCDC_OK;
    if (code != ETCDC_OK)
        return fs_fail("setxattr ttl", c->key, c->key_len, code, &err);
    code = attach_lease(c, lease, &err);
    if (code != ETCDC_OK && lease) /* do not leave an unused lease behind until it expires */
        etcdc_lease_revoke(g_fs.client, lease, NULL);
    return code == ETCDC_OK ? 0 : lease_fail("setxattr ttl", c, code, &err);
}

/* user.etcd.lease = ID: attach the key to an existing lease (0 detaches); 1 round trip. */
static int set_lease(const xattr_ctx *c, const char *v, size_t size, bool *content_changed)
{
    *content_changed = false;
    int64_t lease;
    if (parse_number(v, size, true, INT64_MAX, &lease))
        return EINVAL;
    etcdc_error err = {0};
    etcdc_code code = attach_lease(c, lease, &err);
    return code == ETCDC_OK ? 0 : lease_fail("setxattr lease", c, code, &err);
}

/* user.etcd.cas = REV:CONTENT: one Txn, If(mod_revision == REV) Then(Put content) - REV 0:
 * If(no such key, and the parent directory exists) - Else(read the key, to tell a lost race,
 * ESTALE, from a vanished directory, ENOENT). The value is sealed like any write when values
 * are encrypted; like every write through etcdfs the Put detaches a lease. */
static int set_cas(const xattr_ctx *c, const char *v, size_t size, bool *content_changed)
{
    *content_changed = false;
    const char *colon = memchr(v, ':', size);
    int64_t rev;
    if (!colon || parse_number(v, (size_t)(colon - v), false, INT64_MAX, &rev))
        return EINVAL;
    const char *content = colon + 1;
    size_t content_len = size - (size_t)(content - v);
    if (content_len > g_fs.opts->max_file_size)
        return EFBIG;
    etcdc_txn *t = etcdc_txn_new();
    etcdc_range_req probe = {.key = c->key, .key_len = c->key_len, .keys_only = true};
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    if (rev > 0) {
        etcdc_txn_if(t, c->key, c->key_len, ETCDC_CMP_MOD, ETCDC_EQUAL, rev);
    } else {
        etcdc_txn_if(t, c->key, c->key_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
        txn_if_parent_exists(t, c->key, c->key_len);
    }
    etcdc_txn_get(t, ETCDC_ELSE, &probe);
    etcdc_txn_put(t, ETCDC_THEN, c->key, c->key_len, content, content_len, 0);
    attrs rec; /* the new content's mtime; the Put detaches a lease from the record too */
    bool with_rec = rev > 0 && c->n->create_rev > 0 &&
                    attrs_following_key_locked(c->n, c->n->create_rev, true, &rec);
    if (with_rec)
        txn_put_record(t, ETCDC_THEN, c->key, c->key_len, &rec);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &res, &err);
    int rc = 0;
    if (code != ETCDC_OK) {
        rc = fs_fail("setxattr cas", c->key, c->key_len, code, &err);
    } else if (!res.succeeded) {
        bool exists = res.op_count == 1 && res.ops[0].kvs.count > 0;
        rc = rev == 0 && !exists ? ENOENT : ESTALE;
        char kb[LOG_KEY_BUF];
        log_debug("cas %s expecting revision %lld: %s", log_key(c->key, c->key_len, kb, sizeof kb),
                  (long long)rev, rc == ESTALE ? "lost (ESTALE)" : "directory gone");
    } else {
        /* The cache takes what was written, so a following read or stat shows it; the next
         * open drops the kernel's pages (the cache's revision is not the one it was given). */
        etcdc_kv kv = {.value = (char *)content,
                       .value_len = content_len,
                       .mod_revision = res.revision,
                       .create_revision = rev > 0 ? c->n->create_rev : res.revision};
        node_apply_kv_locked(c->n, &kv, res.revision, now_ns());
        if (with_rec)
            node_set_record_locked(c->n, &rec, res.revision);
        *content_changed = true;
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
    return rc;
}

static int get_lock(const xattr_ctx *c, char *out, size_t *out_len)
{
    return locks_describe(c->key, c->key_len, out, VALUE_MAX, out_len);
}

/* ---- the table ---- */

static const xattr_def xattrs[] = {
    {XATTR_PREFIX "revision", NODE_FILE, get_revision, NULL, NULL, false},
    {XATTR_PREFIX "create_revision", NODE_FILE, get_create_revision, NULL, NULL, false},
    {XATTR_PREFIX "version", NODE_FILE, get_version, NULL, NULL, false},
    {XATTR_PREFIX "history", NODE_FILE, get_history, NULL, NULL, true},
    {XATTR_PREFIX "revision", NODE_PAST_FILE, get_past_revision, NULL, NULL, false},
    {XATTR_PREFIX "lease", NODE_FILE, get_lease, set_lease, "0", false},
    {XATTR_PREFIX "ttl", NODE_FILE, get_ttl, set_ttl, "0", false},
    {XATTR_PREFIX "cas", NODE_FILE, NULL, set_cas, NULL, false},
    {XATTR_PREFIX "lock", NODE_FILE, get_lock, NULL, NULL, false},
    {XATTR_PREFIX "keys", NODE_DIR, get_dir_keys, NULL, NULL, false},
    {XATTR_PREFIX "revision", NODE_DIR, get_dir_revision, NULL, NULL, false},
};
#define N_XATTRS (sizeof xattrs / sizeof xattrs[0])

static const xattr_def *find_xattr(const node *n, const char *name)
{
    for (size_t i = 0; i < N_XATTRS; i++)
        if (xattrs[i].type == n->type && !strcmp(xattrs[i].name, name))
            return &xattrs[i];
    return NULL;
}

/* The node's key (files) or prefix (directories); NULL for the statistics nodes. */
/* The node's key read again (inside a commit section, where it cannot change). */
static int ctx_rekey(xattr_ctx *c)
{
    free((char *)c->key);
    c->key = node_key(c->n, &c->key_len);
    return c->key ? 0 : ENOMEM;
}

static int ctx_open(fuse_ino_t ino, xattr_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->n = node_get(ino);
    if (!c->n)
        return ENOENT;
    if (c->n->type != NODE_FILE && c->n->type != NODE_DIR)
        return 0;
    char *key = node_key(c->n, &c->key_len);
    c->key = key;
    return key ? 0 : ENOMEM;
}

static void ctx_close(xattr_ctx *c)
{
    free((char *)c->key);
    node_put(c->n);
}

/* Replies with a value or a name list: its size when the caller asks (size 0), ERANGE when the
 * caller's buffer is too small. */
static void reply_sized(fuse_req_t req, const char *buf, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, buf, len);
}

/* The namespaces Linux knows (xattr(7)). FUSE passes every name through, so a name outside
 * them is refused here with EOPNOTSUPP, as the kernel does for local filesystems. */
static bool known_namespace(const char *name)
{
    static const char *const prefixes[] = {"user.", "trusted.", "security.", "system."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return true;
    return false;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    /* Outside user.*: nothing, and no round trip (the kernel asks on every write). */
    if (strncmp(name, "user.", 5)) {
        fuse_reply_err(req, known_namespace(name) ? ENODATA : EOPNOTSUPP);
        return;
    }
    xattr_ctx c;
    int rc = ctx_open(ino, &c);
    const xattr_def *d = rc == 0 ? find_xattr(c.n, name) : NULL;
    char value[VALUE_MAX];
    size_t len = 0;
    if (rc == 0 && (!d || !d->get))
        rc = ENODATA;
    if (rc == 0)
        rc = d->get(&c, value, &len);
    if (rc == 0)
        reply_sized(req, value, len, size);
    else
        fuse_reply_err(req, rc);
    log_debug("getxattr %lu %s -> %s", (unsigned long)ino, name, rc ? strerror(rc) : "ok");
    ctx_close(&c);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    node *n = node_get(ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    char list[1024];
    size_t len = 0;
    for (size_t i = 0; i < N_XATTRS; i++) {
        size_t l = strlen(xattrs[i].name) + 1;
        if (xattrs[i].type != n->type || !xattrs[i].get || xattrs[i].unlisted ||
            len + l > sizeof list)
            continue;
        memcpy(list + len, xattrs[i].name, l);
        len += l;
    }
    reply_sized(req, list, len, size);
    node_put(n);
}

/* Writes value to attribute d of the node. Local changes not yet in etcd are written back
 * first (as fsync would), so that the attribute acts on the content the file shows. */
static int set_locked(const xattr_ctx *c, const xattr_def *d, const char *value, size_t size,
                      bool *content_changed)
{
    int rc = 0;
    if (c->n->type == NODE_FILE && (c->n->dirty || c->n->pending))
        rc = file_writeback_locked(c->n, "setxattr");
    return rc ? rc : d->set(c, value, size, content_changed);
}

static void set_reply(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                      size_t size, int flags)
{
    /* XATTR_REPLACE of an attribute that cannot exist: ENODATA, as setxattr(2) says. */
    bool replace_missing = (flags & XATTR_REPLACE) && known_namespace(name);
    if (strncmp(name, "user.", 5)) {
        fuse_reply_err(req, replace_missing ? ENODATA : ENOTSUP);
        return;
    }
    xattr_ctx c;
    int rc = ctx_open(ino, &c);
    const xattr_def *d = rc == 0 ? find_xattr(c.n, name) : NULL;
    bool content_changed = false;
    if (rc == 0 && past_node(c.n))
        rc = EROFS;
    if (rc == 0 && !d) /* etcd has nowhere to keep it: refused, never silently dropped */
        rc = replace_missing ? ENODATA : ENOTSUP;
    if (rc == 0 && !d->set)
        rc = EPERM;
    if (rc == 0 && (flags & XATTR_CREATE) && d->get)
        rc = EEXIST; /* readable attributes always exist */
    if (rc == 0 && g_fs.opts->ro)
        rc = EROFS;
    if (rc == 0) {
        node_lock(c.n);
        commit cm;
        commit_begin(&cm);
        rc = ctx_rekey(&c); /* the name cannot move from here to commit_end */
        if (rc == 0)
            rc = set_locked(&c, d, value, size, &content_changed);
        commit_end(&cm, 0); /* the node took its result itself (by revision) */
        node_unlock(c.n);
    }
    fuse_reply_err(req, rc);
    /* After the reply and without locks: the kernel may need both to drop the pages. */
    if (content_changed)
        fuse_lowlevel_notify_inval_inode(g_fs.se, ino, 0, 0);
    log_debug("setxattr %lu %s (%zu bytes) -> %s", (unsigned long)ino, name, size,
              rc ? strerror(rc) : "ok");
    ctx_close(&c);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags)
{
    set_reply(req, ino, name, value, size, flags);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    if (strncmp(name, "user.", 5)) {
        fuse_reply_err(req, known_namespace(name) ? ENODATA : EOPNOTSUPP);
        return;
    }
    node *n = node_get(ino);
    const xattr_def *d = n ? find_xattr(n, name) : NULL;
    node_put(n);
    if (!n)
        fuse_reply_err(req, ENOENT);
    else if (!d)
        fuse_reply_err(req, ENODATA);
    else if (!d->remove_as)
        fuse_reply_err(req, EPERM);
    else
        set_reply(req, ino, name, d->remove_as, strlen(d->remove_as), 0);
}
