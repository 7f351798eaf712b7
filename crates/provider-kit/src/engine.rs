//! The connection test and the session behind discovery, written once for
//! every provider: a provider says how it opens a session, probes it and
//! (optionally) checks what the user may do, through [`Engine`].

use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage};
use connvault_plugin_sdk::{Connection, Deadline, PluginError, StageError, TestReport};

use crate::net;

/// What differs between providers in a connection test.
pub trait Engine {
    /// An open, authenticated session.
    type Session;

    /// Whether the test has an authorize stage ([`Engine::authorize`]).
    const AUTHORIZES: bool = false;

    /// Runs the stages up to and including authenticate into `report`;
    /// `None` once one failed.
    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<Self::Session>;

    /// The probe stage: a trivial request, answering the server's version.
    fn probe(&self, session: &mut Self::Session, deadline: Deadline) -> Result<String, StageError>;

    /// The authorize stage, run only when [`Engine::AUTHORIZES`]: whether the
    /// user may do what the connection is for.
    fn authorize(
        &self,
        _session: &mut Self::Session,
        _connection: &Connection,
        _deadline: Deadline,
    ) -> Result<(), StageError> {
        Ok(())
    }

    /// Ends the session, if any, within what is left of `deadline`. Dropping
    /// it is the default; a provider whose server logs dropped sessions says
    /// goodbye instead.
    fn close(&self, session: Option<Self::Session>, _deadline: Deadline) {
        drop(session);
    }
}

/// The connection test: open the session, probe it, authorize if the engine
/// does, close it; every stage is in the report, run or skipped.
pub fn test<E: Engine>(
    engine: &E,
    connection: &Connection,
    deadline: Deadline,
) -> pb::TestResponse {
    let mut report = TestReport::new();
    let mut session = engine.open(connection, deadline, &mut report);
    let version = report.stage(Stage::Probe, || {
        engine.probe(net::prior(session.as_mut())?, deadline)
    });
    if let Some(version) = version {
        report.server_version(version);
    }
    if E::AUTHORIZES {
        report.stage(Stage::Authorize, || {
            engine.authorize(net::prior(session.as_mut())?, connection, deadline)
        });
    }
    engine.close(session, deadline);
    report.finish()
}

/// Opens a session for a call that is not a test (discover): a failed stage
/// becomes the error that call returns.
pub fn open_or_error<E: Engine>(
    engine: &E,
    connection: &Connection,
    deadline: Deadline,
) -> Result<E::Session, PluginError> {
    let mut report = TestReport::new();
    match engine.open(connection, deadline, &mut report) {
        Some(session) => Ok(session),
        None => {
            let failed = report.finish();
            let category =
                ErrorCategory::try_from(failed.error_category).unwrap_or(ErrorCategory::Internal);
            Err(net::plugin_error(StageError::new(category, failed.message)))
        }
    }
}
