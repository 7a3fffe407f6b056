/*
 * test_admin.c - the administrative side of libetcdc against a real etcd (run_with_etcd.sh):
 * lease listing, compare-and-delete, cluster membership (a learner added, updated, refused
 * promotion while not running, removed; one that runs, catches up and is promoted),
 * defragmentation, KV hashes, and the NOSPACE alarm raised by a small quota, then cleared the way
 * an operator would (delete, compact, defragment, disarm), snapshots checked by `etcdctl snapshot
 * status`, and leadership moved in a 3-member cluster. test_nospace needs `run_with_etcd.sh
 * --quota`, test_move_leader
 * `--members 3`; test_promote_learner runs on its own etcd (it changes the quorum).
 */
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

static etcdc_client *C;

static bool has_lease(const etcdc_leases *l, int64_t id)
{
    for (size_t i = 0; i < l->count; i++)
        if (l->ids[i] == id)
            return true;
    return false;
}

static void test_lease_list(void)
{
    etcdc_error err = {0};
    int64_t a = 0, b = 0;
    REQUIRE_OK(etcdc_lease_grant(C, 60, &a, &err), &err);
    REQUIRE_OK(etcdc_lease_grant(C, 60, &b, &err), &err);
    etcdc_leases l;
    REQUIRE_OK(etcdc_lease_list(C, &l, &err), &err);
    CHECK(has_lease(&l, a) && has_lease(&l, b));
    etcdc_leases_clear(&l);
    CHECK_OK(etcdc_lease_revoke(C, a, &err), &err);
    REQUIRE_OK(etcdc_lease_list(C, &l, &err), &err);
    CHECK(!has_lease(&l, a) && has_lease(&l, b));
    etcdc_leases_clear(&l);
    etcdc_leases_clear(NULL);
    CHECK_OK(etcdc_lease_revoke(C, b, &err), &err);
}

