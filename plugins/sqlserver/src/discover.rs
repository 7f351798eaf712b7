//! Discovery through `INFORMATION_SCHEMA`: schemas, tables and views, columns.

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{Connection, Deadline, PluginError, StageError};
use connvault_provider_kit::engine;
use tiberius::Row;

use crate::session::Session;
use crate::{SqlServer, classify, net};

/// Limits used when a request leaves one at 0, and the most a request may ask for.
const DEFAULT_SCHEMAS: u32 = 100;
const DEFAULT_TABLES: u32 = 1000;
const DEFAULT_COLUMNS: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

/// Schemas every database has that hold no user data.
const SYSTEM_SCHEMAS: &str = "'sys', 'INFORMATION_SCHEMA', 'guest', 'db_owner', 'db_accessadmin', \
     'db_securityadmin', 'db_ddladmin', 'db_backupoperator', 'db_datareader', 'db_datawriter', \
     'db_denydatareader', 'db_denydatawriter'";

fn limit(requested: u32, default: u32) -> usize {
    (if requested == 0 {
        default
    } else {
        requested.min(MAX_LIMIT)
    }) as usize
}

/// A discover glob as a T-SQL `LIKE` pattern with `\` as its escape: `[` is
/// special in T-SQL's `LIKE` too.
fn like(glob: &str) -> String {
    net::glob_to_like(glob).replace('[', "\\[")
}

/// Opens a session and reads the catalog.
pub fn run(
    connection: &Connection,
    request: &pb::DiscoverRequest,
    deadline: Deadline,
) -> Result<pb::DiscoverResponse, PluginError> {
    let mut client = engine::open_or_error(&SqlServer, connection, deadline)?;
    net::bounded(deadline, "discovery", read_catalog(&mut client, request))
        .map_err(net::plugin_error)
}

async fn rows(
    client: &mut Session,
    sql: &str,
    params: &[&dyn tiberius::ToSql],
) -> Result<Vec<Row>, StageError> {
    let fail = |error: tiberius::error::Error| classify::driver(&error, "reading the catalog");
    client
        .query(sql, params)
        .await
        .map_err(fail)?
        .into_first_result()
        .await
        .map_err(fail)
}

fn text(row: &Row, index: usize) -> String {
    row.get::<&str, _>(index).unwrap_or_default().to_owned()
}

/// `varchar(200)`, `nvarchar(max)`, `decimal(10,2)`: the type as declared.
fn data_type(
    name: &str,
    length: Option<i32>,
    precision: Option<i32>,
    scale: Option<i32>,
) -> String {
    match (name, length, precision, scale) {
        ("decimal" | "numeric", _, Some(precision), Some(scale)) => {
            format!("{name}({precision},{scale})")
        }
        (_, Some(-1), _, _) => format!("{name}(max)"),
        (
            "char" | "varchar" | "nchar" | "nvarchar" | "binary" | "varbinary",
            Some(length),
            _,
            _,
        ) => format!("{name}({length})"),
        _ => name.to_owned(),
    }
}

async fn read_catalog(
    client: &mut Session,
    request: &pb::DiscoverRequest,
) -> Result<pb::DiscoverResponse, StageError> {
    let max_schemas = limit(request.max_schemas, DEFAULT_SCHEMAS);
    let max_tables = limit(request.max_tables, DEFAULT_TABLES);
    let max_columns = limit(request.max_columns_per_table, DEFAULT_COLUMNS);
    let mut truncated = false;

    // One row past each limit tells whether the limit cut anything off.
    let sql = format!(
        "SELECT TOP (@P1) SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA \
         WHERE SCHEMA_NAME NOT IN ({SYSTEM_SCHEMAS}) AND SCHEMA_NAME LIKE @P2 ESCAPE '\\' \
         ORDER BY SCHEMA_NAME"
    );
    let found = rows(
        client,
        &sql,
        &[&(max_schemas as i64 + 1), &like(&request.schema_filter)],
    )
    .await?;
    let mut names: Vec<String> = found.iter().map(|row| text(row, 0)).collect();
    if names.len() > max_schemas {
        names.truncate(max_schemas);
        truncated = true;
    }

    let mut schemas = Vec::new();
    let mut budget = max_tables;
    let table_like = like(&request.table_filter);
    for name in names {
        let found = rows(
            client,
            "SELECT TOP (@P1) TABLE_NAME, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES \
             WHERE TABLE_SCHEMA = @P2 AND TABLE_NAME LIKE @P3 ESCAPE '\\' ORDER BY TABLE_NAME",
            &[&(budget as i64 + 1), &name.as_str(), &table_like.as_str()],
        )
        .await?;
        if found.len() > budget {
            truncated = true;
        }
        let mut tables = Vec::new();
        for row in found.iter().take(budget) {
            let table = text(row, 0);
            let kind = if text(row, 1) == "VIEW" {
                "view"
            } else {
                "table"
            };
            let mut columns = Vec::new();
            if request.include_columns {
                let found = rows(
                    client,
                    "SELECT TOP (@P1) COLUMN_NAME, DATA_TYPE, \
                            CAST(CHARACTER_MAXIMUM_LENGTH AS int), CAST(NUMERIC_PRECISION AS int), \
                            CAST(NUMERIC_SCALE AS int), IS_NULLABLE, CAST(ORDINAL_POSITION AS int) \
                     FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = @P2 AND TABLE_NAME = @P3 \
                     ORDER BY ORDINAL_POSITION",
                    &[&(max_columns as i64 + 1), &name.as_str(), &table.as_str()],
                )
                .await?;
                if found.len() > max_columns {
                    truncated = true;
                }
                columns = found
                    .iter()
                    .take(max_columns)
                    .map(|row| pb::Column {
                        name: text(row, 0),
                        data_type: data_type(
                            &text(row, 1),
                            row.get::<i32, _>(2),
                            row.get::<i32, _>(3),
                            row.get::<i32, _>(4),
                        ),
                        nullable: text(row, 5) == "YES",
                        position: row
                            .get::<i32, _>(6)
                            .and_then(|position| u32::try_from(position).ok())
                            .unwrap_or(0),
                    })
                    .collect();
            }
            tables.push(pb::Table {
                name: table,
                kind: kind.to_owned(),
                estimated_rows: None,
                columns,
            });
        }
        budget -= tables.len();
        schemas.push(pb::Schema { name, tables });
    }
    Ok(pb::DiscoverResponse { schemas, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_are_spelled_out() {
        assert_eq!(data_type("varchar", Some(200), None, None), "varchar(200)");
        assert_eq!(data_type("nvarchar", Some(-1), None, None), "nvarchar(max)");
        assert_eq!(
            data_type("decimal", None, Some(10), Some(2)),
            "decimal(10,2)"
        );
        assert_eq!(data_type("int", None, Some(10), Some(0)), "int");
    }

    #[test]
    fn globs_escape_t_sql_brackets() {
        assert_eq!(like("a[b*"), "a\\[b%");
    }
}
