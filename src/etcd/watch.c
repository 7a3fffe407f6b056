/*
 * watch.c - every watcher of a client multiplexed on one Watch stream.
 *
 * Watch ids are chosen by the client (WatchCreateRequest.watch_id), so responses are matched to
 * watchers without relying on the order of "created" replies. Each watcher remembers the last
 * revision delivered to it; when the stream breaks it is re-created and every watcher resumes
 * from that revision + 1, so no event is lost or delivered twice. Callbacks run on the engine
 * thread without the hub lock held.
 */
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bidi.h"

typedef enum { W_PENDING, W_ACTIVE, W_ENDED } watcher_state;

struct etcdc_watcher {
    etcdc_client *client;
    int64_t id;
    char *key, *range_end;
    size_t key_len, range_end_len;
    bool prev_kv, progress_notify, no_put, no_delete;
    int64_t start_revision;
    etcdc_watch_cb cb;
    void *arg;
    /* protected by hub->mu: */
    watcher_state state;
    bool created;        /* the server confirmed the current registration */
    uint64_t create_seq; /* order in which its create request was sent on the stream */
    int auth_retries;    /* creations refused for an expired token, then retried */
    etcdc_error create_error;
    int64_t last_revision; /* everything up to here was delivered */
    Mvccpb__Event **frag;  /* events of a fragmented response being collected (owned) */
    size_t frag_count;
    ProtobufCMessage **frag_msgs; /* the responses the fragment events belong to */
    size_t frag_msg_count;
    struct etcdc_watcher *next;
};

struct etcdc_watch_hub {
    etcdc_client *client;
    pthread_mutex_t mu; /* protects everything below, and the stream */
    pthread_cond_t cv;  /* creations confirmed; deliveries finished */
    etcdc_bidi stream;
    etcdc_watcher *watchers;
    int64_t next_id;
    etcdc_watcher *delivering; /* the watcher whose callback runs now */
    bool reconnect_scheduled;
    int64_t backoff_ms;
    bool stopped;
    uint64_t create_seq;      /* creates sent on the current stream */
    uint64_t stream_auth_gen; /* auth generation whose token the current stream carries */
    bool restarting;          /* the stream is being replaced to carry a fresh token */
    uint64_t stream_number;   /* streams opened so far, this one included */
    /* Whether create requests ask etcd to split a revision's events into fragments. etcd
     * splits in time quadratic in the events per fragment (a delete of 100,000 keys reached
     * the watcher after 43 s), so a stream asks only once a revision's events did not fit the
     * receive limit in one message (the stream ended with RESOURCE_EXHAUSTED). */
    bool fragment;
};

/* ---- messages ---- */

