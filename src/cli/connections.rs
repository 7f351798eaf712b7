//! `connvault connections ...`

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::pb::v1;
use v1::connection_service_client::ConnectionServiceClient;

use super::output::{self, Columns, Output, from_json, print_list, print_one, to_json};
use super::resources::{deleted, tenant_name};
use super::secrets::SecretArgs;
use super::{CliError, Connect};

const CONNECTION_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("DISPLAY NAME", "displayName"),
    ("DATA SOURCE", "dataSource"),
    ("PRODUCT", "product"),
    ("UPDATED", "updateTime"),
];
const STAGE_COLUMNS: Columns = &[
    ("STAGE", "stage"),
    ("STATUS", "status"),
    ("DURATION (µs)", "durationUs"),
    ("MESSAGE", "message"),
];
const TABLE_COLUMNS: Columns = &[
    ("SCHEMA", "schema"),
    ("TABLE", "name"),
    ("KIND", "kind"),
    ("ROWS (est.)", "estimatedRows"),
    ("COLUMNS", "columns"),
];

/// The fields of a connection given on the command line or in a file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionFields {
    /// A JSON or YAML file holding the connection (proto3 JSON field names:
    /// `displayName`, `dataSource`, `config`, `secrets`, `labels`, `tls`...).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// The data source (e.g. `postgresql`).
    #[arg(long)]
    pub data_source: Option<String>,
    /// A name for people.
    #[arg(long)]
    pub display_name: Option<String>,
    /// The product the connection serves.
    #[arg(long)]
    pub product: Option<String>,
    /// A config field, `KEY=VALUE` (repeat); VALUE is JSON when it parses
    /// (`port=5432`, `ssl=true`), a string otherwise.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// A label, `KEY=VALUE` (repeat).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub secrets: SecretArgs,
}

