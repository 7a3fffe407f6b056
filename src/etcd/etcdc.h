/*
 * etcdc.h - a plain-C client for etcd v3 (gRPC C core + protobuf-c + OpenSSL).
 *
 * This is the whole public interface of libetcdc. It covers what a user of a good etcd client
 * expects: key/value and prefix operations, ranges and historical revisions, transactions,
 * compare-and-swap, atomic move, bulk put/delete, watches, leases with keep-alive, distributed
 * locks, cluster status and member list, compaction, TLS and user/password authentication.
 *
 * Conventions
 * - Keys and values are byte strings: every key and value is passed as pointer + length and may
 *   contain any byte. Results are NUL-terminated as a convenience (the terminator is not counted
 *   in the length).
 * - Every call that talks to etcd returns an etcdc_code (ETCDC_OK == 0) and, when `err` is not
 *   NULL, fills it with the code, the gRPC status and a message naming the operation and key (or
 *   endpoints) and the cause. `err` may be NULL. A call that succeeds sets err->code to ETCDC_OK
 *   and clears the message, so nothing of an earlier failure remains; the one exception is a
 *   multi-key read with entries whose value did not open (value_error), where the message
 *   names one such key and why while the code is ETCDC_OK.
 * - Releasing memory, one rule: etcdc_X_free(p) frees an object the library allocated and
 *   returned by pointer (client, config, txn, session, lock, cancel token; a watcher and a
 *   keep-alive are stopped and freed by etcdc_watch_cancel / etcdc_keepalive_stop);
 *   etcdc_X_clear(&s) frees what the library put into a struct the caller owns (etcdc_kv,
 *   etcdc_kvs, etcdc_txn_result, etcdc_members, etcdc_leases, etcdc_alarms, etcdc_names) and
 *   zeroes it, leaving the struct reusable. Both accept NULL. On failure, result structs are
 *   left empty (safe to clear).
 * - One client may be used by any number of threads at once. Callbacks (watch, keep-alive,
 *   session loss) run on the client's stream thread: they must not block and must not call
 *   etcdc_watch_cancel / etcdc_keepalive_stop for their own handle.
 * - gRPC is initialised when the first client is created: in a program that forks (daemonizes),
 *   create clients only after the fork.
 */
#ifndef ETCDC_H
#define ETCDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Only the functions declared here are exported from the shared library. */
#pragma GCC visibility push(default)

#define ETCDC_VERSION "0.2.0"

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum etcdc_code {
    ETCDC_OK = 0,
    ETCDC_ERR_NOT_FOUND,         /* key, lease or member does not exist */
    ETCDC_ERR_COMPARE_FAILED,    /* a guarded operation (CAS, put-if-absent, move) lost */
    ETCDC_ERR_TIMEOUT,           /* the request deadline passed */
    ETCDC_ERR_UNAVAILABLE,       /* no healthy endpoint / no leader, after retries */
    ETCDC_ERR_PERMISSION_DENIED, /* RBAC denied the operation */
    ETCDC_ERR_AUTH_FAILED,       /* wrong user name or password, or not authenticated */
    ETCDC_ERR_TOO_LARGE,         /* request or value larger than etcd (or the client) accepts */
    ETCDC_ERR_NO_SPACE,          /* etcd's database quota is exhausted */
    ETCDC_ERR_COMPACTED,         /* the requested revision was compacted */
    ETCDC_ERR_FUTURE_REVISION,   /* the requested revision is newer than the store */
    ETCDC_ERR_CANCELED,          /* the call was canceled (client shutdown, lock interrupted) */
    ETCDC_ERR_INVALID_ARGUMENT,  /* bad parameter, detected by the client or the server */
    ETCDC_ERR_TOO_MANY_OPS,      /* a transaction exceeds etcd's operation limit */
    ETCDC_ERR_TLS,               /* certificate or key could not be loaded */
    ETCDC_ERR_NO_MEMORY,
    ETCDC_ERR_CRYPTO,        /* a value failed decryption or authentication */
    ETCDC_ERR_LEASE_EXPIRED, /* a lease or session needed by the operation is gone */
    ETCDC_ERR_INTERNAL,      /* anything else the server or transport reported */
    ETCDC_ERR_WOULD_BLOCK,   /* a lock is held by someone else and no wait was asked */
    ETCDC_ERR_NOT_LEADER,    /* proclaim by a candidate that is not (or no longer) the leader */
    ETCDC_ERR_IO,            /* a local file could not be written (snapshot save) */
} etcdc_code;

/* Error details filled by calls that take an `etcdc_error *`. */
typedef struct etcdc_error {
    etcdc_code code;
    int grpc_status; /* grpc_status_code, 0 when the error was detected locally */
    char message[512];
} etcdc_error;

/* Short, stable, human-readable name of a code ("not found", "compare failed", ...). */
const char *etcdc_strerror(etcdc_code code);

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_config etcdc_config;

/* A configuration with the defaults: endpoint 127.0.0.1:2379, dial timeout 5 s, request
 * timeout 5 s, keep-alive 30 s / 10 s, 2 MiB send limit, 64 MiB receive limit (one watch
 * response carries a revision's events whole), plain TCP, no auth.
 * Returns NULL only when out of memory. */
etcdc_config *etcdc_config_new(void);
/* Frees the config; the password and key material are wiped. */
void etcdc_config_free(etcdc_config *cfg);

/* Comma-separated host:port list ("10.0.0.1:2379,10.0.0.2:2379"); an "http://" or "https://"
 * scheme is accepted and ignored. Returns ETCDC_ERR_INVALID_ARGUMENT for an empty list. */
etcdc_code etcdc_config_set_endpoints(etcdc_config *cfg, const char *endpoints);
/* User and password for etcd's authentication; the password is copied and wiped on free. */
etcdc_code etcdc_config_set_auth(etcdc_config *cfg, const char *user, const char *password);
/* Timeouts in milliseconds. dial: how long client creation waits for a connection;
 * request: the deadline of each call (retries included). */
void etcdc_config_set_dial_timeout_ms(etcdc_config *cfg, int64_t ms);
void etcdc_config_set_request_timeout_ms(etcdc_config *cfg, int64_t ms);
/* HTTP/2 keep-alive ping interval and timeout. The interval is raised to at least 5000 ms
 * because etcd closes connections that ping more often. */
void etcdc_config_set_keepalive_ms(etcdc_config *cfg, int64_t time_ms, int64_t timeout_ms);
/* Largest message the client sends / accepts (bytes). */
void etcdc_config_set_max_message_size(etcdc_config *cfg, size_t send_bytes, size_t recv_bytes);
/* TLS: CA bundle, client certificate and private key (PEM file paths; any may be NULL).
 * Setting any of them switches the connection to TLS. */
