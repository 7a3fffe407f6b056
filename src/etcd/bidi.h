/*
 * bidi.h - one bidirectional gRPC stream served by the client's engine thread: opening it with
 * the auth token and `hasleader` metadata, a send queue with at most one message in flight, a
 * receive loop, and the final status. Used by the watch and lease keep-alive hubs.
 *
 * Locking: every function here is called with the owner's mutex held, and the callbacks run
 * with it held too (they may release and retake it).
 */
#ifndef ETCDC_BIDI_H
#define ETCDC_BIDI_H

#include "internal.h"

typedef struct etcdc_bidi etcdc_bidi;
/* A message arrived (bb is freed by the caller after return). */
typedef void (*etcdc_bidi_message_fn)(void *owner, grpc_byte_buffer *bb);
/* The stream ended; the bidi is closed again and may be reopened. */
typedef void (*etcdc_bidi_closed_fn)(void *owner, grpc_status_code status, const char *details);

typedef struct send_item {
    grpc_byte_buffer *bb;
    struct send_item *next;
} send_item;

struct bidi_call; /* one gRPC call of the stream; freed when its last operation completes */

struct etcdc_bidi {
    etcdc_client *client;
    const char *method;
    pthread_mutex_t *mu;
    void *owner;
    etcdc_bidi_message_fn on_message;
    etcdc_bidi_closed_fn on_closed;
    struct bidi_call *cur; /* protected by *mu; NULL while closed */
};

void etcdc__bidi_init(etcdc_bidi *b, etcdc_client *c, const char *method, pthread_mutex_t *mu,
                      void *owner, etcdc_bidi_message_fn on_message,
                      etcdc_bidi_closed_fn on_closed);
/* Opens the stream (dropping anything still queued). */
etcdc_code etcdc__bidi_open(etcdc_bidi *b, etcdc_error *err);
bool etcdc__bidi_is_open(const etcdc_bidi *b);
/* Queues a message (ownership of bb passes); dropped when the stream is closed. */
void etcdc__bidi_send(etcdc_bidi *b, grpc_byte_buffer *bb);
/* Cancels the call; on_closed follows on the engine thread. */
void etcdc__bidi_cancel(etcdc_bidi *b);

#endif
