/*
 * memfs_ll.c - a minimal in-memory FUSE filesystem (low-level API), the benchmark's "FUSE
 * limit": what a daemon costs that answers every request from memory at once.
 *
 *   memfs_ll [--like-etcdfs] [-f] MOUNTPOINT
 *
 * It makes the same choices towards the kernel as etcdfs (bench/fs_bench.py compares the two):
 * 1 s entry and attribute timeouts, readdirplus, no writeback cache, keep_cache on open, the
 * multi-threaded session loop, extended attribute requests answered "none" (as etcdfs answers
 * those outside user.*). Files, directories, create/write/truncate/unlink/rmdir; no rename or
 * links (the benchmark does not use them). One mutex guards everything.
 *
 * --like-etcdfs also answers a read-only open the way etcdfs must for its promises: direct I/O
 * (a descriptor reads one whole version, so every read is a READ request, not the page cache)
 * and a FLUSH at every close (etcdfs stores a file's changes and ends fcntl locks there). The
 * floor of etcdfs's warm open/read/close is this mode's rate, not the plain one's.
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct mnode {
    fuse_ino_t ino, parent;
    char *name;
    bool dir;
    char *data;
    size_t size, cap;
    struct mnode *hnext; /* (parent, name) hash chain */
} mnode;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool like_etcdfs; /* set once in main, before the session starts */
static mnode **nodes;    /* by inode number; NULL = removed */
static size_t n_nodes, cap_nodes;
static mnode **table; /* hash of (parent, name) */
static size_t table_size = 1 << 20;

static size_t hash(fuse_ino_t parent, const char *name)
{
    size_t h = 1469598103934665603ULL ^ parent;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h & (table_size - 1);
}

static mnode *find(fuse_ino_t parent, const char *name)
{
    for (mnode *n = table[hash(parent, name)]; n; n = n->hnext)
        if (n->parent == parent && !strcmp(n->name, name))
            return n;
    return NULL;
}

static mnode *get(fuse_ino_t ino)
{
    return ino < n_nodes ? nodes[ino] : NULL;
}

static mnode *add(fuse_ino_t parent, const char *name, bool dir)
{
    if (n_nodes == cap_nodes) {
        cap_nodes = cap_nodes ? cap_nodes * 2 : 1024;
        nodes = realloc(nodes, cap_nodes * sizeof *nodes);
    }
    mnode *n = calloc(1, sizeof *n);
    n->ino = n_nodes;
    n->parent = parent;
    n->name = strdup(name);
    n->dir = dir;
    nodes[n_nodes++] = n;
    size_t h = hash(parent, name);
    n->hnext = table[h];
    table[h] = n;
    return n;
}

static void drop(mnode *n)
{
    for (mnode **p = &table[hash(n->parent, n->name)]; *p; p = &(*p)->hnext)
        if (*p == n) {
            *p = n->hnext;
            break;
        }
    nodes[n->ino] = NULL;
    free(n->name);
    free(n->data);
    free(n);
}

static void fill_attr(const mnode *n, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = n->ino;
    st->st_mode = n->dir ? S_IFDIR | 0755 : S_IFREG | 0644;
    st->st_nlink = n->dir ? 2 : 1;
    st->st_size = (off_t)n->size;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
}

static void fill_entry(const mnode *n, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = n->ino;
    e->attr_timeout = 1.0;
    e->entry_timeout = 1.0;
    fill_attr(n, &e->attr);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    conn->max_write = 1 << 20;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&mu);
    mnode *n = find(parent, name);
    struct fuse_entry_param e;
    if (n)
        fill_entry(n, &e);
    pthread_mutex_unlock(&mu);
    if (n)
        fuse_reply_entry(req, &e);
    else
        fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&mu);
    mnode *n = get(ino);
    struct stat st;
    if (n)
        fill_attr(n, &st);
    pthread_mutex_unlock(&mu);
    if (n)
        fuse_reply_attr(req, &st, 1.0);
    else
        fuse_reply_err(req, ENOENT);
}