etcdc_code etcdc_config_set_tls(etcdc_config *cfg, const char *ca_file, const char *cert_file,
                                const char *key_file);
/* Accept any server certificate (testing only). Implies TLS. */
void etcdc_config_set_tls_insecure_skip_verify(etcdc_config *cfg, bool skip);
/* Name expected in the server certificate when it differs from the endpoint host. */
etcdc_code etcdc_config_set_tls_server_name(etcdc_config *cfg, const char *name);

/* Value encryption (AES-256-GCM, see docs/encryption.md). Adds a 32-byte key with a key id
 * (1..255); the key with the highest id seals new values, all keys open old ones. The bytes are
 * copied and wiped (OPENSSL_cleanse) when the config or client is freed. With a key set, every
 * value written by any operation is sealed and every value read is opened; the etcd key is
 * authenticated with it. A value that does not open gives ETCDC_ERR_CRYPTO for single-key
 * reads and sets `value_error` on entries of ranges and watch events. */
etcdc_code etcdc_config_add_encryption_key(etcdc_config *cfg, uint8_t key_id,
                                           const uint8_t key[32]);
/* Loads keys from a key file: either exactly 32 raw bytes (key id 1) or text lines
 * "<id> <64 hex digits>" (blank lines and lines starting with '#' ignored). A file readable or
 * writable by group or others, or not a regular file, is refused (ETCDC_ERR_INVALID_ARGUMENT)
 * with a message saying how to fix it. The file's bytes are wiped from memory after parsing. */
etcdc_code etcdc_config_load_key_file(etcdc_config *cfg, const char *path, etcdc_error *err);
/* Migration: accept (return as is) values that are not sealed while encryption is on.
 * Off by default: an unsealed value is then refused like a tampered one. */
void etcdc_config_set_allow_plaintext(etcdc_config *cfg, bool allow);
/* Bytes the envelope adds to each sealed value (header, nonce, tag): 32. */
size_t etcdc_envelope_overhead(void);

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_client etcdc_client;

/* gRPC's own diagnostics (handshake errors, connection resets, ...). gRPC has one log for the
 * whole process: the handler, once set, receives every line gRPC would print (GRPC_VERBOSITY
 * chooses which: errors by default), with the severity, gRPC's source file and line, and the
 * text; NULL restores printing them to stderr. libetcdc takes gRPC's log over when the first
 * client is created (to keep the reason of a refused TLS handshake for its error messages), so
 * an application that installs its own gpr_set_log_function afterwards loses that. */
enum { ETCDC_GRPC_LOG_DEBUG = 0, ETCDC_GRPC_LOG_INFO = 1, ETCDC_GRPC_LOG_ERROR = 2 };
typedef void (*etcdc_grpc_log_fn)(void *arg, int severity, const char *file, int line,
                                  const char *message);
void etcdc_set_grpc_log_handler(etcdc_grpc_log_fn fn, void *arg);

/* Connects (waiting up to the dial timeout for a first healthy endpoint) and authenticates
 * when a user is configured. The config is copied; the caller still owns it. A NULL cfg means
 * the defaults of etcdc_config_new (127.0.0.1:2379, 5 s timeouts, no TLS, no auth). On failure
 * returns NULL and fills err: unreachable -> ETCDC_ERR_UNAVAILABLE (a refused TLS handshake
 * too: the message then reads "TLS handshake failed: <OpenSSL's reason>"), bad password
 * -> ETCDC_ERR_AUTH_FAILED, a TLS file that cannot be used -> ETCDC_ERR_TLS before any
 * connection is tried (unreadable, not PEM, an encrypted key, a client certificate out of its
 * validity period, a key that does not belong to the certificate; the message names the
 * files). */
etcdc_client *etcdc_client_new(const etcdc_config *cfg, etcdc_error *err);
/* Cancels every stream, watch and keep-alive, waits for callbacks to finish, and frees.
 * No call on the client may be running or started. */
void etcdc_client_free(etcdc_client *c);

/* The gRPC channel (a `grpc_channel *`) for advanced use; owned by the client. */
void *etcdc_client_channel(etcdc_client *c);

/* Round-trip counters: every request sent to etcd (retries included) counts once. */
typedef struct etcdc_stats {
    uint64_t range, put, delete_range, txn, compact;
    uint64_t lease, watch_create, status, auth, retries;
} etcdc_stats;
void etcdc_client_stats(etcdc_client *c, etcdc_stats *out);
/* Requests the calling thread has sent to etcd so far, on any client (retries included): the
 * difference around a piece of work is the round trips that work cost. */
uint64_t etcdc_thread_round_trips(void);

/* ------------------------------------------------------------------------------------------ */
/* Per-call deadline and cancellation                                                           */
/* ------------------------------------------------------------------------------------------ */

/* A call context, like a Go context: a deadline and a cancel switch for the calls of the thread
 * that binds it, without an extra argument on every call.
 *
 *     etcdc_ctx *ctx = etcdc_ctx_new(2000);          // 2 s for everything below
 *     etcdc_ctx *prev = etcdc_ctx_use(ctx);
 *     rc = etcdc_get(c, ...);                         // ETCDC_ERR_TIMEOUT after 2 s at most
 *     rc = etcdc_lock_acquire(s, ...);                // another thread may etcdc_ctx_cancel(ctx)
 *     etcdc_ctx_use(prev);
 *     etcdc_ctx_free(ctx);
 *
 * While bound, every call of this thread ends by the earlier of its own deadline (the request
 * timeout, a lock's timeout_ms) and the context's, with ETCDC_ERR_TIMEOUT ("deadline of the call
 * context passed"); after etcdc_ctx_cancel, a call in progress (a unary request in flight or
 * backing off, a lock wait, a watch waiting for etcd's confirmation, a multi-page range) returns
 * ETCDC_ERR_CANCELED promptly, and a new call returns it at once. A canceled write may or may
 * not have been applied, as with any write whose answer was lost. One context may be bound on
 * several threads at once. */
typedef struct etcdc_ctx etcdc_ctx;
/* timeout_ms > 0: the deadline is that long from now; otherwise none of its own. NULL when out
 * of memory. */
etcdc_ctx *etcdc_ctx_new(int64_t timeout_ms);
/* Cancel: safe from any thread (and from a signal-driven or interrupt thread), idempotent. */
void etcdc_ctx_cancel(etcdc_ctx *ctx);
/* Canceled, or its deadline passed. */
bool etcdc_ctx_done(etcdc_ctx *ctx);
/* Binds ctx to the calling thread (NULL unbinds) and returns the previous binding. */
etcdc_ctx *etcdc_ctx_use(etcdc_ctx *ctx);
/* Frees (unbinding it from the calling thread). No call may still be using it on another
 * thread. Accepts NULL. */
void etcdc_ctx_free(etcdc_ctx *ctx);

