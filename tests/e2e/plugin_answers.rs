//! The server holds a plugin's validate answer to the plugin's own schema: a
//! create through a plugin answering a config its schema refuses stores nothing.

use connvault::pb::v1;
use tonic::Code;

use crate::support::{Server, connection, create};

/// The fixture connection, with the fixture asked to answer a bad config.
fn answered_badly(display_name: &str, password: &str) -> v1::Connection {
    let mut connection = connection(display_name, password);
    if let Some(config) = connection.config.as_mut() {
        config.fields.insert(
            "mode".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("bad_answer".into())),
            },
        );
    }
    connection
}

#[tokio::test]
async fn a_create_through_a_plugin_answering_a_bad_config_stores_nothing() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;

    let status = create(
        &mut client,
        "acme",
        answered_badly("Orders DB", "pw-never-seen"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    for expected in [
        "plugin connvault-fixture-testplugin",
        "data source testdb",
        "config.host: is required but missing from the answer",
        "config.port: is not an integer",
        "config.undeclared: is not a field of the data source",
        "nothing was stored",
    ] {
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    assert!(
        !message.contains("pw-never-seen") && !message.contains("db.example.com"),
        "{message}"
    );

    // A dry run is refused the same way.
    let dry = client
        .create_connection(v1::CreateConnectionRequest {
            parent: "tenants/acme".into(),
            connection: Some(answered_badly("Orders DB", "pw-never-seen")),
            validate_only: true,
        })
        .await
        .unwrap_err();
    assert_eq!(dry.code(), Code::FailedPrecondition);

    let listed = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.connections.is_empty(), "{listed:?}");

    // The name is still free: a well-answered create under it succeeds.
    let created = create(&mut client, "acme", connection("Orders DB", "pw-1"))
        .await
        .unwrap();
    assert_eq!(created.display_name, "Orders DB");

    let log = server.log_text();
    assert!(
        log.contains("plugin answered validate with a config its own schema refuses"),
        "{log}"
    );
    assert!(!log.contains("pw-never-seen"));
}
