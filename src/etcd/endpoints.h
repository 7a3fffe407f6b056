/* endpoints.h - turning etcdctl-style endpoint lists into a gRPC target string. */
#ifndef ETCDC_ENDPOINTS_H
#define ETCDC_ENDPOINTS_H

#include <stddef.h>

/* Builds the gRPC target for a comma-separated "host:port" list (schemes http:// and https://
 * are dropped). One endpoint: "dns:///host:port" (or ipv4:/ipv6:/unix: for literals); several:
 * every host is resolved and listed in one "ipv4:" or "ipv6:" target so that the channel's load
 * balancer sees all members. *first_host receives the first endpoint's host (for TLS name
 * checks). Returns 0, or -1 with a message in errbuf. Both outputs are malloc'd. */
int etcdc__endpoints_to_target(const char *endpoints, char **target, char **first_host,
                               char *errbuf, size_t errlen);

#endif
