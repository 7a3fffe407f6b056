/* auth_admin.c - administering etcd's authentication: enable/disable, users, roles and their
 * key permissions. Every call is one unary request of the Auth service, sent with the client's
 * token (counted with the status requests in etcdc_stats: Authenticate alone goes without). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One Auth request whose answer carries nothing but a header. Not resent after a lost answer
 * (adding a user twice fails as a duplicate): `what` names the operation in messages. */
static etcdc_code auth_call(etcdc_client *c, const char *method, const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *resp_desc, const char *what,
                            const char *name, etcdc_error *err)
{
    etcdc_code rc = etcdc__unary_ack(c, method, ETCDC_RETRY_UNSENT, req, resp_desc, err);
    if (rc != ETCDC_OK && err) {
        char why[sizeof err->message];
        memcpy(why, err->message, sizeof why);
        etcdc__set_error(err, rc, err->grpc_status, "%s%s%s%s: %s", what, name ? " '" : "",
                         name ? name : "", name ? "'" : "", why);
    }
    return rc;
}

etcdc_code etcdc_auth_enable(etcdc_client *c, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthEnableRequest pb = ETCDSERVERPB__AUTH_ENABLE_REQUEST__INIT;
    return auth_call(c, "/etcdserverpb.Auth/AuthEnable", &pb.base,
                     &etcdserverpb__auth_enable_response__descriptor, "auth enable", NULL, err);
}

etcdc_code etcdc_auth_disable(etcdc_client *c, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthDisableRequest pb = ETCDSERVERPB__AUTH_DISABLE_REQUEST__INIT;
    return auth_call(c, "/etcdserverpb.Auth/AuthDisable", &pb.base,
                     &etcdserverpb__auth_disable_response__descriptor, "auth disable", NULL, err);
}

etcdc_code etcdc_user_add(etcdc_client *c, const char *name, const char *password, etcdc_error *err)
{
    etcdc__clear_error(err);
    Authpb__UserAddOptions opts = AUTHPB__USER_ADD_OPTIONS__INIT;
    opts.no_password = password == NULL;
    Etcdserverpb__AuthUserAddRequest pb = ETCDSERVERPB__AUTH_USER_ADD_REQUEST__INIT;
    pb.name = (char *)name;
    pb.password = (char *)(password ? password : "");
    pb.options = &opts;
    return auth_call(c, "/etcdserverpb.Auth/UserAdd", &pb.base,
                     &etcdserverpb__auth_user_add_response__descriptor, "user add", name, err);
}

etcdc_code etcdc_user_delete(etcdc_client *c, const char *name, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthUserDeleteRequest pb = ETCDSERVERPB__AUTH_USER_DELETE_REQUEST__INIT;
    pb.name = (char *)name;
    return auth_call(c, "/etcdserverpb.Auth/UserDelete", &pb.base,
                     &etcdserverpb__auth_user_delete_response__descriptor, "user delete", name,
                     err);
}

etcdc_code etcdc_user_change_password(etcdc_client *c, const char *name, const char *password,
                                      etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthUserChangePasswordRequest pb =
        ETCDSERVERPB__AUTH_USER_CHANGE_PASSWORD_REQUEST__INIT;
    pb.name = (char *)name;
    pb.password = (char *)password;
    return auth_call(c, "/etcdserverpb.Auth/UserChangePassword", &pb.base,
                     &etcdserverpb__auth_user_change_password_response__descriptor,
                     "user change password", name, err);
}

etcdc_code etcdc_user_grant_role(etcdc_client *c, const char *user, const char *role,
                                 etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthUserGrantRoleRequest pb = ETCDSERVERPB__AUTH_USER_GRANT_ROLE_REQUEST__INIT;
    pb.user = (char *)user;
    pb.role = (char *)role;
    return auth_call(c, "/etcdserverpb.Auth/UserGrantRole", &pb.base,
                     &etcdserverpb__auth_user_grant_role_response__descriptor, "user grant role",
                     user, err);
}

etcdc_code etcdc_user_revoke_role(etcdc_client *c, const char *user, const char *role,
                                  etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthUserRevokeRoleRequest pb = ETCDSERVERPB__AUTH_USER_REVOKE_ROLE_REQUEST__INIT;
    pb.name = (char *)user;
    pb.role = (char *)role;
    return auth_call(c, "/etcdserverpb.Auth/UserRevokeRole", &pb.base,
                     &etcdserverpb__auth_user_revoke_role_response__descriptor, "user revoke role",
                     user, err);
}

