/*
 * main.c - etcdfs entry point: command line, fork, connect, mount, serve, unmount.
 *
 * gRPC must not be initialised before a fork, so the daemon forks first and the child does
 * everything that touches etcd: connect, authenticate, check the prefix, mount. It reports
 * "OK" or the one-line error through a pipe to the parent, which prints it and exits 0 or 1
 * (this replaces fuse_daemonize's parent side). Nothing is mounted unless all of it worked.
 * On SIGTERM/SIGINT/SIGHUP or fusermount3 -u the session loop ends; buffered writes of open
 * files are written to etcd before the process exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "check_cmd.h"
#include "connect.h"
#include "file_sync.h"
#include "fs.h"
#include "inode.h"
#include "log.h"
#include "names.h"
#include "notify.h"
#include "notify_replay.h"
#include "open_files.h"
#include "ops.h"
#include "ops_lock.h"
#include "ops_poll.h"
#include "opts.h"
#include "rekey_cmd.h"
#include "stats.h"
#include "stats_ops.h"

static const struct fuse_lowlevel_ops etcdfs_ops;

/* The last message libfuse logged, to include in our one-line error. */
static char fuse_last_error[256];

static void capture_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = 0;
    if (level <= FUSE_LOG_ERR)
        snprintf(fuse_last_error, sizeof fuse_last_error, "%s", line);
    log_debug("libfuse: %s", line);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* readdirplus on every listing: ls -l costs no request per entry. */
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    /* open(O_TRUNC) arrives as one open: `echo x > f` needs no read of the old value. */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Writes reach us synchronously (no kernel writeback cache): our buffer is the only one. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    /* flock and fcntl locks come to us and become etcd locks (ops_lock.h). */
    if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
        conn->want |= FUSE_CAP_FLOCK_LOCKS;
    if (conn->capable & FUSE_CAP_POSIX_LOCKS)
        conn->want |= FUSE_CAP_POSIX_LOCKS;
    conn->max_write = 1 << 20;
}

static const struct fuse_lowlevel_ops etcdfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .symlink = op_symlink,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .access = op_access,
    .create = op_create,
    .flock = op_flock,
    .getlk = op_getlk,
    .setlk = op_setlk,
    .poll = op_poll,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
};

/* Reads the prefix once: proves that the user may read it, and gives the revision the watch
 * starts after. */
static int check_prefix(int report_fd, int64_t *revision)
{
    size_t end_len;
    char *end = key_prefix_end(g_fs.prefix, g_fs.prefix_len, &end_len);
    etcdc_range_req req = {.key = g_fs.prefix_len ? g_fs.prefix : "\0",
                           .key_len = g_fs.prefix_len ? g_fs.prefix_len : 1,
                           .range_end = end,
                           .range_end_len = end_len,
                           .limit = 1,
                           .keys_only = true};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = end ? etcdc_range(g_fs.client, &req, &kvs, &err) : ETCDC_ERR_NO_MEMORY;
    if (code)
        report_startup(report_fd, "cannot read prefix '%s': %s", g_fs.prefix,
                       err.message[0] ? err.message : etcdc_strerror(code));
    *revision = kvs.revision;
    etcdc_kvs_clear(&kvs);
    free(end);
    return code ? -1 : 0;
}

static void redirect_stdio(void)
{
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
}

