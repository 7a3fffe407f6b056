/* key_guards.c - keeping the key layout a tree inside each operation's Txn (see key_guards.h). */
#include "key_guards.h"

#include <stdlib.h>
#include <string.h>

#include "attrs.h"
#include "listing.h"
#include "witness.h"

/* If(the parent directory of key still exists): CREATE > 0 over [parent/, end) holds only when
 * some key lies below the parent (a range without keys compares a create_revision of 0). The
 * mount root always exists: no compare there. */
void txn_if_parent_exists(etcdc_txn *t, const char *key, size_t len)
{
    txn_if_parent_exists_fast(t, key, len, NULL);
}

void txn_if_parent_exists_fast(etcdc_txn *t, const char *key, size_t len, bool *witnessed)
{
    size_t plen = names_last_component(key, len, 0);
    if (witnessed)
        *witnessed = false;
    if (plen <= g_fs.prefix_len)
        return;
    size_t wlen = 0;
    char *w = witnessed ? witness_get(key, plen, &wlen) : NULL;
    if (w) {
        /* One key known to exist below the parent: etcd reads one key, not the directory. */
        *witnessed = etcdc_txn_if(t, w, wlen, ETCDC_CMP_CREATE, ETCDC_GREATER, 0) == ETCDC_OK;
        free(w);
        return;
    }
    size_t end_len;
    char *end = key_prefix_end(key, plen, &end_len);
    if (end)
        etcdc_txn_if_range(t, key, plen, end, end_len, ETCDC_CMP_CREATE, ETCDC_GREATER, 0);
    else
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    free(end);
}

/* Adds [from, to) (to NULL: up to end) to the compares "nothing there", skipping empty ranges. */
static void if_nothing_in(etcdc_txn *t, const char *from, size_t from_len, const char *to,
                          size_t to_len)
{
    size_t n = from_len < to_len ? from_len : to_len;
    int c = memcmp(from, to, n);
    if (c < 0 || (c == 0 && from_len < to_len))
        etcdc_txn_if_range(t, from, from_len, to, to_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
}

/* if_nothing_in over [from, to) but for the records of name (its "\0attrs" and "\0dirattrs"
 * keys, which the operation moves or drops with it). */
static void if_nothing_in_but_records(etcdc_txn *t, const char *from, size_t from_len,
                                      const char *to, size_t to_len, const char *name,
                                      size_t name_len)
{
    size_t f_len, d_len;
    char *f = attrs_key(name, name_len, ATTRS_FILE, &f_len);
    char *d = f ? key_join(name, name_len, "\0dirattrs", 9, NULL, 0, &d_len) : NULL;
    if (!f || !d) {
        etcdc_txn_set_error(t, ETCDC_ERR_NO_MEMORY);
    } else {
        /* name\0attrs < name\0dirattrs; each record key ends where the key + NUL begins */
        f[f_len] = 0;
        d[d_len] = 0;
        if_nothing_in(t, from, from_len, f, f_len);
        if_nothing_in(t, f, f_len + 1, d, d_len);
        if_nothing_in(t, d, d_len + 1, to, to_len);
    }
    free(f);
    free(d);
}

bool txn_keep_parent(etcdc_txn *t, const resolved *r, bool subtree, const char *witness,
                     size_t witness_len)
{
    if (r->at_root || r->file_len == r->dir_len)
        return false; /* the root always exists; "%" is the marker itself and stays */
    size_t end_len, after_len, sub_end_len = 0;
    char *end = key_prefix_end(r->dir_key, r->dir_len, &end_len);
    char *after = key_join(r->file_key, r->file_len, "", 1, NULL, 0, &after_len);
    char *sub_end =
        subtree && r->sub_key ? key_prefix_end(r->sub_key, r->sub_len, &sub_end_len) : NULL;
    etcdc_txn *inner = etcdc_txn_new();
    bool inside = r->file_len > r->dir_len && !memcmp(r->file_key, r->dir_key, r->dir_len);
    /* The directory holds nothing but what this operation removes: [dir, name),
     * (name, name/) or (name, end), and [name/ end, end). The compares see the state before
     * the outer Txn's operations (etcd evaluates nested compares first). */
    if (!end || !after || (subtree && r->sub_key && !sub_end)) {
        etcdc_txn_set_error(inner, ETCDC_ERR_NO_MEMORY); /* the nest carries it to t */
    } else if (!inside) {
        if_nothing_in(inner, r->dir_key, r->dir_len, end, end_len);
    } else {
        if_nothing_in(inner, r->dir_key, r->dir_len, r->file_key, r->file_len);
        if (sub_end)
            if_nothing_in_but_records(inner, after, after_len, r->sub_key, r->sub_len, r->file_key,
                                      r->file_len);
        else
            if_nothing_in_but_records(inner, after, after_len, end, end_len, r->file_key,
                                      r->file_len);
        if (sub_end)
            if_nothing_in(inner, sub_end, sub_end_len, end, end_len);
    }
    etcdc_txn_put(inner, ETCDC_THEN, r->dir_key, r->dir_len, "", 0, 0);
    if (witness) {
        /* If(the witness is there) the directory keeps it: nothing to do; Else the compares. */
        etcdc_txn *proof = etcdc_txn_new();
        etcdc_txn_if(proof, witness, witness_len, ETCDC_CMP_CREATE, ETCDC_GREATER, 0);
        etcdc_txn_nest(proof, ETCDC_ELSE, inner);
        inner = proof;
    }
    etcdc_txn_nest(t, ETCDC_THEN, inner); /* takes inner, or its error */
    free(end);
    free(after);
    free(sub_end);
    return true;
}

bool keep_parent_settle(const etcdc_txn_result *res, const char *witness, size_t witness_len)
{
    const etcdc_op_result *last = res->op_count ? &res->ops[res->op_count - 1] : NULL;
    const etcdc_txn_result *nest =
        res->succeeded && last && last->type == ETCDC_OP_TXN ? last->txn : NULL;
    if (nest && witness) { /* If(witness) Else(the compares' Txn) */
        if (nest->succeeded)
            return false; /* the witness stands: nothing was written */
        witness_forget_dir(witness, witness_len);
        const etcdc_op_result *inner = nest->op_count ? &nest->ops[0] : NULL;
        nest = inner && inner->type == ETCDC_OP_TXN ? inner->txn : NULL;
    }
    return nest && nest->succeeded;
}

char *keep_parent_witness(node *dir, const resolved *r, size_t *len)
{
    char *w = witness_get(r->dir_key, r->dir_len, len);
    /* not r's key, nor an attribute record ("name\0kind"), which may be r's and go with it */
    if (w && !(*len == r->file_len && !memcmp(w, r->file_key, *len)) &&
        !memchr(w + r->dir_len, '\0', *len - r->dir_len))
        return w;
    free(w);
    w = NULL;
    /* A name this mount changed since the listing may be gone (removed by an rm going the
     * other way): not a witness. A few tries from the end; else the compares decide. */
    listing *l = node_cached_listing(dir);
    for (size_t i = l ? l->n : 0, tries = 0; i > 0 && !w && tries < 64; i--) {
        const listing_entry *e = &l->e[i - 1];
        bool other = e->comp_len != r->comp_len || memcmp(e->comp, r->comp, e->comp_len);
        if (e->is_dir || !other)
            continue;
        tries++;
        if (!node_listing_name_is_changed(dir, e->comp, e->comp_len) &&
            (w = key_join(r->dir_key, r->dir_len, e->comp, e->comp_len, NULL, 0, len)))
            witness_note(w, *len);
    }
    listing_unref(l);
    return w;
}
