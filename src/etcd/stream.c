/*
 * stream.c - the stream engine: one thread per client serving a "next" completion queue on
 * which every long-lived stream (Watch, LeaseKeepAlive) completes its operations, plus timers
 * and work posted from other threads.
 *
 * Waking the thread for posted work uses a connectivity watch against GRPC_CHANNEL_SHUTDOWN: a
 * live channel is never in that state, so the watch completes at once on our queue. That gives
 * an immediate, poll-free wake-up with only public gRPC calls.
 */
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct posted {
    etcdc_stream_handler fn;
    void *arg;
    gpr_timespec due;
    struct posted *next;
} posted;

struct etcdc_stream_engine {
    etcdc_client *client;
    grpc_completion_queue *cq;
    pthread_t thread;
    pthread_mutex_t mu; /* protects the fields below */
    posted *work;       /* sorted by due time */
    bool wake_pending;  /* a wake watch is armed */
    bool stopping;
    int live_calls; /* streams whose final status is still to come */
    bool cq_shut;
    etcdc_stream_tag wake_tag;
};

static void on_wake(void *arg, bool ok)
{
    (void)ok;
    struct etcdc_stream_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    e->wake_pending = false;
    pthread_mutex_unlock(&e->mu);
}

/* Called with e->mu held. */
static void arm_wake(struct etcdc_stream_engine *e)
{
    if (e->wake_pending || e->cq_shut)
        return;
    e->wake_pending = true;
    grpc_channel_watch_connectivity_state(e->client->channel, GRPC_CHANNEL_SHUTDOWN,
                                          gpr_inf_future(GPR_CLOCK_MONOTONIC), e->cq, &e->wake_tag);
}

/* Pops the first posted item that is due, or returns NULL and the next due time. */
static posted *pop_due(struct etcdc_stream_engine *e, gpr_timespec *next_due)
{
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    pthread_mutex_lock(&e->mu);
    posted *p = e->work;
    if (p && gpr_time_cmp(p->due, now) <= 0)
        e->work = p->next;
    else {
        *next_due = p ? p->due : gpr_inf_future(GPR_CLOCK_MONOTONIC);
        p = NULL;
    }
    pthread_mutex_unlock(&e->mu);
    return p;
}

/* Shuts the queue down once stopping and no stream is left; called on the engine thread. */
static void maybe_shutdown_cq(struct etcdc_stream_engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool shut = e->stopping && e->live_calls == 0 && !e->cq_shut && !e->wake_pending;
    if (shut)
        e->cq_shut = true;
    pthread_mutex_unlock(&e->mu);
    if (shut)
        grpc_completion_queue_shutdown(e->cq);
}

static __thread struct etcdc_stream_engine *current_engine;

/* Work posted after the shutdown began runs with ok = false so that owners can free it. */
static void run_leftovers(struct etcdc_stream_engine *e)
{
    pthread_mutex_lock(&e->mu);
    posted *rest = e->work;
    e->work = NULL;
    pthread_mutex_unlock(&e->mu);
    while (rest) {
        posted *next = rest->next;
        rest->fn(rest->arg, false);
        free(rest);
        rest = next;
    }
}

static void *engine_main(void *arg)
{
    struct etcdc_stream_engine *e = arg;
    current_engine = e;
    for (;;) {
        gpr_timespec next_due;
        for (posted *p; (p = pop_due(e, &next_due));) {
            p->fn(p->arg, true);
            free(p);
        }
        maybe_shutdown_cq(e);
        grpc_event ev = grpc_completion_queue_next(e->cq, next_due, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            etcdc_stream_tag *tag = ev.tag;
            tag->fn(tag->arg, ev.success != 0);
        }
    }
    run_leftovers(e);
    return NULL;
}

grpc_completion_queue *etcdc__stream_cq(etcdc_client *c, etcdc_error *err)
{
    pthread_mutex_lock(&c->stream_mu);
    struct etcdc_stream_engine *e = c->engine;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (e) {
            e->client = c;
            e->cq = grpc_completion_queue_create_for_next(NULL);
            e->wake_tag = (etcdc_stream_tag){on_wake, e};
            pthread_mutex_init(&e->mu, NULL);
            if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
                grpc_completion_queue_shutdown(e->cq);
                grpc_completion_queue_destroy(e->cq);
                pthread_mutex_destroy(&e->mu);
                free(e);
                e = NULL;
            }
        }
        c->engine = e;
    }
    pthread_mutex_unlock(&c->stream_mu);
    if (!e) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "cannot start the stream thread");
        return NULL;
    }
    pthread_mutex_lock(&e->mu);
    bool stopping = e->stopping;
    pthread_mutex_unlock(&e->mu);
    if (stopping) {
        etcdc__set_error(err, ETCDC_ERR_CANCELED, 0, "client is closing");
        return NULL;
    }
    return e->cq;
}

etcdc_code etcdc__stream_post(etcdc_client *c, int64_t delay_ms, etcdc_stream_handler fn, void *arg)
{
    struct etcdc_stream_engine *e = c->engine;
    posted *p = malloc(sizeof *p);
    if (!p)
        return ETCDC_ERR_NO_MEMORY;
    p->fn = fn;
    p->arg = arg;
    p->due =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(delay_ms, GPR_TIMESPAN));
    pthread_mutex_lock(&e->mu);
    posted **at = &e->work;
    while (*at && gpr_time_cmp((*at)->due, p->due) <= 0)
        at = &(*at)->next;
    p->next = *at;
    *at = p;
    bool shut = e->cq_shut;
    if (!shut && e->work == p && !etcdc__on_stream_thread(c))
        arm_wake(e);
    pthread_mutex_unlock(&e->mu);
    return ETCDC_OK;
}

bool etcdc__on_stream_thread(etcdc_client *c)
{
    return c->engine && current_engine == c->engine;
}

void etcdc__stream_call_started(etcdc_client *c)
{
    pthread_mutex_lock(&c->engine->mu);
    c->engine->live_calls++;
    pthread_mutex_unlock(&c->engine->mu);
}

void etcdc__stream_call_ended(etcdc_client *c)
{
    pthread_mutex_lock(&c->engine->mu);
    c->engine->live_calls--;
    pthread_mutex_unlock(&c->engine->mu);
}

bool etcdc__stream_stopping(etcdc_client *c)
{
    pthread_mutex_lock(&c->engine->mu);
    bool s = c->engine->stopping;
    pthread_mutex_unlock(&c->engine->mu);
    return s;
}

static void nothing(void *arg, bool ok)
{
    (void)arg;
    (void)ok;
}

void etcdc__stream_shutdown(etcdc_client *c)
{
    struct etcdc_stream_engine *e = c->engine;
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_mutex_unlock(&e->mu);
    etcdc__watch_hub_stop(c);
    etcdc__lease_hub_stop(c);
    etcdc__stream_post(c, 0, nothing, NULL); /* wake the thread so it sees `stopping` */
    pthread_join(e->thread, NULL);
    run_leftovers(e); /* posted after the thread's own last look */
    etcdc__watch_hub_free(c);
    etcdc__lease_hub_free(c);
    grpc_completion_queue_destroy(e->cq);
    pthread_mutex_destroy(&e->mu);
    free(e);
    c->engine = NULL;
}
