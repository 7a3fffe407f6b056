/*
 * lease.c - lease grant / revoke / time-to-live, and one LeaseKeepAlive stream per client
 * serving every kept-alive lease.
 *
 * Each kept-alive lease is renewed at a third of its TTL. It is reported lost (callback with
 * ttl <= 0) when etcd answers TTL 0, or when no renewal succeeded before the last granted TTL
 * ran out (the lease may have expired on the server while we could not reach it).
 */
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>

#include "bidi.h"

/* etcd's largest lease TTL (MaxLeaseTTL); answers above it are clamped. */
#define MAX_TTL_S 9000000000LL

#define TICK_MS 250

struct etcdc_keepalive {
    etcdc_client *client;
    int64_t id;
    etcdc_keepalive_cb cb;
    void *arg;
    /* protected by hub->mu: */
    int64_t ttl;
    gpr_timespec next_send, expires;
    bool ended; /* lost (cb got ttl <= 0) */
    struct etcdc_keepalive *next;
};

typedef struct once_waiter {
    int64_t id;
    int64_t ttl;
    bool done;
    struct once_waiter *next;
} once_waiter;

struct etcdc_lease_hub {
    etcdc_client *client;
    pthread_mutex_t mu; /* protects everything below, and the stream */
    pthread_cond_t cv;  /* once-waiters answered; deliveries finished */
    etcdc_bidi stream;
    etcdc_keepalive *kas;
    once_waiter *waiters;
    etcdc_keepalive *delivering;
    bool tick_scheduled;
    bool stopped;
};

/* ---- unary calls ---- */

static etcdc_code grant(etcdc_client *c, int64_t ttl_s, int64_t id, int64_t *out_id,
                        etcdc_error *err)
{
    if (ttl_s <= 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "lease TTL must be > 0");
    Etcdserverpb__LeaseGrantRequest pb = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    pb.ttl = ttl_s;
    pb.id = id;
    Etcdserverpb__LeaseGrantResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Lease/LeaseGrant", ETCDC_STAT_LEASE, ETCDC_RETRY_UNSENT, &pb.base,
        &etcdserverpb__lease_grant_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    if (resp->error && *resp->error)
        rc = etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "lease grant: %s", resp->error);
    else if (out_id)
        *out_id = resp->id;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

etcdc_code etcdc_lease_grant(etcdc_client *c, int64_t ttl_s, int64_t *out_id, etcdc_error *err)
{
    etcdc__clear_error(err);
    return grant(c, ttl_s, 0, out_id, err);
}

etcdc_code etcdc_lease_grant_id(etcdc_client *c, int64_t ttl_s, int64_t id, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (id <= 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "lease id must be > 0");
    return grant(c, ttl_s, id, NULL, err);
}

