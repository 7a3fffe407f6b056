/*
 * crud_example.c - the basics of libetcdc: connect, put, get, update, check, delete.
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./crud_example
 *
 * Exits 0 when every step behaved as expected, 1 otherwise (so it doubles as a smoke test).
 * Works under its own key prefix and removes every key it wrote.
 */
#include <etcdc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Print what failed and leave; a real program would handle err.code instead. */
#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "crud_example: %s failed: %s\n", what, err.message);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

int main(void)
{
    etcdc_error err = {0};

    /* 1. Configure and connect. Only the endpoints differ from the defaults here. */
    etcdc_config *cfg = etcdc_config_new();
    const char *endpoints = getenv("ETCD_ENDPOINTS");
    if (endpoints && *endpoints)
        etcdc_config_set_endpoints(cfg, endpoints);
    etcdc_client *c = etcdc_client_new(cfg, &err); /* waits for a connection (dial timeout) */
    etcdc_config_free(cfg);                        /* the client keeps its own copy */
    EXPECT(c != NULL, "connect");

    /* Keys are byte strings given as pointer + length; a per-run prefix keeps runs apart. */
    char key[128];
    snprintf(key, sizeof key, "examples/crud/%d/greeting", (int)getpid());

    /* 2. Put returns the revision of the write. */
    int64_t rev = 0;
    etcdc_code rc = etcdc_put(c, key, strlen(key), "hello", 5, &rev, &err);
    EXPECT(rc == ETCDC_OK, "put");
    printf("put %s = hello at revision %lld\n", key, (long long)rev);

    /* 3. Get fills an etcdc_kv the caller owns: release it with etcdc_kv_clear. */
    etcdc_kv kv;
    rc = etcdc_get(c, key, strlen(key), &kv, &err);
    EXPECT(rc == ETCDC_OK && kv.value_len == 5 && memcmp(kv.value, "hello", 5) == 0, "get");
    printf("get %s -> %s (version %lld, mod_revision %lld)\n", kv.key, kv.value,
           (long long)kv.version, (long long)kv.mod_revision);
    etcdc_kv_clear(&kv);

    /* 4. Values are bytes too: NUL bytes survive. */
    rc = etcdc_put(c, key, strlen(key), "hi\0there", 8, NULL, &err);
    EXPECT(rc == ETCDC_OK, "update");
    rc = etcdc_get(c, key, strlen(key), &kv, &err);
    EXPECT(rc == ETCDC_OK && kv.value_len == 8 && kv.version == 2, "get after update");
    etcdc_kv_clear(&kv);

    /* 5. Existence and counting send count-only requests (no values transferred). */
    bool exists = false;
    rc = etcdc_exists(c, key, strlen(key), &exists, &err);
    EXPECT(rc == ETCDC_OK && exists, "exists");
    int64_t count = 0;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "examples/crud/%d/", (int)getpid());
    rc = etcdc_count_prefix(c, prefix, strlen(prefix), &count, &err);
    EXPECT(rc == ETCDC_OK && count == 1, "count");

    /* 6. Delete; afterwards get reports ETCDC_ERR_NOT_FOUND (an error code, not a crash). */
    int64_t deleted = 0;
    rc = etcdc_delete(c, key, strlen(key), &deleted, &err);
    EXPECT(rc == ETCDC_OK && deleted == 1, "delete");
    rc = etcdc_get(c, key, strlen(key), &kv, &err);
    EXPECT(rc == ETCDC_ERR_NOT_FOUND, "get after delete");
    printf("after delete: %s (%s)\n", etcdc_strerror(rc), err.message);

    etcdc_client_free(c);
    printf("crud_example: ok\n");
    return 0;
}
