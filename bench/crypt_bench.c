/*
 * crypt_bench.c - what client-side encryption costs next to the etcd round trip it rides on.
 *
 *   crypt_bench [iterations]      (etcd at $ETCD_ENDPOINTS)
 *
 * For several value sizes: the CPU time of sealing and opening one value (AES-256-GCM through
 * the library's envelope code), and the median Put and Get latency of the same values with
 * encryption off and on, all measured in this run. Prints a table; not a pass/fail test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypt.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static etcdc_client *connect_to(const char *endpoints, bool encrypt)
{
    etcdc_config *cfg = etcdc_config_new();
    etcdc_config_set_endpoints(cfg, endpoints);
    if (encrypt) {
        uint8_t key[32];
        memset(key, 7, sizeof key);
        etcdc_config_add_encryption_key(cfg, 1, key);
    }
    etcdc_error err;
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    if (!c) {
        fprintf(stderr, "crypt_bench: %s\n", err.message);
        exit(1);
    }
    return c;
}

/* Median latency of n puts (op 0) or gets (op 1) of one key. */
static double round_trip(etcdc_client *c, int op, const char *val, size_t len, int n,
                         double *samples)
{
    etcdc_error err;
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        etcdc_code rc;
        if (op == 0) {
            rc = etcdc_put(c, "bench/crypt", 11, val, len, NULL, &err);
        } else {
            etcdc_kv kv;
            rc = etcdc_get(c, "bench/crypt", 11, &kv, &err);
            etcdc_kv_clear(&kv);
        }
        if (rc != ETCDC_OK) {
            fprintf(stderr, "crypt_bench: %s\n", err.message);
            exit(1);
        }
        samples[i] = now_us() - t0;
    }
    return median(samples, n);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300;
    const char *endpoints = getenv("ETCD_ENDPOINTS") ? getenv("ETCD_ENDPOINTS") : "127.0.0.1:2379";
    etcdc_client *plain = connect_to(endpoints, false), *sealed = connect_to(endpoints, true);
    etcdc_config *cfg = etcdc_config_new();
    uint8_t key[32];
    memset(key, 7, sizeof key);
    etcdc_config_add_encryption_key(cfg, 1, key);
    double *samples = malloc((size_t)n * sizeof *samples);
    static const size_t sizes[] = {64, 1024, 65536, 1000000};
    printf("| value bytes | seal us | open us | put us (plain) | put us (encrypted) | "
           "get us (plain) | get us (encrypted) | seal+open / put+get |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len = sizes[s];
        char *val = malloc(len);
        memset(val, 'v', len);
        int reps = len >= 65536 ? n / 4 + 1 : n * 10;
        double t_seal = 0, t_open = 0;
        for (int i = 0; i < reps; i++) {
            uint8_t *env;
            size_t env_len;
            char *back;
            size_t back_len;
            double a = now_us();
            etcdc__seal(cfg, "bench/crypt", 11, val, len, &env, &env_len, NULL);
            double b = now_us();
            etcdc__open(cfg, "bench/crypt", 11, env, env_len, &back, &back_len, NULL);
            t_open += now_us() - b;
            t_seal += b - a;
            free(env);
            free(back);
        }
        int rt = len >= 65536 ? n / 4 + 1 : n;
        double pp = round_trip(plain, 0, val, len, rt, samples);
        double pe = round_trip(sealed, 0, val, len, rt, samples);
        double gp = round_trip(plain, 1, val, len, rt, samples);
        double ge = round_trip(sealed, 1, val, len, rt, samples);
        printf("| %zu | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f | %.3f |\n", len, t_seal / reps,
               t_open / reps, pp, pe, gp, ge, (t_seal + t_open) / reps / (pp + gp));
        free(val);
    }
    etcdc_error err;
    etcdc_delete(plain, "bench/crypt", 11, NULL, &err);
    free(samples);
    etcdc_config_free(cfg);
    etcdc_client_free(plain);
    etcdc_client_free(sealed);
    return 0;
}
