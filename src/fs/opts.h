/*
 * opts.h - the command line (a contract: docs/etcdfs.8, README and fstab lines rely on it).
 *
 * `etcdfs [OPTIONS] [SOURCE] MOUNTPOINT`; every long option `--name=value` is also accepted as
 * `-o name=value` (with '-' or '_' in the name), so that mount(8) and /etc/fstab work through
 * mount.fuse3. Parsing is pure (no gRPC, no FUSE session): it runs before the fork.
 */
#ifndef ETCDFS_OPTS_H
#define ETCDFS_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum etcdfs_consistency {
    CONSISTENCY_CLOSE_TO_OPEN = 0,
    CONSISTENCY_WATCH,
    CONSISTENCY_STRICT,
} etcdfs_consistency;

/* --attrs: whether attribute records (docs/design-attributes.md) are used. */
typedef enum etcdfs_attrs_mode {
    ATTRS_MODE_ETCD = 0, /* shown where a record applies */
    ATTRS_MODE_NONE,     /* never read (a plain mirror: the mount-wide defaults only) */
} etcdfs_attrs_mode;

/* Filled by opts_parse; every string is malloc'ed and owned by the struct (opts_free). */
typedef struct etcdfs_opts {
    /* connection */
    char *endpoints; /* --endpoints, else $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379 */
    char *prefix;    /* --prefix as given (normalised later by names_normalize_prefix) */
    char *cacert, *cert, *key;
    bool insecure_skip_tls_verify;
    char *tls_server_name;      /* --tls-server-name: the name the servers' certificates hold */
    char *user;                 /* --user */
    char *password_file;        /* --password-file */
    int64_t dial_timeout_ms;    /* --dial-timeout (default 5s) */
    int64_t command_timeout_ms; /* --command-timeout (default 5s) */
    char *key_file;             /* --key-file, made absolute */
    char *lock_prefix;          /* --lock-prefix (NULL: LOCKS_DEFAULT_PREFIX in ops_lock.h) */
    int64_t lock_ttl_ms;        /* --lock-ttl: the lock session's lease (0: 10 s) */
    bool lock_fencing;          /* --lock-fencing: writes conditional on the held lock key */
    etcdfs_consistency consistency;
    etcdfs_attrs_mode attrs_mode; /* --attrs */
    /* process */
    bool foreground, debug, show_help, show_version;
    char *log_level; /* --log-level: error, warning, info (NULL: info; -d: debug) */
    bool rekey;      /* `etcdfs rekey [OPTIONS]`: re-seal values, no mount point */
    bool check;      /* `etcdfs --check [OPTIONS] [MOUNTPOINT]`: diagnose, do not mount */
    /* filesystem (-o) */
    bool allow_other, ro, quiet;
    bool allow_plaintext;  /* --allow-plaintext: migration to encryption */
    bool page_cache_reads; /* --page-cache-reads: no read views (read_view.h) */
    bool conflict_check;   /* --conflict-check: write-back guarded by the revision seen at open */
    bool uid_set, gid_set;
    uid_t uid;
    gid_t gid;
    mode_t umask;
    uint64_t max_file_size; /* bytes; EFBIG beyond */
    uint64_t quota;         /* bytes reported by statfs as the size of the store */
    double cache_timeout;   /* seconds the kernel and the daemon may trust cached metadata */
    uint64_t cache_size;    /* bytes of file values kept (cache.h); 0: no cap */
    /* positional */
    char *source;     /* ignored (mount(8) passes the fstab "device") */
    char *mountpoint; /* absolute path */
    /* -o options passed on to FUSE, as one comma-separated list (may be empty) */
    char *fuse_opts;
} etcdfs_opts;

/* What etcd accepts in one request by default (1.5 MiB) minus room for the key and framing. */
#define ETCDFS_DEFAULT_MAX_FILE_SIZE ((uint64_t)(1536 * 1024 - 8 * 1024))
#define ETCDFS_DEFAULT_QUOTA ((uint64_t)2 << 30)
#define ETCDFS_DEFAULT_CACHE_SIZE ((uint64_t)256 << 20)

/* Parses argv. Returns 0 on success, -1 with a one-line message in err (no trailing newline).
 * --help / --version only set show_help / show_version (no mount point needed). */
int opts_parse(int argc, char **argv, etcdfs_opts *o, char *err, size_t err_size);
void opts_free(etcdfs_opts *o);
void opts_print_help(const char *prog);

/* Go/etcdctl-style duration ("5s", "500ms", "1m30s", "1.5s", "0") -> milliseconds.
 * Returns 0 or -1 when malformed or negative. Pure. */
int opts_parse_duration_ms(const char *s, int64_t *out_ms);
/* Size with an optional suffix (k, m, g = 1024-based; K/KiB, M/MiB, G/GiB too) -> bytes. */
int opts_parse_size(const char *s, uint64_t *out);

/* Reads the password: from the password file (first line, trailing newline removed) or
 * $ETCDCTL_PASSWORD, which is then wiped and removed from the environment. *out is malloc'ed
 * (the caller wipes it with OPENSSL_cleanse); NULL when no password is configured. Returns -1 with
 * a message in err when the file cannot be read. */
int opts_read_password(const etcdfs_opts *o, char **out, char *err, size_t err_size);

#endif
