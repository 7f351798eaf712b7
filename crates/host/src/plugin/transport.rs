//! The seam between the scheduler and the one call that reaches the plugin.
//!
//! The scheduler decides when and on which thread a call runs; a
//! [`Transport`] carries it to the plugin and back: [`InProcess`] calls the
//! library loaded in this process, [`Runners`] sends the call to a confined
//! child process. The scheduler and everything above it cannot tell which.

use std::time::Instant;

use crate::error::CallError;

use super::process::{Health, Runners};
use super::raw::InProcess;

/// Carries one blocking call to a plugin and brings back its answer.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Calls method `method_id` (named `method_name` in errors) with the
    /// encoded `request` and returns the encoded response, refusing one
    /// longer than `limit` bytes.
    ///
    /// Runs on a worker thread and may block. `end` is when the caller
    /// stops waiting: a transport that can stop the work (a child process)
    /// stops it shortly after; the in-process library cannot, and the
    /// scheduler abandons the call at `end` instead.
    fn call(
        &self,
        method_id: u32,
        method_name: &'static str,
        request: &[u8],
        limit: usize,
        end: Instant,
    ) -> Result<Vec<u8>, CallError>;

    /// Whether the two lanes call one plugin instance (so a plugin that is
    /// not thread-safe must see one call at a time across both).
    fn lanes_share_instance(&self) -> bool;
}

/// The transport of one plugin: in this process, or in runners.
pub(crate) enum AnyTransport {
    /// The library loaded in this process.
    InProcess(InProcess),
    /// Runner processes, one per lane.
    Process(Runners),
}

impl AnyTransport {
    /// How the transport is doing: a library in this process is always up.
    pub(crate) fn health(&self) -> Health {
        match self {
            Self::InProcess(_) => Health::Up,
            Self::Process(runners) => runners.health(),
        }
    }
}

impl Transport for AnyTransport {
    fn call(
        &self,
        method_id: u32,
        method_name: &'static str,
        request: &[u8],
        limit: usize,
        end: Instant,
    ) -> Result<Vec<u8>, CallError> {
        match self {
            Self::InProcess(library) => library.call(method_id, method_name, request, limit, end),
            Self::Process(runners) => runners.call(method_id, method_name, request, limit, end),
        }
    }

    fn lanes_share_instance(&self) -> bool {
        match self {
            Self::InProcess(library) => library.lanes_share_instance(),
            Self::Process(runners) => runners.lanes_share_instance(),
        }
    }
}