static grpc_byte_buffer *create_request(const etcdc_watcher *w, bool fragment)
{
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){w->key_len, (uint8_t *)w->key};
    cr.range_end = (ProtobufCBinaryData){w->range_end_len, (uint8_t *)w->range_end};
    cr.start_revision = w->last_revision > 0 ? w->last_revision + 1 : w->start_revision;
    cr.progress_notify = w->progress_notify;
    cr.prev_kv = w->prev_kv;
    cr.watch_id = w->id;
    cr.fragment = fragment;
    Etcdserverpb__WatchCreateRequest__FilterType filters[2];
    size_t nf = 0;
    if (w->no_put)
        filters[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
    if (w->no_delete)
        filters[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
    cr.filters = filters;
    cr.n_filters = nf;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    return etcdc__pack(&req.base);
}

static grpc_byte_buffer *cancel_request(int64_t id)
{
    Etcdserverpb__WatchCancelRequest cr = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
    cr.watch_id = id;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
    req.cancel_request = &cr;
    return etcdc__pack(&req.base);
}

static grpc_byte_buffer *progress_request(void)
{
    Etcdserverpb__WatchProgressRequest pr = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
    req.progress_request = &pr;
    return etcdc__pack(&req.base);
}

/* ---- the stream ---- */

/* Sends w's create request. Called with hub->mu held. */
static void send_create(struct etcdc_watch_hub *h, etcdc_watcher *w)
{
    w->create_seq = ++h->create_seq;
    etcdc__bidi_send(&h->stream, create_request(w, h->fragment));
}

/* Opens a new Watch call and sends a create request for every live watcher.
 * Called with hub->mu held. */
static etcdc_code open_stream(struct etcdc_watch_hub *h, etcdc_error *err)
{
    h->stream_auth_gen = etcdc__auth_gen(h->client);
    etcdc_code rc = etcdc__bidi_open(&h->stream, err);
    if (rc != ETCDC_OK)
        return rc;
    h->restarting = false;
    h->create_seq = 0;
    h->stream_number++;
    for (etcdc_watcher *w = h->watchers; w; w = w->next) {
        if (w->state == W_ENDED)
            continue;
        w->state = W_PENDING;
        w->created = false;
        send_create(h, w);
    }
    return ETCDC_OK;
}

static void reconnect(void *arg, bool ok)
{
    struct etcdc_watch_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    h->reconnect_scheduled = false;
    if (ok && !h->stopped && !etcdc__bidi_is_open(&h->stream) && h->watchers)
        open_stream(h, NULL);
    pthread_mutex_unlock(&h->mu);
}

static void deliver(struct etcdc_watch_hub *h, etcdc_watcher *w, const etcdc_watch_response *r);

/* Even etcd's fragments (up to its --max-request-bytes plus 512 KiB) exceed the receive limit:
 * no stream can get past that response, so every watcher is ended with the reason rather than
 * left waiting for ever. Called with hub->mu held. */
static void end_watchers_over_limit(struct etcdc_watch_hub *h)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "a watch response exceeds the client's receive limit (%zu bytes) even in "
             "fragments: raise it (etcdc_config_set_max_message_size)",
             h->client->cfg.max_recv_bytes);
    for (;;) { /* from the head each time: the list may change while a callback runs */
        etcdc_watcher *w = h->watchers;
        while (w && w->state == W_ENDED)
            w = w->next;
        if (!w)
            break;
        w->state = W_ENDED;
        if (!w->created)
            etcdc__set_error(&w->create_error, ETCDC_ERR_CANCELED, 0, "%s", msg);
        pthread_cond_broadcast(&h->cv);
        etcdc_watch_response r = {.kind = ETCDC_WATCH_CANCELED, .message = msg};
        deliver(h, w, &r);
    }
}

/* The stream ended (bidi callback, hub->mu held): resume after a back-off. */
static void on_closed(void *owner, grpc_status_code status, const char *details)
{
    struct etcdc_watch_hub *h = owner;
    etcdc_client *c = h->client;
    if (status == GRPC_STATUS_RESOURCE_EXHAUSTED) {
        if (h->fragment)
            end_watchers_over_limit(h);
        h->fragment = true; /* a revision's events exceed the receive limit: the next stream
                             * asks for them in pieces */
    }
    /* Watchers waiting for their creation learn about a refused stream (auth, permission). */
    if (status != GRPC_STATUS_OK && status != GRPC_STATUS_UNAVAILABLE &&
        status != GRPC_STATUS_CANCELLED && status != GRPC_STATUS_UNAUTHENTICATED &&
        status != GRPC_STATUS_RESOURCE_EXHAUSTED) {
        for (etcdc_watcher *w = h->watchers; w; w = w->next)
            if (w->state == W_PENDING && !w->create_error.code)
                etcdc__set_error(&w->create_error, etcdc__code_from_status(status, details), status,
                                 "watch stream: %s", details);
        pthread_cond_broadcast(&h->cv);
    }
    if (h->stopped || !h->watchers || h->reconnect_scheduled || etcdc__stream_stopping(c))
        return;
    h->reconnect_scheduled = true;
    etcdc__stream_post(c, h->backoff_ms, reconnect, h);
    h->backoff_ms = h->backoff_ms * 2 > 2000 ? 2000 : h->backoff_ms * 2;
}

