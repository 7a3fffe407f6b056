/*
 * notify.c - the watch-driven cache (see notify.h).
 *
 * Per event on key K: the file node (K) takes the new value (unless it has local changes) and
 * its kernel page cache and attributes are invalidated; for a created or deleted key, the
 * directory listings that show it are dropped and the kernel's (possibly negative) dentries for
 * the new or vanished names are invalidated, level by level where the kernel may hold one.
 */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"
#include "cache.h"
#include "commit.h"
#include "inode.h"
#include "listing.h"
#include "log.h"
#include "names.h"
#include "notify_replay.h"
#include "ops_poll.h"
#include "prefetch.h"
#include "stats.h"
#include "witness.h"

/* How long a fence waits for the watch to confirm a revision before it forgets the cache
 * instead (etcd answers a progress request only while every watcher is in sync). */
#define FENCE_WAIT_S 1

typedef struct queued_event {
    struct queued_event *next;
    bool is_delete;
    bool resync;         /* the watch lost events: forget every cached answer */
    bool rewatch;        /* with resync: the watch ended, start a new one */
    int64_t mark_rev;    /* > 0: a marker: every event up to this revision is applied */
    int64_t received_ns; /* when the watch delivered it (watch lag in the stats view) */
    etcdc_kv kv;
} queued_event;

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static queued_event *q_head, *q_tail; /* [q_mu] */
static bool q_stop;                   /* [q_mu] */
static bool thread_running;
static pthread_t thread;
static bool watching; /* atomic: the watch delivers events (else trust only timeouts) */
/* atomic: the watch stream (etcdc_watch_stream_ready) whose events the cache is current with */
static uint64_t trusted_stream;
static pthread_cond_t applied_cv = PTHREAD_COND_INITIALIZER;
static int64_t applied_rev;   /* [q_mu] every change up to this revision is applied */
static uint64_t resyncs_done; /* [q_mu] */

/* Events in the order the watch delivered them, handed to the notify thread together. */
typedef struct event_batch {
    queued_event *head, *tail;
} event_batch;

static void batch_add(event_batch *b, queued_event *e)
{
    if (!e)
        return;
    if (b->tail)
        b->tail->next = e;
    else
        b->head = e;
    b->tail = e;
}

/* One wake-up of the notify thread for a whole watch response, not one per event. */
static void enqueue_batch(const event_batch *b)
{
    if (!b->head)
        return;
    pthread_mutex_lock(&q_mu);
    if (q_tail)
        q_tail->next = b->head;
    else
        q_head = b->head;
    q_tail = b->tail;
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_mu);
}

static void enqueue(queued_event *e)
{
    event_batch b = {0};
    batch_add(&b, e);
    enqueue_batch(&b);
}

static void inval_entry(node *dir, const char *comp, size_t comp_len)
{
    char name[NAMES_MAX + 1];
    size_t n = names_to_display(comp, comp_len, dir->ino == FUSE_ROOT_ID, name);
    fuse_lowlevel_notify_inval_entry(g_fs.se, dir->ino, name, n);
}

static void forget_cached(node *n, void *arg)
{
    (void)arg;
    if (n->type == NODE_DIR)
        node_drop_listing_for_event(n);
    if (n->type == NODE_FILE) {
        node_lock(n);
        n->validated_ns = 0;
        node_unlock(n);
        /* pages read before may be stale too (this runs on the notify thread: allowed) */
        fuse_lowlevel_notify_inval_inode(g_fs.se, n->ino, 0, 0);
    }
}

/* The node of the directory whose marker key is kv's learns the marker's create_revision (what
 * its attribute record names). */
static void marker_event(const etcdc_kv *kv, bool is_delete)
{
    node *d = node_find(kv->key, kv->key_len, NODE_DIR);
    if (!d)
        return;
    node_lock(d);
    int64_t before = d->create_rev;
    d->create_rev = is_delete ? 0 : kv->create_revision;
    bool changed = d->rec && d->rec->present && before != d->create_rev;
    node_unlock(d);
    if (changed)
        fuse_lowlevel_notify_inval_inode(g_fs.se, d->ino, -1, 0); /* attributes only */
    node_put(d);
}

