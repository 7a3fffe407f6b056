/*
 * transport.c - one unary etcd RPC: pack, send with the auth token and a deadline, unpack,
 * map the status, and retry what is safe to retry within the request timeout.
 *
 * Each call uses a pluck completion queue of its own, so any number of threads can call at once
 * without sharing a queue (gRPC allows only a few concurrent pluckers per queue).
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

gpr_timespec etcdc__deadline_ms(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

grpc_byte_buffer *etcdc__pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* protobuf-c unpacks nested messages by recursion, with no depth limit: a broken or hostile
 * server could crash the client (stack overflow) with a 150 KB TxnResponse whose transactions
 * nest 20000 levels deep (found while fuzzing: tests/fuzz/fuzz_response.c). Answers nested
 * deeper than any request of ours can cause are refused before protobuf-c sees them: a txn
 * nests at most etcdc_max_txn_ops() (128) levels, two messages each. */
#define MAX_NESTING 512

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* Walks the wire format (without a recursion of its own) and answers whether the messages it
 * holds nest at most MAX_NESTING deep. Anything malformed is left to protobuf-c to refuse. */
static bool nesting_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len)
{
    struct {
        const ProtobufCMessageDescriptor *desc;
        const uint8_t *end;
    } outer[MAX_NESTING];
    size_t depth = 0;
    const uint8_t *end = p + len;
    for (;;) {
        if (p == end) {
            if (depth == 0)
                return true;
            depth--; /* the submessage ended: its parent goes on from here */
            desc = outer[depth].desc;
            end = outer[depth].end;
            continue;
        }
        uint64_t tag, n;
        if (!read_varint(&p, end, &tag))
            return true;
        switch (tag & 7) {
        case 0:
            if (!read_varint(&p, end, &n))
                return true;
            break;
        case 1:
        case 5: {
            size_t size = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - p) < size)
                return true;
            p += size;
            break;
        }
        case 2: {
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return true;
            const ProtobufCFieldDescriptor *f =
                tag >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth == MAX_NESTING)
                    return false;
                outer[depth].desc = desc;
                outer[depth].end = end;
                depth++;
                desc = f->descriptor;
                end = p + n;
            } else {
                p += n;
            }
            break;
        }
        default: return true; /* groups and invalid wire types: protobuf-c decides */
        }
    }
}

ProtobufCMessage *etcdc__unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *msg = NULL;
    if (nesting_ok(desc, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all)))
        msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all),
                                        GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return msg;
}

/* Per thread, for callers that attribute round trips to their own operations. */
static __thread uint64_t thread_round_trips;

uint64_t etcdc_thread_round_trips(void)
{
    return thread_round_trips;
}

void etcdc__count(etcdc_client *c, enum etcdc_stat_kind kind)
{
    thread_round_trips++;
    pthread_mutex_lock(&c->stats_mu);
    switch (kind) {
    case ETCDC_STAT_RANGE: c->stats.range++; break;
    case ETCDC_STAT_PUT: c->stats.put++; break;
    case ETCDC_STAT_DELETE: c->stats.delete_range++; break;
    case ETCDC_STAT_TXN: c->stats.txn++; break;
    case ETCDC_STAT_COMPACT: c->stats.compact++; break;
    case ETCDC_STAT_LEASE: c->stats.lease++; break;
    case ETCDC_STAT_WATCH: c->stats.watch_create++; break;
    case ETCDC_STAT_STATUS: c->stats.status++; break;
    case ETCDC_STAT_AUTH: c->stats.auth++; break;
    }
    pthread_mutex_unlock(&c->stats_mu);
}

static void count_retry(etcdc_client *c)
{
    pthread_mutex_lock(&c->stats_mu);
    c->stats.retries++;
    pthread_mutex_unlock(&c->stats_mu);
}

size_t etcdc__call_metadata(etcdc_client *c, grpc_metadata *md, bool has_leader, char **token_copy)
{
    size_t n = 0;
    *token_copy = NULL;
    pthread_mutex_lock(&c->auth_mu);
    if (c->token && *c->token) { /* "": authentication is off on the cluster */
        size_t len = strlen(c->token);
        *token_copy = gpr_malloc(len + 1);
        memcpy(*token_copy, c->token, len + 1);
    }
    pthread_mutex_unlock(&c->auth_mu);
    if (*token_copy) {
        memset(&md[n], 0, sizeof md[n]);
        md[n].key = grpc_slice_from_static_string("token");
        md[n].value = grpc_slice_from_static_string(*token_copy);
        n++;
    }
    if (has_leader) {
        memset(&md[n], 0, sizeof md[n]);
        md[n].key = grpc_slice_from_static_string("hasleader");
        md[n].value = grpc_slice_from_static_string("true");
        n++;
    }
    return n;
}

