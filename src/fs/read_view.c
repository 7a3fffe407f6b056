/* read_view.c - the one version a read-only descriptor reads (see read_view.h). */
#include "read_view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t read_view_visible_len(const node *n, bool truncated)
{
    /* An O_TRUNC open not yet followed by a write: a reader that got the old size before the
     * kernel learned of the truncation is answered with the whole old version, not a cut one
     * (the kernel fills what a short read leaves with NULs). */
    bool before_trunc = n->dirty && !n->written && n->trunc_len > n->size && !truncated;
    return before_trunc ? n->trunc_len : n->size;
}

int read_view_take_locked(read_view *v, const node *n)
{
    size_t len = n->size; /* direct I/O: no size in the kernel to outguess (trunc_len) */
    char *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (!copy)
            return ENOMEM;
        memcpy(copy, n->data, len);
    }
    free(v->data);
    v->data = copy;
    v->len = len;
    v->mod_rev = n->known || n->pending || n->dirty ? n->mod_rev : 0;
    v->set = true;
    return 0;
}

const char *read_view_slice(const read_view *v, size_t size, uint64_t off, size_t *count)
{
    size_t from = off < v->len ? (size_t)off : v->len;
    *count = v->len - from < size ? v->len - from : size;
    return *count ? v->data + from : NULL;
}

void read_view_clear(read_view *v)
{
    free(v->data);
    *v = (read_view){0};
}
