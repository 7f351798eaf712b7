//! The peer users would pick instead of connvault: a table in their own
//! PostgreSQL, measured with `pgbench` in the same run and at the same
//! concurrency, on a throwaway cluster that keeps PostgreSQL's durability
//! (`fsync = on`, `synchronous_commit` at its default).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use connvault_testkit::servers::{PgOptions, Postgres, find_binary};

/// Bytes of the row body: about what a stored connection weighs.
const ROW_BYTES: usize = 300;

/// What `pgbench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerQuery {
    /// `SELECT body FROM connection WHERE id = :id` (a point select by key).
    PointSelect,
    /// `INSERT` of one ~300-byte row with a unique key, committed durably.
    DurableInsert,
}

impl PeerQuery {
    /// The peer query that matches a bench scenario, if any.
    pub(crate) fn for_scenario(scenario: &str) -> Option<PeerQuery> {
        match scenario {
            "get" => Some(PeerQuery::PointSelect),
            "create" => Some(PeerQuery::DurableInsert),
            _ => None,
        }
    }

    /// How the table shows it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            PeerQuery::PointSelect => "pg select",
            PeerQuery::DurableInsert => "pg insert",
        }
    }

    fn script(self, rows: usize) -> String {
        match self {
            PeerQuery::PointSelect => {
                format!("\\set id random(1, {rows})\nSELECT body FROM connection WHERE id = :id;\n")
            }
            PeerQuery::DurableInsert => format!(
                "INSERT INTO connection_created (name, body) VALUES (gen_random_uuid()::text, repeat('x', {ROW_BYTES}));\n"
            ),
        }
    }
}

/// A throwaway, durable PostgreSQL holding the peer's tables.
pub(crate) struct PgPeer {
    pg: Postgres,
    rows: usize,
    scripts: tempfile::TempDir,
}

impl PgPeer {
    /// Starts the cluster under `work_dir` (the disk being measured) and
    /// fills `rows` rows for the point select.
    pub(crate) fn start(
        work_dir: Option<&Path>,
        rows: usize,
        concurrency: usize,
    ) -> anyhow::Result<PgPeer> {
        let options = PgOptions {
            durable: true,
            max_connections: Some(
                u32::try_from(concurrency)
                    .unwrap_or(1000)
                    .saturating_add(20),
            ),
            shared_buffers_mb: Some(128),
            parent_dir: work_dir.map(Path::to_path_buf),
            ..PgOptions::default()
        };
        let rows = rows.max(1);
        // The testkit panics when PostgreSQL or psql fails (it is made for
        // tests): keep that from tearing down the bench's runtime thread.
        let pg = std::panic::catch_unwind(|| {
            let pg = Postgres::start(options);
            pg.psql(&format!(
                "CREATE TABLE connection (id bigint PRIMARY KEY, body text NOT NULL);
                 INSERT INTO connection SELECT g, repeat('x', {ROW_BYTES}) FROM generate_series(1, {rows}) g;
                 CREATE TABLE connection_created (name text PRIMARY KEY, body text NOT NULL);"
            ));
            // Not in the same call: VACUUM refuses to run inside psql's one transaction.
            pg.psql("VACUUM ANALYZE");
            pg
        })
        .map_err(|_| anyhow::anyhow!("could not set up a throwaway PostgreSQL (see above)"))?;
        Ok(PgPeer {
            pg,
            rows,
            scripts: tempfile::tempdir().context("temp dir for pgbench scripts")?,
        })
    }

    /// Runs `pgbench` with `clients` clients for `duration` and returns
    /// transactions per second (excluding connection set-up).
    pub(crate) fn run(
        &self,
        query: PeerQuery,
        clients: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let script = self.script_file(query)?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let output = Command::new(pgbench())
            .args(["-n", "-M", "prepared", "-h", "127.0.0.1"])
            .arg("-p")
            .arg(self.pg.port().to_string())
            .arg("-U")
            .arg(self.pg.user())
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(threads.min(clients.max(1)).to_string())
            .arg("-T")
            .arg(duration.as_secs().max(1).to_string())
            .arg("-f")
            .arg(&script)
            .arg("postgres")
            .env("PGPASSWORD", self.pg.password())
            .output()
            .context("running pgbench")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse_tps(&stdout).with_context(|| format!("no tps in pgbench's output:\n{stdout}"))
    }

    fn script_file(&self, query: PeerQuery) -> anyhow::Result<PathBuf> {
        let path = self.scripts.path().join(match query {
            PeerQuery::PointSelect => "select.sql",
            PeerQuery::DurableInsert => "insert.sql",
        });
        std::fs::write(&path, query.script(self.rows))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// `pgbench` from the PostgreSQL installation the testkit uses.
fn pgbench() -> PathBuf {
    find_binary("pgbench")
}

/// Reads `tps = 12345.678901 (without initial connection time)`.
fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("tps = "))
        .find_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rate_pgbench_prints() {
        let output = "number of failed transactions: 0 (0.000%)\nlatency average = 2.1 ms\ninitial connection time = 40.1 ms\ntps = 30612.345678 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(30612.345678));
        assert_eq!(parse_tps("tps = nonsense\n"), None);
    }
}
