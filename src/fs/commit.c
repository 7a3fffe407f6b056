/*
 * commit.c - ordering of this mount's own changes (see commit.h).
 *
 * The names lock is a writer-preferring rwlock: writes share it, subtree moves take it alone.
 * The watch's wait is a two-generation counter, as in a grace period: commit_quiesce flips the
 * generation new changes count in and waits for the old one to drain, so it never holds back
 * changes that begin while it waits.
 */
#include "commit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Own revisions not yet seen by the watch; beyond this many the oldest are dropped (the cost
 * is an inotify replay of a change made here, nothing else). */
#define OWN_MAX 4096

static pthread_rwlock_t names_lock;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t gen_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gen_cv = PTHREAD_COND_INITIALIZER;
static unsigned gen;         /* [gen_mu] */
static int in_flight[2];     /* [gen_mu] changes begun in each generation, not ended */
static int64_t own[OWN_MAX]; /* [gen_mu] ascending */
static size_t own_n;         /* [gen_mu] */

static void names_init(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* A move waiting for the names must not starve behind a stream of writes. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&names_lock, &a);
    pthread_rwlockattr_destroy(&a);
}

static void count_in(commit *c)
{
    pthread_mutex_lock(&gen_mu);
    c->slot = gen & 1;
    in_flight[c->slot]++;
    pthread_mutex_unlock(&gen_mu);
}

void commit_begin(commit *c)
{
    pthread_once(&names_once, names_init);
    count_in(c);
    pthread_rwlock_rdlock(&names_lock);
    c->names_held = true;
}

void commit_begin_move(commit *c)
{
    pthread_once(&names_once, names_init);
    count_in(c);
    pthread_rwlock_wrlock(&names_lock);
    c->names_held = true;
}

void commit_release_names(commit *c)
{
    if (!c->names_held)
        return;
    pthread_rwlock_unlock(&names_lock);
    c->names_held = false;
}

/* [gen_mu] Inserts rev keeping own[] ascending (revisions mostly arrive in order). */
static void own_add(int64_t rev)
{
    if (own_n == OWN_MAX) {
        memmove(own, own + 1, (OWN_MAX - 1) * sizeof *own);
        own_n--;
    }
    size_t i = own_n;
    while (i > 0 && own[i - 1] > rev)
        i--;
    if (i > 0 && own[i - 1] == rev)
        return;
    memmove(own + i + 1, own + i, (own_n - i) * sizeof *own);
    own[i] = rev;
    own_n++;
}

void commit_end(commit *c, int64_t revision)
{
    commit_release_names(c);
    pthread_mutex_lock(&gen_mu);
    if (revision > 0)
        own_add(revision);
    if (--in_flight[c->slot] == 0)
        pthread_cond_broadcast(&gen_cv);
    pthread_mutex_unlock(&gen_mu);
}

void commit_quiesce(void)
{
    pthread_mutex_lock(&gen_mu);
    unsigned old = gen & 1;
    gen++;
    while (in_flight[old] > 0)
        pthread_cond_wait(&gen_cv, &gen_mu);
    pthread_mutex_unlock(&gen_mu);
}

bool commit_is_own(int64_t rev)
{
    pthread_mutex_lock(&gen_mu);
    size_t drop = 0;
    while (drop < own_n && own[drop] < rev)
        drop++;
    memmove(own, own + drop, (own_n - drop) * sizeof *own);
    own_n -= drop;
    bool mine = own_n > 0 && own[0] == rev;
    pthread_mutex_unlock(&gen_mu);
    return mine;
}
