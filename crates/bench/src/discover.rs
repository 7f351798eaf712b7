//! `discover`: what `DiscoverMetadata` costs against a real PostgreSQL, one
//! call at a time — a cold read (`refresh`: the plugin connects and reads the
//! catalog), a cached answer — beside `GetConnection` on the same server for
//! scale. PostgreSQL is a throwaway cluster started from the installed
//! binaries (as the tests do), seeded with a small known schema.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use connvault::pb::v1;
use connvault_testkit::servers::{PgOptions, Postgres};
use serde::Serialize;

use crate::cli::{ServerArgs, Target, write_json};
use crate::client::{self, ConnectionsClient};
use crate::scale::{Latency, histogram, record};

/// The schema the throwaway PostgreSQL is seeded with (that of the e2e tests).
const SCHEMA: &str = "CREATE SCHEMA shop; \
    CREATE TABLE shop.customers (id integer PRIMARY KEY, name text NOT NULL, email varchar(200)); \
    CREATE TABLE shop.orders (id bigint NOT NULL, customer_id integer, total numeric(10,2)); \
    CREATE VIEW shop.big_orders AS SELECT id, total FROM shop.orders WHERE total > 100; \
    INSERT INTO shop.customers VALUES (1, 'a', NULL), (2, 'b', NULL), (3, 'c', 'c@x'); \
    CREATE SCHEMA audit; CREATE TABLE audit.events (at timestamptz NOT NULL); \
    ANALYZE;";

/// The arguments of `connvault-bench discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Cached discovers and GetConnection calls timed.
    #[arg(long, default_value_t = 201)]
    samples: usize,
    /// Cold discovers (`refresh`) timed: each opens a PostgreSQL session.
    #[arg(long, default_value_t = 21)]
    cold_samples: usize,
    /// Also write the figures as JSON to this file (`-`: stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The figures of a discover run.
#[derive(Debug, Serialize)]
pub struct DiscoverReport {
    /// `DiscoverMetadata` with `refresh`: a plugin call reading the catalog.
    pub cold: Latency,
    /// `DiscoverMetadata` answered from the cache.
    pub cached: Latency,
    /// `GetConnection` of the same connection.
    pub get: Latency,
}

fn request(name: &str, refresh: bool) -> v1::DiscoverMetadataRequest {
    v1::DiscoverMetadataRequest {
        name: name.to_owned(),
        schema_filter: "shop".into(),
        include_columns: true,
        refresh,
        ..Default::default()
    }
}

/// Times `samples` discovers of `name`; each must come from the cache or not, as `refresh` asks.
async fn time_discovers(
    client: &mut ConnectionsClient,
    name: &str,
    refresh: bool,
    samples: usize,
) -> anyhow::Result<Latency> {
    let mut times = histogram();
    for _ in 0..samples {
        let started = Instant::now();
        let answer = client
            .discover_metadata(request(name, refresh))
            .await?
            .into_inner();
        record(&mut times, started.elapsed());
        ensure!(
            answer.from_cache != refresh,
            "a discover with refresh={refresh} answered from_cache={}",
            answer.from_cache
        );
    }
    Ok(Latency::of(&times))
}

/// Starts and seeds the throwaway PostgreSQL (its helpers block and panic on failure).
async fn start_postgres() -> anyhow::Result<Postgres> {
    tokio::task::spawn_blocking(|| {
        let pg = Postgres::start(PgOptions::default());
        pg.psql(SCHEMA);
        pg
    })
    .await
    .context("could not start a throwaway PostgreSQL (are its binaries installed?)")
}

/// Measures, prints, and writes the JSON report.
pub async fn run(mut args: DiscoverArgs) -> anyhow::Result<()> {
    if args.samples == 0 || args.cold_samples == 0 {
        bail!("--samples and --cold-samples must be at least 1");
    }
    let pg = start_postgres().await?;
    // A spawned server gets the PostgreSQL plugin built beside it.
    let _plugins = match (&args.server.spawn, &args.server.plugin_dir) {
        (Some(binary), None) => {
            let dir = crate::spawn::plugin_dir_beside(
                binary,
                "connvault_plugin_postgres",
                "postgres",
                "connvault-plugin-postgres",
                args.server.work_dir.as_deref(),
            )?;
            args.server.plugin_dir = Some(dir.path().to_owned());
            Some(dir)
        }
        _ => None,
    };
    let mut target = Target::open(&args.server)?;
    let channels = client::connect(&target.addr, 1, &target.auth).await?;
    let tenant = format!("bench-discover-{}", std::process::id());
    client::tenants(&channels[0])
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: tenant.clone(),
            tenant: None,
        })
        .await
        .context("creating the tenant")?;
    let result = measure(&channels[0], &tenant, &pg, &args).await;
    let cleaned = client::tenants(&channels[0])
        .delete_tenant(v1::DeleteTenantRequest {
            name: format!("tenants/{tenant}"),
            force: true,
        })
        .await;
    let report = result?;
    cleaned.context("deleting the tenant")?;
    print(&report);
    write_json(args.json.as_ref(), &report)?;
    if let Some(spawned) = target.spawned.as_mut() {
        spawned.stop();
    }
    Ok(())
}

async fn measure(
    chan: &client::Chan,
    tenant: &str,
    pg: &Postgres,
    args: &DiscoverArgs,
) -> anyhow::Result<DiscoverReport> {
    let mut connections = client::connections(chan);
    let name = connections
        .create_connection(v1::CreateConnectionRequest {
            parent: format!("tenants/{tenant}"),
            connection: Some(v1::Connection {
                display_name: "Discover bench".into(),
                data_source: "postgresql".into(),
                config: Some(client::config(&[
                    ("host", "127.0.0.1".into()),
                    ("port", pg.port().to_string()),
                    ("user", pg.user().to_owned()),
                ])),
                secrets: [("password".to_owned(), pg.password().to_owned())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .context("creating the PostgreSQL connection (is the postgres plugin loaded?)")?
        .into_inner()
        .name;
    // The first read fills the cache (and warms the plugin's runtime).
    time_discovers(&mut connections, &name, true, 1).await?;
    let cached = time_discovers(&mut connections, &name, false, args.samples).await?;
    let cold = time_discovers(&mut connections, &name, true, args.cold_samples).await?;
    let mut gets = histogram();
    for _ in 0..args.samples {
        let started = Instant::now();
        connections
            .get_connection(v1::GetConnectionRequest { name: name.clone() })
            .await?;
        record(&mut gets, started.elapsed());
    }
    Ok(DiscoverReport {
        cold,
        cached,
        get: Latency::of(&gets),
    })
}

fn print(report: &DiscoverReport) {
    println!("discover against PostgreSQL, one call at a time");
    for (name, latency) in [
        ("discover cold", &report.cold),
        ("discover cached", &report.cached),
        ("get", &report.get),
    ] {
        println!(
            "  {name:<16} p50 {:>7} µs  p99 {:>7} µs  mean {:>9.1} µs  ({} calls)",
            latency.p50_us, latency.p99_us, latency.mean_us, latency.samples
        );
    }
}
