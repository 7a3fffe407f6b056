/*
 * test_auth.c - user/password authentication against an etcd with auth enabled
 * (run_with_etcd.sh --auth: users root/rootpw and reader/readerpw, reader may only read "pub/").
 *
 *   test_password, test_permissions        with plain --auth
 *   test_token_expiry, test_token_expiry_threads
 *                                          with --auth --token-ttl 2: tokens expire after 2 s
 *                                          idle; the client must re-authenticate transparently
 */
#include <pthread.h>

#include "harness.h"

static etcdc_client *client_as(const char *user, const char *password, etcdc_error *err)
{
    etcdc_config *cfg = th_config();
    if (user)
        etcdc_config_set_auth(cfg, user, password);
    etcdc_client *c = etcdc_client_new(cfg, err);
    etcdc_config_free(cfg);
    return c;
}

static void test_password(void)
{
    etcdc_error err = {0};
    etcdc_client *c = client_as("root", "rootpw", &err);
    REQUIRE(c != NULL);
    const char *k = th_key("k");
    CHECK_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    etcdc_kv kv;
    CHECK_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "v");
    etcdc_kv_clear(&kv);
    etcdc_stats st;
    etcdc_client_stats(c, &st);
    CHECK_INT(st.auth, 1);

    /* Wrong password: client creation fails with AUTH_FAILED. */
    etcdc_client *bad = client_as("root", "wrong", &err);
    CHECK(bad == NULL);
    CHECK_INT(err.code, ETCDC_ERR_AUTH_FAILED);
    printf("  wrong password: %s\n", err.message);
    etcdc_client_free(bad);
    bad = client_as("nobody", "x", &err);
    CHECK(bad == NULL);
    CHECK_INT(err.code, ETCDC_ERR_AUTH_FAILED);
    etcdc_client_free(bad);

    /* No credentials at all: connecting works, but calls are refused with a clear code. */
    etcdc_client *anon = client_as(NULL, NULL, &err);
    REQUIRE(anon != NULL);
    etcdc_code rc = etcdc_get(anon, k, strlen(k), &kv, &err);
    printf("  no credentials: %s (%s)\n", etcdc_strerror(rc), err.message);
    CHECK(rc == ETCDC_ERR_AUTH_FAILED || rc == ETCDC_ERR_PERMISSION_DENIED);
    etcdc_client_free(anon);

    CHECK_OK(etcdc_delete(c, k, strlen(k), NULL, &err), &err);
    etcdc_client_free(c);
}

static void test_permissions(void)
{
    etcdc_error err = {0};
    etcdc_client *root = client_as("root", "rootpw", &err);
    REQUIRE(root != NULL);
    REQUIRE_OK(etcdc_put(root, "pub/readme", 10, "hello", 5, NULL, &err), &err);
    etcdc_client *r = client_as("reader", "readerpw", &err);
    REQUIRE(r != NULL);
    etcdc_kv kv;
    CHECK_OK(etcdc_get(r, "pub/readme", 10, &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "hello");
    etcdc_kv_clear(&kv);
    CHECK_RC(etcdc_put(r, "pub/readme", 10, "x", 1, NULL, &err), ETCDC_ERR_PERMISSION_DENIED,
             &err);
    printf("  reader writes: %s\n", err.message);
    CHECK_INT(err.grpc_status, 7); /* PERMISSION_DENIED */
    CHECK_RC(etcdc_get(r, "secret", 6, &kv, &err), ETCDC_ERR_PERMISSION_DENIED, &err);
    CHECK_RC(etcdc_put_if_absent(r, "pub/new", 7, "x", 1, NULL, &err),
             ETCDC_ERR_PERMISSION_DENIED, &err);
    etcdc_kvs kvs;
    CHECK_OK(etcdc_get_prefix(r, "pub/", 4, &kvs, &err), &err);
    CHECK_INT(kvs.count, 1);
    etcdc_kvs_free(&kvs);
    etcdc_client_free(r);
    CHECK_OK(etcdc_delete(root, "pub/readme", 10, NULL, &err), &err);
    etcdc_client_free(root);
}

/* Idle longer than the token TTL, then use the client: it re-authenticates by itself. */
static void test_token_expiry(void)
{
    etcdc_error err = {0};
    etcdc_client *c = client_as("root", "rootpw", &err);
    REQUIRE(c != NULL);
    const char *k = th_key("k");
    for (int round = 0; round < 3; round++) {
        char v[16];
        int n = snprintf(v, sizeof v, "v%d", round);
        CHECK_OK(etcdc_put(c, k, strlen(k), v, (size_t)n, NULL, &err), &err);
        etcdc_kv kv;
        CHECK_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
        CHECK_STR(kv.value, kv.value_len, v);
        etcdc_kv_clear(&kv);
        th_sleep_ms(3500); /* etcd checks simple-token TTLs once a second */
    }
    etcdc_stats st;
    etcdc_client_stats(c, &st);
    printf("  %llu authentications, %llu retries\n", (unsigned long long)st.auth,
           (unsigned long long)st.retries);
    CHECK(st.auth >= 3); /* the first one, then one per expiry */
    CHECK_OK(etcdc_delete(c, k, strlen(k), NULL, &err), &err);
    etcdc_client_free(c);
}

typedef struct tok_arg {
    etcdc_client *c;
    int id, failures;
    char msg[256];
} tok_arg;

static void *tok_body(void *p)
{
    tok_arg *a = p;
    char key[128];
    snprintf(key, sizeof key, "etcdc-test/%d/tok/%d", (int)getpid(), a->id);
    for (int i = 0; i < 50; i++) {
        etcdc_error err;
        etcdc_kv kv;
        etcdc_code rc = i % 2 ? etcdc_get(a->c, key, strlen(key), &kv, &err)
                              : etcdc_put(a->c, key, strlen(key), "v", 1, NULL, &err);
        if (rc != ETCDC_OK) {
            a->failures++;
            snprintf(a->msg, sizeof a->msg, "%s", err.message);
        } else if (i % 2) {
            etcdc_kv_clear(&kv);
        }
    }
    return NULL;
}

/* Many threads find the token expired at the same moment: every call must still succeed. */
static void test_token_expiry_threads(void)
{
    etcdc_error err = {0};
    etcdc_client *c = client_as("root", "rootpw", &err);
    REQUIRE(c != NULL);
    int failures = 0;
    for (int round = 0; round < 3; round++) {
        th_sleep_ms(3500);
        enum { N = 8 };
        pthread_t th[N];
        tok_arg a[N];
        for (int i = 0; i < N; i++) {
            a[i] = (tok_arg){.c = c, .id = i};
            pthread_create(&th[i], NULL, tok_body, &a[i]);
        }
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            if (a[i].failures)
                printf("  round %d thread %d: %d failures, last: %s\n", round, i, a[i].failures,
                       a[i].msg);
            failures += a[i].failures;
        }
    }
    CHECK_INT(failures, 0);
    etcdc_stats st;
    etcdc_client_stats(c, &st);
    printf("  %llu authentications for 3 expiries\n", (unsigned long long)st.auth);
    etcdc_delete_prefix(c, "etcdc-test/", 11, NULL, NULL);
    etcdc_client_free(c);
}

TH_MAIN(TH_TEST(test_password), TH_TEST(test_permissions), TH_TEST(test_token_expiry),
        TH_TEST(test_token_expiry_threads))
