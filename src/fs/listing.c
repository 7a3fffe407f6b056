/* listing.c - directory listings (see listing.h). */
#include "listing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "log.h"
#include "names.h"
#include "prefetch.h"
#include "stats.h"

listing *listing_ref(listing *l)
{
    if (l)
        __atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
    return l;
}

void listing_unref(listing *l)
{
    if (!l || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    cache_account_meta(-(int64_t)l->bytes);
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].comp);
    free(l->e);
    free(l->recs);
    etcdc_kv_clear(&l->self);
    free(l);
}

etcdc_kv listing_entry_kv(const listing_entry *e)
{
    return (etcdc_kv){.value = listing_entry_value(e),
                      .value_len = e->value_len,
                      .mod_revision = e->mod_revision,
                      .create_revision = e->create_revision,
                      .value_error = e->value_error};
}

/* Whether the entry's record, if it has one, makes it a symbolic link (whose target stat and
 * readlink answer without an open). */
static bool entry_is_symlink(const listing *l, const listing_entry *e)
{
    const attrs_seen *r = e->rec ? &l->recs[e->rec - 1] : NULL;
    return r && r->present && S_ISLNK(r->a.mode);
}

void listing_give_entry_locked(node *n, const listing *l, const listing_entry *e)
{
    if (!e->is_dir) {
        etcdc_kv kv = listing_entry_kv(e);
        bool opens_ask_etcd = !consistency_watch_trusted() && !entry_is_symlink(l, e);
        node_apply_listed_kv_locked(n, &kv, l->revision, l->fetched_ns, opens_ask_etcd);
    }
    if (n->type == NODE_DIR)
        n->create_rev = e->create_revision;
    if (e->rec)
        node_set_record_seen_locked(n, &l->recs[e->rec - 1].a, l->recs[e->rec - 1].rev,
                                    l->recs[e->rec - 1].created);
    else
        node_set_record_locked(n, NULL, l->revision);
}

typedef struct builder {
    listing *l;
    size_t cap, rec_cap;
    const char *dir;
    size_t dir_len;
    bool at_root;
    /* a directory's record, which comes before the directory's keys, until they come */
    attrs_seen dir_rec;
    char *dir_rec_comp; /* NULL: none waiting */
    size_t dir_rec_len;
} builder;

/* Fills e with the component, the value of kv (may be NULL) and the display name, in one
 * allocation (see listing_entry). */
static int entry_init(listing_entry *e, const char *comp, size_t comp_len, bool at_root,
                      const etcdc_kv *kv)
{
    if (comp_len > UINT32_MAX)
        return ENAMETOOLONG;
    char name[NAMES_MAX + 1];
    size_t name_len = names_to_display(comp, comp_len, at_root, name);
    bool own_name = name_len != comp_len || memcmp(name, comp, comp_len);
    size_t value_len = kv ? kv->value_len : 0;
    char *block = malloc(comp_len + 1 + (kv ? value_len + 1 : 0) + (own_name ? name_len + 1 : 0));
    if (!block)
        return ENOMEM;
    *e = (listing_entry){.comp = block,
                         .comp_len = (uint32_t)comp_len,
                         .name_len = (uint16_t)name_len,
                         .own_name = own_name};
    memcpy(block, comp, comp_len);
    block[comp_len] = 0;
    char *next = block + comp_len + 1;
    if (kv) {
        e->create_revision = kv->create_revision;
        if (value_len)
            memcpy(next, kv->value, value_len);
        next[value_len] = 0;
        e->value_len = value_len;
        e->mod_revision = kv->mod_revision;
        e->value_error = kv->value_error;
        e->has_kv = true;
        next += value_len + 1;
    }
    if (own_name)
        memcpy(next, name, name_len + 1);
    return 0;
}

