// A connvault client in Node.js: stock @grpc/grpc-js, with the service
// definitions loaded from proto/ at run time by @grpc/proto-loader (no
// generated code). It creates a tenant and a connection of the `testdb`
// fixture data source, reads, lists, updates and deletes them, and checks
// every answer, including the error codes of bad requests.
//
//   CONNVAULT_TOKEN=... node client.js HOST:PORT

'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = process.env.CONNVAULT_PROTO_ROOT || path.join(__dirname, '..', '..', 'proto');
const DEADLINE_MS = 10_000;
// Only ever sent, never expected back: the answers must not carry it.
const PASSWORD = `node-${crypto.randomBytes(8).toString('hex')}`;

function load() {
  const definition = protoLoader.loadSync(
    ['tenant_service.proto', 'data_source_service.proto', 'connection_service.proto'].map(
      (file) => path.join('connvault', 'v1', file),
    ),
    {
      includeDirs: [PROTO_ROOT],
      // Field names as in the proto (display_name), enums by name, 64-bit as strings.
      keepCase: true,
      enums: String,
      longs: String,
      defaults: true,
      oneofs: true,
    },
  );
  return grpc.loadPackageDefinition(definition).connvault.v1;
}

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

function step(text) {
  console.log(`-- ${text}`);
}

/// `google.protobuf.Struct` from a plain object of strings, numbers and booleans.
function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) {
    if (typeof value === 'number') fields[key] = { numberValue: value };
    else if (typeof value === 'boolean') fields[key] = { boolValue: value };
    else fields[key] = { stringValue: String(value) };
  }
  return { fields };
}

/// A plain object from a `google.protobuf.Struct` of scalars.
function fromStruct(struct) {
  const object = {};
  for (const [key, value] of Object.entries((struct && struct.fields) || {})) {
    object[key] = value[value.kind] ?? value.stringValue ?? value.numberValue ?? value.boolValue;
  }
  return object;
}

/// Calls `method` of `client` with the token and a deadline; resolves with the answer.
function call(client, method, request, token) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + DEADLINE_MS }, (error, answer) =>
      error ? reject(error) : resolve(answer),
    );
  });
}

async function expectCode(code, promise, what) {
  try {
    await promise;
  } catch (error) {
    check(error.code === code, `${what}: expected ${grpc.status[code]}, got ${grpc.status[error.code]}: ${error.details}`);
    return error;
  }
  throw new Error(`check failed: ${what} succeeded; expected ${grpc.status[code]}`);
}

