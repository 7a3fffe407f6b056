/*
 * stats.h - per-operation counters shown in <mount>/.etcdfs/stats together with the client
 * library's round-trip counters. Names are a contract (docs/semantics.md, tests).
 */
#ifndef ETCDFS_STATS_H
#define ETCDFS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "etcdc.h"

#define STATS_OPS(X)                                                                        \
    X(lookup) X(forget) X(getattr) X(setattr) X(readdir) X(readdirplus) X(opendir) X(open)    \
    X(create) X(mknod) X(read) X(write) X(flush) X(fsync) X(release) X(unlink) X(mkdir)      \
    X(rmdir) X(rename) X(statfs) X(access)

#define STATS_OTHER(X)                                                                       \
    X(cache_lookup_hit)   /* lookup answered from a fresh directory listing, no round trip */ \
    X(cache_getattr_hit)  /* getattr answered from the daemon cache */                         \
    X(cache_open_hit)     /* open revalidated without a value transfer (or no round trip) */   \
    X(listing_pages)      /* range requests made by directory listings */                      \
    X(write_back)         /* buffered file contents written to etcd */                         \
    X(errors)             /* operations answered with an error other than ENOENT */

typedef enum stats_id {
#define X(n) STAT_OP_##n,
    STATS_OPS(X)
#undef X
#define X(n) STAT_##n,
    STATS_OTHER(X)
#undef X
    STAT_COUNT
} stats_id;

void stats_inc(stats_id id);
/* Formats every counter, one "name value" line each, into a malloc'ed string. */
char *stats_format(etcdc_client *client, size_t *out_len);

#endif