uint64_t etcdc__auth_gen(etcdc_client *c)
{
    pthread_mutex_lock(&c->auth_mu);
    uint64_t gen = c->auth_gen;
    pthread_mutex_unlock(&c->auth_mu);
    return gen;
}

bool etcdc__wait_or_closing(etcdc_client *c, int64_t ms)
{
    /* With a call context bound, wake every 50 ms to see whether it was canceled. */
    gpr_timespec end = gpr_convert_clock_type(etcdc__deadline_ms(ms), GPR_CLOCK_REALTIME);
    bool closing = false;
    pthread_mutex_lock(&c->closing_mu);
    while (!closing && !etcdc__ctx_canceled()) {
        gpr_timespec slice = etcdc__ctx_current() ? gpr_convert_clock_type(etcdc__deadline_ms(50),
                                                                           GPR_CLOCK_REALTIME)
                                                  : end;
        gpr_timespec until = gpr_time_cmp(slice, end) < 0 ? slice : end;
        struct timespec ts = {until.tv_sec, until.tv_nsec};
        int r = pthread_cond_timedwait(&c->closing_cv, &c->closing_mu, &ts);
        closing = c->closing;
        if (r != 0 && gpr_time_cmp(until, end) >= 0)
            break; /* the whole wait is over */
    }
    pthread_mutex_unlock(&c->closing_mu);
    return closing || etcdc__ctx_canceled();
}

typedef struct call_outcome {
    grpc_status_code status;
    char message[300];
    grpc_byte_buffer *response;
} call_outcome;

/* One attempt: a single batch with every op of a unary call, plucked on a private queue. */
static void call_once(etcdc_client *c, const char *method, bool send_token, bool fail_fast,
                      grpc_byte_buffer *request, gpr_timespec deadline, call_outcome *out)
{
    memset(out, 0, sizeof *out);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call =
        grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(method), NULL, deadline, NULL);
    struct etcdc__ctx_call in_ctx;
    if (!etcdc__ctx_register(&in_ctx, call))
        grpc_call_cancel(call, NULL); /* canceled already: the batch ends at once */
    grpc_metadata md[2];
    char *token = NULL;
    size_t md_count = send_token ? etcdc__call_metadata(c, md, false, &token) : 0;
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = md_count;
    ops[0].data.send_initial_metadata.metadata = md;
    /* Wait for a ready connection rather than failing at once: while this thread plucks, it
     * also drives the reconnection (gRPC makes progress on connections only while someone
     * polls), and it only delays sending, so it is safe for guarded writes too. The attempt
     * deadline bounds the wait. */
    ops[0].flags = fail_fast ? 0
                             : GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                                   GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &out->response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &out->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    grpc_call_error ce = grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
    if (ce == GRPC_CALL_OK) {
        grpc_event ev =
            grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        (void)ev; /* the status op always completes; its fields say what happened */
        char *d = grpc_slice_to_c_string(details);
        snprintf(out->message, sizeof out->message, "%s", d && *d ? d : "");
        gpr_free(d);
    } else {
        out->status = GRPC_STATUS_INTERNAL;
        snprintf(out->message, sizeof out->message, "grpc_call_start_batch: %d", (int)ce);
    }
    if (out->status != GRPC_STATUS_OK && out->response) {
        grpc_byte_buffer_destroy(out->response);
        out->response = NULL;
    }
    grpc_slice_unref(details);
    gpr_free((void *)error_string);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    gpr_free(token);
    etcdc__ctx_unregister(&in_ctx);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Whether an UNAVAILABLE answer proves the request was not applied (so even a guarded write
 * may be sent again): no connection was made, or etcd refused before proposing it. */