/* ---- delivering responses ---- */

static etcdc_watcher *find(struct etcdc_watch_hub *h, int64_t id)
{
    for (etcdc_watcher *w = h->watchers; w; w = w->next)
        if (w->id == id)
            return w;
    return NULL;
}

static void free_events(etcdc_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        etcdc_kv_clear(&ev[i].kv);
        etcdc_kv_clear(&ev[i].prev_kv);
    }
    free(ev);
}

/* Converts protobuf events into the public form; skips events at or below `after`, which a
 * resumed watch could otherwise repeat. */
static etcdc_event *convert_events(etcdc_client *c, Mvccpb__Event **pbs, size_t n, int64_t after,
                                   size_t *out_n)
{
    etcdc_event *ev = calloc(n ? n : 1, sizeof *ev);
    size_t k = 0;
    for (size_t i = 0; ev && i < n; i++) {
        if (!pbs[i]->kv || pbs[i]->kv->mod_revision <= after)
            continue;
        ev[k].type = pbs[i]->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? ETCDC_EVENT_DELETE
                                                                       : ETCDC_EVENT_PUT;
        if (etcdc__kv_from_pb(c, pbs[i]->kv, &ev[k].kv, NULL) != ETCDC_OK ||
            (pbs[i]->prev_kv &&
             etcdc__kv_from_pb(c, pbs[i]->prev_kv, &ev[k].prev_kv, NULL) != ETCDC_OK)) {
            free_events(ev, k + 1);
            return NULL;
        }
        k++;
    }
    *out_n = k;
    return ev;
}

/* Runs w's callback without the hub lock; cancel() waits while `delivering` names w. */
static void deliver(struct etcdc_watch_hub *h, etcdc_watcher *w, const etcdc_watch_response *r)
{
    h->delivering = w;
    pthread_mutex_unlock(&h->mu);
    w->cb(w->arg, r);
    pthread_mutex_lock(&h->mu);
    h->delivering = NULL;
    pthread_cond_broadcast(&h->cv);
}

static void drop_fragments(etcdc_watcher *w)
{
    for (size_t i = 0; i < w->frag_msg_count; i++)
        protobuf_c_message_free_unpacked(w->frag_msgs[i], NULL);
    free(w->frag_msgs);
    free(w->frag);
    w->frag = NULL;
    w->frag_msgs = NULL;
    w->frag_count = w->frag_msg_count = 0;
}

/* Keeps a fragment; returns false when out of memory. The message is owned by w afterwards. */
static bool keep_fragment(etcdc_watcher *w, Etcdserverpb__WatchResponse *m)
{
    /* A piece may carry no events (m->events is then NULL). Growing frag by nothing would be
     * realloc(frag, 0), which glibc answers by freeing frag and returning NULL: frag was then
     * freed twice (found by tests/fuzz/fuzz_watch). */
    if (m->n_events > 0) {
        Mvccpb__Event **ev = realloc(w->frag, (w->frag_count + m->n_events) * sizeof *ev);
        if (!ev)
            return false;
        w->frag = ev;
        memcpy(w->frag + w->frag_count, m->events, m->n_events * sizeof *ev);
        w->frag_count += m->n_events;
    }
    ProtobufCMessage **msgs = realloc(w->frag_msgs, (w->frag_msg_count + 1) * sizeof *msgs);
    if (!msgs)
        return false;
    w->frag_msgs = msgs;
    w->frag_msgs[w->frag_msg_count++] = &m->base;
    return true;
}

static void deliver_events(struct etcdc_watch_hub *h, etcdc_watcher *w, int64_t header_rev,
                           Mvccpb__Event **pbs, size_t n)
{
    size_t count = 0;
    etcdc_event *ev = convert_events(h->client, pbs, n, w->last_revision, &count);
    if (!ev)
        return; /* out of memory: the stream will be resumed from last_revision */
    int64_t top = w->last_revision;
    for (size_t i = 0; i < count; i++)
        if (ev[i].kv.mod_revision > top)
            top = ev[i].kv.mod_revision;
    if (count > 0) {
        w->last_revision = top;
        etcdc_watch_response r = {
            .kind = ETCDC_WATCH_EVENTS, .revision = header_rev, .events = ev, .event_count = count};
        deliver(h, w, &r);
    }
    free_events(ev, count);
}

