/*
 * key_guards.h - the compares and nested writes that keep the key layout a tree while other
 * hosts change it: a file is written only into a directory that still exists, and a directory
 * keeps its marker key when an operation takes its last entry away. Each is part of the one
 * transaction of the operation that needs it, decided by etcd in the same round trip.
 */
#ifndef ETCDFS_KEY_GUARDS_H
#define ETCDFS_KEY_GUARDS_H

#include <stdbool.h>
#include <stddef.h>

#include "etcdc.h"
#include "resolve.h"

/* Adds to t's Then branch a nested Txn that writes the marker of r's parent directory when the
 * operation leaves it empty: the directory survives losing r's key (and, with subtree, the
 * keys below r), decided by etcd in the same round trip, whatever other hosts did meanwhile.
 * Its compares read every key of the directory (O(directory) per operation, O(N^2) for rm -r
 * or mv of a whole directory); with a witness (keep_parent_witness) they are asked only when
 * that one key is gone. Returns whether it added that Txn (none for the mount root's entries
 * and for a directory's own marker). */
bool txn_keep_parent(etcdc_txn *t, const resolved *r, bool subtree, const char *witness,
                     size_t witness_len);
/* A key other than r's believed to lie directly in r's directory (dir, its node), so that the
 * directory outlives r's removal: the directory's witness (witness.h), else the last file of
 * its cached listing that this mount did not change since, which becomes the witness (rm -r,
 * mv and find -delete go in listing order: the last file lasts the longest). A malloc'ed key,
 * or NULL. */
char *keep_parent_witness(node *dir, const resolved *r, size_t *len);
/* After a committed Txn whose Then ended with the Txn txn_keep_parent added, with the same
 * witness (or NULL): forgets the witness when it was gone (the compares decided instead), and
 * returns whether the parent's marker was written, at the Txn's revision. */
bool keep_parent_settle(const etcdc_txn_result *res, const char *witness, size_t witness_len);
/* If(the parent directory of key still exists) (no compare at the mount root). */
void txn_if_parent_exists(etcdc_txn *t, const char *key, size_t len);
/* The same guard, on one witness key when one is known (witness.h) and witnessed is not NULL:
 * *witnessed tells whether it was used (then a failure may only mean the witness is gone). */
void txn_if_parent_exists_fast(etcdc_txn *t, const char *key, size_t len, bool *witnessed);

#endif
