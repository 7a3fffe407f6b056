/*
 * kv.c - Range, Put and DeleteRange, and the convenience operations built on them: single
 * keys, prefixes, ranges with transparent pagination, existence and counts.
 */
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

#define PB_BYTES(p, n) ((ProtobufCBinaryData){(n), (uint8_t *)(p)})

size_t etcdc_prefix_end(const void *prefix, size_t prefix_len, char *out)
{
    const unsigned char *p = prefix;
    size_t n = prefix_len;
    while (n > 0 && p[n - 1] == 0xff)
        n--;
    if (n == 0) {
        out[0] = 0;
        return 0;
    }
    memcpy(out, p, n);
    out[n - 1] = (char)(p[n - 1] + 1);
    return n;
}

/* Fills a RangeRequest from the public request; the pointers stay owned by the caller. */
void etcdc__range_to_pb(const etcdc_range_req *r, Etcdserverpb__RangeRequest *pb)
{
    etcdserverpb__range_request__init(pb);
    pb->key = PB_BYTES(r->key, r->key_len);
    pb->range_end = PB_BYTES(r->range_end, r->range_end_len);
    pb->limit = r->limit;
    pb->revision = r->revision;
    pb->sort_order = (Etcdserverpb__RangeRequest__SortOrder)r->sort_order;
    pb->sort_target = (Etcdserverpb__RangeRequest__SortTarget)r->sort_target;
    pb->serializable = r->serializable;
    pb->keys_only = r->keys_only;
    pb->count_only = r->count_only;
    pb->min_mod_revision = r->min_mod_revision;
    pb->max_mod_revision = r->max_mod_revision;
    pb->min_create_revision = r->min_create_revision;
    pb->max_create_revision = r->max_create_revision;
}

etcdc_code etcdc__kvs_from_range(etcdc_client *c, const Etcdserverpb__RangeResponse *resp,
                                 etcdc_kvs *out, etcdc_error *err)
{
    out->revision = resp->header ? resp->header->revision : 0;
    out->total = resp->count;
    out->more = resp->more;
    return etcdc__kvs_append(c, out, resp->kvs, resp->n_kvs, err);
}

etcdc_code etcdc__range_raw(etcdc_client *c, const etcdc_range_req *req,
                            Etcdserverpb__RangeResponse **resp, etcdc_error *err)
{
    Etcdserverpb__RangeRequest pb;
    etcdc__range_to_pb(req, &pb);
    return etcdc__unary(c, "/etcdserverpb.KV/Range", ETCDC_STAT_RANGE, ETCDC_RETRY_IDEMPOTENT,
                        &pb.base, &etcdserverpb__range_response__descriptor,
                        (ProtobufCMessage **)resp, err);
}

