/*
 * notify.h - remote changes -> cache updates -> kernel invalidation.
 *
 * A watch on the mounted prefix delivers events on the library's stream thread. The callback only
 * copies them into a queue; a thread of our own applies them to the node table and sends the kernel
 * invalidations (fuse_lowlevel_notify_inval_*), which must never run inside a request handler for
 * the same node. If the watch cannot be started or ends, the cache timeouts (--cache-timeout) make
 * mounts converge.
 */
#ifndef ETCDFS_NOTIFY_H
#define ETCDFS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Starts the notify thread and the watch from start_revision. Returns 0 or
 * an errno (the mount still works without it; the caller logs). */
int notify_start(int64_t start_revision);
/* Stops the watch and the thread (before the session is destroyed). */
void notify_stop(void);
/* Revision fence: returns once every change up to `revision` is reflected in the daemon's and
 * the kernel's caches (the watch applied it, confirmed by a progress request), or, when the
 * watch cannot confirm it within a second, after forgetting every cached answer. */
void notify_fence(int64_t revision);
/* Whether cache coherence comes from a watch (else from timeouts only). */
bool notify_watching(void);

#endif
