/* read_view.c - the one version a read-only descriptor reads (see read_view.h). */
#include "read_view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

read_view read_view_borrow(const node *n, bool truncated)
{
    const file_part *p = node_fpart(n);
    size_t trunc_len = p ? p->trunc_len : 0;
    bool before_trunc = n->dirty && !n->written && trunc_len > n->size && !truncated;
    return (read_view){.set = true,
                       .data = p ? p->data : NULL,
                       .len = before_trunc ? trunc_len : n->size,
                       .mod_rev = n->known || n->pending || n->dirty ? n->mod_rev : 0};
}

int read_view_take_locked(read_view *v, const node *n)
{
    /* direct I/O: no kernel size to outguess, so the truncation itself (no trunc_len) */
    read_view now = read_view_borrow(n, true);
    char *copy = NULL;
    if (now.len > 0) {
        copy = malloc(now.len);
        if (!copy)
            return ENOMEM;
        memcpy(copy, now.data, now.len);
    }
    free(v->data);
    *v = now;
    v->data = copy;
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
