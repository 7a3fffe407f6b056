/*
 * bidi.c - a bidirectional stream on the engine thread (see bidi.h).
 *
 * Each gRPC call gets a context of its own that holds its tags and buffers and counts its
 * outstanding operations: completions of an old call that arrive after a new one was opened
 * touch only the old context, which is freed when its last operation has completed.
 */
#include "bidi.h"

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>

typedef struct bidi_call {
    etcdc_bidi *b;
    grpc_call *call;
    int pending; /* operations started and not yet completed */
    bool ended;  /* the final status arrived */
    send_item *sendq, **sendq_tail;
    bool send_in_flight;
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array recv_md, trailing_md;
    grpc_status_code status;
    grpc_slice status_details;
    grpc_metadata md[2];
    char *token;
    etcdc_stream_tag send_tag, recv_tag, status_tag, start_tag;
} bidi_call;

static void clear_sendq(bidi_call *k)
{
    while (k->sendq) {
        send_item *it = k->sendq;
        k->sendq = it->next;
        grpc_byte_buffer_destroy(it->bb);
        free(it);
    }
    k->sendq_tail = &k->sendq;
}

/* Called with *mu held when an operation of k completed; frees k after its last one. */
static void op_done(bidi_call *k)
{
    if (--k->pending > 0 || !k->ended)
        return;
    clear_sendq(k);
    if (k->send_bb)
        grpc_byte_buffer_destroy(k->send_bb);
    if (k->recv_bb)
        grpc_byte_buffer_destroy(k->recv_bb);
    grpc_metadata_array_destroy(&k->recv_md);
    grpc_metadata_array_destroy(&k->trailing_md);
    grpc_slice_unref(k->status_details);
    grpc_call_unref(k->call);
    gpr_free(k->token);
    etcdc__stream_call_ended(k->b->client);
    free(k);
}

static bool start(bidi_call *k, grpc_op *ops, size_t n, etcdc_stream_tag *tag)
{
    if (grpc_call_start_batch(k->call, ops, n, tag, NULL) != GRPC_CALL_OK)
        return false;
    k->pending++;
    return true;
}

static void start_next_send(bidi_call *k)
{
    if (k->send_in_flight || k->ended || !k->sendq)
        return;
    send_item *it = k->sendq;
    k->sendq = it->next;
    if (!k->sendq)
        k->sendq_tail = &k->sendq;
    k->send_bb = it->bb;
    free(it);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = k->send_bb;
    k->send_in_flight = start(k, &op, 1, &k->send_tag);
    if (!k->send_in_flight) {
        grpc_byte_buffer_destroy(k->send_bb);
        k->send_bb = NULL;
    }
}

static void on_send(void *arg, bool ok)
{
    (void)ok; /* a failed send means a broken stream: on_status reports it */
    bidi_call *k = arg;
    pthread_mutex_t *mu = k->b->mu;
    pthread_mutex_lock(mu);
    grpc_byte_buffer_destroy(k->send_bb);
    k->send_bb = NULL;
    k->send_in_flight = false;
    start_next_send(k);
    op_done(k);
    pthread_mutex_unlock(mu);
}

static void on_start(void *arg, bool ok)
{
    (void)ok;
    bidi_call *k = arg;
    pthread_mutex_t *mu = k->b->mu;
    pthread_mutex_lock(mu);
    op_done(k);
    pthread_mutex_unlock(mu);
}

static void arm_recv(bidi_call *k)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &k->recv_bb;
    start(k, &op, 1, &k->recv_tag);
}

static void on_recv(void *arg, bool ok)
{
    bidi_call *k = arg;
    etcdc_bidi *b = k->b;
    pthread_mutex_lock(b->mu);
    grpc_byte_buffer *bb = k->recv_bb;
    k->recv_bb = NULL;
    if (ok && bb && b->cur == k && !k->ended) {
        b->on_message(b->owner, bb);
        if (b->cur == k && !k->ended) /* the callback may have released the lock */
            arm_recv(k);
    }
    if (bb)
        grpc_byte_buffer_destroy(bb);
    op_done(k);
    pthread_mutex_unlock(b->mu);
}