static int add_entry(builder *b, const char *comp, size_t comp_len, bool is_dir, const etcdc_kv *kv)
{
    listing *l = b->l;
    if (l->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        listing_entry *grown = realloc(l->e, cap * sizeof *grown);
        if (!grown)
            return ENOMEM;
        l->e = grown;
        b->cap = cap;
    }
    listing_entry *e = &l->e[l->n];
    int rc = entry_init(e, comp, comp_len, b->at_root, kv);
    if (rc)
        return rc;
    e->is_dir = is_dir;
    l->n++;
    size_t bytes = cache_entry_bytes(e->own_name ? e->name_len + 1 : 0, comp_len,
                                     e->has_kv ? e->value_len + 1 : 0);
    l->bytes += bytes;
    cache_account_meta((int64_t)bytes);
    return 0;
}

/* Keeps record r in the listing: its number for listing_entry.rec (0: out of memory, the entry
 * then shows the defaults). */
static uint32_t keep_record(builder *b, const attrs_seen *r)
{
    listing *l = b->l;
    if (l->nrecs == b->rec_cap) {
        size_t cap = b->rec_cap ? b->rec_cap * 2 : 8;
        attrs_seen *grown = cap <= UINT32_MAX ? realloc(l->recs, cap * sizeof *grown) : NULL;
        if (!grown)
            return 0;
        l->recs = grown;
        b->rec_cap = cap;
    }
    l->recs[l->nrecs++] = *r;
    l->bytes += sizeof *r;
    cache_account_meta((int64_t)sizeof *r);
    return l->nrecs;
}

/* A key whose component is an attribute record (docs/design-attributes.md): it is no entry of
 * its own. A file's record comes right after the file (only keys "name\0..." sort between
 * them); a directory's comes before the directory's keys and waits for them. */
static int take_record(builder *b, attrs_kind kind, const char *name, size_t name_len,
                       const etcdc_kv *kv)
{
    attrs_seen r = {.rev = kv->mod_revision, .created = kv->create_revision, .present = true};
    if (kv->value_error || !attrs_parse(kv->value, kv->value_len, &r.a))
        return 0; /* damaged, foreign or unreadable: the entry shows the defaults */
    if (kind == ATTRS_FILE) {
        for (size_t i = b->l->n; i-- > 0;) {
            listing_entry *e = &b->l->e[i];
            int c = names_key_cmp(e->comp, e->comp_len, name, name_len);
            if (c < 0)
                break;
            if (c == 0 && !e->is_dir && e->has_kv) {
                e->rec = keep_record(b, &r);
                break;
            }
        }
        return 0;
    }
    char *copy = malloc(name_len + 1);
    if (!copy)
        return ENOMEM;
    memcpy(copy, name, name_len);
    free(b->dir_rec_comp);
    b->dir_rec_comp = copy;
    b->dir_rec_len = name_len;
    b->dir_rec = r;
    return 0;
}

/* Adds the child directory comp, first seen at key first: its marker when it has one. */
static int add_dir(builder *b, const char *comp, size_t comp_len, const etcdc_kv *first)
{
    int rc = add_entry(b, comp, comp_len, true, NULL);
    if (rc)
        return rc;
    listing_entry *e = &b->l->e[b->l->n - 1];
    bool marker = first->key_len == b->dir_len + comp_len + 1;
    if (marker)
        e->create_revision = first->create_revision;
    if (b->dir_rec_comp && b->dir_rec_len == comp_len && !memcmp(b->dir_rec_comp, comp, comp_len) &&
        marker)
        e->rec = keep_record(b, &b->dir_rec);
    free(b->dir_rec_comp);
    b->dir_rec_comp = NULL;
    return 0;
}

/* Adds a key that lies directly in the directory (not the marker): a file, or a record. */
static int add_file(builder *b, const char *comp, size_t comp_len, const etcdc_kv *kv)
{
    size_t name_len;
    attrs_kind kind = attrs_key_kind(comp, comp_len, &name_len);
    if (kind != ATTRS_NONE)
        return take_record(b, kind, comp, name_len, kv);
    return add_entry(b, comp, comp_len, false, kv);
}

