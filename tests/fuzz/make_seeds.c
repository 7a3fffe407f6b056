/*
 * make_seeds.c - writes the seed corpora of the fuzz targets:
 *
 *   fuzz_make_seeds DIR      (DIR = tests/fuzz/corpus; files are overwritten)
 *
 * The protobuf seeds are real encodings (protobuf-c packing of the etcd messages, the same
 * wire format etcd sends), framed as each target reads them (see the targets' headers); the
 * envelope seeds are sealed with the fuzz test keys (fuzz_common.h), so that the "value opens"
 * paths are reached from the first run. Sealing uses a fresh nonce, so re-running changes the
 * envelope bytes (not what they cover).
 */
#include <errno.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "names.h"

static const char *root;

static void write_seed(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* A growing byte string: selector bytes, frames, packed messages. */
typedef struct buf {
    uint8_t data[65536];
    size_t len;
} buf;

static void put_bytes(buf *b, const void *p, size_t n)
{
    REQUIRE(b->len + n <= sizeof b->data);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_byte(buf *b, uint8_t v)
{
    put_bytes(b, &v, 1);
}

static void put_msg(buf *b, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    REQUIRE(b->len + n <= sizeof b->data);
    b->len += protobuf_c_message_pack(m, b->data + b->len);
}

static void put_frame(buf *b, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    REQUIRE(n < 65536);
    put_byte(b, (uint8_t)(n >> 8));
    put_byte(b, (uint8_t)n);
    put_msg(b, m);
}

static ProtobufCBinaryData bytes(const void *p, size_t n)
{
    return (ProtobufCBinaryData){.len = n, .data = (uint8_t *)p};
}

static Mvccpb__KeyValue kv(const char *key, const void *value, size_t value_len, int64_t rev)
{
    Mvccpb__KeyValue k = MVCCPB__KEY_VALUE__INIT;
    k.key = bytes(key, strlen(key));
    k.value = bytes(value, value_len);
    k.create_revision = rev;
    k.mod_revision = rev;
    k.version = 1;
    return k;
}

/* ---- fuzz_names: flags byte + component / display name ---- */

static void names_seeds(void)
{
    static const struct {
        const char *name;
        bool at_root;
        const char *bytes;
        size_t len;
    } s[] = {
        {"plain", false, "abc", 3},
        {"pct-inside", false, "50%", 3},
        {"empty", false, "", 0},
        {"dotdot", false, "..", 2},
        {"nul", false, "a\0b", 3},
        {"pct-first", false, "%x", 2},
        {"self-value", false, "%value", 6},
        {"stats-root", true, ".etcdfs", 7},
        {"escaped-name", false, "%a%00b", 6},
        {"hash-name", false, "%x%~0123456789abcdef", 20},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        buf b = {.len = 0};
        put_byte(&b, s[i].at_root);
        put_bytes(&b, s[i].bytes, s[i].len);
        write_seed("fuzz_names", s[i].name, b.data, b.len);
    }
    /* long components: hashed display names, and one such name itself */
    buf b = {.len = 0};
    put_byte(&b, 0);
    for (int i = 0; i < 300; i++)
        put_byte(&b, i % 7 ? 'L' : '%');
    write_seed("fuzz_names", "long", b.data, b.len);
    char name[NAMES_MAX + 1];
    size_t n = names_to_display(b.data + 1, b.len - 1, false, name);
    b.len = 1;
    put_bytes(&b, name, n);
    write_seed("fuzz_names", "long-name", b.data, b.len);
}

/* ---- fuzz_crypt: flags, key length, key, body ---- */

static void sealed(const char *key, const char *plain, uint8_t **env, size_t *env_len)
{
    etcdc_config cfg;
    fuzz_config_init(&cfg, true, false, false);
    etcdc_error err;
    REQUIRE(etcdc__seal(&cfg, key, strlen(key), plain, strlen(plain), env, env_len, &err) ==
            ETCDC_OK);
}

static void crypt_seed(const char *name, uint8_t flags, const char *key, const void *body,
                       size_t body_len)
{
    buf b = {.len = 0};
    put_byte(&b, flags);
    put_byte(&b, (uint8_t)strlen(key));
    put_bytes(&b, key, strlen(key));
    put_bytes(&b, body, body_len);
    write_seed("fuzz_crypt", name, b.data, b.len);
}

static void crypt_seeds(void)
{
    uint8_t *env;
    size_t env_len;
    sealed("/app/config", "secret value", &env, &env_len);
    crypt_seed("envelope", 0, "/app/config", env, env_len);
    crypt_seed("envelope-wrong-key", 0, "/app/other", env, env_len);
    crypt_seed("envelope-old-key-only", 2, "/app/config", env, env_len);
    crypt_seed("envelope-truncated", 0, "/app/config", env, env_len - 1);
    crypt_seed("plaintext-allowed", 1, "/k", "hello", 5);
    crypt_seed("plaintext-refused", 0, "/k", "hello", 5);
    crypt_seed("empty", 0, "", "", 0);
    crypt_seed("header-only", 0, "/k", env, 16);
    free(env);
}

/* ---- fuzz_response: selector byte + one message (or frames for the keep-alive stream) ---- */

static Etcdserverpb__ResponseHeader header(int64_t rev)
{
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.cluster_id = 0x1234;
    h.member_id = 0x5678;
    h.revision = rev;
    h.raft_term = 2;
    return h;
}

static void response_seed(const char *name, uint8_t selector, const ProtobufCMessage *m)
{
    buf b = {.len = 0};
    put_byte(&b, selector);
    put_msg(&b, m);
    write_seed("fuzz_response", name, b.data, b.len);
}

static void response_seeds(void)
{
    Etcdserverpb__ResponseHeader hdr = header(42);
    uint8_t *env;
    size_t env_len;
    sealed("/app/b", "sealed value", &env, &env_len);
    Mvccpb__KeyValue a = kv("/app/a", "one", 3, 40), bb = kv("/app/b", "two", 3, 41),
                     sb = kv("/app/b", env, env_len, 41), m = kv("/app/d/", "", 0, 39);
    Mvccpb__KeyValue *plain_kvs[] = {&a, &bb, &m}, *sealed_kvs[] = {&a, &sb, &m};

    Etcdserverpb__RangeResponse range = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    range.header = &hdr;
    range.kvs = plain_kvs;
    range.n_kvs = 3;
    range.count = 5;
    range.more = true;
    response_seed("range", 0, &range.base);
    range.kvs = sealed_kvs; /* selector bit 2: encryption on; "one" fails, the envelope opens */
    response_seed("range-encrypted", 4, &range.base);
    response_seed("range-encrypted-plaintext-allowed", 4 | 8, &range.base);

    Etcdserverpb__DeleteRangeResponse del = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
    del.header = &hdr;
    del.deleted = 2;
    del.prev_kvs = plain_kvs;
    del.n_prev_kvs = 2;
    response_seed("delete-prev-kvs", 2, &del.base);

    /* Txn: [range, put, delete, nested txn [range]] */
    Etcdserverpb__PutResponse put = ETCDSERVERPB__PUT_RESPONSE__INIT;
    put.header = &hdr;
    Etcdserverpb__RangeResponse inner_range = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    inner_range.kvs = sealed_kvs + 1;
    inner_range.n_kvs = 1;
    inner_range.count = 1;
    Etcdserverpb__ResponseOp inner_op = ETCDSERVERPB__RESPONSE_OP__INIT;
    inner_op.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
    inner_op.response_range = &inner_range;
    Etcdserverpb__ResponseOp *inner_ops[] = {&inner_op};
    Etcdserverpb__TxnResponse inner = ETCDSERVERPB__TXN_RESPONSE__INIT;
    inner.succeeded = true;
    inner.responses = inner_ops;
    inner.n_responses = 1;
    Etcdserverpb__ResponseOp ops[4];
    for (int i = 0; i < 4; i++)
        etcdserverpb__response_op__init(&ops[i]);
    ops[0].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
    ops[0].response_range = &range;
    ops[1].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
    ops[1].response_put = &put;
    ops[2].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
    ops[2].response_delete_range = &del;
    ops[3].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
    ops[3].response_txn = &inner;
    Etcdserverpb__ResponseOp *op_ptrs[] = {&ops[0], &ops[1], &ops[2], &ops[3]};
    Etcdserverpb__TxnResponse txn = ETCDSERVERPB__TXN_RESPONSE__INIT;
    txn.header = &hdr;
    txn.succeeded = true;
    txn.responses = op_ptrs;
    txn.n_responses = 4;
    range.kvs = plain_kvs;
    response_seed("txn", 1, &txn.base);
    response_seed("txn-encrypted", 1 | 4, &txn.base);
    txn.succeeded = false;
    txn.n_responses = 0;
    response_seed("txn-failed-empty", 1, &txn.base);

    /* keep-alive stream: renewals of 1 and 3, lease 2 lost, a renewal of 2 after that */
    buf b = {.len = 0};
    put_byte(&b, 3);
    const int64_t answers[][2] = {{1, 10}, {3, 5}, {2, 0}, {2, 10}, {9, 1}};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        Etcdserverpb__LeaseKeepAliveResponse ka = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
        ka.header = &hdr;
        ka.id = answers[i][0];
        ka.ttl = answers[i][1];
        put_frame(&b, &ka.base);
    }
    write_seed("fuzz_response", "keepalive-stream", b.data, b.len);
    free(env);
}

/* ---- fuzz_watch: flags byte + frames of WatchResponse ---- */

static void watch_seeds(void)
{
    Etcdserverpb__ResponseHeader h7 = header(7), h12 = header(12), h20 = header(20);
    Mvccpb__KeyValue k8 = kv("/w/a", "v8", 2, 8), k9 = kv("/w/b", "v9", 2, 9),
                     k11 = kv("/w/c", "v11", 3, 11), k12 = kv("/w/c", "v12", 3, 12);
    Mvccpb__Event e8 = MVCCPB__EVENT__INIT, e9 = MVCCPB__EVENT__INIT, e11 = MVCCPB__EVENT__INIT,
                  e12 = MVCCPB__EVENT__INIT;
    e8.kv = &k8;
    e9.kv = &k9;
    e9.type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
    e9.prev_kv = &k8;
    e11.kv = &k11;
    e12.kv = &k12;
    Mvccpb__Event *ev89[] = {&e8, &e9}, *ev11[] = {&e11}, *ev12[] = {&e12};

    Etcdserverpb__WatchResponse created = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                events = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                progress = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                frag = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                last = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                cancel = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                compacted = ETCDSERVERPB__WATCH_RESPONSE__INIT,
                                refused = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    created.header = &h7;
    created.watch_id = 1;
    created.created = true;
    events.header = &h12;
    events.watch_id = 1;
    events.events = ev89;
    events.n_events = 2;
    progress.header = &h12;
    progress.watch_id = -1;
    frag.header = &h12;
    frag.watch_id = 3;
    frag.fragment = true;
    frag.events = ev11;
    frag.n_events = 1;
    last.header = &h12;
    last.watch_id = 3;
    last.events = ev12;
    last.n_events = 1;
    cancel.header = &h20;
    cancel.watch_id = 2;
    cancel.canceled = true;
    cancel.cancel_reason = "mvcc: required revision has been compacted";
    compacted.header = &h20;
    compacted.watch_id = 3;
    compacted.canceled = true;
    compacted.compact_revision = 15;
    refused.header = &h20;
    refused.watch_id = -1;
    refused.created = true;
    refused.canceled = true;
    refused.cancel_reason = "etcdserver: permission denied";

    buf b = {.len = 0};
    put_byte(&b, 0);
    put_frame(&b, &created.base);
    put_frame(&b, &events.base);
    put_frame(&b, &events.base); /* the same answer again: nothing is delivered twice */
    put_frame(&b, &progress.base);
    write_seed("fuzz_watch", "created-events-progress", b.data, b.len);

    b.len = 1;
    put_frame(&b, &frag.base);
    put_frame(&b, &frag.base);
    put_frame(&b, &last.base);
    put_frame(&b, &compacted.base);
    put_frame(&b, &last.base);
    write_seed("fuzz_watch", "fragments-compacted", b.data, b.len);

    /* regression (watch.c keep_fragment): pieces without events, then the last piece */
    Etcdserverpb__WatchResponse empty_frag = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    empty_frag.header = &h12;
    empty_frag.watch_id = 3;
    empty_frag.fragment = true;
    b.len = 1;
    put_frame(&b, &empty_frag.base);
    put_frame(&b, &empty_frag.base);
    put_frame(&b, &last.base);
    write_seed("fuzz_watch", "regress-empty-fragments", b.data, b.len);

    b.len = 1;
    put_frame(&b, &refused.base);
    put_frame(&b, &cancel.base);
    put_frame(&b, &created.base);
    write_seed("fuzz_watch", "refused-canceled", b.data, b.len);

    /* encrypted: the event value is an envelope that opens */
    uint8_t *env;
    size_t env_len;
    sealed("/w/a", "sealed", &env, &env_len);
    k8.value = bytes(env, env_len);
    b.len = 0;
    put_byte(&b, 1);
    put_frame(&b, &created.base);
    put_frame(&b, &events.base);
    write_seed("fuzz_watch", "encrypted-events", b.data, b.len);
    free(env);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    names_seeds();
    crypt_seeds();
    response_seeds();
    watch_seeds();
    return 0;
}