static void on_status(void *arg, bool ok)
{
    (void)ok;
    bidi_call *k = arg;
    etcdc_bidi *b = k->b;
    etcdc_client *c = b->client;
    uint64_t gen = etcdc__auth_gen(c);
    pthread_mutex_lock(b->mu);
    k->ended = true;
    grpc_status_code status = k->status;
    char *details = grpc_slice_to_c_string(k->status_details);
    bool current = b->cur == k;
    if (current)
        b->cur = NULL;
    op_done(k); /* may free k */
    if (current)
        b->on_closed(b->owner, status, details);
    pthread_mutex_unlock(b->mu);
    /* An expired token ends streams with UNAUTHENTICATED: refresh it before the owner's
     * reconnect (posted with a delay) runs on this same thread. */
    if (current && c->cfg.user &&
        (status == GRPC_STATUS_UNAUTHENTICATED ||
         (status == GRPC_STATUS_INVALID_ARGUMENT && strstr(details, "user name is empty"))))
        etcdc__reauthenticate(c, gen, NULL);
    gpr_free(details);
}

void etcdc__bidi_init(etcdc_bidi *b, etcdc_client *c, const char *method, pthread_mutex_t *mu,
                      void *owner, etcdc_bidi_message_fn on_message, etcdc_bidi_closed_fn on_closed)
{
    memset(b, 0, sizeof *b);
    b->client = c;
    b->method = method;
    b->mu = mu;
    b->owner = owner;
    b->on_message = on_message;
    b->on_closed = on_closed;
}

etcdc_code etcdc__bidi_open(etcdc_bidi *b, etcdc_error *err)
{
    etcdc_client *c = b->client;
    grpc_completion_queue *cq = etcdc__stream_cq(c, err);
    if (!cq)
        return err ? err->code : ETCDC_ERR_CANCELED;
    bidi_call *k = calloc(1, sizeof *k);
    if (!k)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    k->b = b;
    k->sendq_tail = &k->sendq;
    k->send_tag = (etcdc_stream_tag){on_send, k};
    k->recv_tag = (etcdc_stream_tag){on_recv, k};
    k->status_tag = (etcdc_stream_tag){on_status, k};
    k->start_tag = (etcdc_stream_tag){on_start, k};
    k->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                       grpc_slice_from_static_string(b->method), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    etcdc__stream_call_started(c);
    etcdc__count(c, ETCDC_STAT_WATCH);
    size_t md_count = etcdc__call_metadata(c, k->md, true, &k->token);
    grpc_metadata_array_init(&k->recv_md);
    grpc_metadata_array_init(&k->trailing_md);
    k->status_details = grpc_empty_slice();

    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &k->trailing_md;
    ops[0].data.recv_status_on_client.status = &k->status;
    ops[0].data.recv_status_on_client.status_details = &k->status_details;
    start(k, ops, 1, &k->status_tag);

    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = md_count;
    ops[0].data.send_initial_metadata.metadata = k->md;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &k->recv_md;
    start(k, ops, 2, &k->start_tag);
    arm_recv(k);
    b->cur = k;
    return ETCDC_OK;
}

bool etcdc__bidi_is_open(const etcdc_bidi *b)
{
    return b->cur != NULL;
}

void etcdc__bidi_send(etcdc_bidi *b, grpc_byte_buffer *bb)
{
    bidi_call *k = b->cur;
    send_item *it = k ? malloc(sizeof *it) : NULL;
    if (!it) {
        grpc_byte_buffer_destroy(bb);
        return;
    }
    it->bb = bb;
    it->next = NULL;
    *k->sendq_tail = it;
    k->sendq_tail = &it->next;
    start_next_send(k);
}

void etcdc__bidi_cancel(etcdc_bidi *b)
{
    if (b->cur)
        grpc_call_cancel(b->cur->call, NULL);
}
