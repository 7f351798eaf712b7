//! DiscoverMetadata and ClearMetadataCache end to end, against throwaway
//! PostgreSQL and MariaDB servers seeded with known schemas. Whether a call
//! reached the database is counted on the database's side: PostgreSQL logs
//! each connection (`log_connections`), MariaDB counts them (`Connections`).

use std::time::{Duration, Instant};

use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault_testkit::servers::{MariaDb, MariaDbOptions, PgOptions, Postgres};
use prost_types::value::Kind;
use prost_types::{FieldMask, Struct, Value};
use tonic::Code;

use crate::support::{Authed, Server, create};

const PG_PLUGIN: (&str, &str, &str) = (
    "connvault-plugin-postgres",
    "connvault_plugin_postgres",
    "postgres",
);
const MYSQL_PLUGIN: (&str, &str, &str) =
    ("connvault-plugin-mysql", "connvault_plugin_mysql", "mysql");
/// The application name the PostgreSQL connections carry, to tell them from psql's.
const APP_NAME: &str = "cvdiscover";

type Client = ConnectionServiceClient<Authed>;
/// (schema, [(table, kind, estimated rows, [(column, type, nullable, position)])]).
type Shape = Vec<(String, Vec<TableShape>)>;
type TableShape = (
    String,
    String,
    Option<i64>,
    Vec<(String, String, bool, u32)>,
);

fn string(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.to_owned())),
    }
}

fn number(value: u16) -> Value {
    Value {
        kind: Some(Kind::NumberValue(f64::from(value))),
    }
}

fn db_connection(
    display_name: &str,
    data_source: &str,
    fields: Vec<(&str, Value)>,
    password: &str,
) -> v1::Connection {
    v1::Connection {
        display_name: display_name.into(),
        data_source: data_source.into(),
        config: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        }),
        secrets: [("password".to_owned(), password.to_owned())]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

fn pg_connection(pg: &Postgres, display_name: &str) -> v1::Connection {
    db_connection(
        display_name,
        "postgresql",
        vec![
            ("host", string("127.0.0.1")),
            ("port", number(pg.port())),
            ("user", string(pg.user())),
            ("application_name", string(APP_NAME)),
        ],
        pg.password(),
    )
}

fn maria_connection(db: &MariaDb, display_name: &str) -> v1::Connection {
    db_connection(
        display_name,
        "mysql",
        vec![
            ("host", string("127.0.0.1")),
            ("port", number(db.port())),
            ("user", string(db.user())),
        ],
        db.password(),
    )
}

fn request(name: &str) -> v1::DiscoverMetadataRequest {
    v1::DiscoverMetadataRequest {
        name: name.into(),
        include_columns: true,
        ..Default::default()
    }
}

