//! A discovery request's parameters: its filters and limits after defaults
//! and caps, the cache key they make, the plugin request, and the plugin's
//! answer held to them.

use std::time::Duration;

use connvault_plugin_abi::pb as plugin;
use sha2::{Digest, Sha256};

use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::pb::v1;

/// Schemas returned when a request leaves `max_schemas` at 0, and the most it may ask for.
pub const DEFAULT_SCHEMAS: u32 = 100;
/// The server's cap on `max_schemas`.
pub const MAX_SCHEMAS: u32 = 1000;
/// Tables returned when a request leaves `max_tables` at 0.
pub const DEFAULT_TABLES: u32 = 1000;
/// The server's cap on `max_tables`.
pub const MAX_TABLES: u32 = 10_000;
/// Columns per table when a request leaves `max_columns_per_table` at 0; also the cap.
pub const MAX_COLUMNS: u32 = 1000;
/// The longest filter accepted (the request's size bound).
const MAX_FILTER_CHARS: usize = crate::bounds::MAX_GLOB_CHARS;
/// Cache entries of this feature start with this key prefix (other features may cache too).
const CACHE_KEY_PREFIX: &str = "metadata/v1/";
/// Time the host gives a plugin past the deadline it passes in, to answer.
pub(super) const HOST_MARGIN: Duration = Duration::from_secs(1);

/// The request's filters and limits after defaults and caps: what a cache entry answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Params {
    schema_filter: String,
    table_filter: String,
    max_schemas: u32,
    max_tables: u32,
    max_columns: u32,
    include_columns: bool,
}

