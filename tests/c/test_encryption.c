/*
 * test_encryption.c - client-side value encryption through the public API against a real etcd:
 * what etcd stores (checked with a client that has no key), reads of tampered, moved and
 * plaintext values, guarded operations on encrypted values, watches, key files, and key
 * rotation with etcdc_rekey_prefix.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "harness.h"

static const uint8_t KEY1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY2[32] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
                                 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5,
                                 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};

static etcdc_client *RAW; /* no key: sees what etcd stores */

/* A client with the given keys (ids 1 and/or 2). */
static etcdc_client *enc_client(bool k1, bool k2, bool allow_plaintext)
{
    etcdc_config *cfg = th_config();
    if (k1)
        REQUIRE_OK(etcdc_config_add_encryption_key(cfg, 1, KEY1), NULL);
    if (k2)
        REQUIRE_OK(etcdc_config_add_encryption_key(cfg, 2, KEY2), NULL);
    etcdc_config_set_allow_plaintext(cfg, allow_plaintext);
    etcdc_config_set_keepalive_ms(cfg, 1000, 2000); /* raised to 5 s by the library */
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    return c;
}

static void setup(void)
{
    RAW = th_client();
}

static void teardown(void)
{
    etcdc_delete_prefix(RAW, "etcdc-test/", 11, NULL, NULL);
    etcdc_client_free(RAW);
}

