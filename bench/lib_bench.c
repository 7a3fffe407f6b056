/*
 * lib_bench.c - latency and throughput of libetcdc against $ETCD_ENDPOINTS.
 *
 *   lib_bench latency N SIZE      one thread: N Puts of SIZE-byte values, then N Gets of them;
 *                                 also N raw gRPC Range round trips on the client's own channel
 *                                 (a pre-packed request, no protobuf decoding) as the floor the
 *                                 library's overhead is measured against
 *   lib_bench throughput SECONDS SIZE T1 [T2 ...]
 *                                 for each thread count: Puts then Gets for SECONDS each, all
 *                                 threads sharing one client
 *
 * Output lines (parsed by run_lib_bench.sh):
 *   LAT <name> <n> <p50_us> <p99_us> <mean_us> <cpu_us_per_op>
 *   TPUT <op> <threads> <ops_per_s> <errors>
 * cpu_us_per_op is the process's user+system CPU time (getrusage) divided by the operations:
 * the client-side cost, gRPC's own threads included.
 */
#include <etcdc.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *lat, int n, double cpu)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += lat[i];
    printf("LAT %s %d %.1f %.1f %.1f %.1f\n", name, n, lat[n / 2], lat[(int)(n * 0.99)], sum / n,
           cpu / n);
    fflush(stdout);
}

static etcdc_client *connect_client(void)
{
    etcdc_config *cfg = etcdc_config_new();
    const char *eps = getenv("ETCD_ENDPOINTS");
    if (eps && *eps)
        etcdc_config_set_endpoints(cfg, eps);
    etcdc_error err = {0};
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    if (!c) {
        fprintf(stderr, "lib_bench: %s\n", err.message);
        exit(1);
    }
    return c;
}

/* One raw unary Range call on the channel: the request bytes are packed once by hand
 * (field 1 = key), the reply is received but not decoded. */
static int raw_range(grpc_channel *ch, grpc_byte_buffer *req)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(5000, GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string("/etcdserverpb.KV/Range"), NULL, deadline, NULL);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *resp = NULL, *send = grpc_byte_buffer_copy(req);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
    grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (resp)
        grpc_byte_buffer_destroy(resp);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return status == GRPC_STATUS_OK ? 0 : -1;
}

static int latency(int n, size_t size)
{
    etcdc_client *c = connect_client();
    char *value = malloc(size);
    memset(value, 'v', size);
    double *lat = malloc(sizeof(double) * (size_t)n);
    char key[64];
    etcdc_error err;
    int warm = n / 10 + 10;

    for (int i = 0; i < warm; i++) { /* connection, allocator and server caches warm */
        snprintf(key, sizeof key, "bench/lib/%06d", i % n);
        etcdc_put(c, key, strlen(key), value, size, NULL, &err);
    }
    double cpu0 = cpu_us();
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "bench/lib/%06d", i);
        double t0 = now_us();
        if (etcdc_put(c, key, strlen(key), value, size, NULL, &err) != ETCDC_OK) {
            fprintf(stderr, "put: %s\n", err.message);
            return 1;
        }
        lat[i] = now_us() - t0;
    }
    report("lib_put", lat, n, cpu_us() - cpu0);

    /* Gets through the library and raw gRPC round trips for the same keys (hand-packed
     * RangeRequest{key}), alternating in blocks of 50 so that both see the same machine load;
     * CPU time is accumulated per kind. */
    grpc_channel *ch = etcdc_client_channel(c);
    double *raw = malloc(sizeof(double) * (size_t)n);
    double cpu_lib = 0, cpu_raw = 0;
    for (int block = 0; block < n; block += 50) {
        int end = block + 50 < n ? block + 50 : n;
        double cpu0 = cpu_us();
        for (int i = block; i < end; i++) {
            snprintf(key, sizeof key, "bench/lib/%06d", i);
            etcdc_kv kv;
            double t0 = now_us();
            if (etcdc_get(c, key, strlen(key), &kv, &err) != ETCDC_OK || kv.value_len != size) {
                fprintf(stderr, "get: %s\n", err.message);
                return 1;
            }
            lat[i] = now_us() - t0;
            etcdc_kv_clear(&kv);
        }
        double cpu1 = cpu_us();
        cpu_lib += cpu1 - cpu0;
        for (int i = block; i < end; i++) {
            int kl = snprintf(key, sizeof key, "bench/lib/%06d", i);
            unsigned char buf[80];
            buf[0] = 0x0a; /* field 1, length-delimited */
            buf[1] = (unsigned char)kl;
            memcpy(buf + 2, key, (size_t)kl);
            grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, (size_t)kl + 2);
            grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
            grpc_slice_unref(s);
            double t0 = now_us();
            int rc = raw_range(ch, bb);
            raw[i] = now_us() - t0;
            grpc_byte_buffer_destroy(bb);
            if (rc != 0) {
                fprintf(stderr, "raw range failed\n");
                return 1;
            }
        }
        cpu_raw += cpu_us() - cpu1;
    }
    report("lib_get", lat, n, cpu_lib);
    report("raw_grpc_get", raw, n, cpu_raw);
    free(raw);

    etcdc_delete_prefix(c, "bench/lib/", 10, NULL, NULL);
    free(lat);
    free(value);
    etcdc_client_free(c);
    return 0;
}

