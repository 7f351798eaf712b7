//! End-to-end tests: the real `connvault` binary, real gRPC clients, real plugins.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod auth;
mod backup;
mod bounds;
mod connections;
mod crash_consistency;
mod damage;
mod discover;
mod durability;
mod egress;
mod fairness;
mod http_listener;
mod isolation;
mod leaks;
mod listener;
mod plugin_answers;
mod providers;
mod python;
mod readme;
mod redirect;
mod reflection;
mod refusals;
mod secrets;
mod tenants;
mod tls;
mod transfer;
mod tunnel;
