/*
 * test_auth.c - user/password authentication against an etcd with auth enabled
 * (run_with_etcd.sh --auth: users root/rootpw and reader/readerpw, reader may only read "pub/").
 *
 *   test_password, test_permissions, test_admin
 *                                          with plain --auth, and with --auth --jwt (signed
 *                                          JWT tokens instead of simple ones)
 *   test_token_expiry, test_token_expiry_threads
 *                                          with --auth --token-ttl 2: tokens expire after 2 s
 *                                          idle; the client must re-authenticate transparently
 */
#include <pthread.h>
#include <stdatomic.h>

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
    CHECK_RC(etcdc_put(r, "pub/readme", 10, "x", 1, NULL, &err), ETCDC_ERR_PERMISSION_DENIED, &err);
    printf("  reader writes: %s\n", err.message);
    CHECK_INT(err.grpc_status, 7); /* PERMISSION_DENIED */
    CHECK_RC(etcdc_get(r, "secret", 6, &kv, &err), ETCDC_ERR_PERMISSION_DENIED, &err);
    CHECK_RC(etcdc_put_if_absent(r, "pub/new", 7, "x", 1, NULL, &err), ETCDC_ERR_PERMISSION_DENIED,
             &err);
    etcdc_kvs kvs;
    CHECK_OK(etcdc_get_prefix(r, "pub/", 4, &kvs, &err), &err);
    CHECK_INT(kvs.count, 1);
    etcdc_kvs_clear(&kvs);
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
    char msg[512];
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

typedef struct watch_count {
    pthread_mutex_t mu;
    int events, ended;
    char why[128];
} watch_count;

static void count_events(void *arg, const etcdc_watch_response *r)
{
    watch_count *w = arg;
    pthread_mutex_lock(&w->mu);
    w->events += (int)r->event_count;
    if (r->kind == ETCDC_WATCH_CANCELED || r->kind == ETCDC_WATCH_COMPACTED) {
        w->ended++;
        snprintf(w->why, sizeof w->why, "%s", r->message ? r->message : "compacted");
    }
    pthread_mutex_unlock(&w->mu);
}

static int events_seen(watch_count *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->events;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Streams re-created after the token expired (etcd restarted: every simple token is gone) must
 * authenticate again by themselves: the watch resumes, the keep-alive keeps the lease. */
static void test_streams_after_token_expiry(void)
{
    etcdc_error err = {0};
    etcdc_client *c = client_as("root", "rootpw", &err);
    REQUIRE(c != NULL);
    char p[200], k[220];
    snprintf(p, sizeof p, "%s", th_prefix());
    snprintf(k, sizeof k, "%sk", p);
    watch_count wc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    etcdc_watcher *w = etcdc_watch_prefix(c, p, strlen(p), 0, false, count_events, &wc, &err);
    REQUIRE(w != NULL);
    int64_t lease = 0;
    REQUIRE_OK(etcdc_lease_grant(c, 6, &lease, &err), &err);
    etcdc_keepalive *ka = etcdc_lease_keepalive(c, lease, NULL, NULL, &err);
    REQUIRE(ka != NULL);
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "1", 1, NULL, &err), &err);
    th_sleep_ms(3500); /* the token expires */
    REQUIRE(th_member("stop", 1) == 0);
    REQUIRE(th_member("start", 1) == 0);
    th_sleep_ms(1500);
    /* A write from a separate client must reach the old client's watcher. */
    etcdc_client *other = NULL;
    for (int i = 0; i < 50 && !other; i++) {
        other = client_as("root", "rootpw", &err);
        if (!other)
            th_sleep_ms(100);
    }
    REQUIRE(other != NULL);
    CHECK_OK(etcdc_put(other, k, strlen(k), "2", 1, NULL, &err), &err);
    int64_t until = th_now_ms() + 10000;
    while (events_seen(&wc) < 2 && th_now_ms() < until)
        th_sleep_ms(50);
    CHECK_INT(events_seen(&wc), 2);
    if (wc.ended)
        printf("  the watch was ended: %s\n", wc.why);
    etcdc_stats st;
    etcdc_client_stats(c, &st);
    printf("  watch creations %llu, authentications %llu, watcher at revision %lld\n",
           (unsigned long long)st.watch_create, (unsigned long long)st.auth,
           (long long)etcdc_watch_revision(w));
    CHECK_INT(wc.ended, 0); /* the user may still watch: the library must not end it */
    th_sleep_ms(6000);      /* longer than the lease TTL */
    int64_t ttl = 0;
    CHECK_OK(etcdc_lease_time_to_live(other, lease, &ttl, NULL, NULL, &err), &err);
    printf("  after the restart: %d events, lease ttl %lld\n", events_seen(&wc), (long long)ttl);
    CHECK(ttl > 0);
    etcdc_keepalive_stop(ka);
    etcdc_watch_cancel(w);
    etcdc_lease_revoke(other, lease, NULL);
    etcdc_delete_prefix(other, p, strlen(p), NULL, NULL);
    etcdc_client_free(other);
    etcdc_client_free(c);
}