/* An event on an attribute record (docs/design-attributes.md): the node of its entry takes it,
 * and the listing of its directory, which holds the old one, goes. No name appears or vanishes.
 * Returns false when kv is no record's key. */
static bool record_event(const etcdc_kv *kv, bool is_delete, bool own)
{
    size_t at = names_last_component(kv->key, kv->key_len, g_fs.prefix_len);
    size_t name_len;
    attrs_kind kind = attrs_key_kind(kv->key + at, kv->key_len - at, &name_len);
    if (kind == ATTRS_NONE) {
        if (kv->key_len > g_fs.prefix_len && at == kv->key_len)
            marker_event(kv, is_delete);
        return false;
    }
    node *dir = node_find(kv->key, at, NODE_DIR);
    if (dir) {
        if (!node_listing_reflects(dir, kv->key + at, kv->key_len - at, kv->mod_revision, own))
            node_drop_listing_for_event(dir);
        node_put(dir);
    }
    size_t anchor_len;
    char *anchor = key_join(kv->key, at + name_len, kind == ATTRS_DIR ? "/" : "",
                            kind == ATTRS_DIR ? 1 : 0, NULL, 0, &anchor_len);
    node *n =
        anchor ? node_find(anchor, anchor_len, kind == ATTRS_DIR ? NODE_DIR : NODE_FILE) : NULL;
    free(anchor);
    if (!n)
        return true;
    attrs a;
    bool present = !is_delete && !kv->value_error && attrs_parse(kv->value, kv->value_len, &a);
    node_lock(n);
    bool changed =
        node_set_record_seen_locked(n, present ? &a : NULL, kv->mod_revision, kv->create_revision);
    node_unlock(n);
    if (changed)
        fuse_lowlevel_notify_inval_inode(g_fs.se, n->ino, -1, 0); /* attributes only */
    if (changed && !own)
        replay_attrib(kv->key, at + name_len, /* inotify watchers: IN_ATTRIB */
                      is_delete && kind != ATTRS_DIR);
    node_put(n);
    return true;
}

