/*
 * internal.h - shared between the files of libetcdc; not installed.
 *
 * The client owns one gRPC channel. Unary calls (transport.c) use a completion queue of their
 * own per call, so any number of threads can call at once. Long-lived streams (Watch,
 * LeaseKeepAlive) are served by one stream thread (stream.c) that owns a "next" queue.
 */
#ifndef ETCDC_INTERNAL_H
#define ETCDC_INTERNAL_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>

#include "etcdc.h"
#include "rpc.pb-c.h"

#define ETCDC_MAX_KEYS 16

struct etcdc_config {
    char *endpoints;
    char *user;
    char *password;
    int64_t dial_timeout_ms;
    int64_t request_timeout_ms;
    int64_t keepalive_time_ms;
    int64_t keepalive_timeout_ms;
    size_t max_send_bytes;
    size_t max_recv_bytes;
    bool tls;
    char *ca_file, *cert_file, *key_file, *server_name;
    bool insecure_skip_verify;
    struct {
        uint8_t id;
        uint8_t bytes[32];
    } keys[ETCDC_MAX_KEYS];
    size_t key_count;
    bool allow_plaintext; /* migration: accept unsealed values while encryption is on */
};

struct etcdc_stream_engine; /* stream.c */
struct etcdc_watch_hub;     /* watch.c */
struct etcdc_lease_hub;     /* lease.c */

struct etcdc_client {
    etcdc_config cfg; /* deep copy, immutable after creation */
    grpc_channel *channel;

    pthread_mutex_t reauth_mu; /* serialises authentications (held during the RPC) */
    pthread_mutex_t auth_mu;   /* protects token and auth_gen (held briefly) */
    char *token;               /* NULL when auth is off */
    uint64_t auth_gen;         /* bumped on every (re)authentication */

    pthread_mutex_t stats_mu; /* protects stats */
    etcdc_stats stats;

    pthread_mutex_t stream_mu; /* protects creation of the engine and hubs below */
    struct etcdc_stream_engine *engine;
    struct etcdc_watch_hub *watch;
    struct etcdc_lease_hub *lease;

    pthread_mutex_t closing_mu; /* protects closing; closing_cv wakes retry back-offs */
    pthread_cond_t closing_cv;
    bool closing;
};

/* ---- errors (error.c) ---- */
etcdc_code etcdc__set_error(etcdc_error *err, etcdc_code code, int grpc_status, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));
/* ---- per-call context (context.c): the etcdc_ctx bound to the calling thread, if any ---- */
/* A unary call in flight under a context, so that a cancel can reach it; lives on the caller's
 * stack for the duration of the call. */
struct etcdc__ctx_call {
    grpc_call *call;
    struct etcdc__ctx_call *next;
};
etcdc_ctx *etcdc__ctx_current(void);
bool etcdc__ctx_canceled(void);
/* The earlier of deadline and the context's; *ctx_decides (may be NULL) says which. */
gpr_timespec etcdc__ctx_clamp(gpr_timespec deadline, bool *ctx_decides);
/* Fired when the context is canceled; NULL without a context. For lock waits. */
etcdc_cancel *etcdc__ctx_lock_token(void);
/* false: the context is already canceled (the call must not go on). */
bool etcdc__ctx_register(struct etcdc__ctx_call *k, grpc_call *call);
void etcdc__ctx_unregister(struct etcdc__ctx_call *k);

/* The client a session (lock.c) was made with. */
etcdc_client *etcdc__session_client(const etcdc_session *s);

/* printf arguments for a key in an error message ("%.*s"): at most 200 bytes of it. */
#define ETCDC_KEYF(k, n) (int)((n) > 200 ? 200 : (n)), (const char *)(k)
/* Every public call that takes an etcdc_error starts with this: a success leaves no trace of an
 * earlier failure in the caller's struct. */
void etcdc__clear_error(etcdc_error *err);
/* A multi-key read that succeeded although some values did not open: the code says OK, the
 * message (set while converting) still names the key and why, for the caller's log. */
etcdc_code etcdc__ok_with_note(etcdc_error *err, etcdc_code rc);
etcdc_code etcdc__code_from_status(int grpc_status, const char *message);

/* ---- transport (transport.c) ---- */
enum etcdc_retry_class {
    ETCDC_RETRY_IDEMPOTENT, /* reads: retry on any UNAVAILABLE and after an attempt's own
                             * timeout (a third of the request timeout) */
    ETCDC_RETRY_WRITE,      /* puts, deletes, resend-safe txns: retry on any UNAVAILABLE (the
                             * connection broke), never after a timed-out attempt, which may
                             * still land later, after what follows it */
    ETCDC_RETRY_UNSENT,     /* guarded writes: retry only when the request was surely not sent */
};
enum etcdc_stat_kind {
    ETCDC_STAT_RANGE,
    ETCDC_STAT_PUT,
    ETCDC_STAT_DELETE,
    ETCDC_STAT_TXN,
    ETCDC_STAT_COMPACT,
    ETCDC_STAT_LEASE,
    ETCDC_STAT_WATCH,
    ETCDC_STAT_STATUS,
    ETCDC_STAT_AUTH,
};
/* One unary RPC with deadline, auth token and retries. On ETCDC_OK *resp is an unpacked message
 * of resp_desc that the caller frees with protobuf_c_message_free_unpacked(*resp, NULL). */
etcdc_code etcdc__unary(etcdc_client *c, const char *method, enum etcdc_stat_kind kind,
                        enum etcdc_retry_class retry, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                        etcdc_error *err);
/* The same with a timeout of its own, and fail_fast: fail at once when no connection is ready
 * instead of waiting for one (to learn why a connection cannot be made). */
