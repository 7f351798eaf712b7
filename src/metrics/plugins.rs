//! Plugin calls (count, outcome, latency) and each loaded plugin's state.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Instant;

use connvault_plugin_host::{CallError, PluginHost};

use super::{Metrics, PluginCallLabels, PluginLabels, PluginMethodLabels, PluginStateLabels};

/// The `outcome` label of a finished plugin call: a fixed name per kind of failure.
pub fn call_outcome<T>(result: &Result<T, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CallError::Application { .. }) => "application_error",
        Err(CallError::Unimplemented { .. }) => "unimplemented",
        Err(CallError::BadRequest { .. }) => "bad_request",
        Err(CallError::Panicked { .. }) => "panicked",
        Err(CallError::OutputTooLarge { .. }) => "output_too_large",
        Err(CallError::MalformedResponse { .. }) => "malformed_response",
        Err(CallError::DeadlineExceeded { .. }) => "deadline_exceeded",
        Err(CallError::Queued { .. }) => "queued_past_deadline",
        Err(CallError::QueueFull { .. }) => "queue_full",
        Err(CallError::Unavailable { .. }) => "unavailable",
        Err(_) => "internal",
    }
}

/// Runs one plugin call, recording its outcome and latency when `metrics` is on.
pub async fn observe_plugin_call<T>(
    metrics: Option<&Metrics>,
    plugin: &str,
    method: &'static str,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let Some(metrics) = metrics else {
        return call.await;
    };
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed().as_secs_f64();
    metrics
        .plugin_calls
        .get_or_create(&PluginCallLabels {
            plugin: plugin.to_owned(),
            method,
            outcome: call_outcome(&result),
        })
        .inc();
    metrics
        .plugin_call_seconds
        .get_or_create(&PluginMethodLabels {
            plugin: plugin.to_owned(),
            method,
        })
        .observe(took);
    result
}

/// Sets each loaded plugin's state gauges and restart count from its counters.
pub(super) fn refresh_states(metrics: &Metrics, host: &PluginHost) {
    for plugin in host.plugins() {
        let degraded = plugin.degraded();
        for (state, now) in [("healthy", !degraded), ("degraded", degraded)] {
            metrics
                .plugin_state
                .get_or_create(&PluginStateLabels {
                    plugin: plugin.name().to_owned(),
                    state,
                })
                .set(i64::from(now));
        }
        let restarts = plugin.stats().runner_restarts.load(Ordering::Relaxed);
        metrics
            .plugin_runner_restarts
            .get_or_create(&PluginLabels {
                plugin: plugin.name().to_owned(),
            })
            .set(i64::try_from(restarts).unwrap_or(i64::MAX));
    }
}
