/*
 * names.h - the mapping between etcd keys and file names (docs/key-mapping.md).
 *
 * Pure functions: no I/O, no global state, no allocation except where a function says so.
 * Terms: a *component* is the raw bytes of one '/'-separated piece of a key (any bytes but '/');
 * a *display name* is what readdir shows and what lookup/create receive (a valid Linux file
 * name: 1..255 bytes, no '/' and no NUL, not "." or "..").
 *
 * The rule, in short:
 *  - a component that is a valid, unambiguous file name is shown as it is;
 *  - any other component (empty, ".", "..", containing NUL, starting with '%', or ".etcdfs" at
 *    the mount root) is shown as '%' followed by the component with '%' and NUL written as %25
 *    and %00 (e.g. "" -> "%", ".." -> "%..", "%x" -> "%%25x");
 *  - when that escaped form would exceed 255 bytes, the display name is '%', as much of the
 *    escaped component as fits, then "%~" and 16 hex digits of a 64-bit FNV-1a hash of the whole
 *    component. Such a name is resolved by listing the directory;
 *  - in a directory whose own key also holds a value (key "a" next to "a/b"), that value is the
 *    file "%value";
 *  - a directory marker key ("a/") holding a non-empty value is the file "%" inside "a".
 */
#ifndef ETCDFS_NAMES_H
#define ETCDFS_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAMES_MAX 255                /* longest display name (Linux NAME_MAX) */
#define NAMES_SELF_VALUE "%value"    /* the value of a directory's own key */
#define NAMES_STATS_DIR ".etcdfs"    /* the virtual directory at the mount root */
#define NAMES_STATS_FILE "stats"     /* in it: the stats view (text) */
#define NAMES_METRICS_FILE "metrics" /* in it: the same, Prometheus text format */

typedef enum names_kind {
    NAMES_INVALID = 0, /* not a name this mapping can produce (a '%' name that is not canonical) */
    NAMES_PLAIN,       /* the component is the name itself */
    NAMES_ESCAPED,     /* '%'-escaped: the component was decoded into out */
    NAMES_HASHED,      /* a shortened long component: out holds its leading bytes, *hash the hash */
    NAMES_SELF,        /* "%value" (not at the root) */
    NAMES_STATS,       /* ".etcdfs" at the root */
} names_kind;

/* 64-bit FNV-1a of the bytes. */
uint64_t names_hash(const void *data, size_t len);

/* Display name of a component. out must hold NAMES_MAX + 1 bytes; the result is
 * NUL-terminated and its length returned (always 1..255). at_root: the component is a child of
 * the mount root (where ".etcdfs" is reserved). */
size_t names_to_display(const void *comp, size_t len, bool at_root, char *out);

/* Classifies a display name and decodes it. out must hold at least name_len bytes; *out_len
 * receives the component length (for NAMES_PLAIN/ESCAPED the exact component, for NAMES_HASHED
 * the known leading bytes; a candidate component matches when names_to_display gives back the
 * same name). hash may be NULL. */
names_kind names_from_display(const char *name, size_t name_len, bool at_root, char *out,
                              size_t *out_len, uint64_t *hash);

/* Normalises a --prefix: "" stays "" (the whole key space); anything else gets a trailing '/'.
 * Returns a malloc'ed NUL-terminated string (length in *out_len) or NULL when out of memory. */
char *names_normalize_prefix(const char *prefix, size_t *out_len);

/* Splits the part of a key below a directory: rel is the key with the directory prefix
 * removed. Returns the length of the first component; *is_dir is true when a '/' follows it
 * (the key lies deeper, so the component is a subdirectory). */
size_t names_first_component(const char *rel, size_t rel_len, bool *is_dir);

/* Where the last component of key starts: after its last '/', but not before floor (the mount
 * prefix, a directory's prefix). */
size_t names_last_component(const char *key, size_t len, size_t floor);

/* etcd's order of keys (and components): bytes compared unsigned, a prefix first. */
int names_key_cmp(const void *a, size_t a_len, const void *b, size_t b_len);

#endif
