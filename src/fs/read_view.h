/*
 * read_view.h - the one version a read-only descriptor reads.
 *
 * A file opened O_RDONLY (without O_TRUNC) reads the version of the file it opened, whole,
 * whatever this mount or another host writes meanwhile: its reads are answered from a copy
 * taken at open (or, in strict mode, at each read from offset 0), and the kernel is told to
 * send them all (direct I/O) instead of cutting them at an inode size that another version
 * may have set in between. docs/design-node-table.md ("What a reader sees") says why the
 * kernel's one page cache and one size per inode cannot give that, and what it costs.
 */
#ifndef ETCDFS_READ_VIEW_H
#define ETCDFS_READ_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inode.h"

typedef struct read_view {
    bool set;   /* the descriptor reads through this view */
    char *data; /* malloc'ed copy of the version (NULL when empty) */
    size_t len;
    int64_t mod_rev; /* that version's mod_revision (0: not stored in etcd yet) */
} read_view;

/* The length readers see of n's content (caller holds n->mu): after an O_TRUNC open that has
 * not written yet, the whole version it replaced (still in data), else the content. A
 * descriptor that truncated passes truncated=true and sees its truncation. */
size_t read_view_visible_len(const node *n, bool truncated);

/* Replaces v with n's current content (caller holds n->mu). ENOMEM leaves v as it was. A
 * view only holds off changes from other hosts: op_read re-takes it when this mount changed
 * the file (dirty, pending, or holding the version it stored itself). */
int read_view_take_locked(read_view *v, const node *n);

/* Bytes of the view from off, at most size: *count of them at the returned address. */
const char *read_view_slice(const read_view *v, size_t size, uint64_t off, size_t *count);

/* Frees the copy; v is unset. */
void read_view_clear(read_view *v);

#endif
