//! End-to-end tests: the real `connvault` binary, real gRPC clients, real plugins.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod auth;
mod backup;
mod bounds;
mod browser;
mod cli;
mod connections;
mod crash_consistency;
mod damage;
mod discover;
mod durability;
mod egress;
mod fairness;
mod form_helpers;
mod form_links;
mod form_pages;
mod http_client;
mod http_listener;
mod isolation;
mod keys;
mod leaks;
mod listener;
mod metrics;
mod node;
mod plugin_answers;
mod plugin_check;
mod plugins;
mod providers;
mod python;
mod readme;
mod readme_walkthrough;
mod redirect;
mod reflection;
mod refusals;
mod rest;
mod rotation;
mod secrets;
mod tenants;
mod tls;
mod transfer;
mod tunnel;
