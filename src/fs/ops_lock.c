/*
 * ops_lock.c - flock(2) and whole-file fcntl locks as etcd locks (see ops_lock.h).
 *
 * Every lock of this mount goes through one etcd session (a lease kept alive by the library),
 * created at the first lock and replaced when it is lost. The lock of a file is the etcd lock
 * named <lock prefix><file's key>, in etcdctl's layout, so `etcdctl lock` and every other
 * mount exclude each other, and processes of this host queue in etcd like everyone else.
 *
 * A blocking request is served by a thread of its own that replies when the lock is granted:
 * FUSE worker threads are never parked in a wait that may last for hours. An interrupted
 * waiter (a signal, `timeout 2 flock ...`) is cancelled at once, and the library deletes its
 * waiter key before returning, so nothing stale delays later lockers.
 */
#include "ops_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "inode.h"
#include "log.h"
#include "notify.h"
#include "stats.h"

#define DEFAULT_LOCK_TTL_S 10

/* One etcd session; held locks keep it alive (refs) after it stopped being the current one. */
typedef struct lock_session {
    etcdc_session *s;
    int refs;  /* [locks_mu] held locks + 1 while current */
    bool lost; /* atomic: the lease is gone, every lock taken through it is void */
} lock_session;

typedef struct held_lock {
    struct held_lock *next;
    uint64_t id; /* for interrupts: looked up by id, never by pointer */
    fuse_ino_t ino;
    /* flock: our handle of the open file description (fi->fh). Not the kernel's lock_owner:
     * that is the address of the struct file, which a new open may reuse while the release
     * of the old one (sent asynchronously) is still on its way, and that release would then
     * end the new description's lock. fcntl: the process (lock_owner; its unlocks are
     * synchronous). */
    uint64_t owner;
    /* fcntl: our handle of the open file description it was taken through. An OFD lock
     * (F_OFD_SETLK) is named by that description and ends with it; the kernel sends no unlock
     * for it (locks_release_ofd). */
    uint64_t fh;
    bool posix;
    bool shared;
    pid_t pid;
    lock_session *ls;
    etcdc_lock *lock;     /* NULL while being acquired */
    etcdc_cancel *cancel; /* while being acquired */
    bool abandoned;       /* released or closed while being acquired */
} held_lock;

static pthread_mutex_t locks_mu = PTHREAD_MUTEX_INITIALIZER;
static held_lock *held;       /* [locks_mu] granted and pending locks */
static lock_session *current; /* [locks_mu] */
static uint64_t next_id = 1;  /* [locks_mu] */
static char holder_host[256]; /* set once by locks_init */

void locks_init(void)
{
    if (gethostname(holder_host, sizeof holder_host - 1) != 0)
        strcpy(holder_host, "unknown");
}

const char *locks_prefix(void)
{
    return g_fs.opts->lock_prefix ? g_fs.opts->lock_prefix : LOCKS_DEFAULT_PREFIX;
}

static void on_session_lost(void *arg)
{
    lock_session *ls = arg;
    __atomic_store_n(&ls->lost, true, __ATOMIC_RELEASE);
    log_msg(LOG_WARNING, "lock session lost (lease expired or revoked): locks held through it "
                         "are no longer held");
}

/* [locks_mu] */
static void session_unref_locked(lock_session *ls)
{
    if (ls && --ls->refs == 0) {
        etcdc_session_free(ls->s); /* revokes the lease: its keys go with it */
        free(ls);
    }
}

/* The current session, created (one Grant) when there is none or it was lost. [locks_mu] */
static lock_session *session_get_locked(etcdc_error *err)
{
    if (current && !__atomic_load_n(&current->lost, __ATOMIC_ACQUIRE))
        return current;
    if (current) {
        lock_session *old = current;
        current = NULL;
        session_unref_locked(old);
    }
    lock_session *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    int64_t ttl_s =
        g_fs.opts->lock_ttl_ms > 0 ? (g_fs.opts->lock_ttl_ms + 999) / 1000 : DEFAULT_LOCK_TTL_S;
    ls->s = etcdc_session_new(g_fs.client, ttl_s, on_session_lost, ls, err);
    if (!ls->s) {
        free(ls);
        return NULL;
    }
    ls->refs = 1;
    current = ls;
    return ls;
}