static void builder_done(builder *b)
{
    free(b->dir_rec_comp);
    b->dir_rec_comp = NULL;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const listing_entry *a = pa, *b = pb;
    size_t n = a->comp_len < b->comp_len ? a->comp_len : b->comp_len;
    int c = memcmp(a->comp, b->comp, n);
    if (c)
        return c;
    if (a->comp_len != b->comp_len)
        return a->comp_len < b->comp_len ? -1 : 1;
    return (int)a->is_dir - (int)b->is_dir; /* file before directory of the same name */
}

/* Sorts by component and merges "a" (a value) with "a/..." (a directory) into one directory
 * entry that carries the value (shown inside it as %value). */
static void finish(listing *l)
{
    if (l->n == 0)
        return;
    qsort(l->e, l->n, sizeof *l->e, entry_cmp);
    size_t out = 0;
    for (size_t i = 0; i < l->n; i++) {
        listing_entry *e = &l->e[i];
        if (out > 0) {
            listing_entry *prev = &l->e[out - 1];
            if (prev->comp_len == e->comp_len && !memcmp(prev->comp, e->comp, e->comp_len)) {
                if (!prev->is_dir && e->is_dir) {
                    /* file then directory of the same name: keep the directory, with the
                     * value (the file's block holds the same component and name) and the
                     * directory's record (the file, shown as its %value, goes without) */
                    free(e->comp);
                    prev->is_dir = true;
                    prev->create_revision = e->create_revision;
                    prev->rec = e->rec;
                    continue;
                }
                /* a duplicate directory (cannot happen with sorted keys; be safe) */
                free(e->comp);
                continue;
            }
        }
        l->e[out++] = *e;
    }
    l->n = out;
    /* The array grew by doubling; a kept listing needs room for its entries only. */
    listing_entry *fit = realloc(l->e, out * sizeof *l->e);
    if (fit)
        l->e = fit;
}

/* Feeds one page of keys into the builder. *skip_end receives the end of the child
 * directory subtree the page stopped in (malloc'ed), or NULL. */
static int feed(builder *b, etcdc_kvs *page, char **skip_end, size_t *skip_len)
{
    int rc = 0;
    *skip_end = NULL;
    const char *cur_dir = NULL; /* component of the child directory being skipped */
    size_t cur_len = 0;
    for (size_t i = 0; rc == 0 && i < page->count; i++) {
        etcdc_kv *kv = &page->kvs[i];
        if (kv->key_len < b->dir_len || memcmp(kv->key, b->dir, b->dir_len))
            continue; /* outside the directory (cannot happen for a prefix range) */
        const char *rel = kv->key + b->dir_len;
        size_t rel_len = kv->key_len - b->dir_len;
        if (rel_len == 0 && b->dir_len > 0) {
            /* The marker key itself. With a value it is the file "%". */
            b->l->marker_mod = kv->mod_revision;
            if (kv->value_len > 0)
                rc = add_entry(b, rel, 0, false, kv);
            continue;
        }
        bool is_dir;
        size_t clen = names_first_component(rel, rel_len, &is_dir);
        if (is_dir) {
            if (cur_dir && cur_len == clen && !memcmp(cur_dir, rel, clen))
                continue; /* still inside the same child directory */
            cur_dir = rel;
            cur_len = clen;
            rc = add_dir(b, rel, clen, kv);
        } else {
            cur_dir = NULL;
            rc = add_file(b, rel, clen, kv);
        }
    }
    if (rc == 0 && cur_dir) {
        /* The page ended inside a child directory: continue after its whole subtree. */
        size_t plen;
        char *p = key_join(b->dir, b->dir_len, cur_dir, cur_len, "/", 1, &plen);
        if (!p)
            return ENOMEM;
        *skip_end = key_prefix_end(p, plen, skip_len);
        free(p);
        if (!*skip_end)
            rc = ENOMEM;
    }
    return rc;
}

/* A listing this long shows a progress line (on a terminal; see log_progress). Counted in
 * entries, not pages: pages grow (below). */
#define PROGRESS_AFTER_ENTRIES 2048

/* etcd (3.4.23 and 3.5.16 alike) walks the whole rest of the range for every page, whatever
 * its limit (it counts the range for the response): fixed-size pages make a huge directory
 * cost pages x keys (100k entries: 4 s, against 0.4 s for one request). Pages therefore double
 * while they stay small in bytes, up to PAGE_MAX_KEYS. */
