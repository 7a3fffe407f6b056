/*
 * etcdc_cli.c - a tiny command-line front end to libetcdc, for the interop tests and for poking
 * at etcd by hand. Endpoints come from $ETCD_ENDPOINTS (default 127.0.0.1:2379).
 *
 *   etcdc_cli [--hex] put KEY VALUE          prints the revision
 *   etcdc_cli [--hex] get KEY                prints the value (exit 3 when absent)
 *   etcdc_cli [--hex] get-prefix PREFIX      prints "key\tvalue" lines
 *   etcdc_cli [--hex] del KEY                prints the number deleted
 *   etcdc_cli [--hex] del-prefix PREFIX      prints the number deleted
 *   etcdc_cli [--hex] put-if-absent KEY VALUE   exit 4 when the key exists
 *   etcdc_cli [--hex] cas KEY EXPECTED VALUE    exit 4 when the value differs
 *   etcdc_cli [--hex] move FROM TO
 *   etcdc_cli revision                       prints the store revision
 *   etcdc_cli get-rev KEY REV                prints the value at revision REV
 *
 * With --hex every KEY/VALUE argument is hex ("00ff41") and every key and value printed is hex,
 * so binary data (NUL bytes included) can cross a shell. Without it values are written raw
 * (get prints exactly the value bytes, no newline).
 * Exit status: 0 ok, 1 error (message on stderr), 2 usage, 3 not found, 4 compare failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcdc.h"

static int hex_mode;

/* Decodes an argument (hex or raw) into a malloc'd buffer. */
static char *arg_bytes(const char *s, size_t *len)
{
    if (!hex_mode) {
        *len = strlen(s);
        return strdup(s);
    }
    size_t n = strlen(s);
    if (n % 2) {
        fprintf(stderr, "odd-length hex argument '%s'\n", s);
        exit(2);
    }
    char *out = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            fprintf(stderr, "bad hex argument '%s'\n", s);
            exit(2);
        }
        out[i] = (char)v;
    }
    *len = n / 2;
    return out;
}

static void print_bytes(const char *p, size_t n)
{
    if (hex_mode)
        for (size_t i = 0; i < n; i++)
            printf("%02x", (unsigned char)p[i]);
    else
        fwrite(p, 1, n, stdout);
}

static int fail(etcdc_code rc, const etcdc_error *err)
{
    fprintf(stderr, "etcdc_cli: %s: %s\n", etcdc_strerror(rc), err->message);
    if (rc == ETCDC_ERR_NOT_FOUND)
        return 3;
    if (rc == ETCDC_ERR_COMPARE_FAILED)
        return 4;
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: etcdc_cli [--hex] put|get|get-prefix|del|del-prefix|put-if-absent|"
                    "cas|move|revision|get-rev ARGS...\n");
    return 2;
}

int main(int argc, char **argv)
{
    int a = 1;
    if (a < argc && strcmp(argv[a], "--hex") == 0) {
        hex_mode = 1;
        a++;
    }
    if (a >= argc)
        return usage();
    const char *cmd = argv[a++];
    int nargs = argc - a;
    char **args = argv + a;

    etcdc_config *cfg = etcdc_config_new();
    const char *eps = getenv("ETCD_ENDPOINTS");
    if (eps && *eps && etcdc_config_set_endpoints(cfg, eps) != ETCDC_OK) {
        fprintf(stderr, "bad ETCD_ENDPOINTS\n");
        return 2;
    }
    etcdc_error err = {0};
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    if (!c)
        return fail(err.code, &err);

    int status = 0;
    etcdc_code rc = ETCDC_OK;
    size_t kl = 0, vl = 0, el = 0;
    char *k = nargs > 0 ? arg_bytes(args[0], &kl) : NULL;
    char *v = nargs > 1 ? arg_bytes(args[1], &vl) : NULL;
    char *e = nargs > 2 ? arg_bytes(args[2], &el) : NULL;
    int64_t rev = 0, n = 0;

    if (strcmp(cmd, "put") == 0 && nargs == 2) {
        if ((rc = etcdc_put(c, k, kl, v, vl, &rev, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)rev);
    } else if (strcmp(cmd, "get") == 0 && nargs == 1) {
        etcdc_kv kv;
        if ((rc = etcdc_get(c, k, kl, &kv, &err)) == ETCDC_OK) {
            print_bytes(kv.value, kv.value_len);
            etcdc_kv_clear(&kv);
        }
    } else if (strcmp(cmd, "get-rev") == 0 && nargs == 2) {
        etcdc_kv kv;
        if ((rc = etcdc_get_at_revision(c, k, kl, atoll(args[1]), &kv, &err)) == ETCDC_OK) {
            print_bytes(kv.value, kv.value_len);
            etcdc_kv_clear(&kv);
        }
    } else if (strcmp(cmd, "get-prefix") == 0 && nargs == 1) {
        etcdc_kvs kvs;
        if ((rc = etcdc_get_prefix(c, k, kl, &kvs, &err)) == ETCDC_OK) {
            for (size_t i = 0; i < kvs.count; i++) {
                print_bytes(kvs.kvs[i].key, kvs.kvs[i].key_len);
                putchar('\t');
                print_bytes(kvs.kvs[i].value, kvs.kvs[i].value_len);
                putchar('\n');
            }
            etcdc_kvs_clear(&kvs);
        }
    } else if (strcmp(cmd, "del") == 0 && nargs == 1) {
        if ((rc = etcdc_delete(c, k, kl, &n, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)n);
    } else if (strcmp(cmd, "del-prefix") == 0 && nargs == 1) {
        if ((rc = etcdc_delete_prefix(c, k, kl, &n, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)n);
    } else if (strcmp(cmd, "put-if-absent") == 0 && nargs == 2) {
        if ((rc = etcdc_put_if_absent(c, k, kl, v, vl, &rev, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)rev);
    } else if (strcmp(cmd, "cas") == 0 && nargs == 3) {
        if ((rc = etcdc_cas_value(c, k, kl, v, vl, e, el, &rev, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)rev);
    } else if (strcmp(cmd, "move") == 0 && nargs == 2) {
        if ((rc = etcdc_move_key(c, k, kl, v, vl, false, &rev, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)rev);
    } else if (strcmp(cmd, "revision") == 0 && nargs == 0) {
        etcdc_status st;
        if ((rc = etcdc_status_get(c, &st, &err)) == ETCDC_OK)
            printf("%lld\n", (long long)st.revision);
    } else {
        status = usage();
    }
    if (status == 0 && rc != ETCDC_OK)
        status = fail(rc, &err);
    free(k);
    free(v);
    free(e);
    etcdc_client_free(c);
    return status;
}