static char *lock_name(fuse_ino_t ino, size_t *len, int *rc)
{
    node *n = node_get(ino);
    *rc = n ? 0 : ENOENT;
    if (n && n->type == NODE_PAST_FILE)
        *rc = EROFS; /* a lock is a key written to etcd: none in the past view */
    else if (n && n->type != NODE_FILE)
        *rc = EISDIR; /* directories carry no lock (the kernel sends none for them anyway) */
    size_t klen = 0;
    char *key = *rc == 0 ? node_key(n, &klen) : NULL;
    node_put(n);
    if (*rc == 0 && !key)
        *rc = ENOMEM;
    const char *p = locks_prefix();
    char *name = key ? key_join(p, strlen(p), key, klen, NULL, 0, len) : NULL;
    if (key && !name)
        *rc = ENOMEM;
    free(key);
    return name;
}

/* [locks_mu] Unlinks and frees a finished entry. */
static void forget_locked(held_lock *h)
{
    for (held_lock **p = &held; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    if (h->lock)
        stats_locks_held(-1);
    session_unref_locked(h->ls);
    etcdc_cancel_free(h->cancel);
    free(h);
}

static held_lock *find_locked(fuse_ino_t ino, uint64_t owner, bool posix)
{
    for (held_lock *h = held; h; h = h->next)
        if (h->ino == ino && h->owner == owner && h->posix == posix && h->lock)
            return h;
    return NULL;
}

/* [locks_mu] Detaches a granted lock from its entry, which is forgotten; the session is kept
 * (one more reference) until release_detached has deleted the key through it. */
static etcdc_lock *detach_locked(held_lock *h, lock_session **ls)
{
    etcdc_lock *l = h->lock;
    h->lock = NULL;
    stats_locks_held(-1);
    *ls = h->ls;
    (*ls)->refs++;
    forget_locked(h);
    return l;
}

/* Deletes the lock key (one round trip) and drops the session reference detach_locked took. No
 * lock held. */
static void release_detached(etcdc_lock *l, lock_session *ls)
{
    etcdc_error err = {0};
    size_t klen;
    const char *k = etcdc_lock_key(l, &klen);
    char kb[LOG_KEY_BUF];
    log_debug("unlock %s", log_key(k, klen, kb, sizeof kb));
    if (etcdc_lock_release(l, &err) != ETCDC_OK)
        log_msg(LOG_WARNING, "unlock: %s (the key goes with the session lease)", err.message);
    etcdc_lock_free(l);
    pthread_mutex_lock(&locks_mu);
    session_unref_locked(ls);
    pthread_mutex_unlock(&locks_mu);
}

static bool matches(const held_lock *h, fuse_ino_t ino, uint64_t id, bool posix, bool by_fh)
{
    return h->ino == ino && h->posix == posix && (by_fh ? h->fh : h->owner) == id;
}

/* Releases the granted locks and cancels the waits of (ino, kind) whose owner (by_fh: open
 * file handle) is id. One Delete per granted lock. */
static void release_where(fuse_ino_t ino, uint64_t id, bool posix, bool by_fh)
{
    for (;;) {
        pthread_mutex_lock(&locks_mu);
        held_lock *h = held;
        while (h && !matches(h, ino, id, posix, by_fh))
            h = h->next;
        if (h && !h->lock) {
            /* a wait still in flight (its process was killed): its thread cleans up */
            etcdc_cancel_fire(h->cancel);
            h->abandoned = true;
            h->ino = 0; /* matches nothing any more */
            pthread_mutex_unlock(&locks_mu);
            continue;
        }
        lock_session *ls = NULL;
        etcdc_lock *l = h ? detach_locked(h, &ls) : NULL;
        pthread_mutex_unlock(&locks_mu);
        if (!h)
            return;
        release_detached(l, ls);
    }
}

static void release_matching(fuse_ino_t ino, uint64_t owner, bool posix)
{
    release_where(ino, owner, posix, false);
}

typedef struct waiter {
    fuse_req_t req;
    held_lock *h;
    char *name;
    size_t name_len;
    bool posix;
    char info[320];
} waiter;

static void on_interrupt(fuse_req_t req, void *data)
{
    (void)req;
    uint64_t id = (uint64_t)(uintptr_t)data;
    pthread_mutex_lock(&locks_mu);
    for (held_lock *h = held; h; h = h->next)
        if (h->id == id && h->cancel)
            etcdc_cancel_fire(h->cancel);
    pthread_mutex_unlock(&locks_mu);
}

static int errno_for_lock(etcdc_code code, bool posix)
{
    switch (code) {
    case ETCDC_OK: return 0;
    case ETCDC_ERR_WOULD_BLOCK: return posix ? EAGAIN : EWOULDBLOCK;
    case ETCDC_ERR_CANCELED: return EINTR;
    case ETCDC_ERR_LEASE_EXPIRED: return ENOLCK;
    default: return errno_from_etcdc(code);
    }
}

/* Acquires for w (blocking or not), applies the revision fence, records the result and
 * replies. Frees w. */
static void acquire_and_reply(waiter *w, bool try_once)
{
    held_lock *h = w->h;
    etcdc_lock_opts o = {.mode = h->shared ? ETCDC_LOCK_SHARED : ETCDC_LOCK_EXCLUSIVE,
                         .try_once = try_once,
                         .cancel = h->cancel,
                         .holder_info = w->info,
                         .holder_info_len = strlen(w->info)};
    etcdc_lock *l = NULL;
    lock_session *ls = NULL;
    etcdc_error err = {0};
    etcdc_code code = etcdc_lock_acquire(h->ls->s, w->name, w->name_len, &o, &l, &err);
    if (code == ETCDC_OK)
        notify_fence(etcdc_lock_granted_revision(l));
    pthread_mutex_lock(&locks_mu);
    stats_locks_waiting(try_once ? 0 : -1);
    bool orphaned = h->abandoned;
    if (code == ETCDC_OK && !orphaned) {
        h->lock = l;
        stats_locks_held(1);
        etcdc_cancel_free(h->cancel);
        h->cancel = NULL;
    } else if (code == ETCDC_OK) {
        /* granted to a wait abandoned meanwhile (its descriptor closed): give it back */
        h->lock = l;
        stats_locks_held(1);
        l = detach_locked(h, &ls);
    } else {
        forget_locked(h);
    }
    pthread_mutex_unlock(&locks_mu);
    if (l && orphaned)
        release_detached(l, ls);
    /* An abandoned wait answers EINTR only when it was interrupted: the kernel turns EINTR
     * into a restart, which without a pending signal reaches the caller as errno 512. */
    int rc = errno_for_lock(code, w->posix);
    if (orphaned)
        rc = fuse_req_interrupted(w->req) ? EINTR : ENOLCK;
    char kb[LOG_KEY_BUF];
    if (rc && code != ETCDC_ERR_WOULD_BLOCK && code != ETCDC_ERR_CANCELED)
        log_msg(LOG_WARNING, "lock %s: %s", log_key(w->name, w->name_len, kb, sizeof kb),
                err.message[0] ? err.message : strerror(rc));
    else
        log_debug("lock %s -> %s", log_key(w->name, w->name_len, kb, sizeof kb),
                  rc ? strerror(rc) : "granted");
    fuse_reply_err(w->req, rc);
    free(w->name);
    free(w);
}

static void *waiter_main(void *arg)
{
    acquire_and_reply(arg, false);
    return NULL;
}

/* The common path of flock and fcntl. */
static void lock_request(fuse_req_t req, fuse_ino_t ino, uint64_t owner, uint64_t fh, bool posix,
                         int type, bool block)
{
    if (type == F_UNLCK) {
        release_matching(ino, owner, posix);
        fuse_reply_err(req, 0);
        return;
    }
    bool shared = type == F_RDLCK;
    pthread_mutex_lock(&locks_mu);
    held_lock *have = find_locked(ino, owner, posix);
    bool same =
        have && have->shared == shared && !__atomic_load_n(&have->ls->lost, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&locks_mu);
    if (same) {
        fuse_reply_err(req, 0); /* already held in this mode */
        return;
    }
    if (have) /* a conversion: like flock(2), not atomic (release, then acquire) */
        release_matching(ino, owner, posix);
    int rc = 0;
    waiter *w = calloc(1, sizeof *w);
    held_lock *h = calloc(1, sizeof *h);
    etcdc_cancel *cancel = etcdc_cancel_new();
    if (!w || !h || !cancel)
        rc = ENOMEM;
    if (rc == 0)
        w->name = lock_name(ino, &w->name_len, &rc);
    etcdc_error err = {0};
    pthread_mutex_lock(&locks_mu);
    lock_session *ls = rc == 0 ? session_get_locked(&err) : NULL;
    if (rc == 0 && !ls)
        rc = err.code ? errno_from_etcdc(err.code) : ENOMEM;
    if (rc == 0) {
        const struct fuse_ctx *ctx = fuse_req_ctx(req);
        *h = (held_lock){.next = held,
                         .id = next_id++,
                         .ino = ino,
                         .owner = owner,
                         .fh = fh,
                         .posix = posix,
                         .shared = shared,
                         .pid = ctx->pid,
                         .ls = ls,
                         .cancel = cancel};
        ls->refs++;
        held = h;
        stats_locks_waiting(block ? 1 : 0);
        snprintf(w->info, sizeof w->info, "etcdfs host=%s pid=%d lock=%s mode=%s", holder_host,
                 (int)ctx->pid, posix ? "fcntl" : "flock", shared ? "shared" : "exclusive");
        w->req = req;
        w->h = h;
        w->posix = posix;
    }
    pthread_mutex_unlock(&locks_mu);
    if (rc) {
        if (rc != ENOMEM)
            log_msg(LOG_WARNING, "lock: cannot start a lock session: %s",
                    err.message[0] ? err.message : strerror(rc));
        fuse_reply_err(req, rc);
        if (w)
            free(w->name);
        free(w);
        free(h);
        etcdc_cancel_free(cancel);
        return;
    }
    stats_inc(block ? STAT_lock_wait : STAT_lock_try);
    if (!block) {
        acquire_and_reply(w, true);
        return;
    }
    fuse_req_interrupt_func(req, on_interrupt, (void *)(uintptr_t)h->id);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, waiter_main, w) != 0)
        acquire_and_reply(w, false); /* no thread to spare: wait on this one */
    pthread_attr_destroy(&attr);
}

