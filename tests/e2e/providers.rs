//! The first-party providers through the server: listed, created, tested,
//! discovered and resolved against throwaway database servers.

use connvault::pb::v1;
use connvault_testkit::servers::{MariaDb, Postgres, Redis};

use crate::support::{Server, config, create};

fn secret(password: &str) -> std::collections::HashMap<String, String> {
    [("password".to_owned(), password.to_owned())]
        .into_iter()
        .collect()
}

#[tokio::test]
async fn each_provider_creates_tests_discovers_and_resolves() {
    let pg = Postgres::start(Default::default());
    pg.psql("CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)");
    let maria = MariaDb::start(Default::default());
    maria.sql("CREATE DATABASE shop; CREATE TABLE shop.invoices (id INT PRIMARY KEY, paid BOOL)");
    let redis = Redis::start(Default::default());
    redis.cli(0, &["SET", "greeting", "hello"]);

    let server = Server::start_with_plugins(&[
        (
            "connvault-plugin-postgres",
            "connvault_plugin_postgres",
            "postgres",
        ),
        ("connvault-plugin-mysql", "connvault_plugin_mysql", "mysql"),
        ("connvault-plugin-redis", "connvault_plugin_redis", "redis"),
        ("connvault-plugin-jdbc", "connvault_plugin_jdbc", "jdbc"),
    ]);
    let sources = server
        .data_sources()
        .await
        .list_data_sources(v1::ListDataSourcesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .data_sources;
    let ids: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    for id in ["postgresql", "mysql", "redis", "jdbc"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
        let source = sources.iter().find(|s| s.id == id).unwrap();
        assert!(!source.fields.is_empty(), "{id} has a schema");
    }

    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let cases = [
        (
            "postgresql",
            "RDS_POSTGRES",
            config(&[
                ("host", "127.0.0.1"),
                ("port", &pg.port().to_string()),
                ("user", pg.user()),
            ]),
            pg.password().to_owned(),
            Some("orders"),
        ),
        (
            "mysql",
            "MARIADB",
            config(&[
                ("host", "127.0.0.1"),
                ("port", &maria.port().to_string()),
                ("user", maria.user()),
            ]),
            maria.password().to_owned(),
            Some("invoices"),
        ),
        (
            "redis",
            "redis",
            config(&[("host", "127.0.0.1"), ("port", &redis.port().to_string())]),
            redis.password().to_owned(),
            None,
        ),
        (
            "jdbc",
            "jdbc",
            config(&[
                (
                    "jdbc_url",
                    &format!("jdbc:postgresql://127.0.0.1:{}/postgres", pg.port()),
                ),
                ("user", pg.user()),
            ]),
            pg.password().to_owned(),
            None,
        ),
    ];
    for (id, alias, settings, password, seeded_table) in cases {
        let created = create(
            &mut client,
            "acme",
            v1::Connection {
                display_name: format!("{id} connection"),
                data_source: alias.into(),
                config: Some(settings),
                secrets: secret(&password),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{id}: create failed: {error:?}"));
        assert_eq!(created.data_source, id);

        let tested = client
            .test_connection(v1::TestConnectionRequest {
                target: Some(v1::test_connection_request::Target::Name(
                    created.name.clone(),
                )),
                parent: String::new(),
                timeout_ms: 10_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(tested.success, "{id}: {tested:?}");
        eprintln!(
            "{id}: a successful test took {} us through the server",
            tested.duration_us
        );

        if let Some(table) = seeded_table {
            let catalog = client
                .discover_metadata(v1::DiscoverMetadataRequest {
                    name: created.name.clone(),
                    include_columns: true,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|error| panic!("{id}: discover failed: {error:?}"))
                .into_inner();
            let tables: Vec<&str> = catalog
                .schemas
                .iter()
                .flat_map(|s| s.tables.iter().map(|t| t.name.as_str()))
                .collect();
            assert!(tables.contains(&table), "{id}: {table} not in {tables:?}");
        }
        if id == "redis" {
            let catalog = client
                .discover_metadata(v1::DiscoverMetadataRequest {
                    name: created.name.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!catalog.schemas.is_empty(), "redis: a keyspace summary");
        }

        let resolved = client
            .resolve_connection(v1::ResolveConnectionRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let rendered = resolved.rendered.unwrap_or_default();
        let text = format!("{} {}", rendered.uri, rendered.jdbc_url);
        assert!(!text.trim().is_empty(), "{id}: nothing rendered");
        assert_eq!(resolved.secrets["password"], password, "{id}");
    }
}

/// SQL Server, MongoDB and Oracle: no such server runs here, so this proves
/// what the server does with their plugins without one: they load, answer to
/// their aliases, validate, report a test stage by stage (a closed port is
/// UNREACHABLE at the connect stage) and render through ResolveConnection.
#[tokio::test]
async fn the_engines_without_a_local_server_are_served_tested_and_rendered() {
    let server = Server::start_with_plugins(&[
        (
            "connvault-plugin-sqlserver",
            "connvault_plugin_sqlserver",
            "sqlserver",
        ),
        (
            "connvault-plugin-mongodb",
            "connvault_plugin_mongodb",
            "mongodb",
        ),
        (
            "connvault-plugin-oracle",
            "connvault_plugin_oracle",
            "oracle",
        ),
    ]);
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let closed = connvault_testkit::provider::closed_port().to_string();
    let cases = [
        (
            "sqlserver",
            "SQL_SERVER",
            config(&[("host", "127.0.0.1"), ("port", &closed), ("user", "app")]),
            "jdbc:sqlserver://127.0.0.1:",
        ),
        (
            "mongodb",
            "DOCUMENTDB",
            config(&[("host", "127.0.0.1"), ("port", &closed), ("user", "app")]),
            "mongodb://app:",
        ),
        (
            "oracle",
            "ORACLE",
            config(&[
                ("host", "127.0.0.1"),
                ("port", &closed),
                ("service_name", "sales"),
                ("user", "app"),
            ]),
            "jdbc:oracle:thin:@//127.0.0.1:",
        ),
    ];
    for (id, alias, settings, rendered_prefix) in cases {
        let created = create(
            &mut client,
            "acme",
            v1::Connection {
                display_name: format!("{id} connection"),
                data_source: alias.into(),
                config: Some(settings),
                secrets: secret("s3cret;pw"),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{id}: create failed: {error:?}"));
        assert_eq!(created.data_source, id);

        let tested = client
            .test_connection(v1::TestConnectionRequest {
                target: Some(v1::test_connection_request::Target::Name(
                    created.name.clone(),
                )),
                parent: String::new(),
                timeout_ms: 5_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!tested.success, "{id}: {tested:?}");
        assert_eq!(
            tested.error_category,
            v1::ErrorCategory::Unreachable as i32,
            "{id}: {tested:?}"
        );
        assert!(!format!("{tested:?}").contains("s3cret"), "{id}");

        let resolved = client
            .resolve_connection(v1::ResolveConnectionRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let rendered = resolved.rendered.unwrap_or_default();
        let text = format!("{} {}", rendered.uri, rendered.jdbc_url);
        assert!(text.contains(rendered_prefix), "{id}: {text}");
        assert_eq!(resolved.secrets["password"], "s3cret;pw", "{id}");
    }
}
