/*
 * test_endpoints.c - unit tests of the endpoint list -> gRPC target conversion
 * (src/etcd/endpoints.c): schemes, spaces, IPv4/IPv6/DNS/unix forms, multi-endpoint targets,
 * and every malformed input giving an error with a message (never a crash).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "endpoints.h"

static void expect_target(const char *in, const char *want_target, const char *want_host)
{
    char *target = NULL, *host = NULL, msg[256] = "";
    int rc = etcdc__endpoints_to_target(in, &target, &host, msg, sizeof msg);
    if (rc != 0 || !target || strcmp(target, want_target) != 0 || !host ||
        strcmp(host, want_host) != 0) {
        fprintf(stderr, "FAIL '%s': rc %d target '%s' host '%s' (%s); want '%s' '%s'\n", in, rc,
                target ? target : "(null)", host ? host : "(null)", msg, want_target, want_host);
        failures++;
    }
    free(target);
    free(host);
}

static void expect_error(const char *in, const char *msg_part)
{
    char *target = (char *)1, *host = (char *)1, msg[256] = "";
    int rc = etcdc__endpoints_to_target(in, &target, &host, msg, sizeof msg);
    if (rc != -1 || target != NULL || host != NULL || !strstr(msg, msg_part)) {
        fprintf(stderr, "FAIL '%s': rc %d, message '%s' (want an error mentioning '%s')\n",
                in ? in : "(null)", rc, msg, msg_part);
        failures++;
        if (rc == 0) {
            free(target);
            free(host);
        }
    }
}

int main(void)
{
    /* One endpoint: literal addresses keep their family, names go through DNS. */
    expect_target("127.0.0.1:2379", "ipv4:127.0.0.1:2379", "127.0.0.1");
    expect_target("http://127.0.0.1:2379", "ipv4:127.0.0.1:2379", "127.0.0.1");
    expect_target("https://10.1.2.3:443/", "ipv4:10.1.2.3:443", "10.1.2.3");
    expect_target("  127.0.0.1:2379  ", "ipv4:127.0.0.1:2379", "127.0.0.1");
    expect_target("[::1]:2379", "ipv6:[::1]:2379", "::1");
    expect_target("https://[::1]:2379", "ipv6:[::1]:2379", "::1");
    expect_target("etcd.example:2379", "dns:///etcd.example:2379", "etcd.example");
    expect_target("localhost:02379", "dns:///localhost:2379", "localhost");
    expect_target("unix:/run/etcd.sock", "unix:/run/etcd.sock", "/run/etcd.sock");
    expect_target("unix:///run/etcd.sock", "unix:/run/etcd.sock", "/run/etcd.sock");

    /* Several endpoints: one target listing every member; the first host names TLS checks. */
    expect_target("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
                  "127.0.0.1");
    expect_target("http://127.0.0.1:1, https://127.0.0.2:2", "ipv4:127.0.0.1:1,127.0.0.2:2",
                  "127.0.0.1");
    expect_target("127.0.0.1:1,,127.0.0.1:2,", "ipv4:127.0.0.1:1,127.0.0.1:2", "127.0.0.1");
    expect_target("localhost:1,127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2", "localhost");
    expect_target("[::1]:1,[::1]:2", "ipv6:[::1]:1,[::1]:2", "::1");

    /* Malformed input: a clear error, nothing allocated. */
    expect_error("", "no endpoint");
    expect_error(" , ,", "no endpoint");
    expect_error(NULL, "no endpoint");
    expect_error("127.0.0.1", "host:port");
    expect_error("127.0.0.1:", "bad host or port");
    expect_error(":2379", "bad host or port");
    expect_error("127.0.0.1:0", "bad host or port");
    expect_error("127.0.0.1:65536", "bad host or port");
    expect_error("127.0.0.1:23x9", "bad host or port");
    expect_error("[::1:2379", "[address]:port");
    expect_error("127.0.0.1:1,unix:/x.sock", "unix");
    expect_error("unix:/x.sock,127.0.0.1:1", "unix");
    expect_error("127.0.0.1:1,no-such-host.invalid:2", "no-such-host.invalid");
    expect_error("127.0.0.1:1,[::1]:2", "same family");
    char longest[700];
    memset(longest, 'a', sizeof longest - 6);
    memcpy(longest + sizeof longest - 6, ":2379", 6);
    expect_error(longest, "overlong");
    /* More than 64 endpoints. */
    char many[65 * 16 + 1] = "";
    for (int i = 0; i < 65; i++)
        strcat(many, "127.0.0.1:2379,");
    expect_error(many, "64");

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("test_endpoints: ok\n");
    return failures ? 1 : 0;
}
