//! Validation and rendering of Oracle connections: pure, no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_oracle::Oracle;
use connvault_plugin_oracle::descriptor::{self, Service};
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_testkit::harness::Harness;
use connvault_testkit::provider::{i, s};

/// The Oracle provider under test, for the whole test process.
static ORACLE: LazyLock<Harness<Oracle>> = LazyLock::new(|| Harness::new(Oracle));

fn tls(mode: TlsMode) -> Option<pb::Tls> {
    Some(pb::Tls {
        mode: mode as i32,
        ..Default::default()
    })
}

#[test]
fn serves_its_id_and_alias_with_a_sealed_password() {
    let source = Oracle.data_sources().remove(0);
    assert_eq!(source.id, "oracle");
    assert_eq!(source.aliases, ["ORACLE"]);
    assert!(source.supports_tls);
    let password = source.fields.iter().find(|f| f.name == "password").unwrap();
    assert!(password.secret);
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let spec = ORACLE.spec(
        vec![
            ("port", i(70000)),
            ("sid", s("BAD SID")),
            ("colour", s("blue")),
        ],
        None,
    );
    assert_eq!(
        ORACLE.violations(spec),
        ["config.colour", "config.port", "config.sid", "config.user"]
    );
}

#[test]
fn host_and_service_or_a_descriptor_are_needed() {
    // Neither a host nor a service.
    let spec = ORACLE.spec(vec![("user", s("app"))], None);
    assert_eq!(
        ORACLE.violations(spec),
        ["config.host", "config.service_name"]
    );
    // Both a service name and a SID; a pasted port; a quote in the password.
    let spec = ORACLE.spec(
        vec![
            ("host", s("db.example:1521")),
            ("service_name", s("sales")),
            ("sid", s("ORCL")),
            ("user", s("app")),
        ],
        Some("say \"hi\""),
    );
    assert_eq!(
        ORACLE.violations(spec),
        ["config.host", "config.sid", "secrets.password"]
    );
    // A descriptor and the fields it already says; TCPS without TLS on.
    let mut spec = ORACLE.spec(
        vec![
            ("host", s("db.example")),
            (
                "connect_descriptor",
                s("(DESCRIPTION=(ADDRESS=(PROTOCOL=TCPS)(HOST=db.example)(PORT=2484))(CONNECT_DATA=(SERVICE_NAME=sales)))"),
            ),
            ("user", s("app")),
        ],
        None,
    );
    spec.tls = tls(TlsMode::Disable);
    assert_eq!(ORACLE.violations(spec), ["config.host", "tls.mode"]);
    // A descriptor that does not parse.
    let spec = ORACLE.spec(
        vec![
            ("connect_descriptor", s("(DESCRIPTION=(ADDRESS=(HOST=a)")),
            ("user", s("app")),
        ],
        None,
    );
    assert_eq!(ORACLE.violations(spec), ["config.connect_descriptor"]);
}

#[test]
fn good_connections_have_no_violations() {
    let by_service = ORACLE.spec(
        vec![
            ("host", s("db.example")),
            ("service_name", s("sales")),
            ("user", s("app")),
        ],
        Some("pw"),
    );
    assert!(ORACLE.violations(by_service).is_empty());
    let mut by_descriptor = ORACLE.spec(
        vec![
            (
                "connect_descriptor",
                s("(DESCRIPTION=(ADDRESS=(PROTOCOL=TCPS)(HOST=db.example)(PORT=2484))(CONNECT_DATA=(SID=ORCL)))"),
            ),
            ("user", s("app")),
        ],
        Some("pw"),
    );
    by_descriptor.tls = tls(TlsMode::VerifyFull);
    assert!(ORACLE.violations(by_descriptor).is_empty());
}

