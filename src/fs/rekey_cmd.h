/* rekey_cmd.h - `etcdfs rekey`: re-seal every value under the prefix with the newest key. */
#ifndef ETCDFS_REKEY_CMD_H
#define ETCDFS_REKEY_CMD_H

#include "opts.h"

/* Runs the command; returns the exit status (0: every value is under the newest key). */
int rekey_run(const etcdfs_opts *o, char *password);

#endif