void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    stats_inc(STAT_OP_flock);
    int kind = op & (LOCK_SH | LOCK_EX | LOCK_UN);
    int type = kind == LOCK_UN ? F_UNLCK : kind == LOCK_SH ? F_RDLCK : F_WRLCK;
    lock_request(req, ino, fi->fh, fi->fh, false, type, !(op & LOCK_NB));
}

/* Only whole-file locks map to one etcd lock; a byte range cannot be expressed honestly. */
static bool whole_file(const struct flock *lock)
{
    return lock->l_start == 0 && lock->l_len == 0;
}

void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
              int sleep_flag)
{
    stats_inc(STAT_OP_setlk);
    if (lock->l_type != F_UNLCK && !whole_file(lock)) {
        fuse_reply_err(req, ENOLCK);
        return;
    }
    lock_request(req, ino, fi->lock_owner, fi->fh, true, lock->l_type, sleep_flag != 0);
}

/* Who holds `name`: the first key in queue order that conflicts with a request of mode
 * `shared` and is not one of ours for this owner. One Range. */
void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
    stats_inc(STAT_OP_getlk);
    int rc = 0;
    size_t name_len = 0;
    char *name = lock_name(ino, &name_len, &rc);
    size_t dir_len = 0, end_len = 0;
    char *dir = name ? key_join(name, name_len, "/", 1, NULL, 0, &dir_len) : NULL;
    char *end = dir ? key_prefix_end(dir, dir_len, &end_len) : NULL;
    if (rc == 0 && !end)
        rc = ENOMEM;
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    if (rc == 0) {
        etcdc_range_req r = {.key = dir,
                             .key_len = dir_len,
                             .range_end = end,
                             .range_end_len = end_len,
                             .sort_target = 2 /* create */,
                             .sort_order = 1 /* ascend */,
                             .keys_only = true};
        etcdc_code code = etcdc_range(g_fs.client, &r, &kvs, &err);
        rc = code ? fs_fail("getlk", name, name_len, code, &err) : 0;
    }
    bool want_shared = lock->l_type == F_RDLCK;
    struct flock out = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    pthread_mutex_lock(&locks_mu);
    for (size_t i = 0; rc == 0 && i < kvs.count && out.l_type == F_UNLCK; i++) {
        const etcdc_kv *kv = &kvs.kvs[i];
        bool shared = kv->key_len > 7 && !memcmp(kv->key + kv->key_len - 7, ".shared", 7);
        if (want_shared && shared)
            continue;
        pid_t pid = 0; /* a holder on another host has no pid here */
        bool mine = false;
        for (held_lock *h = held; h; h = h->next) {
            size_t hl;
            const char *hk = h->lock ? etcdc_lock_key(h->lock, &hl) : NULL;
            if (hk && hl == kv->key_len && !memcmp(hk, kv->key, hl)) {
                mine = h->owner == fi->lock_owner && h->posix;
                pid = h->pid;
            }
        }
        if (!mine) {
            out.l_type = shared ? F_RDLCK : F_WRLCK;
            out.l_pid = pid;
        }
    }
    pthread_mutex_unlock(&locks_mu);
    etcdc_kvs_clear(&kvs);
    free(name);
    free(dir);
    free(end);
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_lock(req, &out);
}

