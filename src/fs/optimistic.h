/*
 * optimistic.h - the optimistic-transaction loop, written once (as etcd's Go client writes its
 * STM once): the operations that read what they change, commit one Txn guarded by what they
 * read, and try again when another host changed it in between (rename of a file, of a
 * directory, an exchange of trees, rmdir).
 *
 * One attempt reads what it needs (a snapshot, or the Else reads of the previous attempt),
 * builds the guarded Txn and commits it. It returns 0 when the Txn committed, an errno for an
 * outcome that another attempt would not change (ENOENT, ENOTEMPTY, a failed request, ...), or
 * OPTIMISTIC_RETRY when a guard failed because what it read has changed since (it has then
 * refreshed what the next attempt needs). After OPTIMISTIC_ATTEMPTS attempts that all lost such
 * a race, the operation fails with ESTALE: the keys kept changing under it.
 */
#ifndef ETCDFS_OPTIMISTIC_H
#define ETCDFS_OPTIMISTIC_H

#define OPTIMISTIC_ATTEMPTS 4
#define OPTIMISTIC_RETRY (-1)

/* Runs attempt(ctx) until it returns something else than OPTIMISTIC_RETRY, at most
 * OPTIMISTIC_ATTEMPTS times; returns that, or ESTALE. */
int optimistic_run(int (*attempt)(void *ctx), void *ctx);

#endif
