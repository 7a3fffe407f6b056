/* open_files.c - the open file descriptions of regular files (see open_files.h). */
#include "open_files.h"

#include <pthread.h>
#include <stdlib.h>

#include "file_sync.h"

/* Handles still open when the session ends (SIGTERM with a file open) get no release: they
 * are kept on a list and freed by file_handles_free_all at exit. */
static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;
static open_file *handles;

open_file *open_file_new(fuse_ino_t ino, int64_t base_rev)
{
    open_file *fh = calloc(1, sizeof *fh);
    if (!fh)
        return NULL;
    fh->ino = ino;
    fh->base_rev = base_rev;
    pthread_mutex_lock(&handles_mu);
    fh->next = handles;
    if (handles)
        handles->prev = fh;
    handles = fh;
    pthread_mutex_unlock(&handles_mu);
    return fh;
}

void open_file_free(open_file *fh)
{
    if (!fh)
        return;
    pthread_mutex_lock(&handles_mu);
    if (fh->prev)
        fh->prev->next = fh->next;
    else
        handles = fh->next;
    if (fh->next)
        fh->next->prev = fh->prev;
    pthread_mutex_unlock(&handles_mu);
    read_view_clear(&fh->view);
    node_put(fh->source);
    free(fh);
}

void open_files_advance_bases(fuse_ino_t ino, int64_t from, int64_t to)
{
    pthread_mutex_lock(&handles_mu);
    for (open_file *fh = handles; fh; fh = fh->next)
        if (fh->ino == ino && fh->base_rev == from)
            fh->base_rev = to;
    pthread_mutex_unlock(&handles_mu);
}

void open_files_clear_changes(fuse_ino_t ino)
{
    pthread_mutex_lock(&handles_mu);
    for (open_file *fh = handles; fh; fh = fh->next)
        if (fh->ino == ino)
            fh->changed = false;
    pthread_mutex_unlock(&handles_mu);
}

void open_files_lose_changes(fuse_ino_t ino, int rc)
{
    pthread_mutex_lock(&handles_mu);
    for (open_file *fh = handles; fh; fh = fh->next)
        if (fh->ino == ino && fh->changed) {
            fh->changed = false;
            fh->lost = rc;
        }
    pthread_mutex_unlock(&handles_mu);
}

void open_file_note_change_base_locked(node *n, open_file *fh)
{
    int64_t seen = n->mod_rev;
    if (fh) {
        pthread_mutex_lock(&handles_mu);
        seen = fh->base_rev;
        pthread_mutex_unlock(&handles_mu);
    }
    int64_t cur = file_writeback_base(n);
    file_part *p = node_file_part_locked(n);
    if (!p)
        return; /* no memory: the base stays mod_rev (the change itself fails for lack of it) */
    p->base_rev = !n->dirty || seen < cur ? seen : cur;
    n->has_base = true;
}

void file_note_change_locked(node *n, struct fuse_file_info *fi)
{
    if (fi && n->type == NODE_FILE)
        ((open_file *)(uintptr_t)fi->fh)->changed = true;
    open_file_note_change_base_locked(n, fi && n->type == NODE_FILE ? (open_file *)(uintptr_t)fi->fh
                                                                    : NULL);
}

int64_t open_file_base_locked(const node *n)
{
    return n->dirty || n->pending ? file_writeback_base(n) : n->mod_rev;
}

void file_handles_free_all(void)
{
    pthread_mutex_lock(&handles_mu);
    open_file *fh = handles;
    handles = NULL;
    pthread_mutex_unlock(&handles_mu);
    while (fh) {
        open_file *next = fh->next;
        read_view_clear(&fh->view);
        free(fh);
        fh = next;
    }
}
