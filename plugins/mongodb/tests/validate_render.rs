//! Validation and rendering of MongoDB connections; rendered URIs are read
//! back by the driver's own connection-string parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_mongodb::MongoDb;
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, TlsMode, value::Kind};
use connvault_testkit::harness::Harness;
use connvault_testkit::provider::{i, s};
use connvault_testkit::servers::TestCa;
use mongodb::options::{AuthMechanism, ConnectionString, HostInfo, ServerAddress, Tls};

/// The MongoDB provider under test, for the whole test process.
static MONGO: LazyLock<Harness<MongoDb>> = LazyLock::new(|| Harness::new(MongoDb));

fn flag(value: bool) -> pb::Value {
    pb::Value {
        kind: Some(Kind::BoolValue(value)),
    }
}

fn tls(mode: TlsMode) -> Option<pb::Tls> {
    Some(pb::Tls {
        mode: mode as i32,
        ..Default::default()
    })
}

#[test]
fn serves_its_ids_and_aliases() {
    let source = MongoDb.data_sources().remove(0);
    assert_eq!(source.id, "mongodb");
    assert_eq!(source.aliases, ["MONGODB", "MONGODB_SRV", "DOCUMENTDB"]);
    assert!(
        source
            .fields
            .iter()
            .any(|f| f.name == "password" && f.secret)
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let spec = MONGO.spec(
        vec![
            ("port", i(0)),
            ("database", s("bad/name")),
            ("auth_mechanism", s("GSSAPI")),
        ],
        None,
    );
    assert_eq!(
        MONGO.violations(spec),
        [
            "config.auth_mechanism",
            "config.database",
            "config.host",
            "config.port"
        ]
    );
}

#[test]
fn cross_field_rules_are_reported_together() {
    // A port on an SRV name, a password without a user, a server name.
    let mut spec = MONGO.spec(
        vec![
            ("host", s("cluster0.example.net")),
            ("srv", flag(true)),
            ("port", i(27018)),
        ],
        Some("pw"),
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        server_name: "other.example".into(),
        ..Default::default()
    });
    assert_eq!(
        MONGO.violations(spec),
        ["config.port", "config.user", "tls.server_name"]
    );
    // verify-ca cannot be done by the driver; PLAIN without TLS.
    let mut spec = MONGO.spec(
        vec![
            ("host", s("db.example")),
            ("user", s("app")),
            ("auth_mechanism", s("PLAIN")),
        ],
        Some("pw"),
    );
    spec.tls = tls(TlsMode::Disable);
    assert_eq!(MONGO.violations(spec.clone()), ["tls.mode"]);
    spec.tls = tls(TlsMode::VerifyCa);
    assert_eq!(MONGO.violations(spec), ["tls.mode"]);
    // X.509 needs a client certificate and takes no password.
    let mut spec = MONGO.spec(
        vec![
            ("host", s("db.example")),
            ("auth_mechanism", s("MONGODB-X509")),
        ],
        Some("pw"),
    );
    spec.tls = tls(TlsMode::VerifyFull);
    assert_eq!(
        MONGO.violations(spec),
        ["secrets.password", "tls.client_cert_pem"]
    );
}

#[test]
fn a_good_connection_has_no_violations() {
    let ca = TestCa::new();
    let client = ca.client("CN=app");
    let mut spec = MONGO.spec(
        vec![
            ("host", s("db.example")),
            ("auth_mechanism", s("MONGODB-X509")),
        ],
        None,
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ca_pem: ca.ca_pem,
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
        ..Default::default()
    });
    assert!(MONGO.violations(spec).is_empty());
}

/// User names and passwords with every character a URI gives a meaning, and more.
const USER: &str = "app:user@x/y?z#w[1]%20 é";
const PASSWORD: &str = "p@ss:w/rd?#[]%24 &=+;,'\"{}\\ ü";