static int resize(mnode *n, size_t size)
{
    if (size > n->cap) {
        char *d = realloc(n->data, size);
        if (!d)
            return ENOMEM;
        n->data = d;
        n->cap = size;
    }
    if (size > n->size)
        memset(n->data + n->size, 0, size - n->size);
    n->size = size;
    return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&mu);
    mnode *n = get(ino);
    int rc = n ? 0 : ENOENT;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
        rc = n->dir ? EISDIR : resize(n, (size_t)attr->st_size);
    struct stat st;
    if (rc == 0)
        fill_attr(n, &st);
    pthread_mutex_unlock(&mu);
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_attr(req, &st, 1.0);
}

static void make(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir,
                 struct fuse_file_info *fi)
{
    pthread_mutex_lock(&mu);
    mnode *p = get(parent);
    int rc = !p ? ENOENT : !p->dir ? ENOTDIR : find(parent, name) ? EEXIST : 0;
    struct fuse_entry_param e;
    if (rc == 0)
        fill_entry(add(parent, name, dir), &e);
    pthread_mutex_unlock(&mu);
    if (rc)
        fuse_reply_err(req, rc);
    else if (fi) {
        fi->keep_cache = 1;
        fuse_reply_create(req, &e, fi);
    } else
        fuse_reply_entry(req, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    make(req, parent, name, true, NULL);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    make(req, parent, name, false, NULL);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)mode;
    make(req, parent, name, false, fi);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
    pthread_mutex_lock(&mu);
    mnode *n = find(parent, name);
    int rc = !n ? ENOENT : n->dir != dir ? (dir ? ENOTDIR : EISDIR) : 0;
    if (rc == 0 && dir)
        for (size_t i = 0; i < n_nodes; i++)
            if (nodes[i] && nodes[i]->parent == n->ino && nodes[i] != n) {
                rc = ENOTEMPTY;
                break;
            }
    if (rc == 0)
        drop(n); /* inode numbers are never reused, so a late forget/getattr is just ENOENT */
    pthread_mutex_unlock(&mu);
    fuse_reply_err(req, rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, true);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    pthread_mutex_lock(&mu);
    mnode *n = get(ino);
    int rc = !n ? ENOENT : n->dir ? EISDIR : 0;
    if (rc == 0 && (fi->flags & O_TRUNC))
        n->size = 0;
    pthread_mutex_unlock(&mu);
    fi->keep_cache = 1;
    if (like_etcdfs && (fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC)) {
        fi->keep_cache = 0;
        fi->direct_io = 1;
    }
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&mu);
    mnode *n = get(ino);
    char *copy = NULL;
    size_t len = 0;
    if (n && (size_t)off < n->size) {
        len = n->size - (size_t)off < size ? n->size - (size_t)off : size;
        copy = malloc(len);
        memcpy(copy, n->data + off, len);
    }
    pthread_mutex_unlock(&mu);
    if (!n)
        fuse_reply_err(req, ENOENT);
    else
        fuse_reply_buf(req, copy, len);
    free(copy);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&mu);
    mnode *n = get(ino);
    int rc = n ? 0 : ENOENT;
    if (rc == 0 && (size_t)off + size > n->size)
        rc = resize(n, (size_t)off + size);
    if (rc == 0)
        memcpy(n->data + off, buf, size);
    pthread_mutex_unlock(&mu);
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_write(req, size);
}

typedef struct dirbuf {
    char *p;
    size_t size;
    size_t *ends; /* end offset of each entry: replies are cut at entry boundaries */
    size_t count;
} dirbuf;

