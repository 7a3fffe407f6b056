/*
 * inode.h - the node table: FUSE node ids <-> keys, lookup counts, attributes, cached values
 * and directory listings.
 *
 * Identity: a node is (key, type). A file node's key is the key itself; a directory node's key
 * is its prefix ending in '/' (the root's is the mount prefix). A key that is both a value and
 * a prefix therefore has two nodes: the directory, and the file reached as "dir/%value".
 *
 * Locks: `table_mu` (inode.c) protects the indexes and every field marked [table]; it is a
 * leaf lock, held briefly and never during an etcd request. Each node's `mu` protects the
 * fields marked [mu] and may be held during an etcd request that concerns that node (which
 * serialises writers of one file). Order: node mu before table_mu, never the other way round;
 * never two node mutexes at once, except rename, which locks src and dst in address order.
 *
 * Cache coherence: the watch thread (notify.c) finds nodes by key with node_find and updates
 * them under their mu like any request does; kernel invalidations are queued to notify.c's
 * own thread, never sent from a request handler for the same node.
 */
#ifndef ETCDFS_INODE_H
#define ETCDFS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "attrs.h"
#include "fs.h"
#include "small_lock.h"

typedef enum node_type {
    NODE_DIR,
    NODE_FILE,
    NODE_STATS_DIR,
    NODE_STATS_FILE,
    NODE_PAST_AT,   /* .etcdfs/at (past.h) */
    NODE_PAST_DIR,  /* a directory as of a past revision, key "<rev>:<prefix>" */
    NODE_PAST_FILE, /* a file as of a past revision, key "<rev>:<key>" */
} node_type;

/* One entry of a directory listing. A listing of 100,000 files keeps 100,000 of these, so an
 * entry is one small struct and one allocation: `comp` holds the component, NUL, the value
 * and its NUL when has_kv, and the display name with its NUL when it differs from the
 * component (own_name). Only `comp` is freed; listing_entry_name and listing_entry_value find
 * the rest. */
typedef struct listing_entry {
    char *comp; /* the key component (raw bytes) */
    size_t value_len;
    int64_t mod_revision;    /* of the entry's key/value (has_kv) */
    int64_t create_revision; /* of that key (file), or of the directory's marker (0: none) */
    uint32_t rec;            /* its attribute record: listing.recs[rec - 1]; 0: none */
    uint32_t comp_len;
    uint16_t name_len;
    bool is_dir;
    bool has_kv;      /* file: always; dir: the directory's own key also holds a value */
    bool value_error; /* encryption on and the stored value did not open (etcdc_kv's flag) */
    bool own_name;    /* the display name is not the component: it follows in the block */
} listing_entry;

/* The entry's value: a file's (NUL-terminated), a directory's own key's when has_kv; else
 * NULL. */
static inline char *listing_entry_value(const listing_entry *e)
{
    return e->has_kv ? e->comp + e->comp_len + 1 : NULL;
}
/* The entry's display name, NUL-terminated. */
static inline const char *listing_entry_name(const listing_entry *e)
{
    if (!e->own_name)
        return e->comp;
    return e->comp + e->comp_len + 1 + (e->has_kv ? e->value_len + 1 : 0);
}

/* The entry's key/value as etcdc_kv (key NULL; value and revision borrowed from e), for the
 * functions that take one (node_apply_kv_locked). */
etcdc_kv listing_entry_kv(const listing_entry *e);

/* An attribute record as a listing or a lookup read it (docs/design-attributes.md). */
typedef struct attrs_seen {
    attrs a;
    int64_t rev;     /* the record key's mod_revision (or the revision it was seen absent at) */
    int64_t created; /* the record key's create_revision (0: not known) */
    bool present;    /* false: the record is known absent as of rev */
    bool local;      /* in a node: set here (chmod of a file whose content is not written yet),
                      * to be written with the content; news from etcd does not replace it */
} attrs_seen;

