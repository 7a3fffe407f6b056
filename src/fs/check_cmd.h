/* check_cmd.h - `etcdfs --check`: diagnose connection, auth, TLS, cluster, prefix, lock prefix
 * and key file before mounting; one "ok:" / "FAIL: ... - fix" line per check. */
#ifndef ETCDFS_CHECK_CMD_H
#define ETCDFS_CHECK_CMD_H

#include "opts.h"

/* Runs every check, printing to stdout. Returns the exit status: 0 when all passed, else 1.
 * password may be NULL; it is not printed. */
int check_run(const etcdfs_opts *o, char *password);

#endif