void locks_release_flock(fuse_ino_t ino, uint64_t owner)
{
    release_matching(ino, owner, false);
}

void locks_release_posix(fuse_ino_t ino, uint64_t owner)
{
    release_matching(ino, owner, true);
}

void locks_release_ofd(fuse_ino_t ino, uint64_t fh)
{
    release_where(ino, fh, true, true);
}

void locks_shutdown(void)
{
    pthread_mutex_lock(&locks_mu);
    for (held_lock *h = held; h; h = h->next)
        if (h->cancel)
            etcdc_cancel_fire(h->cancel);
    lock_session *ls = current;
    current = NULL;
    pthread_mutex_unlock(&locks_mu);
    /* Waiter threads end with CANCELED and drop their references; held locks go with the
     * revoked lease once the last reference is dropped here. */
    for (;;) {
        pthread_mutex_lock(&locks_mu);
        held_lock *h = held;
        while (h && !h->lock)
            h = h->next;
        lock_session *held_ls = NULL;
        etcdc_lock *l = h ? detach_locked(h, &held_ls) : NULL;
        pthread_mutex_unlock(&locks_mu);
        if (!h)
            break;
        release_detached(l, held_ls);
    }
    pthread_mutex_lock(&locks_mu);
    session_unref_locked(ls);
    pthread_mutex_unlock(&locks_mu);
}

