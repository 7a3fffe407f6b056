/* crypt.c - sealing and opening values (see crypt.h for the envelope format). */
#include "crypt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[2] = {0xE7, 0xCD};
#define VERSION 1

bool etcdc__crypt_on(const etcdc_config *cfg)
{
    return cfg->key_count > 0;
}

uint8_t etcdc__seal_key_id(const etcdc_config *cfg)
{
    uint8_t best = 0;
    for (size_t i = 0; i < cfg->key_count; i++)
        if (cfg->keys[i].id > best)
            best = cfg->keys[i].id;
    return best;
}

static const uint8_t *find_key(const etcdc_config *cfg, uint8_t id)
{
    for (size_t i = 0; i < cfg->key_count; i++)
        if (cfg->keys[i].id == id)
            return cfg->keys[i].bytes;
    return NULL;
}

uint8_t etcdc__envelope_key_id(const uint8_t *env, size_t env_len)
{
    if (env_len < ETCDC_ENV_OVERHEAD || memcmp(env, MAGIC, 2) != 0 || env[2] != VERSION)
        return 0;
    return env[3];
}

/* One GCM pass: encrypt (enc = 1) or decrypt and verify the tag (enc = 0). The associated
 * data is hdr (4 bytes) followed by key. */
bool etcdc__gcm(int enc, const uint8_t *k, const uint8_t *nonce, const uint8_t *hdr,
                const void *key, size_t key_len, const uint8_t *in, size_t len, uint8_t *out,
                uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
              EVP_CipherInit_ex(ctx, NULL, NULL, k, nonce, enc) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &n, hdr, 4) == 1 &&
              (key_len == 0 || EVP_CipherUpdate(ctx, NULL, &n, key, (int)key_len) == 1) &&
              (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1);
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ETCDC_ENV_TAG, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(ctx, out + len, &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ETCDC_ENV_TAG, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

etcdc_code etcdc__seal(const etcdc_config *cfg, const void *key, size_t key_len, const void *plain,
                       size_t plain_len, uint8_t **out, size_t *out_len, etcdc_error *err)
{
    *out = NULL;
    if (plain_len > (size_t)1 << 30)
        return etcdc__set_error(err, ETCDC_ERR_TOO_LARGE, 0, "value too large to seal");
    uint8_t id = etcdc__seal_key_id(cfg);
    const uint8_t *k = find_key(cfg, id);
    uint8_t *env = malloc(plain_len + ETCDC_ENV_OVERHEAD);
    if (!env)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    env[0] = MAGIC[0];
    env[1] = MAGIC[1];
    env[2] = VERSION;
    env[3] = id;
    if (RAND_bytes(env + 4, 12) != 1 ||
        !etcdc__gcm(1, k, env + 4, env, key, key_len, plain, plain_len, env + ETCDC_ENV_HEADER,
                    env + ETCDC_ENV_HEADER + plain_len)) {
        free(env);
        return etcdc__set_error(err, ETCDC_ERR_CRYPTO, 0, "sealing failed (OpenSSL)");
    }
    *out = env;
    *out_len = plain_len + ETCDC_ENV_OVERHEAD;
    return ETCDC_OK;
}

etcdc_code etcdc__open(const etcdc_config *cfg, const void *key, size_t key_len, const uint8_t *env,
                       size_t env_len, char **plain, size_t *plain_len, etcdc_error *err)
{
    *plain = NULL;
    *plain_len = 0;
    uint8_t id = etcdc__envelope_key_id(env, env_len);
    const char *why = NULL;
    const uint8_t *k = NULL;
    if (id == 0) {
        /* An empty value carries nothing to protect: directory markers and etcdctl's lock keys
         * are empty. Anything else unsealed is refused unless migration is allowed. */
        if (env_len == 0 || cfg->allow_plaintext) {
            *plain = etcdc__dup_bytes(env, env_len);
            *plain_len = env_len;
            return *plain ? ETCDC_OK
                          : etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        }
        why = "is not encrypted (plaintext refused)";
    } else if (!(k = find_key(cfg, id))) {
        why = "is sealed with a key id that is not in the key file";
    }
    if (!why) {
        size_t len = env_len - ETCDC_ENV_OVERHEAD;
        char *out = malloc(len + 1);
        if (!out)
            return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        uint8_t tag[ETCDC_ENV_TAG];
        memcpy(tag, env + env_len - ETCDC_ENV_TAG, ETCDC_ENV_TAG);
        if (etcdc__gcm(0, k, env + 4, env, key, key_len, env + ETCDC_ENV_HEADER, len,
                       (uint8_t *)out, tag)) {
            out[len] = 0;
            *plain = out;
            *plain_len = len;
            return ETCDC_OK;
        }
        OPENSSL_cleanse(out, len);
        free(out);
        why = "failed authentication (tampered, truncated, copied from another key, or wrong key)";
    }
    return etcdc__set_error(err, ETCDC_ERR_CRYPTO, 0, "value of key '%.*s' %s",
                            (int)(key_len > 200 ? 200 : key_len), (const char *)key, why);
}
