/* error.c - etcdc_code names and the mapping from gRPC status + etcd message to etcdc_code. */
#include <grpc/status.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *etcdc_strerror(etcdc_code code)
{
    switch (code) {
    case ETCDC_OK: return "ok";
    case ETCDC_ERR_NOT_FOUND: return "not found";
    case ETCDC_ERR_COMPARE_FAILED: return "compare failed";
    case ETCDC_ERR_TIMEOUT: return "timed out";
    case ETCDC_ERR_UNAVAILABLE: return "unavailable";
    case ETCDC_ERR_PERMISSION_DENIED: return "permission denied";
    case ETCDC_ERR_AUTH_FAILED: return "authentication failed";
    case ETCDC_ERR_TOO_LARGE: return "too large";
    case ETCDC_ERR_NO_SPACE: return "database space exceeded";
    case ETCDC_ERR_COMPACTED: return "revision compacted";
    case ETCDC_ERR_FUTURE_REVISION: return "future revision";
    case ETCDC_ERR_CANCELED: return "canceled";
    case ETCDC_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ETCDC_ERR_TOO_MANY_OPS: return "too many operations in transaction";
    case ETCDC_ERR_TLS: return "TLS setup failed";
    case ETCDC_ERR_NO_MEMORY: return "out of memory";
    case ETCDC_ERR_CRYPTO: return "value failed decryption";
    case ETCDC_ERR_LEASE_EXPIRED: return "lease expired";
    case ETCDC_ERR_INTERNAL: return "internal error";
    case ETCDC_ERR_WOULD_BLOCK: return "lock held elsewhere";
    case ETCDC_ERR_NOT_LEADER: return "not the election leader";
    case ETCDC_ERR_IO: return "local file error";
    }
    return "unknown error";
}

etcdc_code etcdc__set_error(etcdc_error *err, etcdc_code code, int grpc_status, const char *fmt,
                            ...)
{
    if (err) {
        err->code = code;
        err->grpc_status = grpc_status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

void etcdc__clear_error(etcdc_error *err)
{
    if (err) {
        err->code = ETCDC_OK;
        err->grpc_status = 0;
        err->message[0] = '\0';
    }
}

etcdc_code etcdc__ok_with_note(etcdc_error *err, etcdc_code rc)
{
    if (rc == ETCDC_OK && err) {
        err->code = ETCDC_OK;
        err->grpc_status = 0;
    }
    return rc;
}

static bool has(const char *message, const char *needle)
{
    return message && strstr(message, needle) != NULL;
}

/* etcd reports most conditions through the status message; the code alone is ambiguous
 * (INVALID_ARGUMENT covers both "request is too large" and a wrong password). */
etcdc_code etcdc__code_from_status(int grpc_status, const char *message)
{
    switch ((grpc_status_code)grpc_status) {
    case GRPC_STATUS_OK: return ETCDC_OK;
    case GRPC_STATUS_CANCELLED: return ETCDC_ERR_CANCELED;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return ETCDC_ERR_TIMEOUT;
    case GRPC_STATUS_NOT_FOUND: return ETCDC_ERR_NOT_FOUND;
    case GRPC_STATUS_PERMISSION_DENIED: return ETCDC_ERR_PERMISSION_DENIED;
    case GRPC_STATUS_UNAUTHENTICATED: return ETCDC_ERR_AUTH_FAILED;
    case GRPC_STATUS_UNAVAILABLE: return ETCDC_ERR_UNAVAILABLE;
    case GRPC_STATUS_INVALID_ARGUMENT:
        if (has(message, "request is too large"))
            return ETCDC_ERR_TOO_LARGE;
        if (has(message, "too many operations"))
            return ETCDC_ERR_TOO_MANY_OPS;
        if (has(message, "authentication failed") || has(message, "invalid user ID") ||
            has(message, "user name is empty")) /* no token, or an expired simple token */
            return ETCDC_ERR_AUTH_FAILED;
        return ETCDC_ERR_INVALID_ARGUMENT;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        if (has(message, "database space exceeded"))
            return ETCDC_ERR_NO_SPACE;
        return ETCDC_ERR_TOO_LARGE; /* message larger than a send/receive limit */
    case GRPC_STATUS_OUT_OF_RANGE:
        if (has(message, "future revision"))
            return ETCDC_ERR_FUTURE_REVISION;
        return ETCDC_ERR_COMPACTED;
    case GRPC_STATUS_FAILED_PRECONDITION:
        if (has(message, "auth") || has(message, "user"))
            return ETCDC_ERR_AUTH_FAILED;
        return ETCDC_ERR_INVALID_ARGUMENT;
    default: return ETCDC_ERR_INTERNAL;
    }
}
