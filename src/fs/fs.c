/* fs.c - the mount's shared state and small helpers (see fs.h). */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "names.h"
#include "notify.h"
#include "stats.h"

etcdfs g_fs;

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool consistency_watch_trusted(void)
{
    return g_fs.opts->consistency == CONSISTENCY_WATCH && notify_watching();
}

bool consistency_strict(void)
{
    return g_fs.opts->consistency == CONSISTENCY_STRICT;
}

int errno_from_etcdc(etcdc_code code)
{
    switch (code) {
    case ETCDC_OK: return 0;
    case ETCDC_ERR_NOT_FOUND: return ENOENT;
    case ETCDC_ERR_COMPARE_FAILED: return ESTALE;
    case ETCDC_ERR_TIMEOUT: return ETIMEDOUT;
    case ETCDC_ERR_PERMISSION_DENIED:
    case ETCDC_ERR_AUTH_FAILED: return EACCES;
    case ETCDC_ERR_TOO_LARGE: return EFBIG;
    case ETCDC_ERR_NO_SPACE: return ENOSPC;
    case ETCDC_ERR_NO_MEMORY: return ENOMEM;
    case ETCDC_ERR_INVALID_ARGUMENT: return EINVAL;
    case ETCDC_ERR_TOO_MANY_OPS: return EXDEV;
    case ETCDC_ERR_CANCELED: return EINTR;
    default: return EIO;
    }
}

int fs_fail(const char *op, const void *key, size_t key_len, etcdc_code code,
            const etcdc_error *err)
{
    int e = errno_from_etcdc(code);
    char kb[LOG_KEY_BUF];
    stats_etcd_error(code);
    if (code != ETCDC_ERR_NOT_FOUND) {
        stats_inc(STAT_errors);
        log_msg(LOG_WARNING, "%s %s: %s (%s; %s)", op, log_key(key, key_len, kb, sizeof kb),
                strerror(e), strerrorname_np(e),
                err && err->message[0] ? err->message : etcdc_strerror(code));
    }
    return e;
}

char *key_join(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
               size_t *out_len)
{
    char *k = malloc(alen + blen + clen + 1);
    if (!k)
        return NULL;
    if (alen)
        memcpy(k, a, alen);
    if (blen)
        memcpy(k + alen, b, blen);
    if (clen)
        memcpy(k + alen + blen, c, clen);
    k[alen + blen + clen] = 0;
    *out_len = alen + blen + clen;
    return k;
}

char *key_prefix_end(const void *p, size_t len, size_t *out_len)
{
    char *e = malloc(len + 1);
    if (!e)
        return NULL;
    size_t n = etcdc_prefix_end(p, len, e);
    if (n == 0) {
        e[0] = 0;
        n = 1; /* "\0": every key >= start */
    }
    *out_len = n;
    return e;
}
