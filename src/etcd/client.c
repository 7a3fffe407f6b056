/*
 * client.c - creating and freeing a client: the gRPC channel (endpoints, TLS, keep-alive,
 * message limits), the first connection within the dial timeout, and authentication.
 */
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "internal.h"

/* Reads a whole PEM file. NULL (with err filled) when it cannot. */
static char *read_pem(const char *path, const char *what, etcdc_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "cannot read %s '%s': %m", what, path);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t n; buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (cap - len < 2) {
            char *grown = len < (1u << 20) ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                OPENSSL_cleanse(buf, len);
                free(buf);
                buf = NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "%s '%s' is too large", what, path);
        return NULL;
    }
    buf[len] = 0;
    if (!strstr(buf, "-----BEGIN")) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "%s '%s' is not a PEM file", what, path);
        return NULL;
    }
    return buf;
}

static void free_pem(char *pem)
{
    if (pem) {
        OPENSSL_cleanse(pem, strlen(pem));
        free(pem);
    }
}

/* Never prompts on a terminal for the pass phrase of an encrypted key (gRPC cannot use one). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static bool check_ca(const char *ca, const char *path, etcdc_error *err)
{
    BIO *b = BIO_new_mem_buf(ca, -1);
    int certs = 0;
    for (X509 *x; b && (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)); certs++)
        X509_free(x);
    BIO_free(b);
    ERR_clear_error();
    if (certs == 0)
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "CA file '%s' holds no PEM certificate", path);
    return certs > 0;
}

/* "expired on" / "not valid before" and the date, when the certificate is out of its period. */
static bool out_of_period(X509 *x, char *why, size_t n)
{
    const ASN1_TIME *end = X509_get0_notAfter(x), *start = X509_get0_notBefore(x);
    const ASN1_TIME *t = X509_cmp_current_time(end) < 0     ? end
                         : X509_cmp_current_time(start) > 0 ? start
                                                            : NULL;
    if (!t)
        return false;
    BIO *b = BIO_new(BIO_s_mem());
    char date[64] = "";
    if (b && ASN1_TIME_print(b, t) > 0) {
        int len = BIO_read(b, date, sizeof date - 1);
        date[len > 0 ? len : 0] = 0;
    }
    BIO_free(b);
    snprintf(why, n, "%s %s", t == end ? "expired on" : "is not valid before", date);
    return true;
}

/* What gRPC would only report later as a failed subchannel ("empty address list"), or as a
 * handshake the server refuses: every file parses, the client certificate is within its
 * validity period, and the key belongs to it. */
static bool check_client_pair(const etcdc_config *cfg, const char *cert, const char *key,
                              etcdc_error *err)
{
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, no_passphrase, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL) : NULL;
    char why[96];
    bool ok = false;
    if (!x)
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "client certificate '%s' is not a PEM certificate",
                         cfg->cert_file);
    else if (!k)
        etcdc__set_error(err, ETCDC_ERR_TLS, 0,
                         "client key '%s' is not a PEM private key (or is encrypted: etcd's "
                         "clients need it unencrypted)",
                         cfg->key_file);
    else if (X509_check_private_key(x, k) != 1)
        etcdc__set_error(err, ETCDC_ERR_TLS, 0,
                         "client key '%s' does not belong to client certificate '%s'",
                         cfg->key_file, cfg->cert_file);
    else if (out_of_period(x, why, sizeof why))
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "client certificate '%s' %s", cfg->cert_file, why);
    else
        ok = true;
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    ERR_clear_error();
    return ok;
}

static grpc_channel_credentials *make_credentials(const etcdc_config *cfg, etcdc_error *err)
{
    if (!cfg->tls)
        return grpc_insecure_credentials_create();
    char *ca = NULL, *cert = NULL, *key = NULL;
    grpc_channel_credentials *creds = NULL;
    if (cfg->ca_file && !(ca = read_pem(cfg->ca_file, "CA file", err)))
        goto out;
    if (cfg->cert_file && !(cert = read_pem(cfg->cert_file, "client certificate", err)))
        goto out;
    if (cfg->key_file && !(key = read_pem(cfg->key_file, "client key", err)))
        goto out;
    if ((ca && !check_ca(ca, cfg->ca_file, err)) ||
        (cert && key && !check_client_pair(cfg, cert, key, err)))
        goto out;
    if (cfg->insecure_skip_verify) {
        grpc_tls_credentials_options *opts = grpc_tls_credentials_options_create();
        grpc_tls_identity_pairs *pairs = NULL;
        if (cert) {
            pairs = grpc_tls_identity_pairs_create();
            grpc_tls_identity_pairs_add_pair(pairs, key, cert);
        }
        if (ca || pairs) {
            grpc_tls_certificate_provider *provider =
                grpc_tls_certificate_provider_static_data_create(ca, pairs);
            grpc_tls_credentials_options_set_certificate_provider(opts, provider);
            grpc_tls_certificate_provider_release(provider);
            if (ca)
                grpc_tls_credentials_options_watch_root_certs(opts);
            if (pairs)
                grpc_tls_credentials_options_watch_identity_key_cert_pairs(opts);
        }
        grpc_tls_credentials_options_set_verify_server_cert(opts, 0);
        grpc_tls_certificate_verifier *verifier = grpc_tls_certificate_verifier_no_op_create();
        grpc_tls_credentials_options_set_certificate_verifier(opts, verifier);
        grpc_tls_certificate_verifier_release(verifier);
        grpc_tls_credentials_options_set_check_call_host(opts, 0);
        creds = grpc_tls_credentials_create(opts);
    } else {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    }
    if (!creds)
        etcdc__set_error(err, ETCDC_ERR_TLS, 0, "could not create TLS credentials");
out:
    free_pem(ca);
    free_pem(cert);
    free_pem(key);
    return creds;
}

