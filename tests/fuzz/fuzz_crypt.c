/*
 * fuzz_crypt.c - libFuzzer target for the value envelope (src/etcd/crypt.c, crypt.h).
 *
 * Input: byte 0 = flags (bit 0: allow plaintext, bit 1: only the older key is configured),
 * byte 1 = length of the etcd key (the associated data), then the key, then the rest ("body").
 *  1. The body opened as an envelope: must fail cleanly or succeed, never read out of bounds
 *     (ASan), and a success must be consistent (plaintext only where allowed; a sealed value's
 *     plaintext is exactly 32 bytes shorter).
 *  2. The body sealed as plaintext under the key, then opened: must give back the body; with
 *     another key, or with any single byte of the envelope altered, it must not open.
 */
#include "fuzz_common.h"

/* An exact-size heap copy, so that ASan sees any read past the end. */
static uint8_t *copy(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    REQUIRE(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static void open_arbitrary(const etcdc_config *cfg, const uint8_t *key, size_t key_len,
                           const uint8_t *body, size_t body_len)
{
    uint8_t *env = copy(body, body_len);
    char *plain = (char *)1;
    size_t plain_len = 99;
    etcdc_error err = {0};
    etcdc_code rc = etcdc__open(cfg, key, key_len, env, body_len, &plain, &plain_len, &err);
    uint8_t id = etcdc__envelope_key_id(env, body_len);
    if (rc == ETCDC_OK) {
        REQUIRE(plain && plain[plain_len] == 0);
        if (id == 0) { /* not an envelope: passed through only where allowed */
            REQUIRE(body_len == 0 || cfg->allow_plaintext);
            REQUIRE(plain_len == body_len && !memcmp(plain, body, body_len));
        } else {
            REQUIRE(body_len >= ETCDC_ENV_OVERHEAD && plain_len == body_len - ETCDC_ENV_OVERHEAD);
        }
    } else {
        REQUIRE(rc == ETCDC_ERR_CRYPTO);
        REQUIRE(plain == NULL && plain_len == 0);
        REQUIRE(err.code == ETCDC_ERR_CRYPTO && err.message[0] != 0);
    }
    free(plain);
    free(env);
}

static void round_trip(const etcdc_config *cfg, const uint8_t *key, size_t key_len,
                       const uint8_t *body, size_t body_len, size_t flip)
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    etcdc_error err = {0};
    REQUIRE(etcdc__seal(cfg, key, key_len, body, body_len, &env, &env_len, &err) == ETCDC_OK);
    REQUIRE(env_len == body_len + ETCDC_ENV_OVERHEAD);
    REQUIRE(etcdc__envelope_key_id(env, env_len) == etcdc__seal_key_id(cfg));

    char *plain = NULL;
    size_t plain_len = 0;
    REQUIRE(etcdc__open(cfg, key, key_len, env, env_len, &plain, &plain_len, &err) == ETCDC_OK);
    REQUIRE(plain_len == body_len && !memcmp(plain, body, body_len) && plain[plain_len] == 0);
    free(plain);

    /* The key is associated data: the envelope copied to another key does not open. */
    uint8_t *other = malloc(key_len + 1);
    REQUIRE(other);
    if (key_len)
        memcpy(other, key, key_len);
    other[key_len] = 'x';
    REQUIRE(etcdc__open(cfg, other, key_len + 1, env, env_len, &plain, &plain_len, &err) ==
            ETCDC_ERR_CRYPTO);
    free(other);

    /* Any altered byte is refused, except that a header no longer marking an envelope (magic,
     * version, or key id 0, which no key has) reads as plaintext where plaintext is allowed
     * (migration): such a value is indistinguishable from one written unsealed. */
    size_t at = flip % env_len;
    env[at] ^= (uint8_t)(1u << (flip / env_len % 8));
    etcdc_code rc = etcdc__open(cfg, key, key_len, env, env_len, &plain, &plain_len, &err);
    if (etcdc__envelope_key_id(env, env_len) == 0 && cfg->allow_plaintext) {
        REQUIRE(rc == ETCDC_OK && plain_len == env_len);
        free(plain);
    } else {
        REQUIRE(rc == ETCDC_ERR_CRYPTO && plain == NULL);
    }
    free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    etcdc_config cfg;
    fuzz_config_init(&cfg, true, data[0] & 1, data[0] & 2);
    size_t key_len = data[1];
    if (key_len > size - 2)
        key_len = size - 2;
    uint8_t *key = copy(data + 2, key_len);
    const uint8_t *body = data + 2 + key_len;
    size_t body_len = size - 2 - key_len;

    open_arbitrary(&cfg, key, key_len, body, body_len);
    round_trip(&cfg, key, key_len, body, body_len, (size_t)data[0] * 131 + body_len);
    free(key);
    return 0;
}
