/*
 * open_files.h - the open file descriptions of regular files: the revision each saw at open
 * (--conflict-check's base for changes made through it), whether it changed the content since
 * its last close, and the error a failed write-back elsewhere left for it. Every handle not yet
 * released is on one list, so that a write-back can update every handle of its node.
 */
#ifndef ETCDFS_OPEN_FILES_H
#define ETCDFS_OPEN_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include "inode.h"
#include "read_view.h"

/* Per open file description of a regular file. */
typedef struct open_file {
    unsigned flushes; /* atomic: close() calls seen so far */
    fuse_ino_t ino;
    bool truncated;      /* immutable: opened with O_TRUNC (it reads its truncation at once) */
    bool changed;        /* [node mu] it changed the content (created, truncated, wrote) since
                          * its last flush or fsync: its release stores those changes */
    int lost;            /* [node mu] an errno: its changes were dropped by a write-back that
                          * failed elsewhere (another descriptor's close or fsync); every flush
                          * and fsync of it reports that, so that no close acknowledges them */
    int64_t base_rev;    /* [handles_mu] mod_revision seen at open (or written since through
                          * this host): --conflict-check's base for changes made through it */
    read_view view;      /* [node mu] read-only opens: the version it reads (read_view.h) */
    struct node *source; /* immutable, owns a reference: the node a read-only open of a name
                          * this mount had just replaced reads (view_successor), else NULL:
                          * its view is that node's, under that node's mu */
    struct open_file *prev, *next; /* [handles_mu] every handle not released yet */
} open_file;

/* A handle for the file ino that has seen base_rev, on the list; NULL when out of memory. */
open_file *open_file_new(fuse_ino_t ino, int64_t base_rev);
/* Takes fh off the list and frees it (its view and its source's reference). NULL is fine. */
void open_file_free(open_file *fh);
/* This host wrote revision to on top of from: handles of ino that had seen from have seen to. */
void open_files_advance_bases(fuse_ino_t ino, int64_t from, int64_t to);
/* Every change through the handles of ino is stored (caller holds the node's mu). */
void open_files_clear_changes(fuse_ino_t ino);
/* A failed write-back dropped the node's changes: each handle of ino that had made some of
 * them learns rc (caller holds the node's mu). */
void open_files_lose_changes(fuse_ino_t ino, int rc);
/* A change through fh (NULL: by path): the node's base becomes the oldest revision seen by a
 * handle that changed it (caller holds n->mu; call before setting n->dirty). */
void open_file_note_change_base_locked(node *n, open_file *fh);
/* The file's content is about to change through fi (NULL: by path); call under n->mu before
 * setting n->dirty, so that --conflict-check guards the change with the revision that
 * descriptor saw at open (write and truncate). */
void file_note_change_locked(node *n, struct fuse_file_info *fi);
/* The revision a handle opened now sees (caller holds n->mu). */
int64_t open_file_base_locked(const node *n);
/* Frees the handles of files still open when the session ended (no release came). */
void file_handles_free_all(void);

#endif
