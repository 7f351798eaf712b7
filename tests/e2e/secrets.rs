//! Secrets at rest and in flight, restarts, master keys, corruption, tenant boundaries.

use connvault::pb::v1;
use tonic::Code;

use crate::support::{Options, Server, config, connection, create};

const CANARY: &str = "canary-Pw-7f3e91c2";

fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[tokio::test]
async fn a_canary_password_never_leaves_the_seal() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let mut responses: Vec<String> = Vec::new();

    let created = create(&mut client, "acme", connection("Canary DB", CANARY))
        .await
        .unwrap();
    responses.push(format!("{created:?}"));
    responses.push(format!(
        "{:?}",
        client
            .get_connection(v1::GetConnectionRequest {
                name: created.name.clone()
            })
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        client
            .list_connections(v1::ListConnectionsRequest {
                parent: "tenants/acme".into(),
                ..Default::default()
            })
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        client
            .update_connection(v1::UpdateConnectionRequest {
                connection: Some(v1::Connection {
                    name: created.name.clone(),
                    labels: [("a".to_owned(), "b".to_owned())].into_iter().collect(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["labels".into()]
                }),
                etag: String::new(),
            })
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        client
            .test_connection(v1::TestConnectionRequest {
                target: Some(v1::test_connection_request::Target::Name(
                    created.name.clone()
                )),
                parent: String::new(),
                timeout_ms: 2000,
            })
            .await
            .unwrap()
    ));
    // Errors: a bad config alongside the canary, a duplicate name, a redirect without secrets.
    let mut bad = connection("Canary DB 2", CANARY);
    bad.config = Some(config(&[("port", "99999")]));
    responses.push(format!(
        "{:?}",
        create(&mut client, "acme", bad).await.unwrap_err()
    ));
    responses.push(format!(
        "{:?}",
        create(&mut client, "acme", connection("Canary DB", CANARY))
            .await
            .unwrap_err()
    ));
    let mut secret_in_config = connection("Canary DB 3", CANARY);
    secret_in_config.config = Some(config(&[("host", "h"), ("password", CANARY)]));
    responses.push(format!(
        "{:?}",
        create(&mut client, "acme", secret_in_config)
            .await
            .unwrap_err()
    ));

    for (index, response) in responses.iter().enumerate() {
        assert!(
            !response.contains(CANARY),
            "response {index} carries the canary: {response}"
        );
    }

    server_files_lack_canary(&server);
}

fn server_files_lack_canary(server: &Server) {
    let log = server.log_text();
    assert!(log.contains("DEBUG"), "the server logged at debug level");
    assert!(!log.contains(CANARY), "the log carries the canary");
    let mut files = Vec::new();
    walk(&server.data_dir(), &mut files);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(CANARY.len())
                .any(|window| window == CANARY.as_bytes()),
            "{} holds the canary in plain text",
            file.display()
        );
    }
}

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "HxwdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

#[tokio::test]
async fn records_survive_a_restart_and_a_wrong_master_key_refuses_to_start() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY_A.into()),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let first = create(&mut client, "acme", connection("First", "pw-1"))
        .await
        .unwrap();
    let second = create(&mut client, "acme", connection("Second", "pw-2"))
        .await
        .unwrap();
    server.restart();
    let mut client = server.connections().await;
    for before in [&first, &second] {
        let after = client
            .get_connection(v1::GetConnectionRequest {
                name: before.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&after, before, "identical after a restart");
    }

    server.stop();
    let mut wrong = Server::start_with(Options {
        master_key: Some(KEY_A.into()),
        ..Options::default()
    });
    wrong.stop();
    // Point the second server at the first one's data with the wrong key.
    let data = server.data_dir();
    let wrong_dir = wrong.data_dir();
    std::fs::remove_dir_all(&wrong_dir).unwrap();
    copy_dir(&data, &wrong_dir);
    wrong.set_master_key(KEY_B);
    let error = wrong.spawn().unwrap_err();
    assert!(error.contains("master key does not match"), "{error}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_flipped_byte_is_data_loss_for_that_record_only() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY_A.into()),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let damaged = create(&mut client, "acme", connection("Damaged", "pw-1"))
        .await
        .unwrap();
    let intact = create(&mut client, "acme", connection("Intact", "pw-2"))
        .await
        .unwrap();
    server.stop();
    {
        use connvault::record_format;
        use connvault_store::ConnectionStore as _;
        let store = connvault_store::sled::SledStore::open(
            server.data_dir().join("store"),
            Default::default(),
        )
        .unwrap();
        let id = damaged.name.rsplit('/').next().unwrap();
        let mut record = store.get_connection("acme", id).await.unwrap();
        let mut stored = record_format::decode_connection(&record.value).unwrap();
        let middle = stored.sealed_secrets.len() / 2;
        stored.sealed_secrets[middle] ^= 0x01;
        record.value = record_format::encode_connection(&stored.connection, &stored.sealed_secrets);
        store
            .update_connection(&record, record.revision, None)
            .await
            .unwrap();
    }
    server.spawn().unwrap();
    let mut client = server.connections().await;
    let error = client
        .get_connection(v1::GetConnectionRequest {
            name: damaged.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DataLoss, "{error:?}");
    client
        .get_connection(v1::GetConnectionRequest {
            name: intact.name.clone(),
        })
        .await
        .expect("the other record still reads");
    let test = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(damaged.name)),
            parent: String::new(),
            timeout_ms: 1000,
        })
        .await
        .unwrap_err();
    assert_eq!(test.code(), Code::DataLoss);
}

#[tokio::test]
async fn tenant_a_never_sees_tenant_ab() {
    let server = Server::start();
    server.create_tenant("a").await;
    server.create_tenant("ab").await;
    let mut client = server.connections().await;
    let in_ab = create(&mut client, "ab", connection("Belongs to ab", "pw"))
        .await
        .unwrap();
    create(&mut client, "a", connection("Belongs to a", "pw"))
        .await
        .unwrap();
    let listed = client
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .connections
        .iter()
        .map(|c| c.display_name.as_str())
        .collect();
    assert_eq!(names, ["Belongs to a"]);
    let id = in_ab.name.rsplit('/').next().unwrap();
    let through_a = client
        .get_connection(v1::GetConnectionRequest {
            name: format!("tenants/a/connections/{id}"),
        })
        .await
        .unwrap_err();
    assert_eq!(through_a.code(), Code::NotFound);
    let delete_through_a = client
        .delete_connection(v1::DeleteConnectionRequest {
            name: format!("tenants/a/connections/{id}"),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(delete_through_a.code(), Code::NotFound);
    let batch = client
        .batch_delete_connections(v1::BatchDeleteConnectionsRequest {
            parent: "tenants/a".into(),
            names: vec![in_ab.name.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(batch.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let mut server = Server::start();
    let second = server.spawn_second().unwrap_err();
    assert!(second.contains("another connvault"), "{second}");
    server.stop();
}
