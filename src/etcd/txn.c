/*
 * txn.c - the transaction builder (If / Then / Else / Commit) and the guarded operations built
 * on it: put-if-absent, compare-and-swap, atomic move, bulk put/delete, multi-get.
 *
 * The builder owns copies of every key and value, so callers may pass temporaries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

#define MAX_TXN_OPS 128 /* etcd's default --max-txn-ops */

size_t etcdc_max_txn_ops(void)
{
    return MAX_TXN_OPS;
}

typedef struct op_list {
    Etcdserverpb__RequestOp **ops;
    size_t count, cap;
} op_list;

struct etcdc_txn {
    Etcdserverpb__Compare **cmps;
    size_t cmp_count, cmp_cap;
    op_list branch[2];
    bool compares_values; /* here or in a nested txn */
    bool raw_values;      /* puts are stored unsealed (lock holder information) */
    bool resend_safe;     /* applying it twice equals applying it once (caller's word) */
    etcdc_code error;     /* the first builder call that failed: later calls do nothing and
                           * commit returns it without sending anything */
};

void etcdc__txn_set_raw(etcdc_txn *t)
{
    if (t)
        t->raw_values = true;
}

void etcdc_txn_set_resend_safe(etcdc_txn *t)
{
    if (t)
        t->resend_safe = true;
}

/* Records the first failure of a builder call; returns the code to give that call. */
static etcdc_code fail(etcdc_txn *t, etcdc_code code)
{
    if (t->error == ETCDC_OK)
        t->error = code;
    return t->error;
}

/* The code a builder call returns without doing anything: no transaction (etcdc_txn_new ran
 * out of memory), or an earlier call failed. ETCDC_OK: go on. */
static etcdc_code refused(const etcdc_txn *t)
{
    return !t ? ETCDC_ERR_NO_MEMORY : t->error;
}

etcdc_code etcdc_txn_set_error(etcdc_txn *t, etcdc_code code)
{
    if (!t)
        return ETCDC_ERR_NO_MEMORY;
    return code == ETCDC_OK ? t->error : fail(t, code);
}

static ProtobufCBinaryData copy_bytes(etcdc_txn *t, const void *p, size_t n)
{
    ProtobufCBinaryData b = {0, NULL};
    if (n == 0 || !p)
        return b;
    b.data = malloc(n);
    if (!b.data) {
        fail(t, ETCDC_ERR_NO_MEMORY);
        return b;
    }
    memcpy(b.data, p, n);
    b.len = n;
    return b;
}

etcdc_txn *etcdc_txn_new(void)
{
    return calloc(1, sizeof(etcdc_txn));
}

static void free_range(Etcdserverpb__RangeRequest *r)
{
    free(r->key.data);
    free(r->range_end.data);
    free(r);
}

/* A nested txn's request: its arrays are the inner builder's, which it owns. */
typedef struct nested_req {
    Etcdserverpb__TxnRequest pb; /* first: op->request_txn points here */
    etcdc_txn *inner;
} nested_req;

static void free_op(Etcdserverpb__RequestOp *op)
{
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: free_range(op->request_range); break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        free(op->request_put->key.data);
        free(op->request_put->value.data);
        free(op->request_put);
        break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        free(op->request_delete_range->key.data);
        free(op->request_delete_range->range_end.data);
        free(op->request_delete_range);
        break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        nested_req *n = (nested_req *)op->request_txn;
        etcdc_txn_free(n->inner);
        free(n);
        break;
    }
    default: break;
    }
    free(op);
}

static void free_compare(Etcdserverpb__Compare *cmp)
{
    free(cmp->key.data);
    free(cmp->range_end.data);
    if (cmp->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE)
        free(cmp->value.data);
    free(cmp);
}

