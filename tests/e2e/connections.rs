//! ConnectionService end to end, including each error the API promises.

use connvault::pb::v1;
use prost_types::FieldMask;
use tonic::Code;

use crate::support::{Server, config, connection, create, violations};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn create_get_and_the_create_errors() {
    let server = Server::start();
    server.create_tenant("acme").await;
    server.create_tenant("globex").await;
    let mut client = server.connections().await;

    let created = create(&mut client, "acme", connection("Orders DB", "pw-1"))
        .await
        .unwrap();
    assert!(created.name.starts_with("tenants/acme/connections/"));
    assert_eq!(created.data_source, "testdb", "aliases resolve to the id");
    assert_eq!(created.product, "reporting", "product is stored lowercase");
    assert_eq!(created.secret_fields, ["password"]);
    assert!(created.secrets.is_empty());
    let stored_config = created.config.clone().unwrap();
    assert_eq!(
        stored_config.fields["port"].kind,
        Some(prost_types::value::Kind::NumberValue(5432.0)),
        "defaults are applied"
    );
    let fetched = client
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);

    let dry = client
        .create_connection(v1::CreateConnectionRequest {
            parent: "tenants/acme".into(),
            connection: Some(connection("Dry Run", "pw")),
            validate_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dry.name.is_empty());
    let listed = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.connections.len(), 1, "validate_only stores nothing");

    let duplicate = create(&mut client, "acme", connection("orders db", "pw"))
        .await
        .unwrap_err();
    assert_eq!(
        duplicate.code(),
        Code::AlreadyExists,
        "names are unique case-insensitively"
    );
    create(&mut client, "globex", connection("Orders DB", "pw"))
        .await
        .expect("same name, other tenant");

    let mut bad = connection("ab", "pw");
    bad.labels.insert(String::new(), "x".into());
    bad.product = "no spaces".into();
    let error = create(&mut client, "acme", bad).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let fields = violations(&error);
    for expected in [
        "connection.display_name",
        "connection.labels.",
        "connection.product",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} not in {fields:?}"
        );
    }

    let mut unknown = connection("Unknown kind", "pw");
    unknown.data_source = "oracle_9i".into();
    let error = create(&mut client, "acme", unknown).await.unwrap_err();
    assert_eq!(violations(&error), ["connection.data_source"]);

    let mut wrong = connection("Bad config", "pw");
    wrong.config = Some(config(&[
        ("port", "70000"),
        ("colour", "red"),
        ("password", "in-config"),
    ]));
    let error = create(&mut client, "acme", wrong).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let mut fields = violations(&error);
    fields.sort();
    assert_eq!(
        fields,
        [
            "connection.config.colour",
            "connection.config.host",
            "connection.config.password",
            "connection.config.port"
        ],
        "every bad field is reported at once"
    );

    let missing_tenant = create(&mut client, "nobody", connection("Orders DB", "pw"))
        .await
        .unwrap_err();
    assert_eq!(missing_tenant.code(), Code::NotFound);
    let bad_parent = create(&mut client, "a/b", connection("Orders DB", "pw"))
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_parent), ["parent"]);

    let not_found = client
        .get_connection(v1::GetConnectionRequest {
            name: format!("tenants/acme/connections/{}", uuid::Uuid::now_v7()),
        })
        .await
        .unwrap_err();
    assert_eq!(not_found.code(), Code::NotFound);
    let malformed = client
        .get_connection(v1::GetConnectionRequest {
            name: "tenants/acme/connections/42".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&malformed), ["name"]);
}

#[tokio::test]
async fn list_pages_filters_and_orders() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    for (index, name) in ["Echo", "alpha", "Delta", "charlie", "Bravo"]
        .iter()
        .enumerate()
    {
        let mut c = connection(name, "pw");
        if index % 2 == 0 {
            c.labels.insert("tier".into(), "gold".into());
            c.product = "billing".into();
        }
        create(&mut client, "acme", c).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_connections(v1::ListConnectionsRequest {
                parent: "tenants/acme".into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.connections.len() <= 2);
        seen.extend(page.connections.into_iter().map(|c| c.display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        ["Echo", "alpha", "Delta", "charlie", "Bravo"],
        "creation order"
    );

    let gold = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            labels: [("tier".to_owned(), "gold".to_owned())]
                .into_iter()
                .collect(),
            product: "BILLING".into(),
            data_source: "test_db".into(),
            order_by: v1::ConnectionOrder::DisplayName as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = gold
        .connections
        .iter()
        .map(|c| c.display_name.as_str())
        .collect();
    assert_eq!(names, ["Bravo", "Delta", "Echo"]);

    let sorted = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            order_by: v1::ConnectionOrder::DisplayName as i32,
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = sorted
        .connections
        .iter()
        .map(|c| c.display_name.as_str())
        .collect();
    assert_eq!(names, ["alpha", "Bravo", "charlie"]);
    let rest = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            order_by: v1::ConnectionOrder::DisplayName as i32,
            page_size: 3,
            page_token: sorted.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = rest
        .connections
        .iter()
        .map(|c| c.display_name.as_str())
        .collect();
    assert_eq!(names, ["Delta", "Echo"]);

    let mismatched = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            page_token: sorted.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&mismatched),
        ["page_token"],
        "a token only continues its own query"
    );
    let negative = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&negative), ["page_size"]);
}