static void apply_event(const queued_event *e)
{
    stats_watch_applied(e->kv.mod_revision, e->received_ns);
    const etcdc_kv *kv = &e->kv;
    prefetch_event(kv->key, kv->key_len, kv->mod_revision); /* before any listing is read */
    if (kv->key_len < g_fs.prefix_len || memcmp(kv->key, g_fs.prefix, g_fs.prefix_len))
        return;
    bool changed = false;
    /* A change this mount made: the operation put its result in the node table before this
     * event is looked at (commit.h), and the kernel learned it from the operation. */
    bool own = commit_is_own(kv->mod_revision);
    if (record_event(kv, e->is_delete, own))
        return;
    bool known_here = own; /* the kernel got this very name and version from us already */
    node *f = node_find(kv->key, kv->key_len, NODE_FILE);
    bool reborn = false;
    if (f) {
        node_lock(f);
        /* Our own write, or a lookup that raced ahead of the event, already gave the kernel
         * this file: invalidating its dentry would only cost a lookup and a new inode. */
        known_here = known_here ||
                     (!e->is_delete &&
                      (f->pending || f->dirty || (f->known && f->mod_rev >= kv->mod_revision)));
        /* The event's own revision is what it is news of: a node that already reflects it or
         * a later revision (a read, or this mount's own result) stays as it is. */
        if (!e->is_delete) {
            changed = node_apply_kv_locked(f, kv, kv->mod_revision, now_ns());
        } else if (!f->dirty && !f->pending && f->known && f->mod_rev > 0 &&
                   f->mod_rev < kv->mod_revision && f->as_of < kv->mod_revision) {
            node_apply_absent_locked(f, kv->mod_revision, now_ns());
            changed = true;
        }
        /* This mount's own delete unindexed its node before this event: a node indexed here
         * now that reflects nothing newer was obtained since from older news (the inotify
         * replay of a create applied late, notify_replay.h), and the kernel may hold its name:
         * stale, as another host's delete would make it. */
        reborn = own && e->is_delete && !f->dirty && !f->pending &&
                 !(f->known && f->mod_rev >= kv->mod_revision);
        if (reborn && !changed) {
            node_apply_absent_locked(f, kv->mod_revision, now_ns());
            changed = true;
        }
        int64_t rev = f->known || f->pending || f->dirty ? f->mod_rev : 0;
        node_unlock(f);
        if (changed)
            fuse_lowlevel_notify_inval_inode(g_fs.se, f->ino, 0, 0);
        poll_key_changed(f->ino, rev); /* after the pages went: a woken reader reads anew */
        node_put(f);
    }
    if (!own)
        replay_event(kv, e->is_delete, known_here); /* inotify events (notify_replay.h) */
    if (e->is_delete) /* a deleted witness would cost the next write in its directory a retry */
        witness_forget(kv->key, kv->key_len);
    bool namespace_change = e->is_delete || kv->version == 1;
    if (!namespace_change)
        return;
    known_here = known_here && !reborn;
    /* A created name can only be stale in the kernel as a negative dentry, and close-to-open
     * never lets the kernel keep those (negative entries get timeout 0). Invalidating anyway
     * would race with a lookup that already saw the new key and throw its fresh dentry (and
     * inode number) away. */
    bool stale_dentry_possible =
        (!own || reborn) && (e->is_delete || g_fs.opts->consistency != CONSISTENCY_CLOSE_TO_OPEN);
    /* Walk the directories from the root down to the key's own directory. */
    size_t at = g_fs.prefix_len;
    for (;;) {
        node *dir = node_find(kv->key, at, NODE_DIR);
        const char *rest = kv->key + at;
        size_t rest_len = kv->key_len - at;
        bool deeper;
        size_t clen = names_first_component(rest, rest_len, &deeper);
        if (dir) {
            /* A key created below a child directory the listing holds changes nothing it
             * names (but a new marker of that child does: its create_revision is listed).
             * Any other event changes one name of the listing, the key's component here, which
             * stops vouching for it; the directory's own marker (clen 0) is the listing's. */
            bool below_listed_dir = deeper && !e->is_delete && kv->key_len > at + clen + 1 &&
                                    node_listing_holds_dir(dir, rest, clen);
            if (!below_listed_dir &&
                !node_listing_reflects(dir, rest, clen, kv->mod_revision, own)) {
                if (clen > 0)
                    node_listing_name_changed_for_event(dir, rest, clen, e->is_delete);
                else
                    node_drop_listing_for_event(dir);
            }
            node *child = deeper ? node_find(kv->key, at + clen + 1, NODE_DIR) : NULL;
            bool known_dir = child != NULL;
            node_put(child);
            /* A directory the kernel already knows needs no new dentry; anything else may be a
             * negative dentry (create) or a vanished name (delete), except the value of a
             * directory: its name stays the directory's (dropping that dentry would make the
             * kernel forget the directory's inode while it lives on). */
            if (stale_dentry_possible && !known_dir && !(known_here && !deeper) &&
                !(!deeper && node_is_directory_value(kv->key, kv->key_len)))
                inval_entry(dir, rest, clen);
            node_put(dir);
        }
        if (!deeper)
            break;
        at += clen + 1;
    }
}

static bool try_rewatch(void);

/* The library resumed a broken watch stream on a new one: the events it missed are on their
 * way, but until they are applied the cache may hold values replaced meanwhile (a partition
 * can last long). Forget every cached answer once, as after a compaction, then trust the new
 * stream. Notify thread, without q_mu. */
static void trust_new_stream(void)
{
    uint64_t s = etcdc_watch_stream_ready(g_fs.client);
    if (s == 0 || s == __atomic_load_n(&trusted_stream, __ATOMIC_ACQUIRE))
        return;
    prefetch_clear();
    node_for_each(forget_cached, NULL);
    __atomic_store_n(&trusted_stream, s, __ATOMIC_RELEASE);
    log_msg(LOG_NOTICE, "watch stream resumed; cached answers are confirmed with etcd again");
}

static bool stream_untrusted(void)
{
    return __atomic_load_n(&watching, __ATOMIC_ACQUIRE) &&
           etcdc_watch_stream_ready(g_fs.client) !=
               __atomic_load_n(&trusted_stream, __ATOMIC_ACQUIRE);
}

#define STREAM_POLL_NS (100 * 1000000LL)