/* ------------------------------------------------------------------------------------------ */
/* Key/value results                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_kv {
    char *key; /* NUL-terminated copy; key_len excludes the terminator */
    size_t key_len;
    char *value; /* NUL-terminated copy (plaintext when encryption is on); "" for keys-only */
    size_t value_len;
    int64_t create_revision, mod_revision, version, lease;
    bool value_error; /* encryption on and the stored value did not open: value is "" */
} etcdc_kv;

/* A list of key/values plus the store revision the answer was taken at. */
typedef struct etcdc_kvs {
    etcdc_kv *kvs;
    size_t count;
    int64_t revision; /* header revision of the (first) response */
    int64_t total;    /* number of keys in the range on the server (may exceed count) */
    bool more;        /* the server had more keys than returned (limit reached) */
} etcdc_kvs;
/* Free the fields of a caller's kvs / kv (not the struct itself) and zero it. */
void etcdc_kvs_clear(etcdc_kvs *kvs);
void etcdc_kv_clear(etcdc_kv *kv);

/* The range end that selects every key starting with `prefix`. Writes it to out (at most
 * prefix_len bytes) and returns its length; returns 0 with out[0] = 0 meaning "to the end of the
 * key space" (prefix empty or all 0xff). */
size_t etcdc_prefix_end(const void *prefix, size_t prefix_len, char *out);

/* ------------------------------------------------------------------------------------------ */
/* Basic key/value operations                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Put. When out_revision is not NULL it receives the revision of the write. */
etcdc_code etcdc_put(etcdc_client *c, const void *key, size_t key_len, const void *value,
                     size_t value_len, int64_t *out_revision, etcdc_error *err);
/* Put attached to a lease (0 = no lease). */
etcdc_code etcdc_put_with_lease(etcdc_client *c, const void *key, size_t key_len, const void *value,
                                size_t value_len, int64_t lease, int64_t *out_revision,
                                etcdc_error *err);
/* Attach the key to a lease (0 detaches) keeping its value as stored (PutRequest.ignore_value:
 * no value transfer, no re-sealing). ETCDC_ERR_NOT_FOUND when the key does not exist. */
etcdc_code etcdc_attach_lease(etcdc_client *c, const void *key, size_t key_len, int64_t lease,
                              int64_t *out_revision, etcdc_error *err);
/* Get one key (linearizable). ETCDC_ERR_NOT_FOUND when absent. */
etcdc_code etcdc_get(etcdc_client *c, const void *key, size_t key_len, etcdc_kv *out,
                     etcdc_error *err);
/* Get one key as of a past revision (rev > 0). */
etcdc_code etcdc_get_at_revision(etcdc_client *c, const void *key, size_t key_len, int64_t rev,
                                 etcdc_kv *out, etcdc_error *err);
/* Delete one key. *out_deleted (may be NULL) is 0 or 1; deleting a missing key is not an error. */
etcdc_code etcdc_delete(etcdc_client *c, const void *key, size_t key_len, int64_t *out_deleted,
                        etcdc_error *err);
/* *out_exists = whether the key exists (count-only request, no value transfer). */
etcdc_code etcdc_exists(etcdc_client *c, const void *key, size_t key_len, bool *out_exists,
                        etcdc_error *err);
/* Number of keys starting with prefix (count-only request). */
etcdc_code etcdc_count_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                              int64_t *out_count, etcdc_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Ranges and prefixes                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* A raw Range request, one round trip, no pagination. Zero-initialise and fill what you need.
 * range_end: NULL/0 = the single key; "\0" (len 1) = every key >= key. */
typedef struct etcdc_range_req {
    const void *key;
    size_t key_len;
    const void *range_end;
    size_t range_end_len;
    int64_t limit;    /* 0 = no limit */
    int64_t revision; /* 0 = latest */
    int sort_order;   /* 0 none, 1 ascend, 2 descend */
    int sort_target;  /* 0 key, 1 version, 2 create, 3 mod, 4 value */
    bool serializable;
    bool keys_only;
    bool count_only;
    int64_t min_mod_revision, max_mod_revision;
    int64_t min_create_revision, max_create_revision;
} etcdc_range_req;
etcdc_code etcdc_range(etcdc_client *c, const etcdc_range_req *req, etcdc_kvs *out,
                       etcdc_error *err);

/* Every key (with values unless keys_only) in [start, end), ascending by key, paginated
 * transparently so that no answer exceeds the receive limit. All pages are read at the revision
 * of the first page, so the result is one consistent snapshot. end NULL = only `start`. */
etcdc_code etcdc_get_range(etcdc_client *c, const void *start, size_t start_len, const void *end,
                           size_t end_len, bool keys_only, etcdc_kvs *out, etcdc_error *err);
/* Every key under prefix, with values (ListWithValues / GetMultiple). Paginated snapshot. */
etcdc_code etcdc_get_prefix(etcdc_client *c, const void *prefix, size_t prefix_len, etcdc_kvs *out,
                            etcdc_error *err);
/* Keys only under prefix (List). limit 0 = all; otherwise at most `limit` keys. */
etcdc_code etcdc_list_keys(etcdc_client *c, const void *prefix, size_t prefix_len, int64_t limit,
                           etcdc_kvs *out, etcdc_error *err);
/* Keys under prefix whose key contains `substring` (matched on the client). */
etcdc_code etcdc_list_keys_matching(etcdc_client *c, const void *prefix, size_t prefix_len,
                                    const void *substring, size_t substring_len, etcdc_kvs *out,
                                    etcdc_error *err);
/* Several named keys in one round trip (a read-only Txn). out->kvs holds the keys that exist,
 * in request order; missing keys are skipped. */
etcdc_code etcdc_get_multiple(etcdc_client *c, const void *const *keys, const size_t *key_lens,
                              size_t n, etcdc_kvs *out, etcdc_error *err);
/* Delete every key under prefix; *out_deleted (may be NULL) receives the number deleted.
 * An empty prefix is refused (ETCDC_ERR_INVALID_ARGUMENT): use etcdc_delete_range for that. */
