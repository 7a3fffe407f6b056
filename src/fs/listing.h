/*
 * listing.h - reading one directory from etcd.
 *
 * Cost: about (direct children / page size) range requests plus one per child directory,
 * however many keys lie below those child directories: each page is read with a limit, and
 * when the page ends inside a child directory's subtree the next page starts at that
 * subtree's prefix end. Values of files come with the listing, so sizes are exact and a later
 * open/read needs no value transfer.
 */
#ifndef ETCDFS_LISTING_H
#define ETCDFS_LISTING_H

#include "inode.h"

/* Reads the directory (whose prefix is dir_key, ending in '/' unless it is the root of an
 * empty mount prefix). Returns 0 and a new listing (one reference), or an errno. */
int listing_fetch(const char *dir_key, size_t dir_len, bool is_root, listing **out);

/* Fresh listing of dir: the cached one if recent enough, else a new one that also replaces
 * the cache. Returns 0 or an errno; *out holds a reference. */
int listing_get(node *dir, bool is_root, listing **out);

/* A listing read from etcd now (close-to-open for names: every opendir), that also replaces
 * the cache. Returns 0 or an errno; *out holds a reference. */
int listing_refresh(node *dir, bool is_root, listing **out);

#endif