void etcdc_txn_free(etcdc_txn *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cmp_count; i++)
        free_compare(t->cmps[i]);
    free(t->cmps);
    for (int b = 0; b < 2; b++) {
        for (size_t i = 0; i < t->branch[b].count; i++)
            free_op(t->branch[b].ops[i]);
        free(t->branch[b].ops);
    }
    free(t);
}

static bool grow(void **arr, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

/* Adds cmp (owned from here on), unless a copy into it failed or memory runs out. */
static etcdc_code add_compare(etcdc_txn *t, Etcdserverpb__Compare *cmp)
{
    if (t->error || !grow((void **)&t->cmps, &t->cmp_cap, t->cmp_count, sizeof *t->cmps)) {
        free_compare(cmp);
        return fail(t, ETCDC_ERR_NO_MEMORY);
    }
    t->cmps[t->cmp_count++] = cmp;
    return ETCDC_OK;
}

etcdc_code etcdc_txn_if_range(etcdc_txn *t, const void *key, size_t key_len, const void *range_end,
                              size_t range_end_len, etcdc_cmp_target target, etcdc_cmp_op op,
                              int64_t number)
{
    if (refused(t))
        return refused(t);
    if (target == ETCDC_CMP_VALUE || (unsigned)target > ETCDC_CMP_LEASE)
        return fail(t, ETCDC_ERR_INVALID_ARGUMENT); /* values go through etcdc_txn_if_value */
    Etcdserverpb__Compare *cmp = malloc(sizeof *cmp);
    if (!cmp)
        return fail(t, ETCDC_ERR_NO_MEMORY);
    etcdserverpb__compare__init(cmp);
    cmp->result = (Etcdserverpb__Compare__CompareResult)op;
    cmp->target = (Etcdserverpb__Compare__CompareTarget)target;
    cmp->key = copy_bytes(t, key, key_len);
    cmp->range_end = copy_bytes(t, range_end, range_end ? range_end_len : 0);
    switch (target) {
    case ETCDC_CMP_VERSION:
        cmp->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        cmp->version = number;
        break;
    case ETCDC_CMP_CREATE:
        cmp->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        cmp->create_revision = number;
        break;
    case ETCDC_CMP_MOD:
        cmp->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        cmp->mod_revision = number;
        break;
    case ETCDC_CMP_LEASE:
    default:
        cmp->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        cmp->lease = number;
        break;
    }
    return add_compare(t, cmp);
}

etcdc_code etcdc_txn_if(etcdc_txn *t, const void *key, size_t key_len, etcdc_cmp_target target,
                        etcdc_cmp_op op, int64_t number)
{
    return etcdc_txn_if_range(t, key, key_len, NULL, 0, target, op, number);
}

etcdc_code etcdc_txn_if_value(etcdc_txn *t, const void *key, size_t key_len, etcdc_cmp_op op,
                              const void *value, size_t value_len)
{
    if (refused(t))
        return refused(t);
    Etcdserverpb__Compare *cmp = malloc(sizeof *cmp);
    if (!cmp)
        return fail(t, ETCDC_ERR_NO_MEMORY);
    etcdserverpb__compare__init(cmp);
    cmp->result = (Etcdserverpb__Compare__CompareResult)op;
    cmp->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    cmp->key = copy_bytes(t, key, key_len);
    cmp->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    cmp->value = copy_bytes(t, value, value_len);
    t->compares_values = true;
    return add_compare(t, cmp);
}

static etcdc_code add_op(etcdc_txn *t, etcdc_branch b, Etcdserverpb__RequestOp *op)
{
    op_list *l = &t->branch[b == ETCDC_ELSE];
    if (t->error || !grow((void **)&l->ops, &l->cap, l->count, sizeof *l->ops)) {
        free_op(op);
        return fail(t, ETCDC_ERR_NO_MEMORY);
    }
    l->ops[l->count++] = op;
    return ETCDC_OK;
}

static Etcdserverpb__RequestOp *new_op(etcdc_txn *t)
{
    Etcdserverpb__RequestOp *op = malloc(sizeof *op);
    if (!op)
        fail(t, ETCDC_ERR_NO_MEMORY);
    else
        etcdserverpb__request_op__init(op);
    return op;
}

etcdc_code etcdc_txn_put(etcdc_txn *t, etcdc_branch b, const void *key, size_t key_len,
                         const void *value, size_t value_len, int64_t lease)
{
    if (refused(t))
        return refused(t);
    Etcdserverpb__RequestOp *op = new_op(t);
    Etcdserverpb__PutRequest *put = op ? malloc(sizeof *put) : NULL;
    if (!put) {
        free(op);
        return fail(t, ETCDC_ERR_NO_MEMORY);
    }
    etcdserverpb__put_request__init(put);
    put->key = copy_bytes(t, key, key_len);
    put->value = copy_bytes(t, value, value_len);
    put->lease = lease;
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = put;
    return add_op(t, b, op);
}

etcdc_code etcdc_txn_attach_lease(etcdc_txn *t, etcdc_branch b, const void *key, size_t key_len,
                                  int64_t lease)
{
    etcdc_code rc = etcdc_txn_put(t, b, key, key_len, "", 0, lease);
    if (rc == ETCDC_OK) {
        op_list *l = &t->branch[b == ETCDC_ELSE];
        l->ops[l->count - 1]->request_put->ignore_value = true;
    }
    return rc;
}

etcdc_code etcdc_txn_get(etcdc_txn *t, etcdc_branch b, const etcdc_range_req *req)
{
    if (refused(t))
        return refused(t);
    Etcdserverpb__RequestOp *op = new_op(t);
    Etcdserverpb__RangeRequest *r = op ? malloc(sizeof *r) : NULL;
    if (!r) {
        free(op);
        return fail(t, ETCDC_ERR_NO_MEMORY);
    }
    etcdc__range_to_pb(req, r);
    r->key = copy_bytes(t, req->key, req->key_len);
    r->range_end = copy_bytes(t, req->range_end, req->range_end ? req->range_end_len : 0);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op->request_range = r;
    return add_op(t, b, op);
}

etcdc_code etcdc_txn_delete(etcdc_txn *t, etcdc_branch b, const void *key, size_t key_len,
                            const void *range_end, size_t range_end_len, bool prev_kv)
{
    if (refused(t))
        return refused(t);
    Etcdserverpb__RequestOp *op = new_op(t);
    Etcdserverpb__DeleteRangeRequest *d = op ? malloc(sizeof *d) : NULL;
    if (!d) {
        free(op);
        return fail(t, ETCDC_ERR_NO_MEMORY);
    }
    etcdserverpb__delete_range_request__init(d);
    d->key = copy_bytes(t, key, key_len);
    d->range_end = copy_bytes(t, range_end, range_end ? range_end_len : 0);
    d->prev_kv = prev_kv;
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op->request_delete_range = d;
    return add_op(t, b, op);
}

etcdc_code etcdc_txn_nest(etcdc_txn *t, etcdc_branch b, etcdc_txn *inner)
{
    if (refused(t) || refused(inner)) {
        etcdc_code code = refused(t) ? refused(t) : refused(inner);
        etcdc_txn_free(inner);
        return t ? fail(t, code) : code;
    }
    Etcdserverpb__RequestOp *op = new_op(t);
    nested_req *n = op ? malloc(sizeof *n) : NULL;
    if (!n) {
        free(op);
        etcdc_txn_free(inner);
        return fail(t, ETCDC_ERR_NO_MEMORY);
    }
    etcdserverpb__txn_request__init(&n->pb);
    n->inner = inner;
    n->pb.compare = inner->cmps;
    n->pb.n_compare = inner->cmp_count;
    n->pb.success = inner->branch[0].ops;
    n->pb.n_success = inner->branch[0].count;
    n->pb.failure = inner->branch[1].ops;
    n->pb.n_failure = inner->branch[1].count;
    t->compares_values |= inner->compares_values;
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op->request_txn = &n->pb;
    return add_op(t, b, op);
}

size_t etcdc_txn_op_count(const etcdc_txn *t)
{
    if (!t)
        return 0;
    size_t a = t->branch[0].count, b = t->branch[1].count;
    return a > b ? a : b;
}

void etcdc_txn_result_clear(etcdc_txn_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->op_count; i++) {
        etcdc_kvs_clear(&r->ops[i].kvs);
        etcdc_txn_result_clear(r->ops[i].txn);
        free(r->ops[i].txn);
    }
    free(r->ops);
    memset(r, 0, sizeof *r);
}