etcdc_code etcdc_delete_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                               int64_t *out_deleted, etcdc_error *err);
/* Delete [start, end). */
etcdc_code etcdc_delete_range(etcdc_client *c, const void *start, size_t start_len, const void *end,
                              size_t end_len, int64_t *out_deleted, etcdc_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Guarded writes                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Create the key only if it does not exist. ETCDC_ERR_COMPARE_FAILED if it does. */
etcdc_code etcdc_put_if_absent(etcdc_client *c, const void *key, size_t key_len, const void *value,
                               size_t value_len, int64_t *out_revision, etcdc_error *err);
/* Replace the value only if the current value equals `expected` (plaintext; with encryption
 * on, the comparison is made on the decrypted value and guarded by its mod_revision).
 * ETCDC_ERR_COMPARE_FAILED if not, ETCDC_ERR_NOT_FOUND if the key does not exist. */
etcdc_code etcdc_cas_value(etcdc_client *c, const void *key, size_t key_len, const void *expected,
                           size_t expected_len, const void *value, size_t value_len,
                           int64_t *out_revision, etcdc_error *err);
/* Replace the value only if the key's mod_revision equals `mod_revision` (0 = only if the key
 * does not exist). ETCDC_ERR_COMPARE_FAILED otherwise. */
etcdc_code etcdc_cas_revision(etcdc_client *c, const void *key, size_t key_len,
                              int64_t mod_revision, const void *value, size_t value_len,
                              int64_t *out_revision, etcdc_error *err);
/* Compare-and-delete: delete the key only if its mod_revision equals `mod_revision` (> 0), one
 * Txn. ETCDC_ERR_COMPARE_FAILED when it changed or is gone. *out_revision: the store revision
 * after the call. */
etcdc_code etcdc_delete_if_revision(etcdc_client *c, const void *key, size_t key_len,
                                    int64_t mod_revision, int64_t *out_revision, etcdc_error *err);
/* Delete the key only if its value equals `expected` (compared on the plaintext, the delete
 * guarded by the revision compared, like etcdc_cas_value; two round trips).
 * ETCDC_ERR_COMPARE_FAILED if it differs or changes meanwhile, ETCDC_ERR_NOT_FOUND if absent. */
etcdc_code etcdc_delete_if_value(etcdc_client *c, const void *key, size_t key_len,
                                 const void *expected, size_t expected_len, int64_t *out_revision,
                                 etcdc_error *err);
/* Move `from` to `to` in one Txn guarded by from's mod_revision: the value (and lease) move
 * atomically. When `overwrite` is false the move also requires `to` to be absent.
 * ETCDC_ERR_NOT_FOUND if from is missing, ETCDC_ERR_COMPARE_FAILED if a guard failed
 * (a concurrent writer changed from, or to exists). Costs two round trips (read, txn). */
etcdc_code etcdc_move_key(etcdc_client *c, const void *from, size_t from_len, const void *to,
                          size_t to_len, bool overwrite, int64_t *out_revision, etcdc_error *err);

typedef struct etcdc_pair {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} etcdc_pair;
/* Put every pair in one atomic Txn. More pairs than etcdc_max_txn_ops() fail with
 * ETCDC_ERR_TOO_MANY_OPS before anything is sent. */
etcdc_code etcdc_bulk_put(etcdc_client *c, const etcdc_pair *pairs, size_t n, int64_t *out_revision,
                          etcdc_error *err);
/* Delete every key in one atomic Txn (same limit). *out_deleted may be NULL. */
etcdc_code etcdc_bulk_delete(etcdc_client *c, const void *const *keys, const size_t *key_lens,
                             size_t n, int64_t *out_deleted, etcdc_error *err);
/* The per-Txn operation limit the client enforces (etcd's default --max-txn-ops, 128). */
size_t etcdc_max_txn_ops(void);

/* ------------------------------------------------------------------------------------------ */
/* Transactions                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_txn etcdc_txn;

typedef enum etcdc_cmp_target {
    ETCDC_CMP_VERSION = 0,
    ETCDC_CMP_CREATE = 1,
    ETCDC_CMP_MOD = 2,
    ETCDC_CMP_VALUE = 3,
    ETCDC_CMP_LEASE = 4,
} etcdc_cmp_target;

typedef enum etcdc_cmp_op {
    ETCDC_EQUAL = 0,
    ETCDC_GREATER = 1,
    ETCDC_LESS = 2,
    ETCDC_NOT_EQUAL = 3,
} etcdc_cmp_op;

typedef enum etcdc_branch { ETCDC_THEN = 0, ETCDC_ELSE = 1 } etcdc_branch;

/* A new, empty transaction (If() Then() Else()). NULL when out of memory. All data passed to
 * the builder is copied.
 *
 * One error per transaction: the first builder call that fails (out of memory, an invalid
 * argument) is remembered; every later call on the transaction does nothing and returns that
 * code, and etcdc_txn_commit returns it without sending anything. Calls on a NULL transaction
 * return ETCDC_ERR_NO_MEMORY, and so does its commit. A caller may therefore build without
 * checking each call and look only at the commit's result, as with Go's Txn().If().Then():
 *
 *     etcdc_txn *t = etcdc_txn_new();
 *     etcdc_txn_if(t, "k", 1, ETCDC_CMP_MOD, ETCDC_EQUAL, rev);
 *     etcdc_txn_put(t, ETCDC_THEN, "k", 1, "v", 1, 0);
 *     code = etcdc_txn_commit(c, t, &res, &err);
 *     etcdc_txn_free(t);
 */
etcdc_txn *etcdc_txn_new(void);
void etcdc_txn_free(etcdc_txn *t);
/* If: compare a number (version, create/mod revision, lease) of key (or of every key in
 * [key, range_end) when range_end is not NULL). */
etcdc_code etcdc_txn_if(etcdc_txn *t, const void *key, size_t key_len, etcdc_cmp_target target,
                        etcdc_cmp_op op, int64_t number);
etcdc_code etcdc_txn_if_range(etcdc_txn *t, const void *key, size_t key_len, const void *range_end,
                              size_t range_end_len, etcdc_cmp_target target, etcdc_cmp_op op,
                              int64_t number);
/* If: compare the stored value bytes. Not usable with encryption (ciphertexts differ): the
 * commit then fails with ETCDC_ERR_INVALID_ARGUMENT. */
etcdc_code etcdc_txn_if_value(etcdc_txn *t, const void *key, size_t key_len, etcdc_cmp_op op,
                              const void *value, size_t value_len);
/* Then/Else operations. */
etcdc_code etcdc_txn_put(etcdc_txn *t, etcdc_branch b, const void *key, size_t key_len,
                         const void *value, size_t value_len, int64_t lease);
/* Then/Else: attach the key to a lease (0 detaches), its value kept as stored, unsealed
 * (PutRequest.ignore_value, as etcdc_attach_lease). etcd fails the whole Txn with "key not
 * found" when the key does not exist: guard it with a compare when it may not. */
etcdc_code etcdc_txn_attach_lease(etcdc_txn *t, etcdc_branch b, const void *key, size_t key_len,
                                  int64_t lease);
etcdc_code etcdc_txn_get(etcdc_txn *t, etcdc_branch b, const etcdc_range_req *req);
etcdc_code etcdc_txn_delete(etcdc_txn *t, etcdc_branch b, const void *key, size_t key_len,
                            const void *range_end, size_t range_end_len, bool prev_kv);
/* Then/Else: a nested transaction. t takes ownership of inner (freed with t; do not change or
 * free it afterwards), also when this fails. etcd evaluates the nested compares against the
 * state before the outer transaction's operations, so they can decide on facts the outer
 * compares cannot express (e.g. "and if the directory is left empty, write its marker"). Its
 * puts and deletes must not overlap the outer ones (etcd rejects the request). */
etcdc_code etcdc_txn_nest(etcdc_txn *t, etcdc_branch b, etcdc_txn *inner);
/* Records a failure of the caller's own while building t (e.g. a buffer it could not
 * allocate): as a failed builder call, it makes later calls and the commit return code. The
 * first error stays. Returns t's error. */
etcdc_code etcdc_txn_set_error(etcdc_txn *t, etcdc_code code);
/* Number of operations in the larger branch (of this level; etcd limits each level). */
size_t etcdc_txn_op_count(const etcdc_txn *t);
/* Declares that applying t twice in a row has the effect of applying it once: no compare reads
 * a key that its operations write (e.g. If(parent exists) Then(Put file)). The commit then
 * retries it as it retries a Put: when the connection broke (UNAVAILABLE), not only when it was
 * surely not sent; never after an attempt timed out (that attempt may still land later). */
void etcdc_txn_set_resend_safe(etcdc_txn *t);

typedef enum etcdc_op_type {
    ETCDC_OP_RANGE = 1,
    ETCDC_OP_PUT = 2,
    ETCDC_OP_DELETE = 3,
    ETCDC_OP_TXN = 4,
} etcdc_op_type;

typedef struct etcdc_op_result {
    etcdc_op_type type;
    etcdc_kvs kvs;                /* RANGE: the keys; DELETE: prev_kvs when asked */
    int64_t deleted;              /* DELETE: number of keys deleted */
    struct etcdc_txn_result *txn; /* TXN: the nested transaction's result (owned) */
} etcdc_op_result;

typedef struct etcdc_txn_result {
    bool succeeded; /* the compares held (Then ran) */
    int64_t revision;
    etcdc_op_result *ops; /* one per operation of the branch that ran, in order */
    size_t op_count;
} etcdc_txn_result;
void etcdc_txn_result_clear(etcdc_txn_result *r);

/* Sends the transaction (one round trip). ETCDC_OK whether or not the compares held: look at
 * out->succeeded. A builder call that failed (or t NULL) makes it return that error, unsent. A
 * request over etcd's operation limit fails before sending: etcd counts, per level, the largest of
 * compares/Then/Else, and a nested txn must fit in what its parent level left of
 * etcdc_max_txn_ops(). */
etcdc_code etcdc_txn_commit(etcdc_client *c, const etcdc_txn *t, etcdc_txn_result *out,
                            etcdc_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Leases                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Grant a lease of ttl_s seconds with an id chosen by etcd; *out_id receives it. */
etcdc_code etcdc_lease_grant(etcdc_client *c, int64_t ttl_s, int64_t *out_id, etcdc_error *err);
/* Grant a lease with a caller-chosen id (> 0). ETCDC_ERR_INVALID_ARGUMENT if it exists. */
etcdc_code etcdc_lease_grant_id(etcdc_client *c, int64_t ttl_s, int64_t id, etcdc_error *err);
/* Revoke a lease: every key attached to it is deleted. ETCDC_ERR_NOT_FOUND if unknown. */
etcdc_code etcdc_lease_revoke(etcdc_client *c, int64_t id, etcdc_error *err);
/* Every lease the cluster holds (ids), into a struct the caller clears. */
typedef struct etcdc_leases {
    int64_t *ids;
    size_t count;
} etcdc_leases;
etcdc_code etcdc_lease_list(etcdc_client *c, etcdc_leases *out, etcdc_error *err);
void etcdc_leases_clear(etcdc_leases *l);
/* Remaining and granted TTL (seconds); *out_ttl is -1 when the lease has expired.
 * keys (may be NULL) receives the attached keys. */
etcdc_code etcdc_lease_time_to_live(etcdc_client *c, int64_t id, int64_t *out_ttl,
                                    int64_t *out_granted_ttl, etcdc_kvs *keys, etcdc_error *err);
/* Renew once (one message on the shared keep-alive stream); *out_ttl = new TTL. */
etcdc_code etcdc_lease_keepalive_once(etcdc_client *c, int64_t id, int64_t *out_ttl,
                                      etcdc_error *err);

typedef struct etcdc_keepalive etcdc_keepalive;
/* Called after each renewal with the new TTL (> 0), and once with ttl <= 0 when the lease is
 * gone (expired or revoked); after that call no more calls come. */
typedef void (*etcdc_keepalive_cb)(void *arg, int64_t lease_id, int64_t ttl);
/* Keep a lease alive on the client's single keep-alive stream (renewing at a third of the TTL)
 * until stopped or the lease is lost. cb may be NULL. */
etcdc_keepalive *etcdc_lease_keepalive(etcdc_client *c, int64_t id, etcdc_keepalive_cb cb,
                                       void *arg, etcdc_error *err);
/* Stop renewing (does not revoke). After return, cb is not running and will not be called. */
void etcdc_keepalive_stop(etcdc_keepalive *ka);

/* ------------------------------------------------------------------------------------------ */
/* Watches                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef enum etcdc_event_type { ETCDC_EVENT_PUT = 0, ETCDC_EVENT_DELETE = 1 } etcdc_event_type;

typedef struct etcdc_event {
    etcdc_event_type type;
    etcdc_kv kv;      /* for DELETE: key and mod_revision (the delete's revision) only */
    etcdc_kv prev_kv; /* when prev_kv was asked and available; key NULL otherwise */
} etcdc_event;

typedef enum etcdc_watch_kind {
    ETCDC_WATCH_EVENTS,    /* events[] carries changes (all at or below revision) */
    ETCDC_WATCH_PROGRESS,  /* no events: everything up to revision has been delivered */
    ETCDC_WATCH_COMPACTED, /* the start revision was compacted: events from compact_revision
                              on are lost; the watch is ended, resync and watch again */
    ETCDC_WATCH_CANCELED,  /* the server ended the watch (reason in message) */
} etcdc_watch_kind;

typedef struct etcdc_watch_response {
    etcdc_watch_kind kind;
    int64_t revision;         /* header revision */
    int64_t compact_revision; /* COMPACTED only */
    const char *message;      /* CANCELED only */
    const etcdc_event *events;
    size_t event_count;
} etcdc_watch_response;

/* Called on the stream thread; the response and everything it points to is valid only during
 * the call. */
typedef void (*etcdc_watch_cb)(void *arg, const etcdc_watch_response *resp);

typedef struct etcdc_watch_opts {
    const void *key;
    size_t key_len;
    const void *range_end; /* NULL: the single key; use etcdc_watch_prefix for prefixes */
    size_t range_end_len;
    int64_t start_revision; /* 0: from now */
    bool prev_kv;
    bool progress_notify; /* ask etcd for periodic PROGRESS responses while idle */
    bool no_put, no_delete;
} etcdc_watch_opts;

typedef struct etcdc_watcher etcdc_watcher;

/* Start a watch on the client's single Watch stream. When the stream breaks, it is re-created
 * and every watcher resumes from its last delivered revision + 1: no event is lost or repeated.
 * Returns once etcd confirmed the watch; NULL with err filled when it could not be created
 * within the request timeout: ETCDC_ERR_UNAVAILABLE when no endpoint is reachable (as for any
 * call), ETCDC_ERR_TIMEOUT when a connected member did not confirm, or etcd's refusal
 * (e.g. ETCDC_ERR_COMPACTED for a compacted start revision). */
etcdc_watcher *etcdc_watch(etcdc_client *c, const etcdc_watch_opts *opts, etcdc_watch_cb cb,
                           void *arg, etcdc_error *err);
/* Watch every key under prefix. */
etcdc_watcher *etcdc_watch_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                                  int64_t start_revision, bool prev_kv, etcdc_watch_cb cb,
                                  void *arg, etcdc_error *err);
