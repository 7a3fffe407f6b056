/* maintenance.c - the Maintenance service beyond Status: defragment, alarms, hashes. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

etcdc_code etcdc_defragment(etcdc_client *c, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__DefragmentRequest pb = ETCDSERVERPB__DEFRAGMENT_REQUEST__INIT;
    /* Idempotent, and slow on a large database: the caller's request timeout (or call
     * context) must allow for it. */
    return etcdc__unary_ack(c, "/etcdserverpb.Maintenance/Defragment", ETCDC_RETRY_WRITE, &pb.base,
                            &etcdserverpb__defragment_response__descriptor, err);
}

void etcdc_alarms_clear(etcdc_alarms *a)
{
    if (!a)
        return;
    free(a->alarms);
    memset(a, 0, sizeof *a);
}

static etcdc_code alarm_call(etcdc_client *c, Etcdserverpb__AlarmRequest__AlarmAction action,
                             uint64_t member_id, etcdc_alarm_type type, etcdc_alarms *out,
                             etcdc_error *err)
{
    Etcdserverpb__AlarmRequest pb = ETCDSERVERPB__ALARM_REQUEST__INIT;
    pb.action = action;
    pb.memberid = member_id;
    pb.alarm = (Etcdserverpb__AlarmType)type;
    Etcdserverpb__AlarmResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Maintenance/Alarm", ETCDC_STAT_STATUS, ETCDC_RETRY_WRITE, &pb.base,
        &etcdserverpb__alarm_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    if (out && resp->n_alarms) {
        out->alarms = calloc(resp->n_alarms, sizeof *out->alarms);
        if (!out->alarms)
            rc = etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
        for (size_t i = 0; out->alarms && i < resp->n_alarms; i++) {
            out->alarms[i].member_id = resp->alarms[i]->memberid;
            out->alarms[i].type = (etcdc_alarm_type)resp->alarms[i]->alarm;
            out->count++;
        }
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

etcdc_code etcdc_alarm_list(etcdc_client *c, etcdc_alarms *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    return alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET, 0, ETCDC_ALARM_NONE, out,
                      err);
}

etcdc_code etcdc_alarm_disarm(etcdc_client *c, uint64_t member_id, etcdc_alarm_type type,
                              etcdc_error *err)
{
    etcdc__clear_error(err);
    if (member_id != 0 || type != ETCDC_ALARM_NONE)
        return alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE, member_id, type,
                          NULL, err);
    /* Everything: etcd deactivates one (member, type) at a time, as etcdctl's disarm does. */
    etcdc_alarms all;
    etcdc_code rc = etcdc_alarm_list(c, &all, err);
    for (size_t i = 0; rc == ETCDC_OK && i < all.count; i++)
        rc = alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE,
                        all.alarms[i].member_id, all.alarms[i].type, NULL, err);
    etcdc_alarms_clear(&all);
    return rc;
}

etcdc_code etcdc_hash_kv(etcdc_client *c, int64_t rev, uint32_t *out_hash,
                         int64_t *out_compact_revision, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__HashKVRequest pb = ETCDSERVERPB__HASH_KVREQUEST__INIT;
    pb.revision = rev;
    Etcdserverpb__HashKVResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Maintenance/HashKV", ETCDC_STAT_STATUS, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__hash_kvresponse__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    if (out_hash)
        *out_hash = resp->hash;
    if (out_compact_revision)
        *out_compact_revision = resp->compact_revision;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ETCDC_OK;
}

etcdc_code etcdc_hash(etcdc_client *c, uint32_t *out_hash, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__HashRequest pb = ETCDSERVERPB__HASH_REQUEST__INIT;
    Etcdserverpb__HashResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Maintenance/Hash", ETCDC_STAT_STATUS, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__hash_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    if (out_hash)
        *out_hash = resp->hash;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ETCDC_OK;
}
