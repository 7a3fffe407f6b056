/*
 * fuzz_response.c - libFuzzer target for what libetcdc does with etcd's answers: arbitrary
 * bytes are decoded as the protobuf response of one RPC (through etcdc__unpack, as the
 * transport does) and handed to the library's own conversion code. Whatever the server sends,
 * the library must not crash, leak or read out of bounds, and what it returns must match the
 * decoded message.
 *
 * Input: byte 0 = selector (bits 0-1: the RPC) and flags (bit 2: encryption on, bit 3: allow
 * plaintext); then
 *   0 RangeResponse          -> etcdc__kvs_from_range
 *   1 TxnResponse            -> etcdc__txn_result_from_pb (nested txns, ranges, deletes)
 *   2 DeleteRangeResponse    -> etcdc__kvs_append of prev_kvs (as a txn delete does)
 *   3 LeaseKeepAliveResponse -> the keep-alive stream's message handler (lease.c), with the
 *     rest split into frames (fuzz_common.h) = successive messages on the stream
 */
#include "fuzz_common.h"

/* The keep-alive stream's handler is static: compile lease.c into this target. */
#include "../../src/etcd/lease.c"

static void check_kvs(const etcdc_client *c, Mvccpb__KeyValue **pbs, size_t n, const etcdc_kvs *kvs)
{
    REQUIRE(kvs->count == n);
    for (size_t i = 0; i < n; i++)
        fuzz_check_kv(c, pbs[i], &kvs->kvs[i]);
}

static void check_txn(const etcdc_client *c, const Etcdserverpb__TxnResponse *pb,
                      const etcdc_txn_result *r)
{
    REQUIRE(r->succeeded == pb->succeeded && r->op_count == pb->n_responses);
    for (size_t i = 0; i < pb->n_responses; i++) {
        const Etcdserverpb__ResponseOp *op = pb->responses[i];
        const etcdc_op_result *o = &r->ops[i];
        switch (op->response_case) {
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
            REQUIRE(o->type == ETCDC_OP_RANGE);
            check_kvs(c, op->response_range->kvs, op->response_range->n_kvs, &o->kvs);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
            REQUIRE(o->type == ETCDC_OP_DELETE);
            REQUIRE(o->deleted == op->response_delete_range->deleted);
            check_kvs(c, op->response_delete_range->prev_kvs, op->response_delete_range->n_prev_kvs,
                      &o->kvs);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN:
            REQUIRE(o->type == ETCDC_OP_TXN && o->txn);
            check_txn(c, op->response_txn, o->txn);
            break;
        default: REQUIRE(o->kvs.count == 0 && !o->txn); break;
        }
    }
}

/* Levels of nested transactions: etcdc__unpack refuses answers nested deeper than 512
 * messages (two per level), which protobuf-c would unpack by unbounded recursion. */
static size_t txn_levels(const Etcdserverpb__TxnResponse *pb)
{
    size_t deepest = 0;
    for (size_t i = 0; i < pb->n_responses; i++) {
        const Etcdserverpb__ResponseOp *op = pb->responses[i];
        if (op->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN) {
            size_t d = txn_levels(op->response_txn);
            deepest = d > deepest ? d : deepest;
        }
    }
    return 1 + deepest;
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                size_t len)
{
    grpc_byte_buffer *bb = fuzz_byte_buffer(data, len);
    ProtobufCMessage *m = etcdc__unpack(desc, bb);
    grpc_byte_buffer_destroy(bb);
    return m;
}

static void fuzz_range(etcdc_client *c, const uint8_t *data, size_t len)
{
    Etcdserverpb__RangeResponse *m =
        (Etcdserverpb__RangeResponse *)unpack(&etcdserverpb__range_response__descriptor, data, len);
    if (!m)
        return;
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    if (etcdc__kvs_from_range(c, m, &kvs, &err) == ETCDC_OK) {
        check_kvs(c, m->kvs, m->n_kvs, &kvs);
        REQUIRE(kvs.more == m->more && kvs.total == m->count);
    }
    etcdc_kvs_clear(&kvs);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void fuzz_txn(etcdc_client *c, const uint8_t *data, size_t len)
{
    Etcdserverpb__TxnResponse *m =
        (Etcdserverpb__TxnResponse *)unpack(&etcdserverpb__txn_response__descriptor, data, len);
    if (!m)
        return;
    REQUIRE(txn_levels(m) <= 257); /* 512 nested messages: 2 per level below the top */
    etcdc_txn_result r;
    etcdc_error err = {0};
    if (etcdc__txn_result_from_pb(c, m, &r, &err) == ETCDC_OK)
        check_txn(c, m, &r);
    etcdc_txn_result_clear(&r);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void fuzz_delete(etcdc_client *c, const uint8_t *data, size_t len)
{
    Etcdserverpb__DeleteRangeResponse *m = (Etcdserverpb__DeleteRangeResponse *)unpack(
        &etcdserverpb__delete_range_response__descriptor, data, len);
    if (!m)
        return;
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    if (etcdc__kvs_append(c, &kvs, m->prev_kvs, m->n_prev_kvs, &err) == ETCDC_OK)
        check_kvs(c, m->prev_kvs, m->n_prev_kvs, &kvs);
    etcdc_kvs_clear(&kvs);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* ---- the keep-alive stream ---- */

#define N_KA 3
typedef struct ka_state {
    int64_t id;
    int calls;
    bool lost;
} ka_state;

static void on_renewal(void *arg, int64_t id, int64_t ttl)
{
    ka_state *s = arg;
    REQUIRE(id == s->id);
    REQUIRE(!s->lost); /* a lost lease is reported once and never renewed after */
    s->calls++;
    if (ttl <= 0)
        s->lost = true;
}

static void fuzz_keepalive(etcdc_client *c, const uint8_t *data, size_t len)
{
    struct etcdc_lease_hub h = {.client = c};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    ka_state st[N_KA];
    etcdc_keepalive ka[N_KA];
    memset(ka, 0, sizeof ka);
    for (int i = 0; i < N_KA; i++) {
        st[i] = (ka_state){.id = i + 1};
        ka[i] = (etcdc_keepalive){.client = c,
                                  .id = i + 1,
                                  .cb = on_renewal,
                                  .arg = &st[i],
                                  .ttl = 10,
                                  .next = i + 1 < N_KA ? &ka[i + 1] : NULL};
    }
    h.kas = &ka[0];
    once_waiter w = {.id = 2};
    h.waiters = &w;

    const uint8_t *frame;
    size_t frame_len;
    pthread_mutex_lock(&h.mu);
    while (fuzz_next_frame(&data, &len, &frame, &frame_len)) {
        grpc_byte_buffer *bb = fuzz_byte_buffer(frame, frame_len);
        on_message(&h, bb); /* called with the hub's mutex held, as bidi.c does */
        grpc_byte_buffer_destroy(bb);
    }
    pthread_mutex_unlock(&h.mu);
    for (int i = 0; i < N_KA; i++)
        REQUIRE(ka[i].ended == st[i].lost);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    etcdc_client c;
    fuzz_client_init(&c, data[0] & 4, data[0] & 8);
    switch (data[0] & 3) {
    case 0: fuzz_range(&c, data + 1, size - 1); break;
    case 1: fuzz_txn(&c, data + 1, size - 1); break;
    case 2: fuzz_delete(&c, data + 1, size - 1); break;
    case 3: fuzz_keepalive(&c, data + 1, size - 1); break;
    }
    return 0;
}
