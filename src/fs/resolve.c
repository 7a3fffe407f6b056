/* resolve.c - names in a directory to keys, and nodes to kernel entries (see resolve.h). */
#include "resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"
#include "listing.h"
#include "past.h"

bool node_is_root(const node *n)
{
    return n->ino == FUSE_ROOT_ID;
}

void resolved_free(resolved *r)
{
    free(r->dir_key);
    free(r->comp);
    free(r->file_key);
    free(r->sub_key);
    memset(r, 0, sizeof *r);
}

int resolve_name(node *dir, const char *name, resolved *r)
{
    memset(r, 0, sizeof *r);
    int rc = 0;
    size_t name_len = strlen(name);
    uint64_t hash = 0;
    if (name_len > NAMES_MAX)
        return ENAMETOOLONG;
    r->at_root = node_is_root(dir);
    r->dir_key = node_key(dir, &r->dir_len);
    r->comp = malloc(name_len + 1);
    if (!r->dir_key || !r->comp) {
        rc = ENOMEM;
        goto out;
    }
    r->kind = names_from_display(name, name_len, r->at_root, r->comp, &r->comp_len, &hash);
    switch (r->kind) {
    case NAMES_INVALID: rc = EINVAL; goto out;
    case NAMES_STATS: goto out;
    case NAMES_SELF:
        /* The directory's own key: its prefix without the trailing '/'. */
        r->file_key = key_join(r->dir_key, r->dir_len - 1, NULL, 0, NULL, 0, &r->file_len);
        rc = r->file_key ? 0 : ENOMEM;
        goto out;
    case NAMES_HASHED: {
        listing *l = NULL;
        bool refreshed = false;
        rc = listing_get(dir, r->at_root, &l);
        if (rc)
            goto out;
    again:
        rc = ENOENT;
        for (size_t i = 0; i < l->n; i++) {
            if (strcmp(listing_entry_name(&l->e[i]), name))
                continue;
            char *c = malloc(l->e[i].comp_len + 1);
            if (c) {
                memcpy(c, l->e[i].comp, l->e[i].comp_len + 1);
                free(r->comp);
                r->comp = c;
                r->comp_len = l->e[i].comp_len;
            }
            rc = c ? 0 : ENOMEM;
            break;
        }
        listing_unref(l);
        if (rc == ENOENT && !refreshed) {
            /* Close-to-open for names: not in the cached listing; read the directory again. */
            refreshed = true;
            rc = listing_refresh(dir, r->at_root, &l);
            if (rc == 0)
                goto again;
        }
        if (rc)
            goto out;
        break;
    }
    default: break;
    }
    size_t record_of;
    if (attrs_key_kind(r->comp, r->comp_len, &record_of) != ATTRS_NONE) {
        rc = EINVAL; /* an attribute record's key (docs/design-attributes.md): no entry */
        goto out;
    }
    r->file_key = key_join(r->dir_key, r->dir_len, r->comp, r->comp_len, NULL, 0, &r->file_len);
    r->sub_key = key_join(r->dir_key, r->dir_len, r->comp, r->comp_len, "/", 1, &r->sub_len);
    if (!r->file_key || !r->sub_key)
        rc = ENOMEM;
out:
    if (rc)
        resolved_free(r);
    return rc;
}

bool resolved_current(node *dir, const resolved *r)
{
    size_t len;
    char *key = node_key(dir, &len);
    bool same = key && len == r->dir_len && !memcmp(key, r->dir_key, len);
    free(key);
    return same;
}

void entry_for(node *n, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = n->ino;
    e->generation = 1;
    node_fill_attr(n, &e->attr, false);
    bool virt = n->type == NODE_STATS_FILE;
    e->attr_timeout = virt ? 0 : g_fs.timeout;
    e->entry_timeout = g_fs.timeout;
    if (n->type == NODE_PAST_DIR || n->type == NODE_PAST_FILE)
        e->attr_timeout = e->entry_timeout = PAST_TIMEOUT; /* a past revision never changes */
    node_ref_kernel(n);
}