/* Waits for the next event; with a re-watch pending, only until it is due; while the watch
 * stream is not trusted, at most STREAM_POLL_NS. [q_mu] */
static void wait_for_work(bool rewatch_pending, int64_t rewatch_at_ns)
{
    while (!q_head && !q_stop) {
        bool poll = stream_untrusted();
        if (!rewatch_pending && !poll) {
            pthread_cond_wait(&q_cv, &q_mu);
            continue;
        }
        int64_t left = rewatch_pending ? rewatch_at_ns - now_ns() : STREAM_POLL_NS;
        if (left <= 0)
            return;
        if (poll && left > STREAM_POLL_NS)
            left = STREAM_POLL_NS;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + left % 1000000000;
        until.tv_sec += left / 1000000000 + ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&q_cv, &q_mu, &until);
        if (poll)
            return; /* the caller looks at the stream again */
    }
}

static void *notify_main(void *arg)
{
    (void)arg;
    bool rewatch_pending = false;
    int64_t rewatch_at = 0, backoff_ns = 0, quiesced_ns = 0;
    for (;;) {
        pthread_mutex_lock(&q_mu);
        wait_for_work(rewatch_pending, rewatch_at);
        queued_event *e = q_head;
        if (e) {
            q_head = e->next;
            if (!q_head)
                q_tail = NULL;
        }
        bool stop = q_stop && !e;
        pthread_mutex_unlock(&q_mu);
        if (stop)
            break;
        trust_new_stream();
        if (!e && (!rewatch_pending || now_ns() < rewatch_at))
            continue; /* woke up to look at the watch stream */
        if (!e) {     /* a re-watch is due */
            if (try_rewatch()) {
                rewatch_pending = false;
            } else {
                backoff_ns = backoff_ns ? backoff_ns * 2 : 250 * 1000000LL;
                if (backoff_ns > 10 * 1000000000LL)
                    backoff_ns = 10 * 1000000000LL;
                rewatch_at = now_ns() + backoff_ns;
            }
            continue;
        }
        if (e->rewatch) {
            rewatch_pending = true;
            rewatch_at = now_ns();
            backoff_ns = 0;
        }
        if (e->mark_rev == 0 && !e->resync && e->received_ns >= quiesced_ns) {
            /* Changes of this mount begun before the event arrived put their results in the
             * node table first (commit.h); later events of the same batch are covered. */
            quiesced_ns = now_ns();
            commit_quiesce();
        }
        if (e->resync) {
            prefetch_clear();
            node_for_each(forget_cached, NULL);
        } else if (e->mark_rev == 0) {
            apply_event(e);
        }
        if (e->mark_rev == 0 && !e->resync)
            cache_trim(); /* a value the watch brought may have passed --cache-size */
        if (e->resync || e->mark_rev) {
            pthread_mutex_lock(&q_mu);
            resyncs_done += e->resync;
            if (e->mark_rev > applied_rev)
                applied_rev = e->mark_rev;
            pthread_cond_broadcast(&applied_cv);
            pthread_mutex_unlock(&q_mu);
        }
        if (e->mark_rev)
            replay_delivered(e->mark_rev);
        etcdc_kv_clear(&e->kv);
        free(e);
    }
    return NULL;
}

static etcdc_watcher *watcher; /* [q_mu] */

static queued_event *copy_event(const etcdc_event *ev)
{
    queued_event *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->is_delete = ev->type == ETCDC_EVENT_DELETE;
    q->received_ns = now_ns();
    stats_watch_received(ev->kv.mod_revision);
    q->kv = ev->kv;
    q->kv.key = malloc(ev->kv.key_len + 1);
    q->kv.value = ev->kv.value ? malloc(ev->kv.value_len + 1) : NULL;
    if (!q->kv.key || (ev->kv.value && !q->kv.value)) {
        free(q->kv.key);
        free(q->kv.value);
        free(q);
        return NULL;
    }
    memcpy(q->kv.key, ev->kv.key, ev->kv.key_len + 1);
    if (ev->kv.value)
        memcpy(q->kv.value, ev->kv.value, ev->kv.value_len + 1);
    return q;
}

static queued_event *new_marker(int64_t rev)
{
    queued_event *m = calloc(1, sizeof *m);
    if (m)
        m->mark_rev = rev;
    return m;
}