/* Everything after the fork. Returns the exit status. */
static int run(const etcdfs_opts *o, char *password, int report_fd)
{
    int status = 1;
    struct fuse_session *se = NULL;
    bool mounted = false, signals = false, notifying = false;
    char *fuse_opts = NULL;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    int64_t revision = 0;
    /* fsname shows in mount(8) and df; a ',' would split the option list. */
    const char *fsname = o->source && !strpbrk(o->source, ",\\") ? o->source : "etcdfs";
    struct fuse_loop_config loop = {.clone_fd = 0, .max_idle_threads = 16};
    int rc;

    g_fs.opts = o;
    g_fs.prefix = names_normalize_prefix(o->prefix, &g_fs.prefix_len);
    g_fs.uid = o->uid_set ? o->uid : getuid();
    g_fs.gid = o->gid_set ? o->gid : getgid();
    g_fs.file_mode = (o->ro ? 0444 : 0666) & ~o->umask;
    g_fs.dir_mode = (o->ro ? 0555 : 0777) & ~o->umask;
    /* strict: the kernel keeps no name or attribute, so every access reaches the daemon */
    g_fs.timeout = o->consistency == CONSISTENCY_STRICT ? 0 : o->cache_timeout;
    g_fs.timeout_ns = (int64_t)(g_fs.timeout * 1e9);
    g_fs.page_size = 256;
    clock_gettime(CLOCK_REALTIME, &g_fs.mount_time);
    if (!g_fs.prefix) {
        report_startup(report_fd, "out of memory");
        goto out;
    }
    table_init(g_fs.prefix, g_fs.prefix_len);
    locks_init();
    if (!strncmp(locks_prefix(), g_fs.prefix, g_fs.prefix_len))
        log_msg(LOG_WARNING,
                "lock keys (--lock-prefix '%s') lie under the mounted prefix: "
                "they will show in listings",
                locks_prefix());

    g_fs.client = connect_etcd(o, password, report_fd);
    if (password) {
        OPENSSL_cleanse(password, strlen(password));
        password[0] = 0;
    }
    if (!g_fs.client)
        goto out;
    if (check_prefix(report_fd, &revision))
        goto out;

    if (asprintf(&fuse_opts, "fsname=%s,subtype=etcdfs,default_permissions%s%s%s", fsname,
                 o->allow_other ? ",allow_other" : "", o->fuse_opts ? "," : "",
                 o->fuse_opts ? o->fuse_opts : "") < 0) {
        fuse_opts = NULL;
        report_startup(report_fd, "out of memory");
        goto out;
    }
    if (fuse_opt_add_arg(&args, "etcdfs") || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, fuse_opts)) {
        report_startup(report_fd, "out of memory");
        goto out;
    }
    /* The session runs the handlers inside two wrappers: the inotify replay's own requests are
     * answered before them (notify_replay.h), and the stats view times every operation. */
    se = fuse_session_new(&args, stats_wrap_ops(replay_wrap_ops(&etcdfs_ops)), sizeof etcdfs_ops,
                          NULL);
    if (!se) {
        report_startup(report_fd, "bad FUSE options '%s'%s%s", o->fuse_opts ? o->fuse_opts : "",
                       fuse_last_error[0] ? ": " : "", fuse_last_error);
        goto out;
    }
    g_fs.se = se;
    if (fuse_set_signal_handlers(se)) {
        report_startup(report_fd, "cannot install signal handlers");
        goto out;
    }
    signals = true;
    if (fuse_session_mount(se, o->mountpoint)) {
        report_startup(report_fd, "cannot mount on %s%s%s", o->mountpoint,
                       fuse_last_error[0] ? ": " : "", fuse_last_error);
        goto out;
    }
    mounted = true;
    report_startup(report_fd, "OK");
    if (report_fd >= 0) {
        close(report_fd);
        report_fd = -1;
        if (chdir("/") == 0) {
            /* nothing: relative paths are not used after this point */
        }
        redirect_stdio();
        log_to_syslog();
    }
    log_msg(LOG_INFO, "mounted %s (prefix '%s') on %s", o->endpoints, g_fs.prefix, o->mountpoint);
    if (o->insecure_skip_tls_verify)
        log_msg(LOG_WARNING,
                "--insecure-skip-tls-verify: the server's certificate is not verified; anyone "
                "between here and %s can pose as etcd (give --cacert instead)",
                o->endpoints);
    rc = notify_start(revision + 1);
    notifying = true;
    if (rc)
        log_msg(LOG_WARNING, "no watch: remote changes show after --cache-timeout");
    if (cache_keeper_start() != 0)
        log_msg(LOG_WARNING, "no cache keeper thread: --cache-size bounds file values only");

    rc = fuse_session_loop_mt(se, &loop);
    /* The loop ended (unmount or signal): buffered content goes to etcd before we leave, and
     * only then are the locks released (a holder's last write lands while it holds them). */
    file_writeback_all();
    locks_shutdown();
    poll_shutdown();
    status = rc < 0 ? 1 : 0;
    log_msg(LOG_INFO, "unmounting %s", o->mountpoint);
out:
    cache_keeper_stop();
    if (notifying)
        notify_stop();
    if (mounted)
        fuse_session_unmount(se);
    if (signals)
        fuse_remove_signal_handlers(se);
    if (se)
        fuse_session_destroy(se);
    g_fs.se = NULL;
    file_handles_free_all(); /* files still open at SIGTERM: no release will come */
    fuse_opt_free_args(&args);
    free(fuse_opts);
    if (g_fs.client)
        etcdc_client_free(g_fs.client);
    g_fs.client = NULL;
    if (g_fs.prefix)
        table_destroy();
    free(g_fs.prefix);
    if (report_fd >= 0)
        close(report_fd);
    return status;
}

/* Parent side of the daemon: wait for the child's verdict. */
static int wait_for_child(int fd)
{
    char buf[600];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = 0;
    close(fd);
    if (!strcmp(buf, "OK"))
        return 0;
    fprintf(stderr, "etcdfs: %s\n", len ? buf : "the daemon exited before mounting");
    return 1;
}

int main(int argc, char **argv)
{
    etcdfs_opts o;
    char err[512];
    int status = 1;
    char *password = NULL;
    int pipefd[2];
    pid_t pid;
    if (opts_parse(argc, argv, &o, err, sizeof err)) {
        fprintf(stderr, "etcdfs: %s\n", err);
        goto out;
    }
    if (o.show_help) {
        opts_print_help(argv[0]);
        status = 0;
        goto out;
    }
    if (o.show_version) {
        printf("etcdfs %s (libetcdc %s, libfuse %s)\n", ETCDC_VERSION, ETCDC_VERSION,
               fuse_pkgversion());
        status = 0;
        goto out;
    }
    if (opts_read_password(&o, &password, err, sizeof err)) {
        fprintf(stderr, "etcdfs: %s\n", err);
        goto out;
    }
    if (o.rekey) {
        status = rekey_run(&o, password);
        goto out;
    }
    if (o.check) {
        status = check_run(&o, password);
        goto out;
    }
    /* Sealed values carry the envelope: keep the largest file within what etcd accepts. */
    if (o.key_file)
        o.max_file_size -= o.max_file_size > etcdc_envelope_overhead() ? etcdc_envelope_overhead()
                                                                       : o.max_file_size;
    log_init(o.foreground, o.debug);
    if (o.log_level)
        log_set_level(o.log_level);
    fuse_set_log_func(capture_fuse_log);
    if (o.foreground) {
        status = run(&o, password, -1);
        goto out;
    }
    if (pipe2(pipefd, O_CLOEXEC)) {
        fprintf(stderr, "etcdfs: pipe: %s\n", strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "etcdfs: fork: %s\n", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        goto out;
    }
    if (pid > 0) {
        close(pipefd[1]);
        status = wait_for_child(pipefd[0]);
        goto out;
    }
    close(pipefd[0]);
    setsid();
    status = run(&o, password, pipefd[1]);
out:
    if (password) {
        OPENSSL_cleanse(password, strlen(password));
        free(password);
    }
    opts_free(&o);
    return status;
}
