/*
 * witness.h - one key known to exist below a directory, per recently written directory.
 *
 * A new file is written by a Txn that requires its parent directory to still exist. Compared
 * over the directory's whole key range, that guard makes etcd read every key below it (its
 * compare has no limit): O(directory size) per create, O(N^2) for `cp -r` into one directory.
 * A single key that this mount saw created below the directory (its marker from mkdir, or the
 * last file written there) proves the same thing in O(1). A witness may be stale (deleted
 * meanwhile): a failed guard is then retried once over the whole range.
 */
#ifndef ETCDFS_WITNESS_H
#define ETCDFS_WITNESS_H

#include <stddef.h>

/* key exists now in etcd (this mount just wrote it). */
void witness_note(const char *key, size_t len);
/* key is gone (this mount deleted or moved it). */
void witness_forget(const char *key, size_t len);
/* The witness of key's directory proved useless (deleted meanwhile): forget it. */
void witness_forget_dir(const char *key, size_t len);
/* A malloc'ed key below the directory prefix dir (ending in '/') believed to exist, or NULL. */
char *witness_get(const char *dir, size_t dir_len, size_t *out_len);

#endif
