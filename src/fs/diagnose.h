/*
 * diagnose.h - one line for a failed connection to etcd, the same at mount and in --check:
 * what failed, where (endpoint or file), the underlying reason in full, and what to try.
 */
#ifndef ETCDFS_DIAGNOSE_H
#define ETCDFS_DIAGNOSE_H

#include <stdbool.h>
#include <stddef.h>

#include "etcdc.h"
#include "opts.h"

typedef struct diagnosis {
    char what[640]; /* "TLS handshake with 127.0.0.1:2379 failed: the server refused ..." */
    char hint[200]; /* "give --cert and --key ..." (may be empty) */
} diagnosis;

/* Explains a failed etcdc_client_new made with the options o. */
void diagnose_connect(const etcdfs_opts *o, const etcdc_error *err, diagnosis *d);

/* OpenSSL's reason for a packed code in message m ("error:0A000086:..."), whose text gRPC may
 * have cut; NULL when m holds none. */
const char *diagnose_openssl_reason(const char *m);

/* A refusal of the client key file (--key) whose mode lets group or others read or write it,
 * as ssh and --key-file refuse theirs: false with the message (naming the file and its mode,
 * never its bytes); true when it is private, or cannot be examined (reading it reports that). */
bool diagnose_key_mode(const char *path, char *msg, size_t n);

/* gRPC's own log lines go to the debug log (--log-level=debug, -d), not to stderr. */
void diagnose_route_grpc_log(void);

#endif