static bool surely_unsent(const char *message)
{
    static const char *const patterns[] = {
        "failed to connect",           "Connection refused",    "no leader",
        "connections to all backends", "DNS resolution failed", "Failed to pick subchannel",
        "empty address list",
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (strstr(message, patterns[i]))
            return true;
    return false;
}

/* etcd says "invalid auth token" for an unknown token, "user name is empty" when a simple token
 * has expired (or none was sent), and "revision of auth store is old" when users, roles or
 * permissions changed after the token was issued: all mean "authenticate again". */
static bool token_rejected(const call_outcome *o)
{
    return (o->status == GRPC_STATUS_UNAUTHENTICATED && strstr(o->message, "invalid auth token")) ||
           (o->status == GRPC_STATUS_INVALID_ARGUMENT &&
            strstr(o->message, "user name is empty")) ||
           /* permissions changed since the token was issued (etcd's ErrAuthOldRevision) */
           (o->status == GRPC_STATUS_INVALID_ARGUMENT &&
            strstr(o->message, "revision of auth store is old"));
}

static bool should_retry(enum etcdc_retry_class retry, const call_outcome *o)
{
    switch (retry) {
    case ETCDC_RETRY_IDEMPOTENT:
        return o->status == GRPC_STATUS_UNAVAILABLE || o->status == GRPC_STATUS_DEADLINE_EXCEEDED;
    case ETCDC_RETRY_WRITE: return o->status == GRPC_STATUS_UNAVAILABLE;
    case ETCDC_RETRY_UNSENT:
    default: return o->status == GRPC_STATUS_UNAVAILABLE && surely_unsent(o->message);
    }
}

/* The deadline of one attempt. A request sent to a member whose proposal died with a killed
 * leader gets no answer until etcd's own timeout (about 7 s), longer than a whole request
 * timeout: reads therefore give each attempt a third of the request timeout (at least a second)
 * and try again, usually on another member. Writes keep the whole deadline: an attempt that
 * timed out may still be held by a paused member, which handles it as new when it resumes, after
 * whatever the caller did next. */
static gpr_timespec attempt_deadline(etcdc_client *c, enum etcdc_retry_class retry,
                                     gpr_timespec deadline)
{
    if (retry != ETCDC_RETRY_IDEMPOTENT)
        return deadline;
    int64_t slice = c->cfg.request_timeout_ms / 3;
    gpr_timespec t = etcdc__deadline_ms(slice < 1000 ? 1000 : slice);
    return gpr_time_cmp(t, deadline) < 0 ? t : deadline;
}

/* Requests wait for a connection (wait-for-ready), so that a failover delays them instead of
 * failing them. A deadline that passes while no endpoint accepts a connection at all therefore
 * means an unreachable cluster (UNAVAILABLE), not a member too slow to answer (TIMEOUT). */
bool etcdc__no_endpoint_reachable(etcdc_client *c)
{
    return grpc_channel_check_connectivity_state(c->channel, 0) == GRPC_CHANNEL_TRANSIENT_FAILURE;
}

int etcdc__unreachable_cause(etcdc_client *c, int64_t probe_ms, char *cause, size_t n)
{
    /* A fail-fast call is refused at once while no connection is up, with gRPC's own reason
     * (refused, no route, TLS handshake failure, ...); waiting calls only see their deadline. */
    Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
    grpc_byte_buffer *request = etcdc__pack(&req.base);
    probe_ms = probe_ms < 200 ? 200 : probe_ms > 1000 ? 1000 : probe_ms;
    call_outcome o;
    call_once(c, "/etcdserverpb.Maintenance/Status", false, true, request,
              etcdc__deadline_ms(probe_ms), &o);
    grpc_byte_buffer_destroy(request);
    if (o.response)
        grpc_byte_buffer_destroy(o.response);
    const char *why = o.status == GRPC_STATUS_OK ? "the endpoint answers again"
                      : o.message[0]             ? o.message
                                                 : "no answer";
    static const char *const noise[] = {"connections to all backends failing; last error: ",
                                        "UNKNOWN: "};
    for (size_t i = 0; i < sizeof noise / sizeof noise[0]; i++)
        if (strncmp(why, noise[i], strlen(noise[i])) == 0)
            why += strlen(noise[i]);
    /* A refused handshake reaches the call as a closed connection; gRPC logged the reason. The
     * log is the process's: a reason newer than this client's dial timeout may belong to
     * another client, so only recent ones are taken. */
    char tls[200];
    if (o.status != GRPC_STATUS_OK && c->cfg.tls &&
        etcdc__recent_tls_failure(c->cfg.dial_timeout_ms + probe_ms, tls, sizeof tls))
        snprintf(cause, n, "TLS handshake failed: %s (%s)", tls, why);
    else
        snprintf(cause, n, "%s", why);
    return (int)o.status;
}

static int64_t ms_left(gpr_timespec deadline)
{
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(GPR_CLOCK_MONOTONIC));
    return gpr_time_to_millis(left);
}

etcdc_code etcdc__unary(etcdc_client *c, const char *method, enum etcdc_stat_kind kind,
                        enum etcdc_retry_class retry, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                        etcdc_error *err)
{
    return etcdc__unary_ex(c, method, kind, retry, false, c->cfg.request_timeout_ms, req, resp_desc,
                           resp, err);
}

