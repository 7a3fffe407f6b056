/*
 * fs.h - the state of one mount shared by every part of src/fs, and small helpers.
 *
 * The filesystem is the FUSE low-level API over libetcdc: ops_*.c implement the
 * fuse_lowlevel_ops, inode.c keeps the node table and the cache, listing.c reads directories,
 * names.c maps keys to names; docs/source-tour.md draws the whole. Round trips are visible:
 * every etcdc_* call is one etcd request.
 */
#ifndef ETCDFS_FS_H
#define ETCDFS_FS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "etcdc.h"
#include "opts.h"

typedef struct etcdfs {
    const etcdfs_opts *opts;
    etcdc_client *client; /* set before the session starts, freed after it ends */
    struct fuse_session *se;
    char *prefix; /* normalised mount prefix ("" or ending in '/') */
    size_t prefix_len;
    uid_t uid;
    gid_t gid;
    mode_t file_mode, dir_mode; /* permission bits only */
    double timeout;             /* kernel entry/attr timeout, seconds */
    int64_t timeout_ns;         /* how long the daemon trusts a cached answer */
    int64_t page_size;          /* keys per listing request */
    struct timespec mount_time;
} etcdfs;

/* Filled in by main.c before the session starts and read-only from then on (so read without a
 * lock by every thread); the client's own state is guarded inside the library. */
extern etcdfs g_fs;

/* --consistency (docs/consistency.md). watch: while the watch on the prefix runs, the
 * watch-coherent cache answers open, stat, lookup and readdir without asking etcd. strict:
 * every access asks etcd (a linearizable read), and the kernel caches nothing. */
bool consistency_watch_trusted(void);
bool consistency_strict(void);

/* Monotonic clock in nanoseconds. */
int64_t now_ns(void);
/* errno for a library error code (ENOENT, EACCES, EFBIG, ENOSPC, ETIMEDOUT, EIO, ...). */
int errno_from_etcdc(etcdc_code code);
/* Logs a failed etcd request (key printable, never a value) in debug mode or when unexpected,
 * and returns the errno. */
int fs_fail(const char *op, const void *key, size_t key_len, etcdc_code code,
            const etcdc_error *err);

/* Builds a+b (+c) into a malloc'ed buffer (NUL-terminated); NULL when out of memory. */
char *key_join(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
               size_t *out_len);
/* Range end selecting every key that starts with p; "\0" when there is no end. The result is
 * malloc'ed (at least 1 byte). */
char *key_prefix_end(const void *p, size_t len, size_t *out_len);

#endif
