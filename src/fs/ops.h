/*
 * ops.h - the fuse_lowlevel_ops of etcdfs and the helpers they share.
 *
 * Every operation: map names to keys (names.c), answer from the cache when it is fresh
 * (inode.c), otherwise make the one etcd request the operation needs, then reply.
 */
#ifndef ETCDFS_OPS_H
#define ETCDFS_OPS_H

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
/* Writes a file node's buffered content to etcd when dirty (caller holds n->mu). */
int file_writeback_locked(node *n, const char *why);
/* Writes back every dirty file (at unmount). */
void file_writeback_all(void);
/* Adds to t's Then branch a nested Txn that writes the marker of r's parent directory when the
 * operation leaves it empty: the directory survives losing r's key (and, with subtree, the
 * keys below r), decided by etcd in the same round trip, whatever other hosts did meanwhile. */
void txn_keep_parent(etcdc_txn *t, const resolved *r, bool subtree);

/* ops_entry.c */
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);
void op_statfs(fuse_req_t req, fuse_ino_t ino);
void op_access(fuse_req_t req, fuse_ino_t ino, int mask);

/* ops_dir.c */
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
/* Symlinks have no representation in etcd: EPERM, as symlink(2) documents for a filesystem
 * that does not support them (without this op the kernel would answer ENOSYS). */
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);

/* ops_file.c */
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Frees the handles of files still open when the session ended (no release came). */
void file_handles_free_all(void);

/* ops_rename.c */
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);

/* ops_file.c: this host replaced the file's content in etcd by other means than its
 * write-back (a rename moving it, which ends at revision new_rev): descriptors that had seen
 * the replaced revision count as having seen new_rev (--conflict-check), and the node's local
 * changes are no longer based on anything (caller holds n->mu; call before setting mod_rev). */
void file_replaced_locked(node *n, int64_t new_rev);
/* ops_file.c: the file's content is about to change through fi (NULL: by path); call under
 * n->mu before setting n->dirty, so that --conflict-check guards the change with the revision
 * that descriptor saw at open (write and truncate). */
void file_note_change_locked(node *n, struct fuse_file_info *fi);
/* ops_file.c: If(the parent directory of key still exists) (no compare at the mount root). */
void txn_if_parent_exists(etcdc_txn *t, const char *key, size_t len);
/* The same guard, on one witness key when one is known (witness.h) and witnessed is not NULL:
 * *witnessed tells whether it was used (then a failure may only mean the witness is gone). */
void txn_if_parent_exists_fast(etcdc_txn *t, const char *key, size_t len, bool *witnessed);

/* ops_xattr.c: the user.etcd.* attributes (docs/xattrs.md). */
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ops_file.c: confirms a file node's cache with etcd in one request that transfers the value
 * only when it changed (If mod_revision == cached Then nothing Else Range). Caller holds
 * n->mu. *changed: the content changed; returns ENOENT when the key is gone. */
int file_revalidate_locked(node *n, bool *changed);
#endif