static void test_compare_and_delete(void)
{
    etcdc_error err = {0};
    const char *k = th_key("k");
    int64_t rev = 0;
    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v1", 2, &rev, &err), &err);
    CHECK_RC(etcdc_delete_if_revision(C, k, strlen(k), rev - 1, NULL, &err),
             ETCDC_ERR_COMPARE_FAILED, &err);
    CHECK(strstr(err.message, k) != NULL);
    CHECK_RC(etcdc_delete_if_revision(C, k, strlen(k), 0, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT,
             &err);
    CHECK_RC(etcdc_delete_if_value(C, k, strlen(k), "v2", 2, NULL, &err), ETCDC_ERR_COMPARE_FAILED,
             &err);
    bool exists = false;
    CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
    CHECK(exists);
    int64_t after = 0;
    CHECK_OK(etcdc_delete_if_revision(C, k, strlen(k), rev, &after, &err), &err);
    CHECK(after > rev);
    CHECK_OK(etcdc_exists(C, k, strlen(k), &exists, &err), &err);
    CHECK(!exists);
    CHECK_RC(etcdc_delete_if_revision(C, k, strlen(k), rev, NULL, &err), ETCDC_ERR_COMPARE_FAILED,
             &err);

    REQUIRE_OK(etcdc_put(C, k, strlen(k), "v3", 2, NULL, &err), &err);
    CHECK_OK(etcdc_delete_if_value(C, k, strlen(k), "v3", 2, NULL, &err), &err);
    CHECK_RC(etcdc_delete_if_value(C, k, strlen(k), "v3", 2, NULL, &err), ETCDC_ERR_NOT_FOUND,
             &err);
}

static const etcdc_member *find_member(const etcdc_members *m, uint64_t id)
{
    for (size_t i = 0; i < m->count; i++)
        if (m->members[i].id == id)
            return &m->members[i];
    return NULL;
}

/* A learner that never starts: it does not count for quorum, so the one-member cluster keeps
 * working while it is listed. */
static void test_member_learner_lifecycle(void)
{
    etcdc_error err = {0};
    uint64_t id = 0;
    etcdc_members after;
    REQUIRE_OK(etcdc_member_add(C, "http://127.0.0.1:1", true, &id, &after, &err), &err);
    CHECK(id != 0);
    CHECK_INT(after.count, 2);
    const etcdc_member *m = find_member(&after, id);
    REQUIRE(m != NULL);
    CHECK(m->is_learner);
    CHECK(m->peer_url_count == 1 && strcmp(m->peer_urls[0], "http://127.0.0.1:1") == 0);
    etcdc_members_clear(&after);

    CHECK_OK(etcdc_member_update(C, id, "http://127.0.0.1:2,http://127.0.0.1:3", &err), &err);
    etcdc_members now;
    REQUIRE_OK(etcdc_member_list(C, &now, &err), &err);
    m = find_member(&now, id);
    REQUIRE(m != NULL);
    CHECK_INT(m->peer_url_count, 2);
    etcdc_members_clear(&now);

    etcdc_code rc = etcdc_member_promote(C, id, &err);
    CHECK(rc != ETCDC_OK); /* a learner that is not running is not in sync */
    printf("  promote of a stopped learner: %s: %s\n", etcdc_strerror(rc), err.message);

    CHECK_OK(etcdc_member_remove(C, id, &err), &err);
    REQUIRE_OK(etcdc_member_list(C, &now, &err), &err);
    CHECK_INT(now.count, 1);
    etcdc_members_clear(&now);
    CHECK_RC(etcdc_member_remove(C, id, &err), ETCDC_ERR_NOT_FOUND, &err);
    CHECK_RC(etcdc_member_add(C, "", false, NULL, NULL, &err), ETCDC_ERR_INVALID_ARGUMENT, &err);
}

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts an etcd process that joins the cluster as member `name` (already added). */
static pid_t start_joining_member(const char *name, const char *data_dir, int peer_port,
                                  int client_port, const char *initial_cluster)
{
    const char *etcd =
        getenv("ETCDFS_ETCD") && *getenv("ETCDFS_ETCD") ? getenv("ETCDFS_ETCD") : "etcd";
    char peer[64], client[64], log[320];
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", peer_port);
    snprintf(client, sizeof client, "http://127.0.0.1:%d", client_port);
    snprintf(log, sizeof log, "%s.log", data_dir);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        dup2(2, 1);
        execlp(etcd, etcd, "--name", name, "--data-dir", data_dir, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--listen-client-urls", client,
               "--advertise-client-urls", client, "--initial-cluster", initial_cluster,
               "--initial-cluster-state", "existing", "--heartbeat-interval", "50",
               "--election-timeout", "500", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A learner that runs: it catches up, is promoted to a voting member, and is removed again
 * (before it stops, so that the one-member cluster keeps its quorum). */
static void test_promote_learner(void)
{
    etcdc_error err = {0};
    etcdc_members m;
    REQUIRE_OK(etcdc_member_list(C, &m, &err), &err);
    REQUIRE(m.count == 1 && m.members[0].peer_url_count == 1);
    int peer_port = free_port(), client_port = free_port();
    REQUIRE(peer_port > 0 && client_port > 0);
    char peer[64], initial[300];
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", peer_port);
    snprintf(initial, sizeof initial, "%s=%s,learner=%s", m.members[0].name,
             m.members[0].peer_urls[0], peer);
    etcdc_members_clear(&m);

    uint64_t id = 0;
    REQUIRE_OK(etcdc_member_add(C, peer, true, &id, NULL, &err), &err);
    char dir[] = "/tmp/etcdc-learner.XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char data[300];
    snprintf(data, sizeof data, "%s/data", dir);
    pid_t pid = start_joining_member("learner", data, peer_port, client_port, initial);
    REQUIRE(pid > 0);

    etcdc_code rc = ETCDC_ERR_INVALID_ARGUMENT;
    int tries = 0;
    for (; rc != ETCDC_OK && tries < 150; tries++) { /* until it has caught up */
        rc = etcdc_member_promote(C, id, &err);
        if (rc != ETCDC_OK)
            th_sleep_ms(200);
    }
    CHECK_OK(rc, &err);
    printf("  learner promoted after %d attempts\n", tries);
    REQUIRE_OK(etcdc_member_list(C, &m, &err), &err);
    const etcdc_member *voter = find_member(&m, id);
    CHECK(voter && !voter->is_learner);
    CHECK_INT(m.count, 2);
    etcdc_members_clear(&m);
    /* etcd refuses to remove a voter it has not seen healthy for a while ("unhealthy
     * cluster", UNAVAILABLE): an operator tries again. */
    for (int i = 0; i < 100 && (rc = etcdc_member_remove(C, id, &err)) == ETCDC_ERR_UNAVAILABLE;
         i++)
        th_sleep_ms(200);
    CHECK_OK(rc, &err);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    REQUIRE_OK(etcdc_member_list(C, &m, &err), &err);
    CHECK_INT(m.count, 1);
    etcdc_members_clear(&m);
}

static void test_defragment_and_hash(void)
{
    etcdc_error err = {0};
    char big[4096];
    memset(big, 'x', sizeof big);
    int64_t rev = 0;
    for (int i = 0; i < 300; i++) {
        char k[300];
        snprintf(k, sizeof k, "%sbulk/%03d", th_prefix(), i);
        REQUIRE_OK(etcdc_put(C, k, strlen(k), big, sizeof big, &rev, &err), &err);
    }
    uint32_t h1 = 0, h2 = 0;
    int64_t compacted = -1;
    REQUIRE_OK(etcdc_hash_kv(C, rev, &h1, &compacted, &err), &err);
    REQUIRE_OK(etcdc_hash_kv(C, rev, &h2, NULL, &err), &err);
    CHECK(h1 == h2);          /* same revision, same hash */
    CHECK_INT(compacted, -1); /* nothing compacted yet */

    REQUIRE_OK(etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, &err), &err);
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    REQUIRE_OK(etcdc_compact(C, st.revision, true, &err), &err);
    etcdc_status before, after;
    REQUIRE_OK(etcdc_status_get(C, &before, &err), &err);
    CHECK_OK(etcdc_defragment(C, &err), &err);
    REQUIRE_OK(etcdc_status_get(C, &after, &err), &err);
    printf("  db size %lld -> %lld bytes (in use %lld)\n", (long long)before.db_size,
           (long long)after.db_size, (long long)after.db_size_in_use);
    CHECK(after.db_size < before.db_size);
    CHECK_RC(etcdc_hash_kv(C, rev, &h2, NULL, &err), ETCDC_ERR_COMPACTED, &err);
    REQUIRE_OK(etcdc_hash_kv(C, 0, &h2, &compacted, &err), &err);
    CHECK_INT(compacted, st.revision);
}

static bool alarm_raised(etcdc_alarm_type type)
{
    etcdc_error err = {0};
    etcdc_alarms a;
    if (etcdc_alarm_list(C, &a, &err) != ETCDC_OK)
        return false;
    bool found = false;
    for (size_t i = 0; i < a.count; i++)
        found |= a.alarms[i].type == type && a.alarms[i].member_id != 0;
    etcdc_alarms_clear(&a);
    return found;
}

static void test_nospace(void)
{
    etcdc_error err = {0};
    CHECK(!alarm_raised(ETCDC_ALARM_NOSPACE));
    static char big[512 * 1024];
    memset(big, 'y', sizeof big);
    etcdc_code rc = ETCDC_OK;
    int written = 0;
    for (; written < 200 && rc == ETCDC_OK; written++) {
        char k[300];
        snprintf(k, sizeof k, "%sfill/%03d", th_prefix(), written);
        rc = etcdc_put(C, k, strlen(k), big, sizeof big, NULL, &err);
    }
    CHECK_RC(rc, ETCDC_ERR_NO_SPACE, &err);
    printf("  NOSPACE after %d puts of 512 KiB: %s\n", written, err.message);
    CHECK(alarm_raised(ETCDC_ALARM_NOSPACE));
    CHECK_RC(etcdc_put(C, th_key("small"), strlen(th_key("small")), "1", 1, NULL, &err),
             ETCDC_ERR_NO_SPACE, &err);

    /* What an operator does: free space, then disarm. */
    REQUIRE_OK(etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, &err), &err);
    etcdc_status st;
    REQUIRE_OK(etcdc_status_get(C, &st, &err), &err);
    REQUIRE_OK(etcdc_compact(C, st.revision, true, &err), &err);
    REQUIRE_OK(etcdc_defragment(C, &err), &err);
    REQUIRE_OK(etcdc_alarm_disarm(C, 0, ETCDC_ALARM_NONE, &err), &err);
    CHECK(!alarm_raised(ETCDC_ALARM_NOSPACE));
    CHECK_OK(etcdc_put(C, th_key("small"), strlen(th_key("small")), "1", 1, NULL, &err), &err);
}

typedef struct progress {
    int calls;
    uint64_t written, remaining;
} progress;

static void on_progress(void *arg, uint64_t written, uint64_t remaining)
{
    progress *p = arg;
    p->calls++;
    p->written = written;
    p->remaining = remaining;
}

static bool exists_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_snapshot(void)
{
    etcdc_error err = {0};
    for (int i = 0; i < 50; i++) {
        char k[300];
        snprintf(k, sizeof k, "%ssnap/%02d", th_prefix(), i);
        REQUIRE_OK(etcdc_put(C, k, strlen(k), "value", 5, NULL, &err), &err);
    }
    char dir[] = "/tmp/etcdc-snap.XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[300], part[310];
    snprintf(path, sizeof path, "%s/etcd.db", dir);
    snprintf(part, sizeof part, "%s.part", path);

    progress p = {0};
    uint64_t bytes = 0;
    REQUIRE_OK(etcdc_snapshot_save(C, path, on_progress, &p, &bytes, &err), &err);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    printf("  snapshot: %llu bytes in %d chunks\n", (unsigned long long)bytes, p.calls);
    CHECK_INT(st.st_size, bytes);
    CHECK_INT(p.written, bytes);
    CHECK_INT(p.remaining, 0);
    CHECK(p.calls >= 1);
    CHECK_INT(st.st_mode & 0777, 0600);
    CHECK(!exists_file(part));

    /* etcd's own tool reads it and counts our keys. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl snapshot status %s -w json 2>/dev/null", path);
    FILE *out = popen(cmd, "r");
    REQUIRE(out != NULL);
    char json[512] = "";
    size_t n = fread(json, 1, sizeof json - 1, out);
    json[n] = 0;
    CHECK(pclose(out) == 0);
    const char *total = strstr(json, "\"totalKey\":");
    CHECK(total && atol(total + 11) >= 50);
    printf("  etcdctl snapshot status: %s\n", json);
    unlink(path);

    /* A directory that does not exist: IO, nothing written. */
    char bad[320];
    snprintf(bad, sizeof bad, "%s/missing/etcd.db", dir);
    CHECK_RC(etcdc_snapshot_save(C, bad, NULL, NULL, NULL, &err), ETCDC_ERR_IO, &err);
    printf("  %s\n", err.message);

    /* Canceled: no file, no part file. */
    etcdc_ctx *ctx = etcdc_ctx_new(0);
    etcdc_ctx_cancel(ctx);
    etcdc_ctx_use(ctx);
    CHECK_RC(etcdc_snapshot_save(C, path, NULL, NULL, NULL, &err), ETCDC_ERR_CANCELED, &err);
    etcdc_ctx_use(NULL);
    etcdc_ctx_free(ctx);
    CHECK(!exists_file(path) && !exists_file(part));
    rmdir(dir);
    etcdc_delete_prefix(C, th_prefix(), strlen(th_prefix()), NULL, NULL);
}

/* A client for one endpoint of $ETCD_ENDPOINTS (0-based), or NULL. */
static etcdc_client *client_for(int index, char *endpoint, size_t size)
{
    char all[512];
    snprintf(all, sizeof all, "%s", th_endpoints());
    char *save = NULL, *e = strtok_r(all, ",", &save);
    for (int i = 0; e && i < index; i++)
        e = strtok_r(NULL, ",", &save);
    if (!e)
        return NULL;
    snprintf(endpoint, size, "%s", e);
    etcdc_config *cfg = etcdc_config_new();
    etcdc_config_set_endpoints(cfg, e);
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    return c;
}

/* Three members: the leader hands leadership to another member; a non-leader cannot. */
static void test_move_leader(void)
{
    etcdc_error err = {0};
    etcdc_client *m[3];
    etcdc_status st[3];
    char ep[3][64];
    int leader = -1;
    for (int i = 0; i < 3; i++) {
        m[i] = client_for(i, ep[i], sizeof ep[i]);
        REQUIRE(m[i] != NULL);
        REQUIRE_OK(etcdc_status_get(m[i], &st[i], &err), &err);
        if (st[i].member_id == st[i].leader)
            leader = i;
    }
    REQUIRE(leader >= 0);
    int target = (leader + 1) % 3, other = (leader + 2) % 3;
    CHECK_RC(etcdc_move_leader(m[other], st[target].member_id, &err), ETCDC_ERR_NOT_LEADER, &err);
    printf("  move-leader from a follower: %s\n", err.message);
    CHECK_OK(etcdc_move_leader(m[leader], st[target].member_id, &err), &err);
    etcdc_status now = {0};
    for (int i = 0; i < 100; i++) {
        if (etcdc_status_get(m[target], &now, &err) == ETCDC_OK && now.leader == now.member_id)
            break;
        th_sleep_ms(50);
    }
    CHECK(now.leader == st[target].member_id);
    printf("  leader moved from %s to %s\n", ep[leader], ep[target]);
    for (int i = 0; i < 3; i++)
        etcdc_client_free(m[i]);
}

static void setup(void)
{
    etcdc_config *cfg = th_config();
    etcdc_config_set_request_timeout_ms(cfg, 30000); /* defragment and compaction take time */
    C = th_client_from(cfg);
    etcdc_config_free(cfg);
}

static void teardown(void)
{
    etcdc_client_free(C);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_lease_list), TH_TEST(test_compare_and_delete),
        TH_TEST(test_member_learner_lifecycle), TH_TEST(test_defragment_and_hash),
        TH_TEST(test_nospace), TH_TEST(test_snapshot), TH_TEST(test_move_leader),
        TH_TEST(test_promote_learner), TH_TEST(teardown))
