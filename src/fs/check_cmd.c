/*
 * check_cmd.c - `etcdfs --check [OPTIONS] [SOURCE] [MOUNTPOINT]`: diagnose a configuration
 * before mounting. Every check prints one line, "ok:" or "FAIL:", and a failure says what to
 * fix. The same options as a mount are used, so a passing check means the mount would connect.
 *
 * Checks, in order (a check that needs a connection is skipped when connecting failed):
 * TLS and key files readable, connect + authenticate (TLS handshake included), cluster members,
 * version / leader / database size of the serving member, prefix readable (one Range, limit 1,
 * and a value of it opens when --key-file is given), lock prefix writable (a probe key put and
 * deleted: the only write), key file usable. Never prints a value, a password or key bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_cmd.h"
#include "connect.h"
#include "diagnose.h"
#include "fs.h"
#include "names.h"
#include "ops_lock.h"

typedef struct checker {
    int failures;
} checker;

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ok:   ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("      ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* A problem that does not stop the mount (e.g. one member of three down): not a failure. */
static void warn(const char *fix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("warn: ", stdout);
    vprintf(fmt, ap);
    if (fix && *fix)
        printf(" - %s", fix);
    fputc('\n', stdout);
    va_end(ap);
}

/* what: the problem; fix: what the operator should do (one line together). */
static void fail(checker *ck, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(checker *ck, const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    if (fix && *fix)
        printf(" - %s", fix);
    fputc('\n', stdout);
    va_end(ap);
    ck->failures++;
}

static const char *msg_of(const etcdc_error *err, etcdc_code code)
{
    return err->message[0] ? err->message : etcdc_strerror(code);
}

static bool contains(const char *haystack, const char *needle)
{
    return strcasestr(haystack, needle) != NULL;
}

/* A file option must name a readable file; says which option to fix. */
static bool check_file(checker *ck, const char *option, const char *path)
{
    if (!path)
        return true;
    if (access(path, R_OK) == 0)
        return true;
    char fix[96];
    snprintf(fix, sizeof fix, "check --%s", option);
    fail(ck, fix, "cannot read %s file '%s': %s", option, path, strerror(errno));
    return false;
}

/* gRPC's messages are long: lead with the cause an operator recognises. */
static const char *short_reason(const char *m)
{
    static const struct {
        const char *needle, *reason;
    } known[] = {
        {"Connection refuse", "connection refused"}, /* gRPC may cut the message here */
        {"No route to host", "no route to host"},
        {"Name or service not known", "unknown host name"},
        {"DNS resolution failed", "unknown host name"},
        {"certificate verify failed", "certificate verify failed"},
        {"CERTIFICATE_VERIFY_FAILED", "certificate verify failed"},
        {"wrong version number", "the server does not speak TLS"},
        {"authentication failed", "invalid user name or password"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (contains(m, known[i].needle))
            return known[i].reason;
    return diagnose_openssl_reason(m);
}

/* A client configuration from the options (the mount's own); endpoints NULL: --endpoints. */
static etcdc_config *make_config(checker *ck, const etcdfs_opts *o, const char *password,
                                 const char *endpoints)
{
    char why[512];
    etcdc_config *cfg = connect_config(o, password, endpoints, why, sizeof why);
    if (!cfg)
        fail(ck, NULL, "%s", why);
    return cfg;
}

static void human_size(int64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* Asks one member for its status through its advertised client URLs: a member that is down
 * or unreachable shows here even while the cluster (and the mount) works without it. */
static void show_member(checker *ck, const etcdfs_opts *o, const char *password,
                        const etcdc_member *m, const char *urls, uint64_t leader)
{
    const char *name = m->name && *m->name ? m->name : "?";
    char line[256];
    snprintf(line, sizeof line, "member %-12s id %016" PRIx64 "  %s%s%s", name, m->id,
             urls[0] ? urls : "(not started)", m->is_learner ? "  learner" : "",
             m->id == leader ? "  leader" : "");
    etcdc_config *cfg = urls[0] ? make_config(ck, o, password, urls) : NULL;
    if (!cfg) {
        info("%s", line);
        return;
    }
    /* A dead member must not hold the whole check up for the full dial timeout. */
    etcdc_config_set_dial_timeout_ms(cfg, o->dial_timeout_ms < 2000 ? o->dial_timeout_ms : 2000);
    etcdc_error err = {0};
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    etcdc_status st = {0};
    etcdc_code code = c ? etcdc_status_get(c, &st, &err) : err.code;
    if (c)
        etcdc_client_free(c);
    if (code == ETCDC_OK) {
        char db[32];
        human_size(st.db_size, db, sizeof db);
        info("%s  etcd %s, db %s, raft index %" PRIu64, line, st.version, db, st.raft_index);
    } else {
        const char *why = short_reason(msg_of(&err, code));
        info("%s", line);
        warn("start it, or check that its client URL is reachable from here",
             "member %s does not answer at %s: %s", name, urls, why ? why : msg_of(&err, code));
    }
}

static void check_cluster(checker *ck, etcdc_client *c, const etcdfs_opts *o, const char *password)
{
    etcdc_error err = {0};
    etcdc_members ms = {0};
    etcdc_code code = etcdc_member_list(c, &ms, &err);
    etcdc_status st = {0};
    etcdc_error serr = {0};
    etcdc_code scode = etcdc_status_get(c, &st, &serr);
    if (code) {
        fail(ck, "the user may lack permission for the cluster API (MemberList)",
             "cannot list members: %s", msg_of(&err, code));
    } else {
        ok("cluster %016" PRIx64 ": %zu member%s", ms.cluster_id, ms.count,
           ms.count == 1 ? "" : "s");
        for (size_t i = 0; i < ms.count; i++) {
            const etcdc_member *m = &ms.members[i];
            char urls[512] = "";
            size_t len = 0;
            for (size_t j = 0; j < m->client_url_count && len < sizeof urls; j++)
                len += (size_t)snprintf(urls + len, sizeof urls - len, "%s%s", j ? "," : "",
                                        m->client_urls[j]);
            show_member(ck, o, password, m, urls, scode == ETCDC_OK ? st.leader : 0);
        }
    }
    if (scode) {
        fail(ck, "the user may lack permission for the maintenance API (Status)",
             "cannot read the member status: %s", msg_of(&serr, scode));
    } else {
        char db[32], used[32];
        human_size(st.db_size, db, sizeof db);
        human_size(st.db_size_in_use, used, sizeof used);
        const char *leader = "none";
        for (size_t i = 0; !code && i < ms.count; i++)
            if (ms.members[i].id == st.leader && ms.members[i].name)
                leader = ms.members[i].name;
        if (st.leader == 0)
            fail(ck, "the cluster has no quorum: start the missing members",
                 "no leader (member %016" PRIx64 ", etcd %s)", st.member_id, st.version);
        else
            ok("etcd %s, leader %s (%016" PRIx64 "), revision %" PRId64 ", raft term %" PRIu64,
               st.version, leader, st.leader, st.revision, st.raft_term);
        ok("database %s (%s in use)", db, used);
    }
    etcdc_members_clear(&ms);
}

static void check_prefix(checker *ck, etcdc_client *c, const etcdfs_opts *o, const char *prefix,
                         size_t plen)
{
    size_t end_len;
    char *end = key_prefix_end(prefix, plen, &end_len);
    if (!end) {
        fail(ck, NULL, "out of memory");
        return;
    }
    etcdc_range_req req = {.key = plen ? prefix : "\0",
                           .key_len = plen ? plen : 1,
                           .range_end = end,
                           .range_end_len = end_len,
                           .limit = 1,
                           .keys_only = !o->key_file};
    etcdc_kvs kvs = {0};
    etcdc_error err = {0};
    etcdc_code code = etcdc_range(c, &req, &kvs, &err);
    if (code == ETCDC_ERR_PERMISSION_DENIED)
        fail(ck,
             "grant the user's role read (or readwrite) on the prefix: etcdctl role "
             "grant-permission ROLE --prefix=true readwrite PREFIX",
             "prefix '%s' not readable: %s", prefix, msg_of(&err, code));
    else if (code)
        fail(ck, "check --prefix and the cluster's health", "prefix '%s' not readable: %s", prefix,
             msg_of(&err, code));
    else
        ok("prefix '%s' readable (%" PRId64 " key%s, revision %" PRId64 ")", prefix, kvs.total,
           kvs.total == 1 ? "" : "s", kvs.revision);
    if (!code && o->key_file && kvs.count) {
        char kb[256];
        size_t n = kvs.kvs[0].key_len < sizeof kb - 1 ? kvs.kvs[0].key_len : sizeof kb - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)kvs.kvs[0].key[i];
            kb[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        kb[n] = 0;
        if (kvs.kvs[0].value_error)
            fail(ck,
                 "wrong --key-file, or unencrypted data (migrate with --allow-plaintext, "
                 "then etcdfs rekey)",
                 "the value of '%s' does not open with the key file", kb);
        else
            ok("the value of '%s' opens with the key file", kb);
    }
    etcdc_kvs_clear(&kvs);
    free(end);
}

/* Writability needs a write: a probe key is put and deleted again where this mount's locks
 * will live, <lock prefix><mount prefix> (a file's lock is <lock prefix><its key>, ops_lock.h). */
static void check_lock_prefix(checker *ck, etcdc_client *c, const char *lock_prefix,
                              const char *prefix)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    char *probe = NULL;
    if (asprintf(&probe, "%s%s.etcdfs-check-%s-%ld", lock_prefix, prefix, host, (long)getpid()) <
        0) {
        fail(ck, NULL, "out of memory");
        return;
    }
    etcdc_error err = {0};
    etcdc_code code = etcdc_put(c, probe, strlen(probe), "", 0, NULL, &err);
    if (code == ETCDC_OK)
        code = etcdc_delete(c, probe, strlen(probe), NULL, &err);
    if (code == ETCDC_ERR_PERMISSION_DENIED)
        fail(ck,
             "grant the user's role readwrite on the lock prefix, or choose another "
             "--lock-prefix",
             "lock prefix '%s' not writable: %s", lock_prefix, msg_of(&err, code));
    else if (code)
        fail(ck, "check --lock-prefix and the cluster's health",
             "lock prefix '%s' not writable: %s", lock_prefix, msg_of(&err, code));
    else
        ok("lock prefix '%s' writable (a probe key under '%s%s' was put and deleted)", lock_prefix,
           lock_prefix, prefix);
    free(probe);
}

static void check_key_file(checker *ck, const char *path)
{
    etcdc_config *cfg = etcdc_config_new();
    etcdc_error err = {0};
    etcdc_code code = cfg ? etcdc_config_load_key_file(cfg, path, &err) : ETCDC_ERR_NO_MEMORY;
    if (code)
        fail(ck,
             "fix the key file (mode 600, owned by the mounting user; see "
             "docs/encryption.md)",
             "%s", msg_of(&err, code)); /* names the file, never its bytes */
    else
        ok("key file '%s' loads (values are encrypted)", path);
    etcdc_config_free(cfg);
}

int check_run(const etcdfs_opts *o, char *password)
{
    checker ck = {0};
    size_t plen;
    char *prefix = names_normalize_prefix(o->prefix, &plen);
    if (!prefix) {
        fprintf(stderr, "etcdfs: out of memory\n");
        return 1;
    }
    printf("etcdfs --check: endpoints %s, prefix '%s'%s%s\n", o->endpoints, prefix,
           o->user ? ", user " : "", o->user ? o->user : "");
    fflush(stdout);
    diagnose_route_grpc_log();
    if (o->insecure_skip_tls_verify)
        warn("give --cacert instead",
             "--insecure-skip-tls-verify: the server's certificate is not verified; anyone "
             "between here and %s can pose as etcd",
             o->endpoints);
    bool files_ok = check_file(&ck, "cacert", o->cacert) & check_file(&ck, "cert", o->cert) &
                    check_file(&ck, "key", o->key);
    if (o->key_file)
        check_key_file(&ck, o->key_file);
    if (o->mountpoint)
        ok("mount point '%s' exists", o->mountpoint);
    etcdc_config *cfg = files_ok ? make_config(&ck, o, password, NULL) : NULL;
    etcdc_client *c = NULL;
    if (cfg) {
        etcdc_error err = {0};
        c = etcdc_client_new(cfg, &err);
        if (!c) {
            diagnosis d;
            diagnose_connect(o, &err, &d);
            fail(&ck, d.hint[0] ? d.hint : NULL, "%s", d.what);
            if (o->debug)
                info("details: %s", msg_of(&err, err.code));
        } else
            ok("connected to %s (%s%s%s)", o->endpoints,
               o->cacert || o->cert || o->insecure_skip_tls_verify ? "TLS" : "plain TCP",
               o->insecure_skip_tls_verify ? ", server certificate NOT verified" : "",
               o->user ? ", authenticated" : "");
        etcdc_config_free(cfg);
    }
    if (c) {
        if (o->key_file) {
            /* The prefix check reads a value: it must be opened with the key file. */
            etcdc_client_free(c);
            etcdc_config *kcfg = make_config(&ck, o, password, NULL);
            etcdc_error err = {0};
            c = NULL;
            if (kcfg && etcdc_config_load_key_file(kcfg, o->key_file, &err) == ETCDC_OK) {
                etcdc_config_set_allow_plaintext(kcfg, o->allow_plaintext);
                c = etcdc_client_new(kcfg, &err);
            }
            etcdc_config_free(kcfg);
        }
        if (c) {
            check_cluster(&ck, c, o, password);
            check_prefix(&ck, c, o, prefix, plen);
            check_lock_prefix(&ck, c, o->lock_prefix ? o->lock_prefix : LOCKS_DEFAULT_PREFIX,
                              prefix);
            etcdc_client_free(c);
        }
    }
    if (ck.failures)
        printf("%d problem%s found: etcdfs would not mount like this\n", ck.failures,
               ck.failures == 1 ? "" : "s");
    else
        printf("all checks passed\n");
    free(prefix);
    return ck.failures ? 1 : 0;
}
