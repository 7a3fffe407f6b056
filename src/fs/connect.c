/*
 * connect.c - the etcd client of a mount (or of a command such as rekey or --check) from the
 * command-line options, and the one-line report of what went wrong.
 */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "connect.h"
#include "diagnose.h"

/* Sends the outcome to the waiting parent (daemon mode) or prints it (foreground). */
void report_startup(int fd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (fd >= 0) {
        ssize_t w = write(fd, msg, strlen(msg));
        (void)w;
    } else if (strcmp(msg, "OK")) {
        fprintf(stderr, "etcdfs: %s\n", msg);
    }
}

etcdc_config *connect_config(const etcdfs_opts *o, const char *password, const char *endpoints,
                             char *why, size_t why_size)
{
    etcdc_config *cfg = etcdc_config_new();
    etcdc_error err = {0};
    why[0] = 0;
    if (!cfg) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    if (etcdc_config_set_endpoints(cfg, endpoints ? endpoints : o->endpoints)) {
        snprintf(why, why_size, "bad --endpoints '%s' (give host:port[,host:port...])",
                 endpoints ? endpoints : o->endpoints);
        goto bad;
    }
    etcdc_config_set_dial_timeout_ms(cfg, o->dial_timeout_ms);
    etcdc_config_set_request_timeout_ms(cfg, o->command_timeout_ms);
    /* A member cut off by the network drops packets instead of refusing them: a request on its
     * connection would wait for its whole deadline, and a guarded write cannot be cut short and
     * sent elsewhere blindly. gRPC closes a connection whose data or keep-alive ping stays
     * unanswered for the keep-alive timeout (it is also the socket's TCP_USER_TIMEOUT): a third
     * of the command timeout (2 to 10 s) leaves time to send the request again on another. A
     * request the member took just before the cut leaves nothing unacknowledged on our side:
     * only a ping finds that connection dead, so pings go as often as etcd allows (every 5 s,
     * its --grpc-keepalive-min-time), and the ping's interval plus its timeout stays within a
     * 10 s command timeout. */
    etcdc_config_set_keepalive_ms(cfg, 5000,
                                  o->command_timeout_ms < 6000    ? 2000
                                  : o->command_timeout_ms > 30000 ? 10000
                                                                  : o->command_timeout_ms / 3);
    /* Send: one file plus a directory rename's worth; receive: large listing pages. */
    etcdc_config_set_max_message_size(cfg, 4u << 20, 64u << 20);
    if (!diagnose_key_mode(o->key, why, why_size))
        goto bad;
    if ((o->cacert || o->cert || o->key) && etcdc_config_set_tls(cfg, o->cacert, o->cert, o->key)) {
        snprintf(why, why_size, "out of memory");
        goto bad;
    }
    if (o->insecure_skip_tls_verify)
        etcdc_config_set_tls_insecure_skip_verify(cfg, true);
    if (o->tls_server_name && etcdc_config_set_tls_server_name(cfg, o->tls_server_name)) {
        snprintf(why, why_size, "out of memory");
        goto bad;
    }
    if (o->key_file && etcdc_config_load_key_file(cfg, o->key_file, &err) != ETCDC_OK) {
        snprintf(why, why_size, "%s", err.message); /* names the file, never its bytes */
        goto bad;
    }
    etcdc_config_set_allow_plaintext(cfg, o->allow_plaintext);
    if (o->user && etcdc_config_set_auth(cfg, o->user, password ? password : "")) {
        snprintf(why, why_size, "out of memory");
        goto bad;
    }
    return cfg;
bad:
    etcdc_config_free(cfg);
    return NULL;
}

etcdc_client *connect_etcd(const etcdfs_opts *o, char *password, int report_fd)
{
    char why[512];
    diagnose_route_grpc_log();
    etcdc_config *cfg = connect_config(o, password, NULL, why, sizeof why);
    if (!cfg) {
        report_startup(report_fd, "%s", why);
        return NULL;
    }
    etcdc_error err = {0};
    etcdc_client *client = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    if (!client) {
        diagnosis d;
        diagnose_connect(o, &err, &d);
        report_startup(report_fd, "%s%s%s", d.what, d.hint[0] ? " - " : "", d.hint);
    }
    return client;
}
