/* connect.h - building the etcd client from etcdfs options (see connect.c). */
#ifndef ETCDFS_CONNECT_H
#define ETCDFS_CONNECT_H

#include "etcdc.h"
#include "opts.h"

/* How starting the mount went: sent to the parent waiting on fd (daemon mode), or printed as
 * "etcdfs: MSG" to stderr when fd < 0 (the message "OK" is not printed). */
void report_startup(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The client configuration the options describe (endpoints NULL: --endpoints). NULL with a
 * one-line reason in why (bad endpoints, a client key readable by others, a certificate
 * without its key, an unusable --key-file, ...). */
etcdc_config *connect_config(const etcdfs_opts *o, const char *password, const char *endpoints,
                             char *why, size_t why_size);
/* Connects and authenticates with the options' endpoints, TLS, user (password as read from the
 * password file or environment) and key file. NULL after reporting the reason on report_fd. */
etcdc_client *connect_etcd(const etcdfs_opts *o, char *password, int report_fd);

#endif
