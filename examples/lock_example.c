/*
 * lock_example.c - distributed locks: a session (a lease kept alive for you), an exclusive
 * lock, a TryLock that fails while someone holds it, and the fencing token.
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./lock_example
 *
 * The key layout is etcdctl's, so `etcdctl lock <name>` and this lock exclude each other.
 * Exits 0 when everything behaved as expected, 1 otherwise.
 */
#include <etcdc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lock_example: %s failed: %s\n", what, err.message);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

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
    char name[128];
    snprintf(name, sizeof name, "examples/lock/%d/printer", (int)getpid());

    /* Two sessions stand for two processes. A session's lease (10 s) is kept alive in the
     * background; if it is lost, every lock taken through it is released by etcd. */
    etcdc_session *alice = etcdc_session_new(c, 10, NULL, NULL, &err);
    EXPECT(alice != NULL, "session alice");
    etcdc_session *bob = etcdc_session_new(c, 10, NULL, NULL, &err);
    EXPECT(bob != NULL, "session bob");

    /* Alice waits (up to 5 s) for the lock. */
    etcdc_lock_opts wait5 = {.mode = ETCDC_LOCK_EXCLUSIVE,
                             .timeout_ms = 5000,
                             .holder_info = "alice",
                             .holder_info_len = 5};
    etcdc_lock *la = NULL;
    EXPECT(etcdc_lock_acquire(alice, name, strlen(name), &wait5, &la, &err) == ETCDC_OK,
           "alice locks");
    size_t klen;
    printf("alice holds %s (key %s, fencing token %lld)\n", name, etcdc_lock_key(la, &klen),
           (long long)etcdc_lock_revision(la));

    /* Bob only tries (TryLock): the lock is taken, he is told so at once. */
    etcdc_lock_opts try_once = {.mode = ETCDC_LOCK_EXCLUSIVE, .try_once = true};
    etcdc_lock *lb = NULL;
    EXPECT(etcdc_lock_acquire(bob, name, strlen(name), &try_once, &lb, &err) ==
               ETCDC_ERR_WOULD_BLOCK,
           "bob's trylock is refused");
    printf("bob's TryLock: %s (%s)\n", etcdc_strerror(err.code), err.message);

    /* Alice releases; now Bob gets it, with a larger fencing token. */
    int64_t alice_token = etcdc_lock_revision(la);
    EXPECT(etcdc_lock_release(la, &err) == ETCDC_OK, "alice releases");
    EXPECT(etcdc_lock_release(la, &err) == ETCDC_OK, "releasing twice is harmless");
    etcdc_lock_free(la);
    EXPECT(etcdc_lock_acquire(bob, name, strlen(name), &wait5, &lb, &err) == ETCDC_OK, "bob locks");
    EXPECT(etcdc_lock_revision(lb) > alice_token, "fencing token grows");
    printf("bob holds it now (fencing token %lld)\n", (long long)etcdc_lock_revision(lb));
    EXPECT(etcdc_lock_release(lb, &err) == ETCDC_OK, "bob releases");
    etcdc_lock_free(lb);

    /* Freeing a session revokes its lease (and with it any lock still held). */
    etcdc_session_free(alice);
    etcdc_session_free(bob);
    etcdc_client_free(c);
    printf("lock_example: ok\n");
    return 0;
}
