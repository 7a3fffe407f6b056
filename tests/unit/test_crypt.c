/*
 * test_crypt.c - the value envelope: AES-256-GCM known-answer vectors (the GCM specification's
 * 256-bit test cases), and sealing/opening with tamper, truncation, swap and wrong-key cases.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

#include "check.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* One known-answer vector: the AAD is split as hdr (4 bytes) + rest, as the envelope does. */
static void kat(const char *k_hex, const char *iv_hex, const char *p_hex, const char *a_hex,
                const char *c_hex, const char *t_hex)
{
    uint8_t k[32], iv[12], p[128], a[64], c[128], t[16], out[128], tag[16], back[128];
    unhex(k_hex, k);
    unhex(iv_hex, iv);
    size_t plen = unhex(p_hex, p), alen = unhex(a_hex, a);
    unhex(c_hex, c);
    unhex(t_hex, t);
    uint8_t hdr[4] = {0};
    memcpy(hdr, a, alen < 4 ? alen : 4);
    if (alen != 0 && alen < 4) {
        CHECK(!"AAD shorter than 4 bytes is not representable");
        return;
    }
    CHECK(etcdc__gcm(1, k, iv, hdr, a + 4, alen > 4 ? alen - 4 : 0, p, plen, out, tag));
    CHECK(memcmp(out, c, plen) == 0);
    CHECK(memcmp(tag, t, 16) == 0);
    CHECK(etcdc__gcm(0, k, iv, hdr, a + 4, alen > 4 ? alen - 4 : 0, out, plen, back, tag));
    CHECK(memcmp(back, p, plen) == 0);
    tag[0] ^= 1;
    CHECK(!etcdc__gcm(0, k, iv, hdr, a + 4, alen > 4 ? alen - 4 : 0, out, plen, back, tag));
}

static etcdc_config *config_with_keys(int n)
{
    etcdc_config *cfg = etcdc_config_new();
    for (int i = 1; i <= n; i++) {
        uint8_t key[32];
        memset(key, 0x40 + i, sizeof key);
        CHECK(etcdc_config_add_encryption_key(cfg, (uint8_t)i, key) == ETCDC_OK);
    }
    return cfg;
}

static void envelope_cases(void)
{
    etcdc_config *cfg = config_with_keys(2);
    const char *key = "/app/secret", *msg = "hunter2";
    uint8_t *env;
    size_t env_len;
    etcdc_error err;
    CHECK(etcdc__seal(cfg, key, strlen(key), msg, strlen(msg), &env, &env_len, &err) == ETCDC_OK);
    CHECK(env_len == strlen(msg) + ETCDC_ENV_OVERHEAD);
    CHECK(etcdc__envelope_key_id(env, env_len) == 2); /* the newest key seals */
    CHECK(memmem(env, env_len, msg, strlen(msg)) == NULL);

    char *plain;
    size_t plain_len;
    CHECK(etcdc__open(cfg, key, strlen(key), env, env_len, &plain, &plain_len, &err) == ETCDC_OK);
    CHECK(plain_len == strlen(msg) && memcmp(plain, msg, plain_len) == 0);
    free(plain);

    /* Two seals of one value differ (fresh nonce). */
    uint8_t *env2;
    size_t env2_len;
    CHECK(etcdc__seal(cfg, key, strlen(key), msg, strlen(msg), &env2, &env2_len, &err) == 0);
    CHECK(env2_len == env_len && memcmp(env, env2, env_len) != 0);
    free(env2);

    /* Every single-bit flip anywhere is detected. */
    for (size_t i = 0; i < env_len; i++) {
        env[i] ^= 0x10;
        CHECK(etcdc__open(cfg, key, strlen(key), env, env_len, &plain, &plain_len, &err) ==
              ETCDC_ERR_CRYPTO);
        CHECK(plain == NULL);
        env[i] ^= 0x10;
    }
    /* Truncation at every length (an empty value is allowed: it seals nothing). */
    for (size_t n = 0; n < env_len; n++) {
        etcdc_code want = n == 0 ? ETCDC_OK : ETCDC_ERR_CRYPTO;
        CHECK(etcdc__open(cfg, key, strlen(key), env, n, &plain, &plain_len, &err) == want);
        free(plain);
    }
    /* Swap: the same bytes under another key do not open. */
    CHECK(etcdc__open(cfg, "/app/other", 10, env, env_len, &plain, &plain_len, &err) ==
          ETCDC_ERR_CRYPTO);
    CHECK(strstr(err.message, "/app/other") != NULL);
    /* Wrong key: a config whose key 2 differs. */
    etcdc_config *other = etcdc_config_new();
    uint8_t wrong[32];
    memset(wrong, 0x99, sizeof wrong);
    etcdc_config_add_encryption_key(other, 2, wrong);
    CHECK(etcdc__open(other, key, strlen(key), env, env_len, &plain, &plain_len, &err) ==
          ETCDC_ERR_CRYPTO);
    /* A key id missing from the key file. */
    etcdc_config *only1 = config_with_keys(1);
    CHECK(etcdc__open(only1, key, strlen(key), env, env_len, &plain, &plain_len, &err) ==
          ETCDC_ERR_CRYPTO);
    /* Plaintext refused, unless migration is allowed. */
    CHECK(etcdc__open(cfg, key, strlen(key), (const uint8_t *)"plain", 5, &plain, &plain_len,
                      &err) == ETCDC_ERR_CRYPTO);
    etcdc_config_set_allow_plaintext(cfg, true);
    CHECK(etcdc__open(cfg, key, strlen(key), (const uint8_t *)"plain", 5, &plain, &plain_len,
                      &err) == ETCDC_OK);
    CHECK(plain_len == 5);
    free(plain);
    free(env);
    etcdc_config_free(cfg);
    etcdc_config_free(other);
    etcdc_config_free(only1);
}

int main(void)
{
    /* The GCM specification's test case 16 (256-bit key, 60-byte plaintext, 20-byte AAD). */
    kat("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449"
        "a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
        "56828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b");
    envelope_cases();
    if (failures) {
        fprintf(stderr, "test_crypt: %d failures\n", failures);
        return 1;
    }
    printf("test_crypt: ok\n");
    return 0;
}
