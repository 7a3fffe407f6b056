/*
 * opts.c - command line parsing (see opts.h). The option table sits next to the struct it
 * fills, so adding an option is one line here plus its documentation in docs/etcdfs.8.
 */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum opt_type {
    T_STRING,   /* char * */
    T_FLAG,     /* bool; "name" or "name=true|false|1|0" */
    T_DURATION, /* int64_t milliseconds */
    T_SIZE,     /* uint64_t bytes */
    T_UID,      /* uid_t (sets uid_set) */
    T_GID,      /* gid_t (sets gid_set) */
    T_OCTAL,    /* mode_t */
    T_SECONDS,  /* double */
    T_CONSISTENCY,
    T_ATTRS,
    T_PASSWORD, /* refused: passwords never come from argv */
} opt_type;

typedef struct opt_spec {
    const char *name; /* with '-'; '_' is accepted too */
    opt_type type;
    size_t offset;
    const char *arg; /* for --help */
    const char *help;
} opt_spec;

#define F(field) offsetof(etcdfs_opts, field)

static const opt_spec option_table[] = {
    {"endpoints", T_STRING, F(endpoints), "HOST:PORT[,...]",
     "etcd endpoints (default $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)"},
    {"prefix", T_STRING, F(prefix), "KEYPREFIX",
     "key prefix shown at the mount root (default /; a '/' is appended if missing)"},
    {"cacert", T_STRING, F(cacert), "FILE", "CA bundle (PEM) to verify the server"},
    {"cert", T_STRING, F(cert), "FILE", "client certificate (PEM)"},
    {"key", T_STRING, F(key), "FILE", "client private key (PEM)"},
    {"insecure-skip-tls-verify", T_FLAG, F(insecure_skip_tls_verify), NULL,
     "use TLS but accept any server certificate (testing only; logged as a warning)"},
    {"tls-server-name", T_STRING, F(tls_server_name), "NAME",
     "name to expect in the servers' certificates (default: the endpoint's host)"},
    {"user", T_STRING, F(user), "NAME",
     "etcd user (password from --password-file or "
     "$ETCDCTL_PASSWORD)"},
    {"password-file", T_STRING, F(password_file), "FILE", "file whose first line is the password"},
    {"password", T_PASSWORD, 0, NULL, NULL},
    {"dial-timeout", T_DURATION, F(dial_timeout_ms), "DURATION",
     "how long to wait for the cluster at mount time (default 5s)"},
    {"command-timeout", T_DURATION, F(command_timeout_ms), "DURATION",
     "deadline of each etcd request, retries included (default 5s)"},
    {"key-file", T_STRING, F(key_file), "FILE",
     "encrypt values with the key(s) in FILE (mode 600; see docs/encryption.md)"},
    {"allow-plaintext", T_FLAG, F(allow_plaintext), NULL,
     "with --key-file: read unencrypted values instead of refusing them (migration)"},
    {"log-level", T_STRING, F(log_level), "LEVEL",
     "error, warning, info (default) or debug (every operation; to syslog when daemonized)"},
    {"lock-prefix", T_STRING, F(lock_prefix), "KEYPREFIX",
     "flock/fcntl on a file take the etcd lock <KEYPREFIX><file's key> (default etcdfs-locks, "
     "outside listings; see docs/locks.md)"},
    {"lock-ttl", T_DURATION, F(lock_ttl_ms), "DURATION",
     "lease of the mount's lock session: locks of a dead host or daemon end after it "
     "(default 10s)"},
    {"lock-fencing", T_FLAG, F(lock_fencing), NULL,
     "while this mount holds a lock, writes land only if its lock key still exists (else EIO)"},
    {"consistency", T_CONSISTENCY, F(consistency), "MODE",
     "close-to-open (default), watch (the watch-coherent cache answers without a round trip) "
     "or strict (every access asks etcd); docs/consistency.md"},
    {"attrs", T_ATTRS, F(attrs_mode), "MODE",
     "etcd (default): keep mode, owner, times, symlinks and FIFOs in etcd as attribute "
     "records next to the keys; none: a plain mirror (--uid/--gid/--umask only); "
     "docs/design-attributes.md"},
    {"allow-other", T_FLAG, F(allow_other), NULL, "let other users access the mount"},
    {"ro", T_FLAG, F(ro), NULL, "read-only mount"},
    {"quiet", T_FLAG, F(quiet), NULL,
     "with --attrs=none: chmod/chown succeed without effect instead of EPERM"},
    {"page-cache-reads", T_FLAG, F(page_cache_reads), NULL,
     "read-only opens read through the kernel's page cache: shared mmap of them works, but a "
     "read racing a change can be torn (default: each reads the version it opened, whole)"},
    {"conflict-check", T_FLAG, F(conflict_check), NULL,
     "close/fsync fail with ESTALE, not overwriting, if changed in etcd since open"},
    {"uid", T_UID, F(uid), "N", "owner of every file (default: the mounting user)"},
    {"gid", T_GID, F(gid), "N", "group of every file (default: the mounting user's group)"},
    {"umask", T_OCTAL, F(umask), "OCTAL",
     "mode of entries without attribute records: 0666/0777 minus umask (default 022)"},
    {"max-file-size", T_SIZE, F(max_file_size), "BYTES",
     "largest file; bigger writes fail with EFBIG (default 1.5MiB - 8KiB)"},
    {"cache-size", T_SIZE, F(cache_size), "BYTES",
     "what the daemon caches: file values, nodes of the names the kernel holds, directory "
     "listings; beyond it the least recently used are dropped and read again when needed "
     "(default 256M, 0: no cap)"},
    {"quota", T_SIZE, F(quota), "BYTES",
     "store size reported by statfs (default 2G, etcd's "
     "default quota)"},
    {"cache-timeout", T_SECONDS, F(cache_timeout), "SECONDS",
     "how long cached names and attributes are trusted (default 1)"},
};