etcdc_code etcdc_role_add(etcdc_client *c, const char *role, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthRoleAddRequest pb = ETCDSERVERPB__AUTH_ROLE_ADD_REQUEST__INIT;
    pb.name = (char *)role;
    return auth_call(c, "/etcdserverpb.Auth/RoleAdd", &pb.base,
                     &etcdserverpb__auth_role_add_response__descriptor, "role add", role, err);
}

etcdc_code etcdc_role_delete(etcdc_client *c, const char *role, etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthRoleDeleteRequest pb = ETCDSERVERPB__AUTH_ROLE_DELETE_REQUEST__INIT;
    pb.role = (char *)role;
    return auth_call(c, "/etcdserverpb.Auth/RoleDelete", &pb.base,
                     &etcdserverpb__auth_role_delete_response__descriptor, "role delete", role,
                     err);
}

etcdc_code etcdc_role_grant_permission(etcdc_client *c, const char *role, etcdc_perm perm,
                                       const void *key, size_t key_len, const void *range_end,
                                       size_t range_end_len, etcdc_error *err)
{
    etcdc__clear_error(err);
    Authpb__Permission p = AUTHPB__PERMISSION__INIT;
    p.permtype = (Authpb__Permission__Type)perm;
    p.key = (ProtobufCBinaryData){key_len, (uint8_t *)key};
    p.range_end = (ProtobufCBinaryData){range_end ? range_end_len : 0, (uint8_t *)range_end};
    Etcdserverpb__AuthRoleGrantPermissionRequest pb =
        ETCDSERVERPB__AUTH_ROLE_GRANT_PERMISSION_REQUEST__INIT;
    pb.name = (char *)role;
    pb.perm = &p;
    return auth_call(c, "/etcdserverpb.Auth/RoleGrantPermission", &pb.base,
                     &etcdserverpb__auth_role_grant_permission_response__descriptor,
                     "role grant permission", role, err);
}

etcdc_code etcdc_role_revoke_permission(etcdc_client *c, const char *role, const void *key,
                                        size_t key_len, const void *range_end, size_t range_end_len,
                                        etcdc_error *err)
{
    etcdc__clear_error(err);
    Etcdserverpb__AuthRoleRevokePermissionRequest pb =
        ETCDSERVERPB__AUTH_ROLE_REVOKE_PERMISSION_REQUEST__INIT;
    pb.role = (char *)role;
    pb.key = (ProtobufCBinaryData){key_len, (uint8_t *)key};
    pb.range_end = (ProtobufCBinaryData){range_end ? range_end_len : 0, (uint8_t *)range_end};
    return auth_call(c, "/etcdserverpb.Auth/RoleRevokePermission", &pb.base,
                     &etcdserverpb__auth_role_revoke_permission_response__descriptor,
                     "role revoke permission", role, err);
}

void etcdc_names_clear(etcdc_names *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->count; i++)
        free(n->names[i]);
    free(n->names);
    memset(n, 0, sizeof *n);
}

static etcdc_code copy_names(char **src, size_t n, etcdc_names *out, etcdc_error *err)
{
    if (n == 0)
        return ETCDC_OK;
    out->names = calloc(n, sizeof *out->names);
    for (size_t i = 0; out->names && i < n; i++) {
        if (!(out->names[i] = strdup(src[i] ? src[i] : "")))
            break;
        out->count++;
    }
    if (out->count == n)
        return ETCDC_OK;
    etcdc_names_clear(out);
    return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
}

etcdc_code etcdc_user_list(etcdc_client *c, etcdc_names *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    Etcdserverpb__AuthUserListRequest pb = ETCDSERVERPB__AUTH_USER_LIST_REQUEST__INIT;
    Etcdserverpb__AuthUserListResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Auth/UserList", ETCDC_STAT_STATUS, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__auth_user_list_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    rc = copy_names(resp->users, resp->n_users, out, err);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

etcdc_code etcdc_role_list(etcdc_client *c, etcdc_names *out, etcdc_error *err)
{
    etcdc__clear_error(err);
    memset(out, 0, sizeof *out);
    Etcdserverpb__AuthRoleListRequest pb = ETCDSERVERPB__AUTH_ROLE_LIST_REQUEST__INIT;
    Etcdserverpb__AuthRoleListResponse *resp = NULL;
    etcdc_code rc = etcdc__unary(
        c, "/etcdserverpb.Auth/RoleList", ETCDC_STAT_STATUS, ETCDC_RETRY_IDEMPOTENT, &pb.base,
        &etcdserverpb__auth_role_list_response__descriptor, (ProtobufCMessage **)&resp, err);
    if (rc != ETCDC_OK)
        return rc;
    rc = copy_names(resp->roles, resp->n_roles, out, err);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}