/* Ask etcd for a PROGRESS response on every watcher of the stream (useful to prove that a
 * cache is current up to a revision). */
etcdc_code etcdc_watch_request_progress(etcdc_client *c, etcdc_error *err);
/* Stop the watcher. After return the callback is not running and will not be called again. */
void etcdc_watch_cancel(etcdc_watcher *w);
/* Highest revision delivered to this watcher (events or progress). */
int64_t etcdc_watch_revision(const etcdc_watcher *w);
/* Whether every watcher of c is registered on a connected Watch stream right now: the stream's
 * number (1 for the first, one more each time it is created again), or 0 while the stream is
 * down or being created again, and while etcd refuses it (a member that has lost its leader
 * ends its watch streams). Events then come late (none is lost), so a cache kept current by a
 * watch must not be trusted meanwhile, nor right after a new stream resumed: the events it
 * missed may still be on their way. */
uint64_t etcdc_watch_stream_ready(etcdc_client *c);

/* ------------------------------------------------------------------------------------------ */
/* Sessions and locks                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_session etcdc_session;
/* Called once (stream thread) when the session's lease is lost: expired, revoked or not
 * renewable in time. Locks held through the session are then no longer held. */
typedef void (*etcdc_session_lost_cb)(void *arg);

/* A session is a lease (ttl_s seconds) kept alive on the keep-alive stream. */
etcdc_session *etcdc_session_new(etcdc_client *c, int64_t ttl_s, etcdc_session_lost_cb lost_cb,
                                 void *arg, etcdc_error *err);
