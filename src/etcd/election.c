/* election.c - leader election in the Go concurrency package's key layout (campaign, proclaim,
 * resign, leader, observe). A candidacy is an exclusive lock whose key carries the proposal:
 * the lock queue (lowest create revision first, each waiter watching its predecessor) is
 * exactly the election's order. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct etcdc_election {
    etcdc_session *session;
    char *name;
    size_t name_len;
    etcdc_lock *lock; /* the candidacy; NULL when not campaigning */
};

etcdc_election *etcdc_election_new(etcdc_session *s, const void *name, size_t name_len)
{
    if (!s || name_len == 0)
        return NULL;
    etcdc_election *e = calloc(1, sizeof *e);
    if (!e || !(e->name = etcdc__dup_bytes(name, name_len))) {
        free(e);
        return NULL;
    }
    e->session = s;
    e->name_len = name_len;
    return e;
}

void etcdc_election_free(etcdc_election *e)
{
    if (!e)
        return;
    etcdc_lock_free(e->lock); /* deletes the key, outside any call context */
    free(e->name);
    free(e);
}

etcdc_code etcdc_election_campaign(etcdc_election *e, const void *value, size_t value_len,
                                   etcdc_error *err)
{
    etcdc__clear_error(err);
    if (e->lock)
        return etcdc_election_proclaim(e, value, value_len, err);
    etcdc_lock_opts o = {.holder_info = value, .holder_info_len = value_len};
    etcdc_code rc = etcdc_lock_acquire(e->session, e->name, e->name_len, &o, &e->lock, err);
    if (rc != ETCDC_OK && err) {
        char why[sizeof err->message];
        memcpy(why, err->message, sizeof why);
        etcdc__set_error(err, rc, err->grpc_status, "campaign in election '%.*s': %s",
                         ETCDC_KEYF(e->name, e->name_len), why);
    }
    return rc;
}

etcdc_code etcdc_election_proclaim(etcdc_election *e, const void *value, size_t value_len,
                                   etcdc_error *err)
{
    etcdc__clear_error(err);
    if (!e->lock)
        return etcdc__set_error(err, ETCDC_ERR_NOT_LEADER, 0,
                                "proclaim in election '%.*s': not campaigning",
                                ETCDC_KEYF(e->name, e->name_len));
    size_t key_len;
    const char *key = etcdc_lock_key(e->lock, &key_len);
    etcdc_txn *t = etcdc_txn_new();
    if (!t)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    etcdc_txn_if(t, key, key_len, ETCDC_CMP_CREATE, ETCDC_EQUAL, etcdc_lock_revision(e->lock));
    etcdc_txn_put(t, ETCDC_THEN, key, key_len, value, value_len, etcdc_session_lease(e->session));
    etcdc_txn_result r;
    etcdc_code rc = etcdc_txn_commit(etcdc__session_client(e->session), t, &r, err);
    etcdc_txn_free(t);
    if (rc != ETCDC_OK)
        return rc;
    bool held = r.succeeded;
    etcdc_txn_result_clear(&r);
    if (!held)
        return etcdc__set_error(err, ETCDC_ERR_NOT_LEADER, 0,
                                "proclaim in election '%.*s': our key '%.*s' is gone (session "
                                "lost or resigned elsewhere)",
                                ETCDC_KEYF(e->name, e->name_len), ETCDC_KEYF(key, key_len));
    return ETCDC_OK;
}

etcdc_code etcdc_election_resign(etcdc_election *e, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (!e->lock)
        return ETCDC_OK;
    etcdc_code rc = etcdc_lock_release(e->lock, err);
    if (rc != ETCDC_OK)
        return rc; /* still a candidate: may be repeated */
    etcdc_lock_free(e->lock);
    e->lock = NULL;
    return ETCDC_OK;
}

const char *etcdc_election_key(const etcdc_election *e, size_t *len)
{
    if (!e->lock) {
        if (len)
            *len = 0;
        return NULL;
    }
    return etcdc_lock_key(e->lock, len);
}

int64_t etcdc_election_revision(const etcdc_election *e)
{
    return e->lock ? etcdc_lock_revision(e->lock) : 0;
}

/* "name/" and its range end, for the candidates' keys. */
static char *candidates_range(const void *name, size_t name_len, size_t *pfx_len, char **end,
                              size_t *end_len)
{
    char *pfx = malloc(name_len + 1);
    *end = malloc(name_len + 1);
    if (!pfx || !*end) {
        free(pfx);
        free(*end);
        return NULL;
    }
    memcpy(pfx, name, name_len);
    pfx[name_len] = '/';
    *pfx_len = name_len + 1;
    *end_len = etcdc_prefix_end(pfx, *pfx_len, *end);
    return pfx;
}

etcdc_code etcdc_election_leader(etcdc_client *c, const void *name, size_t name_len, etcdc_kv *out,
                                 etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    size_t pfx_len, end_len;
    char *end;
    char *pfx = candidates_range(name, name_len, &pfx_len, &end, &end_len);
    if (!pfx)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    etcdc_range_req first = {.key = pfx,
                             .key_len = pfx_len,
                             .range_end = end,
                             .range_end_len = end_len,
                             .limit = 1,
                             .sort_order = 1,   /* ascending */
                             .sort_target = 2}; /* by create revision */
    etcdc_kvs kvs;
    etcdc_code rc = etcdc_range(c, &first, &kvs, err);
    free(pfx);
    free(end);
    if (rc != ETCDC_OK)
        return rc;
    if (kvs.count == 0) {
        etcdc_kvs_clear(&kvs);
        return etcdc__set_error(err, ETCDC_ERR_NOT_FOUND, 0, "election '%.*s' has no leader",
                                ETCDC_KEYF(name, name_len));
    }
    *out = kvs.kvs[0];
    memset(&kvs.kvs[0], 0, sizeof kvs.kvs[0]);
    etcdc_kvs_clear(&kvs);
    return rc;
}

