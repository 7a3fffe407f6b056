/*
 * attrs.h - attribute records: a file's or directory's mode, owner and times, stored in etcd
 * as one key next to the entry (docs/design-attributes.md). Pure functions: the key of a
 * record, whether a key component is one, the record's text, and whether it applies to the
 * incarnation of the entry that exists now.
 */
#ifndef ETCDFS_ATTRS_H
#define ETCDFS_ATTRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* What a key component is. */
typedef enum attrs_kind {
    ATTRS_NONE, /* an ordinary component */
    ATTRS_FILE, /* "<name>\0attrs": the record of the file <name> */
    ATTRS_DIR,  /* "<name>\0dirattrs": the record of the directory <name>/ */
} attrs_kind;

typedef struct attrs {
    mode_t mode; /* file type bits included (S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK) */
    uid_t uid;
    gid_t gid;
    struct timespec mtime, ctime;
    int64_t anchor;  /* create_revision of the anchor it describes; 0: the record's own
                      * mod_revision (created in the same Txn) */
    int64_t content; /* mod_revision of the anchor's value mtime describes; 0: the record's
                      * own mod_revision (written in the same Txn); -1: none (mtime unknown) */
} attrs;

/* Longest record attrs_format writes, terminator included. */
#define ATTRS_TEXT_MAX 192

/* Whether the component comp is a record key, and of which entry (*name_len: the length of
 * the entry's component, which comp starts with). */
attrs_kind attrs_key_kind(const char *comp, size_t comp_len, size_t *name_len);

/* The record key of the file key (kind ATTRS_FILE) or of the directory whose prefix is key
 * (ATTRS_DIR; key ends in '/', which the record key replaces; not the mount's root, which has
 * no record: its would lie outside the mounted prefix). Malloc'ed, NUL-terminated; NULL when
 * out of memory or when key is not such a key. */
char *attrs_key(const char *key, size_t key_len, attrs_kind kind, size_t *out_len);

/* The record as text (see docs/design-attributes.md) into buf (ATTRS_TEXT_MAX bytes);
 * returns its length. */
size_t attrs_format(const attrs *a, char *buf);

/* Parses a record. False (and *a untouched) when the text is not a record of a version this
 * code reads, or lacks a field; unknown fields are skipped. */
bool attrs_parse(const char *text, size_t len, attrs *a);

/* Which parts of record a, whose key has record_mod / record_create (0: not known), describe
 * the anchor as it is: an anchor that exists with anchor_create / anchor_mod (0 / 0 when
 * absent). anchor 0 names the record's own mod_revision, or its create_revision: a record
 * created with its anchor stays theirs when its key is put again as it is (etcdfs rekey, a
 * lease attached). */
enum { ATTRS_APPLY = 1, ATTRS_APPLY_MTIME = 2 };
unsigned attrs_applies(const attrs *a, int64_t record_mod, int64_t record_create,
                       int64_t anchor_create, int64_t anchor_mod);

#endif
