/* convert.c - copying protobuf key/values into the library's owned result types. */
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

char *etcdc__dup_bytes(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

void etcdc_kv_clear(etcdc_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

void etcdc_kvs_clear(etcdc_kvs *kvs)
{
    if (!kvs)
        return;
    for (size_t i = 0; i < kvs->count; i++)
        etcdc_kv_clear(&kvs->kvs[i]);
    free(kvs->kvs);
    memset(kvs, 0, sizeof *kvs);
}

etcdc_code etcdc__kv_from_pb(etcdc_client *c, const Mvccpb__KeyValue *pb, etcdc_kv *out,
                             etcdc_error *err)
{
    memset(out, 0, sizeof *out);
    out->key = etcdc__dup_bytes(pb->key.data, pb->key.len);
    out->key_len = pb->key.len;
    out->create_revision = pb->create_revision;
    out->mod_revision = pb->mod_revision;
    out->version = pb->version;
    out->lease = pb->lease;
    if (etcdc__crypt_on(&c->cfg) && pb->value.len > 0) {
        /* A value that does not open is marked, not fatal: one bad key must not make a whole
         * listing or watch fail. Single-key reads turn the mark into ETCDC_ERR_CRYPTO. */
        etcdc_code rc = etcdc__open(&c->cfg, pb->key.data, pb->key.len, pb->value.data,
                                    pb->value.len, &out->value, &out->value_len, err);
        if (rc == ETCDC_ERR_CRYPTO) {
            out->value_error = true;
            out->value = etcdc__dup_bytes("", 0);
            out->value_len = 0;
        } else if (rc != ETCDC_OK) {
            etcdc_kv_clear(out);
            return rc;
        }
    } else {
        out->value = etcdc__dup_bytes(pb->value.data, pb->value.len);
        out->value_len = pb->value.len;
    }
    if (!out->key || !out->value) {
        etcdc_kv_clear(out);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    return ETCDC_OK;
}

etcdc_code etcdc__kvs_append(etcdc_client *c, etcdc_kvs *out, Mvccpb__KeyValue **pbs, size_t n,
                             etcdc_error *err)
{
    if (n == 0)
        return ETCDC_OK;
    etcdc_kv *grown = realloc(out->kvs, (out->count + n) * sizeof *grown);
    if (!grown)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    out->kvs = grown;
    for (size_t i = 0; i < n; i++) {
        etcdc_code rc = etcdc__kv_from_pb(c, pbs[i], &out->kvs[out->count], err);
        if (rc != ETCDC_OK)
            return rc;
        out->count++;
    }
    return ETCDC_OK;
}
