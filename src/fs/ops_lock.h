/*
 * ops_lock.h - flock(2) and whole-file fcntl(2) locks on the mount as etcd locks.
 *
 * The lock of a file is the etcd lock named <lock prefix><the file's key> (etcdctl's layout:
 * a holder owns "<name>/<lease id hex>"), taken through one session (lease) per mount whose TTL
 * is --lock-ttl. Released on LOCK_UN/F_UNLCK, when the descriptor's last close (flock) or any
 * close by the owning process (fcntl) reaches the daemon, and with the lease when the daemon
 * or its host dies. docs/locks.md has the semantics.
 */
#ifndef ETCDFS_OPS_LOCK_H
#define ETCDFS_OPS_LOCK_H

#include "fs.h"

/* Keeps lock keys out of every listing of a mount whose prefix starts with '/'. */
#define LOCKS_DEFAULT_PREFIX "etcdfs-locks"

/* Before the session starts (records the host name for holder information). */
void locks_init(void);
/* After the session ends: cancels waits and releases every lock (revokes the lease). */
void locks_shutdown(void);
/* --lock-prefix or the default. */
const char *locks_prefix(void);

void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock);
void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
              int sleep_flag);

/* Release paths driven by close: the flock of an open file description (release with
 * flock_release; `fh` is its fi->fh), the fcntl locks of a process (every flush; `owner` is
 * fi->lock_owner). */
void locks_release_flock(fuse_ino_t ino, uint64_t fh);
void locks_release_posix(fuse_ino_t ino, uint64_t owner);
/* The release of an open file description (`fh`, every release): ends the fcntl locks taken
 * through it that are still held. Those are OFD locks (F_OFD_SETLK), named by the description,
 * for which the kernel sends no unlock: a process's own fcntl locks taken through it ended at
 * that process's close (flush), which comes before the release. */
void locks_release_ofd(fuse_ino_t ino, uint64_t fh);

/* For fencing writes: one lock key this mount holds and its create revision (malloc'ed key).
 * Returns 0, ENOENT when no lock is held, EIO when a held lock was lost (its lease expired:
 * writes must fail), or ENOMEM. */
int locks_fence_key(char **key, size_t *len, int64_t *create_rev);

/* Who holds and who waits for the lock of the file with this key, one line per lock key in
 * queue order: "held|waiting exclusive|shared <lease hex> <holder information>" (empty when
 * nobody does). One Range. Returns 0 or an errno. */
int locks_describe(const char *key, size_t key_len, char *out, size_t out_size, size_t *out_len);

#endif