/* On the library's stream thread: copy and hand over, never block. */
static void on_watch(void *arg, const etcdc_watch_response *resp)
{
    (void)arg;
    event_batch b = {0};
    if (resp->kind == ETCDC_WATCH_PROGRESS)
        batch_add(&b, new_marker(resp->revision));
    if (resp->kind == ETCDC_WATCH_EVENTS) {
        for (size_t i = 0; i < resp->event_count; i++) {
            queued_event *q = copy_event(&resp->events[i]);
            if (!q && (q = calloc(1, sizeof *q)) != NULL)
                q->resync = true;
            batch_add(&b, q);
        }
        /* After the events it vouches for: a fence (lock) or a waiting replay that sees it
         * must find every event of the response applied. A response holds whole revisions. */
        if (resp->event_count > 0)
            batch_add(&b, new_marker(resp->events[resp->event_count - 1].kv.mod_revision));
    } else if (resp->kind == ETCDC_WATCH_COMPACTED || resp->kind == ETCDC_WATCH_CANCELED) {
        /* Events were lost: every cached answer must be confirmed again, and a new watch
         * starts from the current revision (the notify thread does both). The timeouts keep
         * the mount correct meanwhile (docs/consistency.md). */
        log_msg(LOG_WARNING, "watch ended (%s%s%s); resyncing the cache and watching again",
                resp->kind == ETCDC_WATCH_COMPACTED ? "compacted" : "canceled",
                resp->message && *resp->message ? ": " : "", resp->message ? resp->message : "");
        __atomic_store_n(&watching, false, __ATOMIC_RELEASE);
        queued_event *r = calloc(1, sizeof *r);
        if (r)
            r->resync = r->rewatch = true;
        batch_add(&b, r);
    }
    enqueue_batch(&b);
}

/* The watch on the prefix, with etcd's periodic progress notifications: an idle cache keeps
 * learning that it is current up to a recent revision (applied_rev), not only when a lock
 * fence asks. */
static etcdc_watcher *start_watch(int64_t from_revision, etcdc_error *err)
{
    size_t end_len;
    char *end = key_prefix_end(g_fs.prefix, g_fs.prefix_len, &end_len);
    if (!end)
        return NULL;
    etcdc_watch_opts o = {.key = g_fs.prefix_len ? g_fs.prefix : "\0",
                          .key_len = g_fs.prefix_len ? g_fs.prefix_len : 1,
                          .range_end = end,
                          .range_end_len = end_len,
                          .start_revision = from_revision,
                          .progress_notify = true};
    etcdc_watcher *w = etcdc_watch(g_fs.client, &o, on_watch, NULL, err);
    free(end);
    return w;
}

