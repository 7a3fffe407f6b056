/*
 * prefetch.h - watch mode: when a program walks a tree (find, du, cp -r, ls -R), the listings of
 * a whole subtree in a few large pages instead of one request per directory.
 *
 * The second child directory of one parent listed within a few seconds starts the walk: the
 * parent's whole subtree is read at one revision R (listing_fetch_subtree, bounded in keys and
 * bytes) and every directory's listing waits here until an opendir takes it. Watch events drop
 * the waiting listings on their path; a listing is only kept when no event after R had been
 * applied by the time it was stored (else an event this store never saw could be missing from
 * it), so a taken listing is as coherent as one read by that opendir.
 */
#ifndef ETCDFS_PREFETCH_H
#define ETCDFS_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

#include "inode.h"

/* The listing of dir read with its parent's subtree, if one waits (a reference), else NULL.
 * Call only while the watch runs (watch mode). May read the parent's subtree first when this
 * looks like a tree walk. */
listing *prefetch_take(node *dir);
/* The notify thread, before it applies an event of revision rev about key. */
void prefetch_event(const char *key, size_t key_len, int64_t rev);
/* This mount changed the directory's listing (dir: its key, ending in '/'): what waits for it
 * is dropped, and a prefetch in flight is not stored. */
void prefetch_dir_changed(const char *dir, size_t len);
/* Drops everything waiting (the watch resynced, or a directory moved). */
void prefetch_clear(void);

#endif
