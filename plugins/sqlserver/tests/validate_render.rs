//! Validation and rendering of SQL Server connections. Rendered strings are
//! read back by tiberius's own ADO.NET and JDBC parsers, and the parsed
//! configuration logs in to a fake TDS server that records what arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;

use std::sync::LazyLock;
use std::time::Duration;

use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_plugin_sqlserver::SqlServer;
use connvault_testkit::harness::Harness;
use connvault_testkit::provider::{i, s};
use connvault_testkit::servers::TestCa;
use fake::{ENCRYPT_NOT_SUP, Login, Options};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// The SQL Server provider under test, for the whole test process.
static MSSQL: LazyLock<Harness<SqlServer>> = LazyLock::new(|| Harness::new(SqlServer));

/// ASCII with every character the string syntaxes give a meaning (tiberius's
/// parsers take ASCII only).
const USER: &str = "app;user='x\" {y=z";
const PASSWORD: &str = "p@ss;w=rd \"q\" 'x' {b %24 \\ /:[]!";

#[test]
fn serves_its_ids_and_aliases() {
    let source = SqlServer.data_sources().remove(0);
    assert_eq!(source.id, "sqlserver");
    assert_eq!(source.aliases, ["SQL_SERVER", "MSSQL", "AZURE_SQL"]);
    assert!(
        source
            .fields
            .iter()
            .any(|f| f.name == "password" && f.secret)
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let mut spec = MSSQL.spec(
        vec![
            ("host", s("db.example:1433")),
            ("port", i(0)),
            ("instance_name", s("bad name")),
            ("application_intent", s("sometimes")),
        ],
        None,
    );
    let ca = TestCa::new();
    let client = ca.client("app");
    spec.tls = Some(pb::Tls {
        mode: TlsMode::Require as i32,
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
        ..Default::default()
    });
    assert_eq!(
        MSSQL.violations(spec),
        [
            "config.application_intent",
            "config.instance_name",
            "config.port",
            "config.user"
        ]
    );
    let mut spec = MSSQL.spec(
        vec![("host", s("db.example:1433")), ("user", s("app"))],
        None,
    );
    let client = ca.client("app");
    spec.tls = Some(pb::Tls {
        mode: TlsMode::Require as i32,
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
        ..Default::default()
    });
    assert_eq!(
        MSSQL.violations(spec),
        ["config.host", "tls.client_cert_pem"]
    );
}

fn spec(port: u16, mode: TlsMode, password: &str) -> pb::ConnectionSpec {
    spec_as(port, mode, USER, password)
}

fn spec_as(port: u16, mode: TlsMode, user: &str, password: &str) -> pb::ConnectionSpec {
    let mut spec = MSSQL.spec(
        vec![
            ("host", s("127.0.0.1")),
            ("port", i(i64::from(port))),
            ("instance_name", s("SALES")),
            ("database", s("orders; db")),
            ("user", s(user)),
            ("application_name", s("report {x")),
            ("application_intent", s("ReadOnly")),
        ],
        Some(password),
    );
    spec.tls = Some(pb::Tls {
        mode: mode as i32,
        server_name: "db.example".into(),
        ..Default::default()
    });
    spec
}

/// Logs in with `config` (parsed from a rendered string) to the fake and
/// returns what it received.
fn login_with(
    config: tiberius::Config,
    port: u16,
    logins: &std::sync::mpsc::Receiver<Login>,
) -> Login {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tiberius::Client::connect(config, stream.compat()).await
    });
    let Err(error) = outcome else {
        panic!("the fake refuses every login");
    };
    assert_eq!(error.code(), Some(18456), "{error}");
    logins.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn ado_and_jdbc_strings_parse_back_with_tiberius() {
    let (port, logins) = fake::start(Options {
        encryption: ENCRYPT_NOT_SUP,
        certificate: None,
        wrong_instance: false,
    });
    // tiberius's JDBC parser cannot read a `}` in a value (the SQL Server JDBC
    // driver's `}}` escape); every other character goes through both.
    for (user, password, jdbc_too) in [(USER, PASSWORD, true), ("close}brace{", "}p{w}}", false)] {
        let connection = MSSQL.connection(spec_as(port, TlsMode::Disable, user, password));
        let rendered = SqlServer.render(&connection, true).unwrap();
        let mut forms = vec![(
            "ado",
            tiberius::Config::from_ado_string(&rendered.uri).unwrap(),
        )];
        if jdbc_too {
            forms.push((
                "jdbc",
                tiberius::Config::from_jdbc_string(&rendered.jdbc_url).unwrap(),
            ));
        }
        for (form, config) in forms {
            let shown = format!("{config:?}");
            assert!(
                shown.contains("instance_name: Some(\"SALES\")"),
                "{form}: {shown}"
            );
            assert_eq!(config.get_addr(), format!("127.0.0.1:{port}"), "{form}");
            let login = login_with(config, port, &logins);
            assert_eq!(
                login,
                Login {
                    user: user.into(),
                    password: password.into(),
                    app_name: "report {x".into(),
                    server_name: "127.0.0.1".into(),
                    database: "orders; db".into(),
                    read_only: true,
                    encrypted: false,
                },
                "{form}: {}",
                rendered.uri
            );
        }
    }
}

