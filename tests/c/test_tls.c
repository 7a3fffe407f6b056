/*
 * test_tls.c - TLS against an etcd serving https (run_with_etcd.sh --tls: a test CA, a server
 * certificate for IP 127.0.0.1 and DNS localhost, a client certificate, and an unrelated CA).
 */
#include "harness.h"

static char certs[512];

static const char *cert(const char *name)
{
    static char bufs[4][700];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", certs, name);
    return b;
}

/* Put + get through a client made from cfg; returns whether it worked. */
static bool roundtrip(etcdc_config *cfg, etcdc_error *err)
{
    etcdc_client *c = etcdc_client_new(cfg, err);
    if (!c)
        return false;
    const char *k = th_key("k");
    bool ok = etcdc_put(c, k, strlen(k), "tls", 3, NULL, err) == ETCDC_OK;
    etcdc_kv kv;
    ok = ok && etcdc_get(c, k, strlen(k), &kv, err) == ETCDC_OK && kv.value_len == 3 &&
         memcmp(kv.value, "tls", 3) == 0;
    if (ok)
        etcdc_kv_clear(&kv);
    ok = ok && etcdc_delete(c, k, strlen(k), NULL, err) == ETCDC_OK;
    etcdc_client_free(c);
    return ok;
}

static void setup(void)
{
    const char *d = getenv("ETCDC_TEST_CERTS");
    REQUIRE(d != NULL);
    snprintf(certs, sizeof certs, "%s", d);
}

static void test_ca_verifies_server(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    REQUIRE_OK(etcdc_config_set_tls(cfg, cert("ca.pem"), NULL, NULL), NULL);
    CHECK(roundtrip(cfg, &err));
    if (err.code)
        printf("  %s\n", err.message);
    /* With a client certificate as well. */
    REQUIRE_OK(
        etcdc_config_set_tls(cfg, cert("ca.pem"), cert("client.pem"), cert("client-key.pem")),
        NULL);
    CHECK(roundtrip(cfg, &err));
    /* The name the certificate carries besides the IP. */
    REQUIRE_OK(etcdc_config_set_tls_server_name(cfg, "localhost"), NULL);
    CHECK(roundtrip(cfg, &err));
    etcdc_config_free(cfg);

    /* https:// endpoints, and a dead endpoint first. */
    cfg = etcdc_config_new();
    char eps[600];
    snprintf(eps, sizeof eps, "https://127.0.0.1:1,https://%s", th_endpoints());
    REQUIRE_OK(etcdc_config_set_endpoints(cfg, eps), NULL);
    REQUIRE_OK(etcdc_config_set_tls(cfg, cert("ca.pem"), NULL, NULL), NULL);
    CHECK(roundtrip(cfg, &err));
    if (err.code)
        printf("  dead first: %s\n", err.message);
    etcdc_config_free(cfg);
}

static void test_wrong_ca_fails(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    etcdc_config_set_dial_timeout_ms(cfg, 2000);
    REQUIRE_OK(etcdc_config_set_tls(cfg, cert("other-ca.pem"), NULL, NULL), NULL);
    etcdc_client *c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    CHECK(err.code != ETCDC_OK);
    printf("  wrong CA: %s: %s\n", etcdc_strerror(err.code), err.message);
    /* The message must say it is about TLS, not just "cannot connect". */
    CHECK(strstr(err.message, "andshake") || strstr(err.message, "ertificate") ||
          strstr(err.message, "TLS") || strstr(err.message, "SSL") || strstr(err.message, "ssl"));
    etcdc_client_free(c);

    /* A name the certificate does not carry. */
    REQUIRE_OK(etcdc_config_set_tls(cfg, cert("ca.pem"), NULL, NULL), NULL);
    REQUIRE_OK(etcdc_config_set_tls_server_name(cfg, "wrong.example"), NULL);
    c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    printf("  wrong server name: %s: %s\n", etcdc_strerror(err.code), err.message);
    etcdc_client_free(c);
    etcdc_config_free(cfg);

    /* Plain text against a TLS server. */
    cfg = th_config();
    etcdc_config_set_dial_timeout_ms(cfg, 1000);
    c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    CHECK_INT(err.code, ETCDC_ERR_UNAVAILABLE);
    printf("  plain text: %s\n", err.message);
    etcdc_client_free(c);
    etcdc_config_free(cfg);
}

static void test_insecure_skip_verify(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    etcdc_config_set_tls_insecure_skip_verify(cfg, true);
    CHECK(roundtrip(cfg, &err));
    if (err.code)
        printf("  skip-verify: %s\n", err.message);
    /* Even with the wrong CA configured. */
    REQUIRE_OK(etcdc_config_set_tls(cfg, cert("other-ca.pem"), NULL, NULL), NULL);
    CHECK(roundtrip(cfg, &err));
    if (err.code)
        printf("  skip-verify + other CA: %s\n", err.message);
    etcdc_config_free(cfg);
}

static void test_unreadable_files(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = th_config();
    REQUIRE_OK(etcdc_config_set_tls(cfg, "/nonexistent/ca.pem", NULL, NULL), NULL);
    etcdc_client *c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    CHECK_INT(err.code, ETCDC_ERR_TLS);
    CHECK(strstr(err.message, "/nonexistent/ca.pem") != NULL);
    printf("  missing CA: %s\n", err.message);
    /* A file that is not PEM. */
    REQUIRE_OK(
        etcdc_config_set_tls(cfg, cert("ca.pem"), cert("server.ext"), cert("client-key.pem")),
        NULL);
    c = etcdc_client_new(cfg, &err);
    CHECK(c == NULL);
    CHECK_INT(err.code, ETCDC_ERR_TLS);
    printf("  not PEM: %s\n", err.message);
    etcdc_config_free(cfg);
}

TH_MAIN(TH_TEST(setup), TH_TEST(test_ca_verifies_server), TH_TEST(test_wrong_ca_fails),
        TH_TEST(test_insecure_skip_verify), TH_TEST(test_unreadable_files))