#[test]
fn render_each_form_and_redact() {
    let canary = "p@ss/w:rd CANARY";
    let spec = ORACLE.spec(
        vec![
            ("host", s("db.example")),
            ("service_name", s("sales.example")),
            ("user", s("app")),
            ("schema", s("CRM")),
        ],
        Some(canary),
    );
    let connection = ORACLE.connection(spec);
    let shown = Oracle.render(&connection, true).unwrap();
    assert_eq!(shown.uri, "db.example:1521/sales.example");
    assert_eq!(
        shown.jdbc_url,
        "jdbc:oracle:thin:@//db.example:1521/sales.example"
    );
    assert_eq!(
        shown.dsn,
        "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=db.example)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=sales.example)))"
    );
    assert_eq!(shown.env["ORACLE_PASSWORD"], canary);
    assert_eq!(shown.env["TWO_TASK"], shown.uri);
    assert_eq!(shown.env["ORACLE_SCHEMA"], "CRM");
    let hidden = Oracle.render(&connection, false).unwrap();
    assert!(!format!("{hidden:?}").contains("CANARY"));
    assert_eq!(hidden.env["ORACLE_PASSWORD"], "REDACTED");

    // A SID cannot be said in EZConnect: the URI is the descriptor.
    let spec = ORACLE.spec(
        vec![
            ("host", s("::1")),
            ("port", i(1522)),
            ("sid", s("ORCL")),
            ("user", s("app")),
        ],
        None,
    );
    let rendered = Oracle.render(&ORACLE.connection(spec), true).unwrap();
    assert_eq!(rendered.jdbc_url, "jdbc:oracle:thin:@[::1]:1522:ORCL");
    assert_eq!(rendered.uri, rendered.dsn);
    assert_eq!(rendered.env["ORACLE_SID"], "ORCL");

    // TCPS: the security section, and EZConnect Plus parameters.
    let mut spec = ORACLE.spec(
        vec![
            ("host", s("db.example")),
            ("port", i(2484)),
            ("service_name", s("sales")),
            ("user", s("app")),
            ("wallet_location", s("/etc/oracle/wallet")),
            ("ssl_server_cert_dn", s("CN=db.example,O=Example")),
        ],
        None,
    );
    spec.tls = tls(TlsMode::VerifyFull);
    let rendered = Oracle.render(&ORACLE.connection(spec), true).unwrap();
    assert_eq!(
        rendered.uri,
        "tcps://db.example:2484/sales?ssl_server_dn_match=on&ssl_server_cert_dn=\"CN=db.example,O=Example\"&wallet_location=/etc/oracle/wallet"
    );
    assert_eq!(
        rendered.jdbc_url,
        format!("jdbc:oracle:thin:@{}", rendered.dsn)
    );
    let root = descriptor::parse(&rendered.dsn).unwrap();
    let target = descriptor::target(&root).unwrap();
    assert_eq!((target.protocol.as_str(), target.port), ("TCPS", 2484));
    assert_eq!(target.service, Service::Name("sales".into()));
    assert_eq!(root.text("SSL_SERVER_DN_MATCH"), Some("yes"));
    assert_eq!(root.text("MY_WALLET_DIRECTORY"), Some("/etc/oracle/wallet"));
}

#[test]
fn a_given_descriptor_is_rendered_as_given() {
    let text = "(DESCRIPTION=(ADDRESS_LIST=(ADDRESS=(PROTOCOL=TCP)(HOST=a.example)(PORT=1521))(ADDRESS=(PROTOCOL=TCP)(HOST=b.example)(PORT=1521)))(CONNECT_DATA=(SERVICE_NAME=sales)))";
    let spec = ORACLE.spec(
        vec![("connect_descriptor", s(text)), ("user", s("app"))],
        None,
    );
    let rendered = Oracle.render(&ORACLE.connection(spec), true).unwrap();
    assert_eq!(rendered.dsn, text);
    assert_eq!(rendered.uri, text);
    assert_eq!(rendered.jdbc_url, format!("jdbc:oracle:thin:@{text}"));
    assert_eq!(rendered.env["ORACLE_HOST"], "a.example");
}
