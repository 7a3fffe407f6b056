/* stats_ops.h - timing every FUSE operation, without touching the handlers (stats_ops.c). */
#ifndef ETCDFS_STATS_OPS_H
#define ETCDFS_STATS_OPS_H

struct fuse_lowlevel_ops;

/* A copy of ops whose handlers are timed (the copy lives as long as the process); the figures
 * go to stats.h's per-operation table. */
const struct fuse_lowlevel_ops *stats_wrap_ops(const struct fuse_lowlevel_ops *ops);

#endif