/* Revokes the lease (releasing every lock of the session) and frees. Free the session's locks
 * and elections first: they refer to it. */
void etcdc_session_free(etcdc_session *s);
int64_t etcdc_session_lease(const etcdc_session *s);
bool etcdc_session_alive(const etcdc_session *s);

typedef struct etcdc_lock etcdc_lock;

typedef enum etcdc_lock_mode { ETCDC_LOCK_EXCLUSIVE = 0, ETCDC_LOCK_SHARED = 1 } etcdc_lock_mode;

/* A cancellation token: etcdc_cancel_fire() (from any thread, e.g. a signal-driven or FUSE
 * interrupt handler thread) makes a lock wait that uses it return ETCDC_ERR_CANCELED at once. */
typedef struct etcdc_cancel etcdc_cancel;
etcdc_cancel *etcdc_cancel_new(void);
void etcdc_cancel_fire(etcdc_cancel *tok);
bool etcdc_cancel_fired(etcdc_cancel *tok);
void etcdc_cancel_free(etcdc_cancel *tok);

/* Options of etcdc_lock_acquire. The zero value (or NULL) asks for an exclusive lock, waiting
 * as long as it takes. */
typedef struct etcdc_lock_opts {
    etcdc_lock_mode mode;
    int64_t timeout_ms;      /* 0 (or < 0): wait until granted; > 0: give up after this long */
    bool try_once;           /* don't wait (TryLock): ETCDC_ERR_WOULD_BLOCK when held */
    etcdc_cancel *cancel;    /* may be NULL */
    const void *holder_info; /* stored as the lock key's value (e.g. "host pid"); may be NULL */
    size_t holder_info_len;
} etcdc_lock_opts;

/* Acquire the lock `name` through session s; opts may be NULL (exclusive, wait until granted).
 * Key layout (docs/library.md): an exclusive holder or waiter owns the key
 * `name/<session lease id in lowercase hex>` (etcdctl's layout, so `etcdctl lock name` and
 * this lock exclude each other); a shared one owns `name/<lease hex>.shared`; a second
 * concurrent acquisition through the same session adds `_<n>`. Waiters queue in create-revision
 * order: an exclusive waiter waits for every earlier key, a shared one for earlier exclusive
 * keys only; each waits on a watch of its predecessor's deletion, never by polling.
 * Returns ETCDC_OK and *out_lock; ETCDC_ERR_WOULD_BLOCK (TryLock), ETCDC_ERR_TIMEOUT,
 * ETCDC_ERR_CANCELED or ETCDC_ERR_LEASE_EXPIRED, in which cases the waiter's key is deleted
 * before returning, so no stale waiter delays later lockers. */
etcdc_code etcdc_lock_acquire(etcdc_session *s, const void *name, size_t name_len,
                              const etcdc_lock_opts *opts, etcdc_lock **out_lock, etcdc_error *err);
/* Release: delete the lock key. Idempotent: a second call (from any thread) does nothing and
 * returns ETCDC_OK, so it can never delete a later lock that reuses the same key. When the
 * session is already lost the key is gone with its lease, and this returns ETCDC_OK. On
 * failure (etcd unreachable) the lock is still held, until its session's lease runs out, and
 * the call may be repeated. Does not free: see etcdc_lock_free. */
etcdc_code etcdc_lock_release(etcdc_lock *l, etcdc_error *err);
/* Releases (best effort) if not yet released, then frees. Accepts NULL. */
void etcdc_lock_free(etcdc_lock *l);
/* The lock key (NUL-terminated, owned by the lock). */
const char *etcdc_lock_key(const etcdc_lock *l, size_t *len);
/* The lock key's create revision: a fencing token that grows with every new holder. */
int64_t etcdc_lock_revision(const etcdc_lock *l);
/* The store revision at which the lock was seen granted: every write made before the grant
 * has a revision <= this one (used for read fences). */
int64_t etcdc_lock_granted_revision(const etcdc_lock *l);

/* ------------------------------------------------------------------------------------------ */
/* Elections                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Leader election with the key layout of etcd's Go concurrency package, so `etcdctl elect NAME
 * PROPOSAL` and `etcdctl elect -l NAME` take part and observe on equal terms: a candidate owns
 * `NAME/<session lease id in lowercase hex>` with its proposal as value, and the leader is the
 * candidate whose key has the lowest create revision. Candidates leave with their session. */