/* A new watch created when the client's token has expired (no restart involved). */
static void test_new_watch_after_token_expiry(void)
{
    etcdc_error err = {0};
    etcdc_client *c = client_as("root", "rootpw", &err);
    REQUIRE(c != NULL);
    char p[200], k[220];
    snprintf(p, sizeof p, "%s", th_prefix());
    snprintf(k, sizeof k, "%sk", p);
    watch_count first = {.mu = PTHREAD_MUTEX_INITIALIZER};
    etcdc_watcher *w1 = etcdc_watch_prefix(c, p, strlen(p), 0, false, count_events, &first, &err);
    REQUIRE(w1 != NULL); /* the Watch stream is open from now on */
    th_sleep_ms(3500);   /* the token expires */
    watch_count wc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    int64_t t0 = th_now_ms();
    etcdc_watcher *w = etcdc_watch_prefix(c, p, strlen(p), 0, false, count_events, &wc, &err);
    printf("  watch after expiry: %s after %lld ms%s%s\n", w ? "created" : "failed",
           (long long)(th_now_ms() - t0), w ? "" : ": ", w ? "" : err.message);
    CHECK(w != NULL);
    CHECK_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    int64_t until = th_now_ms() + 5000;
    /* Each watcher gets its events in a response of its own, in no set order: wait for both. */
    while ((events_seen(&first) < 1 || (w && events_seen(&wc) < 1)) && th_now_ms() < until)
        th_sleep_ms(50);
    if (w)
        CHECK_INT(events_seen(&wc), 1);
    CHECK_INT(events_seen(&first), 1);
    etcdc_watch_cancel(w);
    etcdc_watch_cancel(w1);
    etcdc_delete_prefix(c, p, strlen(p), NULL, NULL);
    etcdc_client_free(c);
}

typedef struct busy_arg {
    etcdc_client *c;
    int id, ops, failures;
    atomic_bool *stop;
    char msg[600];
} busy_arg;

static void *busy_body(void *p)
{
    busy_arg *a = p;
    char key[128];
    snprintf(key, sizeof key, "etcdc-test/%d/busy/%d", (int)getpid(), a->id);
    while (!atomic_load(a->stop)) {
        etcdc_error err;
        etcdc_kv kv;
        etcdc_code rc = a->ops % 2 ? etcdc_get(a->c, key, strlen(key), &kv, &err)
                                   : etcdc_put(a->c, key, strlen(key), "v", 1, NULL, &err);
        if (rc == ETCDC_OK && a->ops % 2)
            etcdc_kv_clear(&kv);
        if (rc != ETCDC_OK) {
            a->failures++;
            snprintf(a->msg, sizeof a->msg, "%s: %s", etcdc_strerror(rc), err.message);
        }
        a->ops++;
    }
    return NULL;
}

/* etcd restarts while 8 threads keep calling: every token is gone at once, the threads find it
 * out together and re-authenticate; no call may fail (the restart is far shorter than the
 * request timeout). */
static void test_restart_under_load(void)
{
    etcdc_error err = {0};
    /* Also runs without --auth (then without credentials) for comparison. */
    bool auth = getenv("ETCDC_TEST_USER") != NULL;
    etcdc_client *c = auth ? client_as("root", "rootpw", &err) : client_as(NULL, NULL, &err);
    REQUIRE(c != NULL);
    enum { N = 8 };
    atomic_bool stop = false;
    pthread_t th[N];
    busy_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (busy_arg){.c = c, .id = i, .stop = &stop};
        pthread_create(&th[i], NULL, busy_body, &a[i]);
    }
    th_sleep_ms(500);
    CHECK(th_member("stop", 1) == 0);
    CHECK(th_member("start", 1) == 0);
    th_sleep_ms(2500);
    atomic_store(&stop, true);
    int failures = 0, ops = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        failures += a[i].failures;
        ops += a[i].ops;
        if (a[i].failures)
            printf("  thread %d: %d failures, last: %s\n", i, a[i].failures, a[i].msg);
    }
    etcdc_stats st;
    etcdc_client_stats(c, &st);
    printf("  %d calls, %d failed, %llu authentications\n", ops, failures,
           (unsigned long long)st.auth);
    CHECK_INT(failures, 0);
    etcdc_delete_prefix(c, "etcdc-test/", 11, NULL, NULL);
    etcdc_client_free(c);
}

