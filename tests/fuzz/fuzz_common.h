/*
 * fuzz_common.h - helpers shared by the fuzz targets that feed server answers to libetcdc:
 * a client with or without encryption (fixed test keys, also used by make_seeds.c to write
 * envelopes that open), framing of several messages in one input, and gRPC byte buffers.
 */
#ifndef ETCDFS_FUZZ_COMMON_H
#define ETCDFS_FUZZ_COMMON_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: property violated: %s (line %d)\n", __FILE__, #cond, __LINE__);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The test keys: id 1 (an older one) and id 7 (the newest, which seals new values). With
 * old_only, only id 1 is configured. make_seeds.c seals seed values with the same keys. */
static inline void fuzz_config_init(etcdc_config *cfg, bool encrypted, bool allow_plaintext,
                                    bool old_only)
{
    memset(cfg, 0, sizeof *cfg);
    if (!encrypted)
        return;
    cfg->keys[0].id = 1;
    memset(cfg->keys[0].bytes, 0x11, sizeof cfg->keys[0].bytes);
    cfg->keys[1].id = 7;
    for (size_t i = 0; i < sizeof cfg->keys[1].bytes; i++)
        cfg->keys[1].bytes[i] = (uint8_t)(i * 37 + 5);
    cfg->key_count = old_only ? 1 : 2;
    cfg->allow_plaintext = allow_plaintext;
}

/* A client good enough for the conversion code, which only reads c->cfg (no channel). */
static inline void fuzz_client_init(etcdc_client *c, bool encrypted, bool allow_plaintext)
{
    memset(c, 0, sizeof *c);
    fuzz_config_init(&c->cfg, encrypted, allow_plaintext, false);
}

/* Splits the next frame off *p: 2 bytes big-endian length, then that many bytes (fewer when
 * the input ends first). Returns false when nothing is left. */
static inline bool fuzz_next_frame(const uint8_t **p, size_t *n, const uint8_t **frame,
                                   size_t *frame_len)
{
    if (*n < 2)
        return false;
    size_t len = (size_t)(*p)[0] << 8 | (*p)[1];
    *p += 2;
    *n -= 2;
    if (len > *n)
        len = *n;
    *frame = *p;
    *frame_len = len;
    *p += len;
    *n -= len;
    return true;
}

/* The bytes as the gRPC byte buffer a stream callback receives. */
static inline grpc_byte_buffer *fuzz_byte_buffer(const uint8_t *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* A converted kv must be the protobuf kv (values opened when encryption is on). */
static inline void fuzz_check_kv(const etcdc_client *c, const Mvccpb__KeyValue *pb,
                                 const etcdc_kv *kv)
{
    REQUIRE(kv->key && kv->value);
    /* (an empty bytes field decodes with data == NULL: never memcmp that) */
    REQUIRE(kv->key_len == pb->key.len &&
            (!pb->key.len || !memcmp(kv->key, pb->key.data, pb->key.len)));
    REQUIRE(kv->key[kv->key_len] == 0 && kv->value[kv->value_len] == 0);
    REQUIRE(kv->mod_revision == pb->mod_revision && kv->lease == pb->lease);
    if (c->cfg.key_count == 0 || pb->value.len == 0) {
        REQUIRE(!kv->value_error);
        REQUIRE(kv->value_len == pb->value.len &&
                (!pb->value.len || !memcmp(kv->value, pb->value.data, pb->value.len)));
    } else if (kv->value_error) {
        REQUIRE(kv->value_len == 0);
    } else if (etcdc__envelope_key_id(pb->value.data, pb->value.len) != 0) {
        REQUIRE(kv->value_len == pb->value.len - ETCDC_ENV_OVERHEAD);
    } else {
        REQUIRE(c->cfg.allow_plaintext && kv->value_len == pb->value.len);
    }
}

#endif
