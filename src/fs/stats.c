/*
 * stats.c - counters, gauges and latency histograms (see stats.h), and their text form for
 * <mount>/.etcdfs/stats. Every update is a relaxed atomic: nothing on a request's path waits.
 * The text is built only when the file is opened.
 */
#include "stats.h"
#include "cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "inode.h"
#include "notify.h"

static uint64_t counters[STAT_COUNT];

static const char *const names[STAT_COUNT] = {
#define X(n) "op_" #n,
    STATS_OPS(X)
#undef X
#define X(n) #n,
        STATS_OTHER(X)
#undef X
};

/* Latency buckets: bucket b holds calls that took [2^(b-1), 2^b) microseconds (bucket 0: under
 * 1 us); the last one everything longer (about 35 minutes and up). */
#define BUCKETS 32

typedef struct op_stats {
    uint64_t calls, errors, total_ns, max_ns;
    uint64_t round_trips; /* etcd requests made by the handler on its own thread */
    uint64_t buckets[BUCKETS];
} op_stats;

static op_stats ops[SOP_COUNT];
static const char *const op_names[SOP_COUNT] = {
#define X(n) #n,
    STATS_TIMED_OPS(X)
#undef X
};

#define ERRNO_MAX 134                          /* above every errno Linux uses (EHWPOISON 133) */
static uint64_t errnos[ERRNO_MAX + 1];         /* [ERRNO_MAX]: anything larger */
static uint64_t etcd_errors[ETCDC_ERR_IO + 2]; /* the last code, and "other" */

static int64_t watch_received_rev, watch_applied_rev, watch_events;
static int64_t watch_lag_ns, watch_lag_max_ns, watch_last_ns;
static int64_t locks_held, locks_waiting;

