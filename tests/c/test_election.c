/*
 * test_election.c - leader election against a real etcd (run_with_etcd.sh) and against
 * `etcdctl elect`, both ways: an etcdctl candidate leads and hands over to ours when it quits,
 * ours leads while an etcdctl candidate waits and is elected when we resign, `etcdctl elect -l`
 * sees our proclaimed value and our observer sees etcdctl's; plus proclaim after the session is
 * lost, a campaign ended by a call context, and the observer's order of leaders.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "harness.h"

static etcdc_client *C;

/* `etcdctl elect [-l] name [proposal]` with stdout on a pipe. */
static pid_t etcdctl_elect(const char *name, const char *proposal, FILE **out)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (proposal)
            execlp("etcdctl", "etcdctl", "--endpoints", th_endpoints(), "elect", name, proposal,
                   (char *)NULL);
        else
            execlp("etcdctl", "etcdctl", "--endpoints", th_endpoints(), "elect", "-l", name,
                   (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *out = fdopen(fds[0], "r");
    return pid;
}

/* Reads "key\nvalue\n" as etcdctl elect prints a leader. */
static bool read_leader(FILE *out, char *key, size_t klen, char *value, size_t vlen)
{
    if (!fgets(key, (int)klen, out) || !fgets(value, (int)vlen, out))
        return false;
    key[strcspn(key, "\n")] = 0;
    value[strcspn(value, "\n")] = 0;
    return true;
}

static void stop_etcdctl(pid_t pid, FILE *out)
{
    kill(pid, SIGINT); /* etcdctl resigns and exits */
    int status = 0;
    waitpid(pid, &status, 0);
    fclose(out);
}

typedef struct candidate {
    etcdc_election *e;
    const char *value;
    etcdc_code rc;
    etcdc_error err;
    atomic_bool done;
} candidate;

static void *campaign(void *p)
{
    candidate *k = p;
    k->rc = etcdc_election_campaign(k->e, k->value, strlen(k->value), &k->err);
    atomic_store(&k->done, true);
    return NULL;
}

static void test_etcdctl_leads_then_hands_over(void)
{
    etcdc_error err = {0};
    const char *name = th_key("e1");
    FILE *out = NULL;
    pid_t pid = etcdctl_elect(name, "from-etcdctl", &out);
    REQUIRE(pid > 0);
    char key[300], value[100];
    REQUIRE(read_leader(out, key, sizeof key, value, sizeof value)); /* elected */
    CHECK(strcmp(value, "from-etcdctl") == 0);

    etcdc_kv lead;
    REQUIRE_OK(etcdc_election_leader(C, name, strlen(name), &lead, &err), &err);
    CHECK_STR(lead.key, lead.key_len, key);
    CHECK_STR(lead.value, lead.value_len, "from-etcdctl");
    etcdc_kv_clear(&lead);

    etcdc_session *s = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(s != NULL);
    candidate ours = {.e = etcdc_election_new(s, name, strlen(name)), .value = "from-etcdc"};
    pthread_t t;
    pthread_create(&t, NULL, campaign, &ours);
    th_sleep_ms(700);
    CHECK(!atomic_load(&ours.done)); /* etcdctl leads: we wait */
    stop_etcdctl(pid, out);
    pthread_join(t, NULL);
    CHECK_OK(ours.rc, &ours.err);

    /* etcdctl's observer sees us, with our proclaimed value. */
    CHECK_OK(etcdc_election_proclaim(ours.e, "proclaimed", 10, &err), &err);
    pid = etcdctl_elect(name, NULL, &out);
    REQUIRE(pid > 0);
    CHECK(read_leader(out, key, sizeof key, value, sizeof value));
    size_t our_len = 0;
    const char *our_key = etcdc_election_key(ours.e, &our_len);
    CHECK_STR(key, strlen(key), our_key);
    CHECK(strcmp(value, "proclaimed") == 0);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    fclose(out);
    etcdc_election_free(ours.e);
    etcdc_session_free(s);
}

static void test_we_lead_etcdctl_waits(void)
{
    etcdc_error err = {0};
    const char *name = th_key("e2");
    etcdc_session *s = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(s != NULL);
    etcdc_election *e = etcdc_election_new(s, name, strlen(name));
    REQUIRE_OK(etcdc_election_campaign(e, "ours", 4, &err), &err);

    FILE *out = NULL;
    pid_t pid = etcdctl_elect(name, "theirs", &out);
    REQUIRE(pid > 0);
    th_sleep_ms(1000);
    CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still a waiting candidate */
    etcdc_kv lead;
    REQUIRE_OK(etcdc_election_leader(C, name, strlen(name), &lead, &err), &err);
    CHECK_STR(lead.value, lead.value_len, "ours");
    etcdc_kv_clear(&lead);

    REQUIRE_OK(etcdc_election_resign(e, &err), &err);
    CHECK_OK(etcdc_election_resign(e, &err), &err); /* not campaigning: nothing to do */
    char key[300], value[100];
    CHECK(read_leader(out, key, sizeof key, value, sizeof value)); /* etcdctl is elected */
    CHECK(strcmp(value, "theirs") == 0);
    REQUIRE_OK(etcdc_election_leader(C, name, strlen(name), &lead, &err), &err);
    CHECK_STR(lead.value, lead.value_len, "theirs");
    etcdc_kv_clear(&lead);
    CHECK_RC(etcdc_election_proclaim(e, "x", 1, &err), ETCDC_ERR_NOT_LEADER, &err);
    stop_etcdctl(pid, out);
    CHECK_RC(etcdc_election_leader(C, name, strlen(name), &lead, &err), ETCDC_ERR_NOT_FOUND, &err);
    etcdc_election_free(e);
    etcdc_session_free(s);
}

/* What an observer saw, in order ("-" for no leader). */
typedef struct seen {
    pthread_mutex_t mu;
    char log[1000];
} seen;

static void record(void *arg, const etcdc_kv *leader)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    size_t n = strlen(s->log);
    snprintf(s->log + n, sizeof s->log - n, "%s%s", n ? "," : "", leader ? leader->value : "-");
    pthread_mutex_unlock(&s->mu);
}

