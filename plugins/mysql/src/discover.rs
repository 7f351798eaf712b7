//! Discovery through `information_schema`: databases, tables and views, columns.

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{Connection, Deadline, PluginError, StageError};
use connvault_provider_kit::engine;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::{MySql, net, session};

/// Limits used when a request leaves one at 0, and the most a request may ask for.
const DEFAULT_SCHEMAS: u32 = 100;
const DEFAULT_TABLES: u32 = 1000;
const DEFAULT_COLUMNS: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

fn limit(requested: u32, default: u32) -> usize {
    (if requested == 0 {
        default
    } else {
        requested.min(MAX_LIMIT)
    }) as usize
}

/// Opens a session and reads the catalog.
pub fn run(
    connection: &Connection,
    request: &pb::DiscoverRequest,
    deadline: Deadline,
) -> Result<pb::DiscoverResponse, PluginError> {
    let mut conn = engine::open_or_error(&MySql, connection, deadline)?;
    let found = net::bounded(deadline, "discovery", read_catalog(&mut conn, request));
    session::close(Some(conn), deadline);
    found.map_err(net::plugin_error)
}

async fn read_catalog(
    conn: &mut Conn,
    request: &pb::DiscoverRequest,
) -> Result<pb::DiscoverResponse, StageError> {
    let fail = |error: mysql_async::Error| session::classify(&error);
    let max_schemas = limit(request.max_schemas, DEFAULT_SCHEMAS);
    let max_tables = limit(request.max_tables, DEFAULT_TABLES);
    let max_columns = limit(request.max_columns_per_table, DEFAULT_COLUMNS);
    let mut truncated = false;

    // One row past each limit tells us whether the limit cut anything off.
    let mut names: Vec<String> = conn
        .exec(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys') \
               AND SCHEMA_NAME LIKE ? ORDER BY SCHEMA_NAME LIMIT ?",
            (net::glob_to_like(&request.schema_filter), max_schemas + 1),
        )
        .await
        .map_err(fail)?;
    if names.len() > max_schemas {
        names.truncate(max_schemas);
        truncated = true;
    }

    let mut schemas = Vec::new();
    let mut budget = max_tables;
    let table_like = net::glob_to_like(&request.table_filter);
    for name in names {
        let rows: Vec<(String, String, Option<u64>)> = conn
            .exec(
                "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ? ORDER BY TABLE_NAME LIMIT ?",
                (&name, &table_like, budget + 1),
            )
            .await
            .map_err(fail)?;
        if rows.len() > budget {
            truncated = true;
        }
        let mut tables = Vec::new();
        for (table, kind, estimate) in rows.into_iter().take(budget) {
            let kind = if kind.contains("VIEW") {
                "view"
            } else {
                "table"
            };
            let mut columns = Vec::new();
            if request.include_columns {
                let found: Vec<(String, String, String, u64)> = conn
                    .exec(
                        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, ORDINAL_POSITION \
                         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                         ORDER BY ORDINAL_POSITION LIMIT ?",
                        (&name, &table, max_columns + 1),
                    )
                    .await
                    .map_err(fail)?;
                if found.len() > max_columns {
                    truncated = true;
                }
                columns = found
                    .into_iter()
                    .take(max_columns)
                    .map(|(column, data_type, nullable, position)| pb::Column {
                        name: column,
                        data_type,
                        nullable: nullable == "YES",
                        position: u32::try_from(position).unwrap_or(u32::MAX),
                    })
                    .collect();
            }
            tables.push(pb::Table {
                name: table,
                kind: kind.to_owned(),
                // Views have no row estimate; InnoDB's is approximate.
                estimated_rows: (kind == "table")
                    .then_some(estimate)
                    .flatten()
                    .and_then(|rows| i64::try_from(rows).ok()),
                columns,
            });
        }
        budget -= tables.len();
        schemas.push(pb::Schema { name, tables });
    }
    Ok(pb::DiscoverResponse { schemas, truncated })
}
