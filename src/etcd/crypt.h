/*
 * crypt.h - the value envelope: AES-256-GCM with the etcd key as associated data.
 *
 *   byte 0-1  magic 0xE7 0xCD (never the start of valid UTF-8 text)
 *   byte 2    format version (1)
 *   byte 3    key id (1..255)
 *   byte 4-15 nonce (96 bits, fresh from the CSPRNG for every value)
 *   ...       ciphertext (same length as the plaintext)
 *   last 16   GCM tag
 * The associated data is bytes 0-3 followed by the etcd key, so a ciphertext copied to another
 * key, or with its header altered, does not open.
 */
#ifndef ETCDC_CRYPT_H
#define ETCDC_CRYPT_H

#include "internal.h"

#define ETCDC_ENV_HEADER 16
#define ETCDC_ENV_TAG 16
#define ETCDC_ENV_OVERHEAD (ETCDC_ENV_HEADER + ETCDC_ENV_TAG)

/* Whether encryption is configured. */
bool etcdc__crypt_on(const etcdc_config *cfg);
/* Seals plain under the newest key; *out (malloc'd, out_len bytes) is the envelope. */
etcdc_code etcdc__seal(const etcdc_config *cfg, const void *key, size_t key_len, const void *plain,
                       size_t plain_len, uint8_t **out, size_t *out_len, etcdc_error *err);
/* Opens an envelope into a malloc'd NUL-terminated plaintext. ETCDC_ERR_CRYPTO (naming the key)
 * for anything that does not authenticate, or for a plaintext value when they are not allowed. */
etcdc_code etcdc__open(const etcdc_config *cfg, const void *key, size_t key_len, const uint8_t *env,
                       size_t env_len, char **plain, size_t *plain_len, etcdc_error *err);
/* The key id of an envelope, 0 when value is not one. */
uint8_t etcdc__envelope_key_id(const uint8_t *env, size_t env_len);
/* AES-256-GCM over len bytes with a 96-bit nonce; associated data = hdr[0..3] + key. enc 1:
 * encrypt in -> out and write the tag; enc 0: decrypt and return false unless tag verifies. */
bool etcdc__gcm(int enc, const uint8_t *k, const uint8_t *nonce, const uint8_t *hdr,
                const void *key, size_t key_len, const uint8_t *in, size_t len, uint8_t *out,
                uint8_t *tag);
/* The id of the key that seals new values. */
uint8_t etcdc__seal_key_id(const etcdc_config *cfg);

#endif
