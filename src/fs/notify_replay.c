/*
 * notify_replay.c - inotify events for changes made elsewhere (see notify_replay.h).
 *
 * Each created, changed or deleted key that the kernel did not learn from this mount is queued
 * to a replay thread that performs open(O_CREAT)/close, open/ftruncate(current size)/close or
 * unlink on the mount. Those syscalls are served by the FUSE workers like any other, so the
 * replay must never run on the notify thread nor while holding a lock a handler needs. The
 * handlers ask the hooks below first; a request whose pid is the replay thread's id is answered
 * from the node table, and its file handle is a sentinel that flush and release recognise
 * (release carries no pid). The kernel puts the calling thread's id (not the process id) in
 * each request, which is what makes the replay thread's requests recognisable.
 */
#include "notify_replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inode.h"
#include "log.h"
#include "names.h"
#include "resolve.h"
#include "stats.h"

/* A burst of remote changes larger than this is not replayed beyond it: the events are a
 * courtesy to watchers, the cache itself is already current. */
#define REPLAY_QUEUE_MAX 4096
/* How long replay_stop waits for a replay syscall in flight (the session loop may have ended:
 * then the syscall returns only once the connection closes). */
#define REPLAY_STOP_WAIT_S 2
/* A create waits in the queue until every event of its revision was delivered: a delete of the
 * same revision makes the pair a rename (replay_delivered). This bounds the wait should the
 * word that its revision is complete never come (no memory for it). */
#define REPLAY_PAIR_WAIT_NS 1000000000

typedef enum replay_kind {
    REPLAY_CREATE,
    REPLAY_MODIFY,
    REPLAY_DELETE,
    REPLAY_RENAME,
    REPLAY_ATTRIB, /* an attribute record changed: utimensat to the times it has (IN_ATTRIB) */
} replay_kind;

typedef struct replay_item {
    struct replay_item *next;
    replay_kind kind;
    node *n;           /* CREATE, MODIFY, DELETE: the file's node; RENAME: the old name's node
                        * (with a reference) */
    fuse_ino_t parent; /* the directory's node id, 0 = not known */
    char name[NAMES_MAX + 1]; /* the display name in that directory (RENAME: the new one) */
    char *path;               /* relative to the mount root */
    int64_t rev;              /* CREATE, RENAME: the revision of the new key */
    char *key;                /* CREATE, RENAME: the new key; MODIFY, ATTRIB: the key */
    size_t key_len;
    struct timespec ready; /* CREATE: not replayed before (it may become a RENAME) */
    fuse_ino_t old_parent; /* RENAME: the old name */
    char old_name[NAMES_MAX + 1];
    char *old_path;
    bool record_deleted; /* ATTRIB: a file's record was deleted */
} replay_item;

static pthread_mutex_t r_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t r_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t r_done_cv = PTHREAD_COND_INITIALIZER;
static replay_item *r_head, *r_tail; /* [r_mu] */
static size_t r_len;                 /* [r_mu] */
static bool r_stop;                  /* [r_mu] */
static bool r_started;               /* [r_mu] */
static bool r_finished;              /* [r_mu] the thread left its loop */
static replay_item *r_current;       /* [r_mu] the item being replayed */
static int64_t r_delivered;          /* [r_mu] replay_delivered's revision */
static pthread_t r_thread;
static pid_t r_tid;   /* atomic: the replay thread's id, 0 before it runs */
static char r_handle; /* its address is the replay thread's file handle */

static bool is_own(fuse_req_t req)
{
    pid_t tid = __atomic_load_n(&r_tid, __ATOMIC_ACQUIRE);
    return tid != 0 && fuse_req_ctx(req)->pid == tid;
}

static void item_free(replay_item *it)
{
    if (!it)
        return;
    node_put(it->n);
    free(it->path);
    free(it->key);
    free(it->old_path);
    free(it);
}

/* The mount root, opened for each replay and closed after it (an open descriptor would make
 * the mount busy at unmount). A directory that is not a different filesystem than its parent
 * is not our mount any more: then nothing is replayed, so nothing lands underneath. */
