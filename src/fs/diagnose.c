/*
 * diagnose.c - one line for a failed connection to etcd (diagnose.h).
 *
 * The library reports a failed handshake as "unavailable", with gRPC's text and, when gRPC
 * logged it, OpenSSL's reason ("TLS handshake failed: sslv3 alert bad certificate (...)"); the
 * cases are told apart by that text.
 */
#include "diagnose.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static bool contains(const char *haystack, const char *needle)
{
    return strcasestr(haystack, needle) != NULL;
}

const char *diagnose_openssl_reason(const char *m)
{
    for (const char *e = strstr(m, "error:"); e; e = strstr(e + 6, "error:")) {
        char *end;
        unsigned long code = strtoul(e + 6, &end, 16);
        if (code == 0 || *end != ':' || end - (e + 6) != 8)
            continue;
        if (!OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
                              NULL))
            return NULL;
        return ERR_reason_error_string(code);
    }
    return NULL;
}

/* The TLS reason in the library's message: after "TLS handshake failed: " (up to " ("), or
 * a verification failure, or OpenSSL's reason for a packed code. */
static bool tls_reason(const char *m, char *out, size_t n)
{
    const char *r = strstr(m, "TLS handshake failed: ");
    if (r) {
        r += strlen("TLS handshake failed: ");
        snprintf(out, n, "%.*s", (int)strcspn(r, "("), r);
        size_t len = strlen(out);
        while (len > 0 && out[len - 1] == ' ')
            out[--len] = 0;
        return len > 0;
    }
    if ((r = strstr(m, "Peer name")) && strstr(r, "not in peer certificate")) {
        const char *tail = "not in peer certificate";
        snprintf(out, n, "%.*s", (int)(strstr(r, tail) - r + (long)strlen(tail)), r);
        return true;
    }
    const char *why = diagnose_openssl_reason(m);
    if (!why && contains(m, "certificate verify failed"))
        why = "certificate verify failed";
    if (why)
        snprintf(out, n, "%s", why);
    return why != NULL;
}

static void set(diagnosis *d, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set(diagnosis *d, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->what, sizeof d->what, fmt, ap);
    va_end(ap);
    snprintf(d->hint, sizeof d->hint, "%s", hint ? hint : "");
}

/* A failed handshake, by its reason. */
static void diagnose_tls(const etcdfs_opts *o, const char *reason, const char *full, diagnosis *d)
{
    const char *ep = o->endpoints;
    if (contains(reason, "verify failed"))
        set(d,
            o->cacert ? "check --cacert: it must hold the CA that signed the server's certificate"
                      : "give --cacert: the CA that signed the server's certificate",
            "TLS handshake with %s failed: the server's certificate is not signed by %s (%s)", ep,
            o->cacert ? "the CA in --cacert" : "a CA this host trusts", reason);
    else if (contains(reason, "Peer name"))
        set(d,
            "use an endpoint the certificate names, or give the name it holds with "
            "--tls-server-name=NAME",
            "TLS handshake with %s failed: the server's certificate does not name the endpoint "
            "(%s)",
            ep, reason);
    else if (contains(reason, "bad certificate") || contains(reason, "certificate required") ||
             contains(reason, "unknown ca") || contains(reason, "certificate unknown") ||
             contains(reason, "unsupported certificate") || contains(reason, "access denied"))
        set(d,
            "give --cert and --key: a client certificate signed by a CA the server trusts "
            "(etcd --trusted-ca-file)",
            "TLS handshake with %s failed: the server refused %s (%s)", ep,
            o->cert ? "the client certificate in --cert"
                    : "to connect without a client certificate",
            reason);
    else if (contains(reason, "wrong version number") || contains(reason, "packet length too long"))
        set(d,
            "the server speaks plain TCP: drop --cacert, --cert, --key and "
            "--insecure-skip-tls-verify",
            "TLS handshake with %s failed: the server does not speak TLS (%s)", ep, reason);
    else
        set(d, "check --cacert, --cert and --key", "TLS handshake with %s failed: %s (%s)", ep,
            reason, full);
}

/* Whether the certificate in cert_path is known not to be signed by a CA in ca_path (chain and
 * signature only: validity dates and purpose have messages of their own). False when it is, or
 * when either file cannot be read (nothing is known then). */
