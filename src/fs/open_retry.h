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
 * not; so it is remembered per key and per calling thread (the kernel retries within the
 * same system call), for a second at most, and forgotten when that thread's retry creates
 * the file (O_CREAT: its next open is a new one). Per thread, because another thread's create
 * of the key in between must not make a retry look like a new open (history checker, watch:
 * a reader's retry answered ESTALE after a create and an unlink on the same mount). Another
 * thread's open finding the key deleted gets its own ESTALE and retry.
 */
#ifndef ETCDFS_OPEN_RETRY_H
#define ETCDFS_OPEN_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* An open of key by thread pid found it deleted: true if this is the kernel's retry of that
 * thread's open that answered ESTALE (answer ENOENT); false otherwise (answer ESTALE; the
 * retry is expected). */
bool open_retry_is_retry(const char *key, size_t len, pid_t pid);

/* The file key was created by this mount for thread pid (the retry of its O_CREAT open
 * ended). */
void open_retry_created(const char *key, size_t len, pid_t pid);

#endif