/* A snapshot of one directory, shared (refcounted) by the directory node and open handles. */
typedef struct listing {
    int refs;         /* atomic */
    listing_entry *e; /* sorted by component */
    size_t n;
    size_t bytes;       /* accounted in cache_account_meta (cache.h) */
    int64_t revision;   /* store revision of the snapshot */
    int64_t fetched_ns; /* when it was read */
    int64_t marker_mod; /* mod_revision of the marker key "<dir>/", 0 = none */
    bool self_present;  /* the directory's own key (without '/') holds a value */
    etcdc_kv self;      /* ... that key/value */
    attrs_seen *recs;   /* the records of entries (listing_entry.rec) */
    uint32_t nrecs;
} listing;

/* What a file node needs only once its value is held or it was opened: one allocation on first
 * need (node_file_part_locked), freed with the value when the cache evicts it from an idle
 * node. A file only listed (most of a large tree) has none. All fields [mu]. */
typedef struct file_part {
    char *data; /* cached or locally modified content */
    size_t cap;
    int64_t kernel_rev; /* mod_rev of the content the kernel was last given at an open (or
                         * wrote itself): when mod_rev differs at the next open (the watch
                         * updated the cache in between), the kernel's pages and size are stale
                         * and open drops them (0: unknown, so they are dropped) */
    int64_t base_rev;   /* --conflict-check: the mod_revision the local changes are based on
                         * (the oldest one seen at open by a handle that changed them); the
                         * write-back requires etcd to still hold it (0: no key) */
    size_t trunc_len;   /* after an O_TRUNC open, until the first write or truncate: the length
                         * of the content it replaced, still in data (see op_read) */
    int64_t used_ns;    /* last open or read: what the value cache evicts first (cache.c) */
    int open_count;
} file_part;

/* What a directory node needs besides the node: allocated with it (directories are few).
 * All fields [mu]. */
typedef struct dir_part {
    listing *list;                  /* last listing, may be NULL */
    struct name_set *changed_names; /* names this mount created or rewrote in the directory
                                     * since `list` was read: `list` no longer shows the
                                     * directory as it is, but it and these names together
                                     * still prove every other name absent */
    uint32_t list_gen;  /* changes at every node_drop_listing: a listing read before a change in
                         * the directory is not kept after it */
    int64_t marker_put; /* revision at which this mount last wrote the directory's marker (its
                         * last entry went): rmdir's guess of the marker's revision */
} dir_part;

/* Fields are ordered so that the struct has no holes and takes 128 bytes with malloc's header
 * (a node per cached key: 100,000 keys are 100,000 nodes); what only opened files or
 * directories need lives in their part. The flag bits share their bytes with nothing but each
 * other (C11: a bit-field run is one memory location, apart from its non-bit-field
 * neighbours), and all of them are guarded by `mu`. */
typedef struct node {
    fuse_ino_t ino; /* immutable */
    uint8_t type;   /* immutable, a node_type */
    bool indexed;   /* [table] reachable by key (false once unlinked or replaced) */
    bool known : 1; /* [mu] data and mod_rev reflect etcd as of validated_ns, or local state */
    bool local_content : 1; /* [mu] the content is what this mount wrote (stored since), not a
                             * version read from etcd: read views see it at once, as on a local
                             * filesystem (a revision cannot tell: a rename gives the same content
                             * a new one) */
    bool dirty : 1;         /* [mu] local changes not yet written to etcd */
    bool has_base : 1;      /* [mu] base_rev is set (while dirty; otherwise the base is mod_rev) */
    bool written : 1;  /* [mu] write() or truncate since the last write-back, not just O_TRUNC */
    bool too_big : 1;  /* [mu] a write failed with EFBIG: the changes are dropped, not stored cut */
    bool pending : 1;  /* [mu] created here (O_CREAT), not yet in etcd */
    bool unlinked : 1; /* [mu] removed: buffered data is discarded at release */
    bool renamed_elsewhere : 1; /* [mu] its key was moved by the replay of another host's rename:
                                 * the kernel may still reach it by the old name (see op_open) */
    bool value_unread : 1;      /* [mu] with known: size, mod_rev and create_rev are etcd's, but
                                 * the value was not kept (no data): a listing showed the file
                                 * and nothing opened it since. Whatever needs the bytes reads
                                 * the key first (node_value_held_locked) */
    unsigned refs;              /* [table] in-flight users (node_get / node_put) */
    char *key;                  /* [table] see above; changes on rename */
    uint32_t key_len;           /* [table] */
    small_lock mu;              /* node_lock: 4 bytes, where a pthread mutex takes 40 */
    uint64_t nlookup;           /* [table] kernel references */
    struct node *next_ino, *next_key; /* [table] hash chains */

    /* files [mu] */
    size_t size;
    int64_t mod_rev;      /* of the cached content; 0 = not in etcd */
    int64_t as_of;        /* the store revision that content (or absence) is known at: news
                           * about the key at an older revision is old news (0 = none yet) */
    int64_t validated_ns; /* last confirmation from etcd (0 = never) */
    /* files and directories [mu] */
    int64_t mtime_ns;     /* synthesized (docs/semantics.md): node_mtime, node_set_mtime */
    int64_t create_rev;   /* create_revision of the key (file) or of the marker (directory) as
                           * last seen: what an attribute record must name; 0: none or unknown */
    attrs_seen *rec;      /* the entry's attribute record as last seen; NULL: none seen */
    union {               /* by type (node_is_dir_type): */
        file_part *fpart; /* [mu] files: NULL until needed (node_file_part_locked) */
        dir_part *dpart;  /* immutable pointer, [mu] contents: directories, never NULL */
    };
} node;