/// `connvault connections ...`
#[derive(Debug, clap::Subcommand)]
pub enum ConnectionsCommand {
    /// Lists a tenant's connections.
    List {
        /// The tenant: `tenants/ID` or `ID`.
        parent: String,
        /// Only connections of this data source.
        #[arg(long)]
        data_source: Option<String>,
        /// Only connections of this product.
        #[arg(long)]
        product: Option<String>,
        /// Connections per page (the server caps it).
        #[arg(long)]
        page_size: Option<i32>,
        /// The page to read (from a previous list).
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Shows one connection (`tenants/T/connections/ID`); never its secrets.
    Get {
        /// The connection.
        name: String,
    },
    /// Creates a connection under a tenant, from a file and/or flags.
    Create {
        /// The tenant: `tenants/ID` or `ID`.
        parent: String,
        /// The connection's fields.
        #[command(flatten)]
        fields: ConnectionFields,
        /// Check it without storing it.
        #[arg(long)]
        validate_only: bool,
    },
    /// Changes the fields given (the update mask is what the flags and file name).
    Update {
        /// The connection.
        name: String,
        /// The connection's fields.
        #[command(flatten)]
        fields: ConnectionFields,
        /// The update mask, comma-separated proto field paths
        /// (`display_name,config.host`) [default: what the flags and file set].
        #[arg(long)]
        update_mask: Option<String>,
        /// Update only if the connection still has this etag.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Deletes a connection.
    Delete {
        /// The connection.
        name: String,
        /// Delete only if the connection still has this etag.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Tests a saved connection; prints each stage. Exit 8 when it fails.
    Test {
        /// The connection.
        name: String,
        /// Milliseconds the test may take.
        #[arg(long)]
        timeout_ms: Option<u32>,
    },
    /// Lists the schemas, tables and (with --columns) columns behind a connection.
    Discover {
        /// The connection.
        name: String,
        /// Only schemas matching this (`*` wildcards).
        #[arg(long)]
        schema_filter: Option<String>,
        /// Only tables matching this (`*` wildcards).
        #[arg(long)]
        table_filter: Option<String>,
        /// Include columns.
        #[arg(long)]
        columns: bool,
        /// Read the source again instead of the cache.
        #[arg(long)]
        refresh: bool,
        /// The most tables.
        #[arg(long)]
        max_tables: Option<u32>,
    },
    /// Resolves a connection: its secrets and connection strings (audited).
    Resolve {
        /// The connection.
        name: String,
    },
}

/// `KEY=VALUE` pairs.
fn pairs(specs: &[String], flag: &str) -> Result<Vec<(String, String)>, CliError> {
    specs
        .iter()
        .map(|spec| {
            spec.split_once('=')
                .filter(|(key, _)| !key.is_empty())
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .ok_or_else(|| CliError::Usage(format!("{flag} {spec}: KEY=VALUE")))
        })
        .collect()
}

/// The most bytes a connection file may hold.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// A JSON or YAML file as JSON (YAML is a superset: one parser reads both).
fn read_document(path: &Path) -> Result<Value, CliError> {
    let size = std::fs::metadata(path)
        .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?
        .len();
    if size > MAX_FILE {
        return Err(CliError::Input(format!(
            "{}: {size} bytes; at most {MAX_FILE}",
            path.display()
        )));
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?,
    );
    match serde_json::from_str(&text) {
        Ok(value) => Ok(value),
        Err(_) => serde_yaml_ng::from_str(&text).map_err(|error| {
            CliError::Input(format!(
                "{}: neither JSON nor YAML: {error}",
                path.display()
            ))
        }),
    }
}

impl ConnectionFields {
    /// The connection the file and flags describe, and the mask paths they set.
    fn connection(&self) -> Result<(v1::Connection, Vec<String>), CliError> {
        let mut mask = Vec::new();
        let mut connection = match &self.file {
            Some(path) => {
                let document = read_document(path)?;
                if let Some(object) = document.as_object() {
                    let descriptor = output::pool()?
                        .get_message_by_name("connvault.v1.Connection")
                        .ok_or_else(|| CliError::Internal("no Connection descriptor".into()))?;
                    for key in object.keys() {
                        let field = descriptor
                            .get_field_by_json_name(key)
                            .or_else(|| descriptor.get_field_by_name(key))
                            .ok_or_else(|| {
                                CliError::Input(format!(
                                    "{}: a connection has no field {key:?}",
                                    path.display()
                                ))
                            })?;
                        mask.push(field.name().to_owned());
                    }
                }
                from_json::<v1::Connection>(document, "connvault.v1.Connection")?
            }
            None => v1::Connection::default(),
        };
        if let Some(source) = &self.data_source {
            connection.data_source = source.clone();
            mask.push("data_source".into());
        }
        if let Some(name) = &self.display_name {
            connection.display_name = name.clone();
            mask.push("display_name".into());
        }
        if let Some(product) = &self.product {
            connection.product = product.clone();
            mask.push("product".into());
        }
        let config = pairs(&self.config, "--set")?;
        if !config.is_empty() {
            let fields = &mut connection
                .config
                .get_or_insert_with(Default::default)
                .fields;
            for (key, value) in config {
                let json = serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value));
                fields.insert(key.clone(), json_to_prost(json));
                mask.push(format!("config.{key}"));
            }
        }
        let labels = pairs(&self.labels, "--label")?;
        if !labels.is_empty() {
            connection.labels.extend(labels);
            mask.push("labels".into());
        }
        for (name, value) in self.secrets.read()? {
            mask.push(format!("secrets.{name}"));
            connection.secrets.insert(name, value.to_string());
        }
        mask.dedup();
        Ok((connection, mask))
    }
}

/// A JSON value as a `google.protobuf.Value`.
fn json_to_prost(value: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_to_prost).collect(),
        }),
        Value::Object(object) => Kind::StructValue(prost_types::Struct {
            fields: object
                .into_iter()
                .map(|(key, value)| (key, json_to_prost(value)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

impl ConnectionsCommand {
    /// Runs the verb.
    pub async fn run(self, connect: &Connect, output: Output) -> Result<(), CliError> {
        let mut client = ConnectionServiceClient::new(connect.channel().await?);
        match self {
            ConnectionsCommand::List {
                parent,
                data_source,
                product,
                page_size,
                page_token,
            } => {
                let answer = client
                    .list_connections(v1::ListConnectionsRequest {
                        parent: tenant_name(&parent),
                        data_source: data_source.unwrap_or_default(),
                        product: product.unwrap_or_default(),
                        page_size: page_size.unwrap_or_default(),
                        page_token: page_token.unwrap_or_default(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let json = to_json(&answer, "connvault.v1.ListConnectionsResponse")?;
                print_list(output, &json, "connections", CONNECTION_COLUMNS)
            }
            ConnectionsCommand::Get { name } => {
                let connection = client
                    .get_connection(v1::GetConnectionRequest { name })
                    .await?
                    .into_inner();
                print_one(output, &to_json(&connection, "connvault.v1.Connection")?)
            }
            ConnectionsCommand::Create {
                parent,
                fields,
                validate_only,
            } => {
                let (connection, _) = fields.connection()?;
                let created = client
                    .create_connection(v1::CreateConnectionRequest {
                        parent: tenant_name(&parent),
                        connection: Some(connection),
                        validate_only,
                    })
                    .await?
                    .into_inner();
                print_one(output, &to_json(&created, "connvault.v1.Connection")?)
            }
            ConnectionsCommand::Update {
                name,
                fields,
                update_mask,
                etag,
            } => {
                let (mut connection, derived) = fields.connection()?;
                let paths: Vec<String> = match update_mask {
                    Some(mask) => mask
                        .split(',')
                        .map(|path| path.trim().to_owned())
                        .filter(|path| !path.is_empty())
                        .collect(),
                    None => derived.into_iter().filter(|path| path != "name").collect(),
                };
                if paths.is_empty() {
                    return Err(CliError::Usage(
                        "nothing to update: give --file, field flags or --update-mask".into(),
                    ));
                }
                connection.name = name;
                let updated = client
                    .update_connection(v1::UpdateConnectionRequest {
                        connection: Some(connection),
                        update_mask: Some(prost_types::FieldMask { paths }),
                        etag: etag.unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                print_one(output, &to_json(&updated, "connvault.v1.Connection")?)
            }
            ConnectionsCommand::Delete { name, etag } => {
                client
                    .delete_connection(v1::DeleteConnectionRequest {
                        name: name.clone(),
                        etag: etag.unwrap_or_default(),
                    })
                    .await?;
                deleted(output, &name)
            }
            ConnectionsCommand::Test { name, timeout_ms } => {
                let result = client
                    .test_connection(v1::TestConnectionRequest {
                        target: Some(v1::test_connection_request::Target::Name(name.clone())),
                        timeout_ms: timeout_ms.unwrap_or_default(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let json = to_json(&result, "connvault.v1.TestConnectionResponse")?;
                if output == Output::Table {
                    print_list(output, &json, "stages", STAGE_COLUMNS)?;
                    let json = &json.value;
                    println!(
                        "{}",
                        if result.success {
                            "result: OK".to_owned()
                        } else {
                            format!(
                                "result: FAILED ({}): {}",
                                json.get("errorCategory")
                                    .and_then(Value::as_str)
                                    .unwrap_or("ERROR_CATEGORY_UNSPECIFIED"),
                                result.message
                            )
                        }
                    );
                } else {
                    output::print_data(output, &json)?;
                }
                if result.success {
                    Ok(())
                } else {
                    Err(CliError::TestFailed(format!("the test of {name} failed")))
                }
            }
            ConnectionsCommand::Discover {
                name,
                schema_filter,
                table_filter,
                columns,
                refresh,
                max_tables,
            } => {
                let catalog = client
                    .discover_metadata(v1::DiscoverMetadataRequest {
                        name,
                        schema_filter: schema_filter.unwrap_or_default(),
                        table_filter: table_filter.unwrap_or_default(),
                        include_columns: columns,
                        refresh,
                        max_tables: max_tables.unwrap_or_default(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let json = to_json(&catalog, "connvault.v1.DiscoverMetadataResponse")?;
                if output != Output::Table {
                    return output::print_data(output, &json);
                }
                print!(
                    "{}",
                    output::table(&catalog_rows(&json.value), TABLE_COLUMNS)
                );
                Ok(())
            }
            ConnectionsCommand::Resolve { name } => {
                let resolved = client
                    .resolve_connection(v1::ResolveConnectionRequest { name })
                    .await?
                    .into_inner();
                let json = to_json(&resolved, "connvault.v1.ResolveConnectionResponse")?;
                // Nested maps read badly in a table: a resolve prints as YAML there.
                let output = if output == Output::Table {
                    Output::Yaml
                } else {
                    output
                };
                output::print_data(output, &json)
            }
        }
    }
}

/// One row per table of a catalog, its schema and column count beside it.
fn catalog_rows(catalog: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    for schema in catalog
        .get("schemas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let schema_name = schema.get("name").cloned().unwrap_or(Value::Null);
        for table in schema
            .get("tables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut row = table.clone();
            if let Some(object) = row.as_object_mut() {
                object.insert("schema".into(), schema_name.clone());
                let count = table
                    .get("columns")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                object.insert("columns".into(), Value::from(count));
            }
            rows.push(row);
        }
    }
    rows
}