typedef struct etcdc_election etcdc_election;

/* An election handle for one candidate (no round trip). The name is copied. NULL when out of
 * memory or name_len is 0. */
etcdc_election *etcdc_election_new(etcdc_session *s, const void *name, size_t name_len);
/* Resigns if leading or campaigning (outside any call context), then frees. Accepts NULL. */
void etcdc_election_free(etcdc_election *e);

/* Stand with `value` and wait until elected (no timeout of its own: bind an etcdc_ctx for a
 * deadline or a cancel from another thread). Waits on a watch of the previous candidate's key,
 * never by polling. On ETCDC_ERR_TIMEOUT / CANCELED / LEASE_EXPIRED the candidate's key is
 * deleted before returning. Campaigning again while leader proclaims the new value. */
etcdc_code etcdc_election_campaign(etcdc_election *e, const void *value, size_t value_len,
                                   etcdc_error *err);
/* The leader announces a new value without losing leadership (a Txn guarded by its key's create
 * revision). ETCDC_ERR_NOT_LEADER when not elected, or when its key is gone (session lost). */
etcdc_code etcdc_election_proclaim(etcdc_election *e, const void *value, size_t value_len,
                                   etcdc_error *err);
/* Gives up leadership or candidacy (deletes the key); the next candidate is elected. Does
 * nothing and returns ETCDC_OK when not campaigning. */
etcdc_code etcdc_election_resign(etcdc_election *e, etcdc_error *err);
/* This candidate's key (NULL when not campaigning) and its create revision, which grows with
 * every new leader: a fencing token. */
const char *etcdc_election_key(const etcdc_election *e, size_t *len);
int64_t etcdc_election_revision(const etcdc_election *e);

/* The current leader of election `name`: its key, value (proposal) and revisions, into a kv the
 * caller clears. ETCDC_ERR_NOT_FOUND when nobody leads. One round trip. */
etcdc_code etcdc_election_leader(etcdc_client *c, const void *name, size_t name_len, etcdc_kv *out,
                                 etcdc_error *err);

/* Observing an election: cb(arg, leader) with every new leader and every proclaimed value, in
 * order; leader is NULL when the election becomes leaderless. The first call, with the leader
 * at the time (or NULL), happens before etcdc_election_observe returns, on the caller's thread;
 * the others on the stream thread. The kv is valid during the call only. */
typedef void (*etcdc_leader_cb)(void *arg, const etcdc_kv *leader);
typedef struct etcdc_observer etcdc_observer;
etcdc_observer *etcdc_election_observe(etcdc_client *c, const void *name, size_t name_len,
                                       etcdc_leader_cb cb, void *arg, etcdc_error *err);
/* Stops observing; after return the callback is not running and will not run again. Frees.
 * Accepts NULL. */
void etcdc_observer_stop(etcdc_observer *o);

/* ------------------------------------------------------------------------------------------ */
/* Authentication administration                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Each call is one request; the client must be authenticated as a user with the root role once
 * authentication is on. Not resent after a lost answer (adding a user twice fails as a
 * duplicate). etcd's refusals come back as its own message: an unknown user or role
 * (ETCDC_ERR_INVALID_ARGUMENT or NOT_FOUND depending on the etcd version), a duplicate, no
 * root user when enabling, PERMISSION_DENIED for a non-root caller. */
etcdc_code etcdc_auth_enable(etcdc_client *c, etcdc_error *err);
etcdc_code etcdc_auth_disable(etcdc_client *c, etcdc_error *err);
/* password NULL: a user without password (etcd 3.4+), who can only use client certificates. */
etcdc_code etcdc_user_add(etcdc_client *c, const char *name, const char *password,
                          etcdc_error *err);
etcdc_code etcdc_user_delete(etcdc_client *c, const char *name, etcdc_error *err);
etcdc_code etcdc_user_change_password(etcdc_client *c, const char *name, const char *password,
                                      etcdc_error *err);
etcdc_code etcdc_user_grant_role(etcdc_client *c, const char *user, const char *role,
                                 etcdc_error *err);
etcdc_code etcdc_user_revoke_role(etcdc_client *c, const char *user, const char *role,
                                  etcdc_error *err);
etcdc_code etcdc_role_add(etcdc_client *c, const char *role, etcdc_error *err);
etcdc_code etcdc_role_delete(etcdc_client *c, const char *role, etcdc_error *err);

typedef enum etcdc_perm {
    ETCDC_PERM_READ = 0,
    ETCDC_PERM_WRITE = 1,
    ETCDC_PERM_READWRITE = 2,
} etcdc_perm;
/* Grants perm on [key, range_end) (range_end NULL: the single key; etcdc_prefix_end gives a
 * prefix's end). Revoking takes the same key and range_end. */
etcdc_code etcdc_role_grant_permission(etcdc_client *c, const char *role, etcdc_perm perm,
                                       const void *key, size_t key_len, const void *range_end,
                                       size_t range_end_len, etcdc_error *err);
etcdc_code etcdc_role_revoke_permission(etcdc_client *c, const char *role, const void *key,
                                        size_t key_len, const void *range_end, size_t range_end_len,
                                        etcdc_error *err);

/* A list of names, into a struct the caller clears. */
typedef struct etcdc_names {
    char **names;
    size_t count;
} etcdc_names;
etcdc_code etcdc_user_list(etcdc_client *c, etcdc_names *out, etcdc_error *err);
etcdc_code etcdc_role_list(etcdc_client *c, etcdc_names *out, etcdc_error *err);
void etcdc_names_clear(etcdc_names *n);

/* ------------------------------------------------------------------------------------------ */
/* Key rotation                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_rekey_stats {
    uint64_t scanned;   /* keys looked at */
    uint64_t resealed;  /* rewritten under the newest key */
    uint64_t current;   /* already sealed with the newest key (or empty): left alone */
    uint64_t conflicts; /* changed by a concurrent writer while being resealed, then retried */
    uint64_t failed;    /* could not be opened (wrong key, tampered, plaintext refused) */
} etcdc_rekey_stats;
/* Called after each page of keys with the running totals. */
typedef void (*etcdc_rekey_progress_cb)(void *arg, const etcdc_rekey_stats *st);

/* Re-seals every value under prefix with the newest configured key. Each key is rewritten by a
 * Txn guarded by its mod_revision (and keeps its lease), so a concurrent writer is never
 * overwritten: on a conflict the key is read again and retried. Idempotent and resumable (keys
 * already under the newest key are skipped). Keys that do not open are counted in `failed`,
 * left untouched, and make the call return ETCDC_ERR_CRYPTO after the whole prefix was done. */
