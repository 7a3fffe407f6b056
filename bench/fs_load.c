/*
 * fs_load.c - the tight loops of the filesystem benchmark (bench/fs_bench.py drives it), so that
 * per-operation figures carry no interpreter overhead. Every mode talks to etcd through libetcdc
 * ($ETCD_ENDPOINTS) when it needs a reference, in the same process and the same run.
 *
 *   fs_load writecmp DIR KEYPREFIX N SIZE ROUND
 *       small-file write latency: in blocks of 25 (so all kinds see the same machine load)
 *       open(O_CREAT|O_TRUNC)/write/close of a NEW file DIR/r<ROUND>_<i>, the same again on the
 *       now EXISTING file, and one libetcdc Put of KEYPREFIX r<ROUND>_<i>
 *       -> LAT write_new|write_existing|lib_put ...
 *   fs_load tput KIND THREADS SECONDS TARGET NFILES SIZE
 *       KIND read|stat|write: open/read/close, stat, open(O_TRUNC)/write/close of
 *       TARGET/f<j>, j < NFILES (thread t uses files t, t+THREADS, ... when writing);
 *       KIND get|put: libetcdc Get/Put of keys TARGET f<j>
 *       -> TPUT kind threads ops_per_s errors ops
 *   fs_load load KEYPREFIX N SIZE CHILDREN THREADS
 *       bulk load with 128-key Txns: CHILDREN = 0 -> KEYPREFIX f<i> (flat); else
 *       KEYPREFIX c<i % CHILDREN>/d<(i / CHILDREN) / 100>/f<i> -> LOADED n seconds
 *   fs_load range KEYPREFIX         one libetcdc Get of every key under KEYPREFIX (a single
 *                                   Range, values included) -> LAT lib_range 1 <us> ...
 *   fs_load rangedirs KEYPREFIX N CHILDREN
 *                                   one libetcdc Get of each leaf directory of a tree `load`
 *                                   made, serially -> LAT lib_rangedirs 1 <us> ...; DIRS n
 *   fs_load flock PATH N            uncontended flock(LOCK_EX) + flock(LOCK_UN) -> LAT flock
 *   fs_load handoff PATH N          two processes, each with its own open file: one releases,
 *                                   the other's blocked flock returns -> LAT handoff
 *   fs_load liblock NAME N          libetcdc session lock acquire + release -> LAT lib_lock
 *   fs_load notify KEY PATH N       libetcdc Put of a new value, then open/read/close of PATH
 *                                   until it shows that value -> LAT notify_reread
 *   fs_load txnshape KEYPREFIX N SIZE WATCH
 *       what the daemon's writes cost etcd and the client, without the daemon: N rounds of one
 *       libetcdc Put of KEYPREFIX p<i> and one Txn shaped as a new file's write-back
 *       (If(KEYPREFIX n<i> absent, a witness key present, nothing below KEYPREFIX n<i>/)
 *       Then(Put)), with WATCH=1 while this process watches KEYPREFIX, as the daemon does;
 *       KEYPREFIX must hold no such keys yet
 *       -> LAT lib_put|lib_newfile_txn ...
 *   fs_load wake KEY PATH TIMEOUT_MS
 *                                   does inotify (IN_MODIFY) or poll() on an open PATH wake
 *                                   after a libetcdc Put of KEY? -> WAKE inotify|poll <us|n/a>
 *
 * Output lines: LAT <name> <n> <p50_us> <p99_us> <mean_us>; TPUT ...; WAKE ...; LOADED ...
 */
