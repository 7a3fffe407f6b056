/*
 * test_context.c - per-call deadline and cancellation (etcdc_ctx) against a real etcd
 * (run_with_etcd.sh): a context's deadline ends a call that etcd does not answer (SIGSTOP), a
 * cancel from another thread ends a blocked get, put, lock wait or watch creation, a canceled
 * context costs no round trip, one context bound on two threads cancels both, and a lock wait
 * that gives up leaves no waiter key behind.
 *
 * Every blocked call here would otherwise run into a 10 min request timeout (or wait forever
 * for a lock), so the codes, gRPC statuses and messages alone tell that the context ended it.
 */
#include <pthread.h>

#include "harness.h"

static etcdc_client *C;

#define CHECK_MENTIONS(e, text)                                                                    \
    do {                                                                                           \
        if (!strstr((e).message, (text)))                                                          \
            th_fail(__FILE__, __LINE__, "message \"%s\" does not mention \"%s\"", (e).message,     \
                    (text));                                                                       \
    } while (0)

/* A client that would wait 10 min for an answer. */
static etcdc_client *patient_client(void)
{
    etcdc_config *cfg = th_config();
    etcdc_config_set_request_timeout_ms(cfg, 600000);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    return c;
}

static void ignore_event(void *arg, const etcdc_watch_response *r)
{
    (void)arg;
    (void)r;
}

static void *cancel_later(void *ctx)
{
    th_sleep_ms(300);
    etcdc_ctx_cancel(ctx);
    return NULL;
}

static void test_canceled_context_costs_nothing(void)
{
    etcdc_error err = {0};
    const char *k = th_key("k");
    etcdc_ctx *ctx = etcdc_ctx_new(0);
    REQUIRE(ctx != NULL);
    CHECK(!etcdc_ctx_done(ctx));
    etcdc_ctx_cancel(ctx);
    etcdc_ctx_cancel(ctx); /* idempotent */
    CHECK(etcdc_ctx_done(ctx));
    etcdc_ctx *prev = etcdc_ctx_use(ctx);
    CHECK(prev == NULL);
    uint64_t rt = etcdc_thread_round_trips();
    etcdc_kv kv;
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_CANCELED, &err);
    CHECK_MENTIONS(err, "call context");
    CHECK_RC(etcdc_put(C, k, strlen(k), "v", 1, NULL, &err), ETCDC_ERR_CANCELED, &err);
    etcdc_kvs kvs;
    CHECK_RC(etcdc_get_prefix(C, th_prefix(), strlen(th_prefix()), &kvs, &err), ETCDC_ERR_CANCELED,
             &err);
    CHECK(etcdc_watch_prefix(C, k, strlen(k), 0, false, ignore_event, NULL, &err) == NULL);
    CHECK_INT(etcdc_thread_round_trips() - rt, 0);
    CHECK(etcdc_ctx_use(prev) == ctx);
    etcdc_ctx_free(ctx);
    /* unbound: calls work again */
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
}

static void test_deadline_ends_unanswered_call(void)
{
    etcdc_error err = {0};
    etcdc_client *c = patient_client();
    const char *k = th_key("paused");
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    REQUIRE(th_member("pause", 1) == 0);
    etcdc_ctx *ctx = etcdc_ctx_new(500);
    etcdc_ctx_use(ctx);
    int64_t t0 = th_now_ms();
    etcdc_kv kv;
    CHECK_RC(etcdc_get(c, k, strlen(k), &kv, &err), ETCDC_ERR_TIMEOUT, &err);
    CHECK_MENTIONS(err, "deadline of the call context");
    printf("  get ended after %lld ms: %s\n", (long long)(th_now_ms() - t0), err.message);
    CHECK(etcdc_ctx_done(ctx));
    etcdc_ctx_use(NULL);
    etcdc_ctx_free(ctx);
    REQUIRE(th_member("resume", 1) == 0);
    CHECK_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
    etcdc_kv_clear(&kv);
    etcdc_client_free(c);
}

