/* config.c - the configuration object: defaults, setters, deep copy and wiping. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

etcdc_config *etcdc_config_new(void)
{
    etcdc_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    cfg->endpoints = strdup("127.0.0.1:2379");
    if (!cfg->endpoints) {
        free(cfg);
        return NULL;
    }
    cfg->dial_timeout_ms = 5000;
    cfg->request_timeout_ms = 5000;
    cfg->keepalive_time_ms = 30000;
    cfg->keepalive_timeout_ms = 10000;
    cfg->max_send_bytes = 2u << 20;
    cfg->max_recv_bytes = 64u << 20; /* a revision's watch events arrive in one message */
    return cfg;
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void etcdc__config_clear(etcdc_config *cfg)
{
    free(cfg->endpoints);
    free(cfg->user);
    free_secret(cfg->password);
    free(cfg->ca_file);
    free(cfg->cert_file);
    free(cfg->key_file);
    free(cfg->server_name);
    OPENSSL_cleanse(cfg->keys, sizeof cfg->keys);
    memset(cfg, 0, sizeof *cfg);
}

void etcdc_config_free(etcdc_config *cfg)
{
    if (!cfg)
        return;
    etcdc__config_clear(cfg);
    free(cfg);
}

/* Replaces *slot with a copy of value (NULL clears). */
static etcdc_code set_string(char **slot, const char *value, bool secret)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return ETCDC_ERR_NO_MEMORY;
    if (secret)
        free_secret(*slot);
    else
        free(*slot);
    *slot = copy;
    return ETCDC_OK;
}

etcdc_code etcdc_config_set_endpoints(etcdc_config *cfg, const char *endpoints)
{
    if (!endpoints || !*endpoints || strspn(endpoints, ", ") == strlen(endpoints))
        return ETCDC_ERR_INVALID_ARGUMENT;
    return set_string(&cfg->endpoints, endpoints, false);
}

etcdc_code etcdc_config_set_auth(etcdc_config *cfg, const char *user, const char *password)
{
    etcdc_code rc = set_string(&cfg->user, user, false);
    if (rc == ETCDC_OK)
        rc = set_string(&cfg->password, password, true);
    return rc;
}

void etcdc_config_set_dial_timeout_ms(etcdc_config *cfg, int64_t ms)
{
    cfg->dial_timeout_ms = ms > 0 ? ms : 1;
}

void etcdc_config_set_request_timeout_ms(etcdc_config *cfg, int64_t ms)
{
    cfg->request_timeout_ms = ms > 0 ? ms : 1;
}

void etcdc_config_set_keepalive_ms(etcdc_config *cfg, int64_t time_ms, int64_t timeout_ms)
{
    cfg->keepalive_time_ms = time_ms < 5000 ? 5000 : time_ms;
    cfg->keepalive_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

void etcdc_config_set_max_message_size(etcdc_config *cfg, size_t send_bytes, size_t recv_bytes)
{
    cfg->max_send_bytes = send_bytes;
    cfg->max_recv_bytes = recv_bytes;
}

etcdc_code etcdc_config_set_tls(etcdc_config *cfg, const char *ca_file, const char *cert_file,
                                const char *key_file)
{
    if ((cert_file == NULL) != (key_file == NULL))
        return ETCDC_ERR_INVALID_ARGUMENT; /* a certificate needs its key and vice versa */
    etcdc_code rc = set_string(&cfg->ca_file, ca_file, false);
    if (rc == ETCDC_OK)
        rc = set_string(&cfg->cert_file, cert_file, false);
    if (rc == ETCDC_OK)
        rc = set_string(&cfg->key_file, key_file, false);
    if (rc == ETCDC_OK)
        cfg->tls = ca_file || cert_file || cfg->insecure_skip_verify;
    return rc;
}

void etcdc_config_set_tls_insecure_skip_verify(etcdc_config *cfg, bool skip)
{
    cfg->insecure_skip_verify = skip;
    if (skip)
        cfg->tls = true;
}

etcdc_code etcdc_config_set_tls_server_name(etcdc_config *cfg, const char *name)
{
    return set_string(&cfg->server_name, name, false);
}

etcdc_code etcdc_config_add_encryption_key(etcdc_config *cfg, uint8_t key_id, const uint8_t key[32])
{
    if (key_id == 0)
        return ETCDC_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < cfg->key_count; i++)
        if (cfg->keys[i].id == key_id)
            return ETCDC_ERR_INVALID_ARGUMENT;
    if (cfg->key_count == ETCDC_MAX_KEYS)
        return ETCDC_ERR_INVALID_ARGUMENT;
    cfg->keys[cfg->key_count].id = key_id;
    memcpy(cfg->keys[cfg->key_count].bytes, key, 32);
    cfg->key_count++;
    return ETCDC_OK;
}

static etcdc_code copy_string(char **dst, const char *src)
{
    *dst = NULL;
    if (src && !(*dst = strdup(src)))
        return ETCDC_ERR_NO_MEMORY;
    return ETCDC_OK;
}

etcdc_code etcdc__config_copy(etcdc_config *dst, const etcdc_config *src)
{
    *dst = *src; /* scalars and keys; strings are replaced below */
    dst->endpoints = dst->user = dst->password = NULL;
    dst->ca_file = dst->cert_file = dst->key_file = dst->server_name = NULL;
    if (copy_string(&dst->endpoints, src->endpoints) || copy_string(&dst->user, src->user) ||
        copy_string(&dst->password, src->password) || copy_string(&dst->ca_file, src->ca_file) ||
        copy_string(&dst->cert_file, src->cert_file) ||
        copy_string(&dst->key_file, src->key_file) ||
        copy_string(&dst->server_name, src->server_name)) {
        etcdc__config_clear(dst);
        return ETCDC_ERR_NO_MEMORY;
    }
    return ETCDC_OK;
}