/* ---- observing ---- */

/* The observer keeps every candidate (from one listing, then the watch's events) and reports
 * the one with the lowest create revision whenever it or its value changes. Only the stream
 * thread touches the model once the watch runs. */
struct etcdc_observer {
    etcdc_leader_cb cb;
    void *arg;
    etcdc_kvs candidates;
    char *leader_key; /* last reported: key and mod revision; NULL = none or nothing yet */
    size_t leader_key_len;
    int64_t leader_mod;
    bool reported;
    etcdc_watcher *watch;
};

static etcdc_kv *find(etcdc_kvs *set, const char *key, size_t len)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->kvs[i].key_len == len && memcmp(set->kvs[i].key, key, len) == 0)
            return &set->kvs[i];
    return NULL;
}

static void forget(etcdc_kvs *set, etcdc_kv *kv)
{
    etcdc_kv_clear(kv);
    *kv = set->kvs[--set->count];
}

static bool remember(etcdc_kvs *set, const etcdc_kv *ev)
{
    etcdc_kv *kv = find(set, ev->key, ev->key_len);
    if (!kv) {
        etcdc_kv *grown = realloc(set->kvs, (set->count + 1) * sizeof *grown);
        if (!grown)
            return false;
        set->kvs = grown;
        kv = &set->kvs[set->count++];
        memset(kv, 0, sizeof *kv);
    }
    etcdc_kv_clear(kv);
    *kv = *ev;
    kv->key = etcdc__dup_bytes(ev->key, ev->key_len);
    kv->value = etcdc__dup_bytes(ev->value, ev->value_len);
    if (!kv->key || !kv->value) {
        forget(set, kv);
        return false;
    }
    return true;
}

static void report_leader(etcdc_observer *o)
{
    const etcdc_kv *lead = NULL;
    for (size_t i = 0; i < o->candidates.count; i++)
        if (!lead || o->candidates.kvs[i].create_revision < lead->create_revision)
            lead = &o->candidates.kvs[i];
    bool same = o->reported && (lead ? o->leader_key && lead->key_len == o->leader_key_len &&
                                           memcmp(lead->key, o->leader_key, lead->key_len) == 0 &&
                                           lead->mod_revision == o->leader_mod
                                     : !o->leader_key);
    if (same)
        return;
    free(o->leader_key);
    o->leader_key = lead ? etcdc__dup_bytes(lead->key, lead->key_len) : NULL;
    o->leader_key_len = lead ? lead->key_len : 0;
    o->leader_mod = lead ? lead->mod_revision : 0;
    o->reported = true;
    o->cb(o->arg, lead);
}

static void on_candidates(void *arg, const etcdc_watch_response *r)
{
    etcdc_observer *o = arg;
    if (r->kind != ETCDC_WATCH_EVENTS)
        return; /* progress; a compacted or canceled watch cannot happen from a fresh start */
    for (size_t i = 0; i < r->event_count; i++) {
        const etcdc_event *ev = &r->events[i];
        etcdc_kv *known = find(&o->candidates, ev->kv.key, ev->kv.key_len);
        if (ev->type == ETCDC_EVENT_DELETE) {
            if (known)
                forget(&o->candidates, known);
        } else {
            remember(&o->candidates, &ev->kv);
        }
    }
    report_leader(o);
}

etcdc_observer *etcdc_election_observe(etcdc_client *c, const void *name, size_t name_len,
                                       etcdc_leader_cb cb, void *arg, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (name_len == 0 || !cb) {
        etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "observe needs a name and a callback");
        return NULL;
    }
    etcdc_observer *o = calloc(1, sizeof *o);
    size_t pfx_len, end_len;
    char *end = NULL;
    char *pfx = o ? candidates_range(name, name_len, &pfx_len, &end, &end_len) : NULL;
    if (!pfx) {
        free(o);
        etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    o->cb = cb;
    o->arg = arg;
    etcdc_code rc = etcdc_get_range(c, pfx, pfx_len, end, end_len, false, &o->candidates, err);
    if (rc == ETCDC_OK) {
        report_leader(o);
        etcdc_watch_opts wo = {.key = pfx,
                               .key_len = pfx_len,
                               .range_end = end,
                               .range_end_len = end_len,
                               .start_revision = o->candidates.revision + 1};
        o->watch = etcdc_watch(c, &wo, on_candidates, o, err);
    }
    free(pfx);
    free(end);
    if (!o->watch) {
        etcdc_observer_stop(o);
        return NULL;
    }
    return o;
}

void etcdc_observer_stop(etcdc_observer *o)
{
    if (!o)
        return;
    etcdc_watch_cancel(o->watch);
    etcdc_kvs_clear(&o->candidates);
    free(o->leader_key);
    free(o);
}