static int root_open(void)
{
    int fd = open(g_fs.opts->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st, up;
    if (fstat(fd, &st) || fstatat(fd, "..", &up, 0) || st.st_dev == up.st_dev) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The node table has the file absent (the watch applied its delete) and no change of this
 * mount waits to bring it back. [n->mu] */
static bool known_absent_locked(const node *n)
{
    return n->known && n->mod_rev == 0 && !n->dirty && !n->pending;
}

/* The watch keeps the file known and present, and this mount has not removed it. [n->mu] */
static bool known_present_locked(const node *n)
{
    return n->known && n->mod_rev > 0 && !n->unlinked;
}

/* The file of key is absent for the node table (deleted as the watch said, or forgotten since):
 * an event for its attributes would only cost a lookup in etcd. */
static bool file_gone(const char *key, size_t key_len)
{
    node *n = node_find(key, key_len, NODE_FILE);
    if (!n)
        return true;
    node_lock(n);
    bool absent = n->unlinked || known_absent_locked(n);
    node_unlock(n);
    node_put(n);
    return absent;
}

static void replay_one(const replay_item *it)
{
    /* A directory's value (shown as "%value") replayed under the directory's own name: the
     * lookup answered for the replay would make the kernel take the directory for a file.
     * Checked again here: a rename through this mount renames its nodes only after its Txn,
     * whose events may have been queued before. */
    if (it->key && node_is_directory_value(it->key, it->key_len))
        return;
    int root = root_open();
    if (root < 0)
        return;
    if (it->kind == REPLAY_RENAME) {
        if (renameat(root, it->old_path, root, it->path) != 0)
            log_debug("replay of '%s' not possible: %s", it->path, strerror(errno));
        close(root);
        return;
    }
    if (it->kind == REPLAY_DELETE) {
        if (unlinkat(root, it->path, 0) != 0)
            log_debug("replay of '%s' not possible: %s", it->path, strerror(errno));
        close(root);
        return;
    }
    if (it->kind == REPLAY_ATTRIB && it->record_deleted && file_gone(it->key, it->key_len)) {
        close(root);
        return;
    }
    if (it->kind == REPLAY_ATTRIB) {
        /* Setting both times is what makes the kernel report IN_ATTRIB; replay_setattr answers
         * it with the attributes as they are (nothing is stored). */
        struct stat st;
        if (fstatat(root, it->path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            utimensat(root, it->path, (struct timespec[2]){st.st_atim, st.st_mtim},
                      AT_SYMLINK_NOFOLLOW) != 0)
            log_debug("replay of '%s' not possible: %s", it->path, strerror(errno));
        close(root);
        return;
    }
    int flags = O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (it->kind == REPLAY_CREATE)
        flags |= O_CREAT;
    int fd = openat(root, it->path, flags, 0644);
    close(root);
    if (fd < 0) {
        log_debug("replay of '%s' not possible: %s", it->path, strerror(errno));
        return;
    }
    if (it->kind == REPLAY_MODIFY) {
        /* The size given is ignored by replay_setattr (which answers with the current
         * attributes); truncating to the kernel's idea of the size changes nothing. */
        struct stat st;
        if (fstat(fd, &st) == 0 && ftruncate(fd, st.st_size) != 0)
            log_debug("replay of '%s': ftruncate: %s", it->path, strerror(errno));
    }
    close(fd);
}

/* A daemon killed (SIGKILL) while this thread waits for an answer to its own request would
 * never finish dying: the wait can no longer be interrupted once a worker read the request,
 * and the connection is aborted only when the last /dev/fuse descriptor closes, which the
 * dying process's shared descriptor table holds until this very thread exits. So this thread
 * takes a descriptor table of its own, without /dev/fuse: when the daemon dies, the other
 * threads' table closes the device, the kernel aborts the connection and the wait ends. Its
 * copies of network sockets go too (they would keep a connection to etcd that the daemon closes
 * open); the log's local socket and stdio stay, so logging works the same from here. */
static bool drop_fuse_descriptors(void)
{
    if (unshare(CLONE_FILES) != 0)
        return false;
    DIR *d = opendir("/proc/thread-self/fd");
    if (!d)
        return false;
    int self = dirfd(d);
    bool ok = true;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char target[32];
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == self)
            continue;
        ssize_t n = readlinkat(self, e->d_name, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        struct sockaddr_storage sa;
        socklen_t sa_len = sizeof sa;
        bool net = !strncmp(target, "socket:", 7) &&
                   getsockname(fd, (struct sockaddr *)&sa, &sa_len) == 0 &&
                   (sa.ss_family == AF_INET || sa.ss_family == AF_INET6);
        if ((net || !strcmp(target, "/dev/fuse")) && close(fd) != 0)
            ok = false;
    }
    closedir(d);
    return ok;
}

static void *replay_main(void *arg)
{
    (void)arg;
    if (!drop_fuse_descriptors()) {
        /* Without that, replaying is a hang risk at kill -9: give up the events instead. */
        log_msg(LOG_WARNING, "inotify replay disabled: cannot separate its descriptors");
        pthread_mutex_lock(&r_mu);
        r_finished = true;
        pthread_cond_broadcast(&r_done_cv);
        pthread_mutex_unlock(&r_mu);
        return NULL;
    }
    __atomic_store_n(&r_tid, gettid(), __ATOMIC_RELEASE);
    for (;;) {
        pthread_mutex_lock(&r_mu);
        for (;;) {
            if (r_stop)
                break;
            if (!r_head) {
                pthread_cond_wait(&r_cv, &r_mu);
                continue;
            }
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            const struct timespec *ready = &r_head->ready;
            if (r_head->kind != REPLAY_CREATE || r_head->rev <= r_delivered ||
                now.tv_sec > ready->tv_sec ||
                (now.tv_sec == ready->tv_sec && now.tv_nsec >= ready->tv_nsec))
                break;
            pthread_cond_timedwait(&r_cv, &r_mu, ready);
        }
        if (r_stop) {
            pthread_mutex_unlock(&r_mu);
            break;
        }
        replay_item *it = r_head;
        r_head = it->next;
        if (!r_head)
            r_tail = NULL;
        r_len--;
        r_current = it;
        pthread_mutex_unlock(&r_mu);
        replay_one(it);
        pthread_mutex_lock(&r_mu);
        r_current = NULL;
        bool stopping = r_stop;
        pthread_mutex_unlock(&r_mu);
        if (stopping) {
            /* Possibly detached by replay_stop and past the node table's end: keep the
             * node reference (every node is freed at exit anyway). */
            it->n = NULL;
        }
        item_free(it);
    }
    pthread_mutex_lock(&r_mu);
    r_finished = true;
    pthread_cond_broadcast(&r_done_cv);
    pthread_mutex_unlock(&r_mu);
    return NULL;
}

static void enqueue(replay_item *it)
{
    pthread_mutex_lock(&r_mu);
    if (!r_started && !r_stop) {
        r_started = pthread_create(&r_thread, NULL, replay_main, NULL) == 0;
        if (!r_started)
            log_msg(LOG_WARNING, "no replay thread: remote changes give no inotify events");
    }
    if (!r_started || r_stop || r_finished || r_len >= REPLAY_QUEUE_MAX) {
        pthread_mutex_unlock(&r_mu);
        item_free(it);
        return;
    }
    if (r_tail)
        r_tail->next = it;
    else
        r_head = it;
    r_tail = it;
    r_len++;
    pthread_cond_signal(&r_cv);
    pthread_mutex_unlock(&r_mu);
}

/* The display path of kv's key below the mount root, and where its last component starts
 * (the key offset of its directory). NULL when out of memory. */
static char *display_path(const etcdc_kv *kv, size_t *dir_at, char *last)
{
    const char *rel = kv->key + g_fs.prefix_len;
    size_t rel_len = kv->key_len - g_fs.prefix_len;
    size_t cap = 64, len = 0;
    char *path = malloc(cap);
    size_t at = 0;
    while (path) {
        bool deeper;
        size_t clen = names_first_component(rel + at, rel_len - at, &deeper);
        size_t n = names_to_display(rel + at, clen, at == 0, last);
        if (len + n + 2 > cap) {
            cap = 2 * (len + n + 2);
            char *p = realloc(path, cap);
            if (!p) {
                free(path);
                return NULL;
            }
            path = p;
        }
        if (len)
            path[len++] = '/';
        memcpy(path + len, last, n + 1);
        len += n;
        if (!deeper) {
            *dir_at = g_fs.prefix_len + at;
            break;
        }
        at += clen + 1;
    }
    return path;
}

/* A remote delete is replayed as an unlink when the node table still has the file and it is
 * absent now (the watch applied the delete; a file removed through this mount is unindexed
 * and not found). fuse_lowlevel_notify_delete would be cheaper but gives no IN_DELETE on the
 * kernels measured (docs/consistency.md). */
static replay_item *deleted_item(const etcdc_kv *kv)
{
    node *f = node_find(kv->key, kv->key_len, NODE_FILE);
    if (!f)
        return NULL;
    node_lock(f);
    bool absent = known_absent_locked(f);
    node_unlock(f);
    replay_item *it = absent ? calloc(1, sizeof *it) : NULL;
    if (!it) {
        node_put(f);
        return NULL;
    }
    it->kind = REPLAY_DELETE;
    it->n = f;
    return it;
}

/* The node of a key created or changed elsewhere takes the event's version, as a listing read
 * at that revision would give it (a value only where opens do not ask etcd), when it had
 * none (apply_event gave it to a node that existed): the replay's lookup and attribute request
 * are then answered without a round trip. This runs on the notify thread, so every later event
 * of the key reaches the node after this and in order; a lookup's older read cannot replace
 * it (as_of), and a delete applied before the replay leaves the node known absent, which the
 * replay's lookup, create and attribute request all refuse (the kernel never keeps a name etcd
 * no longer has). */
static void learn_version(node *n, const etcdc_kv *kv)
{
    node_lock(n);
    if (n->type == NODE_FILE)
        node_apply_listed_kv_locked(n, kv, kv->mod_revision, now_ns(),
                                    !consistency_watch_trusted());
    node_unlock(n);
}

/* A delete at the revision of a create still waiting in the queue: one transaction moved the
 * key (etcdfs's rename; a file keeps its name when a directory moves, so a create of the same
 * name is preferred). The create becomes a rename and takes over del's node. */
static bool pair_as_rename(replay_item *del, int64_t rev)
{
    pthread_mutex_lock(&r_mu);
    replay_item *pick = NULL;
    for (replay_item *c = r_head; c; c = c->next) {
        if (c->kind != REPLAY_CREATE || c->rev != rev)
            continue;
        if (!pick || !strcmp(c->name, del->name))
            pick = c;
        if (!strcmp(c->name, del->name))
            break;
    }
    if (pick) {
        node *created = pick->n;
        pick->kind = REPLAY_RENAME;
        pick->n = del->n;
        del->n = created; /* dropped with del, outside r_mu */
        pick->old_parent = del->parent;
        memcpy(pick->old_name, del->name, sizeof pick->old_name);
        pick->old_path = del->path;
        del->path = NULL;
        pthread_cond_signal(&r_cv);
    }
    pthread_mutex_unlock(&r_mu);
    if (pick)
        item_free(del);
    return pick != NULL;
}

/* Whether an inotify watch can see a change of the file at key: a watch holds an inode, the
 * kernel holds no inode that the node table lacks, and a file's events reach watches of its
 * own inode and its directory's. A change in a directory this mount never looked up is
 * therefore not replayed: the replay would only cost lookups and leave the kernel and the
 * node table holding names nobody asked for (every key created anywhere below the mount). */
static bool may_be_watched(const char *key, size_t key_len)
{
    size_t at = names_last_component(key, key_len, g_fs.prefix_len);
    node *n = node_find(key, at, NODE_DIR);
    if (!n)
        n = node_find(key, key_len, NODE_FILE);
    bool found = n != NULL;
    node_put(n);
    return found;
}

void replay_event(const etcdc_kv *kv, bool is_delete, bool known_here)
{
    if (g_fs.opts->ro)
        return; /* the kernel refuses every replay on a read-only mount (EROFS) */
    if (kv->key_len <= g_fs.prefix_len || kv->key[kv->key_len - 1] == '/')
        return; /* the root's own key, or a directory marker: no file */
    if ((known_here && !is_delete) || node_is_directory_value(kv->key, kv->key_len))
        return;
    if (!may_be_watched(kv->key, kv->key_len))
        return;
    replay_item *it = is_delete ? deleted_item(kv) : calloc(1, sizeof *it);
    if (!it)
        return;
    if (!is_delete) {
        it->rev = kv->mod_revision;
        it->key = malloc(kv->key_len + 1);
        if (it->key)
            memcpy(it->key, kv->key, kv->key_len + 1);
        it->key_len = kv->key_len;
        clock_gettime(CLOCK_REALTIME, &it->ready);
        it->ready.tv_nsec += REPLAY_PAIR_WAIT_NS;
        if (it->ready.tv_nsec >= 1000000000) {
            it->ready.tv_sec++;
            it->ready.tv_nsec -= 1000000000;
        }
    }
    size_t dir_at = 0;
    if (!is_delete)
        it->kind = kv->version == 1 ? REPLAY_CREATE : REPLAY_MODIFY;
    it->path = display_path(kv, &dir_at, it->name);
    if (it->path) {
        node *dir = node_find(kv->key, dir_at, NODE_DIR);
        it->parent = dir ? dir->ino : 0;
        node_put(dir);
    }
    if (it->path && it->kind != REPLAY_DELETE) {
        /* Held until the replay: the create handler answers with this node's entry, and the
         * lookup of a changed name with what it knows. */
        it->n = node_obtain(kv->key, kv->key_len, NODE_FILE);
        if (it->n)
            learn_version(it->n, kv);
    }
    if (!it->path || (it->kind != REPLAY_DELETE && (!it->n || !it->key))) {
        item_free(it);
        return;
    }
    if (it->kind == REPLAY_DELETE && pair_as_rename(it, kv->mod_revision))
        return;
    enqueue(it);
}

void replay_attrib(const char *key, size_t key_len, bool file_record_deleted)
{
    if (g_fs.opts->ro || key_len <= g_fs.prefix_len || !may_be_watched(key, key_len))
        return;
    replay_item *it = calloc(1, sizeof *it);
    if (!it)
        return;
    size_t dir_at;
    etcdc_kv kv = {.key = (char *)key, .key_len = key_len};
    it->kind = REPLAY_ATTRIB;
    it->record_deleted = file_record_deleted;
    it->path = display_path(&kv, &dir_at, it->name);
    it->key = malloc(key_len + 1);
    if (!it->path || !it->key) {
        item_free(it);
        return;
    }
    memcpy(it->key, key, key_len);
    it->key[key_len] = 0;
    it->key_len = key_len;
    node *dir = node_find(key, dir_at, NODE_DIR);
    it->parent = dir ? dir->ino : 0;
    node_put(dir);
    enqueue(it);
}

void replay_delivered(int64_t rev)
{
    pthread_mutex_lock(&r_mu);
    if (rev > r_delivered) {
        r_delivered = rev;
        pthread_cond_signal(&r_cv);
    }
    pthread_mutex_unlock(&r_mu);
}

void replay_stop(void)
{
    pthread_mutex_lock(&r_mu);
    r_stop = true;
    pthread_cond_signal(&r_cv);
    bool started = r_started;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += REPLAY_STOP_WAIT_S;
    while (started && !r_finished && pthread_cond_timedwait(&r_done_cv, &r_mu, &until) == 0) {
    }
    bool finished = r_finished;
    replay_item *it = r_head;
    r_head = r_tail = NULL;
    r_len = 0;
    pthread_mutex_unlock(&r_mu);
    while (it) {
        replay_item *next = it->next;
        item_free(it);
        it = next;
    }
    if (started && finished)
        pthread_join(r_thread, NULL);
    else if (started) {
        /* A syscall on the mount waits for a reply the ended session loop will not send; it
         * fails once the connection closes at unmount, and the thread then ends by itself. */
        log_msg(LOG_WARNING, "replay thread still busy at unmount: left to finish");
        pthread_detach(r_thread);
    }
}

/* The node the replay thread is creating or removing under (parent, name), with a reference. */
static node *replaying(replay_kind kind, fuse_ino_t parent, const char *name)
{
    node *n = NULL;
    pthread_mutex_lock(&r_mu);
    replay_item *it = r_current;
    bool old_name = kind == REPLAY_DELETE && it && it->kind == REPLAY_RENAME;
    bool new_name = kind == REPLAY_CREATE && it && it->kind == REPLAY_RENAME;
    if (it && (it->kind == kind || new_name) && !strcmp(it->name, name) &&
        (it->parent == 0 || it->parent == parent)) {
        n = node_get(it->n->ino);
    } else if (old_name && !strcmp(it->old_name, name) &&
               (it->old_parent == 0 || it->old_parent == parent)) {
        n = node_get(it->n->ino);
    }
    pthread_mutex_unlock(&r_mu);
    return n;
}

/* Whether the file n stands for is still absent from etcd, as the watch said, and n still
 * stands for its key (no create, write, unlink or rename through this mount since the event
 * took or gave the name away): a replay must never hand the kernel a node for a name it no
 * longer holds, nor take a live name away from it. */
static bool still_absent(node *n)
{
    node_lock(n);
    bool absent = known_absent_locked(n) && !n->unlinked;
    node_unlock(n);
    size_t len;
    char *key = absent ? node_key(n, &len) : NULL;
    node *now = key ? node_find(key, len, NODE_FILE) : NULL;
    absent = absent && now == n;
    node_put(now);
    free(key);
    return absent;
}

/* The file node of the key whose change or attributes the replay thread is replaying under
 * (parent, name), with a reference; NULL when that is not what it looks up. */
static node *replaying_change(fuse_ino_t parent, const char *name)
{
    char *key = NULL;
    size_t key_len = 0;
    pthread_mutex_lock(&r_mu);
    replay_item *it = r_current;
    if (it && (it->kind == REPLAY_MODIFY || it->kind == REPLAY_ATTRIB) && it->key &&
        it->parent != 0 && it->parent == parent && !strcmp(it->name, name) &&
        (key = malloc(it->key_len + 1)) != NULL) {
        memcpy(key, it->key, it->key_len + 1);
        key_len = it->key_len;
    }
    pthread_mutex_unlock(&r_mu);
    node *n = key ? node_find(key, key_len, NODE_FILE) : NULL;
    free(key);
    return n;
}

/* The replay's own lookup of the name it changes, once the kernel's entry expired: the node
 * table knows the key from the watch (present, or absent since), so etcd is not asked. Both
 * answers time out at once: the next lookup of anyone else asks the handlers. */
static bool replay_lookup_change(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    node *n = replaying_change(parent, name);
    if (!n)
        return false;
    node_lock(n);
    bool present = known_present_locked(n) && node_indexed(n);
    bool absent = known_absent_locked(n);
    node_unlock(n);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    if (present) {
        entry_for(n, &e);
        e.entry_timeout = e.attr_timeout = 0;
    }
    if (present || absent)
        fuse_reply_entry(req, &e);
    node_put(n);
    return present || absent;
}

/* The directory node named name in parent on the way to key, with a reference; NULL when
 * key's path has no such directory or the node table does not hold it. */
static node *dir_on_path(const char *key, size_t key_len, fuse_ino_t parent, const char *name)
{
    for (size_t at = g_fs.prefix_len; at < key_len;) {
        bool deeper;
        size_t clen = names_first_component(key + at, key_len - at, &deeper);
        if (!deeper)
            return NULL;
        node *up = node_find(key, at, NODE_DIR);
        bool here = up && up->ino == parent;
        node_put(up);
        char shown[NAMES_MAX + 1];
        if (here && names_to_display(key + at, clen, at == g_fs.prefix_len, shown) &&
            !strcmp(shown, name))
            return node_find(key, at + clen + 1, NODE_DIR);
        at += clen + 1;
    }
    return NULL;
}

/* The replay's lookup of a directory on its way, once the kernel's entry for it expired
 * (strict mode keeps none): the node table's directory answers, with timeout 0, so that the
 * next lookup of anyone else asks the handlers. The event showed the directory at its revision;
 * should it be gone since, the file's own node (known absent by then) refuses whatever the
 * replay does below it. A directory the node table lacks is looked up as usual. */
static bool replay_lookup_dir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char *keys[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    pthread_mutex_lock(&r_mu);
    const replay_item *it = r_current;
    if (it && it->key)
        keys[0] = key_join(it->key, it->key_len, NULL, 0, NULL, 0, &lens[0]);
    node *old = it && it->n && (it->kind == REPLAY_DELETE || it->kind == REPLAY_RENAME)
                    ? node_get(it->n->ino)
                    : NULL;
    pthread_mutex_unlock(&r_mu);
    if (old)
        keys[1] = node_key(old, &lens[1]); /* the name it goes away from */
    node_put(old);
    node *d = NULL;
    for (int i = 0; i < 2 && !d; i++)
        d = keys[i] ? dir_on_path(keys[i], lens[i], parent, name) : NULL;
    free(keys[0]);
    free(keys[1]);
    if (!d)
        return false;
    struct fuse_entry_param e;
    entry_for(d, &e);
    e.entry_timeout = e.attr_timeout = 0;
    fuse_reply_entry(req, &e);
    node_put(d);
    return true;
}

static bool replay_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (!is_own(req))
        return false;
    if (replay_lookup_change(req, parent, name))
        return true;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    node *n = replaying(REPLAY_DELETE, parent, name);
    if (n && !still_absent(n)) {
        node_put(n);
        fuse_reply_entry(req, &e); /* gone or taken again meanwhile: nothing to replay */
        return true;
    }
    if (n) {
        /* Still there for this lookup (the kernel forgot the name at the invalidation): the
         * kernel then removes the name itself, which is what emits IN_DELETE. */
        entry_for(n, &e);
        e.entry_timeout = e.attr_timeout = 0;
        fuse_reply_entry(req, &e);
        node_put(n);
        return true;
    }
    n = replaying(REPLAY_CREATE, parent, name);
    if (!n)
        return replay_lookup_dir(req, parent, name);
    node_put(n);
    /* Absent for this lookup only (timeout 0): the kernel then creates the name itself,
     * which is what emits IN_CREATE. */
    fuse_reply_entry(req, &e);
    return true;
}

static bool replay_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                          struct fuse_file_info *fi)
{
    if (!is_own(req))
        return false;
    pthread_mutex_lock(&r_mu);
    bool renaming = r_current && r_current->kind == REPLAY_RENAME;
    pthread_mutex_unlock(&r_mu);
    node *n = renaming ? NULL : replaying(REPLAY_CREATE, parent, name);
    bool exists = false;
    if (n) {
        node_lock(n);
        /* removed through this mount meanwhile (unlinked or renamed over): a name the kernel
         * was told is gone must not come back with this node */
        exists = n->type == NODE_FILE && !(n->known && n->mod_rev == 0 && !n->pending) &&
                 !n->unlinked && node_indexed(n);
        node_unlock(n);
    }
    if (!exists) {
        /* Deleted again before the replay ran: create nothing (no event either). */
        fuse_reply_err(req, ENOENT);
        node_put(n);
        return true;
    }
    struct fuse_entry_param e;
    entry_for(n, &e);
    e.attr_timeout = 0; /* the node may not know the content yet: the next stat asks */
    fi->fh = (uint64_t)(uintptr_t)&r_handle;
    fi->keep_cache = 1;
    if (fuse_reply_create(req, &e, fi) == -ENOENT)
        node_forget(n->ino, 1); /* interrupted: the kernel took no reference */
    node_put(n);
    return true;
}

