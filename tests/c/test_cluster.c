/*
 * test_cluster.c - a 3-member cluster (run_with_etcd.sh --members 3): member list and status,
 * then the leader is killed (SIGKILL) while another thread keeps reading and writing through a
 * client that lists all three endpoints: every read succeeds; a put in flight at the kill may
 * fail with TIMEOUT or UNAVAILABLE (not sent twice: a late landing could follow later writes),
 * nothing else fails.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

static etcdc_client *C;

static void setup(void)
{
    C = th_client();
}

static void teardown(void)
{
    etcdc_client_free(C);
}

static void test_members_and_status(void)
{
    etcdc_error err = {0};
    etcdc_members m;
    REQUIRE_OK(etcdc_member_list(C, &m, &err), &err);
    CHECK_INT(m.count, 3);
    int names = 0;
    for (size_t i = 0; i < m.count; i++) {
        names += m.members[i].name && m.members[i].name[0] == 'm';
        CHECK_INT(m.members[i].client_url_count, 1);
        CHECK(m.members[i].id != 0);
    }
    CHECK_INT(names, 3);
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    CHECK(st.leader != 0);
    CHECK(st.cluster_id == m.cluster_id);
    etcdc_members_clear(&m);
}

/* Index (1..3) of the member whose id is `id`, from the member names m1..m3. */
static int member_index(uint64_t id)
{
    etcdc_error err;
    etcdc_members m;
    if (etcdc_member_list(C, &m, &err) != ETCDC_OK)
        return -1;
    int idx = -1;
    for (size_t i = 0; i < m.count; i++)
        if (m.members[i].id == id && m.members[i].name && m.members[i].name[0] == 'm')
            idx = atoi(m.members[i].name + 1);
    etcdc_members_clear(&m);
    return idx;
}

typedef struct worker {
    atomic_int done;
    atomic_bool stop;
    int failures;
    int put_failures; /* timed out or unavailable: the outcome of such a put is unknown */
    char last_error[700];
    char prefix[200];
} worker;

static void *work(void *p)
{
    worker *w = p;
    char key[256], val[32];
    for (int i = 0; i < 600 && !atomic_load(&w->stop); i++) {
        etcdc_error err = {0};
        snprintf(key, sizeof key, "%sk%04d", w->prefix, i);
        int vl = snprintf(val, sizeof val, "v%d", i);
        etcdc_kv kv;
        etcdc_code rc = etcdc_put(C, key, strlen(key), val, (size_t)vl, NULL, &err);
        if (rc == ETCDC_ERR_TIMEOUT || rc == ETCDC_ERR_UNAVAILABLE) {
            /* in flight when the leader died: not sent again (a late landing could follow
             * later writes), so the caller sees the error */
            w->put_failures++;
            atomic_fetch_add(&w->done, 1);
            continue;
        }
        if (rc == ETCDC_OK) {
            rc = etcdc_get(C, key, strlen(key), &kv, &err);
            if (rc == ETCDC_OK) {
                if (kv.value_len != (size_t)vl || memcmp(kv.value, val, (size_t)vl) != 0) {
                    rc = ETCDC_ERR_INTERNAL;
                    snprintf(err.message, sizeof err.message, "read back a different value");
                }
                etcdc_kv_clear(&kv);
            }
        }
        if (rc == ETCDC_OK && i % 50 == 0) {
            etcdc_kvs kvs;
            rc = etcdc_list_keys(C, w->prefix, strlen(w->prefix), 0, &kvs, &err);
            if (rc == ETCDC_OK &&
                (kvs.count > (size_t)i + 1 || kvs.count < (size_t)(i + 1 - w->put_failures))) {
                rc = ETCDC_ERR_INTERNAL;
                snprintf(err.message, sizeof err.message, "listed %zu keys, expected %d-%d",
                         kvs.count, i + 1 - w->put_failures, i + 1);
            }
            etcdc_kvs_clear(&kvs);
        }
        if (rc != ETCDC_OK) {
            if (w->failures++ == 0)
                printf("  first failure: op %d: %s: %s\n", i, etcdc_strerror(rc), err.message);
            snprintf(w->last_error, sizeof w->last_error, "op %d: %s: %s", i, etcdc_strerror(rc),
                     err.message);
        }
        atomic_fetch_add(&w->done, 1);
        th_sleep_ms(3); /* spread the 600 ops over a few seconds around the kill */
    }
    return NULL;
}

static void test_leader_killed_mid_test(void)
{
    etcdc_error err = {0};
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    int leader = member_index(st.leader);
    REQUIRE(leader >= 1 && leader <= 3);

    worker w = {0};
    snprintf(w.prefix, sizeof w.prefix, "%s", th_prefix());
    pthread_t th;
    pthread_create(&th, NULL, work, &w);
    while (atomic_load(&w.done) < 100)
        th_sleep_ms(5);
    int64_t t0 = th_now_ms();
    int at_kill = atomic_load(&w.done);
    REQUIRE(th_member("kill", leader) == 0);
    pthread_join(th, NULL);
    printf("  killed leader m%d after %d ops; %d ops in total; %d puts timed out; %d other "
           "failures%s%s\n",
           leader, at_kill, atomic_load(&w.done), w.put_failures, w.failures,
           w.failures ? ": " : "", w.last_error);
    CHECK_INT(w.failures, 0);
    CHECK_INT(atomic_load(&w.done), 600);

    etcdc_stats stats;
    etcdc_client_stats(C, &stats);
    printf("  %llu retries in the run (%lld ms after the kill)\n",
           (unsigned long long)stats.retries, (long long)(th_now_ms() - t0));

    /* A new leader was elected among the survivors. */
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    int now = member_index(st.leader);
    CHECK(now >= 1 && now <= 3 && now != leader);

    /* A new client whose first endpoint is the dead member connects and works. */
    char eps[600], dead_first[700];
    snprintf(eps, sizeof eps, "%s", th_endpoints());
    char *parts[3] = {0};
    int n = 0;
    for (char *tok = strtok(eps, ","); tok && n < 3; tok = strtok(NULL, ","))
        parts[n++] = tok;
    REQUIRE(n == 3);
    snprintf(dead_first, sizeof dead_first, "%s,%s,%s", parts[leader - 1], parts[leader % 3],
             parts[(leader + 1) % 3]);
    etcdc_config *cfg = etcdc_config_new();
    etcdc_config_set_endpoints(cfg, dead_first);
    etcdc_client *c2 = th_client_from(cfg);
    etcdc_config_free(cfg);
    int64_t count = 0;
    CHECK_OK(etcdc_count_prefix(c2, th_prefix(), strlen(th_prefix()), &count, &err), &err);
    CHECK(count >= 600 - w.put_failures && count <= 600);
    int64_t deleted = 0;
    CHECK_OK(etcdc_delete_prefix(c2, th_prefix(), strlen(th_prefix()), &deleted, &err), &err);
    CHECK_INT(deleted, count);
    etcdc_client_free(c2);

    /* Bring the member back; it rejoins. */
    REQUIRE(th_member("start", leader) == 0);
    etcdc_members m;
    CHECK_OK(etcdc_member_list(C, &m, &err), &err);
    CHECK_INT(m.count, 3);
    etcdc_members_clear(&m);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_members_and_status), TH_TEST(test_leader_killed_mid_test),
        TH_TEST(teardown))
