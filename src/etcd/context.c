/* context.c - per-call deadline and cancellation: an etcdc_ctx bound to a thread applies to every
 * call that thread makes, and etcdc_ctx_cancel (any thread) ends the blocked ones promptly. */
#include <stdlib.h>

#include "internal.h"

struct etcdc_ctx {
    pthread_mutex_t mu; /* protects canceled and calls */
    bool canceled;
    bool has_deadline;
    gpr_timespec deadline; /* GPR_CLOCK_MONOTONIC */
    struct etcdc__ctx_call *calls;
    etcdc_cancel *lock_token; /* fired with the context: wakes a lock wait */
};

/* Each thread's own binding: never shared, so no lock. */
static _Thread_local etcdc_ctx *bound;

etcdc_ctx *etcdc_ctx_new(int64_t timeout_ms)
{
    etcdc_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->lock_token = etcdc_cancel_new();
    if (!ctx->lock_token) {
        free(ctx);
        return NULL;
    }
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->has_deadline = timeout_ms > 0;
    if (ctx->has_deadline)
        ctx->deadline = etcdc__deadline_ms(timeout_ms);
    return ctx;
}

void etcdc_ctx_cancel(etcdc_ctx *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->mu);
    ctx->canceled = true;
    for (struct etcdc__ctx_call *k = ctx->calls; k; k = k->next)
        grpc_call_cancel(k->call, NULL); /* thread-safe; the owner sees CANCELLED */
    pthread_mutex_unlock(&ctx->mu);
    etcdc_cancel_fire(ctx->lock_token);
}

bool etcdc_ctx_done(etcdc_ctx *ctx)
{
    if (!ctx)
        return false;
    pthread_mutex_lock(&ctx->mu);
    bool done = ctx->canceled || (ctx->has_deadline &&
                                  gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), ctx->deadline) >= 0);
    pthread_mutex_unlock(&ctx->mu);
    return done;
}

void etcdc_ctx_free(etcdc_ctx *ctx)
{
    if (!ctx)
        return;
    if (bound == ctx)
        bound = NULL;
    etcdc_cancel_free(ctx->lock_token);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
}

etcdc_ctx *etcdc_ctx_use(etcdc_ctx *ctx)
{
    etcdc_ctx *previous = bound;
    bound = ctx;
    return previous;
}

etcdc_ctx *etcdc__ctx_current(void)
{
    return bound;
}

bool etcdc__ctx_canceled(void)
{
    if (!bound)
        return false;
    pthread_mutex_lock(&bound->mu);
    bool canceled = bound->canceled;
    pthread_mutex_unlock(&bound->mu);
    return canceled;
}

gpr_timespec etcdc__ctx_clamp(gpr_timespec deadline, bool *ctx_decides)
{
    bool earlier = bound && bound->has_deadline && gpr_time_cmp(bound->deadline, deadline) < 0;
    if (ctx_decides)
        *ctx_decides = earlier;
    return earlier ? bound->deadline : deadline;
}

etcdc_cancel *etcdc__ctx_lock_token(void)
{
    return bound ? bound->lock_token : NULL;
}

bool etcdc__ctx_register(struct etcdc__ctx_call *k, grpc_call *call)
{
    k->call = call;
    k->next = NULL;
    if (!bound)
        return true;
    pthread_mutex_lock(&bound->mu);
    bool ok = !bound->canceled;
    if (ok) {
        k->next = bound->calls;
        bound->calls = k;
    }
    pthread_mutex_unlock(&bound->mu);
    return ok;
}

void etcdc__ctx_unregister(struct etcdc__ctx_call *k)
{
    if (!bound)
        return;
    pthread_mutex_lock(&bound->mu);
    for (struct etcdc__ctx_call **p = &bound->calls; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            break;
        }
    pthread_mutex_unlock(&bound->mu);
}
