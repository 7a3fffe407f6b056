/* cluster.c - Maintenance/Status and the Cluster service: member list, add, remove, update,
 * promote. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

etcdc_code etcdc_status_get(etcdc_client *c, etcdc_status *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    Etcdserverpb__StatusRequest pb = ETCDSERVERPB__STATUS_REQUEST__INIT;
    Etcdserverpb__StatusResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Maintenance/Status", ETCDC_STAT_STATUS, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__status_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    snprintf(out->version, sizeof out->version, "%s", resp->version ? resp->version : "");
    out->db_size = resp->dbsize;
    out->db_size_in_use = resp->dbsizeinuse;
    out->leader = resp->leader;
    out->raft_index = resp->raftindex;
    out->raft_term = resp->raftterm;
    out->is_learner = resp->islearner;
    if (resp->header) {
        out->member_id = resp->header->member_id;
        out->cluster_id = resp->header->cluster_id;
        out->revision = resp->header->revision;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ETCDC_OK;
}

static char **copy_strings(char **src, size_t n, bool *oom)
{
    if (n == 0)
        return NULL;
    char **dst = calloc(n, sizeof *dst);
    if (!dst) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!(dst[i] = strdup(src[i] ? src[i] : "")))
            *oom = true;
    return dst;
}

static void free_strings(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

void etcdc_members_clear(etcdc_members *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->count; i++) {
        free(m->members[i].name);
        free_strings(m->members[i].peer_urls, m->members[i].peer_url_count);
        free_strings(m->members[i].client_urls, m->members[i].client_url_count);
    }
    free(m->members);
    memset(m, 0, sizeof *m);
}

/* Copies a member list out of a response (MemberList, MemberAdd, ...) into out. */
static etcdc_code members_from_pb(Etcdserverpb__Member *const *members, size_t n,
                                  uint64_t cluster_id, etcdc_members *out, etcdc_error *err)
{
    bool oom = false;
    out->cluster_id = cluster_id;
    out->members = calloc(n ? n : 1, sizeof *out->members);
    if (!out->members)
        oom = true;
    for (size_t i = 0; !oom && i < n; i++) {
        const Etcdserverpb__Member *m = members[i];
        etcdc_member *o = &out->members[out->count++];
        o->id = m->id;
        o->name = strdup(m->name ? m->name : "");
        oom |= !o->name;
        o->peer_urls = copy_strings(m->peerurls, m->n_peerurls, &oom);
        o->peer_url_count = o->peer_urls ? m->n_peerurls : 0;
        o->client_urls = copy_strings(m->clienturls, m->n_clienturls, &oom);
        o->client_url_count = o->client_urls ? m->n_clienturls : 0;
        o->is_learner = m->islearner;
    }
    if (oom) {
        etcdc_members_clear(out);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    return ETCDC_OK;
}

static uint64_t cluster_of(const Etcdserverpb__ResponseHeader *h)
{
    return h ? h->cluster_id : 0;
}

etcdc_code etcdc_member_list(etcdc_client *c, etcdc_members *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    Etcdserverpb__MemberListRequest pb = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
    Etcdserverpb__MemberListResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Cluster/MemberList", ETCDC_STAT_STATUS, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__member_list_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    rc = members_from_pb(resp->members, resp->n_members, cluster_of(resp->header), out, err);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

/* Splits "http://a:2380,http://b:2380" into the request's repeated string (pointers into the
 * copy in buf, which the caller frees). */
static char **split_urls(const char *urls, char **buf, size_t *n)
{
    *n = 0;
    *buf = strdup(urls ? urls : "");
    size_t cap = 1;
    for (const char *p = *buf ? *buf : ""; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (!*buf || !v) {
        free(*buf);
        free(v);
        *buf = NULL;
        return NULL;
    }
    char *save = NULL;
    for (char *t = strtok_r(*buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        v[(*n)++] = t;
    return v;
}

etcdc_code etcdc_member_add(etcdc_client *c, const char *peer_urls, bool learner, uint64_t *out_id,
                            etcdc_members *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (out)
        memset(out, 0, sizeof *out);
    char *buf;
    Etcdserverpb__MemberAddRequest pb = ETCDSERVERPB__MEMBER_ADD_REQUEST__INIT;
    pb.peerurls = split_urls(peer_urls, &buf, &pb.n_peerurls);
    if (!pb.peerurls)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    if (pb.n_peerurls == 0) {
        free(pb.peerurls);
        free(buf);
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "member add: no peer URL");
    }
    pb.islearner = learner;
    Etcdserverpb__MemberAddResponse *resp = NULL;
    /* Not resent: a second add of the same URLs after a lost answer fails as a duplicate. */
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Cluster/MemberAdd", ETCDC_STAT_STATUS, ETCDC_RETRY_UNSENT, &pb.base,
        &etcdserverpb__member_add_response__descriptor, (ProtobufCMessage **)&resp, err);
    free(pb.peerurls);
    free(buf);
    if (rc != ETCDC_OK)
        return rc;
    if (out_id)
        *out_id = resp->member ? resp->member->id : 0;
    if (out)
        rc = members_from_pb(resp->members, resp->n_members, cluster_of(resp->header), out, err);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

etcdc_code etcdc_member_remove(etcdc_client *c, uint64_t id, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__MemberRemoveRequest pb = ETCDSERVERPB__MEMBER_REMOVE_REQUEST__INIT;
    pb.id = id;
    return etcdc__unary_ack(c, "/etcdserverpb.Cluster/MemberRemove", ETCDC_RETRY_UNSENT, &pb.base,
                            &etcdserverpb__member_remove_response__descriptor, err);
}

etcdc_code etcdc_member_update(etcdc_client *c, uint64_t id, const char *peer_urls,
                               etcdc_error *err)
{
    etcdc__clear_error(err);
    char *buf;
    Etcdserverpb__MemberUpdateRequest pb = ETCDSERVERPB__MEMBER_UPDATE_REQUEST__INIT;
    pb.id = id;
    pb.peerurls = split_urls(peer_urls, &buf, &pb.n_peerurls);
    if (!pb.peerurls)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    etcdc_code rc =
        etcdc__unary_ack(c, "/etcdserverpb.Cluster/MemberUpdate", ETCDC_RETRY_WRITE, &pb.base,
                         &etcdserverpb__member_update_response__descriptor, err);
    free(pb.peerurls);
    free(buf);
    return rc;
}

etcdc_code etcdc_member_promote(etcdc_client *c, uint64_t id, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__MemberPromoteRequest pb = ETCDSERVERPB__MEMBER_PROMOTE_REQUEST__INIT;
    pb.id = id;
    return etcdc__unary_ack(c, "/etcdserverpb.Cluster/MemberPromote", ETCDC_RETRY_UNSENT, &pb.base,
                            &etcdserverpb__member_promote_response__descriptor, err);
}
