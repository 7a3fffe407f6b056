/* connect.h - building the etcd client from etcdfs options (see connect.c). */
#ifndef ETCDFS_CONNECT_H
#define ETCDFS_CONNECT_H

#include "etcdc.h"
#include "opts.h"

/* Sends the outcome to the parent waiting on fd (daemon mode), or prints "etcdfs: MSG" to
 * stderr when fd < 0 (the message "OK" is not printed). */
void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Connects and authenticates with the options' endpoints, TLS, user (password as read from the
 * password file or environment) and key file. NULL after reporting the reason on report_fd. */
etcdc_client *connect_etcd(const etcdfs_opts *o, char *password, int report_fd);

#endif