typedef struct tput_arg {
    etcdc_client *c;
    int id;
    bool put;
    size_t size;
    const char *value;
    atomic_bool *stop;
    long ops, errors;
} tput_arg;

static void *tput_body(void *p)
{
    tput_arg *a = p;
    char key[64];
    etcdc_error err;
    for (long i = 0; !atomic_load(a->stop); i++) {
        snprintf(key, sizeof key, "bench/tput/%02d/%03ld", a->id,
                 i % 100); /* written by the put phase */
        etcdc_code rc;
        if (a->put) {
            rc = etcdc_put(a->c, key, strlen(key), a->value, a->size, NULL, &err);
        } else {
            etcdc_kv kv;
            rc = etcdc_get(a->c, key, strlen(key), &kv, &err);
            if (rc == ETCDC_OK)
                etcdc_kv_clear(&kv);
        }
        if (rc == ETCDC_OK)
            a->ops++;
        else
            a->errors++;
    }
    return NULL;
}

static int throughput(double seconds, size_t size, int nthreads_list[], int count)
{
    etcdc_client *c = connect_client();
    char *value = malloc(size);
    memset(value, 't', size);
    for (int k = 0; k < count; k++) {
        int nt = nthreads_list[k];
        for (int put = 1; put >= 0; put--) {
            atomic_bool stop = false;
            pthread_t th[64];
            tput_arg args[64];
            for (int i = 0; i < nt; i++) {
                args[i] = (tput_arg){
                    .c = c, .id = i, .put = put, .size = size, .value = value, .stop = &stop};
                pthread_create(&th[i], NULL, tput_body, &args[i]);
            }
            double t0 = now_us();
            usleep((useconds_t)(seconds * 1e6));
            atomic_store(&stop, true);
            long ops = 0, errors = 0;
            for (int i = 0; i < nt; i++) {
                pthread_join(th[i], NULL);
                ops += args[i].ops;
                errors += args[i].errors;
            }
            double took = (now_us() - t0) / 1e6;
            printf("TPUT %s %d %.0f %ld\n", put ? "put" : "get", nt, ops / took, errors);
            fflush(stdout);
        }
    }
    etcdc_delete_prefix(c, "bench/tput/", 11, NULL, NULL);
    free(value);
    etcdc_client_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "latency") == 0)
        return latency(atoi(argv[2]), (size_t)atol(argv[3]));
    if (argc >= 5 && strcmp(argv[1], "throughput") == 0) {
        int list[32], n = 0;
        for (int i = 4; i < argc && n < 32; i++)
            list[n++] = atoi(argv[i]) > 64 ? 64 : atoi(argv[i]);
        return throughput(atof(argv[2]), (size_t)atol(argv[3]), list, n);
    }
    fprintf(stderr, "usage: lib_bench latency N SIZE | throughput SECONDS SIZE THREADS...\n");
    return 2;
}