static etcdc_code convert_response(etcdc_client *c, const Etcdserverpb__TxnResponse *resp,
                                   etcdc_txn_result *out, etcdc_error *err)
{
    out->succeeded = resp->succeeded;
    out->revision = resp->header ? resp->header->revision : 0;
    if (resp->n_responses == 0)
        return ETCDC_OK;
    out->ops = calloc(resp->n_responses, sizeof *out->ops);
    if (!out->ops)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    out->op_count = resp->n_responses;
    for (size_t i = 0; i < resp->n_responses; i++) {
        const Etcdserverpb__ResponseOp *r = resp->responses[i];
        etcdc_op_result *o = &out->ops[i];
        etcdc_code rc = ETCDC_OK;
        switch (r->response_case) {
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
            o->type = ETCDC_OP_RANGE;
            rc = etcdc__kvs_from_range(c, r->response_range, &o->kvs, err);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT: o->type = ETCDC_OP_PUT; break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
            o->type = ETCDC_OP_DELETE;
            o->deleted = r->response_delete_range->deleted;
            rc = etcdc__kvs_append(c, &o->kvs, r->response_delete_range->prev_kvs,
                                   r->response_delete_range->n_prev_kvs, err);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN:
            o->type = ETCDC_OP_TXN;
            o->txn = calloc(1, sizeof *o->txn);
            rc = o->txn ? convert_response(c, r->response_txn, o->txn, err)
                        : etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
            if (o->txn && o->txn->revision == 0)
                o->txn->revision = out->revision;
            break;
        default: break;
        }
        if (rc != ETCDC_OK)
            return rc;
    }
    return ETCDC_OK;
}

