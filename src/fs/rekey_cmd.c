/*
 * rekey_cmd.c - `etcdfs rekey [OPTIONS] --key-file=FILE`: after a new key was added to the key
 * file, re-seal every value under --prefix with it (libetcdc's etcdc_rekey_prefix: each key is
 * rewritten by a Txn guarded by its mod_revision, so concurrent writers are never overwritten;
 * running it again skips what is done). Shows progress on a terminal, one summary line always.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "connect.h"
#include "names.h"
#include "rekey_cmd.h"

static void show_progress(void *arg, const etcdc_rekey_stats *st)
{
    (void)arg;
    fprintf(stderr, "\rrekey: %llu keys scanned, %llu resealed", (unsigned long long)st->scanned,
            (unsigned long long)st->resealed);
    fflush(stderr);
}

int rekey_run(const etcdfs_opts *o, char *password)
{
    size_t plen;
    char *prefix = names_normalize_prefix(o->prefix, &plen);
    if (!prefix) {
        fprintf(stderr, "etcdfs: out of memory\n");
        return 1;
    }
    etcdc_client *c = connect_etcd(o, password, -1);
    if (!c) {
        free(prefix);
        return 1;
    }
    bool tty = isatty(STDERR_FILENO);
    etcdc_rekey_stats st = {0};
    etcdc_error err = {0};
    etcdc_code code =
        etcdc_rekey_prefix(c, prefix, plen, tty ? show_progress : NULL, NULL, &st, &err);
    if (tty)
        fprintf(stderr, "\r\033[K");
    printf("rekey '%s': %llu keys scanned, %llu resealed, %llu already current, %llu retried "
           "after a concurrent write, %llu could not be opened\n",
           prefix, (unsigned long long)st.scanned, (unsigned long long)st.resealed,
           (unsigned long long)st.current, (unsigned long long)st.conflicts,
           (unsigned long long)st.failed);
    if (code != ETCDC_OK)
        fprintf(stderr, "etcdfs rekey: %s\n", err.message[0] ? err.message : etcdc_strerror(code));
    etcdc_client_free(c);
    free(prefix);
    return code == ETCDC_OK ? 0 : 1;
}
