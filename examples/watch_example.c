/*
 * watch_example.c - watching keys: a prefix watch with previous values, and a watch that starts
 * in the past and replays history from a revision.
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./watch_example
 *
 * Callbacks run on the client's stream thread: they must be quick and must not block, so this
 * example only copies what it needs under a mutex and signals the main thread.
 * Exits 0 when every expected event arrived, 1 otherwise; removes its keys.
 */
#include <etcdc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "watch_example: %s failed: %s\n", what, err.message);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* What the callback records: the events' types, values and previous values. */
typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
    etcdc_event_type type[16];
    char value[16][32];
    char prev[16][32];
    int64_t revision[16];
} seen;

static void on_watch(void *arg, const etcdc_watch_response *resp)
{
    seen *s = arg;
    if (resp->kind != ETCDC_WATCH_EVENTS)
        return; /* PROGRESS, COMPACTED and CANCELED are not expected here */
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < resp->event_count && s->count < 16; i++) {
        const etcdc_event *ev = &resp->events[i];
        s->type[s->count] = ev->type;
        snprintf(s->value[s->count], 32, "%s", ev->type == ETCDC_EVENT_PUT ? ev->kv.value : "");
        /* prev_kv.key is NULL when no previous value was asked for or there was none */
        snprintf(s->prev[s->count], 32, "%s", ev->prev_kv.key ? ev->prev_kv.value : "-");
        s->revision[s->count] = ev->kv.mod_revision;
        s->count++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits (at most 10 s) until the callback has recorded n events. */
static bool wait_for(seen *s, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (s->count < n && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0) {
    }
    bool ok = s->count >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
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

    char prefix[128], key[160];
    snprintf(prefix, sizeof prefix, "examples/watch/%d/", (int)getpid());
    snprintf(key, sizeof key, "%sconfig", prefix);

    /* 1. Watch everything under prefix from now on, asking for previous values. etcdc_watch*
     *    returns once etcd confirmed the watch: nothing written after this point is missed. */
    seen live = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    etcdc_watcher *w =
        etcdc_watch_prefix(c, prefix, strlen(prefix), 0, true, on_watch, &live, &err);
    EXPECT(w != NULL, "watch_prefix");

    int64_t first_rev = 0;
    EXPECT(etcdc_put(c, key, strlen(key), "v1", 2, &first_rev, &err) == ETCDC_OK, "put v1");
    EXPECT(etcdc_put(c, key, strlen(key), "v2", 2, NULL, &err) == ETCDC_OK, "put v2");
    EXPECT(etcdc_delete(c, key, strlen(key), NULL, &err) == ETCDC_OK, "delete");

    EXPECT(wait_for(&live, 3), "waiting for 3 events");
    /* Events arrive in revision order: PUT v1 (no previous), PUT v2 (previous v1), DELETE. */
    EXPECT(live.type[0] == ETCDC_EVENT_PUT && strcmp(live.value[0], "v1") == 0 &&
               strcmp(live.prev[0], "-") == 0,
           "event 1");
    EXPECT(live.type[1] == ETCDC_EVENT_PUT && strcmp(live.value[1], "v2") == 0 &&
               strcmp(live.prev[1], "v1") == 0,
           "event 2");
    EXPECT(live.type[2] == ETCDC_EVENT_DELETE && strcmp(live.prev[2], "v2") == 0, "event 3");
    for (int i = 0; i < 3; i++)
        printf("live event %d: %s value=%s prev=%s at revision %lld\n", i + 1,
               live.type[i] == ETCDC_EVENT_PUT ? "PUT" : "DELETE", live.value[i], live.prev[i],
               (long long)live.revision[i]);
    printf("watcher has seen everything up to revision %lld\n", (long long)etcdc_watch_revision(w));
    /* After cancel returns the callback is not running and will not run again. */
    etcdc_watch_cancel(w);

    /* 2. A watch that starts in the past replays every change since that revision: useful to
     *    resume after a restart without missing anything. */
    seen replay = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    etcdc_watch_opts opts = {.key = key, .key_len = strlen(key), .start_revision = first_rev};
    w = etcdc_watch(c, &opts, on_watch, &replay, &err);
    EXPECT(w != NULL, "watch from a revision");
    EXPECT(wait_for(&replay, 3), "waiting for the replay");
    EXPECT(replay.revision[0] == first_rev && replay.type[2] == ETCDC_EVENT_DELETE, "replay");
    printf("replayed %d events from revision %lld\n", replay.count, (long long)first_rev);
    etcdc_watch_cancel(w);

    etcdc_delete_prefix(c, prefix, strlen(prefix), NULL, NULL);
    etcdc_client_free(c);
    printf("watch_example: ok\n");
    return 0;
}