etcdc_code etcdc__txn_result_from_pb(etcdc_client *c, const Etcdserverpb__TxnResponse *resp,
                                     etcdc_txn_result *out, etcdc_error *err)
{
    memset(out, 0, sizeof *out);
    return convert_response(c, resp, out, err);
}

/* Sealing makes shallow copies of the request in which every put (nested txns included)
 * carries a sealed value; the builder's own request stays as the caller wrote it. Every copy
 * is recorded in an arena, freed as a whole after the send. */
typedef struct arena {
    void **blocks;
    size_t count, cap;
} arena;

static void *arena_keep(arena *a, void *p)
{
    if (p && !grow((void **)&a->blocks, &a->cap, a->count, sizeof *a->blocks)) {
        free(p);
        return NULL;
    }
    if (p)
        a->blocks[a->count++] = p;
    return p;
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->count; i++)
        free(a->blocks[i]);
    free(a->blocks);
}

static etcdc_code seal_ops(etcdc_client *c, Etcdserverpb__RequestOp **ops, size_t count, arena *a,
                           Etcdserverpb__RequestOp ***out, etcdc_error *err);

static etcdc_code seal_op(etcdc_client *c, Etcdserverpb__RequestOp *op, arena *a,
                          Etcdserverpb__RequestOp **out, etcdc_error *err)
{
    *out = op;
    if (op->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT &&
        op->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
        return ETCDC_OK;
    Etcdserverpb__RequestOp *copy = arena_keep(a, malloc(sizeof *copy));
    if (!copy)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    *copy = *op;
    *out = copy;
    if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) {
        Etcdserverpb__TxnRequest *txn = arena_keep(a, malloc(sizeof *txn));
        if (!txn)
            return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        *txn = *op->request_txn;
        copy->request_txn = txn;
        etcdc_code rc = seal_ops(c, txn->success, txn->n_success, a, &txn->success, err);
        return rc ? rc : seal_ops(c, txn->failure, txn->n_failure, a, &txn->failure, err);
    }
    if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT &&
        op->request_put->ignore_value)
        return ETCDC_OK; /* no value sent: the stored one stays as it is */
    Etcdserverpb__PutRequest *put = arena_keep(a, malloc(sizeof *put));
    if (!put)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    *put = *op->request_put;
    copy->request_put = put;
    uint8_t *sealed = NULL;
    size_t len = 0;
    etcdc_code rc =
        etcdc__seal(&c->cfg, op->request_put->key.data, op->request_put->key.len,
                    op->request_put->value.data, op->request_put->value.len, &sealed, &len, err);
    put->value = (ProtobufCBinaryData){0, NULL};
    if (rc == ETCDC_OK && !arena_keep(a, sealed))
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    if (rc == ETCDC_OK)
        put->value = (ProtobufCBinaryData){len, sealed};
    return rc;
}

