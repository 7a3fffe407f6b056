/*
 * grpc_log.c - gRPC's own log lines. They go to the application's handler (or to stderr, as
 * gRPC prints them), and the reason of the last TLS failure is kept: when a server refuses the
 * handshake (no or an unknown client certificate), a call's status only says "Endpoint read
 * failed" or "Socket closed", while gRPC logs OpenSSL's reason ("sslv3 alert bad certificate").
 *
 * gRPC has one log for the whole process, so this state is process-wide, under one mutex.
 */
#include <grpc/support/log.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define REASON_MAX 200

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t installed = PTHREAD_ONCE_INIT;
static etcdc_grpc_log_fn handler;   /* [mu] */
static void *handler_arg;           /* [mu] */
static char tls_reason[REASON_MAX]; /* [mu] the last TLS failure gRPC logged */
static int64_t tls_reason_ms;       /* [mu] when (monotonic), 0 = never */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* OpenSSL's reason in a gRPC line ("... SSL routines::certificate verify failed."), or a
 * line that is a TLS reason of gRPC's own; NULL for other lines. */
static const char *tls_reason_of(const char *msg, size_t *len)
{
    const char *r = strstr(msg, "SSL routines::");
    if (r) {
        r += strlen("SSL routines::");
        *len = strcspn(r, ".\n");
        return *len ? r : NULL;
    }
    if ((strstr(msg, "Peer name") && strstr(msg, "not in peer certificate")) ||
        strstr(msg, "Invalid private key") || strstr(msg, "Invalid cert chain")) {
        *len = strcspn(msg, "\n");
        while (*len > 0 && msg[*len - 1] == '.')
            (*len)--;
        return msg;
    }
    return NULL;
}

static int severity_of(gpr_log_severity s)
{
    return s == GPR_LOG_SEVERITY_ERROR  ? ETCDC_GRPC_LOG_ERROR
           : s == GPR_LOG_SEVERITY_INFO ? ETCDC_GRPC_LOG_INFO
                                        : ETCDC_GRPC_LOG_DEBUG;
}

static void on_grpc_log(gpr_log_func_args *a)
{
    size_t len = 0;
    const char *reason = a->message ? tls_reason_of(a->message, &len) : NULL;
    pthread_mutex_lock(&mu);
    if (reason) {
        snprintf(tls_reason, sizeof tls_reason, "%.*s", (int)len, reason);
        tls_reason_ms = now_ms();
    }
    etcdc_grpc_log_fn fn = handler;
    void *arg = handler_arg;
    pthread_mutex_unlock(&mu);
    const char *file = a->file ? strrchr(a->file, '/') : NULL;
    file = file ? file + 1 : a->file ? a->file : "?";
    if (fn)
        fn(arg, severity_of(a->severity), file, a->line, a->message ? a->message : "");
    else
        fprintf(stderr, "grpc %c %s:%d] %s\n", "DIE"[severity_of(a->severity)], file, a -> line,
                a -> message ? a -> message : "");
}

static void install(void)
{
    gpr_set_log_function(on_grpc_log);
}

void etcdc__grpc_log_install(void)
{
    pthread_once(&installed, install);
}

void etcdc_set_grpc_log_handler(etcdc_grpc_log_fn fn, void *arg)
{
    etcdc__grpc_log_install();
    pthread_mutex_lock(&mu);
    handler = fn;
    handler_arg = arg;
    pthread_mutex_unlock(&mu);
}

bool etcdc__recent_tls_failure(int64_t within_ms, char *out, size_t n)
{
    pthread_mutex_lock(&mu);
    bool recent = tls_reason_ms > 0 && now_ms() - tls_reason_ms <= within_ms;
    if (recent)
        snprintf(out, n, "%s", tls_reason);
    pthread_mutex_unlock(&mu);
    return recent;
}
