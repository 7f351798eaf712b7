//! One test harness for every provider plugin: a [`Harness`] binds the
//! helpers of [`crate::provider`] to one provider and its data source, and
//! carries the checks every network provider's tests make the same way
//! (an unresolvable host, a closed port, a server that never answers).
//!
//! A plugin's test file keeps one harness for the whole test process:
//!
//! ```
//! use std::sync::LazyLock;
//!
//! use connvault_plugin_sdk::{Provider, pb, schema};
//! use connvault_testkit::harness::Harness;
//! use connvault_testkit::provider::s;
//!
//! /// A provider whose one data source needs a host.
//! struct Example;
//!
//! impl Provider for Example {
//!     fn data_sources(&self) -> Vec<pb::DataSource> {
//!         let host = schema::string("host").required();
//!         vec![schema::data_source("example", "Example").field(host).build()]
//!     }
//! }
//!
//! static EXAMPLE: LazyLock<Harness<Example>> = LazyLock::new(|| Harness::new(Example));
//!
//! assert_eq!(EXAMPLE.violations(EXAMPLE.spec(vec![], None)), ["config.host"]);
//! assert!(EXAMPLE.violations(EXAMPLE.spec(vec![("host", s("db"))], None)).is_empty());
//! ```

use std::time::{Duration, Instant};

use connvault_plugin_sdk::egress::Egress;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, PluginError, Provider, code};

use crate::listeners::{Recorder, foreign_server, quotes_foreign_reply};
use crate::provider::{self, category, closed_port, s, silent_server, stage_status};

/// A password the checks put in specs; it must never come back in a response.
pub const CANARY: &str = "CANARY-pw-7f3a";

/// The deadline the silent-server check gives the provider's `test`.
pub const SILENT_DEADLINE: Duration = Duration::from_millis(800);

/// How long the silent-server check lets a provider take past the deadline.
///
/// The silent server never answers, so a provider that missed its deadline
/// would wait for as long as the server holds the socket; a provider that
/// keeps it returns right after the deadline. The bound only has to tell the
/// two apart, with room for a loaded two-core CI machine.
pub const SILENT_SLACK: Duration = Duration::from_secs(10);

/// A provider under test and the data source its specs name.
#[derive(Debug)]
pub struct Harness<P> {
    provider: P,
    source: pb::DataSource,
    user_field: &'static str,
}

impl<P: Provider> Harness<P> {
    /// A harness for `provider`'s first data source; logins set its `user` field.
    pub fn new(provider: P) -> Self {
        let source = provider
            .data_sources()
            .into_iter()
            .next()
            .expect("the provider serves a data source");
        Self {
            provider,
            source,
            user_field: "user",
        }
    }

    /// Logins set the config field `name` (Redis: `username`) instead of `user`.
    pub fn user_field(mut self, name: &'static str) -> Self {
        self.user_field = name;
        self
    }

    /// The provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The data source specs name.
    pub fn source(&self) -> &pb::DataSource {
        &self.source
    }

    /// A spec from config pairs and an optional password.
    pub fn spec(
        &self,
        config: Vec<(&str, pb::Value)>,
        password: Option<&str>,
    ) -> pb::ConnectionSpec {
        provider::spec(&self.source.id, config, password)
    }

