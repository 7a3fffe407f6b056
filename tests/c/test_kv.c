/*
 * test_kv.c - libetcdc against a real single-member etcd: key/value operations, binary data,
 * ranges and pagination, revisions and compaction, guarded writes, bulk operations, the
 * transaction builder, size limits, threads, endpoint lists, status and member list.
 *
 * Run through run_with_etcd.sh (ctest does): it starts a private etcd and sets ETCD_ENDPOINTS.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

static etcdc_client *C; /* shared by the tests that need nothing special */

/* ---- basic key/value ---- */

static void test_put_get_delete(void)
{
    etcdc_error err = {0};
    const char *k = th_key("a");
    int64_t rev1 = 0, rev2 = 0, deleted = -1;
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "one", 3, &rev1, &err), &err);
    CHECK(rev1 > 0);

    etcdc_kv kv;
    uint64_t rt0 = etcdc_thread_round_trips();
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_INT(etcdc_thread_round_trips() - rt0, 1); /* one Get, one round trip */
    CHECK_STR(kv.key, kv.key_len, k);
    CHECK_STR(kv.value, kv.value_len, "one");
    CHECK(kv.value[kv.value_len] == 0 && kv.key[kv.key_len] == 0); /* NUL-terminated */
    CHECK_INT(kv.create_revision, rev1);
    CHECK_INT(kv.mod_revision, rev1);
    CHECK_INT(kv.version, 1);
    CHECK_INT(kv.lease, 0);
    etcdc_kv_clear(&kv);
    CHECK(kv.key == NULL && kv.value == NULL);

    REQUIRE_OK(etcdc_put(C, k, strlen(k), "two", 3, &rev2, &err), &err);
    CHECK(rev2 > rev1);
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "two");
    CHECK_INT(kv.create_revision, rev1);
    CHECK_INT(kv.mod_revision, rev2);
    CHECK_INT(kv.version, 2);
    etcdc_kv_clear(&kv);

    bool exists = false;
    CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
    CHECK(exists);
    int64_t count = -1;
    CHECK_OK(etcdc_count_prefix(C, th_prefix(), strlen(th_prefix()), &count, &err), &err);
    CHECK_INT(count, 1);

    CHECK_OK(etcdc_delete(C, k, strlen(k), &deleted, &err), &err);
    CHECK_INT(deleted, 1);
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_INT(err.code, ETCDC_ERR_NOT_FOUND);
    CHECK(kv.key == NULL); /* left empty on failure */
    etcdc_kv_clear(&kv);
    CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
    CHECK(!exists);
    /* Deleting a missing key is not an error. */
    CHECK_OK(etcdc_delete(C, k, strlen(k), &deleted, &err), &err);
    CHECK_INT(deleted, 0);
    CHECK_OK(etcdc_delete(C, k, strlen(k), NULL, NULL), NULL); /* err and out may be NULL */

    /* Empty keys are refused by the client. */
    CHECK_RC(etcdc_put(C, "", 0, "x", 1, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    CHECK_RC(etcdc_delete(C, "", 0, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
}

static void test_empty_value(void)
{
    etcdc_error err = {0};
    const char *k = th_key("empty");
    REQUIRE_OK(etcdc_put(C, k, strlen(k), NULL, 0, NULL, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_INT(kv.value_len, 0);
    CHECK(kv.value != NULL && kv.value[0] == 0);
    etcdc_kv_clear(&kv);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
}

static void test_binary_keys_values(void)
{
    etcdc_error err = {0};
    /* A key with NUL, 0x80 and 0xff bytes inside, and a value holding every byte value. */
    char key[256];
    size_t klen = (size_t)snprintf(key, sizeof key, "%s", th_prefix());
    const char tail[] = {'b', 0, 'i', 'n', (char)0x80, (char)0xff, 0, 'x'};
    memcpy(key + klen, tail, sizeof tail);
    klen += sizeof tail;
    unsigned char value[512];
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (unsigned char)(i % 256);

    REQUIRE_OK(etcdc_put(C, key, klen, value, sizeof value, NULL, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, key, klen, &kv, &err), &err);
    CHECK_BYTES(kv.key, kv.key_len, key, klen);
    CHECK_BYTES(kv.value, kv.value_len, value, sizeof value);
    etcdc_kv_clear(&kv);

    /* The same key cut at its first NUL is a different key, which does not exist. */
    size_t cut = strlen(th_prefix()) + 1;
    CHECK_RC(etcdc_get(C, key, cut, &kv, &err), ETCDC_ERR_NOT_FOUND, &err);

    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(C, th_prefix(), strlen(th_prefix()), &kvs, &err), &err);
    REQUIRE(kvs.count == 1);
    CHECK_BYTES(kvs.kvs[0].key, kvs.kvs[0].key_len, key, klen);
    CHECK_BYTES(kvs.kvs[0].value, kvs.kvs[0].value_len, value, sizeof value);
    etcdc_kvs_clear(&kvs);

    /* A prefix ending in 0xff bytes: its range end drops them and increments the byte before. */
    char pfx[256];
    size_t plen = (size_t)snprintf(pfx, sizeof pfx, "%sff", th_prefix());
    pfx[plen - 2] = (char)0xff; /* "...f\xff" then a key "...f\xff\xff\x01" is under it */
    pfx[plen - 1] = (char)0xff;
    char k2[256];
    memcpy(k2, pfx, plen);
    k2[plen] = 1;
    REQUIRE_OK(etcdc_put(C, k2, plen + 1, "v", 1, NULL, &err), &err);
    int64_t n = 0;
    CHECK_OK(etcdc_count_prefix(C, pfx, plen, &n, &err), &err);
    CHECK_INT(n, 1);
    REQUIRE_OK(etcdc_list_keys(C, pfx, plen, 0, &kvs, &err), &err);
    CHECK_INT(kvs.count, 1);
    etcdc_kvs_clear(&kvs);

    int64_t deleted = 0;
    CHECK_OK(etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), &deleted, &err), &err);
    CHECK_INT(deleted, 2);
}

static void test_prefix_end(void)
{
    char out[8];
    CHECK_INT(etcdc_prefix_end("abc", 3, out), 3);
    CHECK_BYTES(out, 3, "abd", 3);
    CHECK_INT(etcdc_prefix_end("a\xff\xff", 3, out), 1);
    CHECK_BYTES(out, 1, "b", 1);
    CHECK_INT(etcdc_prefix_end("\xff\xff", 2, out), 0);
    CHECK_INT(out[0], 0);
    CHECK_INT(etcdc_prefix_end("", 0, out), 0);
    CHECK_INT(etcdc_prefix_end("a\0", 2, out), 2);
    CHECK_BYTES(out, 2, "a\1", 2);
}

/* ---- ranges and prefixes ---- */

static void put_str(const char *suffix, const char *value)
{
    etcdc_error err = {0};
    const char *k = th_key(suffix);
    REQUIRE_OK(etcdc_put(C, k, strlen(k), value, strlen(value), NULL, &err), &err);
}

static void test_prefix_and_ranges(void)
{
    etcdc_error err = {0};
    const char *names[] = {"a", "b", "c", "d", "e", "sub/x", "sub/y"};
    for (size_t i = 0; i < 7; i++)
        put_str(names[i], names[i]);
    /* A sibling that shares the textual prefix without the slash must never be touched. */
    char sib[200];
    snprintf(sib, sizeof sib, "%.*sX", (int)strlen(th_prefix()) - 1, th_prefix());
    REQUIRE_OK(etcdc_put(C, sib, strlen(sib), "sib", 3, NULL, &err), &err);

    const char *p = th_prefix();
    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(C, p, strlen(p), &kvs, &err), &err);
    CHECK_INT(kvs.count, 7);
    CHECK_INT(kvs.total, 7);
    CHECK(!kvs.more); /* everything was returned */
    CHECK(kvs.revision > 0);
    for (size_t i = 0; i < kvs.count && i < 7; i++) {
        CHECK_STR(kvs.kvs[i].key, kvs.kvs[i].key_len, th_key(names[i])); /* ascending by key */
        CHECK_STR(kvs.kvs[i].value, kvs.kvs[i].value_len, names[i]);
    }
    etcdc_kvs_clear(&kvs);
    CHECK(kvs.kvs == NULL && kvs.count == 0);

    /* Keys only, with and without a limit. */
    REQUIRE_OK(etcdc_list_keys(C, p, strlen(p), 0, &kvs, &err), &err);
    CHECK_INT(kvs.count, 7);
    CHECK(!kvs.more);
    if (kvs.count)
        CHECK(kvs.kvs[0].value != NULL && kvs.kvs[0].value_len == 0); /* "" for keys-only */
    etcdc_kvs_clear(&kvs);
    REQUIRE_OK(etcdc_list_keys(C, p, strlen(p), 3, &kvs, &err), &err);
    CHECK_INT(kvs.count, 3);
    CHECK(kvs.more);
    CHECK_INT(kvs.total, 7);
    if (kvs.count == 3)
        CHECK_STR(kvs.kvs[2].key, kvs.kvs[2].key_len, th_key("c"));
    etcdc_kvs_clear(&kvs);
    REQUIRE_OK(etcdc_list_keys(C, p, strlen(p), 7, &kvs, &err), &err);
    CHECK_INT(kvs.count, 7);
    CHECK(!kvs.more); /* the limit equals the number of keys */
    etcdc_kvs_clear(&kvs);

    /* Pattern: keys containing "sub/". */
    REQUIRE_OK(etcdc_list_keys_matching(C, p, strlen(p), "sub/", 4, &kvs, &err), &err);
    CHECK_INT(kvs.count, 2);
    if (kvs.count == 2) {
        CHECK_STR(kvs.kvs[0].key, kvs.kvs[0].key_len, th_key("sub/x"));
        CHECK_STR(kvs.kvs[1].key, kvs.kvs[1].key_len, th_key("sub/y"));
    }
    etcdc_kvs_clear(&kvs);
    REQUIRE_OK(etcdc_list_keys_matching(C, p, strlen(p), "nomatch", 7, &kvs, &err), &err);
    CHECK_INT(kvs.count, 0);
    etcdc_kvs_clear(&kvs);

    /* [b, d) */
    char b[200], d[200];
    snprintf(b, sizeof b, "%s", th_key("b"));
    snprintf(d, sizeof d, "%s", th_key("d"));
    REQUIRE_OK(etcdc_get_range(C, b, strlen(b), d, strlen(d), false, &kvs, &err), &err);
    CHECK_INT(kvs.count, 2);
    if (kvs.count == 2) {
        CHECK_STR(kvs.kvs[0].value, kvs.kvs[0].value_len, "b");
        CHECK_STR(kvs.kvs[1].value, kvs.kvs[1].value_len, "c");
    }
    CHECK(!kvs.more);
    etcdc_kvs_clear(&kvs);
    /* end NULL: only start */
    REQUIRE_OK(etcdc_get_range(C, b, strlen(b), NULL, 0, true, &kvs, &err), &err);
    CHECK_INT(kvs.count, 1);
    etcdc_kvs_clear(&kvs);

    /* Several named keys in one round trip; missing ones are skipped, order is kept. */
    char e[200], missing[200];
    snprintf(e, sizeof e, "%s", th_key("e"));
    snprintf(missing, sizeof missing, "%s", th_key("nope"));
    const void *keys[] = {e, missing, b};
    size_t lens[] = {strlen(e), strlen(missing), strlen(b)};
    REQUIRE_OK(etcdc_get_multiple(C, keys, lens, 3, &kvs, &err), &err);
    CHECK_INT(kvs.count, 2);
    if (kvs.count == 2) {
        CHECK_STR(kvs.kvs[0].value, kvs.kvs[0].value_len, "e");
        CHECK_STR(kvs.kvs[1].value, kvs.kvs[1].value_len, "b");
    }
    etcdc_kvs_clear(&kvs);

    /* The raw Range: descending by key, limited, count-only, keys-only, revision filters. */
    char end[200];
    size_t end_len = etcdc_prefix_end(p, strlen(p), end);
    etcdc_range_req req = {.key = p,
                           .key_len = strlen(p),
                           .range_end = end,
                           .range_end_len = end_len,
                           .limit = 2,
                           .sort_order = 2};
    REQUIRE_OK(etcdc_range(C, &req, &kvs, &err), &err);
    CHECK_INT(kvs.count, 2);
    CHECK(kvs.more);
    CHECK_INT(kvs.total, 7);
    if (kvs.count == 2)
        CHECK_STR(kvs.kvs[0].key, kvs.kvs[0].key_len, th_key("sub/y"));
    etcdc_kvs_clear(&kvs);
    req = (etcdc_range_req){.key = p,
                            .key_len = strlen(p),
                            .range_end = end,
                            .range_end_len = end_len,
                            .count_only = true};
    REQUIRE_OK(etcdc_range(C, &req, &kvs, &err), &err);
    CHECK_INT(kvs.count, 0);
    CHECK_INT(kvs.total, 7);
    etcdc_kvs_clear(&kvs);
    /* Only keys modified after "c" was written. */
    etcdc_kv ckv;
    REQUIRE_OK(etcdc_get(C, th_key("c"), strlen(th_key("c")), &ckv, &err), &err);
    req = (etcdc_range_req){.key = p,
                            .key_len = strlen(p),
                            .range_end = end,
                            .range_end_len = end_len,
                            .min_mod_revision = ckv.mod_revision + 1,
                            .serializable = true,
                            .keys_only = true};
    REQUIRE_OK(etcdc_range(C, &req, &kvs, &err), &err);
    CHECK_INT(kvs.count, 4); /* d, e, sub/x, sub/y */
    etcdc_kvs_clear(&kvs);
    etcdc_kv_clear(&ckv);

    /* delete_prefix removes exactly the prefix. */
    int64_t deleted = 0;
    CHECK_OK(etcdc_delete_prefix(C, p, strlen(p), &deleted, &err), &err);
    CHECK_INT(deleted, 7);
    etcdc_kv kv;
    CHECK_OK(etcdc_get(C, sib, strlen(sib), &kv, &err), &err);
    etcdc_kv_clear(&kv);
    CHECK_RC(etcdc_delete_prefix(C, "", 0, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    /* delete_range [start, end) */
    REQUIRE_OK(etcdc_put(C, th_key("r1"), strlen(th_key("r1")), "1", 1, NULL, &err), &err);
    REQUIRE_OK(etcdc_put(C, th_key("r2"), strlen(th_key("r2")), "2", 1, NULL, &err), &err);
    REQUIRE_OK(etcdc_put(C, th_key("r3"), strlen(th_key("r3")), "3", 1, NULL, &err), &err);
    char r1[200], r3[200];
    snprintf(r1, sizeof r1, "%s", th_key("r1"));
    snprintf(r3, sizeof r3, "%s", th_key("r3"));
    CHECK_OK(etcdc_delete_range(C, r1, strlen(r1), r3, strlen(r3), &deleted, &err), &err);
    CHECK_INT(deleted, 2);
    CHECK_OK(etcdc_delete_prefix(C, p, strlen(p), &deleted, &err), &err);
    CHECK_INT(deleted, 1);
    CHECK_OK(etcdc_delete(C, sib, strlen(sib), NULL, &err), &err);
}

/* ---- pagination ---- */

typedef struct writer_arg {
    etcdc_client *c;
    const char *prefix;
    atomic_bool stop;
    int writes;
} writer_arg;

/* Keeps changing the range while it is being read: overwrites existing keys, adds new ones. */
static void *range_writer(void *p)
{
    writer_arg *w = p;
    char key[256];
    for (int i = 0; !atomic_load(&w->stop) && i < 100000; i++) {
        if (i % 2)
            snprintf(key, sizeof key, "%sk%05d", w->prefix, (i * 7) % 3000);
        else
            snprintf(key, sizeof key, "%szz%05d", w->prefix, i);
        if (etcdc_put(w->c, key, strlen(key), "changed", 7, NULL, NULL) == ETCDC_OK)
            w->writes++;
    }
    return NULL;
}

static void test_pagination_snapshot(void)
{
    etcdc_error err = {0};
    /* A client whose receive limit (2 MiB) is far below the ~6 MiB of the range. */
    etcdc_config *cfg = th_config();
    etcdc_config_set_max_message_size(cfg, 2u << 20, 2u << 20);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s", th_prefix());

    /* 3000 keys of 2 KiB, written 100 per transaction. */
    static char values[100][2048];
    static char keys[100][256];
    etcdc_pair pairs[100];
    for (int batch = 0; batch < 30; batch++) {
        for (int j = 0; j < 100; j++) {
            int i = batch * 100 + j;
            snprintf(keys[j], sizeof keys[j], "%sk%05d", prefix, i);
            memset(values[j], 'a' + i % 26, sizeof values[j]);
            snprintf(values[j], 16, "%05d", i); /* distinct head, then filler */
            values[j][5] = '-';
            pairs[j] = (etcdc_pair){keys[j], strlen(keys[j]), values[j], sizeof values[j]};
        }
        REQUIRE_OK(etcdc_bulk_put(c, pairs, 100, NULL, &err), &err);
    }

    etcdc_stats before, after;
    etcdc_client_stats(c, &before);
    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(c, prefix, strlen(prefix), &kvs, &err), &err);
    etcdc_client_stats(c, &after);
    CHECK_INT(kvs.count, 3000);
    CHECK_INT(kvs.total, 3000);
    CHECK(!kvs.more);
    CHECK(after.range - before.range > 1); /* it did take more than one message */
    for (size_t i = 0; i < kvs.count; i++) {
        char want[256];
        snprintf(want, sizeof want, "%sk%05zu", prefix, i);
        if (kvs.kvs[i].key_len != strlen(want) || memcmp(kvs.kvs[i].key, want, strlen(want)) ||
            kvs.kvs[i].value_len != 2048 || strtol(kvs.kvs[i].value, NULL, 10) != (long)i) {
            th_fail(__FILE__, __LINE__, "entry %zu is wrong (key %s)", i, kvs.kvs[i].key);
            break;
        }
    }
    printf("  3000 x 2 KiB read in %llu range calls\n",
           (unsigned long long)(after.range - before.range));
    etcdc_kvs_clear(&kvs);

    /* The same read while another thread changes the range: the answer must be exactly the
     * range at the answer's revision (no key newer than it, none missing, none twice). */
    etcdc_client *wc = th_client();
    writer_arg w = {.c = wc, .prefix = prefix};
    pthread_t th;
    pthread_create(&th, NULL, range_writer, &w);
    th_sleep_ms(20);
    etcdc_client_stats(c, &before);
    etcdc_code rc = etcdc_get_prefix(c, prefix, strlen(prefix), &kvs, &err);
    etcdc_client_stats(c, &after);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    REQUIRE_OK(rc, &err);
    CHECK(w.writes > 0);
    printf("  %d concurrent writes during a %llu-call paginated read\n", w.writes,
           (unsigned long long)(after.range - before.range));
    etcdc_range_req req = {
        .key = prefix, .key_len = strlen(prefix), .count_only = true, .revision = kvs.revision};
    char end[200];
    req.range_end_len = etcdc_prefix_end(prefix, strlen(prefix), end);
    req.range_end = end;
    etcdc_kvs counted;
    REQUIRE_OK(etcdc_range(c, &req, &counted, &err), &err);
    CHECK_INT(kvs.count, counted.total);
    CHECK_INT(kvs.total, counted.total);
    etcdc_kvs_clear(&counted);
    size_t newer = 0, unordered = 0;
    for (size_t i = 0; i < kvs.count; i++) {
        if (kvs.kvs[i].mod_revision > kvs.revision)
            newer++;
        if (i && (kvs.kvs[i - 1].key_len == kvs.kvs[i].key_len
                      ? memcmp(kvs.kvs[i - 1].key, kvs.kvs[i].key, kvs.kvs[i].key_len) >= 0
                      : strcmp(kvs.kvs[i - 1].key, kvs.kvs[i].key) >= 0))
            unordered++;
    }
    CHECK_INT(newer, 0);
    CHECK_INT(unordered, 0);
    etcdc_kvs_clear(&kvs);

    /* A single value larger than the receive limit cannot be paginated: a clear error, no
     * partial result. */
    etcdc_config *small = th_config();
    etcdc_config_set_max_message_size(small, 2u << 20, 64 * 1024);
    etcdc_client *sc = th_client_from(small);
    etcdc_config_free(small);
    static char big[100 * 1024];
    memset(big, 'b', sizeof big);
    char bigkey[256];
    snprintf(bigkey, sizeof bigkey, "%sbig", prefix);
    REQUIRE_OK(etcdc_put(sc, bigkey, strlen(bigkey), big, sizeof big, NULL, &err), &err);
    etcdc_kv kv;
    CHECK_RC(etcdc_get(sc, bigkey, strlen(bigkey), &kv, &err), ETCDC_ERR_TOO_LARGE, &err);
    printf("  get over the receive limit: %s\n", err.message);
    CHECK_RC(etcdc_get_prefix(sc, prefix, strlen(prefix), &kvs, &err), ETCDC_ERR_TOO_LARGE, &err);
    CHECK(kvs.count == 0 && kvs.kvs == NULL);
    etcdc_client_free(sc);

    int64_t deleted = 0;
    CHECK_OK(etcdc_delete_prefix(c, prefix, strlen(prefix), &deleted, &err), &err);
    CHECK(deleted >= 3001);
    etcdc_client_free(wc);
    etcdc_client_free(c);
}

/* ---- revisions and compaction ---- */

static void test_revisions_and_compaction(void)
{
    etcdc_error err = {0};
    const char *k = th_key("hist");
    int64_t r1, r2, r3;
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v1", 2, &r1, &err), &err);
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v2", 2, &r2, &err), &err);
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v3", 2, &r3, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get_at_revision(C, k, strlen(k), r1, &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "v1");
    CHECK_INT(kv.mod_revision, r1);
    etcdc_kv_clear(&kv);
    REQUIRE_OK(etcdc_get_at_revision(C, k, strlen(k), r2, &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "v2");
    CHECK_INT(kv.version, 2);
    etcdc_kv_clear(&kv);
    /* Before the key existed. */
    CHECK_RC(etcdc_get_at_revision(C, k, strlen(k), r1 - 1, &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_RC(etcdc_get_at_revision(C, k, strlen(k), 0, &kv, &err), ETCDC_ERR_INVALID_ARGUMENT,
             &err);
    CHECK_RC(etcdc_get_at_revision(C, k, strlen(k), r3 + 1000, &kv, &err),
             ETCDC_ERR_FUTURE_REVISION, &err);

    REQUIRE_OK(etcdc_compact(C, r2, true, &err), &err);
    CHECK_RC(etcdc_get_at_revision(C, k, strlen(k), r1, &kv, &err), ETCDC_ERR_COMPACTED, &err);
    CHECK_INT(err.grpc_status, 11); /* OUT_OF_RANGE */
    printf("  compacted: %s\n", err.message);
    CHECK_OK(etcdc_get_at_revision(C, k, strlen(k), r2, &kv, &err), &err);
    etcdc_kv_clear(&kv);
    /* Compacting again at an older revision is an error too. */
    CHECK_RC(etcdc_compact(C, r1, false, &err), ETCDC_ERR_COMPACTED, &err);
    /* A paginated read at a compacted revision through the raw range. */
    etcdc_range_req req = {.key = k, .key_len = strlen(k), .revision = r1};
    etcdc_kvs kvs;
    CHECK_RC(etcdc_range(C, &req, &kvs, &err), ETCDC_ERR_COMPACTED, &err);
    CHECK(kvs.count == 0);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
}

/* ---- guarded writes ---- */

static void test_put_if_absent(void)
{
    etcdc_error err = {0};
    const char *k = th_key("once");
    int64_t rev = 0;
    CHECK_OK(etcdc_put_if_absent(C, k, strlen(k), "first", 5, &rev, &err), &err);
    CHECK(rev > 0);
    CHECK_RC(etcdc_put_if_absent(C, k, strlen(k), "second", 6, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "first");
    CHECK_INT(kv.mod_revision, rev);
    etcdc_kv_clear(&kv);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
}

static void test_cas(void)
{
    etcdc_error err = {0};
    const char *k = th_key("cas");
    int64_t rev0, rev1 = 0, rev2 = 0;
    CHECK_RC(etcdc_cas_value(C, k, strlen(k), "x", 1, "y", 1, NULL, &err), ETCDC_ERR_NOT_FOUND,
             &err);
    /* cas_revision with 0 creates only when absent. */
    REQUIRE_OK(etcdc_cas_revision(C, k, strlen(k), 0, "a", 1, &rev0, &err), &err);
    CHECK_RC(etcdc_cas_revision(C, k, strlen(k), 0, "z", 1, NULL, &err), ETCDC_ERR_COMPARE_FAILED,
             &err);
    /* By value. */
    CHECK_RC(etcdc_cas_value(C, k, strlen(k), "wrong", 5, "b", 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_OK(etcdc_cas_value(C, k, strlen(k), "a", 1, "b", 1, &rev1, &err), &err);
    CHECK(rev1 > rev0);
    /* A prefix of the value is not the value. */
    CHECK_RC(etcdc_cas_value(C, k, strlen(k), "", 0, "c", 1, NULL, &err), ETCDC_ERR_COMPARE_FAILED,
             &err);
    /* By revision: the stale one loses, the current one wins. */
    CHECK_RC(etcdc_cas_revision(C, k, strlen(k), rev0, "c", 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_OK(etcdc_cas_revision(C, k, strlen(k), rev1, "c", 1, &rev2, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "c");
    CHECK_INT(kv.mod_revision, rev2);
    etcdc_kv_clear(&kv);
    /* Binary expected values with NUL bytes. */
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "a\0b", 3, NULL, &err), &err);
    CHECK_RC(etcdc_cas_value(C, k, strlen(k), "a\0c", 3, "n", 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_OK(etcdc_cas_value(C, k, strlen(k), "a\0b", 3, "n", 1, NULL, &err), &err);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
}

typedef struct churn_arg {
    etcdc_client *c;
    const char *key;
    atomic_bool stop;
    int writes;
} churn_arg;

static void *churn(void *p)
{
    churn_arg *a = p;
    char v[32];
    while (!atomic_load(&a->stop)) {
        int n = snprintf(v, sizeof v, "w%d", a->writes);
        if (etcdc_put(a->c, a->key, strlen(a->key), v, (size_t)n, NULL, NULL) == ETCDC_OK)
            a->writes++;
    }
    return NULL;
}

static void test_move_key(void)
{
    etcdc_error err = {0};
    char from[200], to[200];
    snprintf(from, sizeof from, "%s", th_key("from"));
    snprintf(to, sizeof to, "%s", th_key("to"));
    etcdc_kv kv;

    CHECK_RC(etcdc_move_key(C, from, strlen(from), to, strlen(to), false, NULL, &err),
             ETCDC_ERR_NOT_FOUND, &err);
    REQUIRE_OK(etcdc_put(C, from, strlen(from), "payload\0x", 9, NULL, &err), &err);
    int64_t rev = 0;
    CHECK_OK(etcdc_move_key(C, from, strlen(from), to, strlen(to), false, &rev, &err), &err);
    CHECK_RC(etcdc_get(C, from, strlen(from), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);
    REQUIRE_OK(etcdc_get(C, to, strlen(to), &kv, &err), &err);
    CHECK_BYTES(kv.value, kv.value_len, "payload\0x", 9);
    CHECK_INT(kv.mod_revision, rev);
    etcdc_kv_clear(&kv);

    /* Target exists, no overwrite: refused, nothing changes. */
    REQUIRE_OK(etcdc_put(C, from, strlen(from), "second", 6, NULL, &err), &err);
    CHECK_RC(etcdc_move_key(C, from, strlen(from), to, strlen(to), false, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    REQUIRE_OK(etcdc_get(C, from, strlen(from), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "second");
    etcdc_kv_clear(&kv);
    REQUIRE_OK(etcdc_get(C, to, strlen(to), &kv, &err), &err);
    CHECK_BYTES(kv.value, kv.value_len, "payload\0x", 9);
    etcdc_kv_clear(&kv);
    /* With overwrite. */
    CHECK_OK(etcdc_move_key(C, from, strlen(from), to, strlen(to), true, NULL, &err), &err);
    REQUIRE_OK(etcdc_get(C, to, strlen(to), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "second");
    etcdc_kv_clear(&kv);

    /* A concurrent writer on `from`: every move either wins atomically (the value moved is one
     * the writer wrote, and `from` is then gone at that revision) or fails with COMPARE_FAILED;
     * the race makes some of them fail. */
    etcdc_client *wc = th_client();
    churn_arg a = {.c = wc, .key = from};
    REQUIRE_OK(etcdc_put(C, from, strlen(from), "start", 5, NULL, &err), &err);
    pthread_t th;
    pthread_create(&th, NULL, churn, &a);
    int ok = 0, lost = 0, other = 0;
    for (int i = 0; i < 2000 && (lost < 5 || ok < 5); i++) {
        etcdc_code rc = etcdc_move_key(C, from, strlen(from), to, strlen(to), true, &rev, &err);
        if (rc == ETCDC_OK) {
            ok++;
            /* At the move's revision `from` did not exist. */
            if (etcdc_get_at_revision(C, from, strlen(from), rev, &kv, &err) !=
                ETCDC_ERR_NOT_FOUND) {
                th_fail(__FILE__, __LINE__, "from exists at the move's revision %lld",
                        (long long)rev);
                etcdc_kv_clear(&kv);
            }
        } else if (rc == ETCDC_ERR_COMPARE_FAILED) {
            lost++;
        } else if (rc != ETCDC_ERR_NOT_FOUND) { /* NOT_FOUND: moved away just before */
            other++;
            printf("  unexpected: %s\n", err.message);
        }
    }
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    printf("  move under contention: %d moved, %d lost the race, %d writes\n", ok, lost, a.writes);
    CHECK(ok > 0);
    CHECK(lost > 0);
    CHECK_INT(other, 0);
    etcdc_client_free(wc);
    CHECK_RC(etcdc_move_key(C, "", 0, to, strlen(to), true, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT,
             &err);
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

/* ---- bulk ---- */

static void test_bulk(void)
{
    etcdc_error err = {0};
    const char *p = th_prefix();
    static char keys[130][240];
    etcdc_pair pairs[130];
    const void *kptr[130];
    size_t klen[130];
    for (int i = 0; i < 130; i++) {
        snprintf(keys[i], sizeof keys[i], "%sb%03d", p, i);
        pairs[i] = (etcdc_pair){keys[i], strlen(keys[i]), keys[i], strlen(keys[i])};
        kptr[i] = keys[i];
        klen[i] = strlen(keys[i]);
    }
    CHECK_INT(etcdc_max_txn_ops(), 128);

    /* 129 operations: refused before anything is sent. */
    etcdc_stats s0, s1;
    etcdc_client_stats(C, &s0);
    CHECK_RC(etcdc_bulk_put(C, pairs, 129, NULL, &err), ETCDC_ERR_TOO_MANY_OPS, &err);
    printf("  129 puts: %s\n", err.message);
    etcdc_client_stats(C, &s1);
    CHECK_INT(s1.txn, s0.txn);
    int64_t n = -1;
    CHECK_OK(etcdc_count_prefix(C, p, strlen(p), &n, &err), &err);
    CHECK_INT(n, 0);

    /* 128: one atomic txn, every key at the same revision. */
    int64_t rev = 0;
    REQUIRE_OK(etcdc_bulk_put(C, pairs, 128, &rev, &err), &err);
    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(C, p, strlen(p), &kvs, &err), &err);
    CHECK_INT(kvs.count, 128);
    size_t same = 0;
    for (size_t i = 0; i < kvs.count; i++)
        same += kvs.kvs[i].mod_revision == rev;
    CHECK_INT(same, 128);
    etcdc_kvs_clear(&kvs);

    CHECK_RC(etcdc_bulk_delete(C, kptr, klen, 129, NULL, &err), ETCDC_ERR_TOO_MANY_OPS, &err);
    CHECK_OK(etcdc_count_prefix(C, p, strlen(p), &n, &err), &err);
    CHECK_INT(n, 128);
    /* Delete 100, of which 99 exist (b128 was never written... include b129 as missing). */
    int64_t deleted = -1;
    CHECK_OK(etcdc_bulk_delete(C, kptr + 30, klen + 30, 100, &deleted, &err), &err);
    CHECK_INT(deleted, 98); /* keys 30..127 exist, 128 and 129 do not */
    CHECK_OK(etcdc_bulk_delete(C, kptr, klen, 30, &deleted, &err), &err);
    CHECK_INT(deleted, 30);
    CHECK_OK(etcdc_count_prefix(C, p, strlen(p), &n, &err), &err);
    CHECK_INT(n, 0);
    CHECK_OK(etcdc_bulk_put(C, pairs, 0, NULL, &err), &err); /* nothing to do */
    pairs[5].key_len = 0;
    CHECK_RC(etcdc_bulk_put(C, pairs, 10, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    CHECK_OK(etcdc_count_prefix(C, p, strlen(p), &n, &err), &err);
    CHECK_INT(n, 0);
    /* get_multiple has the same limit. */
    CHECK_RC(etcdc_get_multiple(C, kptr, klen, 129, &kvs, &err), ETCDC_ERR_TOO_MANY_OPS, &err);
}

/* ---- transactions ---- */

static void test_txn_builder(void)
{
    etcdc_error err = {0};
    char k[200], other[200], gone[200];
    snprintf(k, sizeof k, "%s", th_key("k"));
    snprintf(other, sizeof other, "%s", th_key("other"));
    snprintf(gone, sizeof gone, "%s", th_key("gone"));
    int64_t rev = 0;
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v1", 2, &rev, &err), &err);
    REQUIRE_OK(etcdc_put(C, gone, strlen(gone), "bye", 3, NULL, &err), &err);

    /* If version(k) == 1 and value(k) == "v1" and nothing exists under .../none/
     * Then put other, get k, delete gone (with prev_kv)   Else get k, put k="else". */
    char none[200], none_end[200];
    snprintf(none, sizeof none, "%s", th_key("none/"));
    size_t none_end_len = etcdc_prefix_end(none, strlen(none), none_end);
    etcdc_txn *t = etcdc_txn_new();
    REQUIRE(t);
    CHECK_OK(etcdc_txn_if(t, k, strlen(k), ETCDC_CMP_VERSION, ETCDC_EQUAL, 1), NULL);
    CHECK_OK(etcdc_txn_if_value(t, k, strlen(k), ETCDC_EQUAL, "v1", 2), NULL);
    CHECK_OK(etcdc_txn_if(t, k, strlen(k), ETCDC_CMP_MOD, ETCDC_LESS, rev + 1), NULL);
    CHECK_OK(etcdc_txn_if(t, k, strlen(k), ETCDC_CMP_LEASE, ETCDC_EQUAL, 0), NULL);
    CHECK_OK(etcdc_txn_if_range(t, none, strlen(none), none_end, none_end_len, ETCDC_CMP_CREATE,
                                ETCDC_EQUAL, 0),
             NULL);
    CHECK_OK(etcdc_txn_put(t, ETCDC_THEN, other, strlen(other), "o", 1, 0), NULL);
    etcdc_range_req get = {.key = k, .key_len = strlen(k)};
    CHECK_OK(etcdc_txn_get(t, ETCDC_THEN, &get), NULL);
    CHECK_OK(etcdc_txn_delete(t, ETCDC_THEN, gone, strlen(gone), NULL, 0, true), NULL);
    CHECK_OK(etcdc_txn_get(t, ETCDC_ELSE, &get), NULL);
    CHECK_OK(etcdc_txn_put(t, ETCDC_ELSE, k, strlen(k), "else", 4, 0), NULL);
    CHECK_INT(etcdc_txn_op_count(t), 3);

    etcdc_txn_result r;
    REQUIRE_OK(etcdc_txn_commit(C, t, &r, &err), &err);
    CHECK(r.succeeded);
    CHECK(r.revision > rev);
    REQUIRE(r.op_count == 3);
    CHECK_INT(r.ops[0].type, ETCDC_OP_PUT);
    CHECK_INT(r.ops[1].type, ETCDC_OP_RANGE);
    CHECK_INT(r.ops[1].kvs.count, 1);
    if (r.ops[1].kvs.count == 1)
        CHECK_STR(r.ops[1].kvs.kvs[0].value, r.ops[1].kvs.kvs[0].value_len, "v1");
    CHECK_INT(r.ops[2].type, ETCDC_OP_DELETE);
    CHECK_INT(r.ops[2].deleted, 1);
    CHECK_INT(r.ops[2].kvs.count, 1); /* prev_kv */
    if (r.ops[2].kvs.count == 1)
        CHECK_STR(r.ops[2].kvs.kvs[0].value, r.ops[2].kvs.kvs[0].value_len, "bye");
    etcdc_txn_result_clear(&r);
    CHECK(r.ops == NULL && r.op_count == 0);

    /* The same transaction again: version(k) is still 1 but `gone` is gone... the compares
     * still hold, so make them fail by changing k first. Else runs. */
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v2", 2, NULL, &err), &err);
    REQUIRE_OK(etcdc_txn_commit(C, t, &r, &err), &err);
    CHECK(!r.succeeded);
    REQUIRE(r.op_count == 2);
    CHECK_INT(r.ops[0].type, ETCDC_OP_RANGE);
    if (r.ops[0].kvs.count == 1)
        CHECK_STR(r.ops[0].kvs.kvs[0].value, r.ops[0].kvs.kvs[0].value_len, "v2");
    CHECK_INT(r.ops[1].type, ETCDC_OP_PUT);
    etcdc_txn_result_clear(&r);
    etcdc_txn_free(t);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "else");
    etcdc_kv_clear(&kv);

    /* A range delete inside a txn, and a compare over a non-empty range failing. */
    t = etcdc_txn_new();
    char p_end[200];
    size_t p_end_len = etcdc_prefix_end(th_prefix(), strlen(th_prefix()), p_end);
    etcdc_txn_if_range(t, th_prefix(), strlen(th_prefix()), p_end, p_end_len, ETCDC_CMP_CREATE,
                       ETCDC_EQUAL, 0);
    etcdc_txn_delete(t, ETCDC_ELSE, th_prefix(), strlen(th_prefix()), p_end, p_end_len, false);
    REQUIRE_OK(etcdc_txn_commit(C, t, &r, &err), &err);
    CHECK(!r.succeeded);
    REQUIRE(r.op_count == 1);
    CHECK_INT(r.ops[0].deleted, 2); /* k and other */
    CHECK_INT(r.ops[0].kvs.count, 0);
    etcdc_txn_result_clear(&r);
    etcdc_txn_free(t);

    /* An empty txn succeeds; a read-only txn works; too many ops fail before sending. */
    t = etcdc_txn_new();
    REQUIRE_OK(etcdc_txn_commit(C, t, &r, &err), &err);
    CHECK(r.succeeded);
    CHECK_INT(r.op_count, 0);
    etcdc_txn_result_clear(&r);
    for (int i = 0; i < 129; i++)
        etcdc_txn_get(t, ETCDC_ELSE, &get);
    CHECK_INT(etcdc_txn_op_count(t), 129);
    CHECK_RC(etcdc_txn_commit(C, t, &r, &err), ETCDC_ERR_TOO_MANY_OPS, &err);
    etcdc_txn_free(t);
    etcdc_txn_free(NULL);
    etcdc_txn_result_clear(NULL);
}

/* One error per transaction: the first builder call that fails is remembered, every later call
 * does nothing and returns it, and the commit returns it without sending anything (nothing
 * lands). The same for a nested transaction's error and for a NULL transaction. */
static void test_txn_builder_error_is_sticky(void)
{
    etcdc_error err = {0};
    char k[200];
    snprintf(k, sizeof k, "%s", th_key("sticky"));
    etcdc_txn *t = etcdc_txn_new();
    REQUIRE(t);
    CHECK_OK(etcdc_txn_put(t, ETCDC_THEN, k, strlen(k), "first", 5, 0), NULL);
    CHECK_RC(etcdc_txn_if(t, k, strlen(k), ETCDC_CMP_VALUE, ETCDC_EQUAL, 0),
             ETCDC_ERR_INVALID_ARGUMENT, NULL);
    CHECK_RC(etcdc_txn_put(t, ETCDC_THEN, k, strlen(k), "second", 6, 0), ETCDC_ERR_INVALID_ARGUMENT,
             NULL);
    CHECK_RC(etcdc_txn_if(t, k, strlen(k), ETCDC_CMP_MOD, ETCDC_EQUAL, 0),
             ETCDC_ERR_INVALID_ARGUMENT, NULL);
    etcdc_range_req get = {.key = k, .key_len = strlen(k)};
    CHECK_RC(etcdc_txn_get(t, ETCDC_ELSE, &get), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    CHECK_RC(etcdc_txn_delete(t, ETCDC_ELSE, k, strlen(k), NULL, 0, false),
             ETCDC_ERR_INVALID_ARGUMENT, NULL);
    CHECK_INT(etcdc_txn_op_count(t), 1); /* only the put made before the failure */
    etcdc_txn_result r;
    CHECK_RC(etcdc_txn_commit(C, t, &r, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    CHECK(strstr(err.message, "nothing sent") != NULL);
    CHECK_INT(r.op_count, 0);
    etcdc_txn_free(t);
    etcdc_kv kv;
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);

    /* an inner transaction's error becomes the outer one's (the inner is owned and freed) */
    etcdc_txn *outer = etcdc_txn_new(), *inner = etcdc_txn_new();
    REQUIRE(outer && inner);
    CHECK_OK(etcdc_txn_put(outer, ETCDC_THEN, k, strlen(k), "outer", 5, 0), NULL);
    etcdc_txn_if(inner, k, strlen(k), ETCDC_CMP_VALUE, ETCDC_EQUAL, 0);
    CHECK_RC(etcdc_txn_nest(outer, ETCDC_THEN, inner), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    CHECK_RC(etcdc_txn_commit(C, outer, &r, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    etcdc_txn_free(outer);
    CHECK_RC(etcdc_get(C, k, strlen(k), &kv, &err), ETCDC_ERR_NOT_FOUND, &err);

    /* no transaction at all (etcdc_txn_new out of memory): every call says so */
    CHECK_RC(etcdc_txn_if(NULL, k, strlen(k), ETCDC_CMP_MOD, ETCDC_EQUAL, 0), ETCDC_ERR_NO_MEMORY,
             NULL);
    CHECK_RC(etcdc_txn_put(NULL, ETCDC_THEN, k, strlen(k), "v", 1, 0), ETCDC_ERR_NO_MEMORY, NULL);
    CHECK_RC(etcdc_txn_nest(NULL, ETCDC_THEN, etcdc_txn_new()), ETCDC_ERR_NO_MEMORY, NULL);
    CHECK_INT(etcdc_txn_op_count(NULL), 0);
    CHECK_RC(etcdc_txn_commit(C, NULL, &r, &err), ETCDC_ERR_NO_MEMORY, &err);
}

/* A nested txn decides on the state before the outer operations ran: here "if the directory
 * holds nothing else, write its marker" while the outer txn moves the directory's last key. */
static void test_txn_nested(void)
{
    etcdc_error err = {0};
    char dir[200], end[200], last[200], moved[200], marker_get[200];
    snprintf(dir, sizeof dir, "%s", th_key("nest/d/"));
    size_t end_len = etcdc_prefix_end(dir, strlen(dir), end);
    snprintf(last, sizeof last, "%s", th_key("nest/d/only"));
    snprintf(moved, sizeof moved, "%s", th_key("nest/elsewhere"));
    snprintf(marker_get, sizeof marker_get, "%s", dir);
    REQUIRE_OK(etcdc_put(C, last, strlen(last), "x", 1, NULL, &err), &err);

    for (int round = 0; round < 2; round++) {
        /* round 0: the directory's only key moves out -> marker written;
         * round 1: the marker exists now, so the nested compare fails and nothing is added. */
        const char *src = round == 0 ? last : moved, *dst = round == 0 ? moved : last;
        etcdc_txn *t = etcdc_txn_new(), *inner = etcdc_txn_new();
        REQUIRE(t && inner);
        CHECK_OK(etcdc_txn_if(t, src, strlen(src), ETCDC_CMP_CREATE, ETCDC_GREATER, 0), NULL);
        CHECK_OK(etcdc_txn_put(t, ETCDC_THEN, dst, strlen(dst), "x", 1, 0), NULL);
        CHECK_OK(etcdc_txn_delete(t, ETCDC_THEN, src, strlen(src), NULL, 0, false), NULL);
        /* [dir, last) and (last, end): everything in the directory but the moved key */
        CHECK_OK(etcdc_txn_if_range(inner, dir, strlen(dir), last, strlen(last), ETCDC_CMP_CREATE,
                                    ETCDC_EQUAL, 0),
                 NULL);
        char after[201];
        memcpy(after, last, strlen(last) + 1); /* last + "\0" */
        CHECK_OK(etcdc_txn_if_range(inner, after, strlen(last) + 1, end, end_len, ETCDC_CMP_CREATE,
                                    ETCDC_EQUAL, 0),
                 NULL);
        CHECK_OK(etcdc_txn_put(inner, ETCDC_THEN, dir, strlen(dir), "", 0, 0), NULL);
        CHECK_OK(etcdc_txn_nest(t, ETCDC_THEN, inner), NULL);
        etcdc_txn_result r;
        REQUIRE_OK(etcdc_txn_commit(C, t, &r, &err), &err);
        CHECK(r.succeeded);
        REQUIRE(r.op_count == 3);
        CHECK_INT(r.ops[2].type, ETCDC_OP_TXN);
        REQUIRE(r.ops[2].txn);
        CHECK_INT(r.ops[2].txn->succeeded, round == 0);
        CHECK_INT(r.ops[2].txn->op_count, round == 0 ? 1 : 0);
        CHECK(r.ops[2].txn->revision == r.revision);
        etcdc_txn_result_clear(&r);
        etcdc_txn_free(t);
        etcdc_kv kv;
        REQUIRE_OK(etcdc_get(C, marker_get, strlen(marker_get), &kv, &err), &err);
        CHECK_INT(kv.value_len, 0);
        CHECK_INT(kv.version, 1); /* written once, in round 0 */
        etcdc_kv_clear(&kv);
    }

    /* etcd's limit counts a level's largest of compares/Then/Else, and a nested txn only gets
     * what its parent level left: 60 outer + 60 nested pass, 60 + 69 would not. */
    etcdc_txn *t = etcdc_txn_new(), *inner = etcdc_txn_new();
    etcdc_range_req get = {.key = last, .key_len = strlen(last)};
    etcdc_txn_if(t, last, strlen(last), ETCDC_CMP_CREATE, ETCDC_EQUAL, 0); /* false: Else */
    for (int i = 0; i < 60; i++) {
        etcdc_txn_get(t, ETCDC_ELSE, &get);
        etcdc_txn_get(inner, ETCDC_THEN, &get);
    }
    etcdc_txn *deep = etcdc_txn_new();
    for (int i = 0; i < 69; i++)
        etcdc_txn_get(deep, ETCDC_ELSE, &get);
    CHECK_OK(etcdc_txn_nest(t, ETCDC_ELSE, inner), NULL);
    etcdc_txn_result r;
    REQUIRE_OK(etcdc_txn_commit(C, t, &r, &err), &err);
    CHECK_INT(r.op_count, 61);
    etcdc_txn_result_clear(&r);
    CHECK_OK(etcdc_txn_nest(t, ETCDC_ELSE, deep), NULL);
    CHECK_RC(etcdc_txn_commit(C, t, &r, &err), ETCDC_ERR_TOO_MANY_OPS, &err);
    etcdc_txn_free(t);
    t = etcdc_txn_new(); /* nesting NULL (a failed etcdc_txn_new) poisons the txn */
    CHECK_RC(etcdc_txn_nest(t, ETCDC_THEN, NULL), ETCDC_ERR_NO_MEMORY, NULL);
    CHECK_RC(etcdc_txn_commit(C, t, &r, &err), ETCDC_ERR_NO_MEMORY, &err);
    etcdc_txn_free(t);
}

/* ---- limits ---- */

static void test_too_large(void)
{
    etcdc_error err = {0};
    const char *k = th_key("big");
    size_t n = 2u << 20;
    char *v = malloc(n);
    REQUIRE(v);
    memset(v, 'x', n);
    /* 2 MiB: over the client's own 2 MiB send limit (key and framing add bytes). */
    etcdc_stats s0, s1;
    etcdc_client_stats(C, &s0);
    CHECK_RC(etcdc_put(C, k, strlen(k), v, n, NULL, &err), ETCDC_ERR_TOO_LARGE, &err);
    etcdc_client_stats(C, &s1);
    printf("  2 MiB value: %s\n", err.message);
    CHECK(strstr(err.message, "limit") != NULL);
    CHECK_INT(s1.put, s0.put); /* refused before sending */
    /* 1.6 MiB: the client sends it, etcd (--max-request-bytes 1.5 MiB) refuses it. */
    CHECK_RC(etcdc_put(C, k, strlen(k), v, 1600 * 1024, NULL, &err), ETCDC_ERR_TOO_LARGE, &err);
    printf("  1.6 MiB value: %s\n", err.message);
    CHECK(strstr(err.message, "too large") != NULL);
    CHECK_INT(err.grpc_status, 3); /* INVALID_ARGUMENT from etcd */
    /* In a txn and in a bulk put too. */
    etcdc_pair pair = {k, strlen(k), v, 1600 * 1024};
    CHECK_RC(etcdc_bulk_put(C, &pair, 1, NULL, &err), ETCDC_ERR_TOO_LARGE, &err);
    bool exists = true;
    CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
    CHECK(!exists);
    /* 1 MiB is fine. */
    CHECK_OK(etcdc_put(C, k, strlen(k), v, 1u << 20, NULL, &err), &err);
    etcdc_kv kv;
    CHECK_OK(etcdc_get(C, k, strlen(k), &kv, &err), &err);
    CHECK_INT(kv.value_len, 1u << 20);
    etcdc_kv_clear(&kv);
    etcdc_delete(C, k, strlen(k), NULL, NULL);
    free(v);
}

/* ---- threads ---- */

typedef struct thread_arg {
    etcdc_client *c;
    int id;
    int failures;
    char prefix[200];
} thread_arg;

static void *thread_body(void *p)
{
    thread_arg *a = p;
    etcdc_error err;
    char key[256], val[64];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "%st%d/%d", a->prefix, a->id, i % 20);
        int vl = snprintf(val, sizeof val, "%d:%d", a->id, i);
        etcdc_kv kv;
        switch (i % 4) {
        case 0:
        case 1:
            if (etcdc_put(a->c, key, strlen(key), val, (size_t)vl, NULL, &err) != ETCDC_OK)
                a->failures++;
            break;
        case 2:
            /* Written by this thread at i-1 (or i-2): must read back what was written. */
            snprintf(key, sizeof key, "%st%d/%d", a->prefix, a->id, (i - 1) % 20);
            vl = snprintf(val, sizeof val, "%d:%d", a->id, i - 1);
            if (etcdc_get(a->c, key, strlen(key), &kv, &err) != ETCDC_OK ||
                kv.value_len != (size_t)vl || memcmp(kv.value, val, (size_t)vl) != 0)
                a->failures++;
            etcdc_kv_clear(&kv);
            break;
        case 3: {
            etcdc_kvs kvs;
            if (etcdc_list_keys(a->c, a->prefix, strlen(a->prefix), 5, &kvs, &err) != ETCDC_OK)
                a->failures++;
            etcdc_kvs_clear(&kvs);
            break;
        }
        }
    }
    return NULL;
}

static void test_threads_share_client(void)
{
    enum { N = 8 };
    pthread_t th[N];
    thread_arg args[N];
    etcdc_stats s0, s1;
    etcdc_client_stats(C, &s0);
    int64_t t0 = th_now_ms();
    for (int i = 0; i < N; i++) {
        args[i] = (thread_arg){.c = C, .id = i};
        snprintf(args[i].prefix, sizeof args[i].prefix, "%s", th_prefix());
        pthread_create(&th[i], NULL, thread_body, &args[i]);
    }
    int failures = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
    }
    etcdc_client_stats(C, &s1);
    printf("  8 threads x 200 ops in %lld ms\n", (long long)(th_now_ms() - t0));
    CHECK_INT(failures, 0);
    CHECK_INT(s1.put - s0.put, N * 100);
    CHECK_INT(s1.range - s0.range, N * 100);
    int64_t n = 0;
    etcdc_error err;
    CHECK_OK(etcdc_count_prefix(C, th_prefix(), strlen(th_prefix()), &n, &err), &err);
    CHECK_INT(n, N * 10); /* puts use keys i % 20 for i % 4 in {0, 1} */
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

/* ---- endpoints ---- */

static void test_dead_endpoint_first(void)
{
    etcdc_error err = {0};
    char eps[512];
    snprintf(eps, sizeof eps, "127.0.0.1:1,%s", th_endpoints());
    etcdc_config *cfg = etcdc_config_new();
    REQUIRE_OK(etcdc_config_set_endpoints(cfg, eps), NULL);
    int64_t t0 = th_now_ms();
    etcdc_client *c = th_client_from(cfg);
    int64_t t1 = th_now_ms();
    for (int i = 0; i < 20; i++) {
        const char *k = th_key("dead-first");
        CHECK_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
        etcdc_kv kv;
        CHECK_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
        etcdc_kv_clear(&kv);
    }
    printf("  dead first endpoint: connect %lld ms, 40 calls %lld ms\n", (long long)(t1 - t0),
           (long long)(th_now_ms() - t1));
    etcdc_client_free(c);
    /* http:// schemes and spaces are accepted. */
    snprintf(eps, sizeof eps, " http://%s ", th_endpoints());
    REQUIRE_OK(etcdc_config_set_endpoints(cfg, eps), NULL);
    c = th_client_from(cfg);
    etcdc_status st;
    CHECK_OK(etcdc_status_get(c, &st, &err), &err);
    etcdc_client_free(c);
    etcdc_config_free(cfg);
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

static void test_unreachable_and_bad_config(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = etcdc_config_new();
    REQUIRE_OK(etcdc_config_set_endpoints(cfg, "127.0.0.1:1,127.0.0.1:2"), NULL);
    etcdc_config_set_dial_timeout_ms(cfg, 700);
    int64_t t0 = th_now_ms();
    etcdc_client *c = etcdc_client_new(cfg, &err);
    int64_t took = th_now_ms() - t0;
    CHECK(c == NULL);
    CHECK_INT(err.code, ETCDC_ERR_UNAVAILABLE);
    printf("  unreachable: %lld ms: %s\n", (long long)took, err.message);
    /* A guard against hanging (the dial timeout is 700 ms), not a performance check. */
    CHECK(took < 15000);
    etcdc_client_free(c);

    CHECK_RC(etcdc_config_set_endpoints(cfg, ""), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    CHECK_RC(etcdc_config_set_endpoints(cfg, " , "), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    REQUIRE_OK(etcdc_config_set_endpoints(cfg, "127.0.0.1"), NULL); /* no port */
    c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    CHECK_INT(err.code, ETCDC_ERR_INVALID_ARGUMENT);
    etcdc_client_free(c);
    REQUIRE_OK(etcdc_config_set_endpoints(cfg, "127.0.0.1:99999"), NULL);
    c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    CHECK_INT(err.code, ETCDC_ERR_INVALID_ARGUMENT);
    etcdc_client_free(c);
    /* etcdc_client_new(NULL) means the defaults: test_contract.c */
    CHECK_RC(etcdc_config_set_tls(cfg, NULL, "cert.pem", NULL), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    etcdc_config_free(cfg);
    etcdc_config_free(NULL);
}

/* A server that accepted the connection but does not answer (SIGSTOP): calls end with
 * TIMEOUT at the request deadline, and work again once it answers. */
static void test_request_timeout(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    etcdc_config_set_request_timeout_ms(cfg, 300);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    const char *k = th_key("t");
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    REQUIRE(th_member("pause", 1) == 0);
    etcdc_kv kv;
    int64_t t0 = th_now_ms();
    etcdc_code get_rc = etcdc_get(c, k, strlen(k), &kv, &err);
    int64_t took = th_now_ms() - t0;
    etcdc_error perr = {0};
    etcdc_code put_rc = etcdc_put(c, k, strlen(k), "w", 1, NULL, &perr);
    th_member("resume", 1);
    CHECK_RC(get_rc, ETCDC_ERR_TIMEOUT, &err);
    CHECK_INT(err.grpc_status, 4); /* DEADLINE_EXCEEDED */
    CHECK_RC(put_rc, ETCDC_ERR_TIMEOUT, &perr);
    printf("  paused server: get failed after %lld ms: %s\n", (long long)took, err.message);
    CHECK_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
    etcdc_kv_clear(&kv);
    etcdc_delete(c, k, strlen(k), NULL, NULL);
    etcdc_client_free(c);
}

/* The (only) member restarts: once it serves again, the client must reconnect by itself.
 * etcd answers again within about a second; the loop gives the client 30 s (a guard against
 * "never", not a performance check) and prints how long it took. */
static void test_member_restart(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    etcdc_config_set_request_timeout_ms(cfg, 1000);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    const char *k = th_key("restart");
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "before", 6, NULL, &err), &err);
    REQUIRE(th_member("stop", 1) == 0);
    REQUIRE(th_member("start", 1) == 0);
    int64_t t0 = th_now_ms();
    etcdc_code rc = ETCDC_ERR_UNAVAILABLE;
    int attempts = 0;
    while (rc != ETCDC_OK && th_now_ms() - t0 < 30000) {
        rc = etcdc_put(c, k, strlen(k), "after", 5, NULL, &err);
        attempts++;
    }
    printf("  after a restart: first successful put %lld ms later (%d calls)%s%s\n",
           (long long)(th_now_ms() - t0), attempts, rc ? ", last error: " : "",
           rc ? err.message : "");
    CHECK_OK(rc, &err);
    etcdc_delete(c, k, strlen(k), NULL, NULL);
    etcdc_client_free(c);
}

/* ---- cluster ---- */

static void test_status_and_members(void)
{
    etcdc_error err = {0};
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    printf("  etcd %s, db %lld bytes, leader %llx, raft index %llu\n", st.version,
           (long long)st.db_size, (unsigned long long)st.leader, (unsigned long long)st.raft_index);
    CHECK(st.version[0] >= '3');
    CHECK(st.db_size > 0);
    CHECK(st.db_size_in_use > 0);
    CHECK(st.leader != 0);
    CHECK(st.leader == st.member_id); /* a single member leads itself */
    CHECK(st.raft_index > 0 && st.raft_term > 0);
    CHECK(st.revision > 0);
    CHECK(!st.is_learner);
    etcdc_members m;
    REQUIRE_OK(etcdc_member_list(C, &m, &err), &err);
    CHECK_INT(m.count, 1);
    CHECK(m.cluster_id == st.cluster_id);
    if (m.count == 1) {
        CHECK(m.members[0].id == st.member_id);
        CHECK(strcmp(m.members[0].name, "m1") == 0);
        CHECK_INT(m.members[0].client_url_count, 1);
        CHECK_INT(m.members[0].peer_url_count, 1);
        if (m.members[0].client_url_count)
            CHECK(strstr(m.members[0].client_urls[0], th_endpoints()) != NULL);
        CHECK(!m.members[0].is_learner);
    }
    etcdc_members_clear(&m);
    CHECK(m.members == NULL);
    etcdc_members_clear(NULL);
    CHECK(etcdc_client_channel(C) != NULL);
}

static void test_strerror(void)
{
    for (int a = ETCDC_OK; a <= ETCDC_ERR_IO; a++) {
        CHECK(strlen(etcdc_strerror((etcdc_code)a)) > 0);
        for (int b = ETCDC_OK; b < a; b++)
            CHECK(strcmp(etcdc_strerror((etcdc_code)a), etcdc_strerror((etcdc_code)b)) != 0);
    }
    CHECK(strcmp(etcdc_strerror(ETCDC_ERR_NOT_FOUND), "not found") == 0);
    CHECK(etcdc_strerror((etcdc_code)999) != NULL);
}

static void setup(void)
{
    C = th_client();
}

static void teardown(void)
{
    etcdc_client_free(C);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_strerror), TH_TEST(test_prefix_end),
        TH_TEST(test_put_get_delete), TH_TEST(test_empty_value), TH_TEST(test_binary_keys_values),
        TH_TEST(test_prefix_and_ranges), TH_TEST(test_pagination_snapshot),
        TH_TEST(test_revisions_and_compaction), TH_TEST(test_put_if_absent), TH_TEST(test_cas),
        TH_TEST(test_move_key), TH_TEST(test_bulk), TH_TEST(test_txn_builder),
        TH_TEST(test_txn_builder_error_is_sticky), TH_TEST(test_txn_nested),
        TH_TEST(test_too_large), TH_TEST(test_threads_share_client),
        TH_TEST(test_dead_endpoint_first), TH_TEST(test_unreachable_and_bad_config),
        TH_TEST(test_request_timeout), TH_TEST(test_status_and_members),
        TH_TEST(test_member_restart), TH_TEST(teardown))
