//! The stages an Oracle test can run for real: resolve, connect and the TCPS
//! handshake. Authentication needs Oracle's client libraries (see the crate
//! documentation), so it is reported as skipped with [`NOT_SPOKEN`].

use connvault_plugin_sdk::pb::{self, Stage, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, PluginError, StageError, TestReport};
use connvault_provider_kit::{net, tls};

use crate::DEFAULT_PORT;
use crate::descriptor::{self, Service, Target};

/// What the test says about the stages it cannot run.
pub const NOT_SPOKEN: &str = "not checked: logging in to Oracle (O5LOGON) needs Oracle's client libraries, which no pure-Rust driver replaces and connvault does not ship; resolve, connect and TLS were checked";

/// Where the connection points: its connect descriptor's first address, or
/// its host, port and service name or SID.
pub fn target(connection: &Connection) -> Result<Target, PluginError> {
    let text = connection.str("connect_descriptor");
    if !text.is_empty() {
        return descriptor::parse(text)
            .and_then(|root| descriptor::target(&root))
            .map_err(|problem| {
                PluginError::invalid_argument("config.connect_descriptor", problem)
            });
    }
    let sid = connection.str("sid");
    let service = if sid.is_empty() {
        Service::Name(connection.str("service_name").to_owned())
    } else {
        Service::Sid(sid.to_owned())
    };
    let protocol = if connection.tls_mode() == TlsMode::Disable {
        "TCP"
    } else {
        "TCPS"
    };
    Ok(Target {
        protocol: protocol.to_owned(),
        host: connection.str("host").to_owned(),
        port: net::port(connection.int("port"), DEFAULT_PORT),
        service,
    })
}

/// Resolve, connect, TLS for TCPS; authenticate and probe skipped.
pub fn test(connection: &Connection, deadline: Deadline) -> Result<pb::TestResponse, PluginError> {
    let target = target(connection)?;
    let mut report = TestReport::new();
    let addresses = report.stage(Stage::Resolve, || {
        net::bounded(
            deadline,
            "resolving the host",
            net::resolve(connection, &target.host, target.port),
        )
    });
    let stream = report.stage(Stage::Connect, || {
        let addresses = net::prior(addresses)?;
        net::bounded(
            deadline,
            "connecting",
            net::connect(connection, &target.host, &addresses),
        )
    });
    let mode = connection.tls_mode();
    if mode == TlsMode::Disable {
        report.skip(
            Stage::Tls,
            "TLS is disabled for this connection (TCP, not TCPS)",
        );
    } else {
        report.stage(Stage::Tls, || {
            let stream = net::prior(stream)?;
            let config = tls::client_config(&connection.tls, mode)?;
            let name = tls::server_name(&connection.tls, &target.host)?;
            net::bounded(deadline, "the TLS handshake", async move {
                tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .map(drop)
                    .map_err(|error| tls::handshake_error(&error))
            })
        });
    }
    for stage in [Stage::Authenticate, Stage::Probe] {
        if report.failed() {
            // Recorded as skipped because an earlier stage failed.
            report.stage(stage, || Ok::<(), StageError>(()));
        } else {
            report.skip(stage, NOT_SPOKEN);
        }
    }
    Ok(report.finish())
}