    /// Checks `spec` against the schema; panics on violations.
    pub fn connection(&self, spec: pb::ConnectionSpec) -> Connection<'_> {
        provider::connection(&self.source, spec)
    }

    /// A spec for a loopback server on `port` with `password` and no user.
    pub fn local(&self, port: u16, password: &str) -> pb::ConnectionSpec {
        self.spec(provider::loopback(port), Some(password))
    }

    /// A spec for a loopback server on `port`, logging in as `user` with `password`.
    pub fn login(&self, port: u16, user: &str, password: &str) -> pb::ConnectionSpec {
        let mut config = provider::loopback(port);
        config.push((self.user_field, s(user)));
        self.spec(config, Some(password))
    }

    /// The fields `spec` violates, sorted, each once.
    pub fn violations(&self, spec: pb::ConnectionSpec) -> Vec<String> {
        provider::violations(&self.provider, &self.source, spec)
    }

    /// The provider's test of `spec` within [`provider::TEST_DEADLINE_MS`].
    pub fn test(&self, spec: pb::ConnectionSpec) -> pb::TestResponse {
        provider::test(&self.provider, &self.source, spec)
    }

    /// The provider's test of `spec` within `deadline`, and how long it took.
    pub fn timed_test(
        &self,
        spec: pb::ConnectionSpec,
        deadline: Duration,
    ) -> (pb::TestResponse, Duration) {
        let connection = self.connection(spec);
        let millis = u32::try_from(deadline.as_millis()).expect("a deadline in u32 milliseconds");
        let started = Instant::now();
        let response = self
            .provider
            .test(&connection, Deadline::from_millis(millis))
            .expect("test answers with a report, not an error");
        (response, started.elapsed())
    }

    /// A host that does not resolve fails the resolve stage as DNS, skips
    /// the stages after it, and does not echo the password.
    ///
    /// `spec` builds the provider's spec for a port, with [`CANARY`] as the password.
    pub fn check_unresolvable_host_is_dns(&self, spec: impl Fn(u16) -> pb::ConnectionSpec) {
        let mut spec = spec(1);
        spec.config.insert("host".into(), s("nonexistent.invalid"));
        let response = self.test(spec);
        assert_eq!(category(&response), ErrorCategory::Dns, "{response:#?}");
        assert_stages(&response, &[Stage::Resolve], StageStatus::Failed);
        assert_stages(
            &response,
            &[Stage::Connect, Stage::Authenticate, Stage::Probe],
            StageStatus::Skipped,
        );
        assert!(!format!("{response:?}").contains("CANARY"));
    }

    /// A port where nothing listens fails the connect stage as UNREACHABLE,
    /// and does not echo the password.
    pub fn check_closed_port_is_unreachable(&self, spec: impl Fn(u16) -> pb::ConnectionSpec) {
        let response = self.test(spec(closed_port()));
        assert_eq!(
            category(&response),
            ErrorCategory::Unreachable,
            "{response:#?}"
        );
        assert_stages(&response, &[Stage::Connect], StageStatus::Failed);
        assert!(!format!("{response:?}").contains("CANARY"));
    }

    /// A server that accepts TCP and never answers costs the provider its
    /// deadline, not more, in each TLS `mode`: the answer is TIMEOUT, it
    /// comes well before a missed deadline could (see [`SILENT_SLACK`]), and
    /// it does not echo the password.
    pub fn check_silent_server_times_out(
        &self,
        modes: &[TlsMode],
        spec: impl Fn(u16) -> pb::ConnectionSpec,
    ) {
        let port = silent_server();
        for &mode in modes {
            let mut spec = spec(port);
            spec.tls = Some(pb::Tls {
                mode: mode as i32,
                ..Default::default()
            });
            let (response, took) = self.timed_test(spec, SILENT_DEADLINE);
            assert_eq!(
                category(&response),
                ErrorCategory::Timeout,
                "{mode:?}: {response:#?}"
            );
            assert!(
                took < SILENT_DEADLINE + SILENT_SLACK,
                "{mode:?}: took {took:?} with a {SILENT_DEADLINE:?} deadline"
            );
            assert!(!format!("{response:?}").contains("CANARY"));
        }
    }

    /// The provider's test of `spec` under the egress `grant`, within `deadline`.
    pub fn granted_test(
        &self,
        spec: pb::ConnectionSpec,
        grant: pb::EgressGrant,
        deadline: Duration,
    ) -> pb::TestResponse {
        let mut connection = self.connection(spec);
        connection.egress = Egress::from_grant(Some(grant));
        let millis = u32::try_from(deadline.as_millis()).expect("a deadline in u32 milliseconds");
        self.provider
            .test(&connection, Deadline::from_millis(millis))
            .expect("test answers with a report, not an error")
    }

    /// A server speaking another protocol (HTTP) on the port: in each TLS
    /// `mode` the test fails, and no byte that server sent appears in any
    /// message of the answer.
    pub fn check_foreign_server_is_not_quoted(
        &self,
        modes: &[TlsMode],
        spec: impl Fn(u16) -> pb::ConnectionSpec,
    ) {
        let port = foreign_server();
        for &mode in modes {
            let mut spec = spec(port);
            spec.tls = Some(pb::Tls {
                mode: mode as i32,
                ..Default::default()
            });
            let (response, _) = self.timed_test(spec, Duration::from_secs(5));
            assert!(!response.success, "{mode:?}: {response:#?}");
            let messages: Vec<&str> = std::iter::once(response.message.as_str())
                .chain(std::iter::once(response.server_version.as_str()))
                .chain(response.stages.iter().map(|stage| stage.message.as_str()))
                .collect();
            for message in messages {
                let quoted = quotes_foreign_reply(message);
                assert_eq!(quoted, None, "{mode:?}: quoted in {message:?}");
            }
        }
    }

    /// The egress grant decides where the provider connects:
    /// - an approved address is dialled instead of resolving the host name
    ///   (here a name that does not even resolve), by every connection the
    ///   provider opens;
    /// - with a target approved, any other address is refused as PERMISSION
    ///   at the resolve stage, and nothing connects to it;
    /// - with no target approved, the policy decides, and a refused address
    ///   gets the same, with nothing connected either.
    pub fn check_egress_grant_is_honoured(&self, spec: impl Fn(u16) -> pb::ConnectionSpec) {
        const DEADLINE: Duration = Duration::from_millis(1500);
        let pinned = Recorder::start();
        let approve = pb::EgressGrant {
            approved: vec![pb::ApprovedTarget {
                host: "pinned.invalid".into(),
                port: u32::from(pinned.port()),
                addresses: vec!["127.0.0.1".into()],
                dial_port: 0,
            }],
            policy: Some(pb::EgressPolicy {
                rules: Vec::new(),
                default_action: pb::EgressAction::Allow as i32,
            }),
        };
        let mut by_name = spec(pinned.port());
        by_name.config.insert("host".into(), s("pinned.invalid"));
        let reached = self.granted_test(by_name, approve.clone(), DEADLINE);
        assert_stages(&reached, &[Stage::Resolve, Stage::Connect], StageStatus::Ok);
        // The recorder never answers: a driver that dialled the approved
        // address too waits for it until the deadline; one that resolved the
        // name again would fail at once.
        assert_eq!(category(&reached), ErrorCategory::Timeout, "{reached:#?}");
        assert!(pinned.connections() >= 1, "{reached:#?}");

        let bystander = Recorder::start();
        let elsewhere = self.granted_test(spec(bystander.port()), approve, DEADLINE);
        assert_eq!(
            category(&elsewhere),
            ErrorCategory::Permission,
            "{elsewhere:#?}"
        );
        assert_stages(&elsewhere, &[Stage::Resolve], StageStatus::Failed);

        let deny_loopback = pb::EgressGrant {
            approved: Vec::new(),
            policy: Some(pb::EgressPolicy {
                rules: vec![pb::EgressRule {
                    action: pb::EgressAction::Deny as i32,
                    pattern: "127.0.0.0/8".into(),
                    origin: "built-in: loopback".into(),
                }],
                default_action: pb::EgressAction::Allow as i32,
            }),
        };
        let refused = self.granted_test(spec(bystander.port()), deny_loopback, DEADLINE);
        assert_eq!(
            category(&refused),
            ErrorCategory::Permission,
            "{refused:#?}"
        );
        assert!(
            refused.message.contains("built-in: loopback"),
            "{refused:#?}"
        );
        assert_eq!(bystander.connections(), 0);
    }

    /// The provider's `discover` within [`provider::TEST_DEADLINE_MS`].
    pub fn discover(
        &self,
        connection: &Connection,
        request: &pb::DiscoverRequest,
    ) -> Result<pb::DiscoverResponse, PluginError> {
        self.provider.discover(
            connection,
            request,
            Deadline::from_millis(provider::TEST_DEADLINE_MS),
        )
    }

    /// Limits cut the seeded `shop` catalog (tables `big_orders`,
    /// `customers`, `orders`) and say so.
    pub fn check_discover_limits(&self, connection: &Connection) {
        let request = pb::DiscoverRequest {
            schema_filter: "sh*".into(),
            table_filter: "*o*".into(),
            max_tables: 1,
            max_columns_per_table: 1,
            include_columns: true,
            ..Default::default()
        };
        let bounded = self.discover(connection, &request).unwrap();
        assert!(bounded.truncated);
        assert_eq!(bounded.schemas[0].tables.len(), 1);
        assert_eq!(bounded.schemas[0].tables[0].name, "big_orders");
        assert_eq!(bounded.schemas[0].tables[0].columns.len(), 1);
    }

    /// Discover reports a wrong password (in `spec`) as UNAUTHENTICATED.
    pub fn check_discover_refuses_wrong_password(
        &self,
        spec: pb::ConnectionSpec,
        request: &pb::DiscoverRequest,
    ) {
        let wrong = self.discover(&self.connection(spec), request).unwrap_err();
        assert_eq!(wrong.0.code, code::UNAUTHENTICATED);
    }
}

/// A discovered column: name, type, nullable, position.
pub type ColumnSummary = (String, String, bool, u32);

/// A discovered table: name, kind and columns.
pub type TableSummary = (String, String, Vec<ColumnSummary>);

/// A discovered table as a [`TableSummary`], for comparing with what a test seeded.
pub fn table_summary(table: &pb::Table) -> TableSummary {
    (
        table.name.clone(),
        table.kind.clone(),
        table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone(), c.nullable, c.position))
            .collect(),
    )
}

/// The [`ColumnSummary`] a test expects.
pub fn col(name: &str, ty: &str, nullable: bool, position: u32) -> ColumnSummary {
    (name.to_owned(), ty.to_owned(), nullable, position)
}

/// Asserts that each of `stages` has `status` in `response`.
pub fn assert_stages(response: &pb::TestResponse, stages: &[Stage], status: StageStatus) {
    for &stage in stages {
        assert_eq!(
            stage_status(response, stage),
            Some(status),
            "{stage:?} in {response:#?}"
        );
    }
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` once
/// `limit` has passed, so a test waits for a fact instead of a fixed time.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
