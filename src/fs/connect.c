/*
 * connect.c - the etcd client of a mount (or of a command such as rekey) from the command-line
 * options, and the one-line report of what went wrong.
 */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "connect.h"

/* Sends the outcome to the waiting parent (daemon mode) or prints it (foreground). */
void report(int fd, const char *fmt, ...)
{
    char msg[512];
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

etcdc_client *connect_etcd(const etcdfs_opts *o, char *password, int report_fd)
{
    etcdc_client *client = NULL;
    etcdc_error err = {0};
    etcdc_config *cfg = etcdc_config_new();
    if (!cfg) {
        report(report_fd, "out of memory");
        return NULL;
    }
    etcdc_code code = etcdc_config_set_endpoints(cfg, o->endpoints);
    if (code) {
        report(report_fd, "bad --endpoints '%s'", o->endpoints);
        goto out;
    }
    etcdc_config_set_dial_timeout_ms(cfg, o->dial_timeout_ms);
    etcdc_config_set_request_timeout_ms(cfg, o->command_timeout_ms);
    /* A member cut off by the network drops packets instead of refusing them: a request on its
     * connection would wait for its whole deadline, and a guarded write cannot be cut short and
     * sent elsewhere blindly. gRPC closes a connection whose data or keep-alive ping stays
     * unanswered for the keep-alive timeout (it is also the socket's TCP_USER_TIMEOUT): a third
     * of the command timeout (2 to 10 s) leaves time to send the request again on another. */
    etcdc_config_set_keepalive_ms(cfg, 10000,
                                  o->command_timeout_ms < 6000    ? 2000
                                  : o->command_timeout_ms > 30000 ? 10000
                                                                  : o->command_timeout_ms / 3);
    /* Send: one file plus a directory rename's worth; receive: large listing pages. */
    etcdc_config_set_max_message_size(cfg, 4u << 20, 64u << 20);
    if (o->cacert || o->cert || o->key) {
        code = etcdc_config_set_tls(cfg, o->cacert, o->cert, o->key);
        if (code) {
            report(report_fd, "bad TLS files (--cacert/--cert/--key)");
            goto out;
        }
    }
    if (o->insecure_skip_tls_verify)
        etcdc_config_set_tls_insecure_skip_verify(cfg, true);
    if (o->key_file && etcdc_config_load_key_file(cfg, o->key_file, &err) != ETCDC_OK) {
        report(report_fd, "%s", err.message); /* names the file, never its bytes */
        goto out;
    }
    etcdc_config_set_allow_plaintext(cfg, o->allow_plaintext);
    if (o->user && etcdc_config_set_auth(cfg, o->user, password ? password : "")) {
        report(report_fd, "out of memory");
        goto out;
    }
    client = etcdc_client_new(cfg, &err);
    if (!client) {
        /* A failed TLS handshake reaches us as "unavailable": say what to check. */
        bool tls = strstr(err.message, "andshake") || strstr(err.message, "SSL");
        report(report_fd, "%s%s",
               tls ? "TLS handshake with etcd failed (check --cacert, "
                     "--cert, --key): "
                   : "",
               err.message[0] ? err.message : etcdc_strerror(err.code));
    }
out:
    etcdc_config_free(cfg);
    return client;
}
