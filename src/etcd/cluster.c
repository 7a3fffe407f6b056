/* cluster.c - Maintenance/Status and Cluster/MemberList. */
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
    bool oom = false;
    out->cluster_id = resp->header ? resp->header->cluster_id : 0;
    out->members = calloc(resp->n_members ? resp->n_members : 1, sizeof *out->members);
    if (!out->members)
        oom = true;
    for (size_t i = 0; !oom && i < resp->n_members; i++) {
        const Etcdserverpb__Member *m = resp->members[i];
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
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (oom) {
        etcdc_members_clear(out);
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    }
    return ETCDC_OK;
}