static void test_sealed_at_rest(void)
{
    etcdc_error err = {0};
    etcdc_client *c = enc_client(true, false, false);
    const char *k = th_key("secret");
    const char plain[] = "attack at dawn\0with a NUL";
    REQUIRE_OK(etcdc_put(c, k, strlen(k), plain, sizeof plain, NULL, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(c, k, strlen(k), &kv, &err), &err);
    CHECK_BYTES(kv.value, kv.value_len, plain, sizeof plain);
    CHECK(!kv.value_error);
    etcdc_kv_clear(&kv);
    /* etcd holds an envelope: magic E7 CD, version 1, key id 1, 32 bytes longer. */
    REQUIRE_OK(etcdc_get(RAW, k, strlen(k), &kv, &err), &err);
    CHECK_INT(etcdc_envelope_overhead(), 32);
    CHECK_INT(kv.value_len, sizeof plain + etcdc_envelope_overhead());
    CHECK((unsigned char)kv.value[0] == 0xE7 && (unsigned char)kv.value[1] == 0xCD);
    CHECK_INT(kv.value[2], 1);
    CHECK_INT(kv.value[3], 1);
    CHECK(memmem(kv.value, kv.value_len, "attack", 6) == NULL);
    etcdc_kv_clear(&kv);
    /* Two writes of the same plaintext differ on disk (fresh nonce). */
    etcdc_kv a, b;
    REQUIRE_OK(etcdc_get(RAW, k, strlen(k), &a, &err), &err);
    REQUIRE_OK(etcdc_put(c, k, strlen(k), plain, sizeof plain, NULL, &err), &err);
    REQUIRE_OK(etcdc_get(RAW, k, strlen(k), &b, &err), &err);
    CHECK(a.value_len == b.value_len && memcmp(a.value, b.value, a.value_len) != 0);
    etcdc_kv_clear(&a);
    etcdc_kv_clear(&b);

    /* Ranges, bulk puts and guarded writes see and write plaintext. */
    etcdc_pair pairs[2] = {{th_key("b1"), strlen(th_key("b1")), "one", 3},
                           {th_key("b2"), strlen(th_key("b2")), "two", 3}};
    char kb1[200], kb2[200];
    snprintf(kb1, sizeof kb1, "%s", th_key("b1"));
    snprintf(kb2, sizeof kb2, "%s", th_key("b2"));
    pairs[0].key = kb1;
    pairs[1].key = kb2;
    REQUIRE_OK(etcdc_bulk_put(c, pairs, 2, NULL, &err), &err);
    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(c, th_prefix(), strlen(th_prefix()), &kvs, &err), &err);
    CHECK_INT(kvs.count, 3);
    if (kvs.count == 3) {
        CHECK_STR(kvs.kvs[0].value, kvs.kvs[0].value_len, "one");
        CHECK_STR(kvs.kvs[1].value, kvs.kvs[1].value_len, "two");
    }
    etcdc_kvs_clear(&kvs);
    CHECK_OK(etcdc_cas_value(c, kb1, strlen(kb1), "one", 3, "uno", 3, NULL, &err), &err);
    CHECK_RC(etcdc_cas_value(c, kb1, strlen(kb1), "one", 3, "x", 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK_OK(etcdc_move_key(c, kb1, strlen(kb1), th_key("moved"), strlen(th_key("moved")), false,
                            NULL, &err),
             &err);
    REQUIRE_OK(etcdc_get(c, th_key("moved"), strlen(th_key("moved")), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "uno"); /* re-sealed for its new key */
    etcdc_kv_clear(&kv);
    /* Byte compares of stored values cannot work on ciphertexts: refused. */
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_if_value(t, kb2, strlen(kb2), ETCDC_EQUAL, "two", 3);
    etcdc_txn_result r;
    CHECK_RC(etcdc_txn_commit(c, t, &r, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    etcdc_txn_free(t);
    /* A put inside a nested txn is sealed too; the builder keeps its plaintext (a second
     * commit seals it again with a fresh nonce). */
    t = etcdc_txn_new();
    etcdc_txn *inner = etcdc_txn_new();
    const char *nk = th_key("nested");
    etcdc_txn_put(inner, ETCDC_THEN, nk, strlen(nk), "deep secret", 11, 0);
    REQUIRE_OK(etcdc_txn_nest(t, ETCDC_THEN, inner), NULL);
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(etcdc_txn_commit(c, t, &r, &err), &err);
        etcdc_txn_result_clear(&r);
        REQUIRE_OK(etcdc_get(RAW, nk, strlen(nk), &kv, &err), &err);
        CHECK_INT(kv.value_len, 11 + etcdc_envelope_overhead());
        CHECK(memmem(kv.value, kv.value_len, "secret", 6) == NULL);
        etcdc_kv_clear(&kv);
        REQUIRE_OK(etcdc_get(c, nk, strlen(nk), &kv, &err), &err);
        CHECK_STR(kv.value, kv.value_len, "deep secret");
        etcdc_kv_clear(&kv);
    }
    etcdc_txn_free(t);
    etcdc_client_free(c);
}

static void test_tampered_moved_plaintext(void)
{
    etcdc_error err = {0};
    etcdc_client *c = enc_client(true, false, false);
    char k[200], copy[200], plain[200];
    snprintf(k, sizeof k, "%s", th_key("v"));
    snprintf(copy, sizeof copy, "%s", th_key("copy"));
    snprintf(plain, sizeof plain, "%s", th_key("plain"));
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "value", 5, NULL, &err), &err);
    etcdc_kv stored, kv;
    REQUIRE_OK(etcdc_get(RAW, k, strlen(k), &stored, &err), &err);
    /* The same ciphertext under another key does not open (bound to its key). */
    REQUIRE_OK(etcdc_put(RAW, copy, strlen(copy), stored.value, stored.value_len, NULL, &err),
               &err);
    CHECK_RC(etcdc_get(c, copy, strlen(copy), &kv, &err), ETCDC_ERR_CRYPTO, &err);
    printf("  moved ciphertext: %s\n", err.message);
    /* One flipped bit. */
    stored.value[stored.value_len - 1] ^= 1;
    REQUIRE_OK(etcdc_put(RAW, k, strlen(k), stored.value, stored.value_len, NULL, &err), &err);
    CHECK_RC(etcdc_get(c, k, strlen(k), &kv, &err), ETCDC_ERR_CRYPTO, &err);
    etcdc_kv_clear(&stored);
    /* Plaintext written behind the library's back: refused unless migration is allowed. */
    REQUIRE_OK(etcdc_put(RAW, plain, strlen(plain), "clear", 5, NULL, &err), &err);
    CHECK_RC(etcdc_get(c, plain, strlen(plain), &kv, &err), ETCDC_ERR_CRYPTO, &err);
    /* In a range the bad entries are flagged, the good ones readable. */
    char good[200];
    snprintf(good, sizeof good, "%s", th_key("good"));
    REQUIRE_OK(etcdc_put(c, good, strlen(good), "fine", 4, NULL, &err), &err);
    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(c, th_prefix(), strlen(th_prefix()), &kvs, &err), &err);
    int flagged = 0, fine = 0;
    for (size_t i = 0; i < kvs.count; i++) {
        if (kvs.kvs[i].value_error) {
            flagged++;
            CHECK_INT(kvs.kvs[i].value_len, 0);
        } else if (kvs.kvs[i].value_len == 4 && !memcmp(kvs.kvs[i].value, "fine", 4))
            fine++;
    }
    CHECK_INT(flagged, 3);
    CHECK_INT(fine, 1);
    etcdc_kvs_clear(&kvs);
    etcdc_client_free(c);
    etcdc_client *m = enc_client(true, false, true);
    REQUIRE_OK(etcdc_get(m, plain, strlen(plain), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "clear");
    etcdc_kv_clear(&kv);
    etcdc_client_free(m);
    /* A client with a different key cannot read it either. */
    etcdc_client *other = enc_client(false, true, false);
    CHECK_RC(etcdc_get(other, good, strlen(good), &kv, &err), ETCDC_ERR_CRYPTO, &err);
    etcdc_client_free(other);
}

typedef struct wrec {
    pthread_mutex_t mu;
    char value[64];
    int events;
} wrec;

static void on_watch(void *arg, const etcdc_watch_response *r)
{
    wrec *w = arg;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < r->event_count; i++) {
        snprintf(w->value, sizeof w->value, "%s", r->events[i].kv.value);
        w->events++;
    }
    pthread_mutex_unlock(&w->mu);
}

static void test_watch_plaintext(void)
{
    etcdc_error err = {0};
    etcdc_client *c = enc_client(true, false, false);
    wrec w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    etcdc_watcher *wt =
        etcdc_watch_prefix(c, th_prefix(), strlen(th_prefix()), 0, false, on_watch, &w, &err);
    REQUIRE(wt != NULL);
    REQUIRE_OK(etcdc_put(c, th_key("w"), strlen(th_key("w")), "watched", 7, NULL, &err), &err);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&w.mu);
        int n = w.events;
        pthread_mutex_unlock(&w.mu);
        if (n)
            break;
        th_sleep_ms(50);
    }
    etcdc_watch_cancel(wt);
    CHECK_INT(w.events, 1);
    CHECK(strcmp(w.value, "watched") == 0);
    etcdc_client_free(c);
}

