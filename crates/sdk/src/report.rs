//! A staged connection-test report and the deadline that bounds it.

use std::time::{Duration, Instant};

use crate::pb::{self, ErrorCategory, Stage, StageStatus};

/// The time a plugin call may take, counted from when the call started.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
}

impl Deadline {
    /// A deadline `ms` milliseconds from now (0 means the host default of 10 s).
    pub fn from_millis(ms: u32) -> Self {
        let ms = if ms == 0 { 10_000 } else { ms };
        Self {
            end: Instant::now() + Duration::from_millis(u64::from(ms)),
        }
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// Why a stage failed: a category a client can act on and a message without secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct StageError {
    /// What kind of failure.
    pub category: ErrorCategory,
    /// What happened, safe to show.
    pub message: String,
}

impl StageError {
    /// A failure of the given category.
    pub fn new(category: ErrorCategory, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }
}

/// Collects the stages of a connection test into a [`pb::TestResponse`].
///
/// ```
/// use connvault_plugin_sdk::{pb::{ErrorCategory, Stage}, StageError, TestReport};
/// let mut report = TestReport::new();
/// let addr = report.stage(Stage::Resolve, || Ok::<_, StageError>("127.0.0.1:5432"));
/// assert!(addr.is_some());
/// let _: Option<()> = report.stage(Stage::Connect, || {
///     Err(StageError::new(ErrorCategory::Unreachable, "connection refused"))
/// });
/// let response = report.finish();
/// assert!(!response.success);
/// assert_eq!(response.error_category, ErrorCategory::Unreachable as i32);
/// ```
#[derive(Debug)]
pub struct TestReport {
    started: Instant,
    response: pb::TestResponse,
    failed: bool,
}

impl Default for TestReport {
    fn default() -> Self {
        Self::new()
    }
}

impl TestReport {
    /// Starts a report; its clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            response: pb::TestResponse::default(),
            failed: false,
        }
    }

    /// Runs one stage and records its outcome and duration. After a failure,
    /// later stages are recorded as skipped and not run.
    pub fn stage<T>(
        &mut self,
        stage: Stage,
        run: impl FnOnce() -> Result<T, StageError>,
    ) -> Option<T> {
        if self.failed {
            self.skip(stage, "skipped: an earlier stage failed");
            return None;
        }
        let started = Instant::now();
        let outcome = run();
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match outcome {
            Ok(value) => {
                self.response.stages.push(pb::StageResult {
                    stage: stage as i32,
                    status: StageStatus::Ok as i32,
                    duration_us,
                    message: String::new(),
                });
                Some(value)
            }
            Err(error) => {
                self.failed = true;
                self.response.error_category = error.category as i32;
                self.response.message = error.message.clone();
                self.response.stages.push(pb::StageResult {
                    stage: stage as i32,
                    status: StageStatus::Failed as i32,
                    duration_us,
                    message: error.message,
                });
                None
            }
        }
    }

    /// Records a stage that did not apply (TLS when TLS is off).
    pub fn skip(&mut self, stage: Stage, why: &str) {
        self.response.stages.push(pb::StageResult {
            stage: stage as i32,
            status: StageStatus::Skipped as i32,
            duration_us: 0,
            message: why.to_owned(),
        });
    }

    /// Records the server's version.
    pub fn server_version(&mut self, version: impl Into<String>) {
        self.response.server_version = version.into();
    }

    /// Whether a stage has failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The finished response.
    pub fn finish(mut self) -> pb::TestResponse {
        self.response.success = !self.failed;
        if !self.failed {
            self.response.error_category = ErrorCategory::None as i32;
        }
        self.response.duration_us =
            u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.response
    }
}
