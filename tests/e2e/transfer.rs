//! Moving a tenant between installations: `connvault export-tenant` from one
//! server, `connvault import-tenant` into another with a different master
//! key; every secret resolves there, ids and names kept; a wrong age
//! identity is refused and writes nothing; conflicts refused or skipped.

use std::path::Path;
use std::process::{Command, Output};

use age::secrecy::ExposeSecret as _;
use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::admin_service_client::AdminServiceClient;
use tonic::Code;

use crate::backup::text;
use crate::support::{Options, Server, connection, create, operator_token, token};

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn keyed(key: &str) -> Server {
    Server::start_with(Options {
        master_key: Some(key.into()),
        ..Options::default()
    })
}

fn cli(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(args)
        .args(["--addr", &server.addr])
        .env("CONNVAULT_TOKEN", operator_token())
        .env_remove("CONNVAULT_TOKEN_FILE")
        .env_remove("CONNVAULT_ADDR")
        .output()
        .unwrap()
}

fn export(server: &Server, tenant: &str, key_args: &[&str], out: &Path) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec!["export-tenant", "--tenant", tenant, "--out", out];
    args.extend_from_slice(key_args);
    cli(server, &args)
}

fn import(server: &Server, from: &Path, key_args: &[&str]) -> Output {
    let mut args = vec!["import-tenant", "--from", from.to_str().unwrap()];
    args.extend_from_slice(key_args);
    cli(server, &args)
}

async fn resolve(
    server: &Server,
    name: &str,
) -> Result<v1::ResolveConnectionResponse, tonic::Status> {
    server
        .connections()
        .await
        .resolve_connection(v1::ResolveConnectionRequest { name: name.into() })
        .await
        .map(tonic::Response::into_inner)
}

async fn tenant_exists(server: &Server, tenant: &str) -> bool {
    server
        .tenants()
        .await
        .get_tenant(v1::GetTenantRequest {
            name: format!("tenants/{tenant}"),
        })
        .await
        .is_ok()
}

#[tokio::test]
async fn a_tenant_moves_to_another_installation_with_every_secret() {
    let source = keyed(KEY_A);
    let target = keyed(KEY_B);
    source.create_tenant("acme").await;
    let mut client = source.connections().await;
    let mut created = Vec::new();
    for n in 0..25 {
        let password = format!("secret-{n}-ä€");
        let made = create(
            &mut client,
            "acme",
            connection(&format!("Orders {n}"), &password),
        )
        .await
        .unwrap();
        created.push((made, password));
    }
    let work = tempfile::tempdir().unwrap();
    let identity = age::x25519::Identity::generate();
    let identity_file = work.path().join("key.txt");
    std::fs::write(
        &identity_file,
        format!(
            "# created: test\n{}\n",
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    let recipient = identity.to_public().to_string();
    let file = work.path().join("acme.age");
    let output = export(&source, "acme", &["--recipient", &recipient], &file);
    assert!(output.status.success(), "{}", text(&output));
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    for (_, password) in &created {
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "a secret is in the clear in the export"
        );
    }

    // A wrong identity opens nothing and writes nothing.
    let wrong = work.path().join("wrong.txt");
    let other = age::x25519::Identity::generate();
    std::fs::write(&wrong, other.to_string().expose_secret()).unwrap();
    let output = import(
        &target,
        &file,
        &["--identity-file", wrong.to_str().unwrap()],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("does not open this export"),
        "{}",
        text(&output)
    );
    assert!(!tenant_exists(&target, "acme").await);

    let output = import(
        &target,
        &file,
        &["--identity-file", identity_file.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("25 connection(s) imported, 0 skipped"),
        "{}",
        text(&output)
    );
    for (made, password) in &created {
        let resolved = resolve(&target, &made.name).await.unwrap();
        assert_eq!(
            resolved.secrets.get("password"),
            Some(password),
            "{}",
            made.name
        );
        let got = target
            .connections()
            .await
            .get_connection(v1::GetConnectionRequest {
                name: made.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.display_name, made.display_name);
        assert_eq!(got.labels, made.labels);
        assert_eq!(got.config, made.config);
    }

    // Again: the tenant exists. Refused whole, naming it; with
    // --skip-existing every connection is skipped and reported.
    let output = import(
        &target,
        &file,
        &["--identity-file", identity_file.to_str().unwrap()],
    );
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tenant exists") && stderr.contains("id exists"),
        "{}",
        text(&output)
    );
    let output = import(
        &target,
        &file,
        &[
            "--identity-file",
            identity_file.to_str().unwrap(),
            "--skip-existing",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("0 connection(s) imported, 25 skipped"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn a_passphrase_export_imports_around_a_taken_name() {
    let source = keyed(KEY_A);
    let target = keyed(KEY_B);
    source.create_tenant("beta").await;
    let mut client = source.connections().await;
    for n in 0..3 {
        create(
            &mut client,
            "beta",
            connection(&format!("db {n}"), &format!("pw{n}")),
        )
        .await
        .unwrap();
    }
    // The target already has tenant beta with a connection named "DB 1".
    target.create_tenant("beta").await;
    let mut target_client = target.connections().await;
    let mine = create(&mut target_client, "beta", connection("DB 1", "theirs"))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let passphrase = work.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let pass = passphrase.to_str().unwrap();
    let file = work.path().join("beta.age");
    let output = export(&source, "beta", &["--passphrase-file", pass], &file);
    assert!(output.status.success(), "{}", text(&output));
    let output = import(&target, &file, &["--passphrase-file", pass]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("display name taken"),
        "{}",
        text(&output)
    );
    let output = import(
        &target,
        &file,
        &["--passphrase-file", pass, "--skip-existing"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("2 connection(s) imported, 1 skipped"),
        "{}",
        text(&output)
    );
    assert!(stdout.contains("display name taken"), "{}", text(&output));
    // The target's own connection is untouched.
    let resolved = resolve(&target, &mine.name).await.unwrap();
    assert_eq!(
        resolved.secrets.get("password").map(String::as_str),
        Some("theirs")
    );
}

#[tokio::test]
async fn exports_and_imports_need_admin_and_resolver() {
    let server = keyed(KEY_A);
    server.create_tenant("acme").await;
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let callers = [
        token(
            "w",
            &["acme"],
            &[Role::Reader, Role::Writer, Role::Resolver],
        ),
        token("a", &["acme"], &[Role::Admin]),
        token("o", &["other"], &[Role::Admin, Role::Resolver]),
    ];
    for caller in callers {
        let mut client = AdminServiceClient::new(server.channel_as(Some(caller)).await);
        let status = match client
            .export_tenant(v1::ExportTenantRequest {
                name: "tenants/acme".into(),
                recipient: Some(v1::export_tenant_request::Recipient::AgeRecipient(
                    recipient.clone(),
                )),
            })
            .await
        {
            Ok(mut stream) => stream.get_mut().message().await.unwrap_err(),
            Err(status) => status,
        };
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let caller = token("w", &["*"], &[Role::Reader, Role::Writer, Role::Resolver]);
    let mut client = AdminServiceClient::new(server.channel_as(Some(caller)).await);
    let status = client
        .import_tenant(tokio_stream::iter(vec![v1::ImportTenantRequest {
            identity: Some(v1::import_tenant_request::Identity::Passphrase("x".into())),
            ..Default::default()
        }]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}