static void test_cancel_ends_blocked_calls(void)
{
    etcdc_error err = {0};
    etcdc_client *c = patient_client();
    const char *k = th_key("blocked");
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    REQUIRE(th_member("pause", 1) == 0);

    /* a read, a write and a new watch, each canceled 300 ms into its wait */
    for (int what = 0; what < 3; what++) {
        etcdc_ctx *ctx = etcdc_ctx_new(0);
        etcdc_ctx_use(ctx);
        pthread_t t;
        pthread_create(&t, NULL, cancel_later, ctx);
        etcdc_code rc;
        if (what == 0) {
            etcdc_kv kv;
            rc = etcdc_get(c, k, strlen(k), &kv, &err);
        } else if (what == 1) {
            rc = etcdc_put(c, k, strlen(k), "w", 1, NULL, &err);
        } else {
            etcdc_watcher *w =
                etcdc_watch_prefix(c, k, strlen(k), 0, false, ignore_event, NULL, &err);
            rc = w ? ETCDC_OK : err.code;
            etcdc_watch_cancel(w);
        }
        CHECK_RC(rc, ETCDC_ERR_CANCELED, &err);
        CHECK_MENTIONS(err, "call context");
        if (what < 2) /* the request in flight itself was canceled, not noticed at a retry */
            CHECK_INT(err.grpc_status, 1 /* GRPC_STATUS_CANCELLED */);
        printf("  %s\n", err.message);
        pthread_join(t, NULL);
        etcdc_ctx_use(NULL);
        etcdc_ctx_free(ctx);
    }
    REQUIRE(th_member("resume", 1) == 0);
    etcdc_kv kv;
    CHECK_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
    etcdc_kv_clear(&kv);
    etcdc_client_free(c);
}

typedef struct lock_waiter {
    etcdc_session *s;
    const char *name;
    etcdc_ctx *ctx;
    etcdc_code rc;
    etcdc_error err;
} lock_waiter;

static void *wait_for_lock(void *p)
{
    lock_waiter *w = p;
    etcdc_ctx_use(w->ctx);
    etcdc_lock *l = NULL;
    w->rc = etcdc_lock_acquire(w->s, w->name, strlen(w->name), NULL, &l, &w->err);
    etcdc_lock_free(l);
    etcdc_ctx_use(NULL);
    return NULL;
}

/* A lock wait without a timeout of its own ends by the context: its deadline (TIMEOUT) or a
 * cancel reaching two threads that share it (CANCELED). No waiter key stays behind. */
static void test_lock_wait_ends_by_context(void)
{
    etcdc_error err = {0};
    const char *name = th_key("lock");
    char pfx[300];
    snprintf(pfx, sizeof pfx, "%s/", name);
    etcdc_session *holder = etcdc_session_new(C, 10, NULL, NULL, &err);
    etcdc_session *a = etcdc_session_new(C, 10, NULL, NULL, &err);
    etcdc_session *b = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(holder && a && b);
    etcdc_lock *held = NULL;
    REQUIRE_OK(etcdc_lock_acquire(holder, name, strlen(name), NULL, &held, &err), &err);

    lock_waiter timed = {.s = a, .name = name, .ctx = etcdc_ctx_new(400)};
    wait_for_lock(&timed);
    CHECK_RC(timed.rc, ETCDC_ERR_TIMEOUT, &timed.err);
    CHECK_MENTIONS(timed.err, "call context");
    etcdc_ctx_free(timed.ctx);

    etcdc_ctx *shared = etcdc_ctx_new(0);
    lock_waiter wa = {.s = a, .name = name, .ctx = shared};
    lock_waiter wb = {.s = b, .name = name, .ctx = shared};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, wait_for_lock, &wa);
    pthread_create(&tb, NULL, wait_for_lock, &wb);
    th_sleep_ms(500);
    etcdc_ctx_cancel(shared);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_RC(wa.rc, ETCDC_ERR_CANCELED, &wa.err);
    CHECK_RC(wb.rc, ETCDC_ERR_CANCELED, &wb.err);
    etcdc_ctx_free(shared);

    int64_t n = 0;
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 1); /* the holder's key only */
    etcdc_lock_free(held);
    etcdc_session_free(holder);
    etcdc_session_free(a);
    etcdc_session_free(b);
}

static void setup(void)
{
    C = th_client();
}

static void teardown(void)
{
    etcdc_client_free(C);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_canceled_context_costs_nothing),
        TH_TEST(test_deadline_ends_unanswered_call), TH_TEST(test_cancel_ends_blocked_calls),
        TH_TEST(test_lock_wait_ends_by_context), TH_TEST(teardown))