static grpc_channel *make_channel(const etcdc_config *cfg, etcdc_error *err)
{
    char *target = NULL, *first_host = NULL;
    char msg[256];
    if (etcdc__endpoints_to_target(cfg->endpoints, &target, &first_host, msg, sizeof msg) < 0) {
        etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "bad endpoints: %s", msg);
        return NULL;
    }
    grpc_channel_credentials *creds = make_credentials(cfg, err);
    if (!creds) {
        free(target);
        free(first_host);
        return NULL;
    }
    grpc_arg args[12];
    size_t n = 0;
    args[n++] = (grpc_arg){
        GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = (int)cfg->keepalive_time_ms}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER,
                           GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                           {.integer = (int)cfg->keepalive_timeout_ms}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}};
    args[n++] =
        (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 0}};
    args[n++] = (grpc_arg){
        GRPC_ARG_INTEGER, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = (int)cfg->max_send_bytes}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER,
                           GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                           {.integer = (int)cfg->max_recv_bytes}};
    args[n++] = (grpc_arg){GRPC_ARG_STRING, GRPC_ARG_LB_POLICY_NAME, {.string = "round_robin"}};
    /* Come back quickly after an outage: etcd members restart in well under a second. */
    args[n++] =
        (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 100}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 1000}};
    /* gRPC core uses this one as the minimum time a connection attempt may take: a small value
     * cuts slow handshakes (TLS, a loaded host) off for ever. A refused connection fails at once
     * whatever it is, so give attempts the dial timeout. */
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER,
                           GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                           {.integer = (int)cfg->dial_timeout_ms}};
    if (cfg->tls)
        args[n++] = (grpc_arg){GRPC_ARG_STRING,
                               GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                               {.string = cfg->server_name ? cfg->server_name : first_host}};
    grpc_channel_args chargs = {n, args};
    grpc_channel *ch = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    free(target);
    free(first_host);
    return ch;
}

/* Waits until the channel has a ready connection or the dial timeout passes. */
static bool wait_connected(grpc_channel *ch, int64_t timeout_ms)
{
    gpr_timespec deadline = etcdc__ctx_clamp(etcdc__deadline_ms(timeout_ms), NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);
    while (st != GRPC_CHANNEL_READY && !etcdc__ctx_canceled() &&
           gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) < 0) {
        /* under a call context, look at it every 100 ms */
        gpr_timespec slice = etcdc__deadline_ms(100);
        bool sliced = etcdc__ctx_current() && gpr_time_cmp(slice, deadline) < 0;
        grpc_channel_watch_connectivity_state(ch, st, sliced ? slice : deadline, cq, NULL);
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        st = grpc_channel_check_connectivity_state(ch, 1);
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return st == GRPC_CHANNEL_READY;
}

/* Asks for a token and installs it on success; the old token stays in use until then.
 * Called with reauth_mu held (or before the client is shared). */
