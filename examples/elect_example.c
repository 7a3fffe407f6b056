/*
 * elect_example.c - leader election: two candidates (two sessions, standing for two processes),
 * an observer that prints every leader, a proclaimed value, and a hand-over when the leader
 * resigns. A deadline (etcdc_ctx) keeps the second candidate from waiting forever.
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./elect_example
 *
 * The key layout is etcdctl's: while this runs, `etcdctl elect -l <name>` shows the same
 * leaders, and `etcdctl elect <name> <proposal>` can stand against it.
 * Exits 0 when everything behaved as expected, 1 otherwise.
 */
#include <etcdc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "elect_example: %s failed: %s\n", what, err.message);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void print_leader(void *arg, const etcdc_kv *leader)
{
    atomic_int *changes = arg;
    atomic_fetch_add(changes, 1);
    if (leader)
        printf("observer: leader %s says \"%s\"\n", leader->key, leader->value);
    else
        printf("observer: no leader\n");
}

static void *stand(void *election)
{
    etcdc_error err = {0};
    EXPECT(etcdc_election_campaign(election, "bob@host-b", 10, &err) == ETCDC_OK, "bob is elected");
    return NULL;
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
    char name[128];
    snprintf(name, sizeof name, "examples/elect/%d/scheduler", (int)getpid());

    atomic_int changes = 0;
    etcdc_observer *obs =
        etcdc_election_observe(c, name, strlen(name), print_leader, &changes, &err);
    EXPECT(obs != NULL, "observe");

    etcdc_session *sa = etcdc_session_new(c, 10, NULL, NULL, &err);
    etcdc_session *sb = etcdc_session_new(c, 10, NULL, NULL, &err);
    EXPECT(sa && sb, "sessions");
    etcdc_election *alice = etcdc_election_new(sa, name, strlen(name));
    etcdc_election *bob = etcdc_election_new(sb, name, strlen(name));
    EXPECT(alice && bob, "election handles");

    /* Alice stands first and is elected at once. */
    EXPECT(etcdc_election_campaign(alice, "alice@host-a", 12, &err) == ETCDC_OK, "alice stands");
    etcdc_kv lead;
    EXPECT(etcdc_election_leader(c, name, strlen(name), &lead, &err) == ETCDC_OK, "leader");
    printf("leader is %s (\"%s\", fencing token %lld)\n", lead.key, lead.value,
           (long long)etcdc_election_revision(alice));
    etcdc_kv_clear(&lead);

    /* The leader changes its value without giving up. */
    EXPECT(etcdc_election_proclaim(alice, "alice@host-a v2", 15, &err) == ETCDC_OK, "proclaim");

    /* Bob stands too, but gives up after 300 ms: Alice still leads. */
    etcdc_ctx *ctx = etcdc_ctx_new(300);
    etcdc_ctx_use(ctx);
    etcdc_code rc = etcdc_election_campaign(bob, "bob@host-b", 10, &err);
    etcdc_ctx_use(NULL);
    etcdc_ctx_free(ctx);
    EXPECT(rc == ETCDC_ERR_TIMEOUT, "bob waits in vain");
    printf("bob: %s\n", err.message);

    /* Bob stands again, waiting in a thread; Alice resigns and he takes over at once, with a
     * larger fencing token. */
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, stand, bob) == 0, "thread");
    char candidates[140];
    snprintf(candidates, sizeof candidates, "%s/", name);
    for (int64_t n = 0; n < 2; usleep(10000)) /* until his key is queued behind Alice's */
        EXPECT(etcdc_count_prefix(c, candidates, strlen(candidates), &n, &err) == ETCDC_OK,
               "count");
    int64_t alice_token = etcdc_election_revision(alice);
    EXPECT(etcdc_election_resign(alice, &err) == ETCDC_OK, "alice resigns");
    pthread_join(t, NULL);
    EXPECT(etcdc_election_revision(bob) > alice_token, "fencing token grows");
    EXPECT(etcdc_election_proclaim(alice, "too late", 8, &err) == ETCDC_ERR_NOT_LEADER,
           "alice can no longer proclaim");
    EXPECT(etcdc_election_resign(bob, &err) == ETCDC_OK, "bob resigns");
    EXPECT(etcdc_election_leader(c, name, strlen(name), &lead, &err) == ETCDC_ERR_NOT_FOUND,
           "nobody leads");

    /* The observer saw: none, alice, alice v2, bob, none (the watch delivers in order, on
     * another thread: give it a moment to catch up). */
    for (int i = 0; i < 100 && atomic_load(&changes) < 5; i++)
        usleep(20000);
    etcdc_observer_stop(obs);
    EXPECT(atomic_load(&changes) == 5, "five leader changes observed");

    etcdc_election_free(alice);
    etcdc_election_free(bob);
    etcdc_session_free(sa);
    etcdc_session_free(sb);
    etcdc_client_free(c);
    return 0;
}
