/*
 * stats_ops.c - latency and errors of every FUSE operation, without touching the handlers.
 *
 * stats_wrap_ops() returns a copy of the op table whose entries time the real handler
 * (etcdfs's handlers reply before they return, so the time to return is the time to answer),
 * count the etcd round trips the handler made on its thread, and note on the thread which
 * operation is running. fuse_reply_err is wrapped at link time
 * (-Wl,--wrap=fuse_reply_err, src/fs/CMakeLists.txt) so that every error answered to the kernel
 * is counted by errno and by operation, whichever code path answered it.
 */
#include <errno.h>

#include "fs.h"
#include "stats.h"
#include "stats_ops.h"

/* The operation running on this thread (-1: none, e.g. the notify thread). */
static __thread int current_op = -1;

static struct fuse_lowlevel_ops real;
static struct fuse_lowlevel_ops wrapped;

int __real_fuse_reply_err(fuse_req_t req, int err);
int __wrap_fuse_reply_err(fuse_req_t req, int err);

int __wrap_fuse_reply_err(fuse_req_t req, int err)
{
    if (err)
        stats_reply_error(current_op, err);
    return __real_fuse_reply_err(req, err);
}

#define TIMED(name, params, args)                                                                  \
    static void timed_##name params                                                                \
    {                                                                                              \
        int64_t t0 = now_ns();                                                                     \
        uint64_t rt0 = etcdc_thread_round_trips();                                                 \
        current_op = SOP_##name;                                                                   \
        real.name args;                                                                            \
        current_op = -1;                                                                           \
        stats_op_done(SOP_##name, now_ns() - t0, etcdc_thread_round_trips() - rt0);                \
    }

TIMED(lookup, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
TIMED(forget, (fuse_req_t r, fuse_ino_t i, uint64_t n), (r, i, n))
TIMED(forget_multi, (fuse_req_t r, size_t c, struct fuse_forget_data *f), (r, c, f))
TIMED(getattr, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi), (r, i, fi))
TIMED(setattr, (fuse_req_t r, fuse_ino_t i, struct stat *a, int s, struct fuse_file_info *fi),
      (r, i, a, s, fi))
TIMED(readlink, (fuse_req_t r, fuse_ino_t i), (r, i))
TIMED(mknod, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, dev_t d), (r, p, n, m, d))
TIMED(mkdir, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m), (r, p, n, m))
TIMED(unlink, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
TIMED(rmdir, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
TIMED(symlink, (fuse_req_t r, const char *l, fuse_ino_t p, const char *n), (r, l, p, n))
TIMED(rename,
      (fuse_req_t r, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned f),
      (r, p, n, np, nn, f))
TIMED(link, (fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char *nn), (r, i, np, nn))
TIMED(open, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi), (r, i, fi))
TIMED(read, (fuse_req_t r, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *fi),
      (r, i, s, o, fi))
TIMED(write,
      (fuse_req_t r, fuse_ino_t i, const char *b, size_t s, off_t o, struct fuse_file_info *fi),
      (r, i, b, s, o, fi))
TIMED(flush, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi), (r, i, fi))
TIMED(release, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi), (r, i, fi))
TIMED(fsync, (fuse_req_t r, fuse_ino_t i, int d, struct fuse_file_info *fi), (r, i, d, fi))
TIMED(opendir, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi), (r, i, fi))
TIMED(readdir, (fuse_req_t r, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *fi),
      (r, i, s, o, fi))
TIMED(readdirplus, (fuse_req_t r, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *fi),
      (r, i, s, o, fi))
TIMED(releasedir, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi), (r, i, fi))
TIMED(fsyncdir, (fuse_req_t r, fuse_ino_t i, int d, struct fuse_file_info *fi), (r, i, d, fi))
TIMED(statfs, (fuse_req_t r, fuse_ino_t i), (r, i))
TIMED(setxattr, (fuse_req_t r, fuse_ino_t i, const char *n, const char *v, size_t s, int f),
      (r, i, n, v, s, f))
TIMED(getxattr, (fuse_req_t r, fuse_ino_t i, const char *n, size_t s), (r, i, n, s))
TIMED(listxattr, (fuse_req_t r, fuse_ino_t i, size_t s), (r, i, s))
TIMED(removexattr, (fuse_req_t r, fuse_ino_t i, const char *n), (r, i, n))
TIMED(access, (fuse_req_t r, fuse_ino_t i, int m), (r, i, m))
TIMED(create, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *fi),
      (r, p, n, m, fi))
TIMED(getlk, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi, struct flock *l),
      (r, i, fi, l))
TIMED(setlk, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi, struct flock *l, int s),
      (r, i, fi, l, s))
TIMED(flock, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi, int op), (r, i, fi, op))
TIMED(fallocate, (fuse_req_t r, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info *fi),
      (r, i, m, o, l, fi))
TIMED(copy_file_range,
      (fuse_req_t r, fuse_ino_t i, off_t o, struct fuse_file_info *fi, fuse_ino_t io, off_t oo,
       struct fuse_file_info *fo, size_t l, int f),
      (r, i, o, fi, io, oo, fo, l, f))
TIMED(lseek, (fuse_req_t r, fuse_ino_t i, off_t o, int w, struct fuse_file_info *fi),
      (r, i, o, w, fi))

const struct fuse_lowlevel_ops *stats_wrap_ops(const struct fuse_lowlevel_ops *ops)
{
    real = *ops;
    wrapped = *ops; /* entries without a timed version (init, destroy, ...) stay as they are */
#define USE(name)                                                                                  \
    if (ops->name)                                                                                 \
        wrapped.name = timed_##name;
    STATS_TIMED_OPS(USE)
#undef USE
    return &wrapped;
}
