/*
 * read_view.h - the one version a read-only descriptor reads.
 *
 * A file opened O_RDONLY (without O_TRUNC) reads one version of the file, whole, whatever
 * other hosts write meanwhile: its reads are answered from a copy taken at open and again at
 * every read from offset 0 (what a poll(2) reader does after a wake-up), and the kernel is
 * told to send them all (direct I/O) instead of cutting them at an inode size that another
 * version may have set in between. Changes made through this mount are seen at once, as on a
 * local filesystem (op_read takes the copy again). docs/design-node-table.md ("What a reader
 * may see") says why the kernel's one page cache and one size per inode cannot give that, and
 * what it costs.
 */
#ifndef ETCDFS_READ_VIEW_H
#define ETCDFS_READ_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inode.h"

typedef struct read_view {
    bool set;   /* the descriptor reads through this view */
    char *data; /* the version's bytes: a malloc'ed copy, or n->data when borrowed */
    size_t len;
    int64_t mod_rev; /* that version's mod_revision (0: not stored in etcd yet) */
} read_view;

/* n's content as it is, not copied: valid while the caller holds n->mu (what writable
 * descriptors read). After an O_TRUNC open that has not written yet, a descriptor that did not
 * truncate (truncated=false) sees the whole version being replaced, still in data: the kernel
 * may have sent its read with the old size, and fills what a short read leaves with NULs. */
read_view read_view_borrow(const node *n, bool truncated);

/* Replaces v with a copy of n's current content (caller holds n->mu). ENOMEM leaves v as it
 * was. */
int read_view_take_locked(read_view *v, const node *n);

/* Bytes of the view from off, at most size: *count of them at the returned address. */
const char *read_view_slice(const read_view *v, size_t size, uint64_t off, size_t *count);

/* Frees a taken copy; v is unset. */
void read_view_clear(read_view *v);

#endif