static bool saw(seen *s, const char *want)
{
    for (int i = 0; i < 250; i++) { /* the watch delivers on another thread */
        pthread_mutex_lock(&s->mu);
        bool ok = strcmp(s->log, want) == 0;
        pthread_mutex_unlock(&s->mu);
        if (ok)
            return true;
        th_sleep_ms(20);
    }
    fprintf(stderr, "  observer saw \"%s\", expected \"%s\"\n", s->log, want);
    return false;
}

/* Waits until n candidates are queued in election name. */
static void wait_candidates(const char *name, int64_t n)
{
    char pfx[300];
    snprintf(pfx, sizeof pfx, "%s/", name);
    int64_t have = -1;
    for (int i = 0; i < 500 && have != n; i++) {
        etcdc_count_prefix(C, pfx, strlen(pfx), &have, NULL);
        if (have != n)
            th_sleep_ms(20);
    }
    CHECK_INT(have, n);
}

static void test_observer_order(void)
{
    etcdc_error err = {0};
    const char *name = th_key("e3");
    seen log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    etcdc_observer *o = etcdc_election_observe(C, name, strlen(name), record, &log, &err);
    REQUIRE(o != NULL);
    CHECK(saw(&log, "-"));

    etcdc_session *sa = etcdc_session_new(C, 10, NULL, NULL, &err);
    etcdc_session *sb = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(sa && sb);
    etcdc_election *a = etcdc_election_new(sa, name, strlen(name));
    candidate b = {.e = etcdc_election_new(sb, name, strlen(name)), .value = "b"};
    REQUIRE_OK(etcdc_election_campaign(a, "a", 1, &err), &err);
    CHECK_OK(etcdc_election_campaign(a, "a2", 2, &err), &err); /* again: proclaims */
    pthread_t t;
    pthread_create(&t, NULL, campaign, &b);
    wait_candidates(name, 2);
    FILE *out = NULL;
    pid_t pid = etcdctl_elect(name, "ctl", &out); /* third in line */
    REQUIRE(pid > 0);
    wait_candidates(name, 3);
    CHECK_OK(etcdc_election_resign(a, &err), &err);
    pthread_join(t, NULL);
    CHECK_OK(b.rc, &b.err);
    /* b's session ends (its lease revoked): its key goes with it */
    CHECK_OK(etcdc_lease_revoke(C, etcdc_session_lease(sb), &err), &err);
    char key[300], value[100];
    CHECK(read_leader(out, key, sizeof key, value, sizeof value));
    stop_etcdctl(pid, out);
    CHECK(saw(&log, "-,a,a2,b,ctl,-"));
    etcdc_observer_stop(o);
    etcdc_election_free(a);
    etcdc_election_free(b.e);
    etcdc_session_free(sa);
    etcdc_session_free(sb);
}

static void test_campaign_ended_by_context(void)
{
    etcdc_error err = {0};
    const char *name = th_key("e4");
    char pfx[300];
    snprintf(pfx, sizeof pfx, "%s/", name);
    etcdc_session *sa = etcdc_session_new(C, 10, NULL, NULL, &err);
    etcdc_session *sb = etcdc_session_new(C, 10, NULL, NULL, &err);
    REQUIRE(sa && sb);
    etcdc_election *a = etcdc_election_new(sa, name, strlen(name));
    etcdc_election *b = etcdc_election_new(sb, name, strlen(name));
    REQUIRE_OK(etcdc_election_campaign(a, "a", 1, &err), &err);
    etcdc_ctx *ctx = etcdc_ctx_new(300);
    etcdc_ctx_use(ctx);
    CHECK_RC(etcdc_election_campaign(b, "b", 1, &err), ETCDC_ERR_TIMEOUT, &err);
    etcdc_ctx_use(NULL);
    etcdc_ctx_free(ctx);
    CHECK(strstr(err.message, "campaign in election") != NULL);
    CHECK(etcdc_election_key(b, NULL) == NULL);
    int64_t n = 0;
    CHECK_OK(etcdc_count_prefix(C, pfx, strlen(pfx), &n, &err), &err);
    CHECK_INT(n, 1); /* b's key was withdrawn */

    /* The leader's session is lost: it can no longer proclaim. */
    CHECK_OK(etcdc_lease_revoke(C, etcdc_session_lease(sa), &err), &err);
    CHECK_RC(etcdc_election_proclaim(a, "a2", 2, &err), ETCDC_ERR_NOT_LEADER, &err);
    etcdc_election_free(a);
    etcdc_election_free(b);
    etcdc_session_free(sa);
    etcdc_session_free(sb);
}

static void setup(void)
{
    C = th_client();
}

static void teardown(void)
{
    etcdc_client_free(C);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_etcdctl_leads_then_hands_over),
        TH_TEST(test_we_lead_etcdctl_waits), TH_TEST(test_observer_order),
        TH_TEST(test_campaign_ended_by_context), TH_TEST(teardown))