/* Whether nodes of this type are directories (they have a dir_part; others a file_part). */
static inline bool node_is_dir_type(node_type t)
{
    return t == NODE_DIR || t == NODE_STATS_DIR || t == NODE_PAST_AT || t == NODE_PAST_DIR;
}
/* The file's part if it has one (under n->mu); NULL for directories and files without. */
static inline file_part *node_fpart(const node *n)
{
    return node_is_dir_type((node_type)n->type) ? NULL : n->fpart;
}
/* The directory's part; NULL for a file. */
static inline dir_part *node_dpart(const node *n)
{
    return node_is_dir_type((node_type)n->type) ? n->dpart : NULL;
}
/* The file's part, allocated when it has none yet (under n->mu). NULL: no memory (or a
 * directory). */
file_part *node_file_part_locked(node *n);
/* Frees the file's part, content included (under n->mu; nothing may use them: no handle
 * open, nothing dirty or pending): kernel_rev goes too, so the next open drops the kernel's
 * pages. */
void node_forget_content_locked(node *n);
/* The cached content (under n->mu): NULL when none is held. */
static inline char *node_data(const node *n)
{
    const file_part *p = node_fpart(n);
    return p ? p->data : NULL;
}
/* Kernel handles open on the file (under n->mu). */
static inline int node_open_count(const node *n)
{
    const file_part *p = node_fpart(n);
    return p ? p->open_count : 0;
}
/* The mtime shown when no attribute record gives one. */
struct timespec node_mtime(const node *n);
/* Sets it (times outside what 64-bit nanoseconds hold, years 1678 to 2262, are clamped). */
void node_set_mtime(node *n, struct timespec t);
/* Sets it to now. */
void node_touch_mtime(node *n);

/* A node's mutex (n->mu). One node's at a time, except where a comment says otherwise (a
 * file rename takes two, in address order). */
static inline void node_lock(node *n)
{
    small_lock_acquire(&n->mu);
}
static inline void node_unlock(node *n)
{
    small_lock_release(&n->mu);
}

void table_init(const char *root_key, size_t root_len);
/* Frees every node (at exit, after the session ended). */
void table_destroy(void);

/* The node with this id, with a reference (node_put), or NULL. */
node *node_get(fuse_ino_t ino);
void node_put(node *n);
/* The indexed node (key, type), creating it when absent; with a reference. NULL: no memory. */
node *node_obtain(const void *key, size_t key_len, node_type type);
/* The indexed node (key, type) if it exists, with a reference. */
node *node_find(const void *key, size_t key_len, node_type type);
/* Whether a directory node is indexed at key + "/": the key is then that directory's own value
 * (a key that is both a value and a prefix), shown as its "%value" entry. */
