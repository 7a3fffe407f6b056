/*
 * notify_replay.h - inotify events for changes made elsewhere (docs/consistency.md, "inotify").
 *
 * None of the reverse notifications Linux gives a FUSE filesystem emits an inotify event (as
 * measured on 6.18, docs/consistency.md). So a thread of the daemon replays each remote change
 * through its own mount (open with O_CREAT, or open + ftruncate to the current size, then
 * close; unlink for a delete), and the kernel emits the events itself. The handlers recognise
 * the replay thread's requests and answer them from the node table: a replayed change never
 * reaches etcd (no round trip, no write).
 */
#ifndef ETCDFS_NOTIFY_REPLAY_H
#define ETCDFS_NOTIFY_REPLAY_H

#include <stdbool.h>

#include "fs.h"

/* On the notify thread, after a watch event was applied to the node table and before the
 * kernel's dentries are invalidated. known_here: the kernel already got this version from us
 * (a change made through this mount): nothing to replay. */
void replay_event(const etcdc_kv *kv, bool is_delete, bool known_here);
/* On the notify thread: every event up to rev has been passed to replay_event. A create waits
 * for this before it is replayed, since a delete of its revision makes it a rename. */
void replay_delivered(int64_t rev);
/* Stops the replay thread (before the session ends; waits a bounded time). */
void replay_stop(void);

/* Request hooks: each returns true when the request is the replay thread's own (or concerns
 * its file handle) and has been answered. */
bool replay_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
bool replay_create(fuse_req_t req, fuse_ino_t parent, const char *name, struct fuse_file_info *fi);
bool replay_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
bool replay_setattr(fuse_req_t req, fuse_ino_t ino);
bool replay_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
bool replay_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                   const char *newname);
/* flush and release of the replay thread's handle: nothing to write. */
bool replay_close(fuse_req_t req, struct fuse_file_info *fi);

#endif