static bool has_name(const etcdc_names *n, const char *name)
{
    for (size_t i = 0; i < n->count; i++)
        if (strcmp(n->names[i], name) == 0)
            return true;
    return false;
}

/* Administration through the library alone: a role with read-write on "app/", a user holding
 * it, what that user may and may not do, a changed password, revocation, and auth switched off
 * and on again. */
static void test_admin(void)
{
    etcdc_error err = {0};
    etcdc_client *root = client_as("root", "rootpw", &err);
    REQUIRE(root != NULL);
    char end[8];
    size_t end_len = etcdc_prefix_end("app/", 4, end);
    REQUIRE_OK(etcdc_role_add(root, "app-rw", &err), &err);
    CHECK(etcdc_role_add(root, "app-rw", &err) != ETCDC_OK);
    CHECK(strstr(err.message, "role add 'app-rw'") != NULL);
    printf("  duplicate role: %s: %s\n", etcdc_strerror(err.code), err.message);
    REQUIRE_OK(etcdc_role_grant_permission(root, "app-rw", ETCDC_PERM_READWRITE, "app/", 4, end,
                                           end_len, &err),
               &err);
    REQUIRE_OK(etcdc_user_add(root, "app", "apppw", &err), &err);
    REQUIRE_OK(etcdc_user_grant_role(root, "app", "app-rw", &err), &err);
    etcdc_names users, roles;
    REQUIRE_OK(etcdc_user_list(root, &users, &err), &err);
    REQUIRE_OK(etcdc_role_list(root, &roles, &err), &err);
    CHECK(has_name(&users, "app") && has_name(&users, "root"));
    CHECK(has_name(&roles, "app-rw") && has_name(&roles, "root"));
    etcdc_names_clear(&users);
    etcdc_names_clear(&roles);

    etcdc_client *app = client_as("app", "apppw", &err);
    REQUIRE(app != NULL);
    CHECK_OK(etcdc_put(app, "app/x", 5, "1", 1, NULL, &err), &err);
    CHECK_RC(etcdc_put(app, "other/x", 7, "1", 1, NULL, &err), ETCDC_ERR_PERMISSION_DENIED, &err);
    CHECK_RC(etcdc_user_add(app, "intruder", "pw", &err), ETCDC_ERR_PERMISSION_DENIED, &err);

    CHECK_OK(etcdc_role_revoke_permission(root, "app-rw", "app/", 4, end, end_len, &err), &err);
    CHECK_RC(etcdc_put(app, "app/x", 5, "2", 1, NULL, &err), ETCDC_ERR_PERMISSION_DENIED, &err);
    etcdc_client_free(app);

    CHECK_OK(etcdc_user_change_password(root, "app", "newpw", &err), &err);
    CHECK(client_as("app", "apppw", &err) == NULL);
    CHECK_INT(err.code, ETCDC_ERR_AUTH_FAILED);
    app = client_as("app", "newpw", &err);
    CHECK(app != NULL);
    etcdc_client_free(app);

    CHECK_OK(etcdc_user_revoke_role(root, "app", "app-rw", &err), &err);
    CHECK_OK(etcdc_user_delete(root, "app", &err), &err);
    CHECK_OK(etcdc_role_delete(root, "app-rw", &err), &err);
    REQUIRE_OK(etcdc_user_list(root, &users, &err), &err);
    CHECK(!has_name(&users, "app"));
    etcdc_names_clear(&users);

    /* Off: anyone may write. On again: not without credentials. */
    REQUIRE_OK(etcdc_auth_disable(root, &err), &err);
    etcdc_client *anon = client_as(NULL, NULL, &err);
    REQUIRE(anon != NULL);
    CHECK_OK(etcdc_put(anon, "free/x", 6, "1", 1, NULL, &err), &err);
    REQUIRE_OK(etcdc_auth_enable(root, &err), &err);
    CHECK(etcdc_put(anon, "free/x", 6, "2", 1, NULL, &err) != ETCDC_OK);
    printf("  unauthenticated put after auth enable: %s\n", err.message);
    etcdc_client_free(anon);
    etcdc_delete(root, "app/x", 5, NULL, NULL);
    etcdc_delete(root, "free/x", 6, NULL, NULL);
    etcdc_client_free(root);
}

TH_MAIN(TH_TEST(test_password), TH_TEST(test_admin), TH_TEST(test_permissions),
        TH_TEST(test_restart_under_load), TH_TEST(test_token_expiry),
        TH_TEST(test_token_expiry_threads), TH_TEST(test_streams_after_token_expiry),
        TH_TEST(test_new_watch_after_token_expiry))