bool node_is_directory_value(const char *key, size_t key_len);
/* One more kernel reference (called right before replying with the entry). */
void node_ref_kernel(node *n);
/* The kernel dropped `count` references. */
void node_forget(fuse_ino_t ino, uint64_t count);
/* A malloc'ed copy of the node's current key. */
char *node_key(node *n, size_t *len);
/* Whether lookups by key find the node (false once unlinked, replaced or moved away). */
bool node_indexed(node *n);
/* The node is gone from etcd's namespace: lookups by key no longer find it. */
void node_unindex(node *n);
/* The file node moved to new_key; a node previously indexed there is unindexed. */
int node_rekey(node *n, const void *new_key, size_t new_len);
/* Every indexed node whose key starts with old_prefix now starts with new_prefix (nodes indexed
 * at the new prefix before are unindexed). Returns the moved nodes, each with a reference
 * (node_put them, free the array); NULL when out of memory (nothing moved). */
node **node_rekey_prefix(const void *old_prefix, size_t old_len, const void *new_prefix,
                         size_t new_len, size_t *count);
/* The nodes of name a (key a, and every key below a/) and of name b trade places: after a
 * RENAME_EXCHANGE each inode keeps its content under the other name. Returns the *na nodes
 * that were a's followed by the *nb that were b's, with references, as node_rekey_prefix. */
node **node_swap_names(const char *a, size_t a_len, const char *b, size_t b_len, size_t *na,
                       size_t *nb);
/* Every indexed node, each with a reference (node_put them), in a malloc'ed array; NULL on
 * allocation failure. */
node **node_all(size_t *count);
/* Calls fn for every indexed node (with a reference held during the call; no lock held). */
void node_for_each(void (*fn)(node *n, void *arg), void *arg);
/* Whether a file created here and not yet written to etcd lies below prefix (a directory
 * holding one is not empty, though etcd has no key of it). */
bool node_pending_below(const char *prefix, size_t len);
/* Number of file nodes created here and not yet written to etcd. */
int node_pending_count(void);
void node_pending_add(int delta);

/* Applies a key/value that etcd reported as of store revision as_of (a read's header revision,
 * or a watch event's own revision) to a file node (under n->mu). Ignored while the node has
 * local changes, and when the node already reflects a later revision: results and events
 * commute (docs/design-node-table.md). Returns true when the content changed. */
bool node_apply_kv_locked(node *n, const etcdc_kv *kv, int64_t as_of, int64_t at_ns);
/* The same for a key/value a directory listing showed. When the node holds no value yet and
 * opens_ask_etcd (every open makes a round trip anyway: close-to-open and strict), only size and
 * revisions are kept, not a second copy of the value the listing holds (value_unread): the
 * open reads it in the round trip it makes regardless. */
bool node_apply_listed_kv_locked(node *n, const etcdc_kv *kv, int64_t as_of, int64_t at_ns,
                                 bool opens_ask_etcd);
/* Whether data holds the file's content, as far as it is known (under n->mu): local changes,
 * or a value read from etcd and kept. False for a value_unread or evicted node. */
bool node_value_held_locked(const node *n);
/* The key is absent in etcd as of store revision as_of (under n->mu); same rules. */
void node_apply_absent_locked(node *n, int64_t as_of, int64_t at_ns);
/* This mount stored the node's current content at revision rev (under n->mu). */
void node_committed_locked(node *n, int64_t rev);
/* A subtree move committed at revision rev carried the key whose value was at old_mod to the
 * node's new key (under n->mu): a node that reflected that value now reflects rev; one that
 * did not forgets its content (the next access reads it). */
void node_moved_locked(node *n, int64_t old_mod, int64_t rev);
/* Replaces the file content (under n->mu). Returns 0 or ENOMEM. */
int node_set_data_locked(node *n, const void *data, size_t len);
/* Resizes (zero-filling) the content (under n->mu). Returns 0, ENOMEM, or EIO when the content
 * to keep is not held (value_unread: the caller must read the key first). */
int node_resize_locked(node *n, size_t len);

/* The node's attribute record is `a` (NULL: absent) as of revision rev (under n->mu): older
 * news than what the node holds is ignored. Returns true when what stat shows may change. */
bool node_set_record_locked(node *n, const attrs *a, int64_t rev);
/* The same, with the record key's create_revision (attrs_applies). */
bool node_set_record_seen_locked(node *n, const attrs *a, int64_t rev, int64_t created);
/* A record set here for a file whose content is not written yet (under n->mu): it applies at
 * once and is written with the content (attrs_store.h). Returns 0 or ENOMEM. */
