"""A connvault client in Python: the whole life of one connection.

Run it through run.sh, which generates the stubs from proto/ and puts them on
PYTHONPATH:

    examples/python/run.sh localhost:50051

It creates a tenant with a unique id, creates a `testdb` connection (the
fixture data source of connvault's own tests), reads it back, lists it,
updates its labels with a field mask and the etag, deletes it and the tenant,
and checks every answer on the way. Any mismatch exits non-zero.
"""

import os
import sys
import uuid

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from connvault.v1 import (
    connection_service_pb2 as conn_pb,
    connection_service_pb2_grpc as conn_grpc,
    data_source_service_pb2 as ds_pb,
    data_source_service_pb2_grpc as ds_grpc,
    tenant_service_pb2 as tenant_pb,
    tenant_service_pb2_grpc as tenant_grpc,
)

PASSWORD = "s3cret-from-python"
TIMEOUT = 30  # seconds per call


class Mismatch(Exception):
    """An answer was not what the client expected."""


def check(condition, message):
    if not condition:
        raise Mismatch(message)


def expect_code(code, call, *args):
    """Runs `call` and checks it fails with `code`."""
    try:
        call(*args, timeout=TIMEOUT)
    except grpc.RpcError as error:
        check(error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}")
        return error
    raise Mismatch(f"expected {code.name}, the call succeeded")


def step(text):
    print(f"-- {text}", flush=True)


