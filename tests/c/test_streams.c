/*
 * test_streams.c - watches, leases and locks against a real etcd (run_with_etcd.sh): watch from
 * a revision with prev_kv, prefix watch and filters, compaction reported as COMPACTED, progress,
 * a watch that survives an etcd restart with no lost or repeated event, lease grant / TTL /
 * revoke / keep-alive with renewal and loss callbacks, and locks: exclusion between threads,
 * against `etcdctl lock`, TryLock, timeout, cancel, shared mode and session loss.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "harness.h"

static etcdc_client *C;

/* ---- a recording watch callback ---- */

typedef struct rec_event {
    etcdc_event_type type;
    char key[128];
    char value[64];
    char prev[64]; /* "-" when no prev_kv */
    int64_t mod_revision;
} rec_event;

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec_event *ev;
    size_t count, cap;
    int compacted, canceled, progress, after_end;
    int responses; /* EVENTS responses */
    int64_t compact_revision, progress_revision;
} recorder;

static void rec_init(recorder *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void rec_free(recorder *r)
{
    free(r->ev);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void on_watch(void *arg, const etcdc_watch_response *resp)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->compacted || r->canceled)
        r->after_end++; /* nothing may follow the end of a watch */
    switch (resp->kind) {
    case ETCDC_WATCH_EVENTS:
        r->responses++;
        for (size_t i = 0; i < resp->event_count; i++) {
            if (r->count == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
            }
            const etcdc_event *e = &resp->events[i];
            rec_event *o = &r->ev[r->count++];
            o->type = e->type;
            snprintf(o->key, sizeof o->key, "%.*s", (int)e->kv.key_len, e->kv.key);
            snprintf(o->value, sizeof o->value, "%s", e->kv.value ? e->kv.value : "");
            snprintf(o->prev, sizeof o->prev, "%s", e->prev_kv.key ? e->prev_kv.value : "-");
            o->mod_revision = e->kv.mod_revision;
        }
        break;
    case ETCDC_WATCH_PROGRESS:
        r->progress++;
        r->progress_revision = resp->revision;
        break;
    case ETCDC_WATCH_COMPACTED:
        r->compacted++;
        r->compact_revision = resp->compact_revision;
        break;
    case ETCDC_WATCH_CANCELED: r->canceled++; break;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits up to ms for cond (evaluated under the recorder's lock). */
#define REC_WAIT(r, ms, cond)                                                                      \
    ({                                                                                             \
        int64_t until_ = th_now_ms() + (ms);                                                       \
        pthread_mutex_lock(&(r)->mu);                                                              \
        while (!(cond) && th_now_ms() < until_) {                                                  \
            pthread_mutex_unlock(&(r)->mu);                                                        \
            th_sleep_ms(10);                                                                       \
            pthread_mutex_lock(&(r)->mu);                                                          \
        }                                                                                          \
        bool ok_ = (cond);                                                                         \
        pthread_mutex_unlock(&(r)->mu);                                                            \
        ok_;                                                                                       \
    })

static void put_s(etcdc_client *c, const char *k, const char *v, int64_t *rev)
{
    etcdc_error err = {0};
    REQUIRE_OK(etcdc_put(c, k, strlen(k), v, strlen(v), rev, &err), &err);
}

/* ---- watches ---- */

static void test_watch_from_revision_prev_kv(void)
{
    etcdc_error err = {0};
    char k[200];
    snprintf(k, sizeof k, "%s", th_key("w"));
    int64_t r1, r2, r3, rd;
    put_s(C, k, "v1", &r1);
    put_s(C, k, "v2", &r2);
    put_s(C, k, "v3", &r3);
    REQUIRE_OK(etcdc_delete(C, k, strlen(k), NULL, &err), &err);
    etcdc_kv gone;
    CHECK_RC(etcdc_get(C, k, strlen(k), &gone, &err), ETCDC_ERR_NOT_FOUND, &err);
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    rd = st.revision;

    recorder r;
    rec_init(&r);
    etcdc_watch_opts o = {.key = k, .key_len = strlen(k), .start_revision = r2, .prev_kv = true};
    etcdc_watcher *w = etcdc_watch(C, &o, on_watch, &r, &err);
    REQUIRE(w != NULL);
    CHECK(REC_WAIT(&r, 5000, r.count >= 3));
    th_sleep_ms(100);
    pthread_mutex_lock(&r.mu);
    CHECK_INT(r.count, 3);
    if (r.count >= 3) {
        CHECK(r.ev[0].type == ETCDC_EVENT_PUT && !strcmp(r.ev[0].value, "v2") &&
              !strcmp(r.ev[0].prev, "v1") && r.ev[0].mod_revision == r2);
        CHECK(r.ev[1].type == ETCDC_EVENT_PUT && !strcmp(r.ev[1].value, "v3") &&
              !strcmp(r.ev[1].prev, "v2") && r.ev[1].mod_revision == r3);
        CHECK(r.ev[2].type == ETCDC_EVENT_DELETE && !strcmp(r.ev[2].prev, "v3") &&
              r.ev[2].mod_revision == rd && !strcmp(r.ev[2].key, k));
    }
    pthread_mutex_unlock(&r.mu);
    CHECK_INT(etcdc_watch_revision(w), rd);
    etcdc_watch_cancel(w);
    /* After cancel: no more callbacks. */
    size_t before = r.count;
    put_s(C, k, "after", NULL);
    th_sleep_ms(200);
    CHECK_INT(r.count, before);
    rec_free(&r);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
}

static void test_watch_prefix_and_filters(void)
{
    etcdc_error err = {0};
    char p[200], a[200], b[200], outside[200];
    snprintf(p, sizeof p, "%s", th_key("dir/"));
    snprintf(a, sizeof a, "%s", th_key("dir/a"));
    snprintf(b, sizeof b, "%s", th_key("dir/b"));
    snprintf(outside, sizeof outside, "%s", th_key("dirx"));
    recorder all, puts_only;
    rec_init(&all);
    rec_init(&puts_only);
    etcdc_watcher *w1 = etcdc_watch_prefix(C, p, strlen(p), 0, false, on_watch, &all, &err);
    REQUIRE(w1 != NULL);
    char end[200];
    size_t end_len = etcdc_prefix_end(p, strlen(p), end);
    etcdc_watch_opts o = {.key = p,
                          .key_len = strlen(p),
                          .range_end = end,
                          .range_end_len = end_len,
                          .no_delete = true};
    etcdc_watcher *w2 = etcdc_watch(C, &o, on_watch, &puts_only, &err);
    REQUIRE(w2 != NULL);
    put_s(C, a, "1", NULL);
    put_s(C, outside, "x", NULL);
    put_s(C, b, "2", NULL);
    REQUIRE_OK(etcdc_delete(C, a, strlen(a), NULL, &err), &err);
    int64_t last;
    put_s(C, b, "3", &last);
    CHECK(REC_WAIT(&all, 5000, all.count >= 4));
    CHECK(REC_WAIT(&puts_only, 5000, puts_only.count >= 3));
    th_sleep_ms(100);
    CHECK_INT(all.count, 4); /* the key outside the prefix is not seen */
    CHECK_INT(puts_only.count, 3);
    for (size_t i = 0; i < puts_only.count; i++)
        CHECK(puts_only.ev[i].type == ETCDC_EVENT_PUT);
    if (all.count == 4) {
        CHECK(all.ev[2].type == ETCDC_EVENT_DELETE && !strcmp(all.ev[2].key, a));
        CHECK(all.ev[3].mod_revision == last);
        CHECK(!strcmp(all.ev[3].prev, "-")); /* prev_kv not asked */
    }
    /* Progress on request: everything up to the store revision has been delivered. */
    CHECK_OK(etcdc_watch_request_progress(C, &err), &err);
    CHECK(REC_WAIT(&all, 5000, all.progress > 0));
    CHECK(all.progress_revision >= last);
    etcdc_stats st;
    etcdc_client_stats(C, &st);
    printf("  %llu watch creations so far (one shared stream)\n",
           (unsigned long long)st.watch_create);
    etcdc_watch_cancel(w1);
    etcdc_watch_cancel(w2);
    rec_free(&all);
    rec_free(&puts_only);
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

/* Puts n keys "<prefix>big/<i>" in Txns of etcdc_max_txn_ops() puts. */
static void put_many(const char *prefix, size_t n)
{
    etcdc_error err = {0};
    size_t batch = etcdc_max_txn_ops();
    etcdc_pair *pairs = calloc(batch, sizeof *pairs);
    char(*keys)[240] = calloc(batch, sizeof *keys);
    REQUIRE(pairs && keys);
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        for (size_t j = 0; j < k; j++) {
            snprintf(keys[j], sizeof keys[j], "%sbig/%06zu", prefix, i + j);
            pairs[j] = (etcdc_pair){keys[j], strlen(keys[j]), "some value", 10};
        }
        REQUIRE_OK(etcdc_bulk_put(C, pairs, k, NULL, &err), &err);
    }
    free(pairs);
    free(keys);
}

/* One revision with many events (a delete of a large prefix) reaches a watcher whole, in one
 * response, and at once: fragments are not asked for from the start, as etcd cuts them in
 * time quadratic in their size (a delete of 100,000 keys took 43 s to arrive in fragments).
 * A client whose receive limit is below even etcd's fragments (up to --max-request-bytes plus
 * 512 KiB) cannot get that revision: its watcher is ended with the reason, not left waiting. */
static void test_watch_large_revision(void)
{
    enum { KEYS = 6000 }; /* ~0.3 MB of delete events, in one revision */
    etcdc_error err = {0};
    char p[200];
    snprintf(p, sizeof p, "%s", th_key("wide/"));
    put_many(p, KEYS);
    etcdc_config *cfg = th_config();
    etcdc_config_set_max_message_size(cfg, 2u << 20, 64 * 1024);
    etcdc_client *small = th_client_from(cfg);
    etcdc_config_free(cfg);
    recorder whole, refused;
    rec_init(&whole);
    rec_init(&refused);
    etcdc_watcher *w1 = etcdc_watch_prefix(C, p, strlen(p), 0, false, on_watch, &whole, &err);
    REQUIRE(w1 != NULL);
    etcdc_watcher *w2 = etcdc_watch_prefix(small, p, strlen(p), 0, false, on_watch, &refused, &err);
    REQUIRE(w2 != NULL);
    int64_t deleted = 0, t0 = th_now_ms();
    REQUIRE_OK(etcdc_delete_prefix(C, p, strlen(p), &deleted, &err), &err);
    CHECK_INT(deleted, KEYS);
    CHECK(REC_WAIT(&whole, 20000, whole.count >= KEYS));
    int64_t t_whole = th_now_ms() - t0;
    CHECK(REC_WAIT(&refused, 20000, refused.canceled > 0));
    th_sleep_ms(100);
    CHECK_INT(whole.count, KEYS);
    CHECK_INT(whole.responses, 1);
    CHECK(!whole.canceled);
    CHECK_INT(refused.count, 0);
    CHECK_INT(refused.after_end, 0);
    printf("  delete of %d keys: one response after %lld ms; a client with a 64 KiB receive "
           "limit: watch ended\n",
           KEYS, (long long)t_whole);
    etcdc_watch_cancel(w1);
    etcdc_watch_cancel(w2);
    etcdc_client_free(small);
    rec_free(&whole);
    rec_free(&refused);
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

/* Run against an etcd with --max-request-bytes 65536, whose fragments are at most ~580 KiB: a
 * revision whose events exceed the client's 1 MiB receive limit ends the stream; the next one
 * asks for fragments, which arrive joined again as one response, in order, none lost or
 * repeated, and the watch goes on. */
static void test_watch_fragments(void)
{
    enum { KEYS = 24000 }; /* ~1.4 MB of delete events, in one revision */
    if (!getenv("ETCDC_TEST_MAX_REQUEST_BYTES")) {
        printf("  needs etcd --max-request-bytes 65536 (ctest c_watch_fragments): not run\n");
        return;
    }
    etcdc_error err = {0};
    char p[200];
    snprintf(p, sizeof p, "%s", th_key("frag/"));
    put_many(p, KEYS);
    etcdc_config *cfg = th_config();
    etcdc_config_set_max_message_size(cfg, 2u << 20, 1u << 20);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    recorder r;
    rec_init(&r);
    etcdc_watcher *w = etcdc_watch_prefix(c, p, strlen(p), 0, false, on_watch, &r, &err);
    REQUIRE(w != NULL);
    int64_t t0 = th_now_ms();
    REQUIRE_OK(etcdc_delete_prefix(C, p, strlen(p), NULL, &err), &err);
    CHECK(REC_WAIT(&r, 60000, r.count >= KEYS));
    int64_t t = th_now_ms() - t0;
    put_s(C, th_key("frag/after"), "x", NULL);
    CHECK(REC_WAIT(&r, 5000, r.count >= KEYS + 1));
    th_sleep_ms(100);
    CHECK_INT(r.count, KEYS + 1);
    CHECK_INT(r.responses, 2);
    CHECK(!r.canceled);
    for (size_t i = 0; i < KEYS && i < r.count; i++) {
        char want[240];
        snprintf(want, sizeof want, "%sbig/%06zu", p, i);
        if (strcmp(r.ev[i].key, want) || r.ev[i].type != ETCDC_EVENT_DELETE) {
            CHECK(!"fragments joined in order");
            break;
        }
    }
    printf("  delete of %d keys through a 1 MiB receive limit: in fragments after %lld ms\n", KEYS,
           (long long)t);
    etcdc_watch_cancel(w);
    etcdc_client_free(c);
    rec_free(&r);
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

static void test_watch_compacted(void)
{
    etcdc_error err = {0};
    char k[200];
    snprintf(k, sizeof k, "%s", th_key("c"));
    int64_t r1, r2, r3;
    put_s(C, k, "1", &r1);
    put_s(C, k, "2", &r2);
    put_s(C, k, "3", &r3);
    REQUIRE_OK(etcdc_compact(C, r3, true, &err), &err);
    recorder r;
    rec_init(&r);
    etcdc_watch_opts o = {.key = k, .key_len = strlen(k), .start_revision = r1};
    etcdc_watcher *w = etcdc_watch(C, &o, on_watch, &r, &err);
    if (w) {
        CHECK(REC_WAIT(&r, 5000, r.compacted > 0));
        CHECK_INT(r.compacted, 1);
        CHECK_INT(r.compact_revision, r3);
        CHECK_INT(r.count, 0); /* nothing delivered from a compacted start */
        put_s(C, k, "4", NULL);
        th_sleep_ms(200);
        CHECK_INT(r.after_end, 0);
        etcdc_watch_cancel(w);
    } else {
        /* Reporting it at creation is acceptable too, as long as it is COMPACTED. */
        CHECK_INT(err.code, ETCDC_ERR_COMPACTED);
    }
    rec_free(&r);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
}

typedef struct seq_writer {
    etcdc_client *c;
    char prefix[200];
    atomic_bool stop;
    int written, errors;
} seq_writer;

static void *seq_write(void *p)
{
    seq_writer *w = p;
    char key[256];
    for (int i = 0; !atomic_load(&w->stop); i++) {
        snprintf(key, sizeof key, "%sk%05d", w->prefix, i % 50);
        char v[32];
        snprintf(v, sizeof v, "%d", i);
        if (etcdc_put(w->c, key, strlen(key), v, strlen(v), NULL, NULL) == ETCDC_OK)
            w->written++;
        else
            w->errors++;
        th_sleep_ms(2);
    }
    return NULL;
}

/* etcd is stopped and started again while a watcher runs and a writer keeps writing: the
 * watcher must deliver exactly the store's history (compared with a replay from etcd). */
static void test_watch_survives_restart(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    etcdc_config_set_request_timeout_ms(cfg, 1000);
    etcdc_client *wc = th_client_from(cfg);
    etcdc_config_free(cfg);
    char p[200];
    snprintf(p, sizeof p, "%s", th_prefix());
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    int64_t start = st.revision + 1;
    uint64_t term_before = st.raft_term;

    recorder live;
    rec_init(&live);
    etcdc_watcher *w = etcdc_watch_prefix(C, p, strlen(p), start, true, on_watch, &live, &err);
    REQUIRE(w != NULL);
    seq_writer sw = {.c = wc};
    snprintf(sw.prefix, sizeof sw.prefix, "%s", p);
    pthread_t th;
    pthread_create(&th, NULL, seq_write, &sw);
    th_sleep_ms(500);
    CHECK(th_member("stop", 1) == 0);
    th_sleep_ms(300);
    CHECK(th_member("start", 1) == 0);
    /* Wait until writes go through again, then a little more. */
    int before = sw.written;
    for (int i = 0; i < 200 && sw.written < before + 50; i++)
        th_sleep_ms(50);
    atomic_store(&sw.stop, true);
    pthread_join(th, NULL);
    etcdc_stats ws;
    etcdc_client_stats(wc, &ws);
    printf("  %d writes, %d failed and %llu retried while etcd was down\n", sw.written, sw.errors,
           (unsigned long long)ws.retries);
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    /* etcd really restarted: a restarted member starts a new raft term. (Writes may have
     * simply waited out the short outage, so errors or retries prove nothing.) */
    CHECK(st.raft_term > term_before);
    int64_t end = st.revision;
    CHECK(REC_WAIT(&live, 10000, live.count && live.ev[live.count - 1].mod_revision >= end));

    /* The authoritative history: a fresh watch replaying from `start`. */
    recorder replay;
    rec_init(&replay);
    etcdc_watcher *w2 = etcdc_watch_prefix(C, p, strlen(p), start, true, on_watch, &replay, &err);
    REQUIRE(w2 != NULL);
    CHECK(
        REC_WAIT(&replay, 10000, replay.count && replay.ev[replay.count - 1].mod_revision >= end));
    etcdc_watch_cancel(w2);
    etcdc_watch_cancel(w);
    printf("  live watcher: %zu events, replay: %zu events up to revision %lld\n", live.count,
           replay.count, (long long)end);
    CHECK_INT(live.count, replay.count);
    size_t n = live.count < replay.count ? live.count : replay.count, diff = 0, dup = 0;
    for (size_t i = 0; i < n; i++) {
        if (live.ev[i].mod_revision != replay.ev[i].mod_revision ||
            strcmp(live.ev[i].key, replay.ev[i].key) ||
            strcmp(live.ev[i].value, replay.ev[i].value))
            diff++;
        if (i && live.ev[i].mod_revision <= live.ev[i - 1].mod_revision)
            dup++;
    }
    CHECK_INT(diff, 0);
    CHECK_INT(dup, 0);
    CHECK_INT(live.compacted + live.canceled, 0);
    rec_free(&live);
    rec_free(&replay);
    etcdc_delete_prefix(C, p, strlen(p), NULL, NULL);
    etcdc_client_free(wc);
}

/* ---- leases ---- */

typedef struct ka_rec {
    atomic_int renewals, lost, after_lost;
    atomic_llong last_ttl;
} ka_rec;

static void on_ka(void *arg, int64_t id, int64_t ttl)
{
    (void)id;
    ka_rec *r = arg;
    if (atomic_load(&r->lost))
        atomic_fetch_add(&r->after_lost, 1);
    if (ttl > 0)
        atomic_fetch_add(&r->renewals, 1);
    else
        atomic_fetch_add(&r->lost, 1);
    atomic_store(&r->last_ttl, ttl);
}

static void test_lease_basics(void)
{
    etcdc_error err = {0};
    int64_t id = 0, ttl = 0, granted = 0;
    REQUIRE_OK(etcdc_lease_grant(C, 30, &id, &err), &err);
    CHECK(id != 0);
    const char *k = th_key("leased");
    REQUIRE_OK(etcdc_put_with_lease(C, k, strlen(k), "v", 1, id, NULL, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_INT(kv.lease, id);
    etcdc_kv_clear(&kv);
    etcdc_kvs keys;
    REQUIRE_OK(etcdc_lease_time_to_live(C, id, &ttl, &granted, &keys, &err), &err);
    CHECK(ttl > 0 && ttl <= 30);
    CHECK_INT(granted, 30);
    CHECK_INT(keys.count, 1);
    if (keys.count)
        CHECK_STR(keys.kvs[0].key, keys.kvs[0].key_len, k);
    etcdc_kvs_clear(&keys);
    CHECK_OK(etcdc_lease_time_to_live(C, id, &ttl, NULL, NULL, &err), &err);
    int64_t renewed = 0;
    CHECK_OK(etcdc_lease_keepalive_once(C, id, &renewed, &err), &err);
    CHECK_INT(renewed, 30);

    /* attach_lease: a second key, written without a lease, joins it. */
    const char *k2 = th_key("joined");
    put_s(C, k2, "keep", NULL);
    CHECK_OK(etcdc_attach_lease(C, k2, strlen(k2), id, NULL, &err), &err);
    REQUIRE_OK(etcdc_get(C, k2, strlen(k2), &kv, &err), &err);
    CHECK_INT(kv.lease, id);
    CHECK_STR(kv.value, kv.value_len, "keep");
    etcdc_kv_clear(&kv);
    CHECK_RC(etcdc_attach_lease(C, "nope", 4, id, NULL, &err), ETCDC_ERR_NOT_FOUND, &err);

    /* ... and inside a transaction, next to a put, the value untouched (sealed or not) */
    const char *k3 = th_key("joined-in-txn");
    put_s(C, k3, "kept", NULL);
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_attach_lease(t, ETCDC_THEN, k3, strlen(k3), id);
    etcdc_txn_result tr = {0};
    CHECK_OK(etcdc_txn_commit(C, t, &tr, &err), &err);
    CHECK(tr.succeeded);
    etcdc_txn_result_clear(&tr);
    etcdc_txn_free(t);
    REQUIRE_OK(etcdc_get(C, k3, strlen(k3), &kv, &err), &err);
    CHECK_INT(kv.lease, id);
    CHECK_STR(kv.value, kv.value_len, "kept");
    etcdc_kv_clear(&kv);

    CHECK_OK(etcdc_lease_revoke(C, id, &err), &err);
    bool exists = true;
    CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
    CHECK(!exists);
    CHECK_OK(etcdc_exists(C, k2, strlen(k2), &exists, &err), &err);
    CHECK(!exists);
    CHECK_RC(etcdc_lease_revoke(C, id, &err), ETCDC_ERR_NOT_FOUND, &err);
    printf("  revoke twice: %s\n", err.message);
    CHECK_OK(etcdc_lease_time_to_live(C, id, &ttl, NULL, NULL, &err), &err);
    CHECK_INT(ttl, -1);
    CHECK_RC(etcdc_put_with_lease(C, k, strlen(k), "v", 1, id, NULL, &err), ETCDC_ERR_NOT_FOUND,
             &err);
    CHECK_RC(etcdc_lease_keepalive_once(C, id, &renewed, &err), ETCDC_ERR_NOT_FOUND, &err);

    /* A caller-chosen id; granting it twice is refused. An uninitialised out_id is fine. */
    int64_t chosen = 0x5eed0000 + (getpid() & 0xffff), got;
    memset(&got, 0xa5, sizeof got);
    CHECK_OK(etcdc_lease_grant_id(C, 10, chosen, &err), &err);
    CHECK_OK(etcdc_lease_time_to_live(C, chosen, &ttl, &granted, NULL, &err), &err);
    CHECK_INT(granted, 10);
    CHECK_RC(etcdc_lease_grant_id(C, 10, chosen, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    printf("  chosen id twice: %s\n", err.message);
    CHECK_OK(etcdc_lease_grant(C, 10, &got, &err), &err);
    CHECK(got != chosen && got > 0);
    CHECK_OK(etcdc_lease_revoke(C, chosen, &err), &err);
    CHECK_OK(etcdc_lease_revoke(C, got, &err), &err);
    CHECK_RC(etcdc_lease_grant(C, 0, &got, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
}

static void test_keepalive_many_and_revoke(void)
{
    etcdc_error err = {0};
    enum { N = 20 };
    int64_t ids[N];
    ka_rec recs[N];
    etcdc_keepalive *kas[N];
    for (int i = 0; i < N; i++) {
        REQUIRE_OK(etcdc_lease_grant(C, 2, &ids[i], &err), &err);
        memset(&recs[i], 0, sizeof recs[i]);
        kas[i] = etcdc_lease_keepalive(C, ids[i], on_ka, &recs[i], &err);
        REQUIRE(kas[i] != NULL);
    }
    th_sleep_ms(5000); /* 2.5 TTLs */
    int alive = 0, min_renewals = 1000;
    for (int i = 0; i < N; i++) {
        int64_t ttl = 0;
        CHECK_OK(etcdc_lease_time_to_live(C, ids[i], &ttl, NULL, NULL, &err), &err);
        alive += ttl > 0;
        if (atomic_load(&recs[i].renewals) < min_renewals)
            min_renewals = atomic_load(&recs[i].renewals);
    }
    printf("  %d/%d leases alive after 5 s, at least %d renewals each\n", alive, N, min_renewals);
    CHECK_INT(alive, N);
    CHECK(min_renewals >= 3);
    /* Revoke one from outside: its callback hears ttl <= 0 exactly once, then nothing. */
    CHECK_OK(etcdc_lease_revoke(C, ids[0], &err), &err);
    int64_t until = th_now_ms() + 5000;
    while (!atomic_load(&recs[0].lost) && th_now_ms() < until)
        th_sleep_ms(20);
    CHECK_INT(atomic_load(&recs[0].lost), 1);
    th_sleep_ms(1500);
    CHECK_INT(atomic_load(&recs[0].after_lost), 0);
    CHECK_INT(atomic_load(&recs[1].lost), 0);
    for (int i = 0; i < N; i++) {
        etcdc_keepalive_stop(kas[i]);
        if (i)
            etcdc_lease_revoke(C, ids[i], NULL);
    }
    /* A stopped keep-alive does not call back any more. */
    int r1 = atomic_load(&recs[1].renewals);
    th_sleep_ms(1000);
    CHECK_INT(atomic_load(&recs[1].renewals), r1);
    etcdc_keepalive_stop(NULL);
}

/* The server stops answering for longer than the TTL: the lease expires, and the keep-alive
 * reports the loss (ttl <= 0) once etcd is back. */
static void test_keepalive_expiry_callback(void)
{
    etcdc_error err = {0};
    int64_t id = 0;
    REQUIRE_OK(etcdc_lease_grant(C, 2, &id, &err), &err);
    const char *k = th_key("exp");
    REQUIRE_OK(etcdc_put_with_lease(C, k, strlen(k), "v", 1, id, NULL, &err), &err);
    ka_rec rec = {0};
    etcdc_keepalive *ka = etcdc_lease_keepalive(C, id, on_ka, &rec, &err);
    REQUIRE(ka != NULL);
    th_sleep_ms(1000);
    REQUIRE(th_member("pause", 1) == 0);
    th_sleep_ms(4000);
    th_member("resume", 1);
    int64_t until = th_now_ms() + 10000;
    while (!atomic_load(&rec.lost) && th_now_ms() < until)
        th_sleep_ms(50);
    CHECK_INT(atomic_load(&rec.lost), 1);
    printf("  after a 4 s pause: %d renewals, lost=%d\n", atomic_load(&rec.renewals),
           atomic_load(&rec.lost));
    etcdc_keepalive_stop(ka);
    /* etcd expires it once it runs again. */
    bool exists = true;
    until = th_now_ms() + 10000;
    while (exists && th_now_ms() < until) {
        CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
        th_sleep_ms(100);
    }
    CHECK(!exists);
}

/* ---- locks ---- */

typedef struct locker {
    etcdc_client *c;
    const char *name;
    const char *counter;
    int rounds, failures;
} locker;

/* Read-modify-write of a counter under the lock: only exclusion keeps increments from being
 * lost. */
static void *lock_loop(void *p)
{
    locker *l = p;
    etcdc_error err;
    etcdc_session *s = etcdc_session_new(l->c, 10, NULL, NULL, &err);
    if (!s) {
        l->failures++;
        return NULL;
    }
    etcdc_lock_opts o = {.mode = ETCDC_LOCK_EXCLUSIVE, .timeout_ms = 30000};
    for (int i = 0; i < l->rounds; i++) {
        etcdc_lock *lk = NULL;
        if (etcdc_lock_acquire(s, l->name, strlen(l->name), &o, &lk, &err) != ETCDC_OK) {
            l->failures++;
            continue;
        }
        etcdc_kv kv;
        long v = 0;
        if (etcdc_get(l->c, l->counter, strlen(l->counter), &kv, &err) == ETCDC_OK) {
            v = strtol(kv.value, NULL, 10);
            etcdc_kv_clear(&kv);
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", v + 1);
        if (etcdc_put(l->c, l->counter, strlen(l->counter), buf, strlen(buf), NULL, &err))
            l->failures++;
        if (etcdc_lock_release(lk, &err) != ETCDC_OK)
            l->failures++;
        etcdc_lock_free(lk);
    }
    etcdc_session_free(s);
    return NULL;
}

static void test_lock_exclusion_threads(void)
{
    etcdc_error err = {0};
    char name[200], counter[200];
    snprintf(name, sizeof name, "%s", th_key("lock"));
    snprintf(counter, sizeof counter, "%s", th_key("counter"));
    enum { N = 4, ROUNDS = 25 };
    pthread_t th[N];
    locker l[N];
    for (int i = 0; i < N; i++) {
        l[i] = (locker){.c = C, .name = name, .counter = counter, .rounds = ROUNDS};
        pthread_create(&th[i], NULL, lock_loop, &l[i]);
    }
    int failures = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        failures += l[i].failures;
    }
    CHECK_INT(failures, 0);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, counter, strlen(counter), &kv, &err), &err);
    CHECK_INT(strtol(kv.value, NULL, 10), N * ROUNDS);
    etcdc_kv_clear(&kv);
    /* Nothing is left under the lock name. */
    char pfx[210];
    snprintf(pfx, sizeof pfx, "%s/", name);
    int64_t n = -1;
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 0);
    etcdc_delete(C, counter, strlen(counter), NULL, NULL);
}

/* Starts `etcdctl lock name sh -c CMD` and returns its pid; *out reads its stdout. */
static pid_t etcdctl_lock(const char *name, const char *cmd, FILE **out)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("etcdctl", "etcdctl", "--endpoints", th_endpoints(), "lock", name, "--", "sh", "-c",
               cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *out = fdopen(fds[0], "r");
    return pid;
}

static void test_lock_vs_etcdctl(void)
{
    etcdc_error err = {0};
    char name[200];
    snprintf(name, sizeof name, "%s", th_key("shared-with-etcdctl"));
    etcdc_session *s = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(s != NULL);

    /* etcdctl holds it: our TryLock is refused, a waiting lock gets it after etcdctl exits. */
    FILE *out = NULL;
    pid_t pid = etcdctl_lock(name, "echo held; sleep 2; echo releasing", &out);
    REQUIRE(pid > 0);
    char line[128] = "";
    REQUIRE(fgets(line, sizeof line, out) != NULL);
    CHECK(strncmp(line, "held", 4) == 0);
    etcdc_lock *lk = NULL;
    etcdc_lock_opts try_once = {.try_once = true};
    CHECK_RC(etcdc_lock_acquire(s, name, strlen(name), &try_once, &lk, &err), ETCDC_ERR_WOULD_BLOCK,
             &err);
    etcdc_lock_opts wait = {.timeout_ms = 20000};
    REQUIRE_OK(etcdc_lock_acquire(s, name, strlen(name), &wait, &lk, &err), &err);
    /* By now etcdctl has finished its command. */
    CHECK(fgets(line, sizeof line, out) != NULL && strncmp(line, "releasing", 9) == 0);
    int status = 0;
    waitpid(pid, &status, 0);
    fclose(out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* We hold it: etcdctl waits until we release. */
    pid = etcdctl_lock(name, "echo got-it", &out);
    REQUIRE(pid > 0);
    th_sleep_ms(1500);
    CHECK(waitpid(pid, &status, WNOHANG) == 0); /* still waiting */
    REQUIRE_OK(etcdc_lock_release(lk, &err), &err);
    etcdc_lock_free(lk);
    CHECK(fgets(line, sizeof line, out) != NULL && strncmp(line, "got-it", 6) == 0);
    waitpid(pid, &status, 0);
    fclose(out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    etcdc_session_free(s);
}

static void *fire_later(void *p)
{
    th_sleep_ms(300);
    etcdc_cancel_fire(p);
    return NULL;
}

static void test_lock_timeout_cancel_shared(void)
{
    etcdc_error err = {0};
    char name[200], pfx[210];
    snprintf(name, sizeof name, "%s", th_key("l"));
    snprintf(pfx, sizeof pfx, "%s/", name);
    etcdc_session *a = etcdc_session_new(C, 10, NULL, NULL, &err);
    etcdc_session *b = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(a && b);
    etcdc_lock *la = NULL, *lb = NULL;
    etcdc_lock_opts ex = {.mode = ETCDC_LOCK_EXCLUSIVE, .timeout_ms = 5000};
    REQUIRE_OK(etcdc_lock_acquire(a, name, strlen(name), &ex, &la, &err), &err);
    size_t klen = 0;
    const char *key = etcdc_lock_key(la, &klen);
    char want[64];
    snprintf(want, sizeof want, "/%llx", (unsigned long long)etcdc_session_lease(a));
    CHECK(klen > strlen(want) && strcmp(key + klen - strlen(want), want) == 0);
    CHECK(etcdc_lock_granted_revision(la) >= etcdc_lock_revision(la));

    /* Timeout: nothing left behind. */
    etcdc_lock_opts short_wait = {.timeout_ms = 400};
    int64_t t0 = th_now_ms();
    CHECK_RC(etcdc_lock_acquire(b, name, strlen(name), &short_wait, &lb, &err), ETCDC_ERR_TIMEOUT,
             &err);
    printf("  timed out after %lld ms\n", (long long)(th_now_ms() - t0));
    int64_t n = 0;
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 1);

    /* Cancel from another thread. */
    etcdc_cancel *tok = etcdc_cancel_new();
    etcdc_lock_opts cancellable = {.cancel = tok}; /* zero timeout: wait until granted */
    pthread_t th;
    pthread_create(&th, NULL, fire_later, tok);
    CHECK_RC(etcdc_lock_acquire(b, name, strlen(name), &cancellable, &lb, &err), ETCDC_ERR_CANCELED,
             &err);
    pthread_join(th, NULL);
    CHECK(etcdc_cancel_fired(tok));
    etcdc_cancel_free(tok);
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 1);
    CHECK_OK(etcdc_lock_release(la, &err), &err);
    etcdc_lock_free(la);

    /* Shared holders coexist; an exclusive TryLock is refused while they hold. */
    etcdc_lock_opts sh = {.mode = ETCDC_LOCK_SHARED, .timeout_ms = 5000};
    REQUIRE_OK(etcdc_lock_acquire(a, name, strlen(name), &sh, &la, &err), &err);
    REQUIRE_OK(etcdc_lock_acquire(b, name, strlen(name), &sh, &lb, &err), &err);
    etcdc_session *c3 = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(c3 != NULL);
    etcdc_lock *lc = NULL;
    etcdc_lock_opts try_ex = {.mode = ETCDC_LOCK_EXCLUSIVE, .try_once = true};
    CHECK_RC(etcdc_lock_acquire(c3, name, strlen(name), &try_ex, &lc, &err), ETCDC_ERR_WOULD_BLOCK,
             &err);
    CHECK_OK(etcdc_lock_release(la, &err), &err);
    CHECK_OK(etcdc_lock_release(lb, &err), &err);
    etcdc_lock_free(la);
    etcdc_lock_free(lb);
    CHECK_OK(etcdc_lock_acquire(c3, name, strlen(name), &try_ex, &lc, &err), &err);
    if (lc)
        CHECK_OK(etcdc_lock_release(lc, &err), &err);
    etcdc_lock_free(lc);
    etcdc_session_free(c3);
    etcdc_session_free(a);
    etcdc_session_free(b);
}

static atomic_int lost_calls;
static void on_lost(void *arg)
{
    (void)arg;
    atomic_fetch_add(&lost_calls, 1);
}

static void test_session_lost(void)
{
    etcdc_error err = {0};
    char name[200];
    snprintf(name, sizeof name, "%s", th_key("sl"));
    etcdc_session *s = etcdc_session_new(C, 5, on_lost, NULL, &err);
    REQUIRE(s != NULL);
    CHECK(etcdc_session_alive(s));
    etcdc_lock *lk = NULL;
    etcdc_lock_opts o = {.timeout_ms = 5000};
    REQUIRE_OK(etcdc_lock_acquire(s, name, strlen(name), &o, &lk, &err), &err);
    /* Someone revokes the session's lease: the lock key vanishes, the session hears it. */
    CHECK_OK(etcdc_lease_revoke(C, etcdc_session_lease(s), &err), &err);
    int64_t until = th_now_ms() + 10000;
    while (!atomic_load(&lost_calls) && th_now_ms() < until)
        th_sleep_ms(20);
    CHECK_INT(atomic_load(&lost_calls), 1);
    CHECK(!etcdc_session_alive(s));
    CHECK_OK(etcdc_lock_release(lk, &err), &err); /* the key went with the lease: OK */
    etcdc_lock_free(lk);
    etcdc_lock *again = NULL;
    CHECK_RC(etcdc_lock_acquire(s, name, strlen(name), &o, &again, &err), ETCDC_ERR_LEASE_EXPIRED,
             &err);
    etcdc_session_free(s);
    CHECK_INT(atomic_load(&lost_calls), 1);
}

static void setup(void)
{
    C = th_client();
}

static void teardown(void)
{
    etcdc_client_free(C);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_watch_from_revision_prev_kv),
        TH_TEST(test_watch_prefix_and_filters), TH_TEST(test_watch_large_revision),
        TH_TEST(test_watch_fragments), TH_TEST(test_watch_compacted), TH_TEST(test_lease_basics),
        TH_TEST(test_keepalive_many_and_revoke), TH_TEST(test_lock_exclusion_threads),
        TH_TEST(test_lock_vs_etcdctl), TH_TEST(test_lock_timeout_cancel_shared),
        TH_TEST(test_session_lost), TH_TEST(test_watch_survives_restart),
        TH_TEST(test_keepalive_expiry_callback), TH_TEST(teardown))
