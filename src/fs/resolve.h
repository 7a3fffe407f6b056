/*
 * resolve.h - a name in a directory mapped to the keys it stands for (names.h gives the
 * mapping; hashed names are found in the directory's listing), and the entry the kernel gets
 * for a node. Every operation that takes a name starts here.
 */
#ifndef ETCDFS_RESOLVE_H
#define ETCDFS_RESOLVE_H

#include "fs.h"
#include "inode.h"
#include "names.h"

/* A name inside a directory, mapped to keys. */
typedef struct resolved {
    names_kind kind;
    bool at_root;
    char *dir_key; /* the parent's prefix */
    size_t dir_len;
    char *comp; /* the key component (may exceed 255 bytes for hashed names) */
    size_t comp_len;
    char *file_key; /* the key a file of this name has (for %value: the parent's own key) */
    size_t file_len;
    char *sub_key; /* the prefix a directory of this name has (NULL for %value) */
    size_t sub_len;
} resolved;

/* Maps name in dir to keys. Hashed names are looked up in the directory listing. Returns 0,
 * ENOENT (no such name can exist), EINVAL (a name the mapping reserves), or another errno. */
int resolve_name(node *dir, const char *name, resolved *r);
void resolved_free(resolved *r);
/* Whether r still names what it named when resolved: dir kept its key. Called inside a commit
 * section (commit.h), where keys cannot move, a true answer stays true until commit_end; a
 * false one means a directory above was renamed meanwhile (resolve again). */
bool resolved_current(node *dir, const resolved *r);
/* How often an operation resolves its names again after a directory above it moved. */
#define RESOLVE_ATTEMPTS 8

bool node_is_root(const node *n);
/* Fills e for node n and takes a kernel reference (call right before fuse_reply_entry). */
void entry_for(node *n, struct fuse_entry_param *e);

#endif