/* The store revision now (one Range of at most one key under the prefix). */
static int current_revision(int64_t *rev)
{
    size_t end_len;
    char *end = key_prefix_end(g_fs.prefix, g_fs.prefix_len, &end_len);
    etcdc_range_req req = {.key = g_fs.prefix_len ? g_fs.prefix : "\0",
                           .key_len = g_fs.prefix_len ? g_fs.prefix_len : 1,
                           .range_end = end,
                           .range_end_len = end_len,
                           .limit = 1,
                           .keys_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = end ? etcdc_range(g_fs.client, &req, &kvs, &err) : ETCDC_ERR_NO_MEMORY;
    *rev = kvs.revision;
    etcdc_kvs_clear(&kvs);
    free(end);
    return code == ETCDC_OK ? 0 : -1;
}

/* Notify thread: a new watch after the old one ended. Everything up to the current revision
 * R is made right by forgetting every cached answer; everything after R comes as events. */
static bool try_rewatch(void)
{
    pthread_mutex_lock(&q_mu);
    etcdc_watcher *old = watcher;
    watcher = NULL;
    bool stop = q_stop;
    pthread_mutex_unlock(&q_mu);
    if (old)
        etcdc_watch_cancel(old);
    int64_t rev = 0;
    if (stop || current_revision(&rev) != 0)
        return stop;
    prefetch_clear();
    node_for_each(forget_cached, NULL);
    etcdc_error err = {0};
    etcdc_watcher *w = start_watch(rev + 1, &err);
    if (!w)
        return false;
    pthread_mutex_lock(&q_mu);
    stop = q_stop;
    if (!stop) {
        watcher = w;
        if (rev > applied_rev)
            applied_rev = rev;
        pthread_cond_broadcast(&applied_cv);
    }
    pthread_mutex_unlock(&q_mu);
    if (stop) {
        etcdc_watch_cancel(w);
        return true;
    }
    __atomic_store_n(&trusted_stream, etcdc_watch_stream_ready(g_fs.client), __ATOMIC_RELEASE);
    __atomic_store_n(&watching, true, __ATOMIC_RELEASE);
    log_msg(LOG_NOTICE, "watch re-established from revision %lld after a resync",
            (long long)rev + 1);
    return true;
}

int notify_start(int64_t start_revision)
{
    int rc = pthread_create(&thread, NULL, notify_main, NULL);
    if (rc)
        return rc;
    thread_running = true;
    etcdc_error err = {0};
    etcdc_watcher *w = start_watch(start_revision, &err);
    if (!w) {
        log_msg(LOG_WARNING,
                "cannot watch the prefix (%s): retrying; meanwhile caches "
                "converge by timeout only",
                err.message);
        queued_event *r = calloc(1, sizeof *r);
        if (r) {
            r->resync = r->rewatch = true;
            enqueue(r);
        }
        return EIO;
    }
    pthread_mutex_lock(&q_mu);
    watcher = w;
    pthread_mutex_unlock(&q_mu);
    __atomic_store_n(&trusted_stream, etcdc_watch_stream_ready(g_fs.client), __ATOMIC_RELEASE);
    __atomic_store_n(&watching, true, __ATOMIC_RELEASE);
    return 0;
}

void notify_stop(void)
{
    replay_stop(); /* its syscalls on the mount must not outlive the session */
    pthread_mutex_lock(&q_mu);
    q_stop = true; /* no new watch from here on */
    etcdc_watcher *w = watcher;
    watcher = NULL;
    pthread_cond_broadcast(&q_cv);
    pthread_cond_broadcast(&applied_cv);
    pthread_mutex_unlock(&q_mu);
    if (w)
        etcdc_watch_cancel(w);
    __atomic_store_n(&watching, false, __ATOMIC_RELEASE);
    if (!thread_running)
        return;
    pthread_join(thread, NULL);
    thread_running = false;
}

/* Forgets every cached answer on the notify thread and waits until that is done. */
static void resync_and_wait(void)
{
    queued_event *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->resync = true;
    pthread_mutex_lock(&q_mu);
    uint64_t target = resyncs_done + 1;
    pthread_mutex_unlock(&q_mu);
    enqueue(r);
    pthread_mutex_lock(&q_mu);
    while (resyncs_done < target && !q_stop && thread_running)
        pthread_cond_wait(&applied_cv, &q_mu);
    pthread_mutex_unlock(&q_mu);
}

void notify_fence(int64_t revision)
{
    pthread_mutex_lock(&q_mu);
    bool done = notify_watching() && applied_rev >= revision;
    pthread_mutex_unlock(&q_mu);
    if (done)
        return;
    etcdc_error err = {0};
    if (notify_watching() && etcdc_watch_request_progress(g_fs.client, &err) == ETCDC_OK) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FENCE_WAIT_S;
        pthread_mutex_lock(&q_mu);
        while (applied_rev < revision && notify_watching() && !q_stop &&
               pthread_cond_timedwait(&applied_cv, &q_mu, &until) == 0) {
        }
        done = applied_rev >= revision && notify_watching();
        pthread_mutex_unlock(&q_mu);
        if (done)
            return;
    }
    log_debug("fence at revision %lld: the watch did not confirm it; forgetting cached answers",
              (long long)revision);
    resync_and_wait();
}

bool notify_watching(void)
{
    /* A broken stream is resumed by the library without telling us; until then (and while
     * etcd refuses it: a member cut off from its leader) events come late, possibly never. */
    if (!__atomic_load_n(&watching, __ATOMIC_ACQUIRE))
        return false;
    uint64_t s = etcdc_watch_stream_ready(g_fs.client);
    return s != 0 && s == __atomic_load_n(&trusted_stream, __ATOMIC_ACQUIRE);
}
