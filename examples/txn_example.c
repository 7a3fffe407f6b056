/*
 * txn_example.c - transactions and guarded writes: the If/Then/Else builder, compare-and-swap
 * by value and by revision, put-if-absent, an atomic move, and bulk put/delete in one Txn.
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./txn_example
 *
 * Exits 0 when everything behaved as expected, 1 otherwise; removes its keys.
 */
#include <etcdc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "txn_example: %s failed: %s\n", what, err.message);                    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static char prefix[128];

/* prefix + name, in a small rotating buffer. */
static const char *k(const char *name)
{
    static char buf[4][192];
    static int n;
    char *b = buf[n++ % 4];
    snprintf(b, sizeof buf[0], "%s%s", prefix, name);
    return b;
}

int main(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = etcdc_config_new();
    const char *endpoints = getenv("ETCD_ENDPOINTS");
    if (endpoints && *endpoints)
        etcdc_config_set_endpoints(cfg, endpoints);
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    EXPECT(c != NULL, "connect");
    snprintf(prefix, sizeof prefix, "examples/txn/%d/", (int)getpid());

    /* --- Put-if-absent: only the first writer creates the key. --- */
    const char *owner = k("owner");
    EXPECT(etcdc_put_if_absent(c, owner, strlen(owner), "alice", 5, NULL, &err) == ETCDC_OK,
           "first put_if_absent");
    EXPECT(etcdc_put_if_absent(c, owner, strlen(owner), "bob", 3, NULL, &err) ==
               ETCDC_ERR_COMPARE_FAILED,
           "second put_if_absent");
    printf("put_if_absent: alice won, bob got \"%s\"\n", etcdc_strerror(err.code));

    /* --- Compare-and-swap by value: replace only if the value is what we think it is. --- */
    const char *counter = k("counter");
    int64_t rev = 0;
    EXPECT(etcdc_put(c, counter, strlen(counter), "1", 1, &rev, &err) == ETCDC_OK, "put counter");
    EXPECT(etcdc_cas_value(c, counter, strlen(counter), "1", 1, "2", 1, NULL, &err) == ETCDC_OK,
           "cas_value 1->2");
    EXPECT(etcdc_cas_value(c, counter, strlen(counter), "1", 1, "3", 1, NULL, &err) ==
               ETCDC_ERR_COMPARE_FAILED,
           "stale cas_value");

    /* --- CAS by revision: the classic optimistic-concurrency loop. --- */
    for (int attempt = 0;; attempt++) {
        etcdc_kv cur;
        EXPECT(etcdc_get(c, counter, strlen(counter), &cur, &err) == ETCDC_OK, "read counter");
        char next[32];
        snprintf(next, sizeof next, "%ld", strtol(cur.value, NULL, 10) + 1);
        etcdc_code rc = etcdc_cas_revision(c, counter, strlen(counter), cur.mod_revision, next,
                                           strlen(next), NULL, &err);
        etcdc_kv_clear(&cur);
        if (rc == ETCDC_OK)
            break; /* nobody wrote in between */
        EXPECT(rc == ETCDC_ERR_COMPARE_FAILED && attempt < 10, "cas_revision");
    }
    etcdc_kv now;
    EXPECT(etcdc_get(c, counter, strlen(counter), &now, &err) == ETCDC_OK &&
               strcmp(now.value, "3") == 0,
           "counter is 3");
    etcdc_kv_clear(&now);

    /* --- The builder: If(owner == "alice" and no key under lock/) Then(...) Else(...). --- */
    char lock_end[192];
    const char *lock = k("lock/");
    size_t lock_end_len = etcdc_prefix_end(lock, strlen(lock), lock_end);
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_if_value(t, owner, strlen(owner), ETCDC_EQUAL, "alice", 5);
    etcdc_txn_if_range(t, lock, strlen(lock), lock_end, lock_end_len, ETCDC_CMP_CREATE, ETCDC_EQUAL,
                       0); /* CREATE == 0 over a range: "no key in range" */
    etcdc_txn_put(t, ETCDC_THEN, k("lock/alice"), strlen(k("lock/alice")), "held", 4, 0);
    etcdc_range_req read_counter = {.key = counter, .key_len = strlen(counter)};
    etcdc_txn_get(t, ETCDC_THEN, &read_counter);
    etcdc_txn_get(t, ETCDC_ELSE, &read_counter);

    etcdc_txn_result r;
    EXPECT(etcdc_txn_commit(c, t, &r, &err) == ETCDC_OK, "commit");
    /* The compares held, so Then ran: one result per Then operation, in order. */
    EXPECT(r.succeeded && r.op_count == 2 && r.ops[0].type == ETCDC_OP_PUT &&
               r.ops[1].type == ETCDC_OP_RANGE && r.ops[1].kvs.count == 1,
           "then branch");
    printf("txn #1: succeeded=%d at revision %lld, counter=%s\n", r.succeeded,
           (long long)r.revision, r.ops[1].kvs.kvs[0].value);
    etcdc_txn_result_clear(&r);
    /* Run the same transaction again: lock/alice exists now, so Else runs. */
    EXPECT(etcdc_txn_commit(c, t, &r, &err) == ETCDC_OK && !r.succeeded && r.op_count == 1,
           "else branch");
    printf("txn #2: succeeded=%d (else branch ran)\n", r.succeeded);
    etcdc_txn_result_clear(&r);
    etcdc_txn_free(t);

    /* --- Move a key atomically (one guarded Txn: put new + delete old). --- */
    EXPECT(etcdc_move_key(c, owner, strlen(owner), k("previous-owner"), strlen(k("previous-owner")),
                          false, NULL, &err) == ETCDC_OK,
           "move_key");
    bool exists = true;
    EXPECT(etcdc_exists(c, owner, strlen(owner), &exists, &err) == ETCDC_OK && !exists,
           "old key gone");

    /* --- Bulk put and delete: one atomic Txn each, at most etcdc_max_txn_ops() keys. --- */
    enum { N = 50 };
    static char names[N][192];
    etcdc_pair pairs[N];
    const void *keys[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "%sbulk/%02d", prefix, i);
        pairs[i] = (etcdc_pair){names[i], strlen(names[i]), "x", 1};
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
    }
    EXPECT(etcdc_bulk_put(c, pairs, N, &rev, &err) == ETCDC_OK, "bulk_put");
    printf("bulk_put: %d keys at revision %lld (limit %zu per call)\n", N, (long long)rev,
           etcdc_max_txn_ops());
    int64_t deleted = 0;
    EXPECT(etcdc_bulk_delete(c, keys, lens, N, &deleted, &err) == ETCDC_OK && deleted == N,
           "bulk_delete");
    /* Over the limit nothing is sent: the whole batch fails up front. */
    static etcdc_pair too_many[129];
    for (int i = 0; i < 129; i++)
        too_many[i] = pairs[i % N];
    EXPECT(etcdc_bulk_put(c, too_many, 129, NULL, &err) == ETCDC_ERR_TOO_MANY_OPS,
           "bulk_put over the limit");
    printf("129 keys: %s\n", err.message);

    EXPECT(etcdc_delete_prefix(c, prefix, strlen(prefix), &deleted, &err) == ETCDC_OK, "cleanup");
    etcdc_client_free(c);
    printf("txn_example: ok\n");
    return 0;
}