static void test_key_files(void)
{
    etcdc_error err = {0};
    char dir[] = "/tmp/etcdc-keys.XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char text[300], raw[300];
    snprintf(text, sizeof text, "%s/keys.txt", dir);
    snprintf(raw, sizeof raw, "%s/key.bin", dir);
    FILE *f = fopen(text, "w");
    fprintf(f, "# rotation: 1 old, 2 new\n\n1 ");
    for (int i = 0; i < 32; i++)
        fprintf(f, "%02x", KEY1[i]);
    fprintf(f, "\n2 ");
    for (int i = 0; i < 32; i++)
        fprintf(f, "%02x", KEY2[i]);
    fprintf(f, "\n");
    fclose(f);
    chmod(text, 0600);
    int fd = open(raw, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(write(fd, KEY1, 32) == 32);
    close(fd);

    etcdc_config *cfg = th_config();
    CHECK_OK(etcdc_config_load_key_file(cfg, text, &err), &err);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    const char *k = th_key("kf");
    REQUIRE_OK(etcdc_put(c, k, strlen(k), "v", 1, NULL, &err), &err);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(RAW, k, strlen(k), &kv, &err), &err);
    CHECK_INT(kv.value[3], 2); /* the highest id seals */
    etcdc_kv_clear(&kv);
    etcdc_client_free(c);

    cfg = th_config();
    CHECK_OK(etcdc_config_load_key_file(cfg, raw, &err), &err);
    etcdc_config_free(cfg);
    /* Readable by others: refused with advice. */
    chmod(text, 0644);
    cfg = th_config();
    CHECK_RC(etcdc_config_load_key_file(cfg, text, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    printf("  0644 key file: %s\n", err.message);
    CHECK_RC(etcdc_config_load_key_file(cfg, dir, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
    CHECK(etcdc_config_load_key_file(cfg, "/nonexistent/key", &err) != ETCDC_OK);
    /* Bad ids and duplicates. */
    CHECK_RC(etcdc_config_add_encryption_key(cfg, 0, KEY1), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    CHECK_OK(etcdc_config_add_encryption_key(cfg, 7, KEY1), NULL);
    CHECK_RC(etcdc_config_add_encryption_key(cfg, 7, KEY2), ETCDC_ERR_INVALID_ARGUMENT, NULL);
    etcdc_config_free(cfg);
    unlink(text);
    unlink(raw);
    rmdir(dir);
}

static void test_rekey(void)
{
    etcdc_error err = {0};
    char p[200];
    snprintf(p, sizeof p, "%s", th_prefix());
    etcdc_client *old = enc_client(true, false, false);
    for (int i = 0; i < 25; i++) {
        char k[220], v[32];
        snprintf(k, sizeof k, "%sk%02d", p, i);
        snprintf(v, sizeof v, "value %d", i);
        REQUIRE_OK(etcdc_put(old, k, strlen(k), v, strlen(v), NULL, &err), &err);
    }
    etcdc_client *both = enc_client(true, true, false);
    etcdc_rekey_stats st = {0};
    CHECK_OK(etcdc_rekey_prefix(both, p, strlen(p), NULL, NULL, &st, &err), &err);
    CHECK_INT(st.scanned, 25);
    CHECK_INT(st.resealed, 25);
    CHECK_INT(st.failed, 0);
    /* Idempotent. */
    CHECK_OK(etcdc_rekey_prefix(both, p, strlen(p), NULL, NULL, &st, &err), &err);
    CHECK_INT(st.resealed, 0);
    CHECK_INT(st.current, 25);
    /* Only the new key is needed now. */
    etcdc_client *fresh = enc_client(false, true, false);
    etcdc_kvs kvs;
    REQUIRE_OK(etcdc_get_prefix(fresh, p, strlen(p), &kvs, &err), &err);
    CHECK_INT(kvs.count, 25);
    int ok = 0;
    for (size_t i = 0; i < kvs.count; i++) {
        char v[32];
        snprintf(v, sizeof v, "value %zu", i);
        ok += !kvs.kvs[i].value_error && kvs.kvs[i].value_len == strlen(v) &&
              !memcmp(kvs.kvs[i].value, v, strlen(v));
    }
    CHECK_INT(ok, 25);
    etcdc_kvs_clear(&kvs);
    /* A value nobody can open: counted, left alone, reported after the whole prefix. */
    char bad[220];
    snprintf(bad, sizeof bad, "%szz-plain", p);
    REQUIRE_OK(etcdc_put(RAW, bad, strlen(bad), "clear", 5, NULL, &err), &err);
    CHECK_RC(etcdc_rekey_prefix(both, p, strlen(p), NULL, NULL, &st, &err), ETCDC_ERR_CRYPTO, &err);
    CHECK_INT(st.failed, 1);
    CHECK_INT(st.scanned, 26);
    etcdc_kv kv;
    REQUIRE_OK(etcdc_get(RAW, bad, strlen(bad), &kv, &err), &err);
    CHECK_STR(kv.value, kv.value_len, "clear");
    etcdc_kv_clear(&kv);
    etcdc_client_free(fresh);
    etcdc_client_free(both);
    etcdc_client_free(old);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_sealed_at_rest), TH_TEST(test_tampered_moved_plaintext),
        TH_TEST(test_watch_plaintext), TH_TEST(test_key_files), TH_TEST(test_rekey),
        TH_TEST(teardown))
