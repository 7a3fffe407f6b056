/*
 * past.h - the mounted tree as it was at a past revision: <mnt>/.etcdfs/at/<REV>/
 * (docs/semantics.md, "Past revisions").
 *
 * Read-only: every change below .etcdfs/at answers EROFS. What etcd holds at a past revision
 * never changes (until a compaction removes it), so past nodes are never revalidated: a past
 * directory's listing, read once, answers every later lookup in it (hits and misses), and a past
 * file's value, read with its lookup or listing, serves every open. Past nodes have node types
 * of their own (NODE_PAST_*) and keys "<rev>:<etcd key>", so the watch, which finds nodes by
 * etcd key and live type, never touches them.
 */
#ifndef ETCDFS_PAST_H
#define ETCDFS_PAST_H

#include "inode.h"
#include "listing.h"

#define PAST_AT_NAME "at" /* .etcdfs/at */
/* Kernel entry and attribute timeout of past nodes, seconds: nothing there changes. */
#define PAST_TIMEOUT 3600.0

/* Whether n belongs to the past view (.etcdfs/at or anything below it). */
bool past_node(const node *n);

/* The .etcdfs/at directory node, referenced; NULL when out of memory. */
node *past_at_dir(void);

/* Looks name up in dir (.etcdfs/at, or a past directory). Returns 0 and a referenced node, or
 * ENOENT (also for a compacted or future revision, with one log line saying which) or another
 * errno. Cost: a revision's root, once per revision: one Range; a name in a directory already
 * listed: none; otherwise one read-only Txn at the revision (which brings a file's value). */
int past_lookup(node *dir, const char *name, node **out);

/* What readdir shows of dir: for .etcdfs/at, one entry, the current revision (one Range); for a
 * past directory, its listing at the revision (listing pages, once: kept with the node). *out
 * holds a reference. */
int past_listing(node *dir, listing **out);

/* The node that entry e of past directory dir_key (a past node key) names, referenced. For
 * .etcdfs/at (dir_key NULL), the root of the revision the entry names. */
node *past_entry_node(const char *dir_key, size_t dir_len, const listing_entry *e);
/* The node of the directory's own value ("%value"), referenced. */
node *past_self_node(const char *dir_key, size_t dir_len, const listing *l);

/* Makes sure a past file's value is in memory (one Range at its revision when it was evicted)
 * and counts an open. Returns 0, EIO (a value that does not decrypt) or another errno. */
int past_open(node *n);
void past_release(node *n);
/* A past file's mod_revision as of its revision (read as past_open does, if evicted). */
int past_mod_revision(node *n, int64_t *mod);
/* Attributes of a past node; a past file's size needs its value (read as past_open does). */
int past_getattr(node *n, struct stat *st);

#endif