#define PAGE_MAX_KEYS 8192
#define PAGE_GROW_BELOW_BYTES (256 * 1024)

static size_t page_bytes(const etcdc_kvs *page)
{
    size_t bytes = 0;
    for (size_t i = 0; i < page->count; i++)
        bytes += page->kvs[i].key_len + page->kvs[i].value_len;
    return bytes;
}

int listing_fetch(const char *dir_key, size_t dir_len, bool is_root, listing **out)
{
    return listing_fetch_at(dir_key, dir_len, is_root, 0, out);
}

/* A new, empty listing with one reference; NULL when out of memory. */
static listing *listing_new(void)
{
    listing *l = calloc(1, sizeof *l);
    if (l)
        l->refs = 1;
    return l;
}

/* The first key of the directory's range, into start (dir_len + 1 bytes): its prefix, or "\0"
 * for the whole key space (etcd has no empty key). Returns its length. */
static size_t first_key(char *start, const char *dir_key, size_t dir_len)
{
    memcpy(start, dir_key, dir_len);
    start[dir_len] = 0;
    return dir_len ? dir_len : 1;
}

/* One page: a Range; with_self, the first page of a directory that may have a key of its own
 * ("a" next to "a/...") also reads that key into l, in one read-only Txn, still one round
 * trip. */
static etcdc_code read_page(const etcdc_range_req *req, bool with_self, const char *dir_key,
                            size_t dir_len, listing *l, etcdc_kvs *page, etcdc_error *err)
{
    if (!with_self)
        return etcdc_range(g_fs.client, req, page, err);
    etcdc_txn *t = etcdc_txn_new();
    etcdc_range_req self = {.key = dir_key, .key_len = dir_len - 1};
    etcdc_txn_result r = {0};
    etcdc_txn_get(t, ETCDC_THEN, &self);
    etcdc_txn_get(t, ETCDC_THEN, req);
    etcdc_code code = etcdc_txn_commit(g_fs.client, t, &r, err);
    if (code == ETCDC_OK && r.op_count == 2) {
        etcdc_kvs *s = &r.ops[0].kvs;
        if (s->count == 1) {
            l->self = s->kvs[0];
            memset(&s->kvs[0], 0, sizeof s->kvs[0]);
            l->self_present = true;
        }
        *page = r.ops[1].kvs;
        memset(&r.ops[1].kvs, 0, sizeof r.ops[1].kvs);
        page->revision = r.revision;
    }
    etcdc_txn_result_clear(&r);
    etcdc_txn_free(t);
    return code;
}

/* Adds the page's entries to b and says where the next page starts (*next, malloc'ed): after
 * the page's last key, or past the whole subtree of the child directory the page ended in.
 * *more is false when no page follows (*next is then NULL). */
static int take_page(builder *b, etcdc_kvs *page, char **next, size_t *next_len, bool *more)
{
    int rc = 0;
    *next = NULL;
    *next_len = 0;
    if (page->count) { /* taken before feed() moves the kvs out */
        const etcdc_kv *last = &page->kvs[page->count - 1];
        *next = key_join(last->key, last->key_len, "", 1, NULL, 0, next_len);
        if (!*next)
            rc = ENOMEM;
    }
    char *skip = NULL;
    size_t skip_len = 0;
    if (rc == 0)
        rc = feed(b, page, &skip, &skip_len);
    *more = page->more && page->count > 0;
    if (rc == 0 && *more && skip) {
        free(*next);
        *next = skip;
        *next_len = skip_len;
        skip = NULL;
        /* A subtree running to the end of the key space ends the listing. */
        if (*next_len == 1 && (*next)[0] == 0)
            *more = false;
    }
    free(skip);
    if (rc || !*more) {
        free(*next);
        *next = NULL;
    }
    return rc;
}