/* FUSE and mount(8) options passed on to libfuse unchanged. */
static const char *const fuse_passthrough[] = {
    "allow_root", "default_permissions",
    "fsname",     "subtype",
    "max_read",   "auto_unmount",
    "rw",         "dev",
    "nodev",      "suid",
    "nosuid",     "exec",
    "noexec",     "atime",
    "noatime",    "relatime",
    "norelatime", "strictatime",
    "sync",       "async",
    "dirsync",    "blkdev",
    "blksize",
};
/* mount(8)/fstab options that mean nothing to a FUSE daemon and are dropped. */
static const char *const mount_ignored[] = {
    "defaults", "_netdev", "nofail", "auto",    "noauto", "user", "users",
    "nouser",   "owner",   "group",  "comment", "x-",     "loop", "context",
};

static int fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

int opts_parse_duration_ms(const char *s, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1},
                 {"s", 1000},  {"m", 60000}, {"h", 3600000}};
    if (!s || !*s)
        return -1;
    if (!strcmp(s, "0")) {
        *out_ms = 0;
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -1;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno)
            return -1;
        p = end;
        size_t best = 0;
        int which = -1;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i].unit);
            /* longest match: "ms" before "m" */
            if (!strncmp(p, units[i].unit, n) && n > best) {
                best = n;
                which = (int)i;
            }
        }
        if (which < 0)
            return -1;
        p += best;
        total += v * units[which].ms;
    }
    if (total > 1e15)
        return -1;
    *out_ms = (int64_t)ceil(total);
    return 0;
}

int opts_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mult = 1;
    if (*end) {
        char c = (char)tolower((unsigned char)*end);
        const char *rest = end + 1;
        if (c == 'k')
            mult = 1024;
        else if (c == 'm')
            mult = 1024 * 1024;
        else if (c == 'g')
            mult = 1024 * 1024 * 1024;
        else
            return -1;
        if (*rest && strcmp(rest, "i") && strcmp(rest, "iB") && strcmp(rest, "B"))
            return -1;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *out = (uint64_t)v * mult;
    return 0;
}

