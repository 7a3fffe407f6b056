/* stats.c - counters (see stats.h). Lock-free: relaxed atomic increments. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t counters[STAT_COUNT];

static const char *const names[STAT_COUNT] = {
#define X(n) "op_" #n,
    STATS_OPS(X)
#undef X
#define X(n) #n,
    STATS_OTHER(X)
#undef X
};

void stats_inc(stats_id id)
{
    __atomic_fetch_add(&counters[id], 1, __ATOMIC_RELAXED);
}

char *stats_format(etcdc_client *client, size_t *out_len)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    etcdc_stats s = {0};
    if (client)
        etcdc_client_stats(client, &s);
    uint64_t total = s.range + s.put + s.delete_range + s.txn + s.compact + s.lease +
                     s.watch_create + s.status + s.auth;
    len += (size_t)snprintf(buf + len, cap - len,
                            "rt_range %llu\nrt_put %llu\nrt_delete_range %llu\nrt_txn %llu\n"
                            "rt_compact %llu\nrt_lease %llu\nrt_watch_create %llu\n"
                            "rt_status %llu\nrt_auth %llu\nrt_retries %llu\nrt_total %llu\n",
                            (unsigned long long)s.range, (unsigned long long)s.put,
                            (unsigned long long)s.delete_range, (unsigned long long)s.txn,
                            (unsigned long long)s.compact, (unsigned long long)s.lease,
                            (unsigned long long)s.watch_create, (unsigned long long)s.status,
                            (unsigned long long)s.auth, (unsigned long long)s.retries,
                            (unsigned long long)total);
    for (int i = 0; i < STAT_COUNT && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s %llu\n", names[i],
                                (unsigned long long)__atomic_load_n(&counters[i],
                                                                    __ATOMIC_RELAXED));
    *out_len = len < cap ? len : cap - 1;
    return buf;
}