static bool replay_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (!is_own(req))
        return false;
    node *n = node_get(ino);
    if (n && n->type == NODE_FILE) {
        fi->fh = (uint64_t)(uintptr_t)&r_handle;
        fi->keep_cache = 1; /* the notify thread dropped the stale pages already */
        fuse_reply_open(req, fi);
    } else {
        fuse_reply_err(req, n ? EISDIR : ENOENT);
    }
    node_put(n);
    return true;
}

static bool replay_setattr(fuse_req_t req, fuse_ino_t ino)
{
    if (!is_own(req))
        return false;
    node *n = node_get(ino);
    if (n) {
        struct stat st;
        node_fill_attr(n, &st, false);
        fuse_reply_attr(req, &st, g_fs.timeout);
    } else {
        fuse_reply_err(req, ENOENT);
    }
    node_put(n);
    return true;
}

/* The kernel asks for a file's attributes in the middle of a replay (the permission check of
 * an open whose attributes timed out, the replay's own fstat): a file the watch keeps known
 * and present is answered from its node, with timeout 0 (the next stat of anyone else asks the
 * handlers). Any other node goes to the handler, which reads etcd: a key created elsewhere
 * is not known yet, and may be gone already, its delete applied before the replay ran; the
 * kernel must then fail the replay's open rather than keep a name nothing will invalidate. */