static bool not_signed_by(const char *cert_path, const char *ca_path)
{
    FILE *f = fopen(cert_path, "r");
    if (!f)
        return false;
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool stranger = false;
    if (cert && store && ctx && X509_STORE_load_file(store, ca_path) == 1 &&
        X509_STORE_CTX_init(ctx, store, cert, NULL) == 1) {
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
        stranger = X509_verify_cert(ctx) != 1;
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(cert);
    ERR_clear_error();
    return stranger;
}

/* Under TLS 1.3 the server checks the client certificate after the client has finished its
 * handshake, and its alert is lost when the connection is reset before the client reads it. A
 * reset right after a handshake whose client certificate is not signed by the CA that signed
 * the server's is then told as the refusal it almost surely is. */
static bool lost_client_cert_refusal(const etcdfs_opts *o, const char *full, diagnosis *d)
{
    if (!o->cert || !o->cacert || !not_signed_by(o->cert, o->cacert))
        return false;
    set(d,
        "give --cert and --key: a client certificate signed by a CA the server trusts "
        "(etcd --trusted-ca-file)",
        "TLS handshake with %s failed: the server refused the client certificate in --cert "
        "(it closed the connection after the handshake, and the certificate is not signed by "
        "the CA in --cacert: %s)",
        o->endpoints, full);
    return true;
}

void diagnose_connect(const etcdfs_opts *o, const etcdc_error *err, diagnosis *d)
{
    const char *full = err->message[0] ? err->message : etcdc_strerror(err->code);
    const char *ep = o->endpoints;
    bool tls = o->cacert || o->cert || o->key || o->insecure_skip_tls_verify;
    char reason[200];
    bool closed = contains(full, "Socket closed") || contains(full, "Endpoint read failed") ||
                  contains(full, "Connection reset");
    if (err->code == ETCDC_ERR_AUTH_FAILED || contains(full, "authentication failed") ||
        contains(full, "invalid user") || contains(full, "password"))
        set(d, "check --user and the password file (or $ETCDCTL_PASSWORD)",
            "authentication failed for user '%s' at %s: %s", o->user ? o->user : "", ep, full);
    else if (err->code == ETCDC_ERR_TLS)
        set(d, "check --cacert, --cert and --key (PEM files)", "TLS files unusable: %s", full);
    else if (tls && tls_reason(full, reason, sizeof reason))
        diagnose_tls(o, reason, full, d);
    else if (!tls && closed)
        set(d,
            "the server may speak TLS: give --cacert (and --cert and --key if it asks for a "
            "client certificate)",
            "cannot connect to %s: the server closed the connection (%s)", ep, full);
    else if (tls && closed && lost_client_cert_refusal(o, full, d))
        return;
    else if (tls && closed)
        set(d,
            "check that the server speaks TLS there, and whether it wants a client certificate "
            "(--cert, --key)",
            "cannot connect to %s: the server closed the TLS connection (%s)", ep, full);
    else if (err->code == ETCDC_ERR_UNAVAILABLE || err->code == ETCDC_ERR_TIMEOUT)
        set(d,
            tls ? "is etcd running and listening with TLS there? check --endpoints and --cacert"
                : "is etcd running? check --endpoints (and whether it needs TLS: --cacert)",
            "cannot connect to %s: %s", ep, full);
    else
        set(d, "check --endpoints, TLS and auth options", "cannot connect to %s: %s", ep, full);
}

bool diagnose_key_mode(const char *path, char *msg, size_t n)
{
    struct stat st;
    if (!path || stat(path, &st) != 0 || !(st.st_mode & 077))
        return true;
    snprintf(msg, n,
             "client key '%s' is accessible by group or others (mode %03o): run chmod 600 %s", path,
             (unsigned)(st.st_mode & 0777), path);
    return false;
}

static void grpc_line(void *arg, int severity, const char *file, int line, const char *message)
{
    (void)arg;
    if (log_debug_enabled())
        log_msg(LOG_DEBUG, "grpc %s %s:%d: %s", severity == ETCDC_GRPC_LOG_ERROR ? "error" : "info",
                file, line, message);
}

void diagnose_route_grpc_log(void)
{
    etcdc_set_grpc_log_handler(grpc_line, NULL);
}