#include <errno.h>
#include <etcdc.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *lat, int n)
{
    if (n <= 0) {
        printf("LAT %s 0 0 0 0\n", name);
        return;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += lat[i];
    printf("LAT %s %d %.1f %.1f %.1f\n", name, n, lat[n / 2], lat[(int)(n * 0.99)], sum / n);
    fflush(stdout);
}

static void die(const char *what)
{
    fprintf(stderr, "fs_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static etcdc_client *connect_client(void)
{
    etcdc_config *cfg = etcdc_config_new();
    const char *eps = getenv("ETCD_ENDPOINTS");
    if (eps && *eps)
        etcdc_config_set_endpoints(cfg, eps);
    etcdc_config_set_request_timeout_ms(cfg, 30000);
    etcdc_config_set_max_message_size(cfg, 64 << 20, 512 << 20); /* whole-prefix ranges */
    etcdc_error err = {0};
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    if (!c) {
        fprintf(stderr, "fs_load: %s\n", err.message);
        exit(1);
    }
    return c;
}

static int write_file(const char *path, const char *buf, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, buf, size);
    int rc = close(fd);
    return w == (ssize_t)size && rc == 0 ? 0 : -1;
}

static int read_file(const char *path, char *buf, size_t cap, ssize_t *out_len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, cap);
    close(fd);
    if (out_len)
        *out_len = r;
    return r < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */

static int writecmp(const char *dir, const char *kprefix, int n, size_t size, int round)
{
    etcdc_client *c = connect_client();
    char *value = malloc(size);
    memset(value, 'w', size);
    double *lat[3];
    for (int k = 0; k < 3; k++)
        lat[k] = malloc(sizeof(double) * (size_t)n);
    char path[4096], key[512];
    etcdc_error err;
    for (int i = 0; i < 10; i++) { /* warm the channel */
        snprintf(key, sizeof key, "%swarm%d", kprefix, i);
        etcdc_put(c, key, strlen(key), value, size, NULL, &err);
    }
    for (int block = 0; block < n; block += 25) {
        int end = block + 25 < n ? block + 25 : n;
        for (int i = block; i < end; i++) {
            snprintf(path, sizeof path, "%s/r%d_%06d", dir, round, i);
            double t0 = now_us();
            if (write_file(path, value, size))
                die(path);
            lat[0][i] = now_us() - t0;
        }
        for (int i = block; i < end; i++) {
            snprintf(path, sizeof path, "%s/r%d_%06d", dir, round, i);
            double t0 = now_us();
            if (write_file(path, value, size))
                die(path);
            lat[1][i] = now_us() - t0;
        }
        for (int i = block; i < end; i++) {
            snprintf(key, sizeof key, "%sr%d_%06d", kprefix, round, i);
            double t0 = now_us();
            if (etcdc_put(c, key, strlen(key), value, size, NULL, &err) != ETCDC_OK) {
                fprintf(stderr, "put: %s\n", err.message);
                return 1;
            }
            lat[2][i] = now_us() - t0;
        }
    }
    report("write_new", lat[0], n);
    report("write_existing", lat[1], n);
    report("lib_put", lat[2], n);
    for (int k = 0; k < 3; k++)
        free(lat[k]);
    free(value);
    etcdc_client_free(c);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct tput_arg {
    const char *kind, *target;
    etcdc_client *c;
    int id, threads, nfiles;
    size_t size;
    atomic_bool *stop;
    long ops, errors;
} tput_arg;

static void *tput_body(void *p)
{
    tput_arg *a = p;
    char path[4096], *buf = malloc(a->size + 4096);
    memset(buf, 'T', a->size);
    etcdc_error err;
    int j = a->id % a->nfiles;
    bool lib = !strcmp(a->kind, "get") || !strcmp(a->kind, "put");
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        int rc;
        if (lib)
            snprintf(path, sizeof path, "%sf%06d", a->target, j);
        else
            snprintf(path, sizeof path, "%s/f%06d", a->target, j);
        if (!strcmp(a->kind, "read")) {
            rc = read_file(path, buf, a->size + 4096, NULL);
        } else if (!strcmp(a->kind, "stat")) {
            struct stat st;
            rc = stat(path, &st);
        } else if (!strcmp(a->kind, "write")) {
            rc = write_file(path, buf, a->size);
        } else if (!strcmp(a->kind, "get")) {
            etcdc_kv kv;
            rc = etcdc_get(a->c, path, strlen(path), &kv, &err) == ETCDC_OK ? 0 : -1;
            if (rc == 0)
                etcdc_kv_clear(&kv);
        } else {
            rc = etcdc_put(a->c, path, strlen(path), buf, a->size, NULL, &err) == ETCDC_OK ? 0 : -1;
        }
        if (rc == 0)
            a->ops++;
        else
            a->errors++;
        j += a->threads; /* writers never share a file: no contention on one key */
        if (j >= a->nfiles)
            j = a->id % a->nfiles;
    }
    free(buf);
    return NULL;
}

static int tput(const char *kind, int threads, double seconds, const char *target, int nfiles,
                size_t size)
{
    etcdc_client *c = NULL;
    if (!strcmp(kind, "get") || !strcmp(kind, "put"))
        c = connect_client();
    if (threads > 64)
        threads = 64;
    atomic_bool stop = false;
    pthread_t th[64];
    tput_arg args[64];
    for (int i = 0; i < threads; i++) {
        args[i] = (tput_arg){.kind = kind,
                             .target = target,
                             .c = c,
                             .id = i,
                             .threads = threads,
                             .nfiles = nfiles,
                             .size = size,
                             .stop = &stop};
        pthread_create(&th[i], NULL, tput_body, &args[i]);
    }
    double t0 = now_us();
    struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
    atomic_store(&stop, true);
    long ops = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        ops += args[i].ops;
        errors += args[i].errors;
    }
    double took = (now_us() - t0) / 1e6;
    printf("TPUT %s %d %.0f %ld %ld\n", kind, threads, ops / took, errors, ops);
    if (c)
        etcdc_client_free(c);
    return errors && !ops ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct load_arg {
    etcdc_client *c;
    const char *kprefix;
    long n, children;
    size_t size;
    atomic_long *next;
    int failed;
} load_arg;

static void *load_body(void *p)
{
    load_arg *a = p;
    size_t batch = etcdc_max_txn_ops();
    etcdc_pair *pairs = calloc(batch, sizeof *pairs);
    char(*keys)[256] = calloc(batch, 256);
    char *value = malloc(a->size);
    memset(value, 'x', a->size);
    for (;;) {
        long start = atomic_fetch_add(a->next, (long)batch);
        if (start >= a->n)
            break;
        size_t m = 0;
        for (long i = start; i < a->n && m < batch; i++, m++) {
            int kl;
            if (a->children == 0)
                kl = snprintf(keys[m], 256, "%sf%07ld", a->kprefix, i);
            else
                kl = snprintf(keys[m], 256, "%sc%ld/d%05ld/f%07ld", a->kprefix, i % a->children,
                              (i / a->children) / 100, i);
            pairs[m] = (etcdc_pair){keys[m], (size_t)kl, value, a->size};
        }
        etcdc_error err;
        if (etcdc_bulk_put(a->c, pairs, m, NULL, &err) != ETCDC_OK) {
            fprintf(stderr, "fs_load: bulk put: %s\n", err.message);
            a->failed = 1;
            break;
        }
    }
    free(value);
    free(keys);
    free(pairs);
    return NULL;
}

static int load(const char *kprefix, long n, size_t size, long children, int threads)
{
    etcdc_client *c = connect_client();
    atomic_long next = 0;
    if (threads > 16)
        threads = 16;
    pthread_t th[16];
    load_arg args[16];
    double t0 = now_us();
    for (int i = 0; i < threads; i++) {
        args[i] = (load_arg){c, kprefix, n, children, size, &next, 0};
        pthread_create(&th[i], NULL, load_body, &args[i]);
    }
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        failed |= args[i].failed;
    }
    printf("LOADED %ld %.2f\n", n, (now_us() - t0) / 1e6);
    etcdc_client_free(c);
    return failed;
}

static int range(const char *kprefix)
{
    etcdc_client *c = connect_client();
    etcdc_error err;
    etcdc_kvs kvs = {0};
    double t0 = now_us();
    if (etcdc_get_prefix(c, kprefix, strlen(kprefix), &kvs, &err) != ETCDC_OK) {
        fprintf(stderr, "fs_load: range: %s\n", err.message);
        return 1;
    }
    double lat = now_us() - t0;
    report("lib_range", &lat, 1);
    etcdc_kvs_clear(&kvs);
    etcdc_client_free(c);
    return 0;
}

/* One Range (values included) of every leaf directory of a tree `load` made with CHILDREN > 0,
 * one after the other: what close-to-open's "every opendir reads its directory" costs etcd
 * and the network at least for a walk, with no FUSE in between. */
static int rangedirs(const char *kprefix, long n, long children)
{
    etcdc_client *c = connect_client();
    long per_child = (n + children - 1) / children, dirs = (per_child + 99) / 100;
    char dir[256];
    double t0 = now_us();
    for (long ch = 0; ch < children; ch++) {
        for (long d = 0; d < dirs; d++) {
            snprintf(dir, sizeof dir, "%sc%ld/d%05ld/", kprefix, ch, d);
            etcdc_error err;
            etcdc_kvs kvs = {0};
            if (etcdc_get_prefix(c, dir, strlen(dir), &kvs, &err) != ETCDC_OK) {
                fprintf(stderr, "fs_load: rangedirs %s: %s\n", dir, err.message);
                return 1;
            }
            etcdc_kvs_clear(&kvs);
        }
    }
    double lat = now_us() - t0;
    report("lib_rangedirs", &lat, 1);
    printf("DIRS %ld\n", children * dirs);
    etcdc_client_free(c);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static int flock_lat(const char *path, int n)
{
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        die(path);
    double *lat = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        if (flock(fd, LOCK_EX) || flock(fd, LOCK_UN))
            die("flock");
        lat[i] = now_us() - t0;
    }
    report("flock", lat, n);
    close(fd);
    free(lat);
    return 0;
}

/* Ping-pong: the holder writes the release time to shared memory, releases, and the waiter
 * records when its blocked flock returned; the roles alternate. */
static int handoff(const char *path, int n)
{
    double *shared = mmap(NULL, sizeof(double) * (size_t)n, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        die("mmap");
    int to_child[2], to_parent[2];
    if (pipe(to_child) || pipe(to_parent))
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    int me = pid == 0 ? 1 : 0; /* round i: side i % 2 holds first */
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        die(path);
    int in = me ? to_child[0] : to_parent[0], out = me ? to_parent[1] : to_child[1];
    char tok = 0;
    double *lat = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (i % 2 == me) { /* holder */
            if (flock(fd, LOCK_EX))
                die("flock holder");
            if (write(out, &tok, 1) != 1) /* the other side may now block on the lock */
                die("pipe write");
            if (read(in, &tok, 1) != 1) /* it is about to call flock */
                die("pipe read");
            struct timespec ts = {0, 10000000}; /* let it block (and queue in etcd) */
            nanosleep(&ts, NULL);
            shared[i] = now_us();
            if (flock(fd, LOCK_UN))
                die("unlock holder");
            if (read(in, &tok, 1) != 1) /* round done */
                die("pipe read");
        } else { /* waiter */
            if (read(in, &tok, 1) != 1)
                die("pipe read");
            if (write(out, &tok, 1) != 1)
                die("pipe write");
            if (flock(fd, LOCK_EX))
                die("flock waiter");
            lat[i] = now_us() - shared[i];
            if (flock(fd, LOCK_UN))
                die("unlock waiter");
            if (write(out, &tok, 1) != 1)
                die("pipe write");
        }
    }
    /* The child waited in the even rounds: it hands its results over in shared[] (the release
     * times there are no longer needed), the parent has the odd rounds. */
    if (pid == 0) {
        for (int i = 0; i < n; i += 2)
            shared[i] = lat[i];
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    for (int i = 0; i < n; i += 2)
        lat[i] = shared[i];
    report("handoff", lat, n);
    free(lat);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int liblock(const char *name, int n)
{
    etcdc_client *c = connect_client();
    etcdc_error err;
    etcdc_session *s = etcdc_session_new(c, 30, NULL, NULL, &err);
    if (!s) {
        fprintf(stderr, "fs_load: session: %s\n", err.message);
        return 1;
    }
    double *lat = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        etcdc_lock *l = NULL;
        etcdc_lock_opts lo = {.mode = ETCDC_LOCK_EXCLUSIVE}; /* wait until granted */
        double t0 = now_us();
        if (etcdc_lock_acquire(s, name, strlen(name), &lo, &l, &err) != ETCDC_OK ||
            etcdc_lock_release(l, &err) != ETCDC_OK) {
            fprintf(stderr, "fs_load: lock: %s\n", err.message);
            return 1;
        }
        etcdc_lock_free(l);
        lat[i] = now_us() - t0;
    }
    report("lib_lock", lat, n);
    free(lat);
    etcdc_session_free(s);
    etcdc_client_free(c);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static int notify(const char *key, const char *path, int n)
{
    etcdc_client *c = connect_client();
    etcdc_error err;
    double *lat = malloc(sizeof(double) * (size_t)n);
    char want[64], got[4096];
    int m = 0;
    for (int i = 0; i < n; i++) {
        int wl = snprintf(want, sizeof want, "notify-%d-%d\n", (int)getpid(), i);
        double t0 = now_us();
        if (etcdc_put(c, key, strlen(key), want, (size_t)wl, NULL, &err) != ETCDC_OK) {
            fprintf(stderr, "fs_load: put: %s\n", err.message);
            return 1;
        }
        for (;;) {
            ssize_t len = 0;
            if (read_file(path, got, sizeof got, &len) == 0 && len == wl &&
                !memcmp(got, want, (size_t)wl))
                break;
            if (now_us() - t0 > 10e6) {
                fprintf(stderr, "fs_load: %s never showed the new value\n", path);
                return 1;
            }
        }
        lat[m++] = now_us() - t0;
    }
    report("notify_reread", lat, m);
    free(lat);
    etcdc_client_free(c);
    return 0;
}

static int wake(const char *key, const char *path, int timeout_ms)
{
    etcdc_client *c = connect_client();
    etcdc_error err;
    char buf[4096];
    /* inotify */
    int in = inotify_init1(IN_NONBLOCK);
    int wd = in >= 0 ? inotify_add_watch(in, path, IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB) : -1;
    double t0 = now_us();
    etcdc_put(c, key, strlen(key), "inotify\n", 8, NULL, &err);
    struct pollfd p = {.fd = in, .events = POLLIN};
    if (wd >= 0 && poll(&p, 1, timeout_ms) == 1)
        printf("WAKE inotify %.1f\n", now_us() - t0);
    else
        printf("WAKE inotify n/a\n");
    if (in >= 0)
        close(in);
    /* poll() on the open file. A filesystem without poll support reports POLLIN at once, before
     * any change, which is no notification at all; then a change may still be signalled with
     * POLLPRI alone, which is tried next. */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path);
    if (read(fd, buf, sizeof buf) < 0)
        die("read");
    p = (struct pollfd){.fd = fd, .events = POLLIN | POLLPRI};
    if (poll(&p, 1, 0) == 1)
        p.events = POLLPRI;
    if (poll(&p, 1, 0) == 1) {
        printf("WAKE poll n/a (always ready: no poll support)\n");
    } else {
        t0 = now_us();
        etcdc_put(c, key, strlen(key), "polled\n", 7, NULL, &err);
        if (poll(&p, 1, timeout_ms) == 1) {
            printf("WAKE poll %.1f\n", now_us() - t0);
            /* The distribution: re-arm (read from offset 0), Put, wait; 100 samples. */
            enum { SAMPLES = 100 };
            double lat[SAMPLES];
            int n = 0;
            for (int i = 0; i < SAMPLES; i++) {
                if (pread(fd, buf, sizeof buf, 0) < 0)
                    die("pread");
                char v[32];
                int vl = snprintf(v, sizeof v, "wake %d\n", i);
                t0 = now_us();
                etcdc_put(c, key, strlen(key), v, (size_t)vl, NULL, &err);
                if (poll(&p, 1, timeout_ms) != 1)
                    break;
                lat[n++] = now_us() - t0;
            }
            report("poll_wake_dist", lat, n);
        } else {
            printf("WAKE poll n/a (%s: no wake-up within %d ms)\n",
                   p.events == POLLPRI ? "POLLIN always set, no POLLPRI" : "never ready",
                   timeout_ms);
        }
    }
    close(fd);
    etcdc_client_free(c);
    return 0;
}

static void ignore_events(void *arg, const etcdc_watch_response *resp)
{
    (void)arg;
    (void)resp;
}

/* One Txn of a new file's write-back shape (ops_file.c: create-if-absent, parent witness, no
 * directory of the name). */
static void newfile_txn(etcdc_client *c, const char *key, const char *witness, const char *value,
                        size_t size)
{
    size_t klen = strlen(key);
    char below[520], end[520];
    snprintf(below, sizeof below, "%s/", key);
    snprintf(end, sizeof end, "%s0", key); /* '0' follows '/' */
    etcdc_txn *t = etcdc_txn_new();
    etcdc_txn_if(t, key, klen, ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    etcdc_txn_if(t, witness, strlen(witness), ETCDC_CMP_CREATE, ETCDC_GREATER, 0);
    etcdc_txn_if_range(t, below, strlen(below), end, strlen(end), ETCDC_CMP_CREATE, ETCDC_EQUAL, 0);
    etcdc_txn_put(t, ETCDC_THEN, key, klen, value, size, 0);
    etcdc_range_req get = {.key = key, .key_len = klen};
    etcdc_txn_get(t, ETCDC_ELSE, &get);
    etcdc_txn_result res = {0};
    etcdc_error err = {0};
    if (etcdc_txn_commit(c, t, &res, &err) != ETCDC_OK || !res.succeeded) {
        fprintf(stderr, "fs_load: txn on %s: %s\n", key,
                err.code ? err.message : "the key exists already (txnshape needs a new KEYPREFIX)");
        exit(1);
    }
    etcdc_txn_result_clear(&res);
    etcdc_txn_free(t);
}

static int txnshape(const char *kprefix, int n, size_t size, int watch)
{
    etcdc_client *c = connect_client();
    etcdc_error err = {0};
    char *value = malloc(size);
    double *put = malloc(sizeof(double) * (size_t)n), *txn = malloc(sizeof(double) * (size_t)n);
    if (!value || !put || !txn)
        die("malloc");
    memset(value, 't', size);
    char witness[512], key[512];
    snprintf(witness, sizeof witness, "%switness", kprefix);
    if (etcdc_put(c, witness, strlen(witness), "w", 1, NULL, &err) != ETCDC_OK) {
        fprintf(stderr, "fs_load: %s\n", err.message);
        return 1;
    }
    etcdc_watcher *w =
        watch ? etcdc_watch_prefix(c, kprefix, strlen(kprefix), 0, false, ignore_events, NULL, &err)
              : NULL;
    if (watch && !w) {
        fprintf(stderr, "fs_load: watch: %s\n", err.message);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%sp%d", kprefix, i);
        double t0 = now_us();
        if (etcdc_put(c, key, strlen(key), value, size, NULL, &err) != ETCDC_OK) {
            fprintf(stderr, "fs_load: put: %s\n", err.message);
            return 1;
        }
        put[i] = now_us() - t0;
        snprintf(key, sizeof key, "%sn%d", kprefix, i);
        t0 = now_us();
        newfile_txn(c, key, witness, value, size);
        txn[i] = now_us() - t0;
    }
    report("lib_put", put, n);
    report("lib_newfile_txn", txn, n);
    free(value);
    free(put);
    free(txn);
    etcdc_watch_cancel(w);
    etcdc_client_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 7 && !strcmp(argv[1], "writecmp"))
        return writecmp(argv[2], argv[3], atoi(argv[4]), (size_t)atol(argv[5]), atoi(argv[6]));
    if (argc == 8 && !strcmp(argv[1], "tput"))
        return tput(argv[2], atoi(argv[3]), atof(argv[4]), argv[5], atoi(argv[6]),
                    (size_t)atol(argv[7]));
    if (argc == 7 && !strcmp(argv[1], "load"))
        return load(argv[2], atol(argv[3]), (size_t)atol(argv[4]), atol(argv[5]), atoi(argv[6]));
    if (argc == 3 && !strcmp(argv[1], "range"))
        return range(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "rangedirs"))
        return rangedirs(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "flock"))
        return flock_lat(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "handoff"))
        return handoff(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "liblock"))
        return liblock(argv[2], atoi(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "notify"))
        return notify(argv[2], argv[3], atoi(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "txnshape"))
        return txnshape(argv[2], atoi(argv[3]), (size_t)atol(argv[4]), atoi(argv[5]));
    if (argc == 5 && !strcmp(argv[1], "wake"))
        return wake(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: see the comment at the top of bench/fs_load.c\n");
    return 2;
}