static bool replay_getattr(fuse_req_t req, fuse_ino_t ino)
{
    if (!is_own(req))
        return false;
    node *n = node_get(ino);
    bool present = false;
    if (n && n->type == NODE_FILE) {
        node_lock(n);
        present = known_present_locked(n);
        node_unlock(n);
    }
    if (present) {
        struct stat st;
        node_fill_attr(n, &st, false);
        fuse_reply_attr(req, &st, 0);
    }
    node_put(n);
    return present;
}

static bool replay_close(fuse_req_t req, struct fuse_file_info *fi)
{
    if (fi->fh != (uint64_t)(uintptr_t)&r_handle)
        return false;
    fuse_reply_err(req, 0);
    return true;
}

static bool replay_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (!is_own(req))
        return false;
    node *n = replaying(REPLAY_DELETE, parent, name);
    /* etcd has no such key any more: the kernel only drops its name */
    fuse_reply_err(req, n && still_absent(n) ? 0 : ENOENT);
    node_put(n);
    return true;
}

static bool replay_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                          const char *newname)
{
    if (!is_own(req))
        return false;
    node *n = replaying(REPLAY_DELETE, parent, name);
    node *to = replaying(REPLAY_CREATE, newparent, newname);
    char *key = NULL;
    size_t key_len = 0;
    bool absent = n && to == n && still_absent(n);
    pthread_mutex_lock(&r_mu);
    if (absent && r_current && r_current->kind == REPLAY_RENAME &&
        (key = malloc(r_current->key_len + 1)) != NULL) {
        memcpy(key, r_current->key, r_current->key_len + 1);
        key_len = r_current->key_len;
    }
    pthread_mutex_unlock(&r_mu);
    /* etcd holds the result already: the inode only takes its new key, and reads it afresh */
    int rc = key ? node_rekey(n, key, key_len) : ENOENT;
    if (rc == 0) {
        node_lock(n);
        n->known = false;
        n->validated_ns = 0;
        n->renamed_elsewhere = true;
        node_unlock(n);
    }
    fuse_reply_err(req, rc);
    free(key);
    node_put(to);
    node_put(n);
    return true;
}

