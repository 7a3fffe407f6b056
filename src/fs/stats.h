/*
 * stats.h - per-operation counters shown in <mount>/.etcdfs/stats together with the client
 * library's round-trip counters. Names are a contract (docs/semantics.md, tests).
 */
#ifndef ETCDFS_STATS_H
#define ETCDFS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "etcdc.h"

/* One X per operation, several per line (clang-format would put each line deeper). */
/* clang-format off */
#define STATS_OPS(X)                                                                               \
    X(lookup) X(forget) X(getattr) X(setattr) X(readdir) X(readdirplus) X(opendir) X(open)         \
    X(create) X(mknod) X(read) X(write) X(flush) X(fsync) X(release) X(unlink) X(mkdir)            \
    X(rmdir) X(rename) X(statfs) X(access) X(flock) X(getlk) X(setlk) X(poll)
/* clang-format on */

#define STATS_OTHER(X)                                                                             \
    X(cache_lookup_hit)  /* lookup answered from a fresh directory listing, no round trip */       \
    X(cache_getattr_hit) /* getattr answered from the daemon cache */                              \
    X(cache_open_hit)    /* open revalidated without a value transfer (or no round trip) */        \
    X(listing_pages)     /* range requests made by directory listings */                           \
    X(write_back)        /* buffered file contents written to etcd */                              \
    X(lock_try)          /* non-blocking lock requests (flock -n, F_SETLK) */                      \
    X(lock_wait)         /* blocking lock requests (flock, F_SETLKW) */                            \
    X(errors)            /* operations answered with an error other than ENOENT */

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
/* Formats every counter, one "name value" line each, then the latency table, into a malloc'ed
 * string (docs/operations.md describes every line). */
char *stats_format(etcdc_client *client, size_t *out_len);
/* The same counters, gauges and latency histograms in the Prometheus text exposition format
 * (<mount>/.etcdfs/metrics; names prefixed etcdfs_, units in the names, docs/operations.md). */
char *stats_format_prometheus(etcdc_client *client, size_t *out_len);

/* Operations timed by the op-table wrapper (stats_ops.c): calls, errors, latency histogram. */
/* clang-format off */
#define STATS_TIMED_OPS(X)                                                                         \
    X(lookup) X(forget) X(forget_multi) X(getattr) X(setattr) X(readlink) X(mknod) X(mkdir)        \
    X(unlink) X(rmdir) X(symlink) X(rename) X(link) X(open) X(read) X(write) X(flush) X(release)   \
    X(fsync) X(opendir) X(readdir) X(readdirplus) X(releasedir) X(fsyncdir) X(statfs)              \
    X(setxattr) X(getxattr) X(listxattr) X(removexattr) X(access) X(create) X(getlk) X(setlk)      \
    X(flock) X(fallocate) X(copy_file_range) X(lseek)
/* clang-format on */

typedef enum stats_op {
#define X(n) SOP_##n,
    STATS_TIMED_OPS(X)
#undef X
        SOP_COUNT
} stats_op;

/* One call of op took ns nanoseconds (called by the wrapper). */
void stats_op_done(stats_op op, int64_t ns, uint64_t round_trips);
/* An error answered to the kernel: by errno, and by operation when op >= 0. */
void stats_reply_error(int op, int err);
/* A failed etcd request, by library error kind (fs_fail). */
void stats_etcd_error(etcdc_code code);

/* Watch lag (notify.c): an event of revision rev arrived from the watch (stream thread) / was
 * applied to the cache, received_ns (now_ns()) being when it arrived. */
void stats_watch_received(int64_t rev);
void stats_watch_applied(int64_t rev, int64_t received_ns);

/* Lock gauges for the lock code: +1 when a lock is granted / a request starts waiting, -1 when
 * it is released / stops waiting (granted, refused or interrupted). */
void stats_locks_held(int delta);
void stats_locks_waiting(int delta);

#endif