/* The pending watcher whose create request was sent first: etcd answers creates in order. */
static etcdc_watcher *oldest_pending(struct etcdc_watch_hub *h)
{
    etcdc_watcher *best = NULL;
    for (etcdc_watcher *w = h->watchers; w; w = w->next)
        if (w->state == W_PENDING && (!best || w->create_seq < best->create_seq))
            best = w;
    return best;
}

static bool auth_refusal(const char *reason)
{
    return reason && (strstr(reason, "invalid auth token") || strstr(reason, "user name is empty"));
}

/* etcd refused a create (watch id -1: it names no watcher). An expired token is renewed once
 * and the stream replaced, so that every pending create is sent again with the new token;
 * anything else (permission denied, bad range) ends that watcher with the reason.
 * Called with hub->mu held on the engine thread. */
static void handle_refusal(struct etcdc_watch_hub *h, const char *reason, int64_t rev)
{
    etcdc_client *c = h->client;
    if (h->restarting)
        return; /* this create is sent again on the next stream */
    etcdc_watcher *w = oldest_pending(h);
    if (!w)
        return;
    if (c->cfg.user && auth_refusal(reason) && w->auth_retries++ < 2) {
        h->restarting = true;
        uint64_t gen = h->stream_auth_gen;
        pthread_mutex_unlock(&h->mu);
        etcdc__reauthenticate(c, gen, NULL);
        pthread_mutex_lock(&h->mu);
        h->backoff_ms = 100;
        etcdc__bidi_cancel(&h->stream); /* on_closed reopens it with the new token */
        return;
    }
    w->state = W_ENDED;
    etcdc_code code = auth_refusal(reason) ? ETCDC_ERR_AUTH_FAILED
                      : strstr(reason ? reason : "", "permission") ? ETCDC_ERR_PERMISSION_DENIED
                                                                   : ETCDC_ERR_CANCELED;
    etcdc__set_error(&w->create_error, code, 0, "watch refused by etcd: %s", reason ? reason : "");
    pthread_cond_broadcast(&h->cv);
    if (w->last_revision == 0)
        return; /* a first creation: etcdc_watch() reports the error to its caller */
    etcdc_watch_response r = {
        .kind = ETCDC_WATCH_CANCELED, .revision = rev, .message = reason ? reason : ""};
    deliver(h, w, &r);
}