int listing_fetch_at(const char *dir_key, size_t dir_len, bool is_root, int64_t at_rev,
                     listing **out)
{
    *out = NULL;
    int rc = 0;
    builder b = {.dir = dir_key, .dir_len = dir_len, .at_root = is_root, .l = listing_new()};
    size_t end_len, start_len = 0;
    char *end = key_prefix_end(dir_key, dir_len, &end_len);
    char *start = malloc(dir_len + 1);
    int64_t limit = g_fs.page_size, revision = at_rev;
    bool first = true;
    bool progress = false;
    size_t listed = 0;
    etcdc_error err = {0};
    if (!end || !start || !b.l) {
        rc = ENOMEM;
        goto out;
    }
    start_len = first_key(start, dir_key, dir_len);
    for (;;) {
        etcdc_range_req req = {.key = start,
                               .key_len = start_len,
                               .range_end = end,
                               .range_end_len = end_len,
                               .limit = limit,
                               .revision = revision};
        etcdc_kvs page = {0};
        etcdc_code code =
            read_page(&req, first && !is_root && dir_len > 1, dir_key, dir_len, b.l, &page, &err);
        stats_inc(STAT_listing_pages);
        if (log_debug_enabled()) {
            char kb[LOG_KEY_BUF];
            log_debug("list page from %s: %s, %zu keys, more %d",
                      log_key(start, start_len, kb, sizeof kb), etcdc_strerror(code), page.count,
                      page.more);
        }
        if (code == ETCDC_ERR_TOO_LARGE && limit > 1) {
            limit /= 2; /* big values: smaller pages fit the receive limit */
            continue;
        }
        if (code == ETCDC_ERR_COMPACTED && revision && !at_rev) {
            /* The snapshot revision was compacted between pages: start over. */
            listing_unref(b.l);
            b.cap = b.rec_cap = 0;
            builder_done(&b);
            if (!(b.l = listing_new())) {
                rc = ENOMEM;
                goto out;
            }
            start_len = first_key(start, dir_key, dir_len);
            revision = 0;
            first = true;
            continue;
        }
        if (code != ETCDC_OK && at_rev &&
            (code == ETCDC_ERR_COMPACTED || code == ETCDC_ERR_FUTURE_REVISION)) {
            rc = ENOENT; /* the caller (past.c) says which in one line */
            goto out;
        }
        if (code != ETCDC_OK) {
            rc = fs_fail("list", dir_key, dir_len, code, &err);
            goto out;
        }
        if (first) {
            revision = at_rev ? at_rev : page.revision;
            b.l->revision = revision;
        }
        first = false;
        if (limit < PAGE_MAX_KEYS && page_bytes(&page) < PAGE_GROW_BELOW_BYTES)
            limit *= 2;
        char *next;
        size_t next_len;
        bool more;
        rc = take_page(&b, &page, &next, &next_len, &more);
        etcdc_kvs_clear(&page);
        listed = b.l->n;
        if (rc == 0 && more && listed >= PROGRESS_AFTER_ENTRIES) {
            progress = true;
            char kb[LOG_KEY_BUF];
            log_progress("listing %s: %zu entries so far", log_key(dir_key, dir_len, kb, sizeof kb),
                         listed);
        }
        if (rc || !more)
            break;
        free(start);
        start = next;
        start_len = next_len;
    }
    if (rc == 0) {
        finish(b.l);
        b.l->fetched_ns = now_ns();
        *out = b.l;
        b.l = NULL;
    }
out:
    if (progress || listed >= PROGRESS_AFTER_ENTRIES) {
        char kb[LOG_KEY_BUF];
        log_progress("listing %s: %zu entries%s", log_key(dir_key, dir_len, kb, sizeof kb), listed,
                     rc ? ", failed" : ", done");
        log_progress_end();
    }
    if (b.l)
        listing_unref(b.l);
    builder_done(&b);
    free(start);
    free(end);
    return rc;
}

int listing_get(node *dir, bool is_root, listing **out)
{
    *out = node_fresh_listing(dir);
    if (*out)
        return 0;
    if (consistency_watch_trusted()) {
        uint32_t gen = node_listing_gen(dir);
        if ((*out = prefetch_take(dir))) {
            node_offer_listing(dir, listing_ref(*out), gen);
            return 0;
        }
    }
    return listing_refresh(dir, is_root, out);
}