static etcdc_code seal_ops(etcdc_client *c, Etcdserverpb__RequestOp **ops, size_t count, arena *a,
                           Etcdserverpb__RequestOp ***out, etcdc_error *err)
{
    *out = ops;
    if (count == 0)
        return ETCDC_OK;
    Etcdserverpb__RequestOp **copies = arena_keep(a, calloc(count, sizeof *copies));
    if (!copies)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    *out = copies;
    for (size_t i = 0; i < count; i++) {
        etcdc_code rc = seal_op(c, ops[i], a, &copies[i], err);
        if (rc != ETCDC_OK)
            return rc;
    }
    return ETCDC_OK;
}

/* The operation budget a request needs as etcd counts it: at each level the largest of its
 * compares, Then and Else ops, and a nested txn gets only what its parent level left over. */
static size_t ops_needed(const Etcdserverpb__TxnRequest *pb)
{
    size_t level = pb->n_compare;
    level = pb->n_success > level ? pb->n_success : level;
    level = pb->n_failure > level ? pb->n_failure : level;
    size_t deepest = 0;
    for (int b = 0; b < 2; b++) {
        Etcdserverpb__RequestOp **ops = b ? pb->failure : pb->success;
        size_t n = b ? pb->n_failure : pb->n_success;
        for (size_t i = 0; i < n; i++) {
            if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
                continue;
            size_t inner = ops_needed(ops[i]->request_txn);
            deepest = inner > deepest ? inner : deepest;
        }
    }
    return level + deepest;
}

/* A txn that only reads (nested txns included) may be retried like a read. */
static bool only_reads(const Etcdserverpb__TxnRequest *pb)
{
    for (int b = 0; b < 2; b++) {
        Etcdserverpb__RequestOp **ops = b ? pb->failure : pb->success;
        size_t n = b ? pb->n_failure : pb->n_success;
        for (size_t i = 0; i < n; i++) {
            if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) {
                if (!only_reads(ops[i]->request_txn))
                    return false;
            } else if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
                return false;
            }
        }
    }
    return true;
}

