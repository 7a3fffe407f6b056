/*
 * open_retry.h - telling the kernel's retry of an open from a new open.
 *
 * An open whose key was deleted since the kernel looked its name up answers ESTALE: the
 * kernel then retries the open once with its names revalidated, so that open(O_CREAT)
 * creates the file (FUSE strips O_CREAT from an open, so etcdfs cannot tell it from a plain
 * open). When the key was created again and is gone once more by the retried open (or the
 * kernel kept the name without asking), a second ESTALE would reach the application: the
 * retry answers ENOENT, which the key's absence was when it was asked for. The retry may
 * come through a new node for the key, and the kernel may first look the name up for it, or
 * not; so it is remembered per key, for a second at most, and forgotten when the retry
 * creates the file (O_CREAT: the next open is a new one). Other readers of the key finding
 * it deleted within that second get ENOENT too, as they should.
 */
#ifndef ETCDFS_OPEN_RETRY_H
#define ETCDFS_OPEN_RETRY_H

#include <stdbool.h>
#include <stddef.h>

/* An open of key found it deleted: true if this is the kernel's retry of an open that
 * answered ESTALE (answer ENOENT); false otherwise (answer ESTALE; the retry is expected). */
bool open_retry_is_retry(const char *key, size_t len);

/* The file key was created by this mount (the retry of an O_CREAT open ended). */
void open_retry_created(const char *key, size_t len);

#endif
