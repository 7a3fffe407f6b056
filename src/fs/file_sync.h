/*
 * file_sync.h - a file node's content against etcd: confirming the cached content in one
 * request that transfers the value only when it changed, and writing local changes back in
 * one guarded Put (the parent directory must still exist; --conflict-check and --lock-fencing
 * add their compares). Every function is called with the node's mu held, except
 * file_writeback_all.
 */
#ifndef ETCDFS_FILE_SYNC_H
#define ETCDFS_FILE_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "inode.h"

/* Confirms the node's cache with etcd (If mod_revision == cached Then nothing Else Range).
 * *changed: the content changed; returns ENOENT when the key is gone. A node that keeps no
 * value (value_unread, inode.h) is read with one Range. */
int file_revalidate_locked(node *n, bool *changed);

/* What the directory listing this mount holds shows for a file it keeps no value of
 * (value_unread): a copy, taken before the node's lock (the directory's is taken for it), so
 * that what needs the bytes under that lock (open, rename, truncate) takes them from here
 * instead of transferring them a second time. */
typedef struct listed_value {
    char *key; /* the node's key when the copy was taken */
    size_t key_len;
    char *value; /* NULL: the listing showed nothing for the node */
    size_t value_len;
    int64_t mod_rev;
} listed_value;
/* Fills *v; leaves it empty unless n is value_unread and its directory's listing shows it.
 * Caller holds no lock (it takes the node's, then the directory's, one at a time). */
void file_listed_value(node *n, listed_value *v);
void listed_value_clear(listed_value *v);
/* A value_unread node takes its value from v (NULL: none) when v still names its key and
 * revision. True when it holds the value now. Nothing is asked of etcd: whoever relies on the
 * value being current compares the revision in its own request (open's revalidation, rename's
 * guard), as for any cached value. */
bool file_take_listed_locked(node *n, const listed_value *v);
/* Writes the node's buffered content to etcd when dirty. why names the caller in logs. */
int file_writeback_locked(node *n, const char *why);
/* Writes back every dirty file (at unmount). */
void file_writeback_all(void);
/* Forgets the local changes of a write-back that failed with rc (nothing was written): the
 * next open reads etcd again, and every descriptor whose changes they held reports rc at its
 * next flush or fsync. */
void file_drop_changes_locked(node *n, int rc);
/* This host replaced the file's content in etcd by other means than its write-back (a rename
 * moving it, which ends at revision new_rev): descriptors that had seen the replaced revision
 * count as having seen new_rev (--conflict-check), and the node's local changes are no longer
 * based on anything (call before setting mod_rev). */
void file_replaced_locked(node *n, int64_t new_rev);
/* The revision the node's local changes are based on (inode.h). */
int64_t file_writeback_base(const node *n);

#endif
