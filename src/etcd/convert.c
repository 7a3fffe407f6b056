/* convert.c - copying protobuf key/values into the library's owned result types. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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

void etcdc_kvs_free(etcdc_kvs *kvs)
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
    (void)c; /* the client will open encrypted values here */
    memset(out, 0, sizeof *out);
    out->key = etcdc__dup_bytes(pb->key.data, pb->key.len);
    out->key_len = pb->key.len;
    out->value = etcdc__dup_bytes(pb->value.data, pb->value.len);
    out->value_len = pb->value.len;
    out->create_revision = pb->create_revision;
    out->mod_revision = pb->mod_revision;
    out->version = pb->version;
    out->lease = pb->lease;
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
