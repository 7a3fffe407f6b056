/*
 * test_contract.c - the promises etcdc.h makes about every call, against a real etcd
 * (run_with_etcd.sh): a success clears the caller's etcdc_error, messages name the operation and
 * key (or the endpoints), the same condition gives the same code on unary calls and watches,
 * NULL / zero options mean the common case, and a lock release is idempotent.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

static etcdc_client *C;

/* err carries nothing from an earlier call. */
#define CHECK_CLEAR(e)                                                                             \
    do {                                                                                           \
        CHECK_INT((e).code, ETCDC_OK);                                                             \
        CHECK_INT((e).grpc_status, 0);                                                             \
        if ((e).message[0])                                                                        \
            th_fail(__FILE__, __LINE__, "message left after success: %s", (e).message);            \
    } while (0)
#define CHECK_MENTIONS(e, text)                                                                    \
    do {                                                                                           \
        if (!strstr((e).message, (text)))                                                          \
            th_fail(__FILE__, __LINE__, "message \"%s\" does not mention \"%s\"", (e).message,     \
                    (text));                                                                       \
    } while (0)

static void test_success_clears_error(void)
{
    etcdc_error err = {0};
    const char *k = th_key("k");
    etcdc_kv kv;
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_INT(err.code, ETCDC_ERR_NOT_FOUND);
    CHECK_OK(etcdc_put(C, k, strlen(k), "v", 1, NULL, &err), &err);
    CHECK_CLEAR(err);

    /* Every kind of call: a failure first, then a success through the same struct. */
    CHECK_RC(etcdc_put_if_absent(C, k, strlen(k), "w", 1, NULL, &err), ETCDC_ERR_COMPARE_FAILED,
             &err);
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_CLEAR(err);
    etcdc_kv_clear(&kv);

    CHECK_RC(etcdc_get_at_revision(C, k, strlen(k), -1, &kv, &err), ETCDC_ERR_INVALID_ARGUMENT,
             &err);
    etcdc_kvs kvs;
    CHECK_OK(etcdc_get_prefix(C, th_prefix(), strlen(th_prefix()), &kvs, &err), &err);
    CHECK_CLEAR(err);
    CHECK_INT(kvs.count, 1);
    etcdc_kvs_clear(&kvs);

    CHECK_RC(etcdc_lease_revoke(C, 0x7fff0000abcdLL, &err), ETCDC_ERR_NOT_FOUND, &err);
    int64_t lease = 0;
    CHECK_OK(etcdc_lease_grant(C, 30, &lease, &err), &err);
    CHECK_CLEAR(err);
    CHECK_RC(etcdc_lease_revoke(C, 0x7fff0000abcdLL, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_OK(etcdc_lease_revoke(C, lease, &err), &err);
    CHECK_CLEAR(err);

    etcdc_txn *t = etcdc_txn_new();
    REQUIRE(t != NULL);
    etcdc_txn_if(t, k, strlen(k), ETCDC_CMP_VERSION, ETCDC_EQUAL, 1);
    etcdc_txn_result r;
    CHECK_RC(etcdc_move_key(C, th_key("absent"), strlen(th_key("absent")), k, strlen(k), true, NULL,
                            &err),
             ETCDC_ERR_NOT_FOUND, &err);
    CHECK_OK(etcdc_txn_commit(C, t, &r, &err), &err);
    CHECK_CLEAR(err);
    CHECK(r.succeeded);
    etcdc_txn_result_clear(&r);
    etcdc_txn_free(t);

    /* A struct full of garbage is cleared too (not only one left by a failure). */
    memset(&err, 0x5a, sizeof err);
    CHECK_OK(etcdc_delete(C, k, strlen(k), NULL, &err), &err);
    CHECK_CLEAR(err);
}

static void test_messages_name_operation_and_key(void)
{
    etcdc_error err = {0};
    const char *k = th_key("named"), *to = th_key("target");
    etcdc_kv kv;
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_MENTIONS(err, "get");
    CHECK_MENTIONS(err, k);
    printf("  %s\n", err.message);

    int64_t rev = 0;
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v", 1, &rev, &err), &err);
    CHECK_RC(etcdc_get_at_revision(C, to, strlen(to), rev, &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_MENTIONS(err, to);
    CHECK_MENTIONS(err, "revision");

    CHECK_RC(etcdc_put_if_absent(C, k, strlen(k), "w", 1, NULL, &err), ETCDC_ERR_COMPARE_FAILED,
             &err);
    CHECK_MENTIONS(err, "put-if-absent");
    CHECK_MENTIONS(err, k);
    printf("  %s\n", err.message);

    CHECK_RC(etcdc_cas_revision(C, k, strlen(k), rev + 100, "w", 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_MENTIONS(err, "compare-and-swap");
    CHECK_MENTIONS(err, k);

    CHECK_RC(etcdc_cas_value(C, k, strlen(k), "other", 5, "w", 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_MENTIONS(err, k);

    REQUIRE_OK(etcdc_put(C, to, strlen(to), "t", 1, NULL, &err), &err);
    CHECK_RC(etcdc_move_key(C, k, strlen(k), to, strlen(to), false, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_MENTIONS(err, "move");
    CHECK_MENTIONS(err, k);
    CHECK_MENTIONS(err, to);
    printf("  %s\n", err.message);

    CHECK_RC(etcdc_attach_lease(C, th_key("nokey"), strlen(th_key("nokey")), 0, NULL, &err),
             ETCDC_ERR_NOT_FOUND, &err);
    CHECK_MENTIONS(err, th_key("nokey"));
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

/* Same condition, same code: with etcd stopped, a put and a new watch both say UNAVAILABLE and
 * name the endpoints they tried. */
static void on_event(void *arg, const etcdc_watch_response *r)
{
    (void)arg;
    (void)r;
}

static void test_unreachable_same_code_everywhere(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    etcdc_config_set_request_timeout_ms(cfg, 1500);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    const char *k = th_key("down");
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    REQUIRE(th_member("stop", 1) == 0);

    CHECK_RC(etcdc_put(c, k, strlen(k), "w", 1, NULL, &err), ETCDC_ERR_UNAVAILABLE, &err);
    CHECK_MENTIONS(err, th_endpoints());
    printf("  put:   %s\n", err.message);

    etcdc_watcher *w = etcdc_watch_prefix(c, k, strlen(k), 0, false, on_event, NULL, &err);
    CHECK(w == NULL);
    CHECK_INT(err.code, ETCDC_ERR_UNAVAILABLE);
    CHECK_MENTIONS(err, th_endpoints());
    CHECK_MENTIONS(err, k);
    printf("  watch: %s\n", err.message);
    etcdc_watch_cancel(w);

    REQUIRE(th_member("start", 1) == 0);
    /* Back up: the same client works again, and a success clears the outage's error. */
    etcdc_code rc = ETCDC_ERR_UNAVAILABLE;
    for (int64_t until = th_now_ms() + 30000; rc != ETCDC_OK && th_now_ms() < until;)
        rc = etcdc_put(c, k, strlen(k), "after", 5, NULL, &err);
    CHECK_OK(rc, &err);
    CHECK_CLEAR(err);
    etcdc_delete(c, k, strlen(k), NULL, NULL);
    etcdc_client_free(c);
}

/* NULL config: the documented defaults (127.0.0.1:2379). Whether an etcd listens there is not
 * ours to decide: either the client connects, or it fails as unreachable naming that address
 * (never as a bad argument). */
static void test_null_config_means_defaults(void)
{
    etcdc_error err = {0};
    etcdc_client *c = etcdc_client_new(NULL, &err);
    if (c) {
        etcdc_status st;
        CHECK_OK(etcdc_status_get(c, &st, &err), &err);
        printf("  an etcd %s answers on 127.0.0.1:2379\n", st.version);
        etcdc_client_free(c);
    } else {
        CHECK_INT(err.code, ETCDC_ERR_UNAVAILABLE);
        CHECK_MENTIONS(err, "127.0.0.1:2379");
        printf("  %s\n", err.message);
    }
}

typedef struct waiter {
    etcdc_session *s;
    const char *name;
    const etcdc_lock_opts *opts; /* NULL or a zero struct */
    etcdc_lock *lock;
    etcdc_code rc;
    atomic_bool done;
} waiter;

static void *wait_for_lock(void *p)
{
    waiter *w = p;
    etcdc_error err = {0};
    w->rc = etcdc_lock_acquire(w->s, w->name, strlen(w->name), w->opts, &w->lock, &err);
    atomic_store(&w->done, true);
    return NULL;
}

/* The zero etcdc_lock_opts and NULL both wait until granted; try_once refuses at once and names
 * the holder. */
static void test_lock_zero_opts_wait(void)
{
    etcdc_error err = {0};
    const char *name = th_key("lock");
    etcdc_session *holder = etcdc_session_new(C, 10, NULL, NULL, &err);
    etcdc_session *other = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(holder && other);
    etcdc_lock *held = NULL;
    REQUIRE_OK(etcdc_lock_acquire(holder, name, strlen(name), NULL, &held, &err), &err);

    etcdc_lock_opts try_once = {.try_once = true}, zero = {0};
    etcdc_lock *l = NULL;
    CHECK_RC(etcdc_lock_acquire(other, name, strlen(name), &try_once, &l, &err),
             ETCDC_ERR_WOULD_BLOCK, &err);
    size_t hl = 0;
    const char *hk = etcdc_lock_key(held, &hl);
    CHECK_MENTIONS(err, hk);
    printf("  %s\n", err.message);

    const etcdc_lock_opts *variants[] = {&zero, NULL};
    for (size_t i = 0; i < 2; i++) {
        waiter w = {.s = other, .name = name, .opts = variants[i]};
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, wait_for_lock, &w) == 0);
        th_sleep_ms(700);
        CHECK(!atomic_load(&w.done)); /* still waiting, not refused */
        CHECK_OK(etcdc_lock_release(held, &err), &err);
        etcdc_lock_free(held);
        pthread_join(t, NULL);
        CHECK_OK(w.rc, NULL);
        /* the holder takes it back, waiting for the waiter to let go */
        held = w.lock;
        w = (waiter){.s = holder, .name = name, .opts = variants[i]};
        REQUIRE(pthread_create(&t, NULL, wait_for_lock, &w) == 0);
        th_sleep_ms(300);
        CHECK_OK(etcdc_lock_release(held, &err), &err);
        etcdc_lock_free(held);
        pthread_join(t, NULL);
        CHECK_OK(w.rc, NULL);
        held = w.lock;
    }
    etcdc_lock_free(held);
    etcdc_session_free(holder);
    etcdc_session_free(other);
}

/* Releasing twice is harmless, and a late second release never deletes a newer lock that
 * reuses the same key (same session, same name). */
static void test_lock_release_idempotent(void)
{
    etcdc_error err = {0};
    const char *name = th_key("idem");
    char pfx[300];
    snprintf(pfx, sizeof pfx, "%s/", name);
    etcdc_session *s = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(s != NULL);
    etcdc_lock *first = NULL, *second = NULL;
    REQUIRE_OK(etcdc_lock_acquire(s, name, strlen(name), NULL, &first, &err), &err);
    CHECK_OK(etcdc_lock_release(first, &err), &err);
    CHECK_OK(etcdc_lock_release(first, &err), &err);
    REQUIRE_OK(etcdc_lock_acquire(s, name, strlen(name), NULL, &second, &err), &err);
    size_t l1 = 0, l2 = 0;
    CHECK_BYTES(etcdc_lock_key(first, &l1), l1, etcdc_lock_key(second, &l2), l2);
    CHECK_OK(etcdc_lock_release(first, &err), &err); /* late: must not touch `second` */
    etcdc_lock_free(first);
    int64_t n = 0;
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 1);
    etcdc_lock_free(second); /* releases */
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 0);
    etcdc_lock_free(NULL);
    etcdc_session_free(s);
}

static void setup(void)
{
    C = th_client();
}

static void teardown(void)
{
    etcdc_client_free(C);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_success_clears_error),
        TH_TEST(test_messages_name_operation_and_key), TH_TEST(test_null_config_means_defaults),
        TH_TEST(test_lock_zero_opts_wait), TH_TEST(test_lock_release_idempotent),
        TH_TEST(test_unreachable_same_code_everywhere), TH_TEST(teardown))