static int parse_uint(const char *s, int base, unsigned long *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    *out = strtoul(s, &end, base);
    return errno || *end ? -1 : 0;
}

static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

/* Applies one known option. value is NULL when the option was given without '='. */
static int apply(etcdfs_opts *o, const opt_spec *spec, const char *value, char *err, size_t es)
{
    void *field = (char *)o + spec->offset;
    if (spec->type == T_PASSWORD)
        return fail(err, es,
                    "passwords are not accepted on the command line: use "
                    "--password-file=FILE or $ETCDCTL_PASSWORD");
    if (spec->type == T_FLAG) {
        bool v = true;
        if (value && (!strcmp(value, "false") || !strcmp(value, "0")))
            v = false;
        else if (value && strcmp(value, "true") && strcmp(value, "1"))
            return fail(err, es, "option '%s' takes no value (or true/false), got '%s'", spec->name,
                        value);
        *(bool *)field = v;
        return 0;
    }
    /* An empty prefix is meaningful: the whole key space. */
    bool empty_ok = spec->type == T_STRING && !strcmp(spec->name, "prefix");
    if (!value || (!*value && !empty_ok))
        return fail(err, es, "option '%s' needs a value (%s=%s)", spec->name, spec->name,
                    spec->arg ? spec->arg : "VALUE");
    unsigned long u;
    switch (spec->type) {
    case T_STRING:
        if (!strcmp(spec->name, "user") && strchr(value, ':'))
            return fail(err, es,
                        "--user takes a name only: give the password with "
                        "--password-file=FILE or $ETCDCTL_PASSWORD");
        return set_string((char **)field, value) ? fail(err, es, "out of memory") : 0;
    case T_DURATION:
        if (opts_parse_duration_ms(value, (int64_t *)field))
            return fail(err, es, "bad duration for '%s': '%s' (examples: 5s, 500ms, 1m)",
                        spec->name, value);
        return 0;
    case T_SIZE:
        if (opts_parse_size(value, (uint64_t *)field) || *(uint64_t *)field == 0)
            return fail(err, es, "bad size for '%s': '%s' (examples: 1048576, 512k, 1M)",
                        spec->name, value);
        return 0;
    case T_UID:
        if (parse_uint(value, 10, &u) || u > UINT_MAX - 1)
            return fail(err, es, "bad uid '%s'", value);
        o->uid = (uid_t)u;
        o->uid_set = true;
        return 0;
    case T_GID:
        if (parse_uint(value, 10, &u) || u > UINT_MAX - 1)
            return fail(err, es, "bad gid '%s'", value);
        o->gid = (gid_t)u;
        o->gid_set = true;
        return 0;
    case T_OCTAL:
        if (parse_uint(value, 8, &u) || u > 0777)
            return fail(err, es, "bad umask '%s' (octal, e.g. 022)", value);
        *(mode_t *)field = (mode_t)u;
        return 0;
    case T_SECONDS: {
        char *end;
        double d = strtod(value, &end);
        if (*end || !(d >= 0) || d > 86400 * 365)
            return fail(err, es, "bad number of seconds for '%s': '%s'", spec->name, value);
        *(double *)field = d;
        return 0;
    }
    case T_CONSISTENCY:
        if (!strcmp(value, "close-to-open"))
            o->consistency = CONSISTENCY_CLOSE_TO_OPEN;
        else if (!strcmp(value, "watch"))
            o->consistency = CONSISTENCY_WATCH;
        else if (!strcmp(value, "strict"))
            o->consistency = CONSISTENCY_STRICT;
        else
            return fail(err, es, "bad consistency '%s' (close-to-open, watch or strict)", value);
        return 0;
    case T_ATTRS:
        if (!strcmp(value, "etcd"))
            o->attrs_mode = ATTRS_MODE_ETCD;
        else if (!strcmp(value, "none"))
            o->attrs_mode = ATTRS_MODE_NONE;
        else
            return fail(err, es, "bad attrs mode '%s' (etcd or none)", value);
        return 0;
    default: return fail(err, es, "internal error: option '%s'", spec->name);
    }
}