int node_set_local_record_locked(node *n, const attrs *a);
/* The record that applies to the node as it is (under n->mu): NULL when none does (absent, an
 * orphan of an earlier key of the name, or of a type the node cannot be). *mtime_applies:
 * whether its mtime describes the current content. */
const attrs *node_record_locked(const node *n, bool *mtime_applies);

/* Attributes of a node (for files: under n->mu, or pass locked=false to take it). */
void node_fill_attr(node *n, struct stat *st, bool locked);

/* Directory listings (a listing's references: listing.h). */
/* The directory's listing if it was read within the cache timeout and still shows the
 * directory as it is (with a reference). */
listing *node_fresh_listing(node *dir);
/* The directory's listing if it was read within the cache timeout and this mount changed no
 * such name since: what it shows of that name (entry or absence) is as good as a fresh
 * snapshot's, whatever other names this mount changed (with a reference; NULL: none). */
listing *node_listing_for_name(node *dir, const void *comp, size_t comp_len);
/* Whether this mount changed the name in dir since dir's listing was read (created, wrote,
 * removed or renamed it): the listing's entry of it may be gone. */
bool node_listing_name_is_changed(node *dir, const void *comp, size_t comp_len);
/* This mount wrote dir's marker at rev (an operation took the directory's last entry). */
void node_note_marker_put(node *dir, int64_t rev);
/* The best guess of the revision of dir's marker key (0: none): the later of what its listing
 * read within the cache timeout shows and the last marker this mount wrote. A guess only: the
 * compare that uses it is decided by etcd. */
int64_t node_marker_guess(node *dir);
/* The listing dir holds, however old (with a reference; NULL: none). */
listing *node_cached_listing(node *dir);
/* Whether the directory's listing, read within the cache timeout, proves the name absent: it
 * does not show it and this mount changed no such name since (the caller knows that the watch
 * runs, so that another host's change in the directory has dropped the listing). */
bool node_listing_proves_absent(node *dir, const void *comp, size_t comp_len);
/* This mount created the name in the directory, or rewrote its key, at a known revision: the
 * listing stops serving as a snapshot but keeps proving other names absent (instead of being
 * dropped). Call inside the change's commit section, so the watch sees it before the event. */
void node_listing_name_changed(node *dir, const void *comp, size_t comp_len);
/* A watch event (another host's change, or one of this mount's that the listing does not
 * reflect) created or removed (is_delete) the entry comp of dir, and nothing else the
 * listing names: like node_listing_name_changed (the notify thread tells prefetch.h itself),
 * except that the listing is dropped instead when it already carries many such names, or when
 * the event deleted a file it lists (whose value it would keep holding). */
void node_listing_name_changed_for_event(node *dir, const void *comp, size_t comp_len,
                                         bool is_delete);
/* Whether the directory's listing already accounts for an event of store revision rev about
 * the name: it was read at rev or later, or (own: this mount made that change) the name is one
 * this mount changed since. The event then needs not drop it. */
bool node_listing_reflects(node *dir, const void *comp, size_t comp_len, int64_t rev, bool own);
/* Whether the directory's listing holds comp as a directory that no change of this mount
 * touched since: a key created below it then changes nothing the listing names. */
bool node_listing_holds_dir(node *dir, const void *comp, size_t comp_len);
/* The directory was just created empty by this mount at store revision rev (its marker only):
 * its listing is known without asking. */
void node_listing_set_empty(node *dir, int64_t rev);
/* The directory's listing generation, read before fetching a listing. */
uint32_t node_listing_gen(node *dir);
/* Keeps l (takes over the caller's reference) as the directory's listing unless the directory
 * changed since generation gen was read (then l is dropped: it may predate the change). */
void node_offer_listing(node *dir, listing *l, uint32_t gen);
/* Forget the directory's listing (after a local change in it; also what was read ahead for
 * it, prefetch.h). */
void node_drop_listing(node *dir);
/* Forget the directory's listing because a watch event changed the directory (the notify
 * thread tells prefetch.h itself). */
void node_drop_listing_for_event(node *dir);
/* The entry with this component, or NULL. */
const listing_entry *listing_find(const listing *l, const void *comp, size_t comp_len);

#endif