int listing_refresh(node *dir, bool is_root, listing **out)
{
    *out = NULL;
    size_t len;
    char *key = node_key(dir, &len);
    if (!key)
        return ENOMEM;
    /* A change in the directory while this listing is read (this mount's own, or the
     * watch's) may be missing from it: then it serves this call only. */
    uint32_t gen = node_listing_gen(dir);
    int rc = listing_fetch(key, len, is_root, out);
    free(key);
    if (rc == 0)
        node_offer_listing(dir, listing_ref(*out), gen);
    return rc;
}

/* --- whole subtrees (prefetch.h) ------------------------------------------------------------ */

/* The value of entry e, for a directory's own value (its "%value"), which its parent's
 * listing keeps as well. */
static int self_copy(etcdc_kv *dst, const listing_entry *e)
{
    etcdc_kv view = listing_entry_kv(e);
    *dst = view;
    dst->value = malloc(e->value_len + 1);
    if (!dst->value) {
        memset(dst, 0, sizeof *dst);
        return ENOMEM;
    }
    memcpy(dst->value, listing_entry_value(e), e->value_len + 1);
    return 0;
}

/* The directories on the path of the key being fed, outermost first: every key of a subtree
 * comes in key order, so a directory's keys are contiguous and one stack suffices. */
typedef struct subtree {
    builder *stack;
    size_t depth, cap;
    int64_t revision;
    subtree_emit emit;
    void *arg;
    size_t emitted;
} subtree;

static void subtree_pop(subtree *st)
{
    builder *b = &st->stack[--st->depth];
    if (st->depth > 0 && b->l) {
        finish(b->l);
        b->l->revision = st->revision;
        b->l->fetched_ns = now_ns();
        st->emit(b->l, b->dir, b->dir_len, st->arg); /* takes the reference */
        st->emitted++;
    } else {
        listing_unref(b->l);
    }
    builder_done(b);
    free((char *)b->dir);
}

/* Opens the builder of child directory comp of the top builder; its own value (the file of the
 * same name, just before it in key order) comes along. */
static int subtree_push(subtree *st, const char *comp, size_t comp_len)
{
    builder *top = &st->stack[st->depth - 1];
    if (st->depth == st->cap) {
        size_t cap = st->cap * 2;
        builder *grown = realloc(st->stack, cap * sizeof *grown);
        if (!grown)
            return ENOMEM;
        st->stack = grown;
        st->cap = cap;
        top = &st->stack[st->depth - 1];
    }
    size_t len;
    char *dir = key_join(top->dir, top->dir_len, comp, comp_len, "/", 1, &len);
    listing *l = calloc(1, sizeof *l);
    if (!dir || !l) {
        free(dir);
        free(l);
        return ENOMEM;
    }
    l->refs = 1;
    for (size_t i = top->l->n; i-- > 0;) {
        const listing_entry *e = &top->l->e[i];
        if (e->comp_len < comp_len || memcmp(e->comp, comp, comp_len))
            break; /* before every name starting with comp: no value of that name */
        if (!e->is_dir && e->comp_len == comp_len && e->has_kv) {
            if (self_copy(&l->self, e)) {
                free(dir);
                listing_unref(l);
                return ENOMEM;
            }
            l->self_present = true;
            break;
        }
    }
    st->stack[st->depth++] = (builder){.l = l, .dir = dir, .dir_len = len};
    return 0;
}

/* Adds one key to the builder of its own directory, opening the builders of the directories
 * between the top one and it. */
