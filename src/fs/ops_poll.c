/*
 * ops_poll.c - poll(2)/select(2)/epoll on an open file wake when its key changes (see ops_poll.h).
 *
 * Each open file description that read from offset 0 or polled has a record of the revision
 * it has seen. The file is "ready" (POLLIN|POLLPRI) while etcd's current revision of the key,
 * as the watch-coherent cache knows it, differs from that one; reading from offset 0 records
 * the new revision and so re-arms the wake-up. The kernel gives us a poll handle to notify
 * when we answered "not ready"; the notify thread fires it when the watch applies a change.
 */
#include "ops_poll.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#include "inode.h"
#include "log.h"
#include "stats.h"

typedef struct poller {
    struct poller *next;
    uint64_t fh;
    fuse_ino_t ino;
    int64_t seen_rev;           /* 0: the key did not exist */
    struct fuse_pollhandle *ph; /* the kernel waits for a notification */
} poller;

static pthread_mutex_t poll_mu = PTHREAD_MUTEX_INITIALIZER;
static poller *pollers; /* [poll_mu] */

/* [poll_mu] */
static poller *find_locked(uint64_t fh)
{
    poller *p = pollers;
    while (p && p->fh != fh)
        p = p->next;
    return p;
}

/* [poll_mu] The record of fh, created with seen_rev when there is none. */
static poller *obtain_locked(uint64_t fh, fuse_ino_t ino, int64_t seen_rev)
{
    poller *p = find_locked(fh);
    if (p || !(p = calloc(1, sizeof *p)))
        return p;
    *p = (poller){.next = pollers, .fh = fh, .ino = ino, .seen_rev = seen_rev};
    pollers = p;
    return p;
}

/* The key's revision as the cache knows it (0: absent). */
static int64_t current_rev(fuse_ino_t ino)
{
    node *n = node_get(ino);
    int64_t rev = 0;
    if (n) {
        node_lock(n);
        rev = n->known || n->pending || n->dirty ? n->mod_rev : 0;
        node_unlock(n);
        node_put(n);
    }
    return rev;
}

void poll_read_from_start(uint64_t fh, fuse_ino_t ino, int64_t rev)
{
    pthread_mutex_lock(&poll_mu);
    poller *p = obtain_locked(fh, ino, rev);
    if (p)
        p->seen_rev = rev;
    pthread_mutex_unlock(&poll_mu);
}

void poll_released(uint64_t fh)
{
    pthread_mutex_lock(&poll_mu);
    for (poller **pp = &pollers; *pp; pp = &(*pp)->next) {
        poller *p = *pp;
        if (p->fh != fh)
            continue;
        *pp = p->next;
        if (p->ph)
            fuse_pollhandle_destroy(p->ph);
        free(p);
        break;
    }
    pthread_mutex_unlock(&poll_mu);
}

void poll_key_changed(fuse_ino_t ino, int64_t rev)
{
    pthread_mutex_lock(&poll_mu);
    for (poller *p = pollers; p; p = p->next) {
        if (p->ino != ino || !p->ph || p->seen_rev == rev)
            continue;
        fuse_lowlevel_notify_poll(p->ph);
        fuse_pollhandle_destroy(p->ph);
        p->ph = NULL;
    }
    pthread_mutex_unlock(&poll_mu);
}

void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
    stats_inc(STAT_OP_poll);
    int64_t rev = current_rev(ino);
    pthread_mutex_lock(&poll_mu);
    /* First contact without a read from offset 0: what is there now counts as seen. */
    poller *p = obtain_locked(fi->fh, ino, rev);
    bool ready = !p || p->seen_rev != rev;
    if (p && ph && !ready) {
        if (p->ph)
            fuse_pollhandle_destroy(p->ph);
        p->ph = ph; /* fired by poll_key_changed */
        ph = NULL;
    }
    int64_t seen = p ? p->seen_rev : -1;
    pthread_mutex_unlock(&poll_mu);
    if (ph)
        fuse_pollhandle_destroy(ph);
    log_debug("poll %lu: seen revision %lld, now %lld -> %s", (unsigned long)ino, (long long)seen,
              (long long)rev, ready ? "ready" : "waiting");
    fuse_reply_poll(req, ready ? POLLIN | POLLRDNORM | POLLPRI : 0);
}

void poll_shutdown(void)
{
    pthread_mutex_lock(&poll_mu);
    while (pollers) {
        poller *p = pollers;
        pollers = p->next;
        if (p->ph)
            fuse_pollhandle_destroy(p->ph);
        free(p);
    }
    pthread_mutex_unlock(&poll_mu);
}
