/* snapshot.c - Maintenance/Snapshot (a server stream) saved to a file, and MoveLeader. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/support/alloc.h>

#include "internal.h"

/* One streaming call and the file it fills. */
typedef struct snap {
    etcdc_client *c;
    grpc_completion_queue *cq;
    grpc_call *call;
    bool idle; /* etcd sent nothing for a request timeout: the call was canceled */
    int fd;
    uint64_t written;
    int write_errno;
} snap;

/* Runs one batch and waits for it, canceling the call when etcd stays silent for a request
 * timeout (the transfer as a whole may take much longer). */
static bool run_batch(snap *s, const grpc_op *ops, size_t n, void *tag)
{
    if (grpc_call_start_batch(s->call, ops, n, tag, NULL) != GRPC_CALL_OK)
        return false;
    gpr_timespec idle = etcdc__deadline_ms(s->c->cfg.request_timeout_ms);
    grpc_event ev = grpc_completion_queue_pluck(s->cq, tag, idle, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        s->idle = true;
        grpc_call_cancel(s->call, NULL);
        ev = grpc_completion_queue_pluck(s->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static bool write_all(snap *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->write_errno = w < 0 ? errno : EIO;
            return false;
        }
        p += w;
        n -= (size_t)w;
        s->written += (uint64_t)w;
    }
    return true;
}

/* Receives the stream into s->fd, calling cb after each chunk; stops early (canceling the
 * call) when a write fails. */
static void receive_chunks(snap *s, etcdc_snapshot_progress_cb cb, void *arg)
{
    for (;;) {
        grpc_byte_buffer *bb = NULL;
        grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
        op.data.recv_message.recv_message = &bb;
        if (!run_batch(s, &op, 1, (void *)2) || !bb)
            return; /* end of stream, or the call failed: the status says which */
        Etcdserverpb__SnapshotResponse *r = (Etcdserverpb__SnapshotResponse *)etcdc__unpack(
            &etcdserverpb__snapshot_response__descriptor, bb);
        grpc_byte_buffer_destroy(bb);
        if (!r) {
            grpc_call_cancel_with_status(s->call, GRPC_STATUS_INTERNAL,
                                         "undecodable snapshot chunk", NULL);
            return;
        }
        bool ok = write_all(s, r->blob.data, r->blob.len);
        uint64_t remaining = r->remaining_bytes;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (!ok) {
            grpc_call_cancel(s->call, NULL);
            return;
        }
        if (cb)
            cb(arg, s->written, remaining);
    }
}

/* Starts the call (request sent, half-closed) and returns its status once the stream ended. */
static grpc_status_code stream_snapshot(snap *s, etcdc_snapshot_progress_cb cb, void *arg,
                                        char *message, size_t message_size)
{
    grpc_metadata md[2];
    char *token = NULL;
    size_t md_count = etcdc__call_metadata(s->c, md, false, &token);
    Etcdserverpb__SnapshotRequest req = ETCDSERVERPB__SNAPSHOT_REQUEST__INIT;
    grpc_byte_buffer *request = etcdc__pack(&req.base);
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_op start[4];
    memset(start, 0, sizeof start);
    start[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    start[0].data.send_initial_metadata.count = md_count;
    start[0].data.send_initial_metadata.metadata = md;
    start[0].flags =
        GRPC_INITIAL_METADATA_WAIT_FOR_READY | GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
    start[1].op = GRPC_OP_SEND_MESSAGE;
    start[1].data.send_message.send_message = request;
    start[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    start[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    start[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    if (run_batch(s, start, 4, (void *)1))
        receive_chunks(s, cb, arg);

    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op end = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    end.data.recv_status_on_client.trailing_metadata = &trailing_md;
    end.data.recv_status_on_client.status = &status;
    end.data.recv_status_on_client.status_details = &details;
    if (grpc_call_start_batch(s->call, &end, 1, (void *)3, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_pluck(s->cq, (void *)3, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    char *d = grpc_slice_to_c_string(details);
    snprintf(message, message_size, "%s", d && *d ? d : "");
    gpr_free(d);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_byte_buffer_destroy(request);
    gpr_free(token);
    return status;
}

/* Maps the end of the transfer to a code and message. */
static etcdc_code snapshot_outcome(const snap *s, grpc_status_code status, const char *message,
                                   const char *path, etcdc_error *err)
{
    if (s->write_errno)
        return etcdc__set_error(err, ETCDC_ERR_IO, 0, "snapshot to %s: write: %s", path,
                                strerror(s->write_errno));
    if (status == GRPC_STATUS_OK)
        return ETCDC_OK;
    if (etcdc__ctx_canceled())
        return etcdc__set_error(err, ETCDC_ERR_CANCELED, (int)status,
                                "snapshot to %s: canceled by the call context", path);
    if (s->idle)
        return etcdc__set_error(err, ETCDC_ERR_TIMEOUT, (int)status,
                                "snapshot to %s: etcd sent nothing for %lld ms", path,
                                (long long)s->c->cfg.request_timeout_ms);
    etcdc_code rc = etcdc__code_from_status((int)status, message);
    return etcdc__set_error(err, rc, (int)status, "snapshot to %s: %s", path,
                            message[0] ? message : etcdc_strerror(rc));
}

etcdc_code etcdc_snapshot_save(etcdc_client *c, const char *path, etcdc_snapshot_progress_cb cb,
                               void *arg, uint64_t *out_bytes, etcdc_error *err)
{
    etcdc__clear_error(err);
    if (out_bytes)
        *out_bytes = 0;
    if (etcdc__ctx_canceled())
        return etcdc__set_error(err, ETCDC_ERR_CANCELED, 0,
                                "snapshot to %s: canceled by the call context", path);
    size_t plen = strlen(path);
    char *part = malloc(plen + 6);
    if (!part)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    memcpy(part, path, plen);
    memcpy(part + plen, ".part", 6);
    /* 0600: a snapshot holds every key and value of the cluster. */
    snap s = {.c = c, .fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
    if (s.fd < 0) {
        etcdc_code rc =
            etcdc__set_error(err, ETCDC_ERR_IO, 0, "snapshot to %s: %s", part, strerror(errno));
        free(part);
        return rc;
    }
    s.cq = grpc_completion_queue_create_for_pluck(NULL);
    s.call = grpc_channel_create_call(
        c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s.cq,
        grpc_slice_from_static_string("/etcdserverpb.Maintenance/Snapshot"), NULL,
        etcdc__ctx_clamp(gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL), NULL);
    struct etcdc__ctx_call in_ctx;
    if (!etcdc__ctx_register(&in_ctx, s.call))
        grpc_call_cancel(s.call, NULL);
    etcdc__count(c, ETCDC_STAT_STATUS);
    char message[300];
    grpc_status_code status = stream_snapshot(&s, cb, arg, message, sizeof message);
    etcdc__ctx_unregister(&in_ctx);
    grpc_call_unref(s.call);
    grpc_completion_queue_shutdown(s.cq);
    while (grpc_completion_queue_pluck(s.cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s.cq);

    etcdc_code rc = snapshot_outcome(&s, status, message, path, err);
    /* Only a complete, synced file takes the final name. */
    if (rc == ETCDC_OK && fsync(s.fd) != 0)
        rc = etcdc__set_error(err, ETCDC_ERR_IO, 0, "snapshot to %s: fsync: %s", path,
                              strerror(errno));
    if (close(s.fd) != 0 && rc == ETCDC_OK)
        rc = etcdc__set_error(err, ETCDC_ERR_IO, 0, "snapshot to %s: close: %s", path,
                              strerror(errno));
    if (rc == ETCDC_OK && rename(part, path) != 0)
        rc = etcdc__set_error(err, ETCDC_ERR_IO, 0, "snapshot to %s: rename: %s", path,
                              strerror(errno));
    if (rc != ETCDC_OK)
        unlink(part);
    else if (out_bytes)
        *out_bytes = s.written;
    free(part);
    return rc;
}

etcdc_code etcdc_move_leader(etcdc_client *c, uint64_t target_id, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__MoveLeaderRequest pb = ETCDSERVERPB__MOVE_LEADER_REQUEST__INIT;
    pb.targetid = target_id;
    etcdc_code rc =
        etcdc__unary_ack(c, "/etcdserverpb.Maintenance/MoveLeader", ETCDC_RETRY_UNSENT, &pb.base,
                         &etcdserverpb__move_leader_response__descriptor, err);
    if (rc == ETCDC_ERR_INVALID_ARGUMENT && err && strstr(err->message, "not leader"))
        rc = err->code = ETCDC_ERR_NOT_LEADER; /* sent to a follower */
    return rc;
}