#[test]
fn the_uri_parses_back_with_the_driver() {
    let mut spec = MONGO.spec(
        vec![
            ("host", s("db.example")),
            ("port", i(27018)),
            ("database", s("shop")),
            ("user", s(USER)),
            ("auth_source", s("users")),
            ("auth_mechanism", s("SCRAM-SHA-256")),
            ("replica_set", s("rs0")),
            ("app_name", s("report & co")),
        ],
        Some(PASSWORD),
    );
    spec.tls = tls(TlsMode::VerifyFull);
    let rendered = MongoDb.render(&MONGO.connection(spec), true).unwrap();
    let parsed = ConnectionString::parse(&rendered.uri).unwrap();
    assert_eq!(
        parsed.host_info,
        HostInfo::HostIdentifiers(vec![ServerAddress::Tcp {
            host: "db.example".into(),
            port: Some(27018)
        }])
    );
    let credential = parsed.credential.unwrap();
    assert_eq!(credential.username.as_deref(), Some(USER));
    assert_eq!(credential.password.as_deref(), Some(PASSWORD));
    assert_eq!(credential.source.as_deref(), Some("users"));
    assert_eq!(credential.mechanism, Some(AuthMechanism::ScramSha256));
    assert_eq!(parsed.default_database.as_deref(), Some("shop"));
    assert_eq!(parsed.replica_set.as_deref(), Some("rs0"));
    assert_eq!(parsed.app_name.as_deref(), Some("report & co"));
    assert!(
        matches!(parsed.tls, Some(Tls::Enabled(ref options)) if options.allow_invalid_certificates.is_none())
    );
    assert_eq!(rendered.env["MONGODB_URI"], rendered.uri);
    assert_eq!(rendered.env["MONGODB_PASSWORD"], PASSWORD);

    let hidden = MongoDb
        .render(
            &MONGO.connection(MONGO.spec(
                vec![("host", s("db.example")), ("user", s("app"))],
                Some("CANARY"),
            )),
            false,
        )
        .unwrap();
    assert!(!format!("{hidden:?}").contains("CANARY"));
    assert_eq!(hidden.uri, "mongodb://app:REDACTED@db.example:27017/");
}

#[test]
fn srv_and_tls_forms_parse_back_with_the_driver() {
    // mongodb+srv turns TLS on by default: a disabled mode says so.
    let mut spec = MONGO.spec(
        vec![
            ("host", s("cluster0.example.net")),
            ("srv", flag(true)),
            ("user", s("app")),
        ],
        Some("pw"),
    );
    spec.tls = tls(TlsMode::Disable);
    let rendered = MongoDb
        .render(&MONGO.connection(spec.clone()), true)
        .unwrap();
    assert_eq!(
        rendered.uri,
        "mongodb+srv://app:pw@cluster0.example.net/?tls=false"
    );
    let parsed = ConnectionString::parse(&rendered.uri).unwrap();
    assert_eq!(
        parsed.host_info,
        HostInfo::DnsRecord("cluster0.example.net".into())
    );
    assert_eq!(parsed.tls, Some(Tls::Disabled));

    // require: encrypted, certificate not checked.
    spec.tls = tls(TlsMode::Require);
    let rendered = MongoDb.render(&MONGO.connection(spec), true).unwrap();
    let parsed = ConnectionString::parse(&rendered.uri).unwrap();
    assert!(
        matches!(parsed.tls, Some(Tls::Enabled(ref options)) if options.allow_invalid_certificates == Some(true))
    );

    // X.509: the user comes from the certificate, the source is $external.
    let spec = MONGO.spec(
        vec![
            ("host", s("db.example")),
            ("auth_mechanism", s("MONGODB-X509")),
        ],
        None,
    );
    let rendered = MongoDb.render(&MONGO.connection(spec), true).unwrap();
    let credential = ConnectionString::parse(&rendered.uri)
        .unwrap()
        .credential
        .unwrap();
    assert_eq!(credential.mechanism, Some(AuthMechanism::MongoDbX509));
    assert_eq!(credential.source.as_deref(), Some("$external"));
}
