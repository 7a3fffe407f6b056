/*
 * ops_poll.h - poll(2) on a file of the mount as a change notification.
 *
 * An open file is ready (POLLIN|POLLPRI) when its key's revision differs from the one this open
 * file description last read from offset 0 (or saw when it first polled): changed or deleted
 * by anyone, anywhere. Reading it again from offset 0 re-arms the wake-up. docs/consistency.md.
 */
#ifndef ETCDFS_OPS_POLL_H
#define ETCDFS_OPS_POLL_H

#include "fs.h"

void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
/* op_read at offset 0 of fh is returning the content of revision rev (called before the reply,
 * with the node's mu held: poll's lock nests inside it, never the other way round). */
void poll_read_from_start(uint64_t fh, fuse_ino_t ino, int64_t rev);
/* The open file description is released. */
void poll_released(uint64_t fh);
/* The watch applied a change: the key of ino is now at rev (0: deleted). Notify thread. */
void poll_key_changed(fuse_ino_t ino, int64_t rev);
/* At unmount: drops every record. */
void poll_shutdown(void);

#endif
