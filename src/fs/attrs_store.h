/*
 * attrs_store.h - writing attribute records (docs/design-attributes.md): the record a change of
 * mode, owner or times stores, the one a content write-back carries along, and the Txn steps
 * that put or drop a record next to its entry inside an operation's own Txn.
 */
#ifndef ETCDFS_ATTRS_STORE_H
#define ETCDFS_ATTRS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "attrs.h"
#include "etcdc.h"
#include "inode.h"

/* Whether this mount writes records at all (--attrs=etcd, not read-only). */
bool attrs_writable(void);

/* The attributes n shows now, as a record to change (anchor and content still to set). Under
 * n->mu. */
void attrs_current_locked(node *n, attrs *a);

/* Whether a record says no more than the mount's defaults (type, mode, owner): such a record
 * is dropped rather than written where its times do not matter (a write-back sets a new
 * mtime anyway; a chmod back to the defaults), so that tools that create a file with a private
 * mode and chmod it back (sed -i, editors) leave no record behind. */
bool attrs_is_default(const attrs *a);

/* Stores `want` (its mode, owner and times) as n's record: chmod, chown, utimens. An entry in
 * etcd gets one Txn guarded by its incarnation (create_revision); a file whose content is not
 * written yet keeps the record and writes it with the content. Under n->mu. Returns 0, ENOENT
 * (the entry is gone), ESTALE (it kept changing) or another errno. */
int attrs_store_locked(node *n, const attrs *want);
/* The same, dropping the record when `want` is attrs_is_default (no explicit times given). */
int attrs_store_or_drop_locked(node *n, const attrs *want);

/* Adds to branch b of t a Put of record a for the entry whose anchor is key (a file key, or a
 * directory prefix ending in '/'). Errors become the Txn's (sticky). */
void txn_put_record(etcdc_txn *t, etcdc_branch b, const char *key, size_t len, const attrs *a);
/* Adds to branch b of t a Delete of the record of kind of the entry whose anchor is key. */
void txn_delete_record(etcdc_txn *t, etcdc_branch b, const char *key, size_t len, attrs_kind kind);

/* The record to put in a Txn that changes the key's value, place or lease without a write-back
 * (a rename, user.etcd.cas, ttl, lease), so that it keeps describing the content: n's record
 * (also one set here and not written yet), naming `anchor` (the key's create_revision after the
 * Txn; 0: the Txn creates the key), content 0 (the Txn's revision), ctime now, a new mtime
 * when the content changes. False when n has none that applies. Under n->mu. */
bool attrs_following_key_locked(node *n, int64_t anchor, bool content_changes, attrs *a);

/* A record (kv) that a move carries, with every key, to a new place where its anchor is put in
 * the same Txn (a directory rename): the text to put there (anchor 0: as old as the Txn; the
 * mtime kept only if it applied), into buf (ATTRS_TEXT_MAX bytes) and *len. anchor: the
 * record's anchor as the move read it (NULL: absent); anchor_create_after: the create_revision
 * the anchor will have there (0: created by the move). False when the record does not apply
 * (an orphan: not carried). */
bool attrs_carry(const etcdc_kv *kv, const etcdc_kv *anchor, int64_t anchor_create_after, char *buf,
                 size_t *len);
/* The key/value with this key among sorted keys, or NULL. */
const etcdc_kv *attrs_find_kv(const etcdc_kvs *keys, const char *key, size_t len);

/* What a write-back of n's content does to its record: leaves it, puts *a (the new mtime
 * with the content), or drops it (a record set here that says only the defaults). creating:
 * the same Txn creates the key. Under n->mu. */
typedef enum attrs_writeback { ATTRS_WB_LEAVE, ATTRS_WB_PUT, ATTRS_WB_DROP } attrs_writeback;
attrs_writeback attrs_for_writeback_locked(node *n, bool creating, attrs *a);
/* The Txn that stored n's content did `wb` with record a (from attrs_for_writeback_locked) and
 * committed at rev. Under n->mu. */
void attrs_written_locked(node *n, attrs_writeback wb, const attrs *a, int64_t rev);

/* The record of a new entry of mode (file type included) created now in directory parent by
 * the caller of req: its owner, the group of a setgid directory (and, for a directory, its
 * setgid bit). False when the mount's defaults say the same: then none is written (such keys
 * cost nothing, as keys written by other clients). */
bool attrs_for_new_entry(node *parent, mode_t mode, fuse_req_t req, attrs *a);

#endif