etcdc_code etcdc_rekey_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                              etcdc_rekey_progress_cb cb, void *arg, etcdc_rekey_stats *out,
                              etcdc_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Cluster and maintenance                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct etcdc_status {
    char version[32];
    int64_t db_size, db_size_in_use;
    uint64_t leader, member_id, raft_index, raft_term, cluster_id;
    int64_t revision;
    bool is_learner;
} etcdc_status;
/* Status of the member that serves the call. */
etcdc_code etcdc_status_get(etcdc_client *c, etcdc_status *out, etcdc_error *err);

typedef struct etcdc_member {
    uint64_t id;
    char *name;
    char **peer_urls;
    size_t peer_url_count;
    char **client_urls;
    size_t client_url_count;
    bool is_learner;
} etcdc_member;
typedef struct etcdc_members {
    etcdc_member *members;
    size_t count;
    uint64_t cluster_id;
} etcdc_members;
etcdc_code etcdc_member_list(etcdc_client *c, etcdc_members *out, etcdc_error *err);
void etcdc_members_clear(etcdc_members *m);
/* Adds a member (a learner when `learner`: it catches up without voting, see promote) known by
 * its comma-separated peer URLs; the new process must then be started with
 * --initial-cluster-state existing. *out_id (may be NULL): its id; out (may be NULL): the
 * members after the change. Not resent after a lost answer (a second add would be refused as a
 * duplicate): on TIMEOUT, look at the member list. */
etcdc_code etcdc_member_add(etcdc_client *c, const char *peer_urls, bool learner, uint64_t *out_id,
                            etcdc_members *out, etcdc_error *err);
/* Removes a member. ETCDC_ERR_NOT_FOUND for an unknown id; ETCDC_ERR_UNAVAILABLE ("unhealthy
 * cluster") while etcd has not yet seen a recently joined voter healthy for a few seconds or
 * the removal would break quorum: try again later. */
etcdc_code etcdc_member_remove(etcdc_client *c, uint64_t id, etcdc_error *err);
/* Replaces a member's peer URLs (comma-separated). */
etcdc_code etcdc_member_update(etcdc_client *c, uint64_t id, const char *peer_urls,
                               etcdc_error *err);
/* Makes a learner a voting member. etcd refuses (ETCDC_ERR_INVALID_ARGUMENT or
 * ETCDC_ERR_INTERNAL, with etcd's message) while the learner has not caught up with the
 * leader's log, or is not running. */
etcdc_code etcdc_member_promote(etcdc_client *c, uint64_t id, etcdc_error *err);

/* Defragments the backend of the member that serves the call, giving the space freed by
 * compaction back to the file system (db_size shrinks towards db_size_in_use). Blocks that
 * member while it runs: give the request timeout (or a call context) room for it. */
etcdc_code etcdc_defragment(etcdc_client *c, etcdc_error *err);

typedef enum etcdc_alarm_type {
    ETCDC_ALARM_NONE = 0,
    ETCDC_ALARM_NOSPACE = 1, /* the space quota is exhausted: writes fail with ETCDC_ERR_NO_SPACE */
    ETCDC_ALARM_CORRUPT = 2, /* data corruption detected */
} etcdc_alarm_type;
typedef struct etcdc_alarm {
    uint64_t member_id;
    etcdc_alarm_type type;
} etcdc_alarm;
typedef struct etcdc_alarms {
    etcdc_alarm *alarms;
    size_t count;
} etcdc_alarms;
/* The alarms raised on any member. */
etcdc_code etcdc_alarm_list(etcdc_client *c, etcdc_alarms *out, etcdc_error *err);
void etcdc_alarms_clear(etcdc_alarms *a);
/* Deactivates one alarm, or every raised alarm when member_id is 0 and type is NONE (what
 * `etcdctl alarm disarm` does). After a NOSPACE alarm: free space first (delete, compact,
 * defragment), then disarm, or the alarm comes back. */
etcdc_code etcdc_alarm_disarm(etcdc_client *c, uint64_t member_id, etcdc_alarm_type type,
                              etcdc_error *err);
/* Called after each chunk of a snapshot: bytes written so far, bytes etcd still has to send. */
typedef void (*etcdc_snapshot_progress_cb)(void *arg, uint64_t written, uint64_t remaining);
/* Streams a snapshot of the backend of the member that serves the call to `path` (mode 0600: it
 * holds every key). The data goes to `path`.part first and takes the final name only when
 * complete and synced; on any failure nothing is left behind. No overall deadline (a large
 * database takes long; bind an etcdc_ctx for one): the transfer fails with ETCDC_ERR_TIMEOUT
 * when etcd sends nothing for a request timeout, ETCDC_ERR_IO when the file cannot be written.
 * *out_bytes (may be NULL): the file's size. `etcdctl snapshot status` / `etcdutl snapshot
 * restore` read the file. */
etcdc_code etcdc_snapshot_save(etcdc_client *c, const char *path, etcdc_snapshot_progress_cb cb,
                               void *arg, uint64_t *out_bytes, etcdc_error *err);
/* Transfers raft leadership to member target_id. etcd accepts it only from the leader itself:
 * use a client whose endpoint is the current leader (etcdc_status_get says who leads);
 * ETCDC_ERR_NOT_LEADER otherwise (known only when err is not NULL). */
etcdc_code etcdc_move_leader(etcdc_client *c, uint64_t target_id, etcdc_error *err);
/* Hash of the MVCC keys up to rev (0: the latest) on the member that serves the call, and the
 * compact revision it started from: members agree on it for the same rev (corruption check). */
etcdc_code etcdc_hash_kv(etcdc_client *c, int64_t rev, uint32_t *out_hash,
                         int64_t *out_compact_revision, etcdc_error *err);
/* Hash of the whole backend file of the member that serves the call (includes its own
 * metadata: members differ; for comparing members use etcdc_hash_kv). */
etcdc_code etcdc_hash(etcdc_client *c, uint32_t *out_hash, etcdc_error *err);

/* Compact the key history up to rev. physical: wait until the compaction is applied. */
etcdc_code etcdc_compact(etcdc_client *c, int64_t rev, bool physical, etcdc_error *err);

/* Names of libetcdc 0.1, kept for source compatibility; they follow neither rule above. */
__attribute__((deprecated("use etcdc_kvs_clear"))) static inline void etcdc_kvs_free(etcdc_kvs *kvs)
{
    etcdc_kvs_clear(kvs);
}
__attribute__((deprecated("use etcdc_txn_result_clear"))) static inline void
etcdc_txn_result_free(etcdc_txn_result *r)
{
    etcdc_txn_result_clear(r);
}
__attribute__((deprecated("use etcdc_members_clear"))) static inline void
etcdc_members_free(etcdc_members *m)
{
    etcdc_members_clear(m);
}

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* ETCDC_H */
