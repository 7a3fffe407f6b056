/*
 * fuzz_watch.c - libFuzzer target for the watch stream's response handling (src/etcd/watch.c):
 * the input is a sequence of frames (fuzz_common.h), each one WatchResponse message as it
 * would arrive on the client's Watch stream, fed to the hub's message handler with three
 * watchers registered (two waiting for their "created" answer, one active).
 *
 * Besides memory safety (ASan) and leaks (fragments kept across messages), the callbacks
 * check what watch.c promises its users:
 *  - no event is delivered at or below a revision the watcher was already told about (events
 *    or progress): a resumed or repeated answer never repeats an event;
 *  - after CANCELED or COMPACTED a watcher gets nothing more;
 *  - callbacks run without the hub's lock held.
 * Byte 0 of the input: bit 0 = encryption on (event values go through etcdc__open).
 */
#include "fuzz_common.h"

/* The handler and the hub are static: compile watch.c into this target. */
#include "../../src/etcd/watch.c"

#define N_W 3
typedef struct w_state {
    struct etcdc_watch_hub *hub;
    int64_t floor; /* highest revision reported so far (events or progress) */
    bool ended;
} w_state;

static void on_response(void *arg, const etcdc_watch_response *r)
{
    w_state *s = arg;
    REQUIRE(pthread_mutex_trylock(&s->hub->mu) == 0); /* not called with the lock held */
    pthread_mutex_unlock(&s->hub->mu);
    REQUIRE(!s->ended);
    switch (r->kind) {
    case ETCDC_WATCH_EVENTS: {
        REQUIRE(r->event_count > 0 && r->events);
        int64_t top = s->floor;
        for (size_t i = 0; i < r->event_count; i++) {
            const etcdc_event *e = &r->events[i];
            REQUIRE(e->kv.mod_revision > s->floor);
            REQUIRE(e->kv.key && e->kv.value && (!e->prev_kv.key || e->prev_kv.value));
            if (e->kv.mod_revision > top)
                top = e->kv.mod_revision;
        }
        s->floor = top;
        break;
    }
    case ETCDC_WATCH_PROGRESS:
        if (r->revision > s->floor)
            s->floor = r->revision;
        break;
    case ETCDC_WATCH_CANCELED:
        REQUIRE(r->message);
        s->ended = true;
        break;
    case ETCDC_WATCH_COMPACTED:
        REQUIRE(r->compact_revision > 0);
        s->ended = true;
        break;
    default: REQUIRE(!"unknown watch response kind");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    etcdc_client c;
    fuzz_client_init(&c, data[0] & 1, false);
    struct etcdc_watch_hub h = {.client = &c, .next_id = N_W + 1, .backoff_ms = 100};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    w_state st[N_W];
    for (int i = N_W - 1; i >= 0; i--) {
        etcdc_watcher *w = calloc(1, sizeof *w);
        REQUIRE(w);
        st[i] = (w_state){.hub = &h};
        w->client = &c;
        w->id = i + 1;
        w->cb = on_response;
        w->arg = &st[i];
        w->create_seq = (uint64_t)i + 1;
        if (i == 1)
            w->start_revision = 5; /* resumes from a revision of its own */
        if (i == 2) {              /* already running, everything up to 10 delivered */
            w->state = W_ACTIVE;
            w->created = true;
            w->last_revision = 10;
            st[i].floor = 10;
        }
        w->next = h.watchers;
        h.watchers = w;
    }
    h.create_seq = N_W;

    const uint8_t *p = data + 1, *frame;
    size_t n = size - 1, frame_len;
    pthread_mutex_lock(&h.mu);
    while (fuzz_next_frame(&p, &n, &frame, &frame_len)) {
        grpc_byte_buffer *bb = fuzz_byte_buffer(frame, frame_len);
        on_message(&h, bb); /* with the hub's mutex held, as bidi.c calls it */
        grpc_byte_buffer_destroy(bb);
    }
    for (etcdc_watcher *w = h.watchers; w; w = w->next)
        REQUIRE(w->state == W_ENDED || !st[w->id - 1].ended);
    pthread_mutex_unlock(&h.mu);
    while (h.watchers) {
        etcdc_watcher *w = h.watchers;
        h.watchers = w->next;
        free_watcher(w);
    }
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    return 0;
}