/* The whole listing is built at opendir (like etcdfs's fresh listing per opendir); readdir
 * serves slices of it. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    dirbuf *b = calloc(1, sizeof *b);
    size_t cap = 4096, ecap = 64;
    b->p = malloc(cap);
    b->ends = malloc(ecap * sizeof *b->ends);
    pthread_mutex_lock(&mu);
    mnode *d = get(ino);
    for (size_t i = 0; d && i < n_nodes; i++) {
        mnode *n = nodes[i];
        if (!n || n->parent != ino || n == d)
            continue;
        struct fuse_entry_param e;
        fill_entry(n, &e);
        size_t need = fuse_add_direntry_plus(req, NULL, 0, n->name, &e, 0);
        while (b->size + need > cap)
            b->p = realloc(b->p, cap *= 2);
        fuse_add_direntry_plus(req, b->p + b->size, need, n->name, &e, (off_t)(b->size + need));
        b->size += need;
        if (b->count == ecap)
            b->ends = realloc(b->ends, (ecap *= 2) * sizeof *b->ends);
        b->ends[b->count++] = b->size;
    }
    pthread_mutex_unlock(&mu);
    if (!d) {
        free(b->ends);
        free(b->p);
        free(b);
        fuse_reply_err(req, ENOENT);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)b;
    fuse_reply_open(req, fi);
}

/* Entries given by readdirplus are looked up (nlookup +1) by the kernel; plain readdir is not
 * used (readdirplus is always on), so the same buffer serves both. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)ino;
    dirbuf *b = (dirbuf *)(uintptr_t)fi->fh;
    if ((size_t)off >= b->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t lo = 0, hi = b->count; /* first entry that ends after off */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->ends[mid] <= (size_t)off)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = (size_t)off;
    for (size_t i = lo; i < b->count && b->ends[i] - (size_t)off <= size; i++)
        end = b->ends[i];
    fuse_reply_buf(req, b->p + off, end - (size_t)off);
}

/* --like-etcdfs only: with a handler the kernel sends FLUSH at every close. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dirbuf *b = (dirbuf *)(uintptr_t)fi->fh;
    free(b->ends);
    free(b->p);
    free(b);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs st = {.f_bsize = 4096,
                         .f_frsize = 4096,
                         .f_blocks = 1 << 20,
                         .f_bfree = 1 << 20,
                         .f_bavail = 1 << 20,
                         .f_namemax = 255};
    fuse_reply_statfs(req, &st);
}

/* Extended attributes are answered as etcdfs answers the ones `ls -l` and the kernel ask for
 * (security.selinux, system.posix_acl_*): "none" for every name in a namespace Linux knows,
 * EOPNOTSUPP outside them, an empty list. Not implementing them (ENOSYS) would make the kernel
 * stop sending them, and the floor would then leave out requests etcdfs must answer. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    (void)ino;
    (void)size;
    static const char *const known[] = {"user.", "trusted.", "security.", "system."};
    int rc = EOPNOTSUPP;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strncmp(name, known[i], strlen(known[i])))
            rc = ENODATA;
    fuse_reply_err(req, rc);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    (void)ino;
    if (size == 0)
        fuse_reply_xattr(req, 0);
    else
        fuse_reply_buf(req, NULL, 0);
}

static const struct fuse_lowlevel_ops memfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .opendir = op_opendir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

int main(int argc, char *argv[])
{
    struct fuse_lowlevel_ops ops = memfs_ops;
    if (argc > 1 && !strcmp(argv[1], "--like-etcdfs")) {
        like_etcdfs = true;
        ops.flush = op_flush;
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts opts;
    if (fuse_parse_cmdline(&args, &opts) != 0 || !opts.mountpoint) {
        fprintf(stderr, "usage: %s [--like-etcdfs] [-f] MOUNTPOINT\n", argv[0]);
        return 2;
    }
    table = calloc(table_size, sizeof *table);
    add(0, "", false);                 /* inode 0 is never used */
    add(0, "/", true)->parent = 0;     /* inode 1 = FUSE_ROOT_ID */
    nodes[1]->parent = (fuse_ino_t)-1; /* the root lists nothing as its own child */
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    int rc = 1;
    if (se && fuse_set_signal_handlers(se) == 0) {
        if (fuse_session_mount(se, opts.mountpoint) == 0) {
            fuse_daemonize(opts.foreground);
            struct fuse_loop_config loop = {.clone_fd = 0, .max_idle_threads = 16};
            rc = fuse_session_loop_mt(se, &loop) ? 1 : 0;
            fuse_session_unmount(se);
        }
        fuse_remove_signal_handlers(se);
    }
    if (se)
        fuse_session_destroy(se);
    free(opts.mountpoint);
    fuse_opt_free_args(&args);
    return rc;
}
