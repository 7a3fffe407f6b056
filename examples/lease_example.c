/*
 * lease_example.c - leases: grant, attach keys, look at the remaining TTL, keep alive in the
 * background with a callback, and revoke (which deletes every attached key).
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./lease_example
 *
 * Exits 0 when everything behaved as expected, 1 otherwise; removes its keys.
 */
#include <etcdc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lease_example: %s failed: %s\n", what, err.message);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static atomic_int renewals; /* written by the keep-alive callback (stream thread) */
static atomic_int lost;

/* Called after each renewal with the new TTL, and once with ttl <= 0 when the lease is gone. */
static void on_keepalive(void *arg, int64_t lease_id, int64_t ttl)
{
    (void)arg;
    (void)lease_id;
    if (ttl > 0)
        atomic_fetch_add(&renewals, 1);
    else
        atomic_store(&lost, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
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
    char key[128];
    snprintf(key, sizeof key, "examples/lease/%d/alive", (int)getpid());

    /* 1. A lease of 3 seconds (etcd picks its id); a key attached to it lives only as long as
     *    the lease. */
    int64_t lease = 0;
    EXPECT(etcdc_lease_grant(c, 3, &lease, &err) == ETCDC_OK && lease != 0, "grant");
    EXPECT(etcdc_put_with_lease(c, key, strlen(key), "yes", 3, lease, NULL, &err) == ETCDC_OK,
           "put_with_lease");
    int64_t ttl = 0, granted = 0;
    etcdc_kvs keys;
    EXPECT(etcdc_lease_time_to_live(c, lease, &ttl, &granted, &keys, &err) == ETCDC_OK &&
               granted == 3 && ttl > 0 && ttl <= 3 && keys.count == 1,
           "time_to_live");
    printf("lease %llx: ttl %lld of %lld s, %zu key attached\n", (unsigned long long)lease,
           (long long)ttl, (long long)granted, keys.count);
    etcdc_kvs_clear(&keys);

    /* 2. Keep it alive in the background (renewed at a third of its TTL on one shared stream),
     *    for longer than the TTL: the key must still be there. */
    etcdc_keepalive *ka = etcdc_lease_keepalive(c, lease, on_keepalive, NULL, &err);
    EXPECT(ka != NULL, "keepalive");
    sleep_ms(4500);
    bool exists = false;
    EXPECT(etcdc_exists(c, key, strlen(key), &exists, &err) == ETCDC_OK && exists,
           "key alive past the TTL");
    EXPECT(atomic_load(&renewals) >= 2, "renewals");
    printf("after 4.5 s: %d renewals, key still there\n", atomic_load(&renewals));

    /* 3. Revoke: the attached key is deleted at once, and the keep-alive callback hears that
     *    the lease is gone (ttl <= 0). */
    EXPECT(etcdc_lease_revoke(c, lease, &err) == ETCDC_OK, "revoke");
    EXPECT(etcdc_exists(c, key, strlen(key), &exists, &err) == ETCDC_OK && !exists,
           "key gone with the lease");
    for (int i = 0; i < 100 && !atomic_load(&lost); i++)
        sleep_ms(50); /* the next renewal attempt learns it */
    EXPECT(atomic_load(&lost), "keep-alive reports the lost lease");
    etcdc_keepalive_stop(ka);
    EXPECT(etcdc_lease_revoke(c, lease, &err) == ETCDC_ERR_NOT_FOUND, "revoke twice");
    printf("revoked: key deleted, keep-alive told, second revoke: %s\n", etcdc_strerror(err.code));

    /* 4. Without keep-alive a lease simply expires. */
    EXPECT(etcdc_lease_grant(c, 1, &lease, &err) == ETCDC_OK, "grant 1 s");
    EXPECT(etcdc_put_with_lease(c, key, strlen(key), "short", 5, lease, NULL, &err) == ETCDC_OK,
           "put short");
    for (int i = 0; i < 60; i++) { /* etcd expires leases within a second or so of the TTL */
        EXPECT(etcdc_exists(c, key, strlen(key), &exists, &err) == ETCDC_OK, "exists");
        if (!exists)
            break;
        sleep_ms(100);
    }
    EXPECT(!exists, "key expired with its lease");
    printf("1 s lease expired on its own; its key is gone\n");

    etcdc_client_free(c);
    printf("lease_example: ok\n");
    return 0;
}
