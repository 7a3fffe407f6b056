/*
 * name_set.h - a set of key components (raw bytes), for the names of one directory that this
 * mount changed since the directory's listing was read (inode.h: a listing plus these names
 * still proves every other name absent).
 *
 * Not thread-safe: the owner (a directory node) guards it with its mutex.
 */
#ifndef ETCDFS_NAME_SET_H
#define ETCDFS_NAME_SET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct name_set name_set;

/* Adds comp to *s (creating the set when *s is NULL). Returns 0, or ENOMEM (the set is then
 * unchanged). */
int name_set_add(name_set **s, const void *comp, size_t len);
/* Whether comp is in s (NULL: the empty set). */
bool name_set_has(const name_set *s, const void *comp, size_t len);
/* Number of names in s (NULL: 0). */
size_t name_set_count(const name_set *s);
void name_set_free(name_set *s);

#endif
