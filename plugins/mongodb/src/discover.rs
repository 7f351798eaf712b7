//! Discovery: databases as schemas, collections and views as tables, and
//! field names with their BSON types sampled from a few documents as columns.
//!
//! The sample runs on the server (`$objectToArray` and `$type`), so only
//! field names and type names travel, never field values.

use std::collections::BTreeMap;

use connvault_plugin_sdk::StageError;
use connvault_plugin_sdk::pb;
use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};
use mongodb::results::CollectionType;

use crate::session::classify;

/// Limits used when a request leaves one at 0, and the most a request may ask for.
const DEFAULT_SCHEMAS: u32 = 100;
const DEFAULT_TABLES: u32 = 1000;
const DEFAULT_COLUMNS: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;
/// Documents sampled per collection for field names.
pub const SAMPLE: i64 = 5;
/// Databases every server has that hold no user data.
const SYSTEM_DATABASES: [&str; 3] = ["admin", "config", "local"];

fn limit(requested: u32, default: u32) -> usize {
    (if requested == 0 {
        default
    } else {
        requested.min(MAX_LIMIT)
    }) as usize
}

/// Glob matching with `*` and `?`; an empty glob matches everything.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    fn matches(glob: &[char], text: &[char]) -> bool {
        match (glob.first(), text.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                matches(&glob[1..], text) || (!text.is_empty() && matches(glob, &text[1..]))
            }
            (Some('?'), Some(_)) => matches(&glob[1..], &text[1..]),
            (Some(g), Some(t)) if g == t => matches(&glob[1..], &text[1..]),
            _ => false,
        }
    }
    let glob: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob.is_empty() || matches(&glob, &text)
}

/// Reads the catalog the user may see.
pub async fn catalog(
    client: &Client,
    request: &pb::DiscoverRequest,
) -> Result<pb::DiscoverResponse, StageError> {
    let fail = |error: mongodb::error::Error| classify(&error, "reading the catalog");
    let max_schemas = limit(request.max_schemas, DEFAULT_SCHEMAS);
    let max_tables = limit(request.max_tables, DEFAULT_TABLES);
    let max_columns = limit(request.max_columns_per_table, DEFAULT_COLUMNS);
    let mut truncated = false;

    let listed = client
        .database("admin")
        .run_command(doc! { "listDatabases": 1, "nameOnly": true, "authorizedDatabases": true })
        .await
        .map_err(fail)?;
    let mut names: Vec<String> = listed
        .get_array("databases")
        .map(|databases| {
            databases
                .iter()
                .filter_map(|entry| entry.as_document()?.get_str("name").ok().map(str::to_owned))
                .filter(|name| !SYSTEM_DATABASES.contains(&name.as_str()))
                .filter(|name| glob_matches(&request.schema_filter, name))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.len() > max_schemas {
        names.truncate(max_schemas);
        truncated = true;
    }

    let mut schemas = Vec::new();
    let mut budget = max_tables;
    for name in names {
        let database = client.database(&name);
        let mut cursor = database.list_collections().await.map_err(fail)?;
        let mut found = Vec::new();
        while cursor.advance().await.map_err(fail)? {
            let spec = cursor.deserialize_current().map_err(fail)?;
            if spec.name.starts_with("system.") || !glob_matches(&request.table_filter, &spec.name)
            {
                continue;
            }
            let kind = match spec.collection_type {
                CollectionType::View => "view",
                CollectionType::Timeseries => "timeseries",
                _ => "collection",
            };
            found.push((spec.name, kind));
        }
        found.sort();
        if found.len() > budget {
            found.truncate(budget);
            truncated = true;
        }
        let mut tables = Vec::new();
        for (collection, kind) in found {
            let mut columns = Vec::new();
            if request.include_columns {
                columns = sample_fields(&database.collection::<Document>(&collection))
                    .await
                    .map_err(fail)?;
                if columns.len() > max_columns {
                    columns.truncate(max_columns);
                    truncated = true;
                }
            }
            tables.push(pb::Table {
                name: collection,
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

/// Top-level field names of the first [`SAMPLE`] documents, in order of first
/// appearance, each with the BSON types seen (`string|int`); nullable when a
/// sampled document lacks the field or holds null there.
async fn sample_fields(
    collection: &mongodb::Collection<Document>,
) -> Result<Vec<pb::Column>, mongodb::error::Error> {
    let pipeline = [
        doc! { "$limit": SAMPLE },
        doc! { "$project": { "_id": 0, "fields": { "$map": {
            "input": { "$objectToArray": "$$ROOT" },
            "as": "field",
            "in": { "k": "$$field.k", "t": { "$type": "$$field.v" } },
        } } } },
    ];
    let mut cursor = collection.aggregate(pipeline).await?;
    let mut order: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, (Vec<String>, usize, bool)> = BTreeMap::new();
    let mut documents = 0;
    while cursor.advance().await? {
        documents += 1;
        let document = cursor.deserialize_current()?;
        let Ok(fields) = document.get_array("fields") else {
            continue;
        };
        for field in fields.iter().filter_map(Bson::as_document) {
            let (Ok(name), Ok(kind)) = (field.get_str("k"), field.get_str("t")) else {
                continue;
            };
            let entry = seen.entry(name.to_owned()).or_insert_with(|| {
                order.push(name.to_owned());
                (Vec::new(), 0, false)
            });
            entry.1 += 1;
            if kind == "null" {
                entry.2 = true;
            } else if !entry.0.iter().any(|known| known == kind) {
                entry.0.push(kind.to_owned());
            }
        }
    }
    Ok(order
        .into_iter()
        .enumerate()
        .filter_map(|(index, name)| {
            let (kinds, count, null) = seen.remove(&name)?;
            Some(pb::Column {
                data_type: if kinds.is_empty() {
                    "null".to_owned()
                } else {
                    kinds.join("|")
                },
                nullable: null || count < documents,
                position: u32::try_from(index + 1).unwrap_or(u32::MAX),
                name,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match() {
        assert!(glob_matches("", "shop"));
        assert!(glob_matches("sh*", "shop"));
        assert!(glob_matches("?hop", "shop"));
        assert!(!glob_matches("sh?", "shop"));
    }
}