void stats_inc(stats_id id)
{
    __atomic_fetch_add(&counters[id], 1, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int64_t load64(const int64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void store_max(int64_t *slot, int64_t v)
{
    int64_t old = load64(slot);
    while (v > old &&
           !__atomic_compare_exchange_n(slot, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

void stats_op_done(stats_op op, int64_t ns, uint64_t round_trips)
{
    op_stats *s = &ops[op];
    __atomic_fetch_add(&s->round_trips, round_trips, __ATOMIC_RELAXED);
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    int b = us ? 64 - __builtin_clzll(us) : 0;
    if (b >= BUCKETS)
        b = BUCKETS - 1;
    __atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->total_ns, (uint64_t)(ns > 0 ? ns : 0), __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->buckets[b], 1, __ATOMIC_RELAXED);
    store_max((int64_t *)&s->max_ns, ns);
}

void stats_reply_error(int op, int err)
{
    if (op >= 0 && op < SOP_COUNT)
        __atomic_fetch_add(&ops[op].errors, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&errnos[err > 0 && err < ERRNO_MAX ? err : ERRNO_MAX], 1, __ATOMIC_RELAXED);
}

void stats_etcd_error(etcdc_code code)
{
    size_t n = sizeof etcd_errors / sizeof etcd_errors[0];
    size_t i = (size_t)code < n - 1 ? (size_t)code : n - 1;
    __atomic_fetch_add(&etcd_errors[i], 1, __ATOMIC_RELAXED);
}

void stats_watch_received(int64_t rev)
{
    store_max(&watch_received_rev, rev);
}

void stats_watch_applied(int64_t rev, int64_t received_ns)
{
    int64_t now = now_ns();
    int64_t lag = now - received_ns;
    store_max(&watch_applied_rev, rev);
    __atomic_fetch_add(&watch_events, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&watch_lag_ns, lag, __ATOMIC_RELAXED);
    __atomic_store_n(&watch_last_ns, now, __ATOMIC_RELAXED);
    store_max(&watch_lag_max_ns, lag);
}

void stats_locks_held(int delta)
{
    __atomic_fetch_add(&locks_held, delta, __ATOMIC_RELAXED);
}

void stats_locks_waiting(int delta)
{
    __atomic_fetch_add(&locks_waiting, delta, __ATOMIC_RELAXED);
}

static const char *etcd_error_name(size_t i)
{
    static const char *const n[] = {
        "ok",
        "not_found",
        "compare_failed",
        "timeout",
        "unavailable",
        "permission_denied",
        "auth_failed",
        "too_large",
        "no_space",
        "compacted",
        "future_revision",
        "canceled",
        "invalid_argument",
        "too_many_ops",
        "tls",
        "no_memory",
        "crypto",
        "lease_expired",
        "internal",
        "would_block",
    };
    return i < sizeof n / sizeof n[0] ? n[i] : "other";
}

typedef struct cache_size {
    uint64_t files, dirs, other, bytes;
} cache_size;

static void count_node(node *n, void *arg)
{
    cache_size *c = arg;
    if (n->type == NODE_FILE) {
        c->files++;
        node_lock(n);
        if (node_data(n))
            c->bytes += n->size;
        node_unlock(n);
    } else if (n->type == NODE_DIR) {
        c->dirs++;
    } else {
        c->other++;
    }
}

/* The value at quantile q (0..1) as the upper bound of its bucket, in microseconds. */
static uint64_t percentile_us(const uint64_t *b, uint64_t calls, double q)
{
    if (!calls)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)calls + 0.999999), seen = 0;
    if (rank == 0)
        rank = 1;
    for (int i = 0; i < BUCKETS; i++) {
        seen += b[i];
        if (seen >= rank)
            return i == 0 ? 1 : (uint64_t)1 << i;
    }
    return (uint64_t)1 << (BUCKETS - 1);
}

#define LINE(f, name, v) fprintf(f, "%-24s %lld\n", name, (long long)(v))

typedef enum { ERRORS_ANSWERED, ETCD_FAILURES } error_kind;

/* Calls emit for every counter of `kind` that is not zero, with its name ("ENOENT",
 * "timeout", ...; "other" for the catch-all). */
static void each_error(FILE *f, error_kind kind,
                       void (*emit)(FILE *f, error_kind kind, const char *name, uint64_t n))
{
    if (kind == ERRORS_ANSWERED) {
        for (int e = 1; e <= ERRNO_MAX; e++) {
            uint64_t n = load(&errnos[e]);
            const char *en = e < ERRNO_MAX ? strerrorname_np(e) : NULL;
            if (n)
                emit(f, kind, en ? en : "other", n);
        }
        return;
    }
    for (size_t i = 1; i < sizeof etcd_errors / sizeof etcd_errors[0]; i++) {
        uint64_t n = load(&etcd_errors[i]);
        if (n)
            emit(f, kind, etcd_error_name(i), n);
    }
}

static void text_error(FILE *f, error_kind kind, const char *name, uint64_t n)
{
    char line[48];
    snprintf(line, sizeof line, "%s_%s", kind == ERRORS_ANSWERED ? "errno" : "etcd", name);
    LINE(f, line, n);
}

/* One operation's figures, read together: calls is the sum of the buckets read (consistent
 * with them). Returns calls. */
static uint64_t op_snapshot(int op, op_stats *s)
{
    s->calls = 0;
    for (int b = 0; b < BUCKETS; b++)
        s->calls += s->buckets[b] = load(&ops[op].buckets[b]);
    s->errors = load(&ops[op].errors);
    s->total_ns = load(&ops[op].total_ns);
    s->max_ns = load(&ops[op].max_ns);
    s->round_trips = load(&ops[op].round_trips);
    return s->calls;
}

static void format_counters(FILE *f, etcdc_client *client)
{
    etcdc_stats s = {0};
    if (client)
        etcdc_client_stats(client, &s);
    uint64_t total = s.range + s.put + s.delete_range + s.txn + s.compact + s.lease +
                     s.watch_create + s.status + s.auth;
    LINE(f, "rt_range", s.range);
    LINE(f, "rt_put", s.put);
    LINE(f, "rt_delete_range", s.delete_range);
    LINE(f, "rt_txn", s.txn);
    LINE(f, "rt_compact", s.compact);
    LINE(f, "rt_lease", s.lease);
    LINE(f, "rt_watch_create", s.watch_create);
    LINE(f, "rt_status", s.status);
    LINE(f, "rt_auth", s.auth);
    LINE(f, "rt_retries", s.retries);
    LINE(f, "rt_total", total);
    for (int i = 0; i < STAT_COUNT; i++)
        LINE(f, names[i], load(&counters[i]));
}

/* The daemon's resident set, from /proc/self/statm (0 when unreadable). */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, resident = 0;
    int got = f ? fscanf(f, "%llu %llu", &size, &resident) : 0;
    if (f)
        fclose(f);
    return got == 2 ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static void format_state(FILE *f)
{
    cache_size c = {0};
    node_for_each(count_node, &c);
    fprintf(f, "\n# cache (nodes the daemon holds, bytes of file contents cached)\n");
    LINE(f, "cache_files", c.files);
    LINE(f, "cache_dirs", c.dirs);
    LINE(f, "cache_bytes", c.bytes);
    cache_counters cc;
    cache_get_counters(&cc);
    /* against --cache-size: value buffers, and nodes and listings (estimated) */
    LINE(f, "cache_value_bytes", cache_value_bytes());
    LINE(f, "cache_meta_bytes", cache_meta_bytes());
    LINE(f, "cache_limit_bytes", g_fs.opts->cache_size);
    LINE(f, "cache_evictions", cc.evictions);
    LINE(f, "cache_listings_dropped", cc.listings_dropped);
    LINE(f, "cache_names_forgotten", cc.names_forgotten);
    LINE(f, "mem_rss_bytes", rss_bytes());
    LINE(f, "mem_trims", cc.malloc_trims);

    int64_t now = now_ns(), last = load64(&watch_last_ns);
    int64_t received = load64(&watch_received_rev), applied = load64(&watch_applied_rev);
    fprintf(f, "\n# watch (revision lag: received but not yet applied; ms: arrival -> applied)\n");
    LINE(f, "watch_active", notify_watching() ? 1 : 0);
    LINE(f, "watch_events", load64(&watch_events));
    LINE(f, "watch_revision", applied);
    LINE(f, "watch_lag_revisions", received > applied ? received - applied : 0);
    LINE(f, "watch_lag_ms", load64(&watch_lag_ns) / 1000000);
    LINE(f, "watch_lag_max_ms", load64(&watch_lag_max_ns) / 1000000);
    LINE(f, "watch_idle_ms", last ? (now - last) / 1000000 : -1);

    fprintf(f, "\n# locks\n");
    LINE(f, "locks_held", load64(&locks_held));
    LINE(f, "locks_waiting", load64(&locks_waiting));

    fprintf(f, "\n# errors answered, by errno; failed etcd requests, by kind\n");
    each_error(f, ERRORS_ANSWERED, text_error);
    each_error(f, ETCD_FAILURES, text_error);
}

static void format_latency(FILE *f)
{
    fprintf(f, "\n# per operation: etcd round trips made while answering it (rtrips), latency in "
               "microseconds (p50/p90/p99: upper bound of a power-of-two bucket)\n");
    fprintf(f, "#%-15s %10s %8s %10s %8s %8s %8s %8s %8s\n", "op", "calls", "errors", "rtrips",
            "mean", "p50", "p90", "p99", "max");
    for (int i = 0; i < SOP_COUNT; i++) {
        op_stats s;
        if (!op_snapshot(i, &s))
            continue;
        fprintf(f, " %-15s %10llu %8llu %10llu %8llu %8llu %8llu %8llu %8llu\n", op_names[i],
                (unsigned long long)s.calls, (unsigned long long)s.errors,
                (unsigned long long)s.round_trips,
                (unsigned long long)(s.total_ns / s.calls / 1000),
                (unsigned long long)percentile_us(s.buckets, s.calls, 0.50),
                (unsigned long long)percentile_us(s.buckets, s.calls, 0.90),
                (unsigned long long)percentile_us(s.buckets, s.calls, 0.99),
                (unsigned long long)(s.max_ns / 1000));
    }
}

/* ---- the Prometheus text exposition format (<mount>/.etcdfs/metrics) ---------------------- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP etcdfs_%s %s\n# TYPE etcdfs_%s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, const char *labels, double v)
{
    fprintf(f, "etcdfs_%s%s %.17g\n", name, labels, v);
}

/* What a counter of STATS_OTHER counts (NULL: not exported on its own). */
static const char *other_help(const char *name)
{
    static const char *const help[][2] = {
        {"cache_lookup_hit", "Lookups answered from a fresh directory listing, no round trip."},
        {"cache_getattr_hit", "getattr answered from the daemon's cache."},
        {"cache_open_hit", "Opens revalidated without a value transfer."},
        {"listing_pages", "Range requests made by directory listings."},
        {"write_back", "Buffered file contents written to etcd."},
        {"lock_try", "Non-blocking lock requests (flock -n, F_SETLK)."},
        {"lock_wait", "Blocking lock requests (flock, F_SETLKW)."},
    };
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++)
        if (!strcmp(help[i][0], name))
            return help[i][1];
    return NULL;
}

static void prom_requests(FILE *f, etcdc_client *client)
{
    etcdc_stats s = {0};
    if (client)
        etcdc_client_stats(client, &s);
    const struct {
        const char *kind;
        uint64_t n;
    } rt[] = {{"range", s.range},
              {"put", s.put},
              {"delete_range", s.delete_range},
              {"txn", s.txn},
              {"compact", s.compact},
              {"lease", s.lease},
              {"watch_create", s.watch_create},
              {"status", s.status},
              {"auth", s.auth}};
    family(f, "etcd_requests_total", "counter", "etcd requests sent by this mount, by kind.");
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
        char l[64];
        snprintf(l, sizeof l, "{kind=\"%s\"}", rt[i].kind);
        sample(f, "etcd_requests_total", l, (double)rt[i].n);
    }
    family(f, "etcd_retries_total", "counter",
           "etcd requests sent again after a transient failure.");
    sample(f, "etcd_retries_total", "", (double)s.retries);
    family(f, "fuse_requests_total", "counter", "FUSE requests by operation.");
    for (int i = 0; i < STAT_COUNT; i++)
        if (!strncmp(names[i], "op_", 3)) {
            char l[64];
            snprintf(l, sizeof l, "{op=\"%s\"}", names[i] + 3);
            sample(f, "fuse_requests_total", l, (double)load(&counters[i]));
        }
    for (int i = 0; i < STAT_COUNT; i++) {
        const char *help = other_help(names[i]);
        if (!help)
            continue; /* an operation's, or "errors" (errors_total by errno below) */
        char n[64];
        snprintf(n, sizeof n, "%s_total", names[i]);
        family(f, n, "counter", help);
        sample(f, n, "", (double)load(&counters[i]));
    }
}

static void prom_gauge(FILE *f, const char *name, const char *help, double v)
{
    family(f, name, "gauge", help);
    sample(f, name, "", v);
}

static void prom_counter(FILE *f, const char *name, const char *help, double v)
{
    family(f, name, "counter", help);
    sample(f, name, "", v);
}

static void prom_error(FILE *f, error_kind kind, const char *name, uint64_t n)
{
    char l[64];
    snprintf(l, sizeof l, kind == ERRORS_ANSWERED ? "{errno=\"%s\"}" : "{kind=\"%s\"}", name);
    sample(f, kind == ERRORS_ANSWERED ? "errors_total" : "etcd_errors_total", l, (double)n);
}

static void prom_state(FILE *f)
{
    cache_size c = {0};
    node_for_each(count_node, &c);
    cache_counters cc;
    cache_get_counters(&cc);
    prom_gauge(f, "cache_files", "File nodes the daemon holds.", (double)c.files);
    prom_gauge(f, "cache_dirs", "Directory nodes the daemon holds.", (double)c.dirs);
    prom_gauge(f, "cache_value_bytes", "Bytes of file value buffers (against --cache-size).",
               (double)cache_value_bytes());
    prom_gauge(f, "cache_meta_bytes",
               "Bytes of nodes and directory listings, estimated (against --cache-size).",
               (double)cache_meta_bytes());
    prom_gauge(f, "cache_limit_bytes", "--cache-size (0: no cap).", (double)g_fs.opts->cache_size);
    prom_counter(f, "cache_evictions_total", "File values dropped to stay under --cache-size.",
                 (double)cc.evictions);
    prom_counter(f, "cache_listings_dropped_total",
                 "Directory listings dropped to stay under --cache-size.",
                 (double)cc.listings_dropped);
    prom_counter(f, "cache_names_forgotten_total",
                 "Names the kernel was asked to forget to stay under --cache-size.",
                 (double)cc.names_forgotten);
    prom_gauge(f, "resident_memory_bytes", "The daemon's resident set size.", (double)rss_bytes());
    prom_counter(f, "memory_trims_total",
                 "Times memory freed in bulk was handed back (malloc_trim).",
                 (double)cc.malloc_trims);

    int64_t now = now_ns(), last = load64(&watch_last_ns);
    int64_t received = load64(&watch_received_rev), applied = load64(&watch_applied_rev);
    prom_gauge(f, "watch_active", "1 while the watch keeps the cache coherent.",
               notify_watching() ? 1 : 0);
    prom_counter(f, "watch_events_total", "Watch events applied to the cache.",
                 (double)load64(&watch_events));
    prom_gauge(f, "watch_revision", "etcd revision of the last change applied to the cache.",
               (double)applied);
    prom_gauge(f, "watch_lag_revisions", "Revisions received from etcd, not yet applied.",
               (double)(received > applied ? received - applied : 0));
    prom_gauge(f, "watch_lag_seconds", "Arrival to application of the last watch event.",
               (double)load64(&watch_lag_ns) / 1e9);
    prom_gauge(f, "watch_lag_max_seconds", "Longest arrival to application of a watch event.",
               (double)load64(&watch_lag_max_ns) / 1e9);
    prom_gauge(f, "watch_idle_seconds", "Time since the last watch event (-1: none yet).",
               last ? (double)(now - last) / 1e9 : -1);
    prom_gauge(f, "locks_held", "flock/fcntl locks this mount holds.", (double)load64(&locks_held));
    prom_gauge(f, "locks_waiting", "Lock requests waiting.", (double)load64(&locks_waiting));

    family(f, "errors_total", "counter", "Errors answered to the kernel, by errno.");
    each_error(f, ERRORS_ANSWERED, prom_error);
    family(f, "etcd_errors_total", "counter", "Failed etcd requests, by kind.");
    each_error(f, ETCD_FAILURES, prom_error);
}

/* Per operation: a latency histogram (bucket b of op_stats is [2^(b-1), 2^b) microseconds, so
 * its cumulative count goes with le = 2^b microseconds), errors and round trips. */
static void prom_latency(FILE *f)
{
    op_stats s[SOP_COUNT];
    for (int i = 0; i < SOP_COUNT; i++)
        op_snapshot(i, &s[i]);
    family(f, "operation_duration_seconds", "histogram",
           "Time to answer a FUSE request, by operation.");
    for (int i = 0; i < SOP_COUNT; i++) {
        if (!s[i].calls)
            continue;
        uint64_t seen = 0;
        for (int k = 0; k < BUCKETS - 1; k++) {
            seen += s[i].buckets[k];
            fprintf(f, "etcdfs_operation_duration_seconds_bucket{op=\"%s\",le=\"%.6f\"} %llu\n",
                    op_names[i], (double)((uint64_t)1 << k) / 1e6, (unsigned long long)seen);
        }
        fprintf(f, "etcdfs_operation_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n",
                op_names[i], (unsigned long long)s[i].calls);
        fprintf(f, "etcdfs_operation_duration_seconds_sum{op=\"%s\"} %.9f\n", op_names[i],
                (double)s[i].total_ns / 1e9);
        fprintf(f, "etcdfs_operation_duration_seconds_count{op=\"%s\"} %llu\n", op_names[i],
                (unsigned long long)s[i].calls);
    }
    /* each family's samples together, after its own HELP and TYPE */
    family(f, "operation_errors_total", "counter", "FUSE requests answered with an error.");
    for (int i = 0; i < SOP_COUNT; i++)
        if (s[i].calls)
            fprintf(f, "etcdfs_operation_errors_total{op=\"%s\"} %llu\n", op_names[i],
                    (unsigned long long)s[i].errors);
    family(f, "operation_etcd_requests_total", "counter",
           "etcd requests made while answering FUSE requests, by operation.");
    for (int i = 0; i < SOP_COUNT; i++)
        if (s[i].calls)
            fprintf(f, "etcdfs_operation_etcd_requests_total{op=\"%s\"} %llu\n", op_names[i],
                    (unsigned long long)s[i].round_trips);
}

/* The text written by write(f, client), in a malloc'ed string (NULL: out of memory). */
static char *render(void (*write)(FILE *f, etcdc_client *client), etcdc_client *client,
                    size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    write(f, client);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    *out_len = len;
    return buf;
}

static void prometheus_view(FILE *f, etcdc_client *client)
{
    prom_requests(f, client);
    prom_state(f);
    prom_latency(f);
}

static void text_view(FILE *f, etcdc_client *client)
{
    format_counters(f, client);
    format_state(f);
    format_latency(f);
}

char *stats_format_prometheus(etcdc_client *client, size_t *out_len)
{
    return render(prometheus_view, client, out_len);
}

char *stats_format(etcdc_client *client, size_t *out_len)
{
    return render(text_view, client, out_len);
}