#[test]
fn tls_modes_become_encrypt_and_trust_settings() {
    let expect = [
        (TlsMode::Disable, "Encrypt=False", None),
        (
            TlsMode::Prefer,
            "Encrypt=False;TrustServerCertificate=True",
            None,
        ),
        (
            TlsMode::Require,
            "Encrypt=True;TrustServerCertificate=True",
            None,
        ),
        (
            TlsMode::VerifyCa,
            "Encrypt=True;TrustServerCertificate=False",
            Some("db.example"),
        ),
        (
            TlsMode::VerifyFull,
            "Encrypt=True;TrustServerCertificate=False",
            Some("db.example"),
        ),
    ];
    for (mode, ado, host_in_certificate) in expect {
        let rendered = SqlServer
            .render(&MSSQL.connection(spec(1433, mode, "pw")), true)
            .unwrap();
        assert!(rendered.uri.contains(ado), "{mode:?}: {}", rendered.uri);
        assert_eq!(
            rendered.uri.contains("HostNameInCertificate=db.example"),
            host_in_certificate.is_some(),
            "{mode:?}"
        );
        let encrypted = ado.starts_with("Encrypt=True");
        let parsed = tiberius::Config::from_ado_string(&rendered.uri);
        if encrypted {
            // This build of tiberius has no TLS backend (connvault does TLS
            // itself), so its parser refuses Encrypt=True; the rest of the
            // string parses once that one setting is turned off.
            assert!(parsed.unwrap_err().to_string().contains("TLS"), "{mode:?}");
            let relaxed = rendered.uri.replace("Encrypt=True", "Encrypt=False");
            let shown = format!("{:?}", tiberius::Config::from_ado_string(&relaxed).unwrap());
            assert_eq!(
                shown.contains("hostname_in_certificate: Some(\"db.example\")"),
                host_in_certificate.is_some(),
                "{shown}"
            );
            assert!(rendered.jdbc_url.contains(";encrypt=true"));
            assert!(rendered.dsn.contains(";Encrypt=yes"));
        } else {
            parsed.unwrap();
            assert!(rendered.jdbc_url.contains(";encrypt=false"));
        }
    }
}

#[test]
fn render_redacts_and_escapes_each_form() {
    let connection = MSSQL.connection(spec(1433, TlsMode::Require, "se}cret;CANARY"));
    let shown = SqlServer.render(&connection, true).unwrap();
    assert!(
        shown.jdbc_url.contains(";password={se}}cret;CANARY}"),
        "{}",
        shown.jdbc_url
    );
    assert!(
        shown.dsn.starts_with(
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:127.0.0.1\\SALES,1433;"
        ),
        "{}",
        shown.dsn
    );
    assert!(
        shown.dsn.contains(";PWD={se}}cret;CANARY}"),
        "{}",
        shown.dsn
    );
    assert!(
        shown.uri.contains(";Password=\"se}cret;CANARY\""),
        "{}",
        shown.uri
    );
    assert_eq!(shown.env["SQLCMDPASSWORD"], "se}cret;CANARY");
    assert_eq!(shown.env["SQLCMDSERVER"], "tcp:127.0.0.1\\SALES,1433");
    let hidden = SqlServer.render(&connection, false).unwrap();
    let everything = format!("{hidden:?}");
    assert!(!everything.contains("CANARY"), "{everything}");
    assert!(hidden.uri.contains("Password=REDACTED"));
}
