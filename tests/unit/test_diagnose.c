/*
 * test_diagnose.c - unit tests of the one-line connection diagnosis (src/fs/diagnose.c): each
 * kind of failure the library reports is told as what the user must fix, including the case
 * whose evidence is racy (TLS 1.3 with a refused client certificate, whose alert a connection
 * reset can swallow). Certificates are made with the openssl command in a throw-away directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "diagnose.h"

static char dir[] = "/tmp/etcdfs-test-diagnose.XXXXXX";

static void sh(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    char quiet[2200];
    snprintf(quiet, sizeof quiet, "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    if (system(quiet) != 0) {
        fprintf(stderr, "setup failed: %s\n", cmd);
        exit(2);
    }
}

/* A CA named name (name.pem, name-key.pem) and a leaf leaf.pem/leaf-key.pem signed by it. */
static void make_ca_and_leaf(const char *ca, const char *leaf)
{
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
       "-subj /CN=%s -keyout %s-key.pem -out %s.pem",
       ca, ca, ca);
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=root "
       "-keyout %s-key.pem -out %s.csr%s",
       leaf, leaf, "");
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s-key.pem -set_serial 1 -days 2 "
             "-out %%s.pem",
             leaf, ca, ca);
    sh(cmd, leaf, "", "");
}

static char *path(const char *file)
{
    static char p[4][256];
    static int next;
    char *out = p[next++ % 4];
    snprintf(out, sizeof p[0], "%s/%s", dir, file);
    return out;
}

static diagnosis diagnose(const char *cacert, const char *cert, const char *message)
{
    etcdfs_opts o = {.endpoints = "127.0.0.1:2379"};
    o.cacert = (char *)cacert;
    o.cert = (char *)cert;
    o.key = cert ? (char *)"unused-key.pem" : NULL;
    etcdc_error err = {.code = ETCDC_ERR_UNAVAILABLE};
    snprintf(err.message, sizeof err.message, "%s", message);
    diagnosis d;
    diagnose_connect(&o, &err, &d);
    return d;
}

static const char *reset =
    "cannot connect to etcd at 127.0.0.1:2379: failed to connect to all addresses; last error: "
    "UNAVAILABLE: ipv4:127.0.0.1:2379: recvmsg:Connection reset by peer";

int main(void)
{
    if (!mkdtemp(dir))
        return 2;
    make_ca_and_leaf("ca", "client");
    make_ca_and_leaf("other-ca", "stranger");

    /* The refusal's alert arrived: told by its reason. */
    diagnosis d = diagnose(path("ca.pem"), path("stranger.pem"),
                           "TLS handshake failed: tlsv1 alert unknown ca (SSL_ERROR_SSL)");
    CHECK(strstr(d.what, "refused the client certificate in --cert"));
    CHECK(strstr(d.what, "tlsv1 alert unknown ca"));
    CHECK(strstr(d.hint, "--cert and --key"));

    d = diagnose(path("ca.pem"), NULL,
                 "TLS handshake failed: tlsv13 alert certificate required (SSL_ERROR_SSL)");
    CHECK(strstr(d.what, "refused to connect without a client certificate"));

    /* The alert was lost to a reset: a client certificate that the CA in --cacert did not sign
     * is the refusal all the same... */
    d = diagnose(path("ca.pem"), path("stranger.pem"), reset);
    CHECK(strstr(d.what, "refused the client certificate in --cert"));
    CHECK(strstr(d.what, "not signed by the CA in --cacert"));
    CHECK(strstr(d.what, "Connection reset by peer"));
    CHECK(strstr(d.hint, "--cert and --key"));

    /* ...but a reset with a certificate that CA signed, or with none, stays a reset. */
    d = diagnose(path("ca.pem"), path("client.pem"), reset);
    CHECK(strstr(d.what, "the server closed the TLS connection"));
    CHECK(!strstr(d.what, "refused"));
    d = diagnose(path("ca.pem"), NULL, reset);
    CHECK(strstr(d.what, "the server closed the TLS connection"));
    d = diagnose(path("ca.pem"), path("missing.pem"), reset);
    CHECK(strstr(d.what, "the server closed the TLS connection"));

    /* Plain TCP client, TLS server. */
    d = diagnose(NULL, NULL, reset);
    CHECK(strstr(d.what, "the server closed the connection"));
    CHECK(strstr(d.hint, "--cacert"));

    d = diagnose(path("other-ca.pem"), path("client.pem"),
                 "TLS handshake failed: certificate verify failed (SSL_ERROR_SSL)");
    CHECK(strstr(d.what, "not signed by the CA in --cacert"));
    CHECK(strstr(d.hint, "check --cacert"));

    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failures ? 1 : 0;
}
