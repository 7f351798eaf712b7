//! Catalog discovery: schemas, tables and views, columns with types, within the request's limits.

use std::collections::BTreeMap;

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{Connection, Deadline, PluginError, StageError};
use connvault_provider_kit::engine;

use crate::{Postgres, net, session};

/// Limits used when a request leaves one at 0, and the most a request may ask for.
const DEFAULT_SCHEMAS: u32 = 100;
const DEFAULT_TABLES: u32 = 1000;
const DEFAULT_COLUMNS: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

fn limit(requested: u32, default: u32) -> i64 {
    i64::from(if requested == 0 {
        default
    } else {
        requested.min(MAX_LIMIT)
    })
}

/// Opens a session and reads the catalog.
pub fn run(
    connection: &Connection,
    request: &pb::DiscoverRequest,
    deadline: Deadline,
) -> Result<pb::DiscoverResponse, PluginError> {
    let client = engine::open_or_error(&Postgres, connection, deadline)?;
    net::bounded(deadline, "discovery", read_catalog(&client, request)).map_err(net::plugin_error)
}

async fn read_catalog(
    client: &tokio_postgres::Client,
    request: &pb::DiscoverRequest,
) -> Result<pb::DiscoverResponse, StageError> {
    let fail = |error: tokio_postgres::Error| session::classify(&error, "reading the catalog");
    let max_schemas = limit(request.max_schemas, DEFAULT_SCHEMAS);
    let max_tables = limit(request.max_tables, DEFAULT_TABLES);
    let max_columns = limit(request.max_columns_per_table, DEFAULT_COLUMNS);
    let mut truncated = false;

    // One row past each limit tells us whether the limit cut anything off.
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace \
             WHERE nspname <> 'information_schema' AND nspname::text NOT LIKE 'pg\\_%' \
               AND has_schema_privilege(oid, 'USAGE') AND nspname::text LIKE $1 \
             ORDER BY nspname LIMIT $2",
            &[
                &net::glob_to_like(&request.schema_filter),
                &(max_schemas + 1),
            ],
        )
        .await
        .map_err(fail)?;
    let mut names: Vec<String> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    if names.len() as i64 > max_schemas {
        names.truncate(max_schemas as usize);
        truncated = true;
    }
    let mut schemas: BTreeMap<String, Vec<(u32, pb::Table)>> = names
        .iter()
        .map(|name| (name.clone(), Vec::new()))
        .collect();

    let rows = client
        .query(
            "SELECT n.nspname::text, c.oid, c.relname::text, c.relkind::text, c.reltuples::float8 \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname::text = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND c.relname::text LIKE $2 \
             ORDER BY n.nspname, c.relname LIMIT $3",
            &[
                &names,
                &net::glob_to_like(&request.table_filter),
                &(max_tables + 1),
            ],
        )
        .await
        .map_err(fail)?;
    if rows.len() as i64 > max_tables {
        truncated = true;
    }
    let mut oids = Vec::new();
    for row in rows.iter().take(max_tables as usize) {
        let schema: String = row.try_get(0).map_err(fail)?;
        let oid: u32 = row.try_get(1).map_err(fail)?;
        let kind: String = row.try_get(3).map_err(fail)?;
        let estimate: f64 = row.try_get(4).map_err(fail)?;
        let table = pb::Table {
            name: row.try_get(2).map_err(fail)?,
            kind: match kind.as_str() {
                "v" => "view",
                "m" => "materialized_view",
                "f" => "foreign_table",
                _ => "table",
            }
            .to_owned(),
            // -1 means "never analysed" since PostgreSQL 14.
            estimated_rows: (estimate >= 0.0).then_some(estimate as i64),
            columns: Vec::new(),
        };
        oids.push(oid);
        schemas.entry(schema).or_default().push((oid, table));
    }

    if request.include_columns && !oids.is_empty() {
        let rows = client
            .query(
                "SELECT attrelid, attname::text, pg_catalog.format_type(atttypid, atttypmod), \
                        NOT attnotnull, attnum::int4 \
                 FROM (SELECT a.*, row_number() OVER (PARTITION BY attrelid ORDER BY attnum) AS rn \
                       FROM pg_catalog.pg_attribute a \
                       WHERE attrelid = ANY($1::oid[]) AND attnum > 0 AND NOT attisdropped) a \
                 WHERE rn <= $2 ORDER BY attrelid, attnum",
                &[&oids, &(max_columns + 1)],
            )
            .await
            .map_err(fail)?;
        let mut columns: BTreeMap<u32, Vec<pb::Column>> = BTreeMap::new();
        for row in &rows {
            let oid: u32 = row.try_get(0).map_err(fail)?;
            let position: i32 = row.try_get(4).map_err(fail)?;
            columns.entry(oid).or_default().push(pb::Column {
                name: row.try_get(1).map_err(fail)?,
                data_type: row.try_get(2).map_err(fail)?,
                nullable: row.try_get(3).map_err(fail)?,
                position: u32::try_from(position).unwrap_or(0),
            });
        }
        for tables in schemas.values_mut() {
            for (oid, table) in tables.iter_mut() {
                let mut found = columns.remove(oid).unwrap_or_default();
                if found.len() as i64 > max_columns {
                    found.truncate(max_columns as usize);
                    truncated = true;
                }
                table.columns = found;
            }
        }
    }

    Ok(pb::DiscoverResponse {
        schemas: schemas
            .into_iter()
            .map(|(name, tables)| pb::Schema {
                name,
                tables: tables.into_iter().map(|(_, table)| table).collect(),
            })
            .collect(),
        truncated,
    })
}