etcdc_code etcdc_range(etcdc_client *c, const etcdc_range_req *req, etcdc_kvs *out,
                       etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    Etcdserverpb__RangeResponse *resp = NULL;
    etcdc_code rc = etcdc__range_raw(c, req, &resp, err);
    if (rc == ETCDC_OK) {
        rc = etcdc__kvs_from_range(c, resp, out, err);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    if (rc != ETCDC_OK)
        etcdc_kvs_clear(out);
    return etcdc__ok_with_note(err, rc);
}

static etcdc_code get_one(etcdc_client *c, const void *key, size_t key_len, int64_t rev,
                          etcdc_kv *out, etcdc_error *err)
{
    memset(out, 0, sizeof *out);
    etcdc_range_req req = {.key = key, .key_len = key_len, .revision = rev};
    etcdc_kvs kvs;
    etcdc_code rc = etcdc_range(c, &req, &kvs, err);
    if (rc != ETCDC_OK)
        return rc;
    if (kvs.count == 0) {
        etcdc_kvs_clear(&kvs);
        if (rev)
            return etcdc__set_error(err, ETCDC_ERR_NOT_FOUND, 0,
                                    "get '%.*s' at revision %lld: key not found",
                                    ETCDC_KEYF(key, key_len), (long long)rev);
        return etcdc__set_error(err, ETCDC_ERR_NOT_FOUND, 0, "get '%.*s': key not found",
                                ETCDC_KEYF(key, key_len));
    }
    if (kvs.kvs[0].value_error) { /* the range's note names the key and why */
        etcdc_kvs_clear(&kvs);
        if (err)
            err->code = ETCDC_ERR_CRYPTO;
        return ETCDC_ERR_CRYPTO;
    }
    *out = kvs.kvs[0];
    memset(&kvs.kvs[0], 0, sizeof kvs.kvs[0]);
    etcdc_kvs_clear(&kvs);
    return ETCDC_OK;
}

etcdc_code etcdc_get(etcdc_client *c, const void *key, size_t key_len, etcdc_kv *out,
                     etcdc_error *err)
{
    etcdc__clear_error(err);
    return get_one(c, key, key_len, 0, out, err);
}

etcdc_code etcdc_get_at_revision(etcdc_client *c, const void *key, size_t key_len, int64_t rev,
                                 etcdc_kv *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (rev <= 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "revision must be > 0");
    return get_one(c, key, key_len, rev, out, err);
}

etcdc_code etcdc_put_with_lease(etcdc_client *c, const void *key, size_t key_len, const void *value,
                                size_t value_len, int64_t lease, int64_t *out_revision,
                                etcdc_error *err)
{
    etcdc__clear_error(err);
    if (key_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty key");
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    if (etcdc__crypt_on(&c->cfg)) {
        etcdc_code rc =
            etcdc__seal(&c->cfg, key, key_len, value, value_len, &sealed, &sealed_len, err);
        if (rc != ETCDC_OK)
            return rc;
    }
    Etcdserverpb__PutRequest pb = ETCDSERVERPB__PUT_REQUEST__INIT;
    pb.key = PB_BYTES(key, key_len);
    pb.value = sealed ? PB_BYTES(sealed, sealed_len) : PB_BYTES(value, value_len);
    pb.lease = lease;
    Etcdserverpb__PutResponse *resp = NULL;
    etcdc_code rc =
        etcdc__unary(c, "/etcdserverpb.KV/Put", ETCDC_STAT_PUT, ETCDC_RETRY_WRITE, &pb.base,
                     &etcdserverpb__put_response__descriptor, (ProtobufCMessage **)&resp, err);
    free(sealed);
    if (rc == ETCDC_OK) {
        if (out_revision)
            *out_revision = resp->header ? resp->header->revision : 0;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    return rc;
}

etcdc_code etcdc_attach_lease(etcdc_client *c, const void *key, size_t key_len, int64_t lease,
                              int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (key_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty key");
    Etcdserverpb__PutRequest pb = ETCDSERVERPB__PUT_REQUEST__INIT;
    pb.key = PB_BYTES(key, key_len);
    pb.lease = lease;
    pb.ignore_value = true;
    Etcdserverpb__PutResponse *resp = NULL;
    etcdc_code rc =
        etcdc__unary(c, "/etcdserverpb.KV/Put", ETCDC_STAT_PUT, ETCDC_RETRY_WRITE, &pb.base,
                     &etcdserverpb__put_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc == ETCDC_ERR_INVALID_ARGUMENT && err && strstr(err->message, "key not found"))
        rc = etcdc__set_error(err, ETCDC_ERR_NOT_FOUND, err->grpc_status,
                              "attach lease to '%.*s': key not found", ETCDC_KEYF(key, key_len));
    if (rc == ETCDC_OK) {
        if (out_revision)
            *out_revision = resp->header ? resp->header->revision : 0;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    return rc;
}

etcdc_code etcdc_put(etcdc_client *c, const void *key, size_t key_len, const void *value,
                     size_t value_len, int64_t *out_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    return etcdc_put_with_lease(c, key, key_len, value, value_len, 0, out_revision, err);
}

etcdc_code etcdc_delete_range(etcdc_client *c, const void *start, size_t start_len, const void *end,
                              size_t end_len, int64_t *out_deleted, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__DeleteRangeRequest pb = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    pb.key = PB_BYTES(start, start_len);
    pb.range_end = PB_BYTES(end, end_len);
    Etcdserverpb__DeleteRangeResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.KV/DeleteRange", ETCDC_STAT_DELETE, ETCDC_RETRY_WRITE, &pb.base,
        &etcdserverpb__delete_range_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc == ETCDC_OK) {
        if (out_deleted)
            *out_deleted = resp->deleted;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    return rc;
}

etcdc_code etcdc_delete(etcdc_client *c, const void *key, size_t key_len, int64_t *out_deleted,
                        etcdc_error *err)
{
    etcdc__clear_error(err);
    if (key_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "empty key");
    return etcdc_delete_range(c, key, key_len, NULL, 0, out_deleted, err);
}

etcdc_code etcdc_delete_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                               int64_t *out_deleted, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (prefix_len == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                                "refusing to delete with an empty prefix (every key)");
    char *end = malloc(prefix_len);
    if (!end)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    size_t end_len = etcdc_prefix_end(prefix, prefix_len, end);
    etcdc_code rc = etcdc_delete_range(c, prefix, prefix_len, end_len ? end : "\0",
                                       end_len ? end_len : 1, out_deleted, err);
    free(end);
    return rc;
}

static etcdc_code count_range(etcdc_client *c, const void *key, size_t key_len, const void *end,
                              size_t end_len, int64_t *out_count, etcdc_error *err)
{
    etcdc_range_req req = {.key = key,
                           .key_len = key_len,
                           .range_end = end,
                           .range_end_len = end_len,
                           .count_only = true};
    etcdc_kvs kvs;
    etcdc_code rc = etcdc_range(c, &req, &kvs, err);
    if (rc == ETCDC_OK)
        *out_count = kvs.total;
    etcdc_kvs_clear(&kvs);
    return rc;
}

etcdc_code etcdc_exists(etcdc_client *c, const void *key, size_t key_len, bool *out_exists,
                        etcdc_error *err)
{
    etcdc__clear_error(err);
    int64_t n = 0;
    etcdc_code rc = count_range(c, key, key_len, NULL, 0, &n, err);
    *out_exists = n > 0;
    return rc;
}

etcdc_code etcdc_count_prefix(etcdc_client *c, const void *prefix, size_t prefix_len,
                              int64_t *out_count, etcdc_error *err)
{
    etcdc__clear_error(err);
    char *end = malloc(prefix_len + 1);
    if (!end)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    size_t end_len = etcdc_prefix_end(prefix, prefix_len, end);
    etcdc_code rc = count_range(c, prefix_len ? prefix : "\0", prefix_len ? prefix_len : 1,
                                end_len ? end : "\0", end_len ? end_len : 1, out_count, err);
    free(end);
    return rc;
}

/*
 * Pagination: pages of `page` keys, all at the revision of the first page, each starting just
 * after the last key of the previous one. A page too large for the receive limit is asked again
 * with half as many keys, so that no single answer can exceed it.
 */
typedef struct range_walk {
    const void *end;
    size_t end_len;
    bool keys_only;
    int64_t max_keys; /* 0 = all */
    const void *substring;
    size_t substring_len;
} range_walk;

static bool contains(const char *hay, size_t hay_len, const void *needle, size_t needle_len)
{
    if (needle_len == 0)
        return true;
    return needle_len <= hay_len && memmem(hay, hay_len, needle, needle_len) != NULL;
}

static void keep_matching(etcdc_kvs *page, const range_walk *w, size_t from)
{
    size_t kept = from;
    for (size_t i = from; i < page->count; i++) {
        if (contains(page->kvs[i].key, page->kvs[i].key_len, w->substring, w->substring_len))
            page->kvs[kept++] = page->kvs[i];
        else
            etcdc_kv_clear(&page->kvs[i]);
    }
    page->count = kept;
}

static etcdc_code walk_range(etcdc_client *c, const void *start, size_t start_len,
                             const range_walk *w, etcdc_kvs *out, etcdc_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t page = w->keys_only ? 10000 : 1000;
    char *cursor = etcdc__dup_bytes(start, start_len);
    size_t cursor_len = start_len;
    etcdc_code rc = cursor ? ETCDC_OK : etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "no memory");
    int64_t revision = 0;
    while (rc == ETCDC_OK) {
        int64_t want = page;
        if (w->max_keys > 0 && !w->substring_len && w->max_keys - (int64_t)out->count < want)
            want = w->max_keys - (int64_t)out->count;
        etcdc_range_req req = {.key = cursor,
                               .key_len = cursor_len,
                               .range_end = w->end,
                               .range_end_len = w->end_len,
                               .limit = want,
                               .revision = revision,
                               .keys_only = w->keys_only};
        etcdc_kvs part;
        rc = etcdc_range(c, &req, &part, err);
        if (rc == ETCDC_ERR_TOO_LARGE && page > 1) {
            page /= 2;
            rc = ETCDC_OK;
            continue;
        }
        if (rc != ETCDC_OK)
            break;
        if (revision == 0) {
            revision = part.revision;
            out->revision = part.revision;
            out->total = part.total;
        }
        size_t before = out->count;
        if (part.more && part.count == 0) {
            /* "more" with an empty page would never move the cursor: a broken server. */
            etcdc_kvs_clear(&part);
            rc = etcdc__set_error(err, ETCDC_ERR_INTERNAL, 0,
                                  "etcd answered a range page with more=true and no keys");
            break;
        }
        if (part.count) {
            etcdc_kv *last = &part.kvs[part.count - 1];
            char *next = etcdc__dup_bytes(last->key, last->key_len + 1); /* key + "\0" */
            if (!next) {
                etcdc_kvs_clear(&part);
                rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
                break;
            }
            free(cursor);
            cursor = next;
            cursor_len = last->key_len + 1;
        }
        /* Move the page's entries into out. */
        etcdc_kv *grown =
            part.count ? realloc(out->kvs, (out->count + part.count) * sizeof *grown) : out->kvs;
        if (part.count && !grown) {
            etcdc_kvs_clear(&part);
            rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
            break;
        }
        out->kvs = grown;
        if (part.count)
            memcpy(out->kvs + out->count, part.kvs, part.count * sizeof *part.kvs);
        out->count += part.count;
        free(part.kvs);
        keep_matching(out, w, before);
        bool limit_reached = w->max_keys > 0 && (int64_t)out->count >= w->max_keys;
        if (!part.more || limit_reached) {
            out->more = part.more || (w->max_keys > 0 && (int64_t)out->count > w->max_keys);
            if (limit_reached && (int64_t)out->count > w->max_keys) {
                for (size_t i = (size_t)w->max_keys; i < out->count; i++)
                    etcdc_kv_clear(&out->kvs[i]);
                out->count = (size_t)w->max_keys;
            }
            break;
        }
    }
    free(cursor);
    if (rc != ETCDC_OK)
        etcdc_kvs_clear(out);
    return rc;
}

etcdc_code etcdc_get_range(etcdc_client *c, const void *start, size_t start_len, const void *end,
                           size_t end_len, bool keys_only, etcdc_kvs *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    range_walk w = {.end = end, .end_len = end ? end_len : 0, .keys_only = keys_only};
    return walk_range(c, start, start_len, &w, out, err);
}

/* Runs a walk over every key starting with prefix. */
static etcdc_code walk_prefix(etcdc_client *c, const void *prefix, size_t prefix_len, range_walk *w,
                              etcdc_kvs *out, etcdc_error *err)
{
    char *end = malloc(prefix_len + 1);
    if (!end) {
        memset(out, 0, sizeof *out);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    size_t end_len = etcdc_prefix_end(prefix, prefix_len, end);
    w->end = end_len ? end : "\0";
    w->end_len = end_len ? end_len : 1;
    etcdc_code rc =
        walk_range(c, prefix_len ? prefix : "\0", prefix_len ? prefix_len : 1, w, out, err);
    free(end);
    return rc;
}

etcdc_code etcdc_get_prefix(etcdc_client *c, const void *prefix, size_t prefix_len, etcdc_kvs *out,
                            etcdc_error *err)
{
    etcdc__clear_error(err);
    range_walk w = {0};
    return walk_prefix(c, prefix, prefix_len, &w, out, err);
}

etcdc_code etcdc_list_keys(etcdc_client *c, const void *prefix, size_t prefix_len, int64_t limit,
                           etcdc_kvs *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    range_walk w = {.keys_only = true, .max_keys = limit};
    return walk_prefix(c, prefix, prefix_len, &w, out, err);
}

etcdc_code etcdc_list_keys_matching(etcdc_client *c, const void *prefix, size_t prefix_len,
                                    const void *substring, size_t substring_len, etcdc_kvs *out,
                                    etcdc_error *err)
{
    etcdc__clear_error(err);
    range_walk w = {.keys_only = true, .substring = substring, .substring_len = substring_len};
    return walk_prefix(c, prefix, prefix_len, &w, out, err);
}

etcdc_code etcdc_compact(etcdc_client *c, int64_t rev, bool physical, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__CompactionRequest pb = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    pb.revision = rev;
    pb.physical = physical;
    Etcdserverpb__CompactionResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.KV/Compact", ETCDC_STAT_COMPACT, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__compaction_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}