etcdc_code etcdc__unary_ack(etcdc_client *c, const char *method, enum etcdc_retry_class retry,
                            const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *resp_desc, etcdc_error *err)
{
    ProtobufCMessage *resp = NULL;
    etcdc_code rc = etcdc__unary(c, method, ETCDC_STAT_STATUS, retry, req, resp_desc, &resp, err);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

etcdc_code etcdc__unary_ex(etcdc_client *c, const char *method, enum etcdc_stat_kind kind,
                           enum etcdc_retry_class retry, bool fail_fast, int64_t timeout_ms,
                           const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                           ProtobufCMessage **resp, etcdc_error *err)
{
    *resp = NULL;
    size_t packed = protobuf_c_message_get_packed_size(req);
    if (packed > c->cfg.max_send_bytes)
        return etcdc__set_error(err, ETCDC_ERR_TOO_LARGE, 0,
                                "request of %zu bytes exceeds the client's send limit of %zu",
                                packed, c->cfg.max_send_bytes);
    if (etcdc__ctx_canceled())
        return etcdc__set_error(err, ETCDC_ERR_CANCELED, 0, "%s: canceled by the call context",
                                method);
    bool ctx_decides = false;
    gpr_timespec deadline = etcdc__ctx_clamp(etcdc__deadline_ms(timeout_ms), &ctx_decides);
    /* gRPC takes the contents of a sent byte buffer: each attempt gets a new buffer over the
     * same packed bytes. */
    grpc_slice packed_req = grpc_slice_malloc(packed);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(packed_req));
    int64_t backoff_ms = 25;
    bool reauthenticated = false;
    etcdc_code rc;
    for (;;) {
        uint64_t gen = etcdc__auth_gen(c);
        call_outcome o;
        etcdc__count(c, kind);
        grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&packed_req, 1);
        /* Authenticate itself never carries a token (an old one could be refused). */
        call_once(c, method, kind != ETCDC_STAT_AUTH, fail_fast, request,
                  attempt_deadline(c, retry, deadline), &o);
        grpc_byte_buffer_destroy(request);
        if (o.status == GRPC_STATUS_OK) {
            *resp = etcdc__unpack(resp_desc, o.response);
            grpc_byte_buffer_destroy(o.response);
            rc = *resp ? ETCDC_OK
                       : etcdc__set_error(err, ETCDC_ERR_INTERNAL, 0,
                                          "%s: could not decode the response", method);
            break;
        }
        if (!reauthenticated && c->cfg.user && token_rejected(&o)) {
            reauthenticated = true;
            rc = etcdc__reauthenticate(c, gen, err);
            if (rc != ETCDC_OK)
                break;
            count_retry(c);
            continue;
        }
        int64_t left = ms_left(deadline);
        if (should_retry(retry, &o) && left > backoff_ms) {
            count_retry(c);
            if (etcdc__wait_or_closing(c, backoff_ms)) {
                rc = etcdc__set_error(err, ETCDC_ERR_CANCELED, 0, "%s: %s", method,
                                      etcdc__ctx_canceled() ? "canceled by the call context"
                                                            : "client is closing");
                break;
            }
            backoff_ms = backoff_ms * 2 > 500 ? 500 : backoff_ms * 2;
            continue;
        }
        rc = etcdc__code_from_status(o.status, o.message);
        if (rc == ETCDC_ERR_CANCELED && etcdc__ctx_canceled())
            etcdc__set_error(err, rc, o.status, "%s: canceled by the call context", method);
        else if (rc == ETCDC_ERR_TIMEOUT && ctx_decides)
            etcdc__set_error(err, rc, o.status, "%s: the deadline of the call context passed",
                             method);
        else if (rc == ETCDC_ERR_TIMEOUT && !fail_fast && etcdc__no_endpoint_reachable(c)) {
            char cause[400];
            etcdc__unreachable_cause(c, 0, cause, sizeof cause);
            rc = etcdc__set_error(err, ETCDC_ERR_UNAVAILABLE, o.status,
                                  "%s: no etcd endpoint reachable within %lld ms (endpoints %s): "
                                  "%s",
                                  method, (long long)timeout_ms, c->cfg.endpoints, cause);
        } else if (rc == ETCDC_ERR_TIMEOUT || (rc == ETCDC_ERR_UNAVAILABLE && left <= backoff_ms))
            etcdc__set_error(err, rc, o.status, "%s: no answer within %lld ms (%s)", method,
                             (long long)timeout_ms, o.message[0] ? o.message : "deadline exceeded");
        else
            etcdc__set_error(err, rc, o.status, "%s: %s", method,
                             o.message[0] ? o.message : etcdc_strerror(rc));
        break;
    }
    grpc_slice_unref(packed_req);
    return rc;
}
