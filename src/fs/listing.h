/*
 * listing.h - reading one directory from etcd.
 *
 * Cost: about (direct children / page size) range requests plus one per child directory,
 * however many keys lie below those child directories: each page is read with a limit, and
 * when the page ends inside a child directory's subtree the next page starts at that
 * subtree's prefix end. Values of files come with the listing, so sizes are exact and a later
 * open/read needs no value transfer (close-to-open: the open's compare confirms the revision
 * and the value is copied from the listing, file_sync.h).
 */
#ifndef ETCDFS_LISTING_H
#define ETCDFS_LISTING_H

#include "inode.h"

/* Another reference to l (NULL: none); listing_unref drops one, and the last frees the
 * listing and subtracts its bytes from the cache's metadata (cache.h). */
listing *listing_ref(listing *l);
void listing_unref(listing *l);

/* Gives node n, obtained for entry e of listing l, what the listing knows of it (under n->mu):
 * a file's size and revisions, and its value too where opens do not ask etcd (watch mode) or
 * where it is a symbolic link's target (node_apply_listed_kv_locked); the create_revision a
 * record must name (directories: their marker's) and the record. */
void listing_give_entry_locked(node *n, const listing *l, const listing_entry *e);

/* Reads the directory (whose prefix is dir_key, ending in '/' unless it is the root of an
 * empty mount prefix). Returns 0 and a new listing (one reference), or an errno. */
int listing_fetch(const char *dir_key, size_t dir_len, bool is_root, listing **out);

/* The same, as of store revision at_rev (0: the current one). A compacted or future at_rev
 * fails with ENOENT and logs nothing (the caller says which). */
int listing_fetch_at(const char *dir_key, size_t dir_len, bool is_root, int64_t at_rev,
                     listing **out);

/* Fresh listing of dir: the cached one if recent enough, else a new one that also replaces
 * the cache. Returns 0 or an errno; *out holds a reference. */
int listing_get(node *dir, bool is_root, listing **out);

/* A listing read from etcd now (close-to-open for names: every opendir), that also replaces
 * the cache. Returns 0 or an errno; *out holds a reference. */
int listing_refresh(node *dir, bool is_root, listing **out);

/* Receives one directory of a subtree (dir_key, ending in '/') and its listing (the caller's
 * reference, with revision and fetched_ns set). */
typedef void (*subtree_emit)(listing *l, const char *dir_key, size_t dir_len, void *arg);

/* Reads every key below dir_key at one revision (*revision), in pages of up to 8192 keys, and
 * emits the listing of every directory strictly below it, each as soon as the keys passed it.
 * Stops with EFBIG beyond max_keys keys or max_bytes of keys and values (the subtree's size is
 * known from the first page), or with another errno; directories emitted before stay valid. */
int listing_fetch_subtree(const char *dir_key, size_t dir_len, bool is_root, size_t max_keys,
                          size_t max_bytes, subtree_emit emit, void *arg, int64_t *revision);

#endif
