/* endpoints.c - parse endpoint lists and build gRPC targets (see endpoints.h). */
#include "endpoints.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct endpoint {
    char host[512];
    char port[16];
    bool is_unix;
} endpoint;

static int parse_one(const char *text, size_t len, endpoint *ep, char *errbuf, size_t errlen)
{
    char buf[512];
    while (len && (*text == ' ' || *text == '\t'))
        text++, len--;
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '/'))
        len--;
    if (len == 0 || len >= sizeof buf) {
        snprintf(errbuf, errlen, "empty or overlong endpoint");
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    char *s = buf;
    memset(ep, 0, sizeof *ep);
    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "unix://", 7) == 0) {
        ep->is_unix = true;
        snprintf(ep->host, sizeof ep->host, "%s", s + (s[5] == '/' && s[6] == '/' ? 7 : 5));
        return 0;
    }
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    else if (strncmp(s, "https://", 8) == 0)
        s += 8;
    char *port;
    if (*s == '[') { /* [v6]:port */
        char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(errbuf, errlen, "endpoint '%s': expected [address]:port", buf);
            return -1;
        }
        *close = 0;
        snprintf(ep->host, sizeof ep->host, "%s", s + 1);
        port = close + 2;
    } else {
        char *colon = strrchr(s, ':');
        if (!colon) {
            snprintf(errbuf, errlen, "endpoint '%s': expected host:port", buf);
            return -1;
        }
        *colon = 0;
        snprintf(ep->host, sizeof ep->host, "%s", s);
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p <= 0 || p > 65535 || !ep->host[0]) {
        snprintf(errbuf, errlen, "endpoint '%s': bad host or port", buf);
        return -1;
    }
    snprintf(ep->port, sizeof ep->port, "%ld", p);
    return 0;
}

static int family_of_literal(const char *host)
{
    unsigned char tmp[16];
    if (inet_pton(AF_INET, host, tmp) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, host, tmp) == 1)
        return AF_INET6;
    return 0;
}

/* Appends "addr:port" for every address of host in the family (resolving names). */
static int append_resolved(char **out, size_t *len, int *family, const endpoint *ep, char *errbuf,
                           size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(ep->host, ep->port, &hints, &res);
    if (gai != 0) {
        snprintf(errbuf, errlen, "endpoint '%s': %s", ep->host, gai_strerror(gai));
        return -1;
    }
    int rc = 0;
    bool any = false;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (*family == 0)
            *family = ai->ai_family;
        if (ai->ai_family != *family)
            continue;
        char addr[INET6_ADDRSTRLEN];
        const void *src = ai->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        inet_ntop(ai->ai_family, src, addr, sizeof addr);
        char item[INET6_ADDRSTRLEN + 24];
        int n = ai->ai_family == AF_INET6 ? snprintf(item, sizeof item, "[%s]:%s", addr, ep->port)
                                          : snprintf(item, sizeof item, "%s:%s", addr, ep->port);
        char *grown = realloc(*out, *len + (size_t)n + 2);
        if (!grown) {
            rc = -1;
            snprintf(errbuf, errlen, "out of memory");
            break;
        }
        *out = grown;
        if (*len)
            (*out)[(*len)++] = ',';
        memcpy(*out + *len, item, (size_t)n + 1);
        *len += (size_t)n;
        any = true;
        break; /* one address per endpoint: each endpoint is one member */
    }
    freeaddrinfo(res);
    if (rc == 0 && !any) {
        snprintf(errbuf, errlen, "endpoint '%s': no address of the same family as the others",
                 ep->host);
        rc = -1;
    }
    return rc;
}

int etcdc__endpoints_to_target(const char *endpoints, char **target, char **first_host,
                               char *errbuf, size_t errlen)
{
    *target = *first_host = NULL;
    endpoint eps[64];
    size_t n = 0;
    for (const char *p = endpoints; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len && strspn(p, " \t") < len) {
            if (n == 64) {
                snprintf(errbuf, errlen, "more than 64 endpoints");
                return -1;
            }
            if (parse_one(p, len, &eps[n], errbuf, errlen) < 0)
                return -1;
            n++;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (n == 0) {
        snprintf(errbuf, errlen, "no endpoint given");
        return -1;
    }
    char buf[1100];
    if (eps[0].is_unix) {
        if (n > 1) {
            snprintf(errbuf, errlen, "a unix: endpoint cannot be combined with others");
            return -1;
        }
        snprintf(buf, sizeof buf, "unix:%s", eps[0].host);
        *target = strdup(buf);
    } else if (n == 1) {
        int fam = family_of_literal(eps[0].host);
        if (fam == AF_INET)
            snprintf(buf, sizeof buf, "ipv4:%s:%s", eps[0].host, eps[0].port);
        else if (fam == AF_INET6)
            snprintf(buf, sizeof buf, "ipv6:[%s]:%s", eps[0].host, eps[0].port);
        else
            snprintf(buf, sizeof buf, "dns:///%s:%s", eps[0].host, eps[0].port);
        *target = strdup(buf);
    } else {
        char *list = NULL;
        size_t len = 0;
        int family = 0;
        for (size_t i = 0; i < n; i++) {
            if (eps[i].is_unix) {
                snprintf(errbuf, errlen, "a unix: endpoint cannot be combined with others");
                free(list);
                return -1;
            }
            if (append_resolved(&list, &len, &family, &eps[i], errbuf, errlen) < 0) {
                free(list);
                return -1;
            }
        }
        const char *scheme = family == AF_INET6 ? "ipv6:" : "ipv4:";
        *target = malloc(strlen(scheme) + len + 1);
        if (*target) {
            strcpy(*target, scheme);
            strcat(*target, list);
        }
        free(list);
    }
    *first_host = strdup(eps[0].host);
    if (!*target || !*first_host) {
        free(*target);
        free(*first_host);
        *target = *first_host = NULL;
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}