static void handle_response(struct etcdc_watch_hub *h, Etcdserverpb__WatchResponse *m)
{
    int64_t rev = m->header ? m->header->revision : 0;
    if (m->watch_id == -1 && !m->created && !m->canceled && m->n_events == 0) {
        /* An answer to a progress request: every synced watcher is current up to rev.
         * Callbacks may cancel watchers, so walk by id rather than by list pointer. */
        int64_t id = 0;
        for (;;) {
            etcdc_watcher *next = NULL;
            for (etcdc_watcher *w = h->watchers; w; w = w->next)
                if (w->id > id && (!next || w->id < next->id))
                    next = w;
            if (!next)
                break;
            id = next->id;
            /* Delivered even when nothing changed: the answer is what proves currency. */
            if (next->state != W_ACTIVE || rev < next->last_revision)
                continue;
            next->last_revision = rev;
            etcdc_watch_response r = {.kind = ETCDC_WATCH_PROGRESS, .revision = rev};
            deliver(h, next, &r);
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    if (m->watch_id == -1 && m->created && m->canceled) {
        handle_refusal(h, m->cancel_reason, rev);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    etcdc_watcher *w = find(h, m->watch_id);
    if (!w || w->state == W_ENDED) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    if (m->created) {
        w->state = W_ACTIVE;
        w->created = true;
        h->backoff_ms = 100;
        if (w->last_revision == 0)
            w->last_revision = w->start_revision > 0 ? w->start_revision - 1 : rev;
        pthread_cond_broadcast(&h->cv);
    }
    if (m->canceled) {
        w->state = W_ENDED;
        etcdc_watch_response r = {.revision = rev};
        if (m->compact_revision > 0) {
            r.kind = ETCDC_WATCH_COMPACTED;
            r.compact_revision = m->compact_revision;
        } else {
            r.kind = ETCDC_WATCH_CANCELED;
            r.message = m->cancel_reason ? m->cancel_reason : "";
            if (!w->created)
                etcdc__set_error(&w->create_error, ETCDC_ERR_CANCELED, 0, "watch refused: %s",
                                 r.message);
        }
        pthread_cond_broadcast(&h->cv);
        deliver(h, w, &r);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    if (m->fragment) {
        if (!keep_fragment(w, m)) {
            drop_fragments(w);
            protobuf_c_message_free_unpacked(&m->base, NULL);
        }
        return;
    }
    if (w->frag_msg_count > 0) { /* the last piece (pieces without events count too) */
        if (keep_fragment(w, m)) {
            deliver_events(h, w, rev, w->frag, w->frag_count);
            drop_fragments(w);
            return;
        }
        drop_fragments(w);
    }
    if (m->n_events > 0) {
        deliver_events(h, w, rev, m->events, m->n_events);
    } else if (!m->created && rev >= w->last_revision) {
        w->last_revision = rev; /* periodic progress notification for this watcher */
        etcdc_watch_response r = {.kind = ETCDC_WATCH_PROGRESS, .revision = rev};
        deliver(h, w, &r);
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* A message arrived (bidi callback, hub->mu held). */
static void on_message(void *owner, grpc_byte_buffer *bb)
{
    struct etcdc_watch_hub *h = owner;
    Etcdserverpb__WatchResponse *m =
        (Etcdserverpb__WatchResponse *)etcdc__unpack(&etcdserverpb__watch_response__descriptor, bb);
    if (m)
        handle_response(h, m);
}

/* ---- public API ---- */

static struct etcdc_watch_hub *get_hub(etcdc_client *c, etcdc_error *err)
{
    if (!etcdc__stream_cq(c, err))
        return NULL;
    pthread_mutex_lock(&c->stream_mu);
    struct etcdc_watch_hub *h = c->watch;
    if (!h && (h = calloc(1, sizeof *h))) {
        h->client = c;
        pthread_mutex_init(&h->mu, NULL);
        pthread_cond_init(&h->cv, NULL);
        h->next_id = 1;
        h->backoff_ms = 100;
        etcdc__bidi_init(&h->stream, c, "/etcdserverpb.Watch/Watch", &h->mu, h, on_message,
                         on_closed);
        c->watch = h;
    }
    pthread_mutex_unlock(&c->stream_mu);
    if (!h)
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    return h;
}

static void free_watcher(etcdc_watcher *w)
{
    drop_fragments(w);
    free(w->key);
    free(w->range_end);
    free(w);
}

static void unlink_watcher(struct etcdc_watch_hub *h, etcdc_watcher *w)
{
    for (etcdc_watcher **p = &h->watchers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
}

static bool wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, gpr_timespec deadline)
{
    gpr_timespec rt = gpr_convert_clock_type(deadline, GPR_CLOCK_REALTIME);
    struct timespec ts = {rt.tv_sec, rt.tv_nsec};
    return pthread_cond_timedwait(cv, mu, &ts) == 0;
}

etcdc_watcher *etcdc_watch(etcdc_client *c, const etcdc_watch_opts *opts, etcdc_watch_cb cb,
                           void *arg, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (!opts || !cb || opts->key_len == 0) {
        etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "watch needs a key and a callback");
        return NULL;
    }
    if (etcdc__ctx_canceled()) {
        etcdc__set_error(err, ETCDC_ERR_CANCELED, 0,
                         "watch on '%.*s': canceled by the call context",
                         ETCDC_KEYF(opts->key, opts->key_len));
        return NULL;
    }
    struct etcdc_watch_hub *h = get_hub(c, err);
    if (!h)
        return NULL;
    etcdc_watcher *w = calloc(1, sizeof *w);
    if (!w || !(w->key = etcdc__dup_bytes(opts->key, opts->key_len)) ||
        (opts->range_end &&
         !(w->range_end = etcdc__dup_bytes(opts->range_end, opts->range_end_len)))) {
        if (w)
            free_watcher(w);
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    w->client = c;
    w->key_len = opts->key_len;
    w->range_end_len = opts->range_end ? opts->range_end_len : 0;
    w->prev_kv = opts->prev_kv;
    w->progress_notify = opts->progress_notify;
    w->no_put = opts->no_put;
    w->no_delete = opts->no_delete;
    w->start_revision = opts->start_revision;
    w->cb = cb;
    w->arg = arg;

    pthread_mutex_lock(&h->mu);
    w->id = h->next_id++;
    w->next = h->watchers;
    h->watchers = w;
    etcdc_code rc = ETCDC_OK;
    if (!etcdc__bidi_is_open(&h->stream) && !h->reconnect_scheduled)
        rc = open_stream(h, err); /* sends w's create request with the others */
    else if (etcdc__bidi_is_open(&h->stream))
        send_create(h, w);
    /* Wait for the server's confirmation so that every change after this call returns is
     * seen. Not on the engine thread: it is the one that would deliver the confirmation. */
    if (rc == ETCDC_OK && !etcdc__on_stream_thread(c)) {
        bool ctx_decides = false;
        gpr_timespec deadline =
            etcdc__ctx_clamp(etcdc__deadline_ms(c->cfg.request_timeout_ms), &ctx_decides);
        bool canceled = etcdc__ctx_canceled();
        while (!w->created && !w->create_error.code && w->state != W_ENDED && !canceled &&
               gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) < 0) {
            /* under a call context, look at it every 50 ms */
            gpr_timespec slice = etcdc__deadline_ms(50);
            wait_until(&h->cv, &h->mu,
                       etcdc__ctx_current() && gpr_time_cmp(slice, deadline) < 0 ? slice
                                                                                 : deadline);
            canceled = etcdc__ctx_canceled();
        }
        bool pending = !w->created && !w->create_error.code && w->state != W_ENDED;
        /* Same condition, same code as a unary call: no connection is UNAVAILABLE, a
         * connected member that does not answer is TIMEOUT. */
        if (pending && canceled)
            rc = etcdc__set_error(err, ETCDC_ERR_CANCELED, 0,
                                  "watch on '%.*s': canceled by the call context",
                                  ETCDC_KEYF(w->key, w->key_len));
        else if (pending && ctx_decides)
            rc = etcdc__set_error(err, ETCDC_ERR_TIMEOUT, 0,
                                  "watch on '%.*s': the deadline of the call context passed",
                                  ETCDC_KEYF(w->key, w->key_len));
        else if (pending && (!etcdc__bidi_is_open(&h->stream) || etcdc__no_endpoint_reachable(c))) {
            char cause[400];
            pthread_mutex_unlock(&h->mu); /* the probe is a unary call of its own */
            int status = etcdc__unreachable_cause(c, 0, cause, sizeof cause);
            pthread_mutex_lock(&h->mu);
            rc = etcdc__set_error(err, ETCDC_ERR_UNAVAILABLE, status,
                                  "watch on '%.*s': no etcd endpoint reachable within %lld ms "
                                  "(endpoints %s): %s",
                                  ETCDC_KEYF(w->key, w->key_len),
                                  (long long)c->cfg.request_timeout_ms, c->cfg.endpoints, cause);
        } else if (pending)
            rc = etcdc__set_error(
                err, ETCDC_ERR_TIMEOUT, 0, "watch on '%.*s' not confirmed by etcd within %lld ms",
                ETCDC_KEYF(w->key, w->key_len), (long long)c->cfg.request_timeout_ms);
        else if (w->create_error.code) {
            rc = w->create_error.code;
            if (err)
                *err = w->create_error;
        }
    }
    if (rc != ETCDC_OK) {
        unlink_watcher(h, w);
        if (w->created)
            etcdc__bidi_send(&h->stream, cancel_request(w->id));
        pthread_mutex_unlock(&h->mu);
        free_watcher(w);
        return NULL;
    }
    pthread_mutex_unlock(&h->mu);
    return w;
}

etcdc_watcher *etcdc_watch_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                                  int64_t start_revision, bool prev_kv, etcdc_watch_cb cb,
                                  void *arg, etcdc_error *err)
{
    etcdc__clear_error(err);
    char *end = malloc(prefix_len + 1);
    if (!end) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    size_t end_len = etcdc_prefix_end(prefix, prefix_len, end);
    etcdc_watch_opts o = {.key = prefix_len ? prefix : "\0",
                          .key_len = prefix_len ? prefix_len : 1,
                          .range_end = end_len ? end : "\0",
                          .range_end_len = end_len ? end_len : 1,
                          .start_revision = start_revision,
                          .prev_kv = prev_kv};
    etcdc_watcher *w = etcdc_watch(c, &o, cb, arg, err);
    free(end);
    return w;
}

etcdc_code etcdc_watch_request_progress(etcdc_client *c, etcdc_error *err)
{
    etcdc__clear_error(err);
    struct etcdc_watch_hub *h = get_hub(c, err);
    if (!h)
        return err ? err->code : ETCDC_ERR_NO_MEMORY;
    pthread_mutex_lock(&h->mu);
    etcdc_code rc = ETCDC_OK;
    if (etcdc__bidi_is_open(&h->stream))
        etcdc__bidi_send(&h->stream, progress_request());
    else
        rc = etcdc__set_error(err, ETCDC_ERR_UNAVAILABLE, 0, "watch stream is not connected");
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void etcdc_watch_cancel(etcdc_watcher *w)
{
    if (!w)
        return;
    struct etcdc_watch_hub *h = w->client->watch;
    pthread_mutex_lock(&h->mu);
    unlink_watcher(h, w);
    while (h->delivering == w)
        pthread_cond_wait(&h->cv, &h->mu);
    if (w->state == W_ACTIVE)
        etcdc__bidi_send(&h->stream, cancel_request(w->id));
    pthread_mutex_unlock(&h->mu);
    free_watcher(w);
}

int64_t etcdc_watch_revision(const etcdc_watcher *w)
{
    struct etcdc_watch_hub *h = w->client->watch;
    pthread_mutex_lock(&h->mu);
    int64_t rev = w->last_revision;
    pthread_mutex_unlock(&h->mu);
    return rev;
}

uint64_t etcdc_watch_stream_ready(etcdc_client *c)
{
    pthread_mutex_lock(&c->stream_mu);
    struct etcdc_watch_hub *h = c->watch;
    pthread_mutex_unlock(&c->stream_mu);
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    bool ready = etcdc__bidi_is_open(&h->stream);
    for (etcdc_watcher *w = h->watchers; ready && w; w = w->next)
        ready = w->state == W_ENDED || (w->state == W_ACTIVE && w->created);
    uint64_t number = ready ? h->stream_number : 0;
    pthread_mutex_unlock(&h->mu);
    return number;
}

void etcdc__watch_hub_stop(etcdc_client *c)
{
    struct etcdc_watch_hub *h = c->watch;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopped = true;
    etcdc__bidi_cancel(&h->stream);
    pthread_mutex_unlock(&h->mu);
}

void etcdc__watch_hub_free(etcdc_client *c)
{
    struct etcdc_watch_hub *h = c->watch;
    if (!h)
        return;
    while (h->watchers) {
        etcdc_watcher *w = h->watchers;
        h->watchers = w->next;
        free_watcher(w);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    c->watch = NULL;
}