async fn discover(
    client: &mut Client,
    request: v1::DiscoverMetadataRequest,
) -> Result<v1::DiscoverMetadataResponse, tonic::Status> {
    client
        .discover_metadata(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn clear(
    client: &mut Client,
    target: v1::clear_metadata_cache_request::Target,
) -> Result<u64, tonic::Status> {
    client
        .clear_metadata_cache(v1::ClearMetadataCacheRequest {
            target: Some(target),
        })
        .await
        .map(|response| response.into_inner().cleared_entries)
}

fn clear_name(name: &str) -> v1::clear_metadata_cache_request::Target {
    v1::clear_metadata_cache_request::Target::Name(name.to_owned())
}

fn clear_parent(tenant: &str) -> v1::clear_metadata_cache_request::Target {
    v1::clear_metadata_cache_request::Target::Parent(format!("tenants/{tenant}"))
}

fn shape(response: &v1::DiscoverMetadataResponse) -> Shape {
    response
        .schemas
        .iter()
        .map(|schema| {
            (
                schema.name.clone(),
                schema
                    .tables
                    .iter()
                    .map(|table| {
                        (
                            table.name.clone(),
                            table.kind.clone(),
                            table.estimated_rows,
                            table
                                .columns
                                .iter()
                                .map(|c| {
                                    (c.name.clone(), c.data_type.clone(), c.nullable, c.position)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

fn tables(response: &v1::DiscoverMetadataResponse) -> Vec<String> {
    response
        .schemas
        .iter()
        .flat_map(|schema| {
            schema
                .tables
                .iter()
                .map(move |table| format!("{}.{}", schema.name, table.name))
        })
        .collect()
}

fn col(name: &str, data_type: &str, nullable: bool, position: u32) -> (String, String, bool, u32) {
    (name.to_owned(), data_type.to_owned(), nullable, position)
}

/// Connections PostgreSQL accepted from connvault's plugin so far.
fn pg_sessions(pg: &Postgres) -> usize {
    pg.log()
        .lines()
        .filter(|line| {
            line.contains("connection authorized")
                && line.contains(&format!("application_name={APP_NAME}"))
        })
        .count()
}

/// Connections MariaDB accepted so far, not counting the one asking.
fn maria_sessions(db: &MariaDb) -> u64 {
    let status = db.sql("SHOW GLOBAL STATUS LIKE 'Connections'");
    let count: u64 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    count - 1
}

/// Runs 20 discovers of one connection at once (clients connected first,
/// released together); returns the answers.
async fn twenty_at_once(server: &Server, name: &str) -> Vec<v1::DiscoverMetadataResponse> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut client = server.connections().await;
        let barrier = std::sync::Arc::clone(&barrier);
        let request = v1::DiscoverMetadataRequest {
            refresh: true,
            ..request(name)
        };
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            discover(&mut client, request).await
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalog_filters_limits_cache_and_invalidation() {
    let pg = Postgres::start(PgOptions::default());
    pg.psql("ALTER SYSTEM SET log_connections = on");
    pg.psql("SELECT pg_reload_conf()");
    pg.psql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.customers (id integer PRIMARY KEY, name text NOT NULL, email varchar(200)); \
         CREATE TABLE shop.orders (id bigint NOT NULL, customer_id integer, total numeric(10,2)); \
         CREATE VIEW shop.big_orders AS SELECT id, total FROM shop.orders WHERE total > 100; \
         INSERT INTO shop.customers VALUES (1, 'a', NULL), (2, 'b', NULL), (3, 'c', 'c@x'); \
         CREATE SCHEMA audit; CREATE TABLE audit.events (at timestamptz NOT NULL); \
         ANALYZE;",
    );
    let server = Server::start_with_plugins(&[PG_PLUGIN]);
    server.create_tenant("acme").await;
    server.create_tenant("globex").await;
    let mut client = server.connections().await;
    let name = create(&mut client, "acme", pg_connection(&pg, "Shop DB"))
        .await
        .unwrap()
        .name;

    // Exact catalog of one schema, columns included.
    let cold = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(!cold.from_cache && !cold.truncated);
    assert!(cold.fetched_time.is_some());
    assert_eq!(
        shape(&cold),
        vec![(
            "shop".to_owned(),
            vec![
                (
                    "big_orders".to_owned(),
                    "view".to_owned(),
                    None,
                    vec![
                        col("id", "bigint", true, 1),
                        col("total", "numeric(10,2)", true, 2)
                    ]
                ),
                (
                    "customers".to_owned(),
                    "table".to_owned(),
                    Some(3),
                    vec![
                        col("id", "integer", false, 1),
                        col("name", "text", false, 2),
                        col("email", "character varying(200)", true, 3)
                    ]
                ),
                (
                    "orders".to_owned(),
                    "table".to_owned(),
                    Some(0),
                    vec![
                        col("id", "bigint", false, 1),
                        col("customer_id", "integer", true, 2),
                        col("total", "numeric(10,2)", true, 3)
                    ]
                ),
            ]
        )]
    );

    // The same request again: from the cache, and no connection reaches PostgreSQL.
    let before = pg_sessions(&pg);
    assert!(before >= 1, "the cold discover connected");
    let cached = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(cached.from_cache);
    assert_eq!(shape(&cached), shape(&cold));
    assert_eq!(cached.fetched_time, cold.fetched_time);
    assert_eq!(
        pg_sessions(&pg),
        before,
        "a cached discover does not reach the database"
    );

    // Filters: schema and table globs; without columns.
    let all = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            include_columns: false,
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        tables(&all),
        [
            "audit.events",
            "shop.big_orders",
            "shop.customers",
            "shop.orders"
        ]
    );
    assert!(
        all.schemas
            .iter()
            .flat_map(|s| &s.tables)
            .all(|t| t.columns.is_empty())
    );
    let filtered = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "sh?p".into(),
            table_filter: "*orders".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert_eq!(tables(&filtered), ["shop.big_orders", "shop.orders"]);
    assert!(!filtered.truncated);

    // Limits cut the catalog and say so; the server caps what a request asks.
    let limited = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            max_tables: 2,
            max_columns_per_table: 1,
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(limited.truncated);
    assert_eq!(tables(&limited), ["audit.events", "shop.big_orders"]);
    assert!(
        limited
            .schemas
            .iter()
            .flat_map(|s| &s.tables)
            .all(|t| t.columns.len() == 1)
    );
    let one_schema = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            max_schemas: 1,
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(one_schema.truncated);
    assert_eq!(tables(&one_schema), ["audit.events"]);
    let huge = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            max_tables: u32::MAX,
            max_schemas: u32::MAX,
            max_columns_per_table: u32::MAX,
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(!huge.truncated);
    assert_eq!(tables(&huge).len(), 4);

    // A table created meanwhile stays hidden by the cache until it is cleared.
    pg.psql("CREATE TABLE shop.returns (id integer)");
    let stale = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(stale.from_cache);
    assert!(!tables(&stale).contains(&"shop.returns".to_owned()));
    // Another tenant's clear drops nothing of acme's.
    assert_eq!(clear(&mut client, clear_parent("globex")).await.unwrap(), 0);
    let cleared = clear(&mut client, clear_name(&name)).await.unwrap();
    assert_eq!(cleared, 6, "one entry per distinct filter/limit set");
    assert_eq!(clear(&mut client, clear_name(&name)).await.unwrap(), 0);
    let fresh = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(!fresh.from_cache);
    assert!(tables(&fresh).contains(&"shop.returns".to_owned()));

    // `refresh` bypasses the cache and refills it.
    let sessions = pg_sessions(&pg);
    let refreshed = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            refresh: true,
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(!refreshed.from_cache);
    assert_eq!(pg_sessions(&pg), sessions + 1);

    // An update of the config drops the cache; a label update keeps it.
    let labelled = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: name.clone(),
                labels: [("team".to_owned(), "data".to_owned())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["labels".into()],
            }),
            etag: String::new(),
        })
        .await;
    labelled.unwrap();
    let kept = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(kept.from_cache, "a label update keeps the catalog");
    client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: name.clone(),
                config: Some(Struct {
                    fields: [(
                        "connect_timeout".to_owned(),
                        Value {
                            kind: Some(Kind::NumberValue(5.0)),
                        },
                    )]
                    .into_iter()
                    .collect(),
                }),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["config.connect_timeout".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
    let after_update = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "shop".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(
        !after_update.from_cache,
        "a config update drops the catalog"
    );

    // The tenant-wide form drops every entry of the tenant.
    let second = create(&mut client, "acme", pg_connection(&pg, "Shop DB 2"))
        .await
        .unwrap()
        .name;
    discover(&mut client, request(&second)).await.unwrap();
    assert_eq!(clear(&mut client, clear_parent("acme")).await.unwrap(), 2);

    // Deleting the connection drops its cache with it.
    discover(&mut client, request(&second)).await.unwrap();
    client
        .delete_connection(v1::DeleteConnectionRequest {
            name: second.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(clear(&mut client, clear_parent("acme")).await.unwrap(), 0);
    let gone = discover(&mut client, request(&second)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_twenty_concurrent_discovers_make_one_plugin_call() {
    let pg = Postgres::start(PgOptions::default());
    pg.psql("ALTER SYSTEM SET log_connections = on");
    pg.psql("SELECT pg_reload_conf()");
    pg.psql("CREATE SCHEMA shop; CREATE TABLE shop.items (id integer)");
    let server = Server::start_with_plugins(&[PG_PLUGIN]);
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let name = create(&mut client, "acme", pg_connection(&pg, "Shop DB"))
        .await
        .unwrap()
        .name;
    let before = pg_sessions(&pg);
    let answers = twenty_at_once(&server, &name).await;
    assert_eq!(answers.len(), 20);
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "every caller got the one result"
    );
    assert!(tables(&answers[0]).contains(&"shop.items".to_owned()));
    assert_eq!(
        pg_sessions(&pg) - before,
        1,
        "20 concurrent discovers, one plugin call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_discover_or_clear_another_tenants_connection() {
    let pg = Postgres::start(PgOptions::default());
    pg.psql("CREATE TABLE public.t (id integer)");
    let server = Server::start_with_plugins(&[PG_PLUGIN]);
    server.create_tenant("acme").await;
    server.create_tenant("globex").await;
    let mut client = server.connections().await;
    let name = create(&mut client, "acme", pg_connection(&pg, "Shop DB"))
        .await
        .unwrap()
        .name;
    discover(&mut client, request(&name)).await.unwrap();
    let id = name.rsplit('/').next().unwrap();
    let foreign = format!("tenants/globex/connections/{id}");

    let error = discover(&mut client, request(&foreign)).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error:?}");
    let error = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            refresh: true,
            ..request(&foreign)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = clear(&mut client, clear_name(&foreign)).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(clear(&mut client, clear_parent("globex")).await.unwrap(), 0);
    let error = clear(&mut client, clear_parent("nobody"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    // acme's entry survived all of that.
    assert!(
        discover(&mut client, request(&name))
            .await
            .unwrap()
            .from_cache
    );

    let error = discover(&mut client, request("tenants/acme/oops"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = client
        .clear_metadata_cache(v1::ClearMetadataCacheRequest { target: None })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discover_that_times_out_is_deadline_exceeded_and_caches_nothing() {
    // Accepts TCP connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            if held.len() > 8 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let server = Server::start_with_plugins(&[PG_PLUGIN]);
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let silent = db_connection(
        "Silent",
        "postgresql",
        vec![
            ("host", string("127.0.0.1")),
            ("port", number(port)),
            ("user", string("nobody")),
        ],
        "pw",
    );
    let name = create(&mut client, "acme", silent).await.unwrap().name;
    let started = Instant::now();
    let error = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            timeout_ms: 500,
            ..request(&name)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    // The 500 ms deadline was honoured: without it the call would wait out
    // the 30 s default (the silent server holds its connections that long).
    // Half of that leaves a loaded machine room for start-up and scheduling.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(
        clear(&mut client, clear_name(&name)).await.unwrap(),
        0,
        "nothing was cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_catalog_filters_limits_cache_and_single_flight() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.sql(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.customers (id int PRIMARY KEY, name varchar(100) NOT NULL, email varchar(200)); \
         CREATE TABLE shop.orders (id bigint NOT NULL, customer_id int, total decimal(10,2)); \
         CREATE VIEW shop.big_orders AS SELECT id, total FROM shop.orders WHERE total > 100; \
         INSERT INTO shop.customers VALUES (1, 'a', NULL), (2, 'b', NULL), (3, 'c', 'c@x'); \
         ANALYZE TABLE shop.customers, shop.orders;",
    );
    let server = Server::start_with_plugins(&[MYSQL_PLUGIN]);
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let name = create(&mut client, "acme", maria_connection(&db, "Shop MariaDB"))
        .await
        .unwrap()
        .name;

    let cold = discover(&mut client, request(&name)).await.unwrap();
    assert!(!cold.from_cache && !cold.truncated);
    assert_eq!(
        shape(&cold),
        vec![(
            "shop".to_owned(),
            vec![
                (
                    "big_orders".to_owned(),
                    "view".to_owned(),
                    None,
                    vec![
                        col("id", "bigint(20)", false, 1),
                        col("total", "decimal(10,2)", true, 2)
                    ]
                ),
                (
                    "customers".to_owned(),
                    "table".to_owned(),
                    Some(3),
                    vec![
                        col("id", "int(11)", false, 1),
                        col("name", "varchar(100)", false, 2),
                        col("email", "varchar(200)", true, 3)
                    ]
                ),
                (
                    "orders".to_owned(),
                    "table".to_owned(),
                    Some(0),
                    vec![
                        col("id", "bigint(20)", false, 1),
                        col("customer_id", "int(11)", true, 2),
                        col("total", "decimal(10,2)", true, 3)
                    ]
                ),
            ]
        )]
    );

    // Cached: no connection reaches MariaDB.
    let before = maria_sessions(&db);
    let cached = discover(&mut client, request(&name)).await.unwrap();
    assert!(cached.from_cache);
    assert_eq!(shape(&cached), shape(&cold));
    assert_eq!(
        maria_sessions(&db) - before,
        1,
        "only our own status query connected"
    );

    // Filters and limits.
    let filtered = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            schema_filter: "sh*".into(),
            table_filter: "*orders".into(),
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert_eq!(tables(&filtered), ["shop.big_orders", "shop.orders"]);
    let limited = discover(
        &mut client,
        v1::DiscoverMetadataRequest {
            max_tables: 1,
            max_columns_per_table: 1,
            ..request(&name)
        },
    )
    .await
    .unwrap();
    assert!(limited.truncated);
    assert_eq!(tables(&limited), ["shop.big_orders"]);
    assert_eq!(limited.schemas[0].tables[0].columns.len(), 1);

    // Clear, then a fresh read sees a table created meanwhile.
    db.sql("CREATE TABLE shop.returns (id int)");
    assert!(
        !tables(&discover(&mut client, request(&name)).await.unwrap())
            .contains(&"shop.returns".to_owned())
    );
    assert_eq!(clear(&mut client, clear_name(&name)).await.unwrap(), 3);
    let fresh = discover(&mut client, request(&name)).await.unwrap();
    assert!(!fresh.from_cache);
    assert!(tables(&fresh).contains(&"shop.returns".to_owned()));

    // An update of the secrets drops the cache.
    client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: name.clone(),
                secrets: [("password".to_owned(), db.password().to_owned())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["secrets.password".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert!(
        !discover(&mut client, request(&name))
            .await
            .unwrap()
            .from_cache
    );

    // What one read costs MariaDB (the plugin probes TCP before it logs in;
    // the counter counts both, and our own status query).
    let before = maria_sessions(&db);
    let refresh = v1::DiscoverMetadataRequest {
        refresh: true,
        ..request(&name)
    };
    assert!(!discover(&mut client, refresh).await.unwrap().from_cache);
    let per_read = maria_sessions(&db) - before - 1;
    assert!(per_read >= 1);

    // 20 concurrent discovers share reads. A MariaDB read takes a few
    // milliseconds, so on a loaded machine a caller the barrier releases late
    // can start a second flight after the first finished; what must hold is
    // that the 20 calls cost a handful of reads, not 20. (The PostgreSQL
    // variant, whose read is slower, asserts exactly one.)
    let before = maria_sessions(&db);
    let answers = twenty_at_once(&server, &name).await;
    let catalog =
        |answer: &v1::DiscoverMetadataResponse| (answer.schemas.clone(), answer.truncated);
    assert!(answers.iter().all(|a| catalog(a) == catalog(&answers[0])));
    let reads = (maria_sessions(&db) - before - 1) / per_read;
    assert!(
        (1..=3).contains(&reads),
        "20 concurrent discovers made {reads} reads"
    );
}