impl Params {
    pub(super) fn from_request(
        request: &v1::DiscoverMetadataRequest,
    ) -> Result<Self, ServiceError> {
        let mut violations = Vec::new();
        for (field, value) in [
            ("schema_filter", &request.schema_filter),
            ("table_filter", &request.table_filter),
        ] {
            if value.chars().count() > MAX_FILTER_CHARS || value.chars().any(char::is_control) {
                violations.push(Violation {
                    field: field.into(),
                    description: format!(
                        "must be a glob of at most {MAX_FILTER_CHARS} characters without control characters"
                    ),
                });
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let bound = |requested: u32, default: u32, cap: u32| match requested {
            0 => default,
            n => n.min(cap),
        };
        Ok(Self {
            schema_filter: request.schema_filter.clone(),
            table_filter: request.table_filter.clone(),
            max_schemas: bound(request.max_schemas, DEFAULT_SCHEMAS, MAX_SCHEMAS),
            max_tables: bound(request.max_tables, DEFAULT_TABLES, MAX_TABLES),
            max_columns: bound(request.max_columns_per_table, MAX_COLUMNS, MAX_COLUMNS),
            include_columns: request.include_columns,
        })
    }

    /// The cache key: a hash of every parameter, each length-prefixed so no
    /// two parameter sets encode alike.
    pub(super) fn cache_key(&self) -> String {
        let mut hash = Sha256::new();
        for text in [&self.schema_filter, &self.table_filter] {
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(text.as_bytes());
        }
        for number in [self.max_schemas, self.max_tables, self.max_columns] {
            hash.update(number.to_be_bytes());
        }
        hash.update([u8::from(self.include_columns)]);
        format!("{CACHE_KEY_PREFIX}{}", hex::encode(&hash.finalize()[..16]))
    }

    pub(super) fn plugin_request(
        &self,
        connection: plugin::ConnectionSpec,
        timeout: Duration,
        egress: plugin::EgressGrant,
    ) -> plugin::DiscoverRequest {
        plugin::DiscoverRequest {
            connection: Some(connection),
            egress: Some(egress),
            deadline_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            schema_filter: self.schema_filter.clone(),
            table_filter: self.table_filter.clone(),
            max_schemas: self.max_schemas,
            max_tables: self.max_tables,
            max_columns_per_table: self.max_columns,
            include_columns: self.include_columns,
        }
    }

    /// The plugin's catalog, held to this request's limits whatever the
    /// plugin returned (a plugin may ignore them).
    pub(super) fn catalog(&self, answer: plugin::DiscoverResponse) -> v1::DiscoverMetadataResponse {
        let mut truncated = answer.truncated;
        let mut tables_left = self.max_tables as usize;
        let mut schemas = Vec::new();
        for schema in answer.schemas {
            if schemas.len() >= self.max_schemas as usize {
                truncated = true;
                break;
            }
            if schema.tables.len() > tables_left {
                truncated = true;
            }
            let tables = schema
                .tables
                .into_iter()
                .take(tables_left)
                .map(|table| {
                    let mut columns = if self.include_columns {
                        table.columns
                    } else {
                        Vec::new()
                    };
                    if columns.len() > self.max_columns as usize {
                        columns.truncate(self.max_columns as usize);
                        truncated = true;
                    }
                    v1::CatalogTable {
                        name: table.name,
                        kind: table.kind,
                        estimated_rows: table.estimated_rows,
                        columns: columns
                            .into_iter()
                            .map(|column| v1::CatalogColumn {
                                name: column.name,
                                data_type: column.data_type,
                                nullable: column.nullable,
                                position: column.position,
                            })
                            .collect(),
                    }
                })
                .collect::<Vec<_>>();
            tables_left -= tables.len();
            schemas.push(v1::CatalogSchema {
                name: schema.name,
                tables,
            });
        }
        v1::DiscoverMetadataResponse {
            schemas,
            truncated,
            fetched_time: Some(timestamp_now()),
            from_cache: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, columns: usize) -> plugin::Table {
        plugin::Table {
            name: name.into(),
            kind: "table".into(),
            estimated_rows: Some(3),
            columns: (1..=columns)
                .map(|position| plugin::Column {
                    name: format!("c{position}"),
                    data_type: "integer".into(),
                    nullable: true,
                    position: position as u32,
                })
                .collect(),
        }
    }

    fn params(request: v1::DiscoverMetadataRequest) -> Params {
        Params::from_request(&request).unwrap()
    }

    #[test]
    fn limits_default_and_are_capped() {
        let p = params(v1::DiscoverMetadataRequest::default());
        assert_eq!(
            (p.max_schemas, p.max_tables, p.max_columns),
            (DEFAULT_SCHEMAS, DEFAULT_TABLES, MAX_COLUMNS)
        );
        let p = params(v1::DiscoverMetadataRequest {
            max_schemas: u32::MAX,
            max_tables: u32::MAX,
            max_columns_per_table: u32::MAX,
            ..Default::default()
        });
        assert_eq!(
            (p.max_schemas, p.max_tables, p.max_columns),
            (MAX_SCHEMAS, MAX_TABLES, MAX_COLUMNS)
        );
        let bad = Params::from_request(&v1::DiscoverMetadataRequest {
            table_filter: "x".repeat(MAX_FILTER_CHARS + 1),
            schema_filter: "a\nb".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(bad, ServiceError::InvalidArgument(v) if v.len() == 2));
    }

    #[test]
    fn cache_keys_differ_for_every_parameter() {
        let base = v1::DiscoverMetadataRequest::default();
        let variants = [
            v1::DiscoverMetadataRequest {
                schema_filter: "a".into(),
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                table_filter: "a".into(),
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                max_tables: 5,
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                max_schemas: 5,
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                max_columns_per_table: 5,
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                include_columns: true,
                ..base.clone()
            },
        ];
        let mut keys: Vec<String> = variants
            .iter()
            .map(|r| params(r.clone()).cache_key())
            .collect();
        keys.push(params(base.clone()).cache_key());
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        // `refresh` and `timeout_ms` do not change what is cached.
        let same = v1::DiscoverMetadataRequest {
            refresh: true,
            timeout_ms: 5,
            ..base.clone()
        };
        assert_eq!(params(same).cache_key(), params(base).cache_key());
        // Filters are length-prefixed: ("ab", "") and ("a", "b") differ.
        let one = params(v1::DiscoverMetadataRequest {
            schema_filter: "ab".into(),
            ..Default::default()
        });
        let two = params(v1::DiscoverMetadataRequest {
            schema_filter: "a".into(),
            table_filter: "b".into(),
            ..Default::default()
        });
        assert_ne!(one.cache_key(), two.cache_key());
    }

    #[test]
    fn a_plugin_ignoring_the_limits_is_cut_to_them() {
        let p = params(v1::DiscoverMetadataRequest {
            max_schemas: 2,
            max_tables: 3,
            max_columns_per_table: 2,
            include_columns: true,
            ..Default::default()
        });
        let answer = plugin::DiscoverResponse {
            schemas: vec![
                plugin::Schema {
                    name: "a".into(),
                    tables: vec![table("t1", 1), table("t2", 5)],
                },
                plugin::Schema {
                    name: "b".into(),
                    tables: vec![table("t3", 1), table("t4", 1)],
                },
                plugin::Schema {
                    name: "c".into(),
                    tables: vec![],
                },
            ],
            truncated: false,
        };
        let catalog = p.catalog(answer.clone());
        assert!(catalog.truncated);
        let shape: Vec<(String, Vec<(String, usize)>)> = catalog
            .schemas
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.tables
                        .iter()
                        .map(|t| (t.name.clone(), t.columns.len()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (
                    "a".to_owned(),
                    vec![("t1".to_owned(), 1), ("t2".to_owned(), 2)]
                ),
                ("b".to_owned(), vec![("t3".to_owned(), 1)]),
            ]
        );
        // Within the limits nothing is cut; columns go unless asked for.
        let p = params(v1::DiscoverMetadataRequest::default());
        let catalog = p.catalog(answer);
        assert!(!catalog.truncated);
        assert_eq!(catalog.schemas.len(), 3);
        assert!(
            catalog.schemas[0]
                .tables
                .iter()
                .all(|t| t.columns.is_empty())
        );
    }
}