/* The operation table seen by the kernel: the replay thread's requests are answered above
 * (and counted as the handlers count theirs), every other one goes to the handlers (inner). */
static struct fuse_lowlevel_ops inner, outer;

static void lookup_op(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (replay_lookup(req, parent, name))
        stats_inc(STAT_OP_lookup);
    else
        inner.lookup(req, parent, name);
}

static void create_op(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    if (replay_create(req, parent, name, fi))
        stats_inc(STAT_OP_create);
    else
        inner.create(req, parent, name, mode, fi);
}

static void open_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (replay_open(req, ino, fi))
        stats_inc(STAT_OP_open);
    else
        inner.open(req, ino, fi);
}

static void getattr_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (replay_getattr(req, ino))
        stats_inc(STAT_OP_getattr);
    else
        inner.getattr(req, ino, fi);
}

static void setattr_op(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    if (replay_setattr(req, ino))
        stats_inc(STAT_OP_setattr);
    else
        inner.setattr(req, ino, attr, to_set, fi);
}

static void unlink_op(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (replay_unlink(req, parent, name))
        stats_inc(STAT_OP_unlink);
    else
        inner.unlink(req, parent, name);
}

static void rename_op(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    if (!flags && replay_rename(req, parent, name, newparent, newname))
        stats_inc(STAT_OP_rename);
    else
        inner.rename(req, parent, name, newparent, newname, flags);
}

static void flush_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (replay_close(req, fi))
        stats_inc(STAT_OP_flush);
    else
        inner.flush(req, ino, fi);
}

static void release_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (replay_close(req, fi))
        stats_inc(STAT_OP_release);
    else
        inner.release(req, ino, fi);
}

const struct fuse_lowlevel_ops *replay_wrap_ops(const struct fuse_lowlevel_ops *ops)
{
    inner = *ops;
    outer = *ops;
    outer.lookup = lookup_op;
    outer.create = create_op;
    outer.open = open_op;
    outer.getattr = getattr_op;
    outer.setattr = setattr_op;
    outer.unlink = unlink_op;
    outer.rename = rename_op;
    outer.flush = flush_op;
    outer.release = release_op;
    return &outer;
}