static const opt_spec *find_spec(const char *name, size_t len)
{
    char norm[64];
    if (len >= sizeof norm)
        return NULL;
    for (size_t i = 0; i < len; i++)
        norm[i] = name[i] == '_' ? '-' : name[i];
    norm[len] = 0;
    for (size_t i = 0; i < sizeof option_table / sizeof option_table[0]; i++)
        if (!strcmp(option_table[i].name, norm))
            return &option_table[i];
    return NULL;
}

static bool in_list(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list[i]);
        if (l == len && !strncmp(list[i], name, len))
            return true;
        if (list[i][l - 1] == '-' && len >= l && !strncmp(list[i], name, l)) /* "x-" family */
            return true;
    }
    return false;
}

static int append_fuse_opt(etcdfs_opts *o, const char *item, size_t len)
{
    size_t old = o->fuse_opts ? strlen(o->fuse_opts) : 0;
    char *grown = realloc(o->fuse_opts, old + len + 2);
    if (!grown)
        return -1;
    if (old)
        grown[old++] = ',';
    memcpy(grown + old, item, len);
    grown[old + len] = 0;
    o->fuse_opts = grown;
    return 0;
}

/* One "-o" list: a,b=c,... */
static int parse_o_list(etcdfs_opts *o, const char *list, char *err, size_t es)
{
    const char *p = list;
    int rc = 0;
    bool in_endpoints = false; /* the previous item was endpoints= or continued it */
    while (rc == 0 && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *item = strndup(p, len);
        if (!item)
            return fail(err, es, "out of memory");
        char *eq = strchr(item, '=');
        size_t name_len = eq ? (size_t)(eq - item) : len;
        const opt_spec *spec = find_spec(item, name_len);
        bool continues = in_endpoints && !eq && strchr(item, ':');
        in_endpoints = false;
        if (len == 0) {
            /* empty item ("a,,b"): ignore */
        } else if (continues) {
            /* "-o endpoints=h1:2379,h2:2379,prefix=/x": the comma also separates the -o items
             * (fstab), so a host:port item right after endpoints= continues the list. */
            char *joined = NULL;
            if (asprintf(&joined, "%s,%s", o->endpoints, item) < 0)
                rc = fail(err, es, "out of memory");
            else {
                free(o->endpoints);
                o->endpoints = joined;
                in_endpoints = true;
            }
        } else if (spec) {
            rc = apply(o, spec, eq ? eq + 1 : NULL, err, es);
            in_endpoints = rc == 0 && !strcmp(spec->name, "endpoints");
            if (rc == 0 && !strcmp(spec->name, "ro"))
                rc = append_fuse_opt(o, "ro", 2) ? fail(err, es, "out of memory") : 0;
        } else if (name_len == 5 && !strncmp(item, "debug", 5)) {
            o->debug = true;
        } else if (in_list(item, name_len, fuse_passthrough,
                           sizeof fuse_passthrough / sizeof fuse_passthrough[0])) {
            rc = append_fuse_opt(o, item, len) ? fail(err, es, "out of memory") : 0;
        } else if (!in_list(item, name_len, mount_ignored,
                            sizeof mount_ignored / sizeof mount_ignored[0])) {
            rc = fail(err, es, "unknown option '-o %s' (see etcdfs --help)", item);
        }
        free(item);
        p = comma ? comma + 1 : p + len;
    }
    return rc;
}

static int set_positional(etcdfs_opts *o, const char *arg, char *err, size_t es)
{
    if (!o->mountpoint)
        return set_string(&o->mountpoint, arg) ? fail(err, es, "out of memory") : 0;
    if (!o->source) {
        /* Two positionals: the first was SOURCE. */
        o->source = o->mountpoint;
        o->mountpoint = NULL;
        return set_string(&o->mountpoint, arg) ? fail(err, es, "out of memory") : 0;
    }
    return fail(err, es, "too many arguments: '%s' (usage: etcdfs [OPTIONS] [SOURCE] MOUNTPOINT)",
                arg);
}