static etcdc_code authenticate(etcdc_client *c, etcdc_error *err)
{
    Etcdserverpb__AuthenticateRequest req = ETCDSERVERPB__AUTHENTICATE_REQUEST__INIT;
    req.name = c->cfg.user;
    req.password = c->cfg.password ? c->cfg.password : "";
    Etcdserverpb__AuthenticateResponse *resp = NULL;
    etcdc_error e = {0};
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Auth/Authenticate", ETCDC_STAT_AUTH, ETCDC_RETRY_IDEMPOTENT, &req.base,
        &etcdserverpb__authenticate_response__descriptor, (ProtobufCMessage **)&resp, &e);
    if (rc != ETCDC_OK && strstr(e.message, "authentication is not enabled"))
        rc = ETCDC_OK; /* auth is off (for now): calls go without a token, as etcd's Go client
                        * does; once it is on again, the first refusal authenticates anew */
    else if (rc != ETCDC_OK && err)
        *err = e;
    char *token = NULL;
    if (rc == ETCDC_OK && !(token = strdup(resp && resp->token ? resp->token : "")))
        rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    if (rc == ETCDC_ERR_AUTH_FAILED || rc == ETCDC_ERR_INVALID_ARGUMENT)
        rc = etcdc__set_error(err, ETCDC_ERR_AUTH_FAILED, err ? err->grpc_status : 0,
                              "authentication as '%s' failed: wrong user name or password",
                              c->cfg.user);
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (!token)
        return rc;
    pthread_mutex_lock(&c->auth_mu);
    char *old = c->token;
    c->token = token;
    c->auth_gen++;
    pthread_mutex_unlock(&c->auth_mu);
    free(old);
    return rc;
}

etcdc_code etcdc__reauthenticate(etcdc_client *c, uint64_t gen, etcdc_error *err)
{
    /* One thread authenticates at a time; the others find the generation moved on and use
     * the token it got. */
    pthread_mutex_lock(&c->reauth_mu);
    etcdc_code rc = etcdc__auth_gen(c) == gen ? authenticate(c, err) : ETCDC_OK;
    pthread_mutex_unlock(&c->reauth_mu);
    return rc;
}

static void client_destroy(etcdc_client *c)
{
    etcdc__stream_shutdown(c);
    if (c->channel)
        grpc_channel_destroy(c->channel);
    free(c->token);
    etcdc__config_clear(&c->cfg);
    pthread_mutex_destroy(&c->auth_mu);
    pthread_mutex_destroy(&c->reauth_mu);
    pthread_mutex_destroy(&c->stats_mu);
    pthread_mutex_destroy(&c->stream_mu);
    pthread_mutex_destroy(&c->closing_mu);
    pthread_cond_destroy(&c->closing_cv);
    free(c);
    grpc_shutdown();
}

static etcdc_client *client_new(const etcdc_config *cfg, etcdc_error *err);

etcdc_client *etcdc_client_new(const etcdc_config *cfg, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (cfg)
        return client_new(cfg, err);
    etcdc_config *defaults = etcdc_config_new();
    if (!defaults) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    etcdc_client *c = client_new(defaults, err);
    etcdc_config_free(defaults);
    return c;
}

static etcdc_client *client_new(const etcdc_config *cfg, etcdc_error *err)
{
    etcdc_client *c = calloc(1, sizeof *c);
    if (!c) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    etcdc__grpc_log_install();
    grpc_init();
    pthread_mutex_init(&c->auth_mu, NULL);
    pthread_mutex_init(&c->reauth_mu, NULL);
    pthread_mutex_init(&c->stats_mu, NULL);
    pthread_mutex_init(&c->stream_mu, NULL);
    pthread_mutex_init(&c->closing_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&c->closing_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (etcdc__config_copy(&c->cfg, cfg) != ETCDC_OK) {
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        client_destroy(c);
        return NULL;
    }
    c->channel = make_channel(&c->cfg, err);
    if (!c->channel) {
        client_destroy(c);
        return NULL;
    }
    bool connected = wait_connected(c->channel, c->cfg.dial_timeout_ms);
    if (!connected && etcdc__ctx_canceled()) {
        etcdc__set_error(err, ETCDC_ERR_CANCELED, 0,
                         "connecting to etcd at %s: canceled by the call context",
                         c->cfg.endpoints);
        client_destroy(c);
        return NULL;
    }
    if (!connected) {
        char cause[400];
        int status = etcdc__unreachable_cause(c, c->cfg.dial_timeout_ms / 4, cause, sizeof cause);
        etcdc__set_error(err, ETCDC_ERR_UNAVAILABLE, status,
                         "cannot connect to etcd at %s within %lld ms: %s", c->cfg.endpoints,
                         (long long)c->cfg.dial_timeout_ms, cause);
        client_destroy(c);
        return NULL;
    }
    if (c->cfg.user && authenticate(c, err) != ETCDC_OK) {
        client_destroy(c);
        return NULL;
    }
    return c;
}

void etcdc_client_free(etcdc_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->closing_mu);
    c->closing = true;
    pthread_cond_broadcast(&c->closing_cv);
    pthread_mutex_unlock(&c->closing_mu);
    client_destroy(c);
}

void *etcdc_client_channel(etcdc_client *c)
{
    return c->channel;
}

void etcdc_client_stats(etcdc_client *c, etcdc_stats *out)
{
    pthread_mutex_lock(&c->stats_mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->stats_mu);
}