etcdc_code etcdc_lease_revoke(etcdc_client *c, int64_t id, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__LeaseRevokeRequest pb = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    pb.id = id;
    Etcdserverpb__LeaseRevokeResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Lease/LeaseRevoke", ETCDC_STAT_LEASE, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__lease_revoke_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

void etcdc_leases_clear(etcdc_leases *l)
{
    if (!l)
        return;
    free(l->ids);
    memset(l, 0, sizeof *l);
}

etcdc_code etcdc_lease_list(etcdc_client *c, etcdc_leases *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    Etcdserverpb__LeaseLeasesRequest pb = ETCDSERVERPB__LEASE_LEASES_REQUEST__INIT;
    Etcdserverpb__LeaseLeasesResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Lease/LeaseLeases", ETCDC_STAT_LEASE, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__lease_leases_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    if (resp->n_leases) {
        out->ids = calloc(resp->n_leases, sizeof *out->ids);
        if (!out->ids)
            rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        for (size_t i = 0; out->ids && i < resp->n_leases; i++)
            out->ids[out->count++] = resp->leases[i]->id;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

etcdc_code etcdc_lease_time_to_live(etcdc_client *c, int64_t id, int64_t *out_ttl,
                                    int64_t *out_granted_ttl, etcdc_kvs *keys, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (keys)
        memset(keys, 0, sizeof *keys);
    Etcdserverpb__LeaseTimeToLiveRequest pb = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    pb.id = id;
    pb.keys = keys != NULL;
    Etcdserverpb__LeaseTimeToLiveResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(c, "/etcdserverpb.Lease/LeaseTimeToLive", ETCDC_STAT_LEASE,
                                 ETCDC_RETRY_IDEMPOTENT, &pb.base,
                                 &etcdserverpb__lease_time_to_live_response__descriptor,
                                 (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    if (out_ttl)
        *out_ttl = resp->ttl;
    if (out_granted_ttl)
        *out_granted_ttl = resp->grantedttl;
    for (size_t i = 0; keys && i < resp->n_keys && rc == ETCDC_OK; i++) {
        Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
        kv.key = resp->keys[i];
        Mvccpb__KeyValue *one = &kv;
        rc = etcdc__kvs_append(c, keys, &one, 1, err);
    }
    if (keys) {
        keys->revision = resp->header ? resp->header->revision : 0;
        keys->total = (int64_t)keys->count;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (rc != ETCDC_OK && keys)
        etcdc_kvs_clear(keys);
    return rc;
}

/* ---- the keep-alive stream ---- */

static grpc_byte_buffer *keepalive_request(int64_t id)
{
    Etcdserverpb__LeaseKeepAliveRequest pb = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    pb.id = id;
    return etcdc__pack(&pb.base);
}

static gpr_timespec after_ms(int64_t ms)
{
    return etcdc__deadline_ms(ms);
}

/* Runs ka's callback without the hub lock; stop() waits while `delivering` names ka. */
static void deliver(struct etcdc_lease_hub *h, etcdc_keepalive *ka, int64_t ttl)
{
    if (!ka->cb)
        return;
    h->delivering = ka;
    pthread_mutex_unlock(&h->mu);
    ka->cb(ka->arg, ka->id, ttl);
    pthread_mutex_lock(&h->mu);
    h->delivering = NULL;
    pthread_cond_broadcast(&h->cv);
}

/* Finds the first live keep-alive with an id greater than after (callbacks may unlink). */
static etcdc_keepalive *next_after(struct etcdc_lease_hub *h, etcdc_keepalive *after)
{
    etcdc_keepalive *best = NULL;
    for (etcdc_keepalive *ka = h->kas; ka; ka = ka->next)
        if ((!after || (uintptr_t)ka > (uintptr_t)after) &&
            (!best || (uintptr_t)ka < (uintptr_t)best))
            best = ka;
    return best;
}

static void on_message(void *owner, grpc_byte_buffer *bb)
{
    struct etcdc_lease_hub *h = owner;
    Etcdserverpb__LeaseKeepAliveResponse *m = (Etcdserverpb__LeaseKeepAliveResponse *)etcdc__unpack(
        &etcdserverpb__lease_keep_alive_response__descriptor, bb);
    if (!m)
        return;
    for (once_waiter *w = h->waiters; w; w = w->next)
        if (w->id == m->id && !w->done) {
            w->done = true;
            w->ttl = m->ttl;
        }
    pthread_cond_broadcast(&h->cv);
    for (etcdc_keepalive *ka = next_after(h, NULL); ka; ka = next_after(h, ka)) {
        if (ka->id != m->id || ka->ended)
            continue;
        if (m->ttl <= 0) {
            ka->ended = true;
        } else {
            /* etcd grants at most 9e9 s; a larger answer must not overflow the milliseconds */
            ka->ttl = m->ttl < MAX_TTL_S ? m->ttl : MAX_TTL_S;
            ka->expires = after_ms(ka->ttl * 1000);
            ka->next_send = after_ms(ka->ttl * 1000 / 3);
        }
        deliver(h, ka, m->ttl);
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void on_closed(void *owner, grpc_status_code status, const char *details)
{
    (void)owner;
    (void)status;
    (void)details;
    /* Nothing to do now: the next tick reopens the stream while leases are kept alive, and a
     * lease whose renewals stop arriving is reported lost when its TTL runs out. */
}

static void tick(void *arg, bool ok);

/* Called with h->mu held. */
static void schedule_tick(struct etcdc_lease_hub *h)
{
    if (h->tick_scheduled || h->stopped || (!h->kas && !h->waiters))
        return;
    h->tick_scheduled = true;
    etcdc__stream_post(h->client, TICK_MS, tick, h);
}

/* Periodic work on the engine thread: reopen the stream, renew what is due, detect expiry. */
static void tick(void *arg, bool ok)
{
    struct etcdc_lease_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    h->tick_scheduled = false;
    if (!ok || h->stopped) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    if (!etcdc__bidi_is_open(&h->stream) && (h->kas || h->waiters))
        etcdc__bidi_open(&h->stream, NULL);
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    for (etcdc_keepalive *ka = next_after(h, NULL); ka; ka = next_after(h, ka)) {
        if (ka->ended)
            continue;
        if (gpr_time_cmp(now, ka->expires) >= 0) {
            ka->ended = true;
            deliver(h, ka, 0);
            continue;
        }
        if (gpr_time_cmp(now, ka->next_send) >= 0) {
            etcdc__bidi_send(&h->stream, keepalive_request(ka->id));
            /* If no answer comes, try again soon rather than after a whole third. */
            ka->next_send = after_ms(ka->ttl * 1000 / 6 > 500 ? ka->ttl * 1000 / 6 : 500);
        }
    }
    schedule_tick(h);
    pthread_mutex_unlock(&h->mu);
}

static struct etcdc_lease_hub *get_hub(etcdc_client *c, etcdc_error *err)
{
    if (!etcdc__stream_cq(c, err))
        return NULL;
    pthread_mutex_lock(&c->stream_mu);
    struct etcdc_lease_hub *h = c->lease;
    if (!h && (h = calloc(1, sizeof *h))) {
        h->client = c;
        pthread_mutex_init(&h->mu, NULL);
        pthread_cond_init(&h->cv, NULL);
        etcdc__bidi_init(&h->stream, c, "/etcdserverpb.Lease/LeaseKeepAlive", &h->mu, h, on_message,
                         on_closed);
        c->lease = h;
    }
    pthread_mutex_unlock(&c->stream_mu);
    if (!h)
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    return h;
}

static etcdc_code ensure_open(struct etcdc_lease_hub *h, etcdc_error *err)
{
    if (etcdc__bidi_is_open(&h->stream))
        return ETCDC_OK;
    return etcdc__bidi_open(&h->stream, err);
}

etcdc_code etcdc_lease_keepalive_once(etcdc_client *c, int64_t id, int64_t *out_ttl,
                                      etcdc_error *err)
{
    etcdc__clear_error(err);
    struct etcdc_lease_hub *h = get_hub(c, err);
    if (!h)
        return err ? err->code : ETCDC_ERR_NO_MEMORY;
    once_waiter w = {.id = id};
    gpr_timespec deadline = etcdc__deadline_ms(c->cfg.request_timeout_ms);
    pthread_mutex_lock(&h->mu);
    etcdc_code rc = ensure_open(h, err);
    if (rc == ETCDC_OK) {
        w.next = h->waiters;
        h->waiters = &w;
        etcdc__bidi_send(&h->stream, keepalive_request(id));
        schedule_tick(h);
        gpr_timespec rt = gpr_convert_clock_type(deadline, GPR_CLOCK_REALTIME);
        struct timespec ts = {rt.tv_sec, rt.tv_nsec};
        while (!w.done && pthread_cond_timedwait(&h->cv, &h->mu, &ts) == 0) {
        }
        for (once_waiter **p = &h->waiters; *p; p = &(*p)->next)
            if (*p == &w) {
                *p = w.next;
                break;
            }
        if (!w.done)
            rc = etcdc__set_error(err, ETCDC_ERR_TIMEOUT, 0, "no keep-alive answer within %lld ms",
                                  (long long)c->cfg.request_timeout_ms);
        else if (w.ttl <= 0)
            rc = etcdc__set_error(err, ETCDC_ERR_NOT_FOUND, 0, "lease %llx not found",
                                  (unsigned long long)id);
        else if (out_ttl)
            *out_ttl = w.ttl;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

etcdc_keepalive *etcdc_lease_keepalive(etcdc_client *c, int64_t id, etcdc_keepalive_cb cb,
                                       void *arg, etcdc_error *err)
{
    etcdc__clear_error(err);
    /* The first renewal is synchronous: it proves the lease exists and gives its TTL. */
    int64_t ttl = 0;
    if (etcdc_lease_keepalive_once(c, id, &ttl, err) != ETCDC_OK)
        return NULL;
    struct etcdc_lease_hub *h = c->lease;
    etcdc_keepalive *ka = calloc(1, sizeof *ka);
    if (!ka) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    ka->client = c;
    ka->id = id;
    ka->cb = cb;
    ka->arg = arg;
    ka->ttl = ttl < MAX_TTL_S ? ttl : MAX_TTL_S;
    ka->expires = after_ms(ka->ttl * 1000);
    ka->next_send = after_ms(ka->ttl * 1000 / 3);
    pthread_mutex_lock(&h->mu);
    ka->next = h->kas;
    h->kas = ka;
    schedule_tick(h);
    pthread_mutex_unlock(&h->mu);
    return ka;
}

void etcdc_keepalive_stop(etcdc_keepalive *ka)
{
    if (!ka)
        return;
    struct etcdc_lease_hub *h = ka->client->lease;
    pthread_mutex_lock(&h->mu);
    for (etcdc_keepalive **p = &h->kas; *p; p = &(*p)->next)
        if (*p == ka) {
            *p = ka->next;
            break;
        }
    while (h->delivering == ka)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    free(ka);
}

void etcdc__lease_hub_stop(etcdc_client *c)
{
    struct etcdc_lease_hub *h = c->lease;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopped = true;
    etcdc__bidi_cancel(&h->stream);
    pthread_mutex_unlock(&h->mu);
}

void etcdc__lease_hub_free(etcdc_client *c)
{
    struct etcdc_lease_hub *h = c->lease;
    if (!h)
        return;
    while (h->kas) {
        etcdc_keepalive *ka = h->kas;
        h->kas = ka->next;
        free(ka);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    c->lease = NULL;
}