#[tokio::test]
async fn update_delete_and_batch_delete() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let created = create(&mut client, "acme", connection("Orders DB", "pw-1"))
        .await
        .unwrap();

    let renamed = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: created.name.clone(),
                display_name: "Orders (primary)".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            etag: created.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.display_name, "Orders (primary)");
    assert_eq!(
        renamed.secret_fields,
        ["password"],
        "secrets outside the mask are kept"
    );
    assert_eq!(renamed.config, created.config);
    assert_ne!(renamed.etag, created.etag);

    let stale = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: created.name.clone(),
                display_name: "Again".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            etag: created.etag.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    let no_mask = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: created.name.clone(),
                ..Default::default()
            }),
            update_mask: None,
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&no_mask), ["update_mask"]);

    let redirect = v1::Connection {
        name: created.name.clone(),
        config: Some(config(&[("host", "attacker.example")])),
        ..Default::default()
    };
    let refused = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(redirect.clone()),
            update_mask: mask(&["config.host"]),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("secrets.password"));

    let moved = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                secrets: [("password".to_owned(), "pw-2".to_owned())]
                    .into_iter()
                    .collect(),
                ..redirect
            }),
            update_mask: mask(&["config.host", "secrets.password"]),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        moved.config.unwrap().fields["host"].kind,
        Some(prost_types::value::Kind::StringValue(
            "attacker.example".into()
        ))
    );

    let bad = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: created.name.clone(),
                config: Some(config(&[("port", "0")])),
                ..Default::default()
            }),
            update_mask: mask(&["config.port", "colour"]),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad), ["update_mask"]);

    let current = client
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let stale_delete = client
        .delete_connection(v1::DeleteConnectionRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale_delete.code(), Code::Aborted);
    client
        .delete_connection(v1::DeleteConnectionRequest {
            name: created.name.clone(),
            etag: current.etag,
        })
        .await
        .unwrap();
    let gone = client
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = client
        .delete_connection(v1::DeleteConnectionRequest {
            name: created.name,
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);

    let mut names = Vec::new();
    for index in 0..3 {
        names.push(
            create(
                &mut client,
                "acme",
                connection(&format!("Batch {index}"), "pw"),
            )
            .await
            .unwrap()
            .name,
        );
    }
    let with_missing: Vec<String> = names
        .iter()
        .cloned()
        .chain([format!("tenants/acme/connections/{}", uuid::Uuid::now_v7())])
        .collect();
    let refused = client
        .batch_delete_connections(v1::BatchDeleteConnectionsRequest {
            parent: "tenants/acme".into(),
            names: with_missing,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let count =
        |client: &mut connvault::pb::v1::connection_service_client::ConnectionServiceClient<_>| {
            let mut client = client.clone();
            async move {
                client
                    .list_connections(v1::ListConnectionsRequest {
                        parent: "tenants/acme".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .connections
                    .len()
            }
        };
    assert_eq!(count(&mut client).await, 3, "all or nothing");
    client
        .batch_delete_connections(v1::BatchDeleteConnectionsRequest {
            parent: "tenants/acme".into(),
            names,
        })
        .await
        .unwrap();
    assert_eq!(count(&mut client).await, 0);
}

#[tokio::test]
async fn test_connection_saved_and_inline() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut c = connection("Reachable", "pw");
    c.config = Some(config(&[("host", "127.0.0.1"), ("port", &port)]));
    let created = create(&mut client, "acme", c.clone()).await.unwrap();

    let result = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(
                created.name.clone(),
            )),
            parent: String::new(),
            timeout_ms: 3000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(result.success, "{result:?}");
    assert_eq!(result.error_category(), v1::ErrorCategory::None);
    assert_eq!(result.stages[0].stage(), v1::TestStage::Resolve);
    assert_eq!(result.stages[1].stage(), v1::TestStage::Connect);
    assert_eq!(result.server_version, "fixture 1.0");
    let saved = client
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(saved.last_test.unwrap().success, "the result is recorded");

    drop(listener);
    let inline = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Connection(c)),
            parent: "tenants/acme".into(),
            timeout_ms: 3000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!inline.success);
    assert_eq!(inline.error_category(), v1::ErrorCategory::Unreachable);

    let too_long = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(created.name)),
            parent: String::new(),
            timeout_ms: 600_000,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&too_long), ["timeout_ms"]);
}

#[tokio::test]
async fn data_sources_are_listed_and_found_by_alias() {
    let server = Server::start();
    let mut client = server.data_sources().await;
    let all = client
        .list_data_sources(v1::ListDataSourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.data_sources.len(), 1);
    let source = &all.data_sources[0];
    assert_eq!(source.name, "dataSources/testdb");
    assert_eq!(source.plugin, "connvault-fixture-testplugin");
    assert!(
        source
            .fields
            .iter()
            .any(|f| f.name == "password" && f.secret)
    );
    for alias in [
        "dataSources/TESTDB",
        "dataSources/test_db",
        "dataSources/TeStDb",
    ] {
        let found = client
            .get_data_source(v1::GetDataSourceRequest { name: alias.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.id, "testdb");
    }
    let missing = client
        .get_data_source(v1::GetDataSourceRequest {
            name: "dataSources/oracle".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn racing_updates_without_an_etag_all_apply() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let created = create(&mut client, "acme", connection("Orders DB", "pw-1"))
        .await
        .unwrap();
    // 16 updates of the same connection at once, without an etag: each asks
    // for "this patch on whatever is there", so each must be applied (the
    // server re-applies a patch that lost the compare-and-swap) and none may
    // fail ABORTED.
    let mut updates = tokio::task::JoinSet::new();
    for i in 0..16 {
        let mut client = client.clone();
        let name = created.name.clone();
        updates.spawn(async move {
            client
                .update_connection(v1::UpdateConnectionRequest {
                    connection: Some(v1::Connection {
                        name,
                        labels: [("writer".to_owned(), format!("{i}"))].into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["labels"]),
                    etag: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(|status| status.code())
        });
    }
    let results = updates.join_all().await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let fetched = client
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let writer: u32 = fetched.labels["writer"].parse().unwrap();
    assert!(writer < 16, "the last patch applied wins");
}