class BearerToken(grpc.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.metadata = (("authorization", f"Bearer {token}"),)

    def intercept_unary_unary(self, continuation, details, request):
        details = details._replace(metadata=tuple(details.metadata or ()) + self.metadata)
        return continuation(details, request)


def run(address, token):
    with grpc.insecure_channel(address) as plain:
        grpc.channel_ready_future(plain).result(timeout=TIMEOUT)
        channel = grpc.intercept_channel(plain, BearerToken(token)) if token else plain
        tenants = tenant_grpc.TenantServiceStub(channel)
        sources = ds_grpc.DataSourceServiceStub(channel)
        connections = conn_grpc.ConnectionServiceStub(channel)

        tenant_id = f"py-{uuid.uuid4().hex[:12]}"
        parent = f"tenants/{tenant_id}"
        created_tenant = False
        try:
            step(f"CreateTenant {tenant_id}")
            tenant = tenants.CreateTenant(
                tenant_pb.CreateTenantRequest(
                    tenant_id=tenant_id,
                    tenant=tenant_pb.Tenant(display_name="Python example", labels={"origin": "python"}),
                ),
                timeout=TIMEOUT,
            )
            created_tenant = True
            check(tenant.name == parent, f"tenant name {tenant.name!r}")
            check(tenant.display_name == "Python example", f"tenant display_name {tenant.display_name!r}")
            check(dict(tenant.labels) == {"origin": "python"}, f"tenant labels {dict(tenant.labels)}")
            check(tenant.etag != "", "tenant etag is empty")
            check(tenant.HasField("create_time"), "tenant create_time is missing")

            step("GetDataSource dataSources/testdb")
            source = sources.GetDataSource(ds_pb.GetDataSourceRequest(name="dataSources/testdb"), timeout=TIMEOUT)
            check(source.id == "testdb", f"data source id {source.id!r}")
            secret_fields = [field.name for field in source.fields if field.secret]
            check(secret_fields == ["password"], f"data source secret fields {secret_fields}")
            required = [field.name for field in source.fields if field.required]
            check(required == ["host"], f"data source required fields {required}")

            step("CreateConnection (testdb)")
            config = struct_pb2.Struct()
            config.update({"host": "db.example.com", "port": 5433, "database": "orders", "user": "app"})
            connection = connections.CreateConnection(
                conn_pb.CreateConnectionRequest(
                    parent=parent,
                    connection=conn_pb.Connection(
                        display_name="Orders (python)",
                        data_source="testdb",
                        config=config,
                        secrets={"password": PASSWORD},
                        labels={"env": "dev"},
                        product="Reporting",
                    ),
                ),
                timeout=TIMEOUT,
            )
            check(connection.name.startswith(parent + "/connections/"), f"connection name {connection.name!r}")
            check(connection.display_name == "Orders (python)", f"display_name {connection.display_name!r}")
            check(connection.data_source == "testdb", f"data_source {connection.data_source!r}")
            got_config = dict(connection.config)
            for key, value in {"host": "db.example.com", "port": 5433, "database": "orders", "user": "app"}.items():
                check(got_config.get(key) == value, f"config.{key} is {got_config.get(key)!r}, expected {value!r}")
            check(len(connection.secrets) == 0, "the response carries secrets")
            check(list(connection.secret_fields) == ["password"], f"secret_fields {list(connection.secret_fields)}")
            check(PASSWORD not in str(connection), "the password appears in the response")
            check(dict(connection.labels) == {"env": "dev"}, f"labels {dict(connection.labels)}")
            check(connection.product == "reporting", f"product {connection.product!r} (stored lowercase)")
            check(connection.etag != "", "connection etag is empty")
            check(connection.HasField("create_time"), "connection create_time is missing")

            step("CreateConnection with the same display name: ALREADY_EXISTS")
            duplicate = conn_pb.Connection()
            duplicate.CopyFrom(connection)
            duplicate.ClearField("name")
            duplicate.secrets["password"] = PASSWORD
            expect_code(
                grpc.StatusCode.ALREADY_EXISTS,
                connections.CreateConnection,
                conn_pb.CreateConnectionRequest(parent=parent, connection=duplicate),
            )

            step("CreateConnection without the required host: INVALID_ARGUMENT")
            expect_code(
                grpc.StatusCode.INVALID_ARGUMENT,
                connections.CreateConnection,
                conn_pb.CreateConnectionRequest(
                    parent=parent,
                    connection=conn_pb.Connection(display_name="No host", data_source="testdb"),
                ),
            )

            step("GetConnection")
            fetched = connections.GetConnection(conn_pb.GetConnectionRequest(name=connection.name), timeout=TIMEOUT)
            check(fetched == connection, f"GetConnection differs from CreateConnection:\n{fetched}\nvs\n{connection}")
            check(len(fetched.secrets) == 0, "GetConnection returned secrets")
            check(list(fetched.secret_fields) == ["password"], f"secret_fields {list(fetched.secret_fields)}")

            step("ListConnections")
            listed = connections.ListConnections(conn_pb.ListConnectionsRequest(parent=parent), timeout=TIMEOUT)
            check([c.name for c in listed.connections] == [connection.name], f"listed {[c.name for c in listed.connections]}")
            check(listed.next_page_token == "", "a single page has a next_page_token")
            check(all(len(c.secrets) == 0 for c in listed.connections), "ListConnections returned secrets")
            check(list(listed.connections[0].secret_fields) == ["password"], "listed secret_fields")

            step("UpdateConnection labels (update_mask + etag)")
            updated = connections.UpdateConnection(
                conn_pb.UpdateConnectionRequest(
                    connection=conn_pb.Connection(name=connection.name, labels={"env": "prod"}),
                    update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
                    etag=connection.etag,
                ),
                timeout=TIMEOUT,
            )
            check(dict(updated.labels) == {"env": "prod"}, f"updated labels {dict(updated.labels)}")
            check(updated.etag != connection.etag, "the etag did not change on update")
            check(list(updated.secret_fields) == ["password"], "the update lost the stored secret")
            check(dict(updated.config) == dict(connection.config), "the update changed config")

            step("DeleteConnection with the stale etag: ABORTED")
            expect_code(
                grpc.StatusCode.ABORTED,
                connections.DeleteConnection,
                conn_pb.DeleteConnectionRequest(name=connection.name, etag=connection.etag),
            )

            step("DeleteConnection")
            connections.DeleteConnection(
                conn_pb.DeleteConnectionRequest(name=connection.name, etag=updated.etag), timeout=TIMEOUT
            )
            expect_code(
                grpc.StatusCode.NOT_FOUND,
                connections.GetConnection,
                conn_pb.GetConnectionRequest(name=connection.name),
            )
            listed = connections.ListConnections(conn_pb.ListConnectionsRequest(parent=parent), timeout=TIMEOUT)
            check(len(listed.connections) == 0, "the deleted connection is still listed")

            step("DeleteTenant")
            tenants.DeleteTenant(tenant_pb.DeleteTenantRequest(name=parent), timeout=TIMEOUT)
            created_tenant = False
            expect_code(grpc.StatusCode.NOT_FOUND, tenants.GetTenant, tenant_pb.GetTenantRequest(name=parent))
        finally:
            if created_tenant:
                # Leave nothing behind when a check failed half-way.
                try:
                    tenants.DeleteTenant(tenant_pb.DeleteTenantRequest(name=parent, force=True), timeout=TIMEOUT)
                except grpc.RpcError:
                    pass


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} HOST:PORT", file=sys.stderr)
        return 2
    try:
        # A bearer token for servers that check them (an admin token, or one
        # for every tenant with the writer and reader roles).
        run(argv[1], os.environ.get("CONNVAULT_TOKEN") or None)
    except Mismatch as mismatch:
        print(f"FAIL: {mismatch}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(f"FAIL: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except grpc.FutureTimeoutError:
        print(f"FAIL: no server at {argv[1]}", file=sys.stderr)
        return 1
    print("OK: tenant and connection created, read, listed, updated and deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