async function run(address, token) {
  const v1 = load();
  const credentials = grpc.credentials.createInsecure();
  const tenants = new v1.TenantService(address, credentials);
  const sources = new v1.DataSourceService(address, credentials);
  const connections = new v1.ConnectionService(address, credentials);

  const tenantId = `node-${crypto.randomBytes(6).toString('hex')}`;
  const parent = `tenants/${tenantId}`;
  let createdTenant = false;
  try {
    step(`CreateTenant ${tenantId}`);
    const tenant = await call(tenants, 'CreateTenant', {
      tenant_id: tenantId,
      tenant: { display_name: 'Node example', labels: { origin: 'node' } },
    }, token);
    createdTenant = true;
    check(tenant.name === parent, `tenant name ${tenant.name}`);
    check(tenant.display_name === 'Node example', `tenant display_name ${tenant.display_name}`);
    check(tenant.labels.origin === 'node', `tenant labels ${JSON.stringify(tenant.labels)}`);
    check(tenant.etag !== '', 'tenant etag is empty');
    check(tenant.create_time && tenant.create_time.seconds !== '0', 'tenant create_time is missing');

    step('GetDataSource dataSources/testdb');
    const source = await call(sources, 'GetDataSource', { name: 'dataSources/testdb' }, token);
    check(source.id === 'testdb', `data source id ${source.id}`);
    const secretFields = source.fields.filter((field) => field.secret).map((field) => field.name);
    check(JSON.stringify(secretFields) === '["password"]', `secret fields ${secretFields}`);

    step('CreateConnection (testdb)');
    const config = { host: 'db.example.com', port: 5433, database: 'orders', user: 'app' };
    const connection = await call(connections, 'CreateConnection', {
      parent,
      connection: {
        display_name: 'Orders (node)',
        data_source: 'testdb',
        config: toStruct(config),
        secrets: { password: PASSWORD },
        labels: { env: 'dev' },
        product: 'Reporting',
      },
    }, token);
    check(connection.name.startsWith(`${parent}/connections/`), `connection name ${connection.name}`);
    check(connection.data_source === 'testdb', `data_source ${connection.data_source}`);
    const stored = fromStruct(connection.config);
    for (const [key, value] of Object.entries(config)) {
      check(stored[key] === value, `config.${key} is ${stored[key]}, expected ${value}`);
    }
    check(Object.keys(connection.secrets).length === 0, 'the response carries secrets');
    check(JSON.stringify(connection.secret_fields) === '["password"]', `secret_fields ${connection.secret_fields}`);
    check(!JSON.stringify(connection).includes(PASSWORD), 'the password appears in the response');
    check(connection.product === 'reporting', `product ${connection.product} (stored lowercase)`);

    step('CreateConnection without the required host: INVALID_ARGUMENT, naming the field');
    const invalid = await expectCode(
      grpc.status.INVALID_ARGUMENT,
      call(connections, 'CreateConnection', {
        parent,
        connection: { display_name: 'No host', data_source: 'testdb' },
      }, token),
      'a connection without host',
    );
    check(invalid.details.includes('host'), `the error does not name the field: ${invalid.details}`);

    step('GetConnection');
    const fetched = await call(connections, 'GetConnection', { name: connection.name }, token);
    check(fetched.etag === connection.etag, 'GetConnection differs from CreateConnection');
    check(Object.keys(fetched.secrets).length === 0, 'GetConnection returned secrets');

    step('ListConnections');
    const listed = await call(connections, 'ListConnections', { parent }, token);
    check(listed.connections.length === 1 && listed.connections[0].name === connection.name,
      `listed ${listed.connections.map((c) => c.name)}`);

    step('UpdateConnection labels (update_mask + etag)');
    const updated = await call(connections, 'UpdateConnection', {
      connection: { name: connection.name, labels: { env: 'prod' } },
      update_mask: { paths: ['labels'] },
      etag: connection.etag,
    }, token);
    check(updated.labels.env === 'prod', `updated labels ${JSON.stringify(updated.labels)}`);
    check(updated.etag !== connection.etag, 'the etag did not change on update');
    check(JSON.stringify(updated.secret_fields) === '["password"]', 'the update lost the stored secret');

    step('DeleteConnection with the stale etag: ABORTED');
    await expectCode(
      grpc.status.ABORTED,
      call(connections, 'DeleteConnection', { name: connection.name, etag: connection.etag }, token),
      'a delete with a stale etag',
    );

    step('DeleteConnection');
    await call(connections, 'DeleteConnection', { name: connection.name, etag: updated.etag }, token);
    await expectCode(
      grpc.status.NOT_FOUND,
      call(connections, 'GetConnection', { name: connection.name }, token),
      'a deleted connection',
    );

    step('DeleteTenant');
    await call(tenants, 'DeleteTenant', { name: parent }, token);
    createdTenant = false;
    await expectCode(grpc.status.NOT_FOUND, call(tenants, 'GetTenant', { name: parent }, token), 'a deleted tenant');
  } finally {
    if (createdTenant) {
      // Leave nothing behind when a check failed half-way.
      await call(tenants, 'DeleteTenant', { name: parent, force: true }, token).catch(() => {});
    }
    for (const client of [tenants, sources, connections]) client.close();
  }
}

async function main(argv) {
  if (argv.length !== 3) {
    console.error(`usage: ${argv[1]} HOST:PORT`);
    return 2;
  }
  try {
    await run(argv[2], process.env.CONNVAULT_TOKEN || '');
  } catch (error) {
    const code = error.code !== undefined ? `${grpc.status[error.code]}: ` : '';
    console.error(`FAIL: ${code}${error.details || error.message}`);
    return 1;
  }
  console.log('OK: tenant and connection created, read, listed, updated and deleted');
  return 0;
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
