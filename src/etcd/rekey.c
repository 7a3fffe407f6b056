/* rekey.c - re-sealing the values under a prefix with the newest key (see etcdc.h). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

#define PAGE 200
#define MAX_ATTEMPTS 5

/* Rewrites one key if needed; *kv may be replaced by a fresh read after a conflict. */
static etcdc_code reseal_one(etcdc_client *c, Mvccpb__KeyValue *kv, etcdc_rekey_stats *st,
                             etcdc_error *err)
{
    uint8_t newest = etcdc__seal_key_id(&c->cfg);
    ProtobufCBinaryData key = kv->key, value = kv->value;
    int64_t mod = kv->mod_revision, lease = kv->lease;
    Etcdserverpb__RangeResponse *fresh = NULL;
    etcdc_code rc = ETCDC_OK;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (value.len == 0 || etcdc__envelope_key_id(value.data, value.len) == newest) {
            st->current++;
            break;
        }
        char *plain = NULL;
        size_t plain_len = 0;
        etcdc_error why;
        if (etcdc__open(&c->cfg, key.data, key.len, value.data, value.len, &plain, &plain_len,
                        &why) != ETCDC_OK) {
            st->failed++;
            if (err && err->code == ETCDC_OK)
                *err = why;
            break;
        }
        etcdc_txn *t = etcdc_txn_new();
        if (!t) {
            OPENSSL_cleanse(plain, plain_len);
            free(plain);
            rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
            break;
        }
        etcdc_txn_if(t, key.data, key.len, ETCDC_CMP_MOD, ETCDC_EQUAL, mod);
        etcdc_txn_put(t, ETCDC_THEN, key.data, key.len, plain, plain_len, lease);
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
        etcdc_txn_result r;
        rc = etcdc_txn_commit(c, t, &r, err);
        etcdc_txn_free(t);
        if (rc != ETCDC_OK)
            break;
        bool done = r.succeeded;
        etcdc_txn_result_clear(&r);
        if (done) {
            st->resealed++;
            break;
        }
        /* A writer changed the key meanwhile: look at what it wrote. */
        st->conflicts++;
        if (fresh)
            protobuf_c_message_free_unpacked(&fresh->base, NULL);
        fresh = NULL;
        etcdc_range_req req = {.key = key.data, .key_len = key.len};
        rc = etcdc__range_raw(c, &req, &fresh, err);
        if (rc != ETCDC_OK)
            break;
        if (fresh->n_kvs == 0) { /* deleted meanwhile: nothing to reseal */
            st->current++;
            break;
        }
        value = fresh->kvs[0]->value;
        mod = fresh->kvs[0]->mod_revision;
        lease = fresh->kvs[0]->lease;
    }
    if (fresh)
        protobuf_c_message_free_unpacked(&fresh->base, NULL);
    return rc;
}

etcdc_code etcdc_rekey_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                              etcdc_rekey_progress_cb cb, void *arg, etcdc_rekey_stats *out,
                              etcdc_error *err)
{
    etcdc__clear_error(err);
    etcdc_rekey_stats st = {0};
    if (err)
        memset(err, 0, sizeof *err);
    if (!etcdc__crypt_on(&c->cfg))
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                                "rekey needs encryption keys in the configuration");
    char *end = malloc(prefix_len + 1), *cursor = etcdc__dup_bytes(prefix, prefix_len);
    if (!end || !cursor) {
        free(end);
        free(cursor);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    size_t end_len = etcdc_prefix_end(prefix, prefix_len, end), cursor_len = prefix_len;
    if (cursor_len == 0) {
        cursor[0] = 0;
        cursor_len = 1;
    }
    etcdc_code rc = ETCDC_OK;
    for (bool more = true; more && rc == ETCDC_OK;) {
        etcdc_range_req req = {.key = cursor,
                               .key_len = cursor_len,
                               .range_end = end_len ? end : "\0",
                               .range_end_len = end_len ? end_len : 1,
                               .limit = PAGE};
        Etcdserverpb__RangeResponse *resp = NULL;
        rc = etcdc__range_raw(c, &req, &resp, err);
        if (rc != ETCDC_OK)
            break;
        for (size_t i = 0; i < resp->n_kvs && rc == ETCDC_OK; i++) {
            st.scanned++;
            rc = reseal_one(c, resp->kvs[i], &st, err);
        }
        more = resp->more && resp->n_kvs > 0;
        if (more) {
            ProtobufCBinaryData last = resp->kvs[resp->n_kvs - 1]->key;
            char *next = malloc(last.len + 1);
            if (next) {
                memcpy(next, last.data, last.len);
                next[last.len] = 0;
                free(cursor);
                cursor = next;
                cursor_len = last.len + 1; /* the key followed by a zero byte */
            } else {
                rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
            }
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (cb)
            cb(arg, &st);
    }
    free(end);
    free(cursor);
    if (out)
        *out = st;
    if (rc == ETCDC_OK && st.failed > 0)
        rc = ETCDC_ERR_CRYPTO; /* err holds the first failure's message */
    return rc;
}