int opts_parse(int argc, char **argv, etcdfs_opts *o, char *err, size_t es)
{
    memset(o, 0, sizeof *o);
    o->dial_timeout_ms = 5000;
    o->command_timeout_ms = 5000;
    o->umask = 022;
    o->max_file_size = ETCDFS_DEFAULT_MAX_FILE_SIZE;
    o->quota = ETCDFS_DEFAULT_QUOTA;
    o->cache_size = ETCDFS_DEFAULT_CACHE_SIZE;
    o->cache_timeout = 1.0;
    int rc = 0;
    bool only_positional = false;
    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "rekey")) {
        o->rekey = true;
        first = 2;
    }
    for (int i = first; rc == 0 && i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || !a[1]) {
            rc = o->rekey ? fail(err, es, "rekey takes options only, not '%s'", a)
                          : set_positional(o, a, err, es);
        } else if (!strcmp(a, "--")) {
            only_positional = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->show_help = true;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            o->show_version = true;
        } else if (!strcmp(a, "--check")) {
            o->check = true;
        } else if (!strcmp(a, "-f")) {
            o->foreground = true;
        } else if (!strcmp(a, "-d")) {
            o->debug = true;
            o->foreground = true;
        } else if (!strcmp(a, "-s")) {
            /* single-threaded: accepted for compatibility, the daemon stays multi-threaded */
        } else if (!strncmp(a, "-o", 2)) {
            const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            rc = list ? parse_o_list(o, list, err, es) : fail(err, es, "-o needs a value");
        } else if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
            const opt_spec *spec = find_spec(name, name_len);
            if (!spec) {
                rc = fail(err, es, "unknown option '%s' (see etcdfs --help)", a);
            } else if (eq || spec->type == T_FLAG || spec->type == T_PASSWORD) {
                rc = apply(o, spec, eq ? eq + 1 : NULL, err, es);
                if (rc == 0 && !strcmp(spec->name, "ro"))
                    rc = append_fuse_opt(o, "ro", 2) ? fail(err, es, "out of memory") : 0;
            } else if (i + 1 < argc) {
                rc = apply(o, spec, argv[++i], err, es);
            } else {
                rc = fail(err, es, "option '--%s' needs a value", spec->name);
            }
        } else {
            rc = fail(err, es, "unknown option '%s' (see etcdfs --help)", a);
        }
    }
    if (rc == 0 && !o->show_help && !o->show_version) {
        if (!o->endpoints) {
            const char *env = getenv("ETCDCTL_ENDPOINTS");
            if (set_string(&o->endpoints, env && *env ? env : "127.0.0.1:2379"))
                rc = fail(err, es, "out of memory");
        }
        if (rc == 0 && !o->prefix && set_string(&o->prefix, "/"))
            rc = fail(err, es, "out of memory");
        if (rc == 0 && o->rekey && !o->key_file)
            rc = fail(err, es, "rekey needs --key-file (the newest key seals)");
        if (rc == 0 && !o->mountpoint && !o->rekey && !o->check)
            rc = fail(err, es,
                      "no mount point given (usage: etcdfs [OPTIONS] [SOURCE] "
                      "MOUNTPOINT)");
        if (rc == 0 && o->log_level && strcmp(o->log_level, "error") &&
            strcmp(o->log_level, "warning") && strcmp(o->log_level, "info") &&
            strcmp(o->log_level, "debug"))
            rc =
                fail(err, es, "bad --log-level '%s' (error, warning, info or debug)", o->log_level);
        if (rc == 0 && o->allow_plaintext && !o->key_file)
            rc = fail(err, es, "--allow-plaintext needs --key-file");
        if (rc == 0 && o->key_file) {
            /* Absolute: the key file is read by the daemon after it changed directory. */
            char *abs = realpath(o->key_file, NULL);
            if (!abs)
                rc = fail(err, es, "key file '%s': %s", o->key_file, strerror(errno));
            else {
                free(o->key_file);
                o->key_file = abs;
            }
        }
        if (rc == 0 && (o->cert != NULL) != (o->key != NULL))
            rc = fail(err, es, "--cert and --key must be given together");
        if (rc == 0 && o->mountpoint) {
            char *abs = realpath(o->mountpoint, NULL);
            if (!abs)
                rc = fail(err, es, "mount point '%s': %s", o->mountpoint, strerror(errno));
            else {
                free(o->mountpoint);
                o->mountpoint = abs;
            }
        }
    }
    return rc;
}