static int subtree_feed(subtree *st, etcdc_kv *kv)
{
    while (st->depth > 1) {
        builder *top = &st->stack[st->depth - 1];
        if (kv->key_len >= top->dir_len && !memcmp(kv->key, top->dir, top->dir_len))
            break;
        subtree_pop(st);
    }
    for (;;) {
        builder *top = &st->stack[st->depth - 1];
        const char *rel = kv->key + top->dir_len;
        size_t rel_len = kv->key_len - top->dir_len;
        if (rel_len == 0) {
            top->l->marker_mod = kv->mod_revision;
            return kv->value_len > 0 ? add_entry(top, rel, 0, false, kv) : 0;
        }
        bool deeper;
        size_t clen = names_first_component(rel, rel_len, &deeper);
        if (!deeper)
            return add_file(top, rel, clen, kv);
        const listing_entry *last = top->l->n ? &top->l->e[top->l->n - 1] : NULL;
        bool added =
            last && last->is_dir && last->comp_len == clen && !memcmp(last->comp, rel, clen);
        int rc = added ? 0 : add_dir(top, rel, clen, kv);
        if (rc == 0)
            rc = subtree_push(st, rel, clen);
        if (rc)
            return rc;
    }
}

int listing_fetch_subtree(const char *dir_key, size_t dir_len, bool is_root, size_t max_keys,
                          size_t max_bytes, subtree_emit emit, void *arg, int64_t *revision)
{
    size_t end_len, start_len = dir_len ? dir_len : 1;
    char *end = key_prefix_end(dir_key, dir_len, &end_len);
    char *start = malloc(start_len + 1);
    subtree st = {.cap = 16, .emit = emit, .arg = arg};
    st.stack = malloc(st.cap * sizeof *st.stack);
    listing *root = calloc(1, sizeof *root);
    char *root_dir = malloc(dir_len + 1);
    int rc = end && start && st.stack && root && root_dir ? 0 : ENOMEM;
    if (rc == 0) {
        memcpy(start, dir_key, dir_len);
        start[dir_len] = 0; /* dir_len 0: the whole key space starts at "\0" */
        memcpy(root_dir, dir_key, dir_len);
        root->refs = 1;
        st.stack[st.depth++] =
            (builder){.l = root, .dir = root_dir, .dir_len = dir_len, .at_root = is_root};
        root = NULL;
        root_dir = NULL;
    }
    int64_t limit = PAGE_MAX_KEYS;
    size_t keys = 0, bytes = 0;
    etcdc_error err = {0};
    bool more = true;
    while (rc == 0 && more) {
        etcdc_range_req req = {.key = start,
                               .key_len = start_len,
                               .range_end = end,
                               .range_end_len = end_len,
                               .limit = limit,
                               .revision = st.revision};
        etcdc_kvs page = {0};
        etcdc_code code = etcdc_range(g_fs.client, &req, &page, &err);
        stats_inc(STAT_listing_pages);
        if (code == ETCDC_ERR_TOO_LARGE && limit > 1) {
            limit /= 2;
            continue;
        }
        if (code != ETCDC_OK) {
            rc = code == ETCDC_ERR_NO_MEMORY ? ENOMEM : EIO; /* the caller lists the usual way */
            break;
        }
        if (!st.revision) {
            st.revision = page.revision;
            if (page.total > 0 && (size_t)page.total > max_keys)
                rc = EFBIG; /* too big to hold: list one directory at a time */
        }
        keys += page.count;
        bytes += page_bytes(&page);
        if (rc == 0 && (keys > max_keys || bytes > max_bytes))
            rc = EFBIG;
        more = page.more && page.count > 0;
        if (rc == 0 && more) {
            const etcdc_kv *last = &page.kvs[page.count - 1];
            free(start);
            start = key_join(last->key, last->key_len, "", 1, NULL, 0, &start_len);
            if (!start)
                rc = ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < page.count; i++)
            rc = subtree_feed(&st, &page.kvs[i]);
        etcdc_kvs_clear(&page);
    }
    /* On failure the directories still open are dropped; those already left were complete
     * (a directory's keys are contiguous) and have been emitted. */
    while (st.depth > 0) {
        if (rc) {
            builder *b = &st.stack[--st.depth];
            listing_unref(b->l);
            builder_done(b);
            free((char *)b->dir);
        } else {
            subtree_pop(&st);
        }
    }
    *revision = st.revision;
    free(st.stack);
    free(root_dir);
    listing_unref(root);
    free(start);
    free(end);
    return rc;
}