etcdc_code etcdc_txn_commit(etcdc_client *c, const etcdc_txn *t, etcdc_txn_result *out,
                            etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    if (refused(t))
        return etcdc__set_error(
            err, refused(t), 0, "building the transaction failed: %s (nothing sent)",
            refused(t) == ETCDC_ERR_NO_MEMORY ? "out of memory" : etcdc_strerror(refused(t)));
    Etcdserverpb__TxnRequest pb = ETCDSERVERPB__TXN_REQUEST__INIT;
    pb.compare = t->cmps;
    pb.n_compare = t->cmp_count;
    pb.success = t->branch[0].ops;
    pb.n_success = t->branch[0].count;
    pb.failure = t->branch[1].ops;
    pb.n_failure = t->branch[1].count;
    size_t ops = ops_needed(&pb);
    if (ops > MAX_TXN_OPS)
        return etcdc__set_error(
            err, ETCDC_ERR_TOO_MANY_OPS, 0,
            "transaction needs %zu operations (compares and nested txns count); etcd "
            "accepts at most %d",
            ops, MAX_TXN_OPS);
    bool seal = etcdc__crypt_on(&c->cfg) && !t->raw_values;
    if (t->compares_values && etcdc__crypt_on(&c->cfg))
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                                "value compares cannot work on encrypted values");
    bool read_only = only_reads(&pb);
    arena sealed = {0};
    etcdc_code rc = ETCDC_OK;
    if (seal) {
        rc = seal_ops(c, pb.success, pb.n_success, &sealed, &pb.success, err);
        if (rc == ETCDC_OK)
            rc = seal_ops(c, pb.failure, pb.n_failure, &sealed, &pb.failure, err);
    }
    Etcdserverpb__TxnResponse *resp = NULL;
    if (rc == ETCDC_OK)
        rc = etcdc__unary(c, "/etcdserverpb.KV/Txn", ETCDC_STAT_TXN,
                          read_only        ? ETCDC_RETRY_IDEMPOTENT
                          : t->resend_safe ? ETCDC_RETRY_WRITE
                                           : ETCDC_RETRY_UNSENT,
                          &pb.base, &etcdserverpb__txn_response__descriptor,
                          (ProtobufCMessage **)&resp, err);
    arena_free(&sealed);
    if (rc == ETCDC_OK) {
        rc = convert_response(c, resp, out, err);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (rc != ETCDC_OK)
            etcdc_txn_result_clear(out);
    }
    return etcdc__ok_with_note(err, rc);
}

/* ---- guarded operations ---- */

/* Commits t; ETCDC_ERR_COMPARE_FAILED when the compares did not hold, with `lost` (what the
 * failed compare means, naming the operation and key) as the message. */
static etcdc_code commit_guarded(etcdc_client *c, etcdc_txn *t, int64_t *out_revision,
                                 etcdc_txn_result *keep, const char *lost, etcdc_error *err)
{
    etcdc_txn_result r;
    etcdc_code rc = etcdc_txn_commit(c, t, &r, err);
    etcdc_txn_free(t);
    if (rc != ETCDC_OK)
        return rc;
    if (out_revision)
        *out_revision = r.revision;
    if (!r.succeeded)
        rc = etcdc__set_error(err, ETCDC_ERR_COMPARE_FAILED, 0, "%s",
                              lost ? lost : "compare failed");
    if (keep)
        *keep = r;
    else
        etcdc_txn_result_clear(&r);
    return rc;
}

etcdc_code etcdc_put_if_absent(etcdc_client *c, const void *key, size_t key_len, const void *value,
                               size_t value_len, int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    return etcdc_cas_revision(c, key, key_len, 0, value, value_len, out_revision, err);
}

