/*
 * harness.h - a tiny test harness for the libetcdc integration tests (no external framework).
 *
 * A test program defines `static void test_xxx(void)` functions, lists them in a th_test table
 * and calls th_main(). CHECK* macros record a failure (file:line and what was expected) and let
 * the test continue; REQUIRE* macros also end the current test. The program exits 1 when any
 * check failed, 0 otherwise. Arguments select tests by name ("prog test_put test_get"); tests
 * named "setup" and "teardown" always run.
 *
 * Every test runs against $ETCD_ENDPOINTS (tests/c/run_with_etcd.sh starts a private etcd and
 * sets it) and works under a key prefix of its own (th_prefix), so tests never see each other.
 */
#ifndef ETCDC_TEST_HARNESS_H
#define ETCDC_TEST_HARNESS_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "etcdc.h"

typedef struct th_test {
    const char *name;
    void (*fn)(void);
} th_test;
#define TH_TEST(f)                                                                                 \
    {                                                                                              \
#f, f                                                                                      \
    }

static int th_failures;      /* failed checks in the whole run */
static int th_test_failures; /* failed checks in the current test */
static const char *th_current = "";
static jmp_buf th_abort;

static inline void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static inline void th_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  FAIL %s:%d [%s]: ", file, line, th_current);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    th_failures++;
    th_test_failures++;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            th_fail(__FILE__, __LINE__, "%s", #cond);                                              \
    } while (0)
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            th_fail(__FILE__, __LINE__, "%s (required)", #cond);                                   \
            longjmp(th_abort, 1);                                                                  \
        }                                                                                          \
    } while (0)
#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            th_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);                 \
    } while (0)
/* rc must equal the expected code; prints the error message when it does not. */
#define CHECK_RC(rc, expected, errp)                                                               \
    do {                                                                                           \
        etcdc_code rc_ = (rc), ex_ = (expected);                                                   \
        if (rc_ != ex_)                                                                            \
            th_fail(__FILE__, __LINE__, "%s: got %d (%s: %s), expected %d (%s)", #rc, rc_,         \
                    etcdc_strerror(rc_), th_msg(errp), ex_, etcdc_strerror(ex_));                  \
    } while (0)
#define REQUIRE_RC(rc, expected, errp)                                                             \
    do {                                                                                           \
        int before_ = th_test_failures;                                                            \
        CHECK_RC(rc, expected, errp);                                                              \
        if (th_test_failures != before_)                                                           \
            longjmp(th_abort, 1);                                                                  \
    } while (0)
#define CHECK_OK(rc, errp) CHECK_RC(rc, ETCDC_OK, errp)
#define REQUIRE_OK(rc, errp) REQUIRE_RC(rc, ETCDC_OK, errp)
/* Byte-exact comparison of (p, n) with (q, m). */
#define CHECK_BYTES(p, n, q, m)                                                                    \
    do {                                                                                           \
        size_t n_ = (n), m_ = (m);                                                                 \
        if (n_ != m_ || (n_ && memcmp((p), (q), n_) != 0))                                         \
            th_fail(__FILE__, __LINE__, "%s (%zu bytes) != %s (%zu bytes)", #p, n_, #q, m_);       \
    } while (0)
#define CHECK_STR(p, n, s) CHECK_BYTES(p, n, s, strlen(s))

static inline const char *th_msg(const etcdc_error *e)
{
    return e ? e->message : "";
}

static inline const char *th_endpoints(void)
{
    const char *e = getenv("ETCD_ENDPOINTS");
    return e && *e ? e : "127.0.0.1:2379";
}

/* A config for $ETCD_ENDPOINTS (caller frees). */
static inline etcdc_config *th_config(void)
{
    etcdc_config *cfg = etcdc_config_new();
    if (!cfg || etcdc_config_set_endpoints(cfg, th_endpoints()) != ETCDC_OK) {
        fprintf(stderr, "cannot build a config\n");
        exit(2);
    }
    return cfg;
}

/* A client from cfg; ends the test when it cannot connect. */
static inline etcdc_client *th_client_from(const etcdc_config *cfg)
{
    etcdc_error err = {0};
    etcdc_client *c = etcdc_client_new(cfg, &err);
    if (!c) {
        th_fail(__FILE__, __LINE__, "etcdc_client_new: %s", err.message);
        longjmp(th_abort, 1);
    }
    return c;
}

/* A client for $ETCD_ENDPOINTS with default settings. */
static inline etcdc_client *th_client(void)
{
    etcdc_config *cfg = th_config();
    etcdc_client *c = th_client_from(cfg);
    etcdc_config_free(cfg);
    return c;
}

/* A key prefix unique to this process and test: "etcdc-test/<pid>/<test>/". */
static inline const char *th_prefix(void)
{
    static char buf[200];
    snprintf(buf, sizeof buf, "etcdc-test/%d/%s/", (int)getpid(), th_current);
    return buf;
}

/* prefix + suffix in a static rotating buffer (valid for a few calls). */
static inline const char *th_key(const char *suffix)
{
    static char bufs[8][300];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s%s", th_prefix(), suffix);
    return b;
}

static inline int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void th_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Runs "$ETCDC_TEST_MEMBER_CTL <action> <member>" (see run_with_etcd.sh). */
static inline int th_member(const char *action, int member)
{
    const char *ctl = getenv("ETCDC_TEST_MEMBER_CTL");
    if (!ctl) {
        th_fail(__FILE__, __LINE__, "ETCDC_TEST_MEMBER_CTL is not set (run via run_with_etcd.sh)");
        return -1;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %d", ctl, action, member);
    return system(cmd);
}

/*
 * After the last client is destroyed, gRPC may still be closing connections (and finishing a
 * reconnect handshake) in its own threads, each holding an internal init reference. Waiting,
 * bounded, for the last of them lets those threads free what they hold, so that valgrind's
 * leak check at exit (tests/c/run_valgrind.sh) sees the library's memory, not gRPC's teardown
 * in flight. A test that keeps a client alive just waits the bound.
 */
static inline void th_wait_grpc_teardown(void)
{
    for (int i = 0; i < 100 && grpc_is_initialized(); i++)
        usleep(50 * 1000);
    if (getenv("TH_DEBUG_GRPC"))
        fprintf(stderr, "grpc initialized at exit: %d\n", grpc_is_initialized());
}

static inline int th_main(int argc, char **argv, const th_test *tests, size_t n)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    volatile int ran = 0; /* volatile: live across the longjmp of a failed REQUIRE */
    for (volatile size_t i = 0; i < n; i++) {
        bool selected = argc < 2 || strcmp(tests[i].name, "setup") == 0 ||
                        strcmp(tests[i].name, "teardown") == 0;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], tests[i].name) == 0)
                selected = true;
        if (!selected)
            continue;
        th_current = tests[i].name;
        th_test_failures = 0;
        int64_t t0 = th_now_ms();
        if (setjmp(th_abort) == 0)
            tests[i].fn();
        printf("%s %s (%lld ms)\n", th_test_failures ? "FAIL" : "ok  ", tests[i].name,
               (long long)(th_now_ms() - t0));
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 2;
    }
    printf("%d test(s), %d failed check(s)\n", ran, th_failures);
    th_wait_grpc_teardown();
    return th_failures ? 1 : 0;
}

#define TH_MAIN(...)                                                                               \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const th_test tests_[] = {__VA_ARGS__};                                             \
        return th_main(argc, argv, tests_, sizeof tests_ / sizeof tests_[0]);                      \
    }

#endif
