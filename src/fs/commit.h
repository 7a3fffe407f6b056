/*
 * commit.h - this mount's own changes to etcd, ordered against key moves and against the watch.
 *
 * Every operation that writes keys under the prefix (write-back, create, mkdir, unlink, rmdir,
 * rename, xattr writes) runs between commit_begin and commit_end. That buys three promises the
 * node table relies on (docs/design-node-table.md):
 *
 * 1. Keys do not move under a write. A write reads the keys of its nodes, sends its Txn and
 *    applies the result while no subtree rename (commit_begin_move) runs; a subtree rename waits
 *    for the writes in flight and holds new ones until its nodes carry their new keys.
 * 2. The watch never overtakes a result. Before the notify thread applies an event it waits
 *    (commit_quiesce) for every change begun before the event arrived, so the operation that
 *    committed revision R has applied R to the node table before the watch's events of R are
 *    looked at; a node then already reflects R and the event changes nothing.
 * 3. Own changes are known by revision (commit_is_own), so the watch does not replay them as
 *    inotify events or invalidate kernel entries that the operation itself set right.
 *
 * Lock order: a node's mu, then the commit section; a move takes no node mu while it holds the
 * names exclusively (commit_release_names first).
 */
#ifndef ETCDFS_COMMIT_H
#define ETCDFS_COMMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct commit {
    unsigned slot;   /* the generation it was counted in */
    bool names_held; /* the names lock is held (shared, or exclusive for a move) */
} commit;

/* A change of named keys: the names stay put until commit_end. */
void commit_begin(commit *c);
/* A change that moves subtrees: waits for the changes in flight and keeps new ones out until
 * commit_release_names or commit_end. */
void commit_begin_move(commit *c);
/* The moved nodes carry their new keys: other changes may run again (the watch still waits
 * for commit_end). */
void commit_release_names(commit *c);
/* The change is over and its result is in the node table; revision is what etcd answered
 * (0 when nothing was written or the outcome is unknown). */
void commit_end(commit *c, int64_t revision);

/* Notify thread: waits until every change begun before this call has ended. */
void commit_quiesce(void);
/* Notify thread: whether this mount committed revision rev; revisions below rev are forgotten
 * (events come in revision order, several per revision). */
bool commit_is_own(int64_t rev);

#endif