/* A call whose answer says nothing but "done" (counted with the status requests). */
etcdc_code etcdc__unary_ack(etcdc_client *c, const char *method, enum etcdc_retry_class retry,
                            const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *resp_desc, etcdc_error *err);
etcdc_code etcdc__unary_ex(etcdc_client *c, const char *method, enum etcdc_stat_kind kind,
                           enum etcdc_retry_class retry, bool fail_fast, int64_t timeout_ms,
                           const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                           ProtobufCMessage **resp, etcdc_error *err);
/* Metadata for a new call: fills md (capacity 2) with the current token (and hasleader when
 * asked), returns the count. *token_copy must be gpr_free'd by the caller after the batch. */
size_t etcdc__call_metadata(etcdc_client *c, grpc_metadata *md, bool has_leader, char **token_copy);
/* Authenticate again after etcd said the token is invalid. gen is the auth_gen seen by the
 * failed call, so that many threads failing at once authenticate only once. */
etcdc_code etcdc__reauthenticate(etcdc_client *c, uint64_t gen, etcdc_error *err);
uint64_t etcdc__auth_gen(etcdc_client *c);
void etcdc__count(etcdc_client *c, enum etcdc_stat_kind kind);
gpr_timespec etcdc__deadline_ms(int64_t ms);
/* The channel is in TRANSIENT_FAILURE: no endpoint accepts a connection (etcd down or cut off),
 * as opposed to a member too slow to answer. */
bool etcdc__no_endpoint_reachable(etcdc_client *c);
/* Why no endpoint is reachable, in gRPC's words, from one fail-fast probe of at most probe_ms
 * (200..1000). Writes it to cause and returns the probe's gRPC status. */
int etcdc__unreachable_cause(etcdc_client *c, int64_t probe_ms, char *cause, size_t n);
/* grpc_log.c: takes gRPC's log over (once per process). */
void etcdc__grpc_log_install(void);
/* The reason of a TLS failure gRPC logged within the last within_ms milliseconds. */
bool etcdc__recent_tls_failure(int64_t within_ms, char *out, size_t n);
grpc_byte_buffer *etcdc__pack(const ProtobufCMessage *msg);
/* NULL when bb does not decode as desc, or nests messages more than 512 deep (transport.c). */
ProtobufCMessage *etcdc__unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb);
/* Waits up to ms, waking early (returning true) when the client is closing or the call context
 * of the calling thread is canceled. */
bool etcdc__wait_or_closing(etcdc_client *c, int64_t ms);

/* ---- conversions (convert.c) ---- */
char *etcdc__dup_bytes(const void *p, size_t n);
etcdc_code etcdc__kv_from_pb(etcdc_client *c, const Mvccpb__KeyValue *pb, etcdc_kv *out,
                             etcdc_error *err);
etcdc_code etcdc__kvs_append(etcdc_client *c, etcdc_kvs *out, Mvccpb__KeyValue **pbs, size_t n,
                             etcdc_error *err);

/* ---- kv helpers (kv.c) ---- */
void etcdc__range_to_pb(const etcdc_range_req *r, Etcdserverpb__RangeRequest *pb);
/* A Range whose values are returned as stored (not opened). */
etcdc_code etcdc__range_raw(etcdc_client *c, const etcdc_range_req *req,
                            Etcdserverpb__RangeResponse **resp, etcdc_error *err);
etcdc_code etcdc__kvs_from_range(etcdc_client *c, const Etcdserverpb__RangeResponse *resp,
                                 etcdc_kvs *out, etcdc_error *err);

/* ---- txn (txn.c) ---- */
/* Puts of this txn store values unsealed even with encryption on. */
void etcdc__txn_set_raw(etcdc_txn *t);
/* Converts a decoded TxnResponse (nested txns included) into out, which the caller frees with
 * etcdc_txn_result_clear on success and failure alike. Not static so that the fuzz target
 * tests/fuzz/fuzz_response.c can feed it arbitrary server answers. */
etcdc_code etcdc__txn_result_from_pb(etcdc_client *c, const Etcdserverpb__TxnResponse *resp,
                                     etcdc_txn_result *out, etcdc_error *err);

/* ---- config copy (config.c) ---- */
etcdc_code etcdc__config_copy(etcdc_config *dst, const etcdc_config *src);
void etcdc__config_clear(etcdc_config *cfg);

/* ---- streams (stream.c) ---- */
/* A stream event handler: ok is the grpc op success flag. */
typedef void (*etcdc_stream_handler)(void *arg, bool ok);
typedef struct etcdc_stream_tag {
    etcdc_stream_handler fn;
    void *arg;
} etcdc_stream_tag;
/* Starts the engine on first use; returns its completion queue (NULL when closing). */
grpc_completion_queue *etcdc__stream_cq(etcdc_client *c, etcdc_error *err);
/* Runs fn(arg) on the stream thread as soon as possible (or after delay_ms). */
etcdc_code etcdc__stream_post(etcdc_client *c, int64_t delay_ms, etcdc_stream_handler fn,
                              void *arg);
bool etcdc__on_stream_thread(etcdc_client *c);
void etcdc__stream_shutdown(etcdc_client *c);
/* Streams count themselves live from creation until their final status has been handled, so
 * the engine shuts its queue down only when nothing can complete on it any more. */
void etcdc__stream_call_started(etcdc_client *c);
void etcdc__stream_call_ended(etcdc_client *c);
bool etcdc__stream_stopping(etcdc_client *c);

/* ---- hubs: stop cancels their calls (any thread); free runs after the engine thread ended */
void etcdc__watch_hub_stop(etcdc_client *c);
void etcdc__watch_hub_free(etcdc_client *c);
void etcdc__lease_hub_stop(etcdc_client *c);
void etcdc__lease_hub_free(etcdc_client *c);

#endif
