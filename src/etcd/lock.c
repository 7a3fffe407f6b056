/*
 * lock.c - sessions (a lease kept alive) and distributed locks on top of them, in etcdctl's
 * key layout; plus cancellation tokens for lock waits.
 *
 * A waiter puts its key, then waits for the deletion of its predecessor (the latest earlier key
 * it conflicts with) through a watch, and looks again when that key goes: FIFO by create
 * revision, no polling of etcd. Every way out other than success deletes the waiter's key.
 */
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- a wait that many sources can wake ---- */

typedef struct lock_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken; /* protected by mu: something changed, look again */
} lock_wait;

static void wait_init(lock_wait *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->woken = false;
}

static void wait_destroy(lock_wait *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void wait_wake(lock_wait *w)
{
    pthread_mutex_lock(&w->mu);
    w->woken = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Sleeps until woken or the deadline (NULL: none). Returns false on timeout. */
static bool wait_block(lock_wait *w, const gpr_timespec *deadline)
{
    bool in_time = true;
    pthread_mutex_lock(&w->mu);
    while (!w->woken && in_time) {
        if (!deadline) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        gpr_timespec rt = gpr_convert_clock_type(*deadline, GPR_CLOCK_REALTIME);
        struct timespec ts = {rt.tv_sec, rt.tv_nsec};
        in_time = pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0;
    }
    bool woken = w->woken;
    w->woken = false;
    pthread_mutex_unlock(&w->mu);
    return woken;
}

/* ---- cancellation tokens ---- */

/* One lock wait listening to a token; on the waiter's stack. A token may have several (one
 * context bound on several threads), a wait may listen to two (its own token and the context's). */
typedef struct cancel_link {
    lock_wait *wait;
    struct cancel_link *next;
} cancel_link;

struct etcdc_cancel {
    pthread_mutex_t mu; /* protects fired and waiters */
    bool fired;
    cancel_link *waiters;
};

etcdc_cancel *etcdc_cancel_new(void)
{
    etcdc_cancel *t = calloc(1, sizeof *t);
    if (t)
        pthread_mutex_init(&t->mu, NULL);
    return t;
}

void etcdc_cancel_fire(etcdc_cancel *t)
{
    pthread_mutex_lock(&t->mu);
    t->fired = true;
    for (cancel_link *l = t->waiters; l; l = l->next)
        wait_wake(l->wait);
    pthread_mutex_unlock(&t->mu);
}

bool etcdc_cancel_fired(etcdc_cancel *t)
{
    pthread_mutex_lock(&t->mu);
    bool f = t->fired;
    pthread_mutex_unlock(&t->mu);
    return f;
}

void etcdc_cancel_free(etcdc_cancel *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void cancel_attach(etcdc_cancel *t, cancel_link *l, lock_wait *w)
{
    if (!t)
        return;
    l->wait = w;
    pthread_mutex_lock(&t->mu);
    l->next = t->waiters;
    t->waiters = l;
    pthread_mutex_unlock(&t->mu);
}

static void cancel_detach(etcdc_cancel *t, cancel_link *l)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    for (cancel_link **p = &t->waiters; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    pthread_mutex_unlock(&t->mu);
}

/* ---- sessions ---- */

/* Clean-up (revoking a lease, deleting a waiter's key) must happen even when the caller's call
 * context was canceled or ran out: it runs outside it. */
static void revoke_outside_ctx(etcdc_client *c, int64_t lease)
{
    etcdc_ctx *ctx = etcdc_ctx_use(NULL);
    etcdc_lease_revoke(c, lease, NULL);
    etcdc_ctx_use(ctx);
}

typedef struct session_waiter {
    lock_wait *wait;
    struct session_waiter *next;
} session_waiter;

struct etcdc_session {
    etcdc_client *client;
    int64_t lease;
    etcdc_keepalive *ka;
    etcdc_session_lost_cb lost_cb;
    void *arg;
    pthread_mutex_t mu; /* protects lost, waiters and seq */
    bool lost;
    session_waiter *waiters;
    unsigned seq;
};

static void on_renewal(void *arg, int64_t lease_id, int64_t ttl)
{
    (void)lease_id;
    etcdc_session *s = arg;
    if (ttl > 0)
        return;
    pthread_mutex_lock(&s->mu);
    bool first = !s->lost;
    s->lost = true;
    for (session_waiter *w = s->waiters; w; w = w->next)
        wait_wake(w->wait);
    pthread_mutex_unlock(&s->mu);
    if (first && s->lost_cb)
        s->lost_cb(s->arg);
}

etcdc_session *etcdc_session_new(etcdc_client *c, int64_t ttl_s, etcdc_session_lost_cb lost_cb,
                                 void *arg, etcdc_error *err)
{
    etcdc__clear_error(err);
    etcdc_session *s = calloc(1, sizeof *s);
    if (!s) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    s->client = c;
    s->lost_cb = lost_cb;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    if (etcdc_lease_grant(c, ttl_s, &s->lease, err) != ETCDC_OK)
        goto fail;
    s->ka = etcdc_lease_keepalive(c, s->lease, on_renewal, s, err);
    if (!s->ka) {
        revoke_outside_ctx(c, s->lease);
        goto fail;
    }
    return s;
fail:
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

void etcdc_session_free(etcdc_session *s)
{
    if (!s)
        return;
    etcdc_keepalive_stop(s->ka);
    if (etcdc_session_alive(s))
        revoke_outside_ctx(s->client, s->lease);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

etcdc_client *etcdc__session_client(const etcdc_session *s)
{
    return s->client;
}

int64_t etcdc_session_lease(const etcdc_session *s)
{
    return s->lease;
}

bool etcdc_session_alive(const etcdc_session *s)
{
    etcdc_session *m = (etcdc_session *)s;
    pthread_mutex_lock(&m->mu);
    bool alive = !m->lost;
    pthread_mutex_unlock(&m->mu);
    return alive;
}

static void session_attach(etcdc_session *s, session_waiter *sw)
{
    pthread_mutex_lock(&s->mu);
    sw->next = s->waiters;
    s->waiters = sw;
    if (s->lost)
        wait_wake(sw->wait);
    pthread_mutex_unlock(&s->mu);
}

static void session_detach(etcdc_session *s, session_waiter *sw)
{
    pthread_mutex_lock(&s->mu);
    for (session_waiter **p = &s->waiters; *p; p = &(*p)->next)
        if (*p == sw) {
            *p = sw->next;
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

/* ---- locks ---- */

struct etcdc_lock {
    etcdc_session *session;
    char *key;
    size_t key_len;
    int64_t revision;
    int64_t granted_revision;
    pthread_mutex_t mu; /* serialises releases, so the key is deleted at most once */
    bool released;
};

static bool is_shared_key(const etcdc_kv *kv)
{
    const char *slash = memrchr(kv->key, '/', kv->key_len);
    const char *last = slash ? slash + 1 : kv->key;
    size_t n = kv->key_len - (size_t)(last - kv->key);
    return memmem(last, n, ".shared", 7) != NULL;
}

/* In the keys under name/ (ascending by create revision), finds the key this waiter must wait
 * for: the latest earlier key it conflicts with. Returns NULL when the lock is granted. */
static const etcdc_kv *predecessor(const etcdc_kvs *keys, int64_t my_rev, etcdc_lock_mode mode)
{
    const etcdc_kv *pred = NULL;
    for (size_t i = 0; i < keys->count; i++) {
        const etcdc_kv *kv = &keys->kvs[i];
        if (kv->create_revision >= my_rev)
            break;
        if (mode == ETCDC_LOCK_EXCLUSIVE || !is_shared_key(kv))
            pred = kv;
    }
    return pred;
}

static bool holds_key(const etcdc_kvs *keys, int64_t my_rev)
{
    for (size_t i = 0; i < keys->count; i++)
        if (keys->kvs[i].create_revision == my_rev)
            return true;
    return false;
}

/* The range request for every key under name/, ascending by create revision, keys only. */
static etcdc_range_req queue_request(const char *pfx, size_t pfx_len, char *end)
{
    size_t end_len = etcdc_prefix_end(pfx, pfx_len, end);
    return (etcdc_range_req){.key = pfx,
                             .key_len = pfx_len,
                             .range_end = end,
                             .range_end_len = end_len,
                             .sort_order = 1,
                             .sort_target = 2,
                             .keys_only = true};
}

/* Puts our key if absent and lists the queue, in one Txn. *created false: the key exists
 * already (another acquisition through the same session holds it). */
static etcdc_code enqueue_key(etcdc_session *s, const char *key, size_t key_len,
                              const etcdc_range_req *queue, const etcdc_lock_opts *o, bool *created,
                              int64_t *my_rev, etcdc_kvs *keys, etcdc_error *err)
{
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    etcdc__txn_set_raw(t); /* holder information stays readable for etcdctl users */
    etcdc_txn_if(t, key, key_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    etcdc_txn_put(t, ETCDC_THEN, key, key_len, o->holder_info, o->holder_info_len, s->lease);
    etcdc_txn_get(t, ETCDC_THEN, queue);
    etcdc_txn_result r;
    etcdc_code rc = etcdc_txn_commit(s->client, t, &r, err);
    etcdc_txn_free(t);
    if (rc != ETCDC_OK)
        return rc;
    *created = r.succeeded;
    if (r.succeeded) {
        *my_rev = r.revision;
        *keys = r.ops[1].kvs;
        keys->revision = r.revision;
        memset(&r.ops[1].kvs, 0, sizeof r.ops[1].kvs);
    }
    etcdc_txn_result_clear(&r);
    return ETCDC_OK;
}

typedef struct pred_watch {
    lock_wait *wait;
} pred_watch;

static void on_pred_event(void *arg, const etcdc_watch_response *r)
{
    pred_watch *pw = arg;
    if (r->kind == ETCDC_WATCH_PROGRESS)
        return;
    wait_wake(pw->wait); /* deleted, compacted or canceled: look at the queue again */
}

/* Waits until the lock is granted. keys: the queue as last read. */
static etcdc_code wait_turn(etcdc_session *s, const char *key, size_t key_len, int64_t my_rev,
                            const etcdc_range_req *queue, const etcdc_lock_opts *o, etcdc_kvs *keys,
                            int64_t *granted, etcdc_error *err)
{
    etcdc_client *c = s->client;
    bool ctx_decides = false;
    gpr_timespec deadline = etcdc__ctx_clamp(
        o->timeout_ms > 0 ? etcdc__deadline_ms(o->timeout_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC),
        &ctx_decides);
    bool timed = (o->timeout_ms > 0 || ctx_decides) && !o->try_once;
    etcdc_cancel *ctx_token = etcdc__ctx_lock_token();
    lock_wait wait;
    wait_init(&wait);
    pred_watch pw = {&wait};
    session_waiter sw = {&wait, NULL};
    session_attach(s, &sw);
    cancel_link own_link, ctx_link;
    cancel_attach(o->cancel, &own_link, &wait);
    cancel_attach(ctx_token, &ctx_link, &wait);
    etcdc_code rc = ETCDC_OK;
    for (;;) {
        if (!etcdc_session_alive(s)) {
            rc = etcdc__set_error(err, ETCDC_ERR_LEASE_EXPIRED, 0, "session lease lost");
            break;
        }
        if ((o->cancel && etcdc_cancel_fired(o->cancel)) ||
            (ctx_token && etcdc_cancel_fired(ctx_token))) {
            rc = etcdc__set_error(err, ETCDC_ERR_CANCELED, 0, "lock '%.*s': wait canceled",
                                  (int)(queue->key_len - 1), key);
            break;
        }
        if (!holds_key(keys, my_rev)) {
            rc = etcdc__set_error(err, ETCDC_ERR_LEASE_EXPIRED, 0, "our lock key %.*s was deleted",
                                  (int)key_len, key);
            break;
        }
        const etcdc_kv *pred = predecessor(keys, my_rev, o->mode);
        if (!pred) {
            *granted = keys->revision;
            break;
        }
        if (o->try_once) {
            rc = etcdc__set_error(err, ETCDC_ERR_WOULD_BLOCK, 0, "lock '%.*s' is held by '%.*s'",
                                  (int)(queue->key_len - 1), key, (int)pred->key_len, pred->key);
            break;
        }
        etcdc_watch_opts wo = {.key = pred->key,
                               .key_len = pred->key_len,
                               .start_revision = keys->revision + 1,
                               .no_put = true};
        etcdc_watcher *w = etcdc_watch(c, &wo, on_pred_event, &pw, err);
        if (!w) {
            rc = err ? err->code : ETCDC_ERR_UNAVAILABLE;
            break;
        }
        bool woken = wait_block(&wait, timed ? &deadline : NULL);
        etcdc_watch_cancel(w);
        if (!woken) {
            rc = etcdc__set_error(err, ETCDC_ERR_TIMEOUT, 0,
                                  "lock '%.*s' not granted %s (held by '%.*s')",
                                  (int)(queue->key_len - 1), key,
                                  ctx_decides ? "before the deadline of the call context"
                                              : "within the lock's timeout",
                                  (int)pred->key_len, pred->key);
            break;
        }
        etcdc_kvs_clear(keys);
        rc = etcdc_range(c, queue, keys, err);
        if (rc != ETCDC_OK)
            break;
    }
    cancel_detach(o->cancel, &own_link);
    cancel_detach(ctx_token, &ctx_link);
    session_detach(s, &sw);
    wait_destroy(&wait);
    return rc;
}

etcdc_code etcdc_lock_acquire(etcdc_session *s, const void *name, size_t name_len,
                              const etcdc_lock_opts *opts, etcdc_lock **out_lock, etcdc_error *err)
{
    etcdc__clear_error(err);
    static const etcdc_lock_opts defaults = {0};
    const etcdc_lock_opts *o = opts ? opts : &defaults;
    *out_lock = NULL;
    if (name_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty lock name");
    if (!etcdc_session_alive(s))
        return etcdc__set_error(err, ETCDC_ERR_LEASE_EXPIRED, 0, "session lease lost");
    size_t cap = name_len + 64;
    char *key = malloc(cap), *end = malloc(name_len + 2);
    if (!key || !end) {
        free(key);
        free(end);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    memcpy(key, name, name_len);
    key[name_len] = '/';
    etcdc_range_req queue = queue_request(key, name_len + 1, end);
    etcdc_kvs keys = {0};
    int64_t my_rev = 0, granted = 0;
    size_t key_len = 0;
    bool created = false;
    etcdc_code rc = ETCDC_OK;
    for (unsigned attempt = 0; rc == ETCDC_OK && !created; attempt++) {
        pthread_mutex_lock(&s->mu);
        unsigned seq = attempt ? ++s->seq : 0;
        pthread_mutex_unlock(&s->mu);
        int n =
            snprintf(key + name_len + 1, cap - name_len - 1, "%llx%s", (unsigned long long)s->lease,
                     o->mode == ETCDC_LOCK_SHARED ? ".shared" : "");
        if (seq)
            n += snprintf(key + name_len + 1 + n, cap - name_len - 1 - (size_t)n, "_%u", seq);
        key_len = name_len + 1 + (size_t)n;
        rc = enqueue_key(s, key, key_len, &queue, o, &created, &my_rev, &keys, err);
    }
    if (rc == ETCDC_OK)
        rc = wait_turn(s, key, key_len, my_rev, &queue, o, &keys, &granted, err);
    etcdc_kvs_clear(&keys);
    free(end);
    if (rc == ETCDC_OK) {
        etcdc_lock *l = malloc(sizeof *l);
        if (l) {
            *l = (etcdc_lock){.session = s,
                              .key = key,
                              .key_len = key_len,
                              .revision = my_rev,
                              .granted_revision = granted};
            pthread_mutex_init(&l->mu, NULL);
            *out_lock = l;
            return ETCDC_OK;
        }
        rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    if (created) { /* leave no stale waiter, even when the call context ended the wait */
        etcdc_ctx *ctx = etcdc_ctx_use(NULL);
        etcdc_delete(s->client, key, key_len, NULL, NULL);
        etcdc_ctx_use(ctx);
    }
    free(key);
    return rc;
}

etcdc_code etcdc_lock_release(etcdc_lock *l, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (!l)
        return ETCDC_OK;
    etcdc_code rc = ETCDC_OK;
    pthread_mutex_lock(&l->mu);
    if (!l->released && etcdc_session_alive(l->session))
        rc = etcdc_delete(l->session->client, l->key, l->key_len, NULL, err);
    if (rc == ETCDC_OK)
        l->released = true;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void etcdc_lock_free(etcdc_lock *l)
{
    if (!l)
        return;
    etcdc_ctx *ctx = etcdc_ctx_use(NULL); /* a free is not canceled */
    etcdc_lock_release(l, NULL);          /* on failure the session's lease still ends the lock */
    etcdc_ctx_use(ctx);
    pthread_mutex_destroy(&l->mu);
    free(l->key);
    free(l);
}

const char *etcdc_lock_key(const etcdc_lock *l, size_t *len)
{
    if (len)
        *len = l->key_len;
    return l->key;
}

int64_t etcdc_lock_revision(const etcdc_lock *l)
{
    return l->revision;
}

int64_t etcdc_lock_granted_revision(const etcdc_lock *l)
{
    return l->granted_revision;
}
