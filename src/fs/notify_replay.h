/*
 * notify_replay.h - inotify events for changes made elsewhere (docs/consistency.md, "inotify").
 *
 * None of the reverse notifications Linux gives a FUSE filesystem emits an inotify event (as
 * measured on 6.18, docs/consistency.md). So a thread of the daemon replays each remote change
 * through its own mount (open with O_CREAT, or open + ftruncate to the current size, then
 * close; unlink for a delete), and the kernel emits the events itself. A wrapper around the
 * operation table (replay_wrap_ops) recognises the replay thread's requests and answers them
 * from the node table: a replay never writes to etcd, and reads it only where the node table
 * cannot answer (a directory on the way that it does not hold, a file renamed elsewhere). Only
 * changes in directories the kernel holds are replayed: no inotify watch can be anywhere else.
 */
#ifndef ETCDFS_NOTIFY_REPLAY_H
#define ETCDFS_NOTIFY_REPLAY_H

#include <stdbool.h>

#include "fs.h"

/* On the notify thread, after a watch event was applied to the node table and before the
 * kernel's dentries are invalidated. known_here: the kernel already got this version from us
 * (a change made through this mount): nothing to replay. */
void replay_event(const etcdc_kv *kv, bool is_delete, bool known_here);
/* On the notify thread: the attribute record of the entry whose key is key (a file's key, or a
 * directory's without its '/') changed elsewhere: IN_ATTRIB. file_record_deleted: a file's
 * record went, most often with the file: no event when the node table has the file absent (or
 * no longer has it) by the time of the replay. */
void replay_attrib(const char *key, size_t key_len, bool file_record_deleted);
/* On the notify thread: every event up to rev has been passed to replay_event. A create waits
 * for this before it is replayed, since a delete of its revision makes it a rename. */
void replay_delivered(int64_t rev);
/* Stops the replay thread (before the session ends; waits a bounded time). */
void replay_stop(void);

/* The operation table ops with the replay thread's own requests (lookup, create, open,
 * getattr of a known file, setattr, unlink, rename, flush, release) answered from the node table,
 * never from etcd; every other request goes to ops. Every entry named must be set in ops; the
 * result lives as long as the process. */
const struct fuse_lowlevel_ops *replay_wrap_ops(const struct fuse_lowlevel_ops *ops);

#endif