void opts_free(etcdfs_opts *o)
{
    free(o->endpoints);
    free(o->prefix);
    free(o->cacert);
    free(o->cert);
    free(o->key);
    free(o->tls_server_name);
    free(o->user);
    free(o->password_file);
    free(o->key_file);
    free(o->lock_prefix);
    free(o->log_level);
    free(o->source);
    free(o->mountpoint);
    free(o->fuse_opts);
    memset(o, 0, sizeof *o);
}

int opts_read_password(const etcdfs_opts *o, char **out, char *err, size_t es)
{
    *out = NULL;
    if (o->password_file) {
        FILE *f = fopen(o->password_file, "r");
        if (!f)
            return fail(err, es, "cannot read password file '%s': %s", o->password_file,
                        strerror(errno));
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        *out = strdup(buf);
        OPENSSL_cleanse(buf, sizeof buf);
        return *out ? 0 : fail(err, es, "out of memory");
    }
    char *env = getenv("ETCDCTL_PASSWORD");
    if (env && o->user) {
        *out = strdup(env);
        /* Not left in the environment for the daemon's life: /proc/PID/environ shows the
         * original block, so the bytes are wiped where they are before the variable goes. */
        OPENSSL_cleanse(env, strlen(env));
        unsetenv("ETCDCTL_PASSWORD");
        return *out ? 0 : fail(err, es, "out of memory");
    }
    if (o->user)
        return fail(err, es,
                    "--user=%s needs a password: --password-file=FILE or "
                    "$ETCDCTL_PASSWORD",
                    o->user);
    return 0;
}

void opts_print_help(const char *prog)
{
    printf("usage: %s [OPTIONS] [SOURCE] MOUNTPOINT\n"
           "       %s --check [OPTIONS] [MOUNTPOINT]\n"
           "       %s rekey --key-file=FILE [OPTIONS]\n\n"
           "Mounts an etcd v3 key prefix as a directory tree (FUSE). SOURCE is ignored (for\n"
           "mount(8)). Every --name=VALUE is also accepted as -o name=VALUE.\n"
           "`rekey` re-seals every value under --prefix with the newest key of the key file\n"
           "(after adding a key); it is safe to run while writers are busy, and to run again.\n\n"
           "  -f                       stay in the foreground\n"
           "  -d                       debug: log every operation to stderr (implies -f)\n"
           "  -o OPT[,OPT...]          mount options (below, plus FUSE options such as\n"
           "                           default_permissions, fsname=, max_read=)\n"
           "  --check                  diagnose the options (connection, TLS, auth, cluster,\n"
           "                           prefix, lock prefix, key file) and exit; no mount\n"
           "  -h, --help               this help\n"
           "  -V, --version            version\n\n",
           prog, prog, prog);
    for (size_t i = 0; i < sizeof option_table / sizeof option_table[0]; i++) {
        const opt_spec *s = &option_table[i];
        if (!s->help)
            continue;
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", s->name, s->arg ? "=" : "", s->arg ? s->arg : "");
        printf("  %-34s %s\n", left, s->help);
    }
    printf("\nSee etcdfs(8) and docs/ for the key mapping, consistency and statistics.\n");
}