int locks_fence_key(char **key, size_t *len, int64_t *create_rev)
{
    int rc = ENOENT;
    pthread_mutex_lock(&locks_mu);
    for (held_lock *h = held; h && rc == ENOENT; h = h->next) {
        if (!h->lock)
            continue;
        if (__atomic_load_n(&h->ls->lost, __ATOMIC_ACQUIRE)) {
            rc = EIO; /* a lock this mount holds was lost: its writes must not land */
            break;
        }
        size_t kl;
        const char *k = etcdc_lock_key(h->lock, &kl);
        *key = malloc(kl + 1);
        rc = *key ? 0 : ENOMEM;
        if (*key) {
            memcpy(*key, k, kl + 1);
            *len = kl;
            *create_rev = etcdc_lock_revision(h->lock);
        }
    }
    pthread_mutex_unlock(&locks_mu);
    return rc;
}

int locks_describe(const char *key, size_t key_len, char *out, size_t out_size, size_t *out_len)
{
    const char *p = locks_prefix();
    size_t dir_len = 0, end_len = 0;
    char *dir = key_join(p, strlen(p), key, key_len, "/", 1, &dir_len);
    char *end = dir ? key_prefix_end(dir, dir_len, &end_len) : NULL;
    if (!end) {
        free(dir);
        return ENOMEM;
    }
    etcdc_range_req r = {.key = dir,
                         .key_len = dir_len,
                         .range_end = end,
                         .range_end_len = end_len,
                         .sort_target = 2 /* create */,
                         .sort_order = 1 /* ascend */};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_range(g_fs.client, &r, &kvs, &err);
    int rc = code ? fs_fail("getxattr", dir, dir_len, code, &err) : 0;
    size_t used = 0;
    bool exclusive_before = false;
    out[0] = 0;
    for (size_t i = 0; rc == 0 && i < kvs.count; i++) {
        const etcdc_kv *kv = &kvs.kvs[i];
        bool shared = kv->key_len > 7 && !memcmp(kv->key + kv->key_len - 7, ".shared", 7);
        /* queue order: a key holds when nothing it must wait for precedes it */
        bool holds = shared ? !exclusive_before : i == 0;
        exclusive_before |= !shared;
        int w = snprintf(out + used, out_size - used, "%s%s %s %.*s %.*s", used ? "\n" : "",
                         holds ? "held" : "waiting", shared ? "shared" : "exclusive",
                         (int)(kv->key_len - dir_len), kv->key + dir_len, (int)kv->value_len,
                         kv->value ? kv->value : "");
        if (w < 0 || (size_t)w >= out_size - used) {
            used = out_size - 1; /* truncated: as much as fits */
            break;
        }
        used += (size_t)w;
    }
    *out_len = rc == 0 ? used : 0;
    etcdc_kvs_clear(&kvs);
    free(dir);
    free(end);
    return rc;
}