etcdc_code etcdc_cas_revision(etcdc_client *c, const void *key, size_t key_len,
                              int64_t mod_revision, const void *value, size_t value_len,
                              int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (key_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty key");
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    etcdc_txn_if(t, key, key_len, ETCDC_CMP_MOD, ETCDC_EQUAL, mod_revision);
    etcdc_txn_put(t, ETCDC_THEN, key, key_len, value, value_len, 0);
    char lost[300];
    if (mod_revision == 0)
        snprintf(lost, sizeof lost, "put-if-absent '%.*s': the key exists",
                 ETCDC_KEYF(key, key_len));
    else
        snprintf(lost, sizeof lost,
                 "compare-and-swap '%.*s': the key's mod revision is no longer %lld",
                 ETCDC_KEYF(key, key_len), (long long)mod_revision);
    return commit_guarded(c, t, out_revision, NULL, lost, err);
}

/* The client-side half of a value compare: reads the key and gives the mod revision at which
 * its value equals `expected` (COMPARE_FAILED otherwise, NOT_FOUND when absent). Guarding the
 * write by that revision works unchanged when values are encrypted (ciphertexts of equal
 * plaintexts differ, so etcd cannot compare them). */
static etcdc_code revision_if_value(etcdc_client *c, const char *op, const void *key,
                                    size_t key_len, const void *expected, size_t expected_len,
                                    int64_t *rev, etcdc_error *err)
{
    etcdc_kv cur;
    etcdc_code rc = etcdc_get(c, key, key_len, &cur, err);
    if (rc != ETCDC_OK)
        return rc;
    bool equal = cur.value_len == expected_len &&
                 (expected_len == 0 || memcmp(cur.value, expected, expected_len) == 0);
    *rev = cur.mod_revision;
    etcdc_kv_clear(&cur);
    if (!equal)
        return etcdc__set_error(err, ETCDC_ERR_COMPARE_FAILED, 0,
                                "%s '%.*s': the value differs from the expected one", op,
                                ETCDC_KEYF(key, key_len));
    return ETCDC_OK;
}

etcdc_code etcdc_cas_value(etcdc_client *c, const void *key, size_t key_len, const void *expected,
                           size_t expected_len, const void *value, size_t value_len,
                           int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    int64_t rev = 0;
    etcdc_code rc =
        revision_if_value(c, "compare-and-swap", key, key_len, expected, expected_len, &rev, err);
    if (rc != ETCDC_OK)
        return rc;
    return etcdc_cas_revision(c, key, key_len, rev, value, value_len, out_revision, err);
}

etcdc_code etcdc_delete_if_revision(etcdc_client *c, const void *key, size_t key_len,
                                    int64_t mod_revision, int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (key_len == 0 || mod_revision <= 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                                "delete-if-revision needs a key and a revision > 0");
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    etcdc_txn_if(t, key, key_len, ETCDC_CMP_MOD, ETCDC_EQUAL, mod_revision);
    etcdc_txn_delete(t, ETCDC_THEN, key, key_len, NULL, 0, false);
    char lost[300];
    snprintf(lost, sizeof lost,
             "compare-and-delete '%.*s': the key is gone or its mod revision is no longer %lld",
             ETCDC_KEYF(key, key_len), (long long)mod_revision);
    return commit_guarded(c, t, out_revision, NULL, lost, err);
}

etcdc_code etcdc_delete_if_value(etcdc_client *c, const void *key, size_t key_len,
                                 const void *expected, size_t expected_len, int64_t *out_revision,
                                 etcdc_error *err)
{
    etcdc__clear_error(err);
    int64_t rev = 0;
    etcdc_code rc =
        revision_if_value(c, "compare-and-delete", key, key_len, expected, expected_len, &rev, err);
    if (rc != ETCDC_OK)
        return rc;
    return etcdc_delete_if_revision(c, key, key_len, rev, out_revision, err);
}

etcdc_code etcdc_move_key(etcdc_client *c, const void *from, size_t from_len, const void *to,
                          size_t to_len, bool overwrite, int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (from_len == 0 || to_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty key");
    if (from_len == to_len && memcmp(from, to, from_len) == 0)
        return ETCDC_OK;
    etcdc_kv cur;
    etcdc_code rc = etcdc_get(c, from, from_len, &cur, err);
    if (rc != ETCDC_OK)
        return rc;
    etcdc_txn *t = etcdc_txn_new();
    if (!t) {
        etcdc_kv_clear(&cur);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    etcdc_txn_if(t, from, from_len, ETCDC_CMP_MOD, ETCDC_EQUAL, cur.mod_revision);
    if (!overwrite)
        etcdc_txn_if(t, to, to_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    etcdc_txn_put(t, ETCDC_THEN, to, to_len, cur.value, cur.value_len, cur.lease);
    etcdc_txn_delete(t, ETCDC_THEN, from, from_len, NULL, 0, false);
    etcdc_kv_clear(&cur);
    char lost[500];
    snprintf(lost, sizeof lost, "move '%.*s' to '%.*s': %s", ETCDC_KEYF(from, from_len),
             ETCDC_KEYF(to, to_len),
             overwrite ? "the source changed meanwhile"
                       : "the target exists, or the source changed meanwhile");
    return commit_guarded(c, t, out_revision, NULL, lost, err);
}

etcdc_code etcdc_bulk_put(etcdc_client *c, const etcdc_pair *pairs, size_t n, int64_t *out_revision,
                          etcdc_error *err)
{
    etcdc__clear_error(err);
    if (n > MAX_TXN_OPS)
        return etcdc__set_error(err, ETCDC_ERR_TOO_MANY_OPS, 0,
                                "bulk put of %zu keys; one transaction holds at most %d", n,
                                MAX_TXN_OPS);
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (pairs[i].key_len == 0) {
            etcdc_txn_free(t);
            return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty key at %zu", i);
        }
        etcdc_txn_put(t, ETCDC_THEN, pairs[i].key, pairs[i].key_len, pairs[i].value,
                      pairs[i].value_len, 0);
    }
    return commit_guarded(c, t, out_revision, NULL, NULL, err);
}

etcdc_code etcdc_bulk_delete(etcdc_client *c, const void *const *keys, const size_t *key_lens,
                             size_t n, int64_t *out_deleted, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (n > MAX_TXN_OPS)
        return etcdc__set_error(err, ETCDC_ERR_TOO_MANY_OPS, 0,
                                "bulk delete of %zu keys; one transaction holds at most %d", n,
                                MAX_TXN_OPS);
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    for (size_t i = 0; i < n; i++)
        etcdc_txn_delete(t, ETCDC_THEN, keys[i], key_lens[i], NULL, 0, false);
    etcdc_txn_result r;
    etcdc_code rc = commit_guarded(c, t, NULL, &r, NULL, err);
    if (rc == ETCDC_OK && out_deleted) {
        *out_deleted = 0;
        for (size_t i = 0; i < r.op_count; i++)
            *out_deleted += r.ops[i].deleted;
    }
    if (rc == ETCDC_OK)
        etcdc_txn_result_clear(&r);
    return rc;
}

etcdc_code etcdc_get_multiple(etcdc_client *c, const void *const *keys, const size_t *key_lens,
                              size_t n, etcdc_kvs *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    if (n > MAX_TXN_OPS)
        return etcdc__set_error(err, ETCDC_ERR_TOO_MANY_OPS, 0,
                                "get of %zu keys; one transaction holds at most %d", n,
                                MAX_TXN_OPS);
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        etcdc_range_req req = {.key = keys[i], .key_len = key_lens[i]};
        etcdc_txn_get(t, ETCDC_THEN, &req);
    }
    etcdc_txn_result r;
    etcdc_code rc = commit_guarded(c, t, NULL, &r, NULL, err);
    if (rc != ETCDC_OK)
        return rc;
    out->revision = r.revision;
    for (size_t i = 0; i < r.op_count; i++) {
        etcdc_kvs *k = &r.ops[i].kvs;
        if (k->count == 0)
            continue;
        etcdc_kv *grown = realloc(out->kvs, (out->count + 1) * sizeof *grown);
        if (!grown) {
            rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
            break;
        }
        out->kvs = grown;
        out->kvs[out->count++] = k->kvs[0];
        memset(&k->kvs[0], 0, sizeof k->kvs[0]);
    }
    out->total = (int64_t)out->count;
    etcdc_txn_result_clear(&r);
    if (rc != ETCDC_OK)
        etcdc_kvs_clear(out);
    return rc;
}
